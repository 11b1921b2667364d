//! A fake Kimi (Moonshot AI) Files API on 127.0.0.1, written from the
//! documented behaviour (docs/reference section 3): `POST /v1/files`
//! (multipart `file` + `purpose`), `GET /v1/files` (everything, one page),
//! `GET /v1/files/{id}`, `GET /v1/files/{id}/content` (extracted text, as
//! JSON or plain text), `DELETE /v1/files/{id}`; Bearer auth; error bodies
//! `{"error":{"type","message"}}`; the 100 MB and file-count limits.
//!
//! Tests script faults ("the next 2 POSTs to /v1/files answer 500") and read
//! back every request it received, with its arrival time, to assert what was
//! sent, what was not, and how long the host waited between attempts.

#![allow(dead_code)] // each test uses its own part of the fake

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Kimi's per-file limit, 100 MB.
const MAX_FILE_BYTES: usize = 100_000_000;
const PURPOSES: [&str; 4] = ["file-extract", "image", "video", "batch"];

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub at: Instant,
    /// For uploads: the multipart fields.
    pub purpose: Option<String>,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<usize>,
}

/// A file the fake holds.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub id: String,
    pub filename: String,
    pub purpose: String,
    pub mime: String,
    pub content: Vec<u8>,
    pub created_at: u64,
}

/// What a scripted request gets instead of the normal answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An error answer: HTTP status, `error.type`, `error.message`, and a
    /// `Retry-After` header value when given.
    Error { status: u16, error_type: String, message: String, retry_after: Option<String> },
    /// The upload is stored but answered HTTP 200 with `status: "error"` and
    /// these `status_details`, as client code has seen Kimi do.
    ProcessingError(String),
}

impl Fault {
    pub fn error(status: u16, error_type: &str, message: &str) -> Self {
        Fault::Error { status, error_type: error_type.into(), message: message.into(), retry_after: None }
    }

    pub fn with_retry_after(self, value: &str) -> Self {
        match self {
            Fault::Error { status, error_type, message, .. } => {
                Fault::Error { status, error_type, message, retry_after: Some(value.into()) }
            }
            other => other,
        }
    }
}

/// How `/content` answers: the JSON seen in client code, or the plain text
/// the OpenAPI declares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ContentShape {
    Json,
    PlainText,
}

struct Script {
    method: Method,
    path: String,
    remaining: usize,
    fault: Fault,
}

struct Inner {
    key: String,
    files: Vec<StoredFile>,
    seen: Vec<Seen>,
    scripts: Vec<Script>,
    shape: ContentShape,
    max_files: usize,
    next_id: u64,
}

pub struct FakeKimi {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeKimi {
    /// Starts the fake on an ephemeral port of 127.0.0.1; it accepts `key` only.
    pub async fn start(key: &str) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            key: key.into(),
            files: Vec::new(),
            seen: Vec::new(),
            scripts: Vec::new(),
            shape: ContentShape::Json,
            max_files: 1000,
            next_id: 0,
        }));
        let app = Router::new()
            .fallback(handle)
            // The fake enforces Kimi's own 100 MB limit, with Kimi's answer.
            .layer(DefaultBodyLimit::disable())
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the fake Kimi");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake Kimi serves") });
        Self { addr, inner }
    }

    /// `http://127.0.0.1:PORT`, for `allowed_hosts`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API root, for the adapter's `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.origin())
    }

    /// The next `times` requests `method path` get `fault`.
    pub fn script(&self, method: Method, path: &str, times: usize, fault: Fault) {
        let script = Script { method, path: path.into(), remaining: times, fault };
        self.inner.lock().unwrap().scripts.push(script);
    }

    pub fn set_content_shape(&self, shape: ContentShape) {
        self.inner.lock().unwrap().shape = shape;
    }

    /// Lowers the per-account file count (Kimi's is 1,000).
    pub fn set_max_files(&self, max: usize) {
        self.inner.lock().unwrap().max_files = max;
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// The requests `method path` received, in arrival order.
    pub fn requests_to(&self, method: Method, path: &str) -> Vec<Seen> {
        self.requests().into_iter().filter(|s| s.method == method && s.path == path).collect()
    }

    pub fn files(&self) -> Vec<StoredFile> {
        self.inner.lock().unwrap().files.clone()
    }

    /// Deletes a file behind the client's back.
    pub fn remove(&self, id: &str) {
        self.inner.lock().unwrap().files.retain(|f| f.id != id);
    }
}

/// The text the fake "extracts": the document's text, trimmed. Enough to
/// tell extracted text from the original bytes, and to carry escapes and
/// non-ASCII through the JSON shape.
pub fn extracted_text(content: &[u8]) -> String {
    String::from_utf8_lossy(content).trim().to_string()
}

fn error(status: u16, error_type: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("a valid status");
    (status, axum::Json(json!({ "error": { "type": error_type, "message": message } }))).into_response()
}

fn file_object(file: &StoredFile, status: &str, details: &str) -> Value {
    json!({
        "id": file.id,
        "object": "file",
        "bytes": file.content.len(),
        "created_at": file.created_at,
        "filename": file.filename,
        "purpose": file.purpose,
        "status": status,
        "status_details": details,
    })
}

struct Upload {
    purpose: Option<String>,
    file: Option<(Option<String>, Option<String>, Vec<u8>)>,
}

