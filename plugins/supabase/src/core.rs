//! The operations, as Supabase Storage requests.
//!
//! Objects are content addressed: the key is `prefix + sha256`, always inside
//! Supabase's key charset, so any file name can be stored; the original name
//! stays in Wharf's catalog and in the object's user metadata.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};
use wharf_adapter_sdk::http::{self, Request, RequestBody, Response};
use wharf_adapter_sdk::percent::encode_path;
use wharf_adapter_sdk::{
    Body, ByteRange, ContentKind, DownloadResult, ErrorKind, ObjectInfo, Page, ProviderError, UploadRequest, log,
    range, timestamp,
};

use crate::config::{Auth, CONFIG, Config, ListVersion, is_key_char};
use crate::error::{ApiError, from_response};
use crate::reference;

/// Every TUS chunk but the last is exactly this long (Supabase's docs and
/// official clients; other sizes are not accepted).
pub const TUS_CHUNK: u64 = 6 * 1024 * 1024;
const TUS_VERSION: &str = "1.0.0";
/// Failed PATCH or HEAD requests tolerated in one resumable upload.
const TUS_MAX_FAILURES: u32 = 5;
/// The first pause after a failed chunk; doubled after each further failure.
const TUS_FIRST_PAUSE: Duration = Duration::from_millis(100);
/// `list-v2` accepts at most this many items per page.
const MAX_PAGE: u32 = 1000;

// ---- requests ----

fn headers(config: &Config) -> Vec<(String, String)> {
    let mut headers = vec![("apikey".to_string(), "{{secret:api_key}}".to_string())];
    if config.auth == Auth::Both {
        headers.push(("authorization".to_string(), "Bearer {{secret:api_key}}".to_string()));
    }
    headers
}

fn send(
    method: &str,
    url: String,
    headers: Vec<(String, String)>,
    body: RequestBody,
    what: &str,
) -> Result<Response, ProviderError> {
    let request = Request { method: method.to_string(), url, headers, body };
    // The host's message names the method and URL; this names the operation.
    http::send(request).map_err(|mut e| {
        e.message = format!("Supabase {what}: {}", e.message);
        e
    })
}

/// Sends a request and turns any non-2xx answer into a classified error.
fn call(
    method: &str,
    url: String,
    headers: Vec<(String, String)>,
    body: RequestBody,
    what: &str,
) -> Result<Response, ProviderError> {
    let response = send(method, url, headers, body, what)?;
    if response.is_success() { Ok(response) } else { Err(from_response(&response, what)) }
}

/// A JSON request body with the auth headers.
fn json_request(config: &Config, body: &Value) -> (Vec<(String, String)>, RequestBody) {
    let mut headers = headers(config);
    headers.push(("content-type".into(), "application/json".into()));
    (headers, RequestBody::Bytes(serde_json::to_vec(body).expect("JSON values serialize")))
}

/// `{base}/object/{route}{bucket}/{key}`, e.g. route `info/`.
fn object_url(config: &Config, route: &str, key: &str) -> String {
    format!("{}/object/{route}{}/{}", config.base_url, encode_path(&config.bucket), encode_path(key))
}

