//! The operations, as GLM Files API requests (`{base_url}/files`).
//!
//! GLM has no GET-by-id and lists one purpose at a time, so `stat` pages the
//! object's purpose until the id appears, and `list` walks the configured
//! purposes with a cursor `purpose:after-id`.

use serde::Deserialize;
use wharf_adapter_sdk::http::{self, FormPart, PartContent, Request, RequestBody, Response};
use wharf_adapter_sdk::{
    ContentKind, DownloadResult, ErrorKind, ObjectInfo, ObjectRef, Page, ProviderError, UploadRequest,
};

use crate::config::{CONFIG, Config};
use crate::error::from_response;

const MIB: u64 = 1 << 20;

/// The largest file any purpose accepts (HTTP 435 above it).
pub const MAX_SIZE: u64 = 100 * MIB;

/// GLM's largest page (`limit` is 1–100).
const MAX_PAGE: u32 = 100;

/// The purposes whose files `/content` serves. One version of the BigModel
/// reference drops `file-extract`; a refusal for it is reported as such.
const CONTENT_PURPOSES: [&str; 2] = ["batch", "file-extract"];

const IMAGES: [&str; 3] = ["png", "jpg", "jpeg"];

/// What GLM accepts for one purpose. MB is read as MiB and, where BigModel
/// and Z.ai disagree, the larger figure wins: a local refusal cannot be
/// appealed, while a file between the two figures costs one request and
/// comes back as the server's own classified error.
struct Rules {
    purpose: &'static str,
    /// File extensions, lowercase.
    formats: &'static [&'static str],
    max_size: u64,
    /// A tighter cap for png/jpg/jpeg, where documented.
    max_image_size: Option<u64>,
    max_files: Option<usize>,
}

const RULES: [Rules; 5] = [
    Rules { purpose: "batch", formats: &["jsonl"], max_size: 100 * MIB, max_image_size: None, max_files: Some(1000) },
    Rules {
        purpose: "file-extract",
        formats: &["pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "csv", "png", "jpg", "jpeg"],
        max_size: 50 * MIB,
        max_image_size: Some(5 * MIB),
        max_files: Some(100),
    },
    Rules {
        purpose: "code-interpreter",
        formats: &["pdf", "doc", "docx", "xls", "xlsx", "txt", "csv", "png", "jpg", "jpeg"],
        max_size: 20 * MIB,
        max_image_size: Some(5 * MIB),
        max_files: Some(100),
    },
    // BigModel: code-interpreter's formats, 20 MB (images 5 MB), 1,000 files.
    // Z.ai: pdf/doc/xlsx/ppt/txt/jpg/png, 100 MB each, 100 files. The union
    // of formats and the larger limits apply.
    Rules {
        purpose: "agent",
        formats: &["pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv", "png", "jpg", "jpeg"],
        max_size: 100 * MIB,
        max_image_size: None,
        max_files: Some(1000),
    },
    Rules {
        purpose: "voice-clone-input",
        formats: &["mp3", "wav"],
        max_size: MAX_SIZE,
        max_image_size: None,
        max_files: None,
    },
];

impl Rules {
    fn of(purpose: &str) -> Option<&'static Rules> {
        RULES.iter().find(|r| r.purpose == purpose)
    }

    /// Format and size, from what the host already knows: no request.
    fn check(&self, name: &str, size: u64) -> Result<(), ProviderError> {
        let extension = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
        if !self.formats.contains(&extension.as_str()) {
            return Err(ProviderError::invalid(format!(
                "{name}: purpose {} accepts only {} files (by extension); nothing was uploaded",
                self.purpose,
                self.formats.join(", ")
            )));
        }
        let (max, what) = match self.max_image_size {
            Some(image_max) if IMAGES.contains(&extension.as_str()) => (image_max, "images"),
            _ => (self.max_size, "files"),
        };
        if size > max {
            return Err(ProviderError::new(
                ErrorKind::TooLarge,
                format!(
                    "{name} is {size} bytes; purpose {} accepts {what} of at most {} MiB; nothing was uploaded",
                    self.purpose,
                    max / MIB
                ),
            ));
        }
        Ok(())
    }
}

