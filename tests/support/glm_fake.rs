//! A fake GLM Files API (Zhipu BigModel reading of the reference), for tests.
//!
//! Serves `POST/GET /files`, `GET /files/{id}/content` and
//! `DELETE /files/{id}` under `/api/paas/v4` on 127.0.0.1, with GLM's shapes:
//! Bearer auth with the documented 401 body, `{"error":{"code","message"}}`
//! errors, per-purpose formats, sizes and file counts, `after`/`limit`
//! paging newest first, and content only for `batch` and `file-extract`.
//! Tests script faults ("the next 2 POST /files answer 500") and read back
//! every request it saw, with its time and purpose.
//!
//! It runs on a thread and runtime of its own, so it serves tests that block
//! (running the `wharf` binary) as well as async ones.

#![allow(dead_code)] // each test uses its own part of the fake

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The API key the fake accepts.
pub const KEY: &str = "glm-test-key.0123456789abcdef";

/// Where the API lives on the fake, as on open.bigmodel.cn.
pub const BASE_PATH: &str = "/api/paas/v4";

const MIB: usize = 1 << 20;

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Relative to `BASE_PATH`: `/files`, `/files/{id}/content`.
    pub path: String,
    pub query: HashMap<String, String>,
    /// From the query (list) or the form (upload).
    pub purpose: Option<String>,
    pub at: Instant,
    /// What the fake answered.
    pub status: u16,
}

/// A scripted answer: a GLM error, or any JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

impl Reply {
    pub fn error(status: u16, code: Option<&str>, message: &str) -> Self {
        Self { status, body: error_body(code, message), retry_after: None }
    }

    pub fn json(status: u16, body: Value) -> Self {
        Self { status, body, retry_after: None }
    }

    pub fn retry_after(mut self, value: &str) -> Self {
        self.retry_after = Some(value.to_string());
        self
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).expect("a valid status");
        let mut response = (status, axum::Json(self.body)).into_response();
        if let Some(value) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value.parse().expect("a header value"));
        }
        response
    }
}

#[derive(Debug, Clone)]
pub struct StoredFile {
    pub id: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub purpose: String,
    pub bytes: Bytes,
    pub created_at: u64,
}

struct Fault {
    method: Method,
    path: String,
    remaining: usize,
    reply: Reply,
}

/// What each purpose accepts, per BigModel's table.
struct Limits {
    formats: &'static [&'static str],
    max_size: usize,
    max_image_size: usize,
    max_files: usize,
}

fn limits(purpose: &str) -> Option<Limits> {
    Some(match purpose {
        "batch" => Limits { formats: &["jsonl"], max_size: 100 * MIB, max_image_size: 100 * MIB, max_files: 1000 },
        "file-extract" => Limits {
            formats: &["pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "png", "jpg", "jpeg", "csv"],
            max_size: 50 * MIB,
            max_image_size: 5 * MIB,
            max_files: 100,
        },
        "code-interpreter" | "agent" => Limits {
            formats: &["pdf", "doc", "docx", "xls", "xlsx", "txt", "png", "jpg", "jpeg", "csv"],
            max_size: 20 * MIB,
            max_image_size: 5 * MIB,
            max_files: if purpose == "agent" { 1000 } else { 100 },
        },
        _ => return None,
    })
}

struct Inner {
    files: Vec<StoredFile>,
    seen: Vec<Seen>,
    faults: Vec<Fault>,
    next_id: u64,
    content_purposes: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeGlm {
    addr: SocketAddr,
    inner: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn error_body(code: Option<&str>, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message } })
}

fn error(status: u16, code: Option<&str>, message: &str) -> Response {
    Reply::error(status, code, message).into_response()
}

/// GLM's code for a bad parameter.
fn bad_parameter(message: &str) -> Response {
    error(400, Some("1214"), message)
}

fn file_json(file: &StoredFile) -> Value {
    json!({
        "id": file.id,
        "object": "file",
        "bytes": file.bytes.len(),
        "created_at": file.created_at,
        "filename": file.filename,
        "purpose": file.purpose,
    })
}

