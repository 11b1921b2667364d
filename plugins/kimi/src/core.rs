//! The operations, as requests to Kimi's OpenAI-style Files API:
//! `POST /files`, `GET /files`, `GET /files/{id}`, `GET /files/{id}/content`
//! and `DELETE /files/{id}`.
//!
//! Kimi keeps files to use them as model input: it never gives the uploaded
//! bytes back, only the text it extracted from them. Wharf's host keeps the
//! originals in its cache provider; this adapter serves the derived text.

use serde::Deserialize;
use wharf_adapter_sdk::http::{self, FormPart, PartContent, Request, RequestBody, Response};
use wharf_adapter_sdk::{
    Body, ContentKind, DownloadResult, ErrorKind, ObjectInfo, Page, ProviderError, UploadRequest, log,
};

use crate::config::CONFIG;
use crate::error::from_response;

/// Every purpose some version of Kimi's docs lists. They disagree (the error
/// table knows `file-extract` only; the English enum adds `image` and
/// `video`; the Chinese enum and the batch guide add `batch`), so all are
/// accepted here and the server has the last word.
pub const PURPOSES: [&str; 4] = ["file-extract", "image", "video", "batch"];

/// Kimi's "100 MB" per file, read as 10^8 bytes, the smaller of the two
/// readings: refusing a file of 100-104.9 MB up front costs less than
/// sending 100 MB only to be told it is too large. The server's own
/// too-large answer is still classified if it is stricter.
pub const MAX_FILE_BYTES: u64 = 100_000_000;

/// The most extracted text read into the adapter. It is model context (the
/// largest Kimi models take 256K tokens, about 1 MB of text), so this is far
/// above any real answer while three copies of it still fit in the default
/// 64 MiB adapter memory: the response, the parsed text, the returned body.
const MAX_EXTRACTED_BYTES: u64 = 16 << 20;

/// Filled in by the host from the provider's `api_key` secret.
const AUTHORIZATION: &str = "Bearer {{secret:api_key}}";

pub fn known_purpose(purpose: &str) -> bool {
    PURPOSES.contains(&purpose)
}

/// Kimi's file object, as upload, list and retrieve return it.
#[derive(Deserialize)]
struct FileObject {
    id: String,
    bytes: Option<u64>,
    created_at: Option<u64>,
    filename: Option<String>,
    purpose: Option<String>,
    status: Option<String>,
    /// Why processing failed; a string in samples, any JSON accepted.
    status_details: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct FileList {
    #[serde(default)]
    data: Vec<FileObject>,
}

#[derive(Deserialize)]
struct Deleted {
    deleted: Option<bool>,
}

/// The JSON shape of `/content` seen in practice (the OpenAPI says plain text).
#[derive(Deserialize)]
struct Extracted {
    content: String,
}

fn info(file: FileObject, mime: Option<String>) -> ObjectInfo {
    ObjectInfo {
        remote_id: file.id,
        name: file.filename,
        size: file.bytes,
        // Kimi exposes no checksum.
        sha256: None,
        mime,
        purpose: file.purpose,
        created_at: file.created_at,
        // Kimi documents no expiry.
        expires_at: None,
    }
}

/// `base_url` + `path`.
fn url(path: &str) -> Result<String, ProviderError> {
    Ok(format!("{}{path}", CONFIG.get()?.base_url))
}

/// The URL of one file (plus `suffix`), with the id percent-encoded: ids come
/// from the catalog and must not be able to reshape the path.
fn file_url(remote_id: &str, suffix: &str) -> Result<String, ProviderError> {
    if remote_id.is_empty() {
        return Err(ProviderError::invalid("an empty string is not a Kimi file id"));
    }
    let mut encoded = String::with_capacity(remote_id.len());
    for byte in remote_id.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => encoded.push(byte as char),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    url(&format!("/files/{encoded}{suffix}"))
}

/// Sends a request with the key filled in by the host; a non-2xx answer
/// becomes the classified error.
fn send(method: &str, url: String, body: RequestBody) -> Result<Response, ProviderError> {
    let response = http::send(Request {
        method: method.into(),
        url,
        headers: vec![("authorization".into(), AUTHORIZATION.into())],
        body,
    })?;
    if !response.is_success() {
        return Err(from_response(&response));
    }
    Ok(response)
}

/// The purpose to upload with: the caller's, else one inferred from the
/// type and name. Checked against what Kimi accepts before anything is sent.
fn purpose_for(req: &UploadRequest) -> Result<String, ProviderError> {
    let is_jsonl = req.name.to_ascii_lowercase().ends_with(".jsonl");
    let purpose = match req.purpose.as_deref() {
        Some(purpose) => purpose,
        None if req.mime.starts_with("image/") => "image",
        None if req.mime.starts_with("video/") => "video",
        None if is_jsonl => "batch",
        None => CONFIG.get()?.default_purpose.as_str(),
    };
    if !known_purpose(purpose) {
        return Err(ProviderError::invalid(format!(
            "purpose {purpose:?} is not one Kimi accepts; use one of: {}",
            PURPOSES.join(", ")
        )));
    }
    // An unknown type (octet-stream) gets the benefit of the doubt: the docs
    // list no formats for images and videos, and the server checks anyway.
    let unknown_type = req.mime == "application/octet-stream";
    let mismatch = match purpose {
        "batch" if !is_jsonl => Some("a JSON Lines file (.jsonl)"),
        "image" if !(unknown_type || req.mime.starts_with("image/")) => Some("an image (image/*)"),
        "video" if !(unknown_type || req.mime.starts_with("video/")) => Some("a video (video/*)"),
        _ => None,
    };
    if let Some(expected) = mismatch {
        return Err(ProviderError::invalid(format!(
            "purpose {purpose} takes {expected}; {} is {}",
            req.name, req.mime
        )));
    }
    Ok(purpose.to_string())
}

pub fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
    if req.size == 0 {
        return Err(ProviderError::invalid(format!("{} is empty; Kimi refuses empty files", req.name)));
    }
    if req.size > MAX_FILE_BYTES {
        return Err(ProviderError::new(
            ErrorKind::TooLarge,
            format!(
                "{} is {} bytes; Kimi accepts at most 100 MB ({MAX_FILE_BYTES} bytes) per file",
                req.name, req.size
            ),
        ));
    }
    let purpose = purpose_for(&req)?;
    let UploadRequest { content, name, mime, .. } = req;
    let parts = vec![
        FormPart {
            name: "purpose".into(),
            filename: None,
            content_type: None,
            content: PartContent::Text(purpose.clone()),
        },
        FormPart {
            name: "file".into(),
            filename: Some(name.clone()),
            content_type: Some(mime.clone()),
            content: PartContent::File(content),
        },
    ];
    let response = send("POST", url("/files")?, RequestBody::Multipart(parts))?;
    let mut file: FileObject = response.json()?;
    match file.status.as_deref() {
        Some("error") => {
            let details = match &file.status_details {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => "no status_details given".into(),
            };
            // The failed file may still count against the 1,000-file quota.
            discard(&file.id);
            return Err(ProviderError::new(
                ErrorKind::InvalidRequest,
                format!("Kimi could not process {name} (purpose {purpose}): status \"error\": {details}"),
            )
            .with_status(response.status));
        }
        // "ok" per the docs, "ready" in one sample; older answers have none.
        Some("ok" | "ready") | None => {}
        Some(other) => {
            log::log(log::Level::Warn, &format!("upload of {name}: unfamiliar file status {other:?}, taken as success"))
        }
    }
    file.filename.get_or_insert(name);
    file.purpose.get_or_insert(purpose);
    Ok(info(file, Some(mime)))
}