/// A GLM file object, as upload and list return it.
#[derive(Deserialize)]
struct FileObject {
    id: String,
    bytes: Option<u64>,
    created_at: Option<u64>,
    filename: Option<String>,
    purpose: Option<String>,
}

impl FileObject {
    fn into_info(self) -> ObjectInfo {
        ObjectInfo {
            remote_id: self.id,
            name: self.filename,
            size: self.bytes,
            sha256: None,
            mime: None,
            purpose: self.purpose,
            created_at: self.created_at,
            expires_at: None,
        }
    }
}

#[derive(Deserialize)]
struct FileList {
    data: Vec<FileObject>,
    has_more: Option<bool>,
}

#[derive(Deserialize)]
struct Deleted {
    deleted: Option<bool>,
}

/// Unreserved characters as they are, everything else percent-encoded: for
/// query values and for ids in paths (an id never leaves `/files/`).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn request(method: &str, url: String, body: RequestBody) -> Request {
    Request {
        method: method.into(),
        url,
        headers: vec![("authorization".into(), "Bearer {{secret:api_key}}".into())],
        body,
    }
}

/// Sends a request; a non-2xx answer becomes the classified error, told as
/// `context` (what was being done).
fn send(req: Request, context: impl FnOnce() -> String) -> Result<Response, ProviderError> {
    let response = http::send(req)?;
    if response.is_success() { Ok(response) } else { Err(from_response(&response, &context())) }
}

/// One page of a purpose's files.
fn list_purpose(config: &Config, purpose: &str, limit: u32, after: Option<&str>) -> Result<FileList, ProviderError> {
    let mut url = format!("{}/files?purpose={}&limit={limit}", config.base_url, escape(purpose));
    if let Some(after) = after {
        url.push_str(&format!("&after={}", escape(after)));
    }
    let response = send(request("GET", url, RequestBody::Empty), || {
        format!(
            "listing purpose {purpose}{} (if this endpoint does not serve that purpose, leave it out of config.purposes)",
            after.map(|a| format!(" after {a}")).unwrap_or_default()
        )
    })?;
    response.json()
}

impl FileList {
    /// The `after` for the page that follows, or `None` on a purpose's last
    /// page. Without `has_more`, a full page is taken to have a successor.
    fn next_after(&self, asked: u32, sent_after: Option<&str>) -> Result<Option<String>, ProviderError> {
        if !self.has_more.unwrap_or(self.data.len() >= asked as usize) {
            return Ok(None);
        }
        let last = self.data.last().map(|f| f.id.as_str());
        match last {
            // Guards against an endless walk when the server ignores `after`.
            Some(last) if Some(last) != sent_after => Ok(Some(last.to_string())),
            _ => Err(ProviderError::new(
                ErrorKind::Other,
                format!(
                    "GLM said more files follow {} but returned no new ones; the listing cannot go on",
                    sent_after.unwrap_or("the start")
                ),
            )),
        }
    }
}

/// Pages through `purpose` until `id` appears.
fn find_in(config: &Config, purpose: &str, id: &str) -> Result<Option<FileObject>, ProviderError> {
    let mut after: Option<String> = None;
    loop {
        let mut page = list_purpose(config, purpose, MAX_PAGE, after.as_deref())?;
        let next = page.next_after(MAX_PAGE, after.as_deref())?;
        if let Some(at) = page.data.iter().position(|f| f.id == id) {
            return Ok(Some(page.data.swap_remove(at)));
        }
        match next {
            Some(next) => after = Some(next),
            None => return Ok(None),
        }
    }
}