impl FakeGlm {
    pub fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            files: Vec::new(),
            seen: Vec::new(),
            faults: Vec::new(),
            next_id: 1,
            content_purposes: vec!["batch".into(), "file-extract".into()],
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, addr) = std::sync::mpsc::channel();
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding 127.0.0.1:0");
                ready.send(listener.local_addr().expect("a local address")).expect("the test waits");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serving");
            });
        });
        let addr = addr.recv().expect("the fake GLM server started");
        Self { addr, inner, stop: Some(stop), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT`, for `allowed_hosts`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API root, for the adapter's `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}{BASE_PATH}", self.origin())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("the fake's state")
    }

    /// The next `times` requests of `method` to `path` (relative to the API
    /// root) answer `reply` instead.
    pub fn fail(&self, method: &str, path: &str, times: usize, reply: Reply) {
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        self.lock().faults.push(Fault { method, path: path.to_string(), remaining: times, reply });
    }

    /// Which purposes `/content` serves (default: batch and file-extract).
    pub fn serve_content_for(&self, purposes: &[&str]) {
        self.lock().content_purposes = purposes.iter().map(|p| p.to_string()).collect();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// The requests of `method` to `path`.
    pub fn requests(&self, method: &str, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.method == method && s.path == path).collect()
    }

    /// Stores a file as if it had been uploaded by someone else.
    pub fn seed(&self, purpose: &str, filename: &str, bytes: &[u8]) -> String {
        let mut inner = self.lock();
        inner.store(purpose, filename, None, Bytes::copy_from_slice(bytes))
    }

    pub fn file(&self, id: &str) -> Option<StoredFile> {
        self.lock().files.iter().find(|f| f.id == id).cloned()
    }

    pub fn files(&self) -> Vec<StoredFile> {
        self.lock().files.clone()
    }

    /// Drops a file behind the client's back, as an expiry does.
    pub fn expire(&self, id: &str) {
        self.lock().files.retain(|f| f.id != id);
    }
}

impl Drop for FakeGlm {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An upload form as received.
#[derive(Default)]
struct Form {
    purpose: Option<String>,
    file: Option<(Option<String>, Option<String>, Bytes)>,
}

async fn read_form(headers: &HeaderMap, body: Body) -> Result<Form, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or("the upload is not multipart/form-data")?;
    let boundary = multer::parse_boundary(content_type).map_err(|e| e.to_string())?;
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
        match field.name() {
            Some("purpose") => form.purpose = Some(field.text().await.map_err(|e| e.to_string())?),
            Some("file") => {
                let filename = field.file_name().map(str::to_string);
                let content_type = field.content_type().map(ToString::to_string);
                let bytes = field.bytes().await.map_err(|e| e.to_string())?;
                form.file = Some((filename, content_type, bytes));
            }
            _ => {}
        }
    }
    Ok(form)
}

async fn handle(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let at = Instant::now();
    let path = uri.path().strip_prefix(BASE_PATH).unwrap_or(uri.path()).to_string();
    let form = match method == Method::POST && path == "/files" {
        true => Some(read_form(&headers, body).await),
        false => None,
    };
    let purpose = query.get("purpose").cloned().or_else(|| match &form {
        Some(Ok(form)) => form.purpose.clone(),
        _ => None,
    });
    let mut inner = inner.lock().expect("the fake's state");
    let response = inner.respond(&method, &path, &query, &headers, form);
    let status = response.status().as_u16();
    inner.seen.push(Seen { method: method.to_string(), path, query, purpose, at, status });
    response
}

impl Inner {
    fn store(&mut self, purpose: &str, filename: &str, content_type: Option<String>, bytes: Bytes) -> String {
        let id = format!("1722{:06}-glmfile{:04}", self.next_id, self.next_id);
        self.next_id += 1;
        let file = StoredFile {
            id: id.clone(),
            filename: filename.to_string(),
            content_type,
            purpose: purpose.to_string(),
            bytes,
            created_at: now(),
        };
        self.files.push(file);
        id
    }

