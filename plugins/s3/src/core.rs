//! The operations, as S3 requests signed with SigV4.
//!
//! Objects are content-addressed: the key is `prefix + sha256` of the bytes,
//! so the same content is stored once per bucket and prefix. The original
//! name and the digest ride along as `x-amz-meta-name` (percent-encoded: S3
//! metadata is ASCII) and `x-amz-meta-sha256`, which `stat` reads back. The
//! remote id is the whole key, so a later change of `prefix` does not lose
//! recorded objects.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use wharf_adapter_sdk::http::{self, Request, RequestBody, Response};
use wharf_adapter_sdk::{
    Body, ByteRange, ContentKind, DownloadResult, ErrorKind, ObjectInfo, Page, ProviderError, UploadRequest, log,
    percent, range, timestamp,
};

use crate::config::{CONFIG, Config, MAX_PART};
use crate::error::{error_in_body, from_response};
use crate::parse::{self, Element};
use crate::reference;
use crate::sigv4::{self, MAX_PRESIGN_SECS, Signer, UNSIGNED_PAYLOAD, canonical_query};

/// S3 takes at most this many parts per object.
const MAX_PARTS: u64 = 10_000;
/// The most bytes of parts signed together and handed to the host in one
/// `send-batch`. The host keeps 8 parts in flight through a batch (a sliding
/// window: each finished part lets the next start) and reads a part's bytes
/// only when it goes out, so a batch costs no memory; only between batches
/// does the window drain. Signatures are made per batch, and stores refuse a
/// request signed more than 15 minutes before it arrives: at 1 GiB per batch
/// that holds down to about 1.2 MB/s.
const BATCH_BYTES: u64 = 1 << 30;
/// At least this many parts per batch, so that the window never drains
/// after every part.
const MIN_PARTS_PER_BATCH: u64 = 8;
/// What is kept of a name in `x-amz-meta-name`: AWS allows 2 KB of user
/// metadata in all, and the name is a courtesy copy of what Wharf records.
const MAX_NAME_BYTES: usize = 1024;

/// Where S3 takes (and answers) an object's or a part's SHA-256, base64.
const CHECKSUM_HEADER: &str = "x-amz-checksum-sha256";
/// The payload hash of a request whose body is `aws-chunked` with an unsigned trailer.
const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

type Headers = Vec<(String, String)>;

impl Config {
    /// The `Host` header, which SigV4 signs.
    fn host(&self) -> String {
        if self.path_style {
            self.target.authority.clone()
        } else {
            format!("{}.{}", self.bucket, self.target.authority)
        }
    }

    /// The encoded request path of an object, or of the bucket without a key;
    /// it is both the URL's path and SigV4's canonical URI.
    fn path(&self, key: Option<&str>) -> String {
        let mut path = self.target.base_path.clone();
        if self.path_style {
            path.push('/');
            path.push_str(&self.bucket);
        }
        match key {
            Some(key) => {
                path.push('/');
                path.push_str(&percent::encode_path(key));
            }
            None if path.is_empty() => path.push('/'),
            None => {}
        }
        path
    }

    /// `bucket/key`, for messages.
    fn describe(&self, key: &str) -> String {
        format!("{}/{key}", self.bucket)
    }
}

/// A signed request. `query` is canonical (see `sigv4::canonical_query`).
fn signed(
    signer: &Signer,
    method: &str,
    key: Option<&str>,
    query: &str,
    mut headers: Headers,
    payload_sha256: &str,
    body: RequestBody,
) -> Result<Request, ProviderError> {
    let config = CONFIG.get()?;
    let host = config.host();
    let path = config.path(key);
    let authorization = signer.authorize(method, &path, query, &host, &mut headers, payload_sha256);
    headers.push(("authorization".into(), authorization));
    let separator = if query.is_empty() { "" } else { "?" };
    Ok(Request {
        method: method.into(),
        url: format!("{}://{host}{path}{separator}{query}", config.target.scheme),
        headers,
        body,
    })
}

/// Sends one signed request without a body and checks its status.
fn send(what: &str, method: &str, key: Option<&str>, query: &str) -> Result<Response, ProviderError> {
    send_with(what, method, key, query, Vec::new())
}

/// `send` with extra headers (signed with the rest).
fn send_with(
    what: &str,
    method: &str,
    key: Option<&str>,
    query: &str,
    headers: Headers,
) -> Result<Response, ProviderError> {
    let config = CONFIG.get()?;
    let signer = Signer::now(&config.region)?;
    let request = signed(&signer, method, key, query, headers, EMPTY_SHA256, RequestBody::Empty)?;
    let response = http::send(request).map_err(|e| context(e, what))?;
    if !response.is_success() {
        return Err(from_response(what, &response));
    }
    Ok(response)
}