/// The object key a remote id names. Ids are keys this adapter made; one
/// outside Supabase's key charset cannot name an object there.
fn key_of(remote_id: &str) -> Result<&str, ProviderError> {
    if remote_id.is_empty() || remote_id.starts_with('/') || !remote_id.chars().all(is_key_char) {
        return Err(ProviderError::invalid(format!("{remote_id:?} is not a Supabase object key made by this adapter")));
    }
    Ok(remote_id)
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The content digest a key carries, when it is one of this adapter's keys.
fn sha256_of(config: &Config, key: &str) -> Option<String> {
    key.strip_prefix(config.prefix.as_str()).filter(|rest| is_sha256(rest)).map(str::to_string)
}

// ---- upload ----

pub fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
    let config = CONFIG.get()?;
    if !is_sha256(&req.sha256) {
        return Err(ProviderError::invalid(format!(
            "upload of {:?}: {:?} is not a lowercase hex SHA-256",
            req.name, req.sha256
        )));
    }
    let key = format!("{}{}", config.prefix, req.sha256);
    // The original name travels as user metadata, so `stat` can give it back.
    let mut metadata = json!({ "name": req.name, "sha256": req.sha256 });
    if let Some(purpose) = &req.purpose {
        metadata["purpose"] = json!(purpose);
    }
    let metadata = metadata.to_string();
    let (sha256, size) = (req.sha256.clone(), req.size);
    let sent = if req.size > config.tus_threshold {
        tus_upload(config, &req.content, &key, &req.mime, req.size, &metadata)
    } else {
        let mut headers = headers(config);
        headers.push(("content-type".into(), req.mime.clone()));
        headers.push(("x-metadata".into(), BASE64.encode(&metadata)));
        if config.upsert {
            headers.push(("x-upsert".into(), "true".into()));
        }
        let what = format!("upload of {}/{key}", config.bucket);
        call("POST", object_url(config, "", &key), headers, RequestBody::Body(req.content), &what).map(|_| ())
    };
    match sent {
        Ok(()) => {}
        // A retry after a lost answer finds what the first attempt stored:
        // the same bytes under the same key are the upload done.
        Err(e) if e.status == Some(409) && already_stored(config, &key, &sha256, size) => {}
        Err(e) => return Err(e),
    }
    Ok(ObjectInfo {
        remote_id: key,
        name: Some(req.name),
        size: Some(req.size),
        sha256: Some(req.sha256),
        mime: Some(req.mime),
        purpose: req.purpose,
        created_at: None,
        expires_at: None,
    })
}

/// Whether the object at `key` is this upload's content: Wharf's metadata
/// on it names the same SHA-256, and the size matches. Bytes someone else
/// put there carry no such digest, and stay refused.
fn already_stored(config: &Config, key: &str, sha256: &str, size: u64) -> bool {
    let Ok(info) = fetch_info(config, key) else { return false };
    let digest = info.user().and_then(|user| user.get("sha256")).and_then(Value::as_str);
    digest == Some(sha256) && info.size() == Some(size)
}

/// Why a chunk did not land.
enum ChunkFailure {
    /// The connection failed, the server failed (5xx), or the offset is not
    /// what we sent (409): ask the server where it is and go on from there.
    Resume(ProviderError),
    Fatal(ProviderError),
}

/// TUS 1.0.0: create the upload, then PATCH 6 MiB slices of the host body.
/// A failed chunk is resumed from the offset the server reports (HEAD), a
/// bounded number of times.
fn tus_upload(
    config: &Config,
    content: &Body,
    key: &str,
    mime: &str,
    size: u64,
    metadata: &str,
) -> Result<(), ProviderError> {
    let what = format!("resumable upload of {}/{key}", config.bucket);
    let upload_metadata =
        [("bucketName", config.bucket.as_str()), ("objectName", key), ("contentType", mime), ("metadata", metadata)]
            .iter()
            .map(|(name, value)| format!("{name} {}", BASE64.encode(value)))
            .collect::<Vec<_>>()
            .join(",");
    let mut create = tus_headers(config);
    create.push(("upload-length".into(), size.to_string()));
    create.push(("upload-metadata".into(), upload_metadata));
    let url = format!("{}/upload/resumable", config.base_url);
    let created = call("POST", url, create, RequestBody::Empty, &what)?;
    let location = created.header("location").ok_or_else(|| {
        ProviderError::new(
            ErrorKind::Other,
            format!("Supabase {what}: the server created the upload (HTTP {}) without a Location", created.status),
        )
        .with_status(created.status)
    })?;
    let upload_url = resolve_location(config, location);

    let mut offset = 0u64;
    let mut failures = 0u32;
    while offset < size {
        match send_chunk(config, content, &upload_url, offset, size, &what) {
            Ok(next) => offset = next,
            Err(ChunkFailure::Fatal(e)) => return Err(e),
            Err(ChunkFailure::Resume(e)) => {
                offset = resume(config, &upload_url, offset, size, &mut failures, e, &what)?;
            }
        }
    }
    Ok(())
}