/// Best-effort removal of a file Kimi failed to process: the upload's own
/// error is the one to report, so a failure here is only logged.
fn discard(remote_id: &str) {
    if let Err(e) = file_url(remote_id, "").and_then(|u| send("DELETE", u, RequestBody::Empty)) {
        log::log(log::Level::Warn, &format!("could not delete failed upload {remote_id}: {}", e.message));
    }
}

pub fn download(remote_id: &str, derived: bool) -> Result<DownloadResult, ProviderError> {
    if !derived {
        return Err(ProviderError::unsupported(
            "Kimi never returns uploaded files, only the text it extracted from them (ask for derived content); Wharf keeps the original in its cache provider",
        ));
    }
    let response = send("GET", file_url(remote_id, "/content")?, RequestBody::Empty)?;
    let raw = response.body.read_all(MAX_EXTRACTED_BYTES).map_err(|e| ProviderError {
        message: format!("reading the extracted text of file {remote_id}: {}", e.message),
        status: Some(response.status),
        ..e
    })?;
    // JSON `{"content": ...}` first; anything else is the text itself.
    let text = match serde_json::from_slice::<Extracted>(&raw) {
        Ok(extracted) => extracted.content.into_bytes(),
        Err(_) => raw,
    };
    Ok(DownloadResult { content: Body::new(&text), kind: ContentKind::Derived, mime: Some("text/plain".into()) })
}

pub fn stat(remote_id: &str) -> Result<ObjectInfo, ProviderError> {
    let response = send("GET", file_url(remote_id, "")?, RequestBody::Empty)?;
    Ok(info(response.json()?, None))
}

pub fn delete(remote_id: &str) -> Result<(), ProviderError> {
    let response = send("DELETE", file_url(remote_id, "")?, RequestBody::Empty)?;
    let answer: Deleted = response.json()?;
    if answer.deleted == Some(false) {
        return Err(ProviderError::new(ErrorKind::Other, format!("Kimi answered deleted: false for file {remote_id}"))
            .with_status(response.status));
    }
    Ok(())
}

/// Where a file sorts in a listing: oldest first, ties by id. A stable order
/// that new uploads extend at the end, so a cursor survives them.
fn position(file: &FileObject) -> (u64, &str) {
    (file.created_at.unwrap_or(0), &file.id)
}

/// `GET /files` answers every file at once; pages are cut here. The cursor
/// is the last item's position, `<created_at>:<id>`, so files deleted or added
/// between pages neither shift nor repeat the rest.
pub fn list(cursor: Option<&str>, limit: u32) -> Result<Page, ProviderError> {
    let after = match cursor {
        Some(cursor) => {
            let parsed = cursor.split_once(':').and_then(|(at, id)| Some((at.parse::<u64>().ok()?, id)));
            Some(parsed.ok_or_else(|| {
                ProviderError::invalid(format!("{cursor:?} is not a Kimi list cursor (<created_at>:<id>)"))
            })?)
        }
        None => None,
    };
    let response = send("GET", url("/files")?, RequestBody::Empty)?;
    let mut files = response.json::<FileList>()?.data;
    files.sort_by(|a, b| position(a).cmp(&position(b)));
    let mut rest = files.into_iter().filter(|f| after.is_none_or(|after| position(f) > after));
    let items: Vec<FileObject> = rest.by_ref().take(limit.max(1) as usize).collect();
    let next_cursor = match rest.next() {
        Some(_) => items.last().map(|f| format!("{}:{}", f.created_at.unwrap_or(0), f.id)),
        None => None,
    };
    Ok(Page { items: items.into_iter().map(|f| info(f, None)).collect(), next_cursor })
}