    fn respond(
        &mut self,
        method: &Method,
        path: &str,
        query: &HashMap<String, String>,
        headers: &HeaderMap,
        form: Option<Result<Form, String>>,
    ) -> Response {
        match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            None => return error(401, Some("1001"), "Header中未收到Authorization参数，无法进行身份验证。"),
            Some(value) if value != format!("Bearer {KEY}") => {
                return error(401, Some("1002"), "Authorization Token非法，请确认Authorization Token正确传递。");
            }
            Some(_) => {}
        }
        if let Some(fault) = self.faults.iter_mut().find(|f| f.remaining > 0 && f.method == method && f.path == path) {
            fault.remaining -= 1;
            return fault.reply.clone().into_response();
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method.as_str(), segments.as_slice()) {
            ("POST", ["files"]) => self.upload(form.expect("read for POST /files")),
            ("GET", ["files"]) => self.list(query),
            ("GET", ["files", id, "content"]) => self.content(id),
            ("DELETE", ["files", id]) => self.delete(id),
            _ => error(404, None, "Not Found"),
        }
    }

    fn upload(&mut self, form: Result<Form, String>) -> Response {
        let form = match form {
            Ok(form) => form,
            Err(e) => return bad_parameter(&format!("bad multipart body: {e}")),
        };
        let Some(purpose) = form.purpose else {
            return bad_parameter("purpose is required");
        };
        let Some(limits) = limits(&purpose) else {
            return bad_parameter(&format!("purpose {purpose} is not supported"));
        };
        let Some((Some(filename), content_type, bytes)) = form.file else {
            return bad_parameter("file (with a filename) is required");
        };
        if bytes.len() > 100 * MIB {
            return error(435, Some("1214"), "File size exceeds 100MB");
        }
        let extension = filename.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        if !limits.formats.contains(&extension.as_str()) {
            return bad_parameter(&format!("file format {extension} is not supported for purpose {purpose}"));
        }
        let image = ["png", "jpg", "jpeg"].contains(&extension.as_str());
        let max = if image { limits.max_image_size } else { limits.max_size };
        if bytes.len() > max {
            return bad_parameter(&format!("file exceeds {} MB for purpose {purpose}", max / MIB));
        }
        if self.files.iter().filter(|f| f.purpose == purpose).count() >= limits.max_files {
            return bad_parameter(&format!("file count for purpose {purpose} exceeds {}", limits.max_files));
        }
        let id = self.store(&purpose, &filename, content_type, bytes);
        let file = self.files.iter().find(|f| f.id == id).expect("just stored");
        axum::Json(file_json(file)).into_response()
    }

    fn list(&self, query: &HashMap<String, String>) -> Response {
        let Some(purpose) = query.get("purpose") else {
            return bad_parameter("purpose is required");
        };
        if limits(purpose).is_none() {
            return bad_parameter(&format!("purpose {purpose} is not supported"));
        }
        let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
            None => 20,
            Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
            Some(_) => return bad_parameter("limit must be between 1 and 100"),
        };
        // Newest first.
        let files: Vec<&StoredFile> = self.files.iter().rev().filter(|f| &f.purpose == purpose).collect();
        let start = match query.get("after") {
            None => 0,
            Some(after) => match files.iter().position(|f| &f.id == after) {
                Some(i) => i + 1,
                None => return bad_parameter(&format!("after: no file {after}")),
            },
        };
        let page: Vec<Value> = files.iter().skip(start).take(limit).map(|f| file_json(f)).collect();
        let has_more = files.len() > start + page.len();
        axum::Json(json!({ "object": "list", "data": page, "has_more": has_more })).into_response()
    }

    fn content(&self, id: &str) -> Response {
        let Some(file) = self.files.iter().find(|f| f.id == id) else {
            return error(404, Some("1214"), &format!("file {id} does not exist"));
        };
        if !self.content_purposes.contains(&file.purpose) {
            return bad_parameter(&format!("files with purpose {} have no retrievable content", file.purpose));
        }
        ([(header::CONTENT_TYPE, "application/octet-stream")], file.bytes.clone()).into_response()
    }

    fn delete(&mut self, id: &str) -> Response {
        let before = self.files.len();
        self.files.retain(|f| f.id != id);
        if self.files.len() == before {
            return error(404, Some("1214"), &format!("file {id} does not exist"));
        }
        axum::Json(json!({ "id": id, "object": "file", "deleted": true })).into_response()
    }
}
