//! A fake Supabase Storage server (`/storage/v1`), written from the documented
//! behaviour (see /work/shared/reference/provider-apis.md §5), for the
//! adapter's tests: auth headers, objects (small ones in memory, large ones
//! in a temp dir), create/upsert, errors as HTTP 400 carrying the real status
//! in `statusCode`, bucket size and type limits, info, list v1 (offset) and
//! v2 (cursor), delete, signed URLs, and TUS 1.0.0 with the 6 MiB chunk rule.
//!
//! Switches make it misbehave on purpose: answer `list-v2` as an older
//! project does, fail a chosen TUS PATCH half-way (dropped connection or
//! HTTP 500), or answer the next matching request with a given error. Every
//! request is recorded so tests can check what was, and was not, sent.

#![allow(dead_code)] // the tests and the bench each use their own part of it

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Where the fake mounts the Storage API, as hosted Supabase does.
pub const BASE_PATH: &str = "/storage/v1";
/// The TUS chunk size Supabase documents: every chunk but the last.
pub const TUS_CHUNK: u64 = 6 * 1024 * 1024;
/// Objects larger than this are kept in the temp dir, not in memory.
const IN_MEMORY_MAX: u64 = 1024 * 1024;
/// File reads and writes go in pieces this large, so the fake is not what a
/// benchmark measures.
const IO_BUFFER: usize = 1024 * 1024;

/// A bucket and its limits.
#[derive(Clone, Default)]
pub struct BucketLimits {
    pub file_size_limit: Option<u64>,
    /// `image/*` or exact types.
    pub allowed_mime_types: Option<Vec<String>>,
}

/// How `POST /object/list-v2` answers.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum V2Listing {
    Enabled,
    /// HTTP 400 with `code: FeatureNotEnabled`.
    FeatureNotEnabled,
    /// The multitenant server's bare `{"message":"This feature is not available for your tenant"}`.
    NotAvailableMessage,
    /// A server without the route: 404.
    RouteMissing,
}

/// How a faulty TUS PATCH ends after `after_bytes` of its body arrived.
#[derive(Clone, Copy, Debug)]
pub enum PatchFault {
    /// The connection is cut: no response at all.
    DropConnection,
    /// HTTP 500, having kept what arrived.
    ServerError,
}