/// Prefixes a failure that carries no S3 context (a transport error) with
/// the operation it interrupted.
fn context(mut error: ProviderError, what: &str) -> ProviderError {
    error.message = format!("{what}: {}", error.message);
    error
}

/// The XML of a successful answer. One that does not parse was damaged on
/// the way (or by a server glitch): unavailable, so that it is asked again.
fn xml_body(what: &str, response: &Response) -> Result<Element, ProviderError> {
    let text = response.text()?;
    parse::xml(&text).map_err(|e| {
        let start: String = text.chars().take(200).collect();
        ProviderError::new(ErrorKind::Unavailable, format!("{what}: unexpected answer: {e}; body starts: {start}"))
            .with_status(response.status)
    })
}

fn now() -> Option<u64> {
    SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The key a remote id names. Keys with `.` or `..` segments would be
/// rewritten by URL normalisation on the way out, breaking the signature.
fn key_of(remote_id: &str) -> Result<&str, ProviderError> {
    if remote_id.is_empty() || remote_id.split('/').any(|s| s == "." || s == "..") {
        return Err(ProviderError::invalid(format!("{remote_id:?} is not an S3 key this adapter can address")));
    }
    Ok(remote_id)
}

/// The name, percent-encoded and cut at a character boundary to fit S3's
/// metadata limits.
fn encoded_name(name: &str) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 4];
    for c in name.chars() {
        let encoded = percent::encode_component(c.encode_utf8(&mut buf));
        if out.len() + encoded.len() > MAX_NAME_BYTES {
            break;
        }
        out.push_str(&encoded);
    }
    out
}

pub fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
    let config = CONFIG.get()?;
    let UploadRequest { content, name, mime, size, sha256, .. } = req;
    if !is_sha256(&sha256) {
        return Err(ProviderError::invalid(format!("{sha256:?} is not a lowercase hex SHA-256")));
    }
    let key = format!("{}{sha256}", config.prefix);
    let headers: Headers = vec![
        ("content-type".into(), mime.clone()),
        ("x-amz-meta-name".into(), encoded_name(&name)),
        ("x-amz-meta-sha256".into(), sha256.clone()),
    ];
    if size < config.multipart_threshold {
        put_object(config, &key, content, &sha256, headers)?;
    } else {
        multipart_upload(config, &key, &content, size, headers)?;
    }
    Ok(ObjectInfo {
        remote_id: key,
        name: Some(name),
        size: Some(size),
        sha256: Some(sha256),
        mime: Some(mime),
        purpose: None,
        created_at: now(),
        expires_at: None,
    })
}

fn put_object(
    config: &Config,
    key: &str,
    content: Body,
    sha256: &str,
    mut headers: Headers,
) -> Result<(), ProviderError> {
    let what = format!("PutObject {}", config.describe(key));
    // The host computed the digest of the whole content; signing it makes the
    // store check the bytes it receives against it.
    let payload = if config.unsigned_payload { UNSIGNED_PAYLOAD } else { sha256 };
    if config.checksum_sha256 {
        let digest = hex::decode(sha256).expect("checked to be hex");
        let value = base64::engine::general_purpose::STANDARD.encode(digest);
        headers.push((CHECKSUM_HEADER.into(), value));
    }
    let signer = Signer::now(&config.region)?;
    let request = signed(&signer, "PUT", Some(key), "", headers, payload, RequestBody::Body(content))?;
    let response = http::send(request).map_err(|e| context(e, &what))?;
    if !response.is_success() {
        return Err(from_response(&what, &response));
    }
    Ok(())
}

/// The part size for an object: the configured one, grown so the object
/// fits in S3's 10,000 parts.
fn part_size(configured: u64, size: u64) -> u64 {
    configured.max(size.div_ceil(MAX_PARTS))
}