/// The upload URL from a `Location` header: absolute as given, or relative
/// to the base URL's origin.
fn resolve_location(config: &Config, location: &str) -> String {
    if location.starts_with("https://") || location.starts_with("http://") {
        return location.to_string();
    }
    if location.starts_with('/') {
        let after_scheme = config.base_url.find("://").map_or(0, |i| i + 3);
        let origin_end = config.base_url[after_scheme..].find('/').map_or(config.base_url.len(), |i| i + after_scheme);
        return format!("{}{location}", &config.base_url[..origin_end]);
    }
    format!("{}/upload/resumable/{location}", config.base_url)
}

/// Headers for every TUS request. The server checks `x-upsert` on each of
/// them, and the one on the last PATCH decides whether an existing object
/// may be replaced, so it goes on all.
fn tus_headers(config: &Config) -> Vec<(String, String)> {
    let mut headers = headers(config);
    headers.push(("tus-resumable".into(), TUS_VERSION.into()));
    if config.upsert {
        headers.push(("x-upsert".into(), "true".into()));
    }
    headers
}

/// PATCHes the chunk at `offset`; returns the server's new offset.
fn send_chunk(
    config: &Config,
    content: &Body,
    url: &str,
    offset: u64,
    size: u64,
    what: &str,
) -> Result<u64, ChunkFailure> {
    let length = TUS_CHUNK.min(size - offset);
    let chunk = content.slice(offset, length).map_err(ChunkFailure::Fatal)?;
    let mut headers = tus_headers(config);
    headers.push(("upload-offset".into(), offset.to_string()));
    headers.push(("content-type".into(), "application/offset+octet-stream".into()));
    let chunk_what = format!("{what}, chunk at byte {offset}");
    let response = match send("PATCH", url.to_string(), headers, RequestBody::Body(chunk), &chunk_what) {
        Ok(response) => response,
        Err(e) if matches!(e.kind, ErrorKind::Unavailable) => return Err(ChunkFailure::Resume(e)),
        Err(e) => return Err(ChunkFailure::Fatal(e)),
    };
    if !response.is_success() {
        let resumable = matches!(response.status, 409 | 423 | 429 | 499 | 500..=599);
        let error = from_response(&response, &chunk_what);
        return Err(if resumable { ChunkFailure::Resume(error) } else { ChunkFailure::Fatal(error) });
    }
    let next = response.header("upload-offset").and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(offset + length);
    if next <= offset || next > size {
        return Err(ChunkFailure::Fatal(
            ProviderError::new(
                ErrorKind::Other,
                format!("Supabase {chunk_what}: the server reports offset {next} after {length} bytes were sent (upload length {size})"),
            )
            .with_status(response.status),
        ));
    }
    Ok(next)
}

/// After a failed chunk: pause, ask the server how much it holds (HEAD), and
/// return that offset. Gives up with the last failure once the budget is spent.
fn resume(
    config: &Config,
    url: &str,
    offset: u64,
    size: u64,
    failures: &mut u32,
    mut failure: ProviderError,
    what: &str,
) -> Result<u64, ProviderError> {
    loop {
        *failures += 1;
        if *failures > TUS_MAX_FAILURES {
            failure.message = format!(
                "{}; gave up after {TUS_MAX_FAILURES} attempts to resume, at byte {offset} of {size}",
                failure.message
            );
            return Err(failure);
        }
        log::log(
            log::Level::Warn,
            &format!("{}; resuming (attempt {} of {TUS_MAX_FAILURES})", failure.message, *failures),
        );
        std::thread::sleep(TUS_FIRST_PAUSE * (1 << (*failures - 1)));
        let head_what = format!("{what}, asking for the offset");
        match send("HEAD", url.to_string(), tus_headers(config), RequestBody::Empty, &head_what) {
            Ok(response) if response.is_success() => {
                let reported = response.header("upload-offset").and_then(|v| v.trim().parse::<u64>().ok());
                return match reported {
                    Some(at) if at <= size => Ok(at),
                    _ => Err(ProviderError::new(
                        ErrorKind::Other,
                        format!("Supabase {head_what}: no valid Upload-Offset in the answer (upload length {size})"),
                    )
                    .with_status(response.status)),
                };
            }
            Ok(response) if matches!(response.status, 423 | 429 | 499 | 500..=599) => {
                failure = from_response(&response, &head_what);
            }
            // The upload is gone (expired, 404/410) or refused: no resuming it.
            Ok(response) => return Err(from_response(&response, &head_what)),
            Err(e) if matches!(e.kind, ErrorKind::Unavailable) => failure = e,
            Err(e) => return Err(e),
        }
    }
}