/// Fail PATCH number `first` (1-based, counted per upload) and the `count - 1`
/// after it.
#[derive(Clone, Copy, Debug)]
pub struct TusFault {
    pub first: usize,
    pub count: usize,
    pub after_bytes: u64,
    pub kind: PatchFault,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent (still percent-encoded).
    pub uri: String,
    /// Lowercase names; the last value of each.
    pub headers: HashMap<String, String>,
    /// The body, when it was JSON.
    pub json: Option<Value>,
    /// Body bytes the server read.
    pub body_bytes: u64,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A one-shot answer for the next request whose method matches and whose
/// path contains `path_contains`.
struct Injected {
    method: Method,
    path_contains: String,
    status: StatusCode,
    body: Value,
}

enum Data {
    Memory(Bytes),
    File(PathBuf),
}

struct Object {
    id: String,
    data: Data,
    size: u64,
    content_type: String,
    user_metadata: Option<Value>,
    created_at: SystemTime,
}

struct Bucket {
    limits: BucketLimits,
    objects: BTreeMap<String, Object>,
}

struct TusUpload {
    bucket: String,
    key: String,
    length: u64,
    offset: u64,
    content_type: String,
    user_metadata: Option<Value>,
    file: PathBuf,
    patches: usize,
}

#[derive(Default)]
struct Store {
    buckets: BTreeMap<String, Bucket>,
    uploads: HashMap<String, TusUpload>,
    signed: HashMap<String, (String, String, Instant)>,
}

struct Inner {
    api_key: String,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    store: Mutex<Store>,
    requests: Mutex<Vec<Recorded>>,
    v2: Mutex<V2Listing>,
    tus_fault: Mutex<Option<TusFault>>,
    injected: Mutex<Vec<Injected>>,
}

/// A running fake; stops when dropped.
pub struct FakeSupabase {
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSupabase {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeSupabase {
    /// Starts on 127.0.0.1:0. Keys starting with `sb_` behave like the new
    /// `sb_secret_…` keys (`apikey` only); others like legacy JWT keys
    /// (`apikey` and `Authorization: Bearer`).
    pub async fn start(api_key: &str, buckets: &[(&str, BucketLimits)]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the fake Supabase server");
        let addr = listener.local_addr().unwrap();
        let store = Store {
            buckets: buckets
                .iter()
                .map(|(name, limits)| {
                    let bucket = Bucket { limits: limits.clone(), objects: BTreeMap::new() };
                    (name.to_string(), bucket)
                })
                .collect(),
            ..Store::default()
        };
        let inner = Arc::new(Inner {
            api_key: api_key.to_string(),
            addr,
            dir: tempfile::tempdir().expect("a temp dir for the fake's objects"),
            store: Mutex::new(store),
            requests: Mutex::new(Vec::new()),
            v2: Mutex::new(V2Listing::Enabled),
            tus_fault: Mutex::new(None),
            injected: Mutex::new(Vec::new()),
        });
        let app =
            Router::new().fallback(handle).with_state(inner.clone()).into_make_service_with_connect_info::<Conn>();
        let server = tokio::spawn(async move {
            axum::serve(KillableListener(listener), app).await.expect("the fake Supabase server runs");
        });
        Self { inner, server }
    }

    /// `http://127.0.0.1:<port>`, for `allowed_hosts`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// `http://127.0.0.1:<port>/storage/v1`, for `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}{BASE_PATH}", self.origin())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.inner.requests.lock().unwrap().clear();
    }

    pub fn set_v2_listing(&self, mode: V2Listing) {
        *self.inner.v2.lock().unwrap() = mode;
    }

    pub fn set_tus_fault(&self, fault: TusFault) {
        *self.inner.tus_fault.lock().unwrap() = Some(fault);
    }

    /// Answers the next `method` request whose path contains `path_contains`
    /// with `status` and the JSON `body`.
    pub fn inject(&self, method: Method, path_contains: &str, status: u16, body: Value) {
        self.inner.injected.lock().unwrap().push(Injected {
            method,
            path_contains: path_contains.to_string(),
            status: StatusCode::from_u16(status).unwrap(),
            body,
        });
    }

    /// Stores an object directly, as another client would have.
    pub fn put(&self, bucket: &str, key: &str, content_type: &str, bytes: &[u8]) {
        let mut store = self.inner.store.lock().unwrap();
        let bucket = store.buckets.get_mut(bucket).expect("a configured bucket");
        bucket.objects.insert(
            key.to_string(),
            Object {
                id: random_id(),
                size: bytes.len() as u64,
                data: Data::Memory(Bytes::copy_from_slice(bytes)),
                content_type: content_type.to_string(),
                user_metadata: None,
                created_at: SystemTime::now(),
            },
        );
    }

    /// Removes an object behind the client's back.
    pub fn remove(&self, bucket: &str, key: &str) -> bool {
        let mut store = self.inner.store.lock().unwrap();
        store.buckets.get_mut(bucket).and_then(|b| b.objects.remove(key)).is_some()
    }

    /// The stored bytes of an object.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let store = self.inner.store.lock().unwrap();
        let object = store.buckets.get(bucket)?.objects.get(key)?;
        Some(match &object.data {
            Data::Memory(bytes) => bytes.to_vec(),
            Data::File(path) => std::fs::read(path).unwrap(),
        })
    }

    /// The user metadata stored with an object.
    pub fn user_metadata(&self, bucket: &str, key: &str) -> Option<Value> {
        let store = self.inner.store.lock().unwrap();
        store.buckets.get(bucket)?.objects.get(key)?.user_metadata.clone()
    }

    /// Keys in a bucket, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let store = self.inner.store.lock().unwrap();
        store.buckets[bucket].objects.keys().cloned().collect()
    }
}

// ---- a listener whose connections a handler can cut ----

/// Lets a handler cut its own connection: once set, reads and writes fail,
/// so the response is never sent and the socket closes.
#[derive(Clone, Debug)]
struct Conn(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, KillableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

struct KillableListener(tokio::net::TcpListener);

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = Conn;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, _)) => {
                    let killed = Arc::new(AtomicBool::new(false));
                    let conn = Conn(killed.clone());
                    return (KillableStream { stream, killed }, conn);
                }
                // Out of descriptors and the like: wait, as axum's own listener does.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Conn(Arc::new(AtomicBool::new(false))))
    }
}

struct KillableStream {
    stream: tokio::net::TcpStream,
    killed: Arc<AtomicBool>,
}