/// CreateMultipartUpload, the parts, CompleteMultipartUpload; on any failure,
/// AbortMultipartUpload so that no orphaned parts keep costing storage.
///
/// Parts are signed with `UNSIGNED-PAYLOAD`. With `checksum_sha256`, each
/// part carries its SHA-256 in a trailer (`aws-chunked`) that the host
/// computes as it sends the part, and the store checks every part; without
/// it, no part is hashed, since nothing would check the digest.
fn multipart_upload(
    config: &Config,
    key: &str,
    content: &Body,
    size: u64,
    mut headers: Headers,
) -> Result<(), ProviderError> {
    let object = config.describe(key);
    let what = format!("CreateMultipartUpload {object}");
    if config.checksum_sha256 {
        headers.push(("x-amz-checksum-algorithm".into(), "SHA256".into()));
    }
    let signer = Signer::now(&config.region)?;
    let query = canonical_query(&[("uploads", "")]);
    let request = signed(&signer, "POST", Some(key), &query, headers, EMPTY_SHA256, RequestBody::Empty)?;
    let response = http::send(request).map_err(|e| context(e, &what))?;
    if !response.is_success() {
        return Err(from_response(&what, &response));
    }
    let upload_id = xml_body(&what, &response)?
        .text_of("UploadId")
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::new(ErrorKind::Other, format!("{what}: the answer has no UploadId")))?;
    let result = upload_parts(config, key, &upload_id, content, size)
        .and_then(|parts| complete(config, key, &upload_id, &parts));
    if result.is_err() {
        abort(config, key, &upload_id);
    }
    result
}

/// What CompleteMultipartUpload names of an uploaded part.
struct UploadedPart {
    etag: String,
    /// The part's SHA-256 as the store computed it (base64), when the part carried one.
    sha256: Option<String>,
}

/// Sends the parts in signed batches; returns them in part order.
fn upload_parts(
    config: &Config,
    key: &str,
    upload_id: &str,
    content: &Body,
    size: u64,
) -> Result<Vec<UploadedPart>, ProviderError> {
    let part = part_size(config.part_size, size);
    if part > MAX_PART {
        return Err(ProviderError::new(
            ErrorKind::TooLarge,
            format!("{size} bytes do not fit in {MAX_PARTS} parts of at most {MAX_PART} bytes"),
        ));
    }
    let parts = size.div_ceil(part);
    let object = config.describe(key);
    let mut uploaded = Vec::with_capacity(parts as usize);
    let per_batch = (BATCH_BYTES / part).max(MIN_PARTS_PER_BATCH);
    let mut first = 0;
    while first < parts {
        let end = (first + per_batch).min(parts);
        let signer = Signer::now(&config.region)?;
        let mut requests = Vec::with_capacity((end - first) as usize);
        for index in first..end {
            let offset = index * part;
            let length = part.min(size - offset);
            let slice = content.slice(offset, length)?;
            let number = (index + 1).to_string();
            let query = canonical_query(&[("partNumber", &number), ("uploadId", upload_id)]);
            let request = if config.checksum_sha256 {
                let headers = vec![
                    ("content-encoding".to_string(), "aws-chunked".to_string()),
                    ("x-amz-decoded-content-length".to_string(), length.to_string()),
                    ("x-amz-trailer".to_string(), CHECKSUM_HEADER.to_string()),
                ];
                let body = RequestBody::Body(slice.with_sha256_trailer(CHECKSUM_HEADER)?);
                signed(&signer, "PUT", Some(key), &query, headers, STREAMING_UNSIGNED_TRAILER, body)?
            } else {
                signed(&signer, "PUT", Some(key), &query, Vec::new(), UNSIGNED_PAYLOAD, RequestBody::Body(slice))?
            };
            requests.push(request);
        }
        for (number, result) in (first + 1..).zip(http::send_batch(requests)) {
            let what = format!("UploadPart {number} of {parts} of {object}");
            let response = result.map_err(|e| context(e, &what))?;
            if !response.is_success() {
                return Err(from_response(&what, &response));
            }
            let etag = response.header("etag").ok_or_else(|| {
                ProviderError::new(ErrorKind::Other, format!("{what}: the answer has no ETag"))
                    .with_status(response.status)
            })?;
            let sha256 = response.header(CHECKSUM_HEADER).map(str::to_string);
            uploaded.push(UploadedPart { etag: etag.to_string(), sha256 });
        }
        first = end;
    }
    Ok(uploaded)
}