async fn read_upload(request: Request) -> Result<Upload, String> {
    let mut multipart = Multipart::from_request(request, &()).await.map_err(|e| e.body_text())?;
    let mut upload = Upload { purpose: None, file: None };
    while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
        match field.name() {
            Some("purpose") => upload.purpose = Some(field.text().await.map_err(|e| e.body_text())?),
            Some("file") => {
                let filename = field.file_name().map(str::to_string);
                let content_type = field.content_type().map(str::to_string);
                let bytes = field.bytes().await.map_err(|e| e.body_text())?;
                upload.file = Some((filename, content_type, bytes.to_vec()));
            }
            _ => {}
        }
    }
    Ok(upload)
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let at = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let auth = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    // The body is read in full before any answer, as a real server does: an
    // early answer would reset the connection under a streaming client.
    let upload = match (&method, path.as_str()) {
        (&Method::POST, "/v1/files") => Some(read_upload(request).await),
        _ => None,
    };
    let mut state = inner.lock().unwrap();
    let file_fields = upload.as_ref().and_then(|u| u.as_ref().ok()).and_then(|u| u.file.as_ref());
    state.seen.push(Seen {
        method: method.clone(),
        path: path.clone(),
        at,
        purpose: upload.as_ref().and_then(|u| u.as_ref().ok()).and_then(|u| u.purpose.clone()),
        filename: file_fields.and_then(|f| f.0.clone()),
        content_type: file_fields.and_then(|f| f.1.clone()),
        size: file_fields.map(|f| f.2.len()),
    });

    let key = auth.as_deref().and_then(|v| v.strip_prefix("Bearer "));
    if key != Some(state.key.as_str()) {
        return error(401, "invalid_authentication_error", "Invalid Authentication");
    }

    let script = state.scripts.iter_mut().find(|s| s.remaining > 0 && s.method == method && s.path == path);
    let fault = script.map(|s| {
        s.remaining -= 1;
        s.fault.clone()
    });
    let processing_error = match fault {
        Some(Fault::Error { status, error_type, message, retry_after }) => {
            let mut response = error(status, &error_type, &message);
            if let Some(value) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&value).unwrap());
            }
            return response;
        }
        Some(Fault::ProcessingError(details)) => Some(details),
        None => None,
    };

    let segments: Vec<&str> = match path.strip_prefix("/v1/") {
        Some(rest) => rest.split('/').collect(),
        None => return error(404, "resource_not_found_error", &format!("no route {path}")),
    };
    match (method, segments.as_slice()) {
        (Method::POST, ["files"]) => match upload.expect("read above") {
            Ok(upload) => create(&mut state, upload, processing_error),
            Err(e) => error(400, "invalid_request_error", &format!("bad multipart body: {e}")),
        },
        (Method::GET, ["files"]) => {
            // Newest first: the adapter must not rely on the server's order.
            let data: Vec<Value> = state.files.iter().rev().map(|f| file_object(f, "ok", "")).collect();
            axum::Json(json!({ "object": "list", "data": data })).into_response()
        }
        (Method::GET, ["files", id]) => match state.files.iter().find(|f| f.id == *id) {
            Some(file) => axum::Json(file_object(file, "ok", "")).into_response(),
            None => not_found(id),
        },
        (Method::GET, ["files", id, "content"]) => match state.files.iter().find(|f| f.id == *id) {
            Some(file) => {
                let text = extracted_text(&file.content);
                match state.shape {
                    ContentShape::Json => axum::Json(json!({
                        "content": text,
                        "file_type": file.mime,
                        "filename": file.filename,
                        "title": "",
                        "type": "file",
                    }))
                    .into_response(),
                    ContentShape::PlainText => {
                        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
                    }
                }
            }
            None => not_found(id),
        },
        (Method::DELETE, ["files", id]) => {
            let before = state.files.len();
            state.files.retain(|f| f.id != *id);
            match state.files.len() < before {
                true => axum::Json(json!({ "id": id, "object": "file", "deleted": true })).into_response(),
                false => not_found(id),
            }
        }
        _ => error(404, "resource_not_found_error", &format!("no route {path}")),
    }
}

fn not_found(id: &str) -> Response {
    error(404, "resource_not_found_error", &format!("No such file: {id}"))
}

fn create(state: &mut Inner, upload: Upload, processing_error: Option<String>) -> Response {
    let Some((filename, content_type, content)) = upload.file else {
        return error(400, "invalid_request_error", "Missing file, please upload a file");
    };
    let purpose = upload.purpose.unwrap_or_default();
    if !PURPOSES.contains(&purpose.as_str()) {
        return error(400, "invalid_request_error", &format!("Invalid purpose: {purpose}"));
    }
    if content.is_empty() {
        return error(400, "invalid_request_error", "File size is zero, please confirm and re-upload the file");
    }
    if content.len() > MAX_FILE_BYTES {
        return error(
            400,
            "invalid_request_error",
            "File size is too large, max file size is 100MB, please confirm and re-upload the file",
        );
    }
    if state.files.len() >= state.max_files {
        let message = format!("You have exceeded the max file count {}, please delete some files", state.max_files);
        return error(400, "invalid_request_error", &message);
    }
    state.next_id += 1;
    let file = StoredFile {
        // Kimi ids are 20 lowercase letters and digits, no fixed prefix.
        id: format!("cv{:018x}", state.next_id * 0x9e37_79b9),
        filename: filename.unwrap_or_else(|| "upload".into()),
        purpose,
        mime: content_type.unwrap_or_else(|| "application/octet-stream".into()),
        content,
        created_at: SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
    };
    let body = match &processing_error {
        Some(details) => file_object(&file, "error", details),
        None => file_object(&file, "ok", ""),
    };
    state.files.push(file);
    axum::Json(body).into_response()
}

/// The waits between consecutive requests, for retry assertions.
pub fn gaps(seen: &[Seen]) -> Vec<Duration> {
    seen.windows(2).map(|w| w[1].at.duration_since(w[0].at)).collect()
}