/// The purposes to search for a recorded object: its own, or (when it was
/// not recorded) the default and then the listed ones.
fn search_order<'a>(config: &'a Config, target: &'a ObjectRef) -> Vec<&'a str> {
    if let Some(purpose) = &target.purpose {
        return vec![purpose.as_str()];
    }
    let mut order = vec![config.default_purpose.as_str()];
    order.extend(config.purposes.iter().map(String::as_str).filter(|p| *p != config.default_purpose));
    order
}

fn find(config: &Config, target: &ObjectRef) -> Result<Option<FileObject>, ProviderError> {
    for purpose in search_order(config, target) {
        if let Some(file) = find_in(config, purpose, &target.remote_id)? {
            return Ok(Some(file));
        }
    }
    Ok(None)
}

/// Refuses an upload into a purpose that already holds its maximum.
fn check_count(config: &Config, purpose: &str, max: usize) -> Result<(), ProviderError> {
    let mut count = 0;
    let mut after: Option<String> = None;
    loop {
        let page = list_purpose(config, purpose, MAX_PAGE, after.as_deref())?;
        count += page.data.len();
        if count >= max {
            return Err(ProviderError::new(
                ErrorKind::QuotaExceeded,
                format!(
                    "purpose {purpose} already holds {count} files, GLM's limit is {max}; delete some (wharf rm) or set check_file_count = false if your account allows more; nothing was uploaded"
                ),
            ));
        }
        match page.next_after(MAX_PAGE, after.as_deref())? {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

pub fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
    let config = CONFIG.get()?;
    let purpose = req.purpose.clone().unwrap_or_else(|| config.default_purpose.clone());
    if let Some(rules) = Rules::of(&purpose) {
        rules.check(&req.name, req.size)?;
        if let (true, Some(max)) = (config.check_file_count, rules.max_files) {
            check_count(config, &purpose, max)?;
        }
    }
    let form = vec![
        // The purpose goes first, so that a streaming server knows it before the bytes.
        FormPart {
            name: "purpose".into(),
            filename: None,
            content_type: None,
            content: PartContent::Text(purpose.clone()),
        },
        FormPart {
            name: "file".into(),
            filename: Some(req.name.clone()),
            content_type: Some(req.mime.clone()),
            content: PartContent::File(req.content),
        },
    ];
    let url = format!("{}/files", config.base_url);
    let response = send(request("POST", url, RequestBody::Multipart(form)), || {
        format!("uploading {} (purpose {purpose})", req.name)
    })?;
    let file: FileObject = response.json()?;
    // GLM exposes no checksum; the recorded size is the one integrity check it allows.
    if let Some(stored) = file.bytes.filter(|b| *b != req.size) {
        let cleanup = match delete(&file.id) {
            Ok(()) => "it was deleted again".to_string(),
            Err(e) => format!("deleting it failed too: {}", e.message),
        };
        return Err(ProviderError::new(
            ErrorKind::Other,
            format!("uploading {}: GLM stored {stored} bytes of {} as {}; {cleanup}", req.name, req.size, file.id),
        ));
    }
    Ok(file.into_info())
}

pub fn download(target: &ObjectRef, derived: bool) -> Result<DownloadResult, ProviderError> {
    let config = CONFIG.get()?;
    let id = &target.remote_id;
    if !derived {
        return Err(ProviderError::unsupported(format!(
            "GLM does not promise the uploaded bytes back for {id}; Wharf keeps the original in its cache provider"
        )));
    }
    let purpose = target.purpose.as_deref().unwrap_or(&config.default_purpose);
    if !CONTENT_PURPOSES.contains(&purpose) {
        return Err(ProviderError::unsupported(format!(
            "GLM serves file content only for purposes batch and file-extract; {id} has purpose {purpose}"
        )));
    }
    let url = format!("{}/files/{}/content", config.base_url, escape(id));
    let response = http::send(request("GET", url, RequestBody::Empty))?;
    if response.is_success() {
        let mime = response.header("content-type").map(|m| m.split(';').next().unwrap_or(m).trim().to_string());
        return Ok(DownloadResult { content: response.body, kind: ContentKind::Derived, mime });
    }
    let mut error = from_response(&response, &format!("fetching the content of {id} (purpose {purpose})"));
    match error.kind {
        // A 404 here means either "no such file" or "no content for this
        // file": only the listing tells them apart, and only the first may
        // mark the copy gone.
        ErrorKind::NotFound if find(config, target)?.is_some() => {
            error.kind = ErrorKind::Unsupported;
            error.message.push_str("; the file is still listed, so GLM holds it but serves no content for it");
        }
        ErrorKind::InvalidRequest | ErrorKind::Forbidden if purpose == "file-extract" => {
            error.message.push_str("; some GLM endpoints serve content for batch files only");
        }
        _ => {}
    }
    Err(error)
}

pub fn stat(target: &ObjectRef) -> Result<ObjectInfo, ProviderError> {
    let config = CONFIG.get()?;
    match find(config, target)? {
        Some(file) => Ok(file.into_info()),
        None => Err(ProviderError::new(
            ErrorKind::NotFound,
            format!(
                "{} is not listed under purpose {} (deleted, or expired: Z.ai keeps agent files 180 days)",
                target.remote_id,
                search_order(config, target).join(", ")
            ),
        )),
    }
}

pub fn delete(id: &str) -> Result<(), ProviderError> {
    let config = CONFIG.get()?;
    let url = format!("{}/files/{}", config.base_url, escape(id));
    let response = send(request("DELETE", url, RequestBody::Empty), || format!("deleting {id}"))?;
    // The documented answer is `{id, object, deleted: true}`; an empty body is taken as done.
    let answer = response.bytes()?;
    let refused = serde_json::from_slice::<Deleted>(&answer).is_ok_and(|d| d.deleted == Some(false));
    if refused {
        return Err(ProviderError::new(ErrorKind::Other, format!("deleting {id}: GLM answered deleted: false"))
            .with_status(response.status));
    }
    Ok(())
}

/// Splits a cursor into the purpose to list and the id to list after.
fn parse_cursor<'a>(config: &Config, cursor: &'a str) -> Result<(usize, Option<&'a str>), ProviderError> {
    let (purpose, after) = cursor.split_once(':').unwrap_or((cursor, ""));
    let index = config.purposes.iter().position(|p| p == purpose).ok_or_else(|| {
        ProviderError::invalid(format!(
            "list cursor {cursor:?} names purpose {purpose:?}, which is not in config.purposes ({})",
            config.purposes.join(", ")
        ))
    })?;
    Ok((index, Some(after).filter(|a| !a.is_empty())))
}

/// Up to `limit` files from after `cursor`, walking `config.purposes` in order.
pub fn list(cursor: Option<&str>, limit: u32) -> Result<Page, ProviderError> {
    let config = CONFIG.get()?;
    let limit = limit.max(1);
    let (mut index, after) = match cursor {
        Some(cursor) => parse_cursor(config, cursor)?,
        None => (0, None),
    };
    let mut after = after.map(str::to_string);
    let mut items = Vec::new();
    loop {
        let purpose = &config.purposes[index];
        let want = (limit - items.len() as u32).min(MAX_PAGE);
        let page = list_purpose(config, purpose, want, after.as_deref())?;
        let next = page.next_after(want, after.as_deref())?;
        items.extend(page.data.into_iter().map(FileObject::into_info));
        match next {
            Some(next) => after = Some(next),
            None if index + 1 == config.purposes.len() => return Ok(Page { items, next_cursor: None }),
            None => {
                index += 1;
                after = None;
            }
        }
        if items.len() as u32 >= limit {
            let next_cursor = format!("{}:{}", config.purposes[index], after.unwrap_or_default());
            return Ok(Page { items, next_cursor: Some(next_cursor) });
        }
    }
}
