//! File bytes on the wire: the headers every download carries (links and the
//! file API alike) and the `Range` header.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::gateway::{ContentStream, RangeRequest};

/// What RFC 8187 lets stand unencoded in `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII
/// fallback for old clients, and the exact name for the rest.
pub fn content_disposition(filename: &str) -> HeaderValue {
    let fallback: String = filename
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let exact = utf8_percent_encode(filename, ATTR_CHAR);
    HeaderValue::from_str(&format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"))
        .expect("the value is ASCII without control characters")
}

/// A single `bytes=` range; anything else (several ranges, other units,
/// nonsense) is ignored and the whole file served, as RFC 9110 allows.
pub fn parse_range(headers: &HeaderMap) -> Option<RangeRequest> {
    let spec = headers.get(header::RANGE)?.to_str().ok()?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| -> Option<Option<u64>> {
        let s = s.trim();
        if s.is_empty() { Some(None) } else { s.parse().ok().map(Some) }
    };
    let (first, last) = (number(first)?, number(last)?);
    if first.is_none() && last.is_none() {
        return None;
    }
    Some(RangeRequest { first, last })
}

/// What to say about the bytes.
pub struct ContentHeaders<'a> {
    pub filename: &'a str,
    pub mime: &'a str,
    /// The whole content's size, when known before it streams.
    pub size: Option<u64>,
    /// `[start, end)` when a range is served.
    pub range: Option<(u64, u64)>,
    pub sha256: Option<&'a str>,
    pub accept_ranges: bool,
}

/// A 200 or 206 with the headers; `body` is `None` for HEAD.
pub fn respond(headers: ContentHeaders<'_>, body: Option<ContentStream>) -> Response {
    let status = if headers.range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let mut response = Response::new(body.map_or_else(Body::empty, Body::from_stream));
    *response.status_mut() = status;
    let map = response.headers_mut();
    let mime = HeaderValue::from_str(headers.mime).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    map.insert(header::CONTENT_TYPE, mime);
    map.insert(header::CONTENT_DISPOSITION, content_disposition(headers.filename));
    map.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    map.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    map.insert(header::ACCEPT_RANGES, HeaderValue::from_static(if headers.accept_ranges { "bytes" } else { "none" }));
    if let Some(sha256) = headers.sha256 {
        map.insert(header::ETAG, HeaderValue::from_str(&format!("\"{sha256}\"")).expect("hex is ASCII"));
    }
    match (headers.range, headers.size) {
        (Some((start, end)), Some(size)) => {
            map.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
            let range = format!("bytes {start}-{}/{size}", end - 1);
            map.insert(header::CONTENT_RANGE, HeaderValue::from_str(&range).expect("ASCII"));
        }
        (None, Some(size)) => {
            map.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_has_an_ascii_fallback_and_the_exact_name() {
        let value = content_disposition("Bericht März \"final\".pdf");
        assert_eq!(
            value.to_str().unwrap(),
            "attachment; filename=\"Bericht M_rz _final_.pdf\"; filename*=UTF-8''Bericht%20M%C3%A4rz%20%22final%22.pdf"
        );
    }

    #[test]
    fn ranges_parse_and_resolve_against_the_size() {
        let range = |text: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::RANGE, HeaderValue::from_str(text).unwrap());
            parse_range(&headers)
        };
        assert_eq!(range("bytes=0-9").unwrap().within(100), Some((0, 10)));
        assert_eq!(range("bytes=90-").unwrap().within(100), Some((90, 100)));
        assert_eq!(range("bytes=-10").unwrap().within(100), Some((90, 100)));
        assert_eq!(range("bytes=50-1000").unwrap().within(100), Some((50, 100)));
        assert_eq!(range("bytes=100-").unwrap().within(100), None);
        assert_eq!(range("bytes=9-0").unwrap().within(100), None);
        assert_eq!(range("bytes=0-1,5-6"), None);
        assert_eq!(range("items=0-1"), None);
        assert_eq!(range("bytes=-"), None);
    }
}