// ---- download, stat, delete, presign ----

pub fn download(remote_id: &str, derived: bool, range: Option<&ByteRange>) -> Result<DownloadResult, ProviderError> {
    if derived {
        return Err(ProviderError::unsupported(
            "Supabase Storage keeps the original bytes only; it has no derived content",
        ));
    }
    let config = CONFIG.get()?;
    let key = key_of(remote_id)?;
    let what = format!("download of {}/{key}", config.bucket);
    let mut headers = headers(config);
    headers.extend(range::request_header(range));
    let response = call("GET", object_url(config, "", key), headers, RequestBody::Empty, &what)?;
    range::check_response(&format!("Supabase {what}"), range, &response)?;
    let mime = response.header("content-type").map(str::to_string);
    Ok(DownloadResult { content: response.body, kind: ContentKind::Original, mime })
}

/// A reference in one of the forms of `reference`, checked to exist.
pub fn resolve(reference: &str) -> Result<ObjectInfo, ProviderError> {
    let key = reference::key_of(CONFIG.get()?, reference)?;
    stat(key_of(&key)?)
}

/// `GET /object/info/…`. Field names follow the current server; older ones
/// keep size and type inside `metadata`, and user metadata in `user_metadata`.
#[derive(Deserialize)]
struct Info {
    name: Option<String>,
    size: Option<u64>,
    content_type: Option<String>,
    created_at: Option<String>,
    metadata: Option<Value>,
    user_metadata: Option<Value>,
}

impl Info {
    /// The user metadata: ours when it carries the digest we put there; else Supabase's own.
    fn user(&self) -> Option<&Value> {
        self.user_metadata.as_ref().or(self.metadata.as_ref().filter(|m| m.get("sha256").is_some()))
    }

    fn size(&self) -> Option<u64> {
        self.size.or_else(|| self.metadata.as_ref()?.get("size")?.as_u64())
    }
}

fn fetch_info(config: &Config, key: &str) -> Result<Info, ProviderError> {
    let what = format!("stat of {}/{key}", config.bucket);
    call("GET", object_url(config, "info/", key), headers(config), RequestBody::Empty, &what)?.json()
}

pub fn stat(remote_id: &str) -> Result<ObjectInfo, ProviderError> {
    let config = CONFIG.get()?;
    let key = key_of(remote_id)?;
    let info = fetch_info(config, key)?;
    let (user, size) = (info.user().cloned(), info.size());
    let (system, user) = (info.metadata.as_ref(), user.as_ref());
    let text = |value: Option<&Value>, field: &str| {
        value.and_then(|v| v.get(field)).and_then(Value::as_str).map(str::to_string)
    };
    Ok(ObjectInfo {
        remote_id: key.to_string(),
        name: text(user, "name").or(info.name.filter(|n| n != key)),
        size,
        sha256: sha256_of(config, key).or_else(|| text(user, "sha256").filter(|s| is_sha256(s))),
        mime: info.content_type.or_else(|| text(system, "mimetype")),
        purpose: text(user, "purpose"),
        created_at: info.created_at.as_deref().and_then(timestamp::rfc3339),
        expires_at: None,
    })
}

pub fn delete(remote_id: &str) -> Result<(), ProviderError> {
    let config = CONFIG.get()?;
    let key = key_of(remote_id)?;
    let what = format!("delete of {}/{key}", config.bucket);
    call("DELETE", object_url(config, "", key), headers(config), RequestBody::Empty, &what)?;
    Ok(())
}

#[derive(Deserialize)]
struct Signed {
    #[serde(rename = "signedURL", alias = "signedUrl")]
    signed_url: String,
}