/// Names every part with its ETag and, when it carried one, its checksum
/// (which S3 requires once the upload was created with a checksum algorithm).
fn complete(config: &Config, key: &str, upload_id: &str, parts: &[UploadedPart]) -> Result<(), ProviderError> {
    let what = format!("CompleteMultipartUpload {}", config.describe(key));
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (number, part) in (1..).zip(parts) {
        let checksum = match &part.sha256 {
            Some(sha256) => format!("<ChecksumSHA256>{}</ChecksumSHA256>", parse::escape(sha256)),
            None => String::new(),
        };
        xml.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag>{checksum}</Part>",
            parse::escape(&part.etag)
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let payload = sigv4::sha256_hex(xml.as_bytes());
    let headers = vec![("content-type".to_string(), "application/xml".to_string())];
    let query = canonical_query(&[("uploadId", upload_id)]);
    let signer = Signer::now(&config.region)?;
    let body = RequestBody::Bytes(xml.into_bytes());
    let request = signed(&signer, "POST", Some(key), &query, headers, &payload, body)?;
    let response = http::send(request).map_err(|e| context(e, &what))?;
    if !response.is_success() {
        return Err(from_response(&what, &response));
    }
    // S3 answers 200 before it has assembled the object, and reports a failure
    // to assemble it in the body.
    match error_in_body(&what, response.status, &response.text()?) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Best effort: the upload already failed, and that failure is what the
/// caller hears about. A failed abort is logged, since its parts stay billed.
fn abort(config: &Config, key: &str, upload_id: &str) {
    let query = canonical_query(&[("uploadId", upload_id)]);
    let what = format!("AbortMultipartUpload {} (upload id {upload_id})", config.describe(key));
    if let Err(e) = send(&what, "DELETE", Some(key), &query) {
        log::log(
            log::Level::Warn,
            &format!("{}; its parts stay stored until a lifecycle rule or an operator removes them", e.message),
        );
    }
}

pub fn download(remote_id: &str, derived: bool, range: Option<&ByteRange>) -> Result<DownloadResult, ProviderError> {
    if derived {
        return Err(ProviderError::unsupported("S3 keeps the original bytes only; it has no derived content"));
    }
    let key = key_of(remote_id)?;
    let what = format!("GetObject {}", CONFIG.get()?.describe(key));
    let headers = range::request_header(range).into_iter().collect();
    let response = send_with(&what, "GET", Some(key), "", headers)?;
    range::check_response(&what, range, &response)?;
    let mime = response.header("content-type").map(str::to_string);
    Ok(DownloadResult { content: response.body, kind: ContentKind::Original, mime })
}

/// HeadObject, asking for the stored SHA-256 checksum too: an object that
/// was uploaded with one (by Wharf, or by any client sending
/// `x-amz-checksum-sha256` in one part) then gives its digest without a read.
pub fn stat(remote_id: &str) -> Result<ObjectInfo, ProviderError> {
    let key = key_of(remote_id)?;
    let what = format!("HeadObject {}", CONFIG.get()?.describe(key));
    let headers = vec![("x-amz-checksum-mode".to_string(), "ENABLED".to_string())];
    let response = send_with(&what, "HEAD", Some(key), "", headers)?;
    let sha256 = response
        .header("x-amz-meta-sha256")
        .filter(|v| is_sha256(v))
        .map(str::to_string)
        .or_else(|| full_object_sha256(&response));
    Ok(ObjectInfo {
        remote_id: key.to_string(),
        name: response
            .header("x-amz-meta-name")
            .map(percent::decode_lossy)
            .or_else(|| key.rsplit('/').next().map(str::to_string)),
        size: response.header("content-length").and_then(|v| v.parse().ok()),
        sha256,
        mime: response.header("content-type").map(str::to_string),
        purpose: None,
        created_at: response.header("last-modified").and_then(timestamp::http_date),
        expires_at: None,
    })
}

/// The object's SHA-256 from S3's own checksum, when it covers the whole
/// object: a multipart upload's checksum is a digest of part digests
/// (`…-N`, or `x-amz-checksum-type: COMPOSITE`), not the content's.
fn full_object_sha256(response: &Response) -> Option<String> {
    let checksum = response.header(CHECKSUM_HEADER)?;
    let composite = checksum.contains('-')
        || response.header("x-amz-checksum-type").is_some_and(|t| t.eq_ignore_ascii_case("COMPOSITE"));
    if composite {
        return None;
    }
    let digest = base64::engine::general_purpose::STANDARD.decode(checksum.trim()).ok()?;
    (digest.len() == 32).then(|| digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// A reference in one of the forms of `reference`, checked to exist.
pub fn resolve(reference: &str) -> Result<ObjectInfo, ProviderError> {
    let key = reference::key_of(CONFIG.get()?, reference)?;
    key_of(&key)?;
    stat(&key)
}

/// One page of ListObjectsV2 under the prefix. Keys under the prefix are
/// this adapter's content addresses, so a key ending in a SHA-256 gives it.
pub fn list(cursor: Option<&str>, limit: u32) -> Result<Page, ProviderError> {
    let config = CONFIG.get()?;
    let max_keys = limit.clamp(1, 1000).to_string();
    let mut params = vec![("list-type", "2"), ("max-keys", max_keys.as_str())];
    if !config.prefix.is_empty() {
        params.push(("prefix", &config.prefix));
    }
    if let Some(cursor) = cursor {
        params.push(("continuation-token", cursor));
    }
    let what = format!("ListObjectsV2 {}/{}", config.bucket, config.prefix);
    let response = send(&what, "GET", None, &canonical_query(&params))?;
    let document = xml_body(&what, &response)?;
    let items = document
        .children("Contents")
        .filter_map(|entry| {
            let key = entry.text_of("Key")?;
            let digest = key.strip_prefix(config.prefix.as_str()).filter(|d| is_sha256(d));
            Some(ObjectInfo {
                remote_id: key.to_string(),
                name: None,
                size: entry.text_of("Size").and_then(|s| s.parse().ok()),
                sha256: digest.map(str::to_string),
                mime: None,
                purpose: None,
                created_at: entry.text_of("LastModified").and_then(timestamp::rfc3339),
                expires_at: None,
            })
        })
        .collect();
    let next_cursor = match document.text_of("IsTruncated") {
        Some("true") => {
            Some(document.text_of("NextContinuationToken").filter(|t| !t.is_empty()).map(str::to_string).ok_or_else(
                || {
                    ProviderError::new(
                        ErrorKind::Other,
                        format!("{what}: the listing is truncated but has no NextContinuationToken"),
                    )
                },
            )?)
        }
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// DeleteObject answers 204 whether or not the key existed: S3 cannot tell a
/// missing object here, and deleting one is not an error.
pub fn delete(remote_id: &str) -> Result<(), ProviderError> {
    let key = key_of(remote_id)?;
    let what = format!("DeleteObject {}", CONFIG.get()?.describe(key));
    send(&what, "DELETE", Some(key), "").map(drop)
}

/// A presigned GET. Signed locally: no request is sent, so it does not check
/// that the object exists.
pub fn presign(remote_id: &str, expires_in_secs: u64) -> Result<String, ProviderError> {
    let config = CONFIG.get()?;
    let access_key_id = config.access_key_id_for_presign.as_deref().ok_or_else(|| {
        ProviderError::unsupported("presigned URLs need access_key_id_for_presign in the provider's config")
    })?;
    if !(1..=MAX_PRESIGN_SECS).contains(&expires_in_secs) {
        return Err(ProviderError::invalid(format!(
            "a presigned S3 URL lives 1 to {MAX_PRESIGN_SECS} seconds (7 days); {expires_in_secs} was asked"
        )));
    }
    let key = key_of(remote_id)?;
    let (host, path) = (config.host(), config.path(Some(key)));
    let query = Signer::now(&config.region)?.presign_query(access_key_id, &path, &host, expires_in_secs);
    Ok(format!("{}://{host}{path}?{query}", config.target.scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_to_fit_ten_thousand() {
        const MIB: u64 = 1 << 20;
        assert_eq!(part_size(16 * MIB, 64 * MIB), 16 * MIB);
        let five_tib = 5u64 << 40;
        let grown = part_size(16 * MIB, five_tib);
        assert!(five_tib.div_ceil(grown) <= MAX_PARTS && grown <= MAX_PART);
    }

    #[test]
    fn path_and_virtual_hosted_addressing() {
        let config = |extra: &str| {
            Config::parse(&format!(
                r#"{{"endpoint": "https://s3.example.com/base/", "region": "us-east-1", "bucket": "my-bucket"{extra}}}"#
            ))
            .unwrap()
        };
        let path_style = config("");
        assert_eq!(path_style.host(), "s3.example.com");
        assert_eq!(path_style.path(Some("p/a b+c")), "/base/my-bucket/p/a%20b%2Bc");
        assert_eq!(path_style.path(None), "/base/my-bucket");
        let virtual_hosted = config(r#", "path_style": false"#);
        assert_eq!(virtual_hosted.host(), "my-bucket.s3.example.com");
        assert_eq!(virtual_hosted.path(Some("k")), "/base/k");
        let bare = Config::parse(
            r#"{"endpoint": "https://s3.example.com", "region": "auto", "bucket": "b-1", "path_style": false}"#,
        )
        .unwrap();
        assert_eq!(bare.path(None), "/");
    }

    #[test]
    fn names_are_encoded_and_bounded() {
        assert_eq!(encoded_name("März 1.pdf"), "M%C3%A4rz%201.pdf");
        let name = "Bericht für 50% – März.pdf";
        assert_eq!(percent::decode_lossy(&encoded_name(name)), name);
        let long = "ü".repeat(1000);
        let encoded = encoded_name(&long);
        assert!(encoded.len() <= MAX_NAME_BYTES && encoded.ends_with("%BC"), "{encoded}");
    }
}