impl KillableStream {
    fn cut(&self) -> Option<std::io::Error> {
        self.killed
            .load(Ordering::SeqCst)
            .then(|| std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut by the fake on purpose"))
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.cut() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut self.stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.cut() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut self.stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.cut() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut self.stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

// ---- answers ----

/// A Storage API error: HTTP 400 with the real status in the body.
fn storage_error(status: &str, code: &str, error: &str, message: &str) -> Response {
    let body = json!({ "statusCode": status, "code": code, "error": error, "message": message });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn no_such_key() -> Response {
    storage_error("404", "NoSuchKey", "not_found", "Object not found")
}

fn no_such_bucket() -> Response {
    storage_error("404", "NoSuchBucket", "Bucket not found", "Bucket not found")
}

/// TUS routes answer with real statuses and plain-text bodies.
fn tus_error(status: StatusCode, message: &str) -> Response {
    let mut response = (status, message.to_string()).into_response();
    response.headers_mut().insert("tus-resumable", HeaderValue::from_static("1.0.0"));
    response
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_/!.*'() &$=@;:+,?-".contains(c)
}

fn mime_allowed(limits: &BucketLimits, content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    limits.allowed_mime_types.as_ref().is_none_or(|allowed| {
        allowed.iter().any(|pattern| match pattern.strip_suffix("/*") {
            Some(kind) => essence.starts_with(&format!("{kind}/")),
            None => essence == *pattern,
        })
    })
}

/// `2024-05-01T12:00:00.000Z`, as Supabase writes timestamps.
pub fn iso8601(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn object_metadata(object: &Object) -> Value {
    json!({
        "eTag": format!("\"{}\"", object.id),
        "size": object.size,
        "mimetype": object.content_type,
        "cacheControl": "no-cache",
        "lastModified": iso8601(object.created_at),
        "contentLength": object.size,
        "httpStatusCode": 200,
    })
}

// ---- dispatch ----

async fn handle(State(fake): State<Arc<Inner>>, ConnectInfo(conn): ConnectInfo<Conn>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let uri = parts.uri.to_string();
    let headers: HashMap<String, String> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let index = {
        let mut requests = fake.requests.lock().unwrap();
        requests.push(Recorded {
            method: parts.method.to_string(),
            uri: uri.clone(),
            headers,
            json: None,
            body_bytes: 0,
        });
        requests.len() - 1
    };
    let path = parts.uri.path().to_string();
    let injected = {
        let mut list = fake.injected.lock().unwrap();
        let found = list.iter().position(|i| i.method == parts.method && path.contains(&i.path_contains));
        found.map(|at| list.remove(at))
    };
    if let Some(injected) = injected {
        return (injected.status, axum::Json(injected.body)).into_response();
    }
    let Some(route) = path.strip_prefix(BASE_PATH) else {
        return (StatusCode::NOT_FOUND, "not a Supabase Storage path").into_response();
    };
    let route = percent_decode_str(route).decode_utf8_lossy().into_owned();
    let query = parts.uri.query().unwrap_or("").to_string();

    // Signed URLs are the one route that needs no key.
    if parts.method == Method::GET
        && let Some(rest) = route.strip_prefix("/object/sign/")
    {
        return fake.get_signed(rest, &query).await;
    }
    if let Some(refused) = fake.refuse_auth(&parts.headers) {
        return refused;
    }
    let method = parts.method.clone();
    if let Some(bucket) = route.strip_prefix("/object/list-v2/") {
        if method == Method::POST {
            let json = fake.read_json(index, body).await;
            return fake.list_v2(bucket, json);
        }
    } else if let Some(bucket) = route.strip_prefix("/object/list/") {
        if method == Method::POST {
            let json = fake.read_json(index, body).await;
            return fake.list_v1(bucket, json);
        }
    } else if let Some(rest) = route.strip_prefix("/object/info/") {
        if method == Method::GET {
            return fake.info(rest);
        }
    } else if let Some(rest) = route.strip_prefix("/object/sign/") {
        if method == Method::POST {
            let json = fake.read_json(index, body).await;
            return fake.sign(rest, json);
        }
    } else if let Some(rest) = route.strip_prefix("/object/") {
        let Some((bucket, key)) = rest.split_once('/') else {
            return storage_error("400", "InvalidRequest", "Bad Request", "missing object path");
        };
        let upsert = method == Method::PUT || parts.headers.get("x-upsert").is_some_and(|v| v == "true");
        return match method {
            Method::POST | Method::PUT => fake.create(index, bucket, key, &parts.headers, body, upsert).await,
            Method::GET => fake.download(bucket, key, parts.headers.get(header::RANGE)).await,
            Method::DELETE => fake.delete(bucket, key),
            _ => (StatusCode::METHOD_NOT_ALLOWED, "").into_response(),
        };
    } else if route == "/upload/resumable" {
        if method == Method::POST {
            return fake.tus_create(&parts.headers);
        }
    } else if let Some(id) = route.strip_prefix("/upload/resumable/") {
        return match method {
            Method::PATCH => fake.tus_patch(index, id, &parts.headers, body, &conn).await,
            Method::HEAD => fake.tus_head(id),
            _ => (StatusCode::METHOD_NOT_ALLOWED, "").into_response(),
        };
    }
    let message = format!("Route {method}:{path} not found");
    let body = json!({ "message": message, "error": "Not Found", "statusCode": 404 });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

impl Inner {
    /// Legacy keys are JWTs: `apikey` plus `Authorization: Bearer <key>`.
    /// `sb_…` keys go in `apikey` only; as a bearer token they fail as a JWT.
    /// Returns the refusal for a request without the right key.
    fn refuse_auth(&self, headers: &HeaderMap) -> Option<Response> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        match header("apikey") {
            None => {
                let body = json!({ "message": "No API key found in request" });
                return Some((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response());
            }
            Some(key) if key != self.api_key => {
                let body = json!({ "message": "Invalid API key" });
                return Some((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response());
            }
            Some(_) => {}
        }
        let bearer = header("authorization").map(|v| v.strip_prefix("Bearer ").unwrap_or(v));
        let refused = |message: &str| storage_error("400", "InvalidJWT", "InvalidJWT", message);
        if self.api_key.starts_with("sb_") {
            return bearer.map(|_| refused("Invalid Compact JWS"));
        }
        match bearer {
            None => Some(refused("No authorization token was found")),
            Some(token) if token != self.api_key => Some(refused("invalid signature")),
            Some(_) => None,
        }
    }

    async fn read_json(&self, index: usize, body: Body) -> Value {
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut requests = self.requests.lock().unwrap();
        requests[index].json = Some(json.clone());
        requests[index].body_bytes = bytes.len() as u64;
        json
    }

    fn record_body(&self, index: usize, bytes: u64) {
        self.requests.lock().unwrap()[index].body_bytes = bytes;
    }

    async fn create(
        &self,
        index: usize,
        bucket: &str,
        key: &str,
        headers: &HeaderMap,
        body: Body,
        upsert: bool,
    ) -> Response {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let user_metadata = match headers.get("x-metadata") {
            None => None,
            Some(value) => {
                let decoded =
                    BASE64.decode(value.as_bytes()).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
                match decoded {
                    Some(json) => Some(json),
                    None => {
                        return storage_error(
                            "400",
                            "InvalidRequest",
                            "Bad Request",
                            "x-metadata must be base64-encoded JSON",
                        );
                    }
                }
            }
        };
        let limit = {
            let store = self.store.lock().unwrap();
            let Some(b) = store.buckets.get(bucket) else {
                return no_such_bucket();
            };
            if !key.chars().all(is_key_char) || key.starts_with('/') {
                return storage_error("400", "InvalidKey", "InvalidKey", &format!("Invalid key: {key}"));
            }
            if !upsert && b.objects.contains_key(key) {
                return storage_error("409", "KeyAlreadyExists", "Duplicate", "The resource already exists");
            }
            if !mime_allowed(&b.limits, &content_type) {
                return storage_error(
                    "415",
                    "InvalidMimeType",
                    "invalid_mime_type",
                    &format!("mime type {content_type} is not supported"),
                );
            }
            b.limits.file_size_limit
        };
        let too_large = || {
            storage_error("413", "EntityTooLarge", "Payload too large", "The object exceeded the maximum allowed size")
        };
        if let (Some(size), Some(limit)) = (declared, limit)
            && size > limit
        {
            return too_large();
        }
        let (data, size) = match self.receive(body, limit).await {
            Ok(received) => received,
            Err(Received::TooLarge(n)) => {
                self.record_body(index, n);
                return too_large();
            }
            Err(Received::Broken(n)) => {
                self.record_body(index, n);
                return storage_error("400", "InvalidRequest", "Bad Request", "the body ended early");
            }
        };
        self.record_body(index, size);
        let object = Object { id: random_id(), data, size, content_type, user_metadata, created_at: SystemTime::now() };
        let id = object.id.clone();
        let mut store = self.store.lock().unwrap();
        let b = store.buckets.get_mut(bucket).expect("checked above");
        if !upsert && b.objects.contains_key(key) {
            return storage_error("409", "KeyAlreadyExists", "Duplicate", "The resource already exists");
        }
        b.objects.insert(key.to_string(), object);
        axum::Json(json!({ "Id": id, "Key": format!("{bucket}/{key}") })).into_response()
    }

    /// Streams a body into memory, spilling to the temp dir past 1 MiB.
    async fn receive(&self, body: Body, limit: Option<u64>) -> Result<(Data, u64), Received> {
        let mut stream = body.into_data_stream();
        let mut memory = Vec::new();
        let mut file: Option<(tokio::io::BufWriter<tokio::fs::File>, PathBuf)> = None;
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else {
                return Err(Received::Broken(size));
            };
            size += chunk.len() as u64;
            if limit.is_some_and(|l| size > l) {
                return Err(Received::TooLarge(size));
            }
            if file.is_none() && size > IN_MEMORY_MAX {
                let path = self.dir.path().join(random_id());
                let f = tokio::fs::File::create(&path).await.unwrap();
                let mut f = tokio::io::BufWriter::with_capacity(IO_BUFFER, f);
                f.write_all(&memory).await.unwrap();
                memory = Vec::new();
                file = Some((f, path));
            }
            match &mut file {
                Some((f, _)) => f.write_all(&chunk).await.unwrap(),
                None => memory.extend_from_slice(&chunk),
            }
        }
        Ok(match file {
            Some((mut f, path)) => {
                f.flush().await.unwrap();
                (Data::File(path), size)
            }
            None => (Data::Memory(memory.into()), size),
        })
    }

    /// GET of an object; honours `Range: bytes=FIRST-[LAST]` with 206 and
    /// `Content-Range`, and answers a range past the end with a real 416, as
    /// the storage server does.
    async fn download(&self, bucket: &str, key: &str, range: Option<&HeaderValue>) -> Response {
        let (data, content_type, size, etag) = {
            let store = self.store.lock().unwrap();
            let Some(b) = store.buckets.get(bucket) else {
                return no_such_bucket();
            };
            let Some(object) = b.objects.get(key) else {
                return no_such_key();
            };
            let data = match &object.data {
                Data::Memory(bytes) => Ok(bytes.clone()),
                Data::File(path) => Err(path.clone()),
            };
            (data, object.content_type.clone(), object.size, object.id.clone())
        };
        let span = match range.and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("bytes=")) {
            Some(spec) => {
                let (first, last) = spec.split_once('-').unwrap_or((spec, ""));
                let first: u64 = first.parse().unwrap_or(u64::MAX);
                let last = last.parse::<u64>().map_or(size.saturating_sub(1), |l| l.min(size.saturating_sub(1)));
                if first >= size || first > last {
                    let body = json!({ "statusCode": "416", "code": "InvalidRange", "error": "Range Not Satisfiable", "message": "The range is outside the object" });
                    return (StatusCode::RANGE_NOT_SATISFIABLE, axum::Json(body)).into_response();
                }
                Some((first, last))
            }
            None => None,
        };
        let (start, len) = span.map_or((0, size), |(first, last)| (first, last - first + 1));
        let body = match data {
            Ok(bytes) => Body::from(bytes.slice(start as usize..(start + len) as usize)),
            Err(path) => {
                use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
                let mut file = tokio::fs::File::open(path).await.unwrap();
                file.seek(std::io::SeekFrom::Start(start)).await.unwrap();
                Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file.take(len), IO_BUFFER))
            }
        };
        let mut response = Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, len)
            .header(header::ETAG, format!("\"{etag}\""))
            .header(header::CACHE_CONTROL, "no-cache");
        if let Some((first, last)) = span {
            response = response
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{size}"));
        }
        response.body(body).unwrap()
    }

    fn delete(&self, bucket: &str, key: &str) -> Response {
        let mut store = self.store.lock().unwrap();
        let Some(b) = store.buckets.get_mut(bucket) else {
            return no_such_bucket();
        };
        match b.objects.remove(key) {
            Some(_) => axum::Json(json!({ "message": "Successfully deleted" })).into_response(),
            None => no_such_key(),
        }
    }

    fn info(&self, rest: &str) -> Response {
        let Some((bucket, key)) = rest.split_once('/') else {
            return no_such_key();
        };
        let store = self.store.lock().unwrap();
        let Some(b) = store.buckets.get(bucket) else {
            return no_such_bucket();
        };
        let Some(object) = b.objects.get(key) else {
            return no_such_key();
        };
        let at = iso8601(object.created_at);
        axum::Json(json!({
            "id": object.id,
            "name": key,
            "version": object.id,
            "bucket_id": bucket,
            "size": object.size,
            "content_type": object.content_type,
            "cache_control": "no-cache",
            "etag": format!("\"{}\"", object.id),
            "metadata": object.user_metadata.clone().unwrap_or(json!({})),
            "last_modified": at,
            "created_at": at,
        }))
        .into_response()
    }

    /// One folder level, offset paging; folders come back with `id: null`.
    fn list_v1(&self, bucket: &str, body: Value) -> Response {
        let Some(prefix) = body.get("prefix").and_then(Value::as_str) else {
            return storage_error("400", "InvalidRequest", "Bad Request", "body must have required property 'prefix'");
        };
        let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(100) as usize;
        let offset = body.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
        let search = body.get("search").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
        let folder = prefix.trim_end_matches('/');
        let store = self.store.lock().unwrap();
        let Some(b) = store.buckets.get(bucket) else {
            return no_such_bucket();
        };
        let mut entries: BTreeMap<String, Option<&Object>> = BTreeMap::new();
        for (key, object) in &b.objects {
            let relative = if folder.is_empty() {
                key.as_str()
            } else {
                match key.strip_prefix(folder).and_then(|r| r.strip_prefix('/')) {
                    Some(r) => r,
                    None => continue,
                }
            };
            match relative.split_once('/') {
                Some((sub, _)) => {
                    entries.entry(sub.to_string()).or_insert(None);
                }
                None => {
                    entries.insert(relative.to_string(), Some(object));
                }
            }
        }
        let items: Vec<Value> = entries
            .into_iter()
            .filter(|(name, _)| name.to_ascii_lowercase().contains(&search))
            .skip(offset)
            .take(limit)
            .map(|(name, object)| match object {
                Some(o) => json!({
                    "name": name,
                    "id": o.id,
                    "updated_at": iso8601(o.created_at),
                    "created_at": iso8601(o.created_at),
                    "last_accessed_at": iso8601(o.created_at),
                    "metadata": object_metadata(o),
                }),
                None => json!({
                    "name": name, "id": null, "updated_at": null, "created_at": null,
                    "last_accessed_at": null, "metadata": null,
                }),
            })
            .collect();
        axum::Json(Value::Array(items)).into_response()
    }

    /// Flat cursor listing; the cursor is opaque (base64url of the last key).
    fn list_v2(&self, bucket: &str, body: Value) -> Response {
        match *self.v2.lock().unwrap() {
            V2Listing::Enabled => {}
            V2Listing::FeatureNotEnabled => {
                return storage_error(
                    "400",
                    "FeatureNotEnabled",
                    "FeatureNotEnabled",
                    "The feature list-v2 is not enabled for this resource",
                );
            }
            V2Listing::NotAvailableMessage => {
                let body = json!({ "message": "This feature is not available for your tenant" });
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
            V2Listing::RouteMissing => {
                let body = json!({
                    "message": format!("Route POST:{BASE_PATH}/object/list-v2/{bucket} not found"),
                    "error": "Not Found",
                    "statusCode": 404,
                });
                return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
            }
        }
        let prefix = body.get("prefix").and_then(Value::as_str).unwrap_or("");
        let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return storage_error("400", "InvalidRequest", "Bad Request", "limit must be 1 to 1000");
        }
        let after = match body.get("cursor").and_then(Value::as_str) {
            None => None,
            Some(cursor) => match URL_SAFE_NO_PAD.decode(cursor).ok().and_then(|b| String::from_utf8(b).ok()) {
                Some(key) => Some(key),
                None => {
                    return storage_error("400", "InvalidRequest", "Bad Request", "invalid cursor");
                }
            },
        };
        let store = self.store.lock().unwrap();
        let Some(b) = store.buckets.get(bucket) else {
            return no_such_bucket();
        };
        let mut selected: Vec<(&String, &Object)> = b
            .objects
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .filter(|(key, _)| after.as_ref().is_none_or(|a| key.as_str() > a.as_str()))
            .take(limit as usize + 1)
            .collect();
        let has_next = selected.len() > limit as usize;
        selected.truncate(limit as usize);
        let next_cursor = has_next.then(|| URL_SAFE_NO_PAD.encode(selected.last().unwrap().0));
        let objects: Vec<Value> = selected
            .into_iter()
            .map(|(key, o)| {
                json!({
                    "id": o.id,
                    "key": key,
                    "name": key,
                    "updated_at": iso8601(o.created_at),
                    "created_at": iso8601(o.created_at),
                    "last_accessed_at": iso8601(o.created_at),
                    "metadata": object_metadata(o),
                })
            })
            .collect();
        let mut answer = json!({ "hasNext": has_next, "folders": [], "objects": objects });
        if let Some(cursor) = next_cursor {
            answer["nextCursor"] = json!(cursor);
        }
        axum::Json(answer).into_response()
    }

    fn sign(&self, rest: &str, body: Value) -> Response {
        let Some((bucket, key)) = rest.split_once('/') else {
            return no_such_key();
        };
        let Some(expires_in) = body.get("expiresIn").and_then(Value::as_u64).filter(|s| *s >= 1) else {
            return storage_error("400", "InvalidRequest", "Bad Request", "expiresIn must be >= 1");
        };
        let mut store = self.store.lock().unwrap();
        let exists = store.buckets.get(bucket).is_some_and(|b| b.objects.contains_key(key));
        if !exists {
            return no_such_key();
        }
        let token = random_id();
        let expires = Instant::now() + Duration::from_secs(expires_in);
        store.signed.insert(token.clone(), (bucket.to_string(), key.to_string(), expires));
        // Relative and unencoded, as the real server answers.
        let url = format!("/object/sign/{bucket}/{key}?token={token}");
        axum::Json(json!({ "signedURL": url })).into_response()
    }

    async fn get_signed(&self, rest: &str, query: &str) -> Response {
        let token = query.split('&').find_map(|pair| pair.strip_prefix("token=")).unwrap_or("");
        let signed = {
            let store = self.store.lock().unwrap();
            store.signed.get(token).cloned()
        };
        match signed {
            Some((bucket, key, expires)) if rest == format!("{bucket}/{key}") => {
                if Instant::now() > expires {
                    return storage_error("400", "ExpiredToken", "ExpiredToken", "The provided token has expired.");
                }
                self.download(&bucket, &key, None).await
            }
            _ => storage_error("400", "InvalidSignature", "InvalidSignature", "Invalid signature"),
        }
    }

    // ---- TUS 1.0.0 ----

    fn tus_create(&self, headers: &HeaderMap) -> Response {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if header("tus-resumable") != Some("1.0.0") {
            return tus_error(StatusCode::PRECONDITION_FAILED, "Unsupported version");
        }
        let Some(length) = header("upload-length").and_then(|v| v.parse::<u64>().ok()) else {
            return tus_error(StatusCode::BAD_REQUEST, "Upload-Length or Upload-Defer-Length header required");
        };
        let mut metadata = HashMap::new();
        for pair in header("upload-metadata").unwrap_or("").split(',') {
            let (name, value) = pair.trim().split_once(' ').unwrap_or((pair.trim(), ""));
            let Ok(value) = BASE64.decode(value) else {
                return tus_error(StatusCode::BAD_REQUEST, "Upload-Metadata is invalid");
            };
            metadata.insert(name.to_string(), String::from_utf8_lossy(&value).into_owned());
        }
        let (Some(bucket), Some(key)) = (metadata.get("bucketName"), metadata.get("objectName")) else {
            return tus_error(StatusCode::BAD_REQUEST, "Metadata header is required");
        };
        let content_type = metadata.get("contentType").cloned().unwrap_or_else(|| "application/octet-stream".into());
        let upsert = header("x-upsert") == Some("true");
        let user_metadata = match metadata.get("metadata") {
            Some(text) => match serde_json::from_str(text) {
                Ok(json) => Some(json),
                Err(_) => return tus_error(StatusCode::BAD_REQUEST, "metadata must be JSON"),
            },
            None => None,
        };
        let mut store = self.store.lock().unwrap();
        let Some(b) = store.buckets.get(bucket) else {
            return tus_error(StatusCode::NOT_FOUND, "Bucket not found");
        };
        if !key.chars().all(is_key_char) {
            return tus_error(StatusCode::BAD_REQUEST, &format!("Invalid key: {key}"));
        }
        if !upsert && b.objects.contains_key(key) {
            return tus_error(StatusCode::CONFLICT, "The resource already exists");
        }
        if b.limits.file_size_limit.is_some_and(|limit| length > limit) {
            return tus_error(StatusCode::PAYLOAD_TOO_LARGE, "The object exceeded the maximum allowed size");
        }
        if !mime_allowed(&b.limits, &content_type) {
            return tus_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("mime type {content_type} is not supported"),
            );
        }
        // Like the real server: an opaque, base64url id naming bucket, key and version.
        let id = URL_SAFE_NO_PAD.encode(format!("{bucket}/{key}/{}", random_id()));
        let file = self.dir.path().join(format!("tus-{}", random_id()));
        std::fs::File::create(&file).unwrap();
        store.uploads.insert(
            id.clone(),
            TusUpload {
                bucket: bucket.clone(),
                key: key.clone(),
                length,
                offset: 0,
                content_type,
                user_metadata,
                file,
                patches: 0,
            },
        );
        let location = format!("http://{}{BASE_PATH}/upload/resumable/{id}", self.addr);
        Response::builder()
            .status(StatusCode::CREATED)
            .header(header::LOCATION, location)
            .header("tus-resumable", "1.0.0")
            .body(Body::empty())
            .unwrap()
    }

    fn tus_head(&self, id: &str) -> Response {
        let store = self.store.lock().unwrap();
        let Some(upload) = store.uploads.get(id) else {
            return tus_error(StatusCode::NOT_FOUND, "The file for this url was not found");
        };
        Response::builder()
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", upload.offset)
            .header("upload-length", upload.length)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::empty())
            .unwrap()
    }