pub fn presign(remote_id: &str, expires_in_secs: u64) -> Result<String, ProviderError> {
    let config = CONFIG.get()?;
    let key = key_of(remote_id)?;
    let expires_in = if expires_in_secs == 0 { config.signed_url_expiry } else { expires_in_secs };
    let what = format!("signing a URL for {}/{key}", config.bucket);
    let (headers, body) = json_request(config, &json!({ "expiresIn": expires_in }));
    let signed: Signed = call("POST", object_url(config, "sign/", key), headers, body, &what)?.json()?;
    let url = signed.signed_url;
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(url);
    }
    // Relative to the storage base (`/object/sign/…?token=…`), unencoded.
    let slash = if url.starts_with('/') { "" } else { "/" };
    Ok(format!("{}{slash}{}", config.base_url, encode_uri(&url)))
}

/// Like JavaScript's `encodeURI`, but leaving `%` alone so an already
/// encoded URL stays as it is.
fn encode_uri(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'();/?:@&=+$,#%".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---- list ----

/// Cursors say which listing made them: `v2:<server cursor>` or
/// `v1:<offset>`, so a v1 project is not asked for v2 on every page.
pub fn list(cursor: Option<&str>, limit: u32) -> Result<Page, ProviderError> {
    let config = CONFIG.get()?;
    let limit = limit.clamp(1, MAX_PAGE);
    let parsed = match cursor {
        None => None,
        Some(c) => Some(parse_cursor(c)?),
    };
    let v2_what = list_what(config, "v2");
    match (config.list_version, parsed) {
        (ListVersion::V1 | ListVersion::Auto, Some(Cursor::V1(offset))) => list_v1(config, offset, limit),
        (ListVersion::V1, None) => list_v1(config, 0, limit),
        (ListVersion::V2 | ListVersion::Auto, Some(Cursor::V2(c))) => {
            list_v2(config, Some(c), limit).map_err(|e| e.into_provider_error(&v2_what))
        }
        (ListVersion::V2, None) => list_v2(config, None, limit).map_err(|e| e.into_provider_error(&v2_what)),
        (ListVersion::Auto, None) => match list_v2(config, None, limit) {
            Err(V2Error::Refused(e)) if e.lacks_feature() => {
                log::log(log::Level::Debug, &format!("list-v2 unavailable ({}); listing with v1", e.message));
                list_v1(config, 0, limit)
            }
            other => other.map_err(|e| e.into_provider_error(&v2_what)),
        },
        (version, Some(other)) => Err(ProviderError::invalid(format!(
            "cursor {:?} is a {} cursor but list_version is {version:?}",
            cursor.unwrap_or_default(),
            other.version()
        ))),
    }
}

enum Cursor<'a> {
    V1(u64),
    V2(&'a str),
}

impl Cursor<'_> {
    fn version(&self) -> &'static str {
        match self {
            Cursor::V1(_) => "v1",
            Cursor::V2(_) => "v2",
        }
    }
}

fn parse_cursor(cursor: &str) -> Result<Cursor<'_>, ProviderError> {
    if let Some(offset) = cursor.strip_prefix("v1:").and_then(|o| o.parse().ok()) {
        return Ok(Cursor::V1(offset));
    }
    if let Some(c) = cursor.strip_prefix("v2:").filter(|c| !c.is_empty()) {
        return Ok(Cursor::V2(c));
    }
    Err(ProviderError::invalid(format!(
        "cursor {cursor:?} was not made by the Supabase adapter (expected v1:<offset> or v2:<cursor>)"
    )))
}

fn list_what(config: &Config, version: &str) -> String {
    format!("listing {}/{}* ({version})", config.bucket, config.prefix)
}

/// One listed object: `metadata` holds Supabase's own size and type.
#[derive(Deserialize)]
struct Listed {
    id: Option<String>,
    key: Option<String>,
    name: String,
    created_at: Option<String>,
    metadata: Option<Value>,
}