    async fn tus_patch(&self, index: usize, id: &str, headers: &HeaderMap, body: Body, conn: &Conn) -> Response {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if header("tus-resumable") != Some("1.0.0") {
            return tus_error(StatusCode::PRECONDITION_FAILED, "Unsupported version");
        }
        if header("content-type") != Some("application/offset+octet-stream") {
            return tus_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Invalid Content-Type");
        }
        // Like the real server, every PATCH is checked for permission to
        // write the key: an existing object needs `x-upsert: true` each time.
        let upsert = header("x-upsert") == Some("true");
        let claimed = header("upload-offset").and_then(|v| v.parse::<u64>().ok());
        let declared = header("content-length").and_then(|v| v.parse::<u64>().ok());
        let (file, expected, patch) = {
            let mut store = self.store.lock().unwrap();
            let Some(upload) = store.uploads.get_mut(id) else {
                return tus_error(StatusCode::NOT_FOUND, "The file for this url was not found");
            };
            if claimed != Some(upload.offset) {
                return tus_error(StatusCode::CONFLICT, "Upload-Offset conflict");
            }
            let (bucket, key) = (upload.bucket.clone(), upload.key.clone());
            if !upsert && store.buckets[&bucket].objects.contains_key(&key) {
                return tus_error(StatusCode::CONFLICT, "The resource already exists");
            }
            let upload = store.uploads.get_mut(id).expect("found above");
            upload.patches += 1;
            let expected = TUS_CHUNK.min(upload.length - upload.offset);
            (upload.file.clone(), expected, upload.patches)
        };
        if declared != Some(expected) {
            let message = format!(
                "chunk of {declared:?} bytes at offset {claimed:?}: every chunk but the last must be exactly {TUS_CHUNK} bytes, this one {expected}"
            );
            // Read it anyway, so the client gets the answer instead of a reset.
            let _ = axum::body::to_bytes(body, usize::MAX).await;
            return tus_error(StatusCode::BAD_REQUEST, &message);
        }
        let fault = self.tus_fault.lock().unwrap().filter(|f| patch >= f.first && patch < f.first + f.count);
        let keep = fault.map_or(expected, |f| f.after_bytes.min(expected));
        let out = tokio::fs::OpenOptions::new().append(true).open(&file).await.unwrap();
        let mut out = tokio::io::BufWriter::with_capacity(IO_BUFFER, out);
        let mut stream = body.into_data_stream();
        let mut received = 0u64;
        let mut kept = 0u64;
        let mut broken = false;
        while kept < keep || (fault.is_none() && received < expected) {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    received += chunk.len() as u64;
                    let take = (keep - kept).min(chunk.len() as u64) as usize;
                    out.write_all(&chunk[..take]).await.unwrap();
                    kept += take as u64;
                }
                Some(Err(_)) | None => {
                    broken = true;
                    break;
                }
            }
        }
        out.flush().await.unwrap();
        let offset = {
            let mut store = self.store.lock().unwrap();
            let upload = store.uploads.get_mut(id).expect("uploads are never removed");
            upload.offset += kept;
            upload.offset
        };
        match fault.map(|f| f.kind) {
            Some(PatchFault::DropConnection) => {
                self.record_body(index, received);
                conn.0.store(true, Ordering::SeqCst);
                // Never delivered: the cut connection fails the write. Were it
                // delivered, this status would fail the upload for good, so a
                // test that resumes proves the client saw the connection drop.
                return tus_error(StatusCode::BAD_REQUEST, "the connection was to be cut");
            }
            Some(PatchFault::ServerError) => {
                // Drain the rest so the 500 reaches the client intact.
                while let Some(Ok(chunk)) = stream.next().await {
                    received += chunk.len() as u64;
                }
                self.record_body(index, received);
                return tus_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
            None => self.record_body(index, received),
        }
        if broken {
            return tus_error(StatusCode::BAD_REQUEST, "the chunk ended early");
        }
        let mut store = self.store.lock().unwrap();
        let upload = &store.uploads[id];
        if offset == upload.length {
            let (bucket, key) = (upload.bucket.clone(), upload.key.clone());
            let object = Object {
                id: random_id(),
                data: Data::File(upload.file.clone()),
                size: upload.length,
                content_type: upload.content_type.clone(),
                user_metadata: upload.user_metadata.clone(),
                created_at: SystemTime::now(),
            };
            let b = store.buckets.get_mut(&bucket).expect("checked at creation");
            if !upsert && b.objects.contains_key(&key) {
                return tus_error(StatusCode::CONFLICT, "The resource already exists");
            }
            b.objects.insert(key, object);
        }
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset)
            .body(Body::empty())
            .unwrap()
    }
}

enum Received {
    TooLarge(u64),
    Broken(u64),
}