impl Listed {
    fn into_info(self, config: &Config, key: String) -> ObjectInfo {
        let field = |name: &str| self.metadata.as_ref().and_then(|m| m.get(name));
        ObjectInfo {
            sha256: sha256_of(config, &key),
            size: field("size").and_then(Value::as_u64),
            mime: field("mimetype").and_then(Value::as_str).map(str::to_string),
            created_at: self.created_at.as_deref().and_then(timestamp::rfc3339),
            remote_id: key,
            name: None,
            purpose: None,
            expires_at: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListV2 {
    objects: Vec<Listed>,
    #[serde(default)]
    has_next: bool,
    next_cursor: Option<String>,
}

/// Why `list-v2` gave no page: kept apart so `auto` can tell "no v2 here"
/// from a real failure.
enum V2Error {
    /// The server answered with an error.
    Refused(ApiError),
    /// No usable answer (transport failure, unexpected JSON).
    Failed(ProviderError),
}

impl V2Error {
    fn into_provider_error(self, what: &str) -> ProviderError {
        match self {
            V2Error::Refused(e) => e.into_provider_error(what),
            V2Error::Failed(e) => e,
        }
    }
}

/// Flat cursor listing of every key under the prefix.
fn list_v2(config: &Config, cursor: Option<&str>, limit: u32) -> Result<Page, V2Error> {
    let what = list_what(config, "v2");
    let mut body = json!({ "prefix": config.prefix, "limit": limit, "with_delimiter": false });
    if let Some(cursor) = cursor {
        body["cursor"] = json!(cursor);
    }
    let (headers, body) = json_request(config, &body);
    let url = format!("{}/object/list-v2/{}", config.base_url, encode_path(&config.bucket));
    let response = send("POST", url, headers, body, &what).map_err(V2Error::Failed)?;
    if !response.is_success() {
        return Err(V2Error::Refused(ApiError::read(&response)));
    }
    let page: ListV2 = response.json().map_err(V2Error::Failed)?;
    let next_cursor = match (page.has_next, page.next_cursor) {
        (false, _) => None,
        (true, Some(c)) if !c.is_empty() => Some(format!("v2:{c}")),
        (true, _) => {
            return Err(V2Error::Failed(ProviderError::new(
                ErrorKind::Other,
                format!("Supabase {what}: hasNext without a nextCursor"),
            )));
        }
    };
    let items = page
        .objects
        .into_iter()
        .filter_map(|o| {
            let key = o.key.clone().unwrap_or_else(|| o.name.clone());
            // `prefix` is a SQL LIKE pattern server-side: `_` and `%` match more.
            key.starts_with(config.prefix.as_str()).then(|| o.into_info(config, key))
        })
        .collect();
    Ok(Page { items, next_cursor })
}

/// Offset listing of one folder level: the folder part of the prefix, then
/// only names that start with the rest. Folders (`id: null`) are skipped.
fn list_v1(config: &Config, offset: u64, limit: u32) -> Result<Page, ProviderError> {
    let what = list_what(config, "v1");
    let (folder, start) = match config.prefix.rfind('/') {
        Some(i) => (&config.prefix[..i], &config.prefix[i + 1..]),
        None => ("", config.prefix.as_str()),
    };
    let mut body = json!({
        "prefix": folder,
        "limit": limit,
        "offset": offset,
        "sortBy": { "column": "name", "order": "asc" },
    });
    if !start.is_empty() {
        // A case-insensitive substring match server-side; narrowed below.
        body["search"] = json!(start);
    }
    let (headers, body) = json_request(config, &body);
    let url = format!("{}/object/list/{}", config.base_url, encode_path(&config.bucket));
    let listed: Vec<Listed> = call("POST", url, headers, body, &what)?.json()?;
    let returned = listed.len() as u64;
    let items = listed
        .into_iter()
        .filter(|o| o.id.is_some())
        .filter_map(|o| {
            let key = if folder.is_empty() { o.name.clone() } else { format!("{folder}/{}", o.name) };
            key.starts_with(config.prefix.as_str()).then(|| o.into_info(config, key))
        })
        .collect();
    let next_cursor = (returned == u64::from(limit)).then(|| format!("v1:{}", offset + returned));
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_but_keep_slashes() {
        assert_eq!(encode_path("a b/c?d&e"), "a%20b/c%3Fd%26e");
        assert_eq!(encode_uri("/object/sign/b/k 1?token=x.y"), "/object/sign/b/k%201?token=x.y");
    }
}
