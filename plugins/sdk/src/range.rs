//! Byte ranges of `download` (contract 0.2.0): the request header for HTTP
//! providers, the check that what came back is exactly what was asked for,
//! and slicing for adapters whose content is a host file.

use crate::http::Response;
use crate::{Body, ByteRange, ErrorKind, ProviderError};

impl ByteRange {
    /// The last byte's offset, inclusive, when the range has an end.
    fn last(&self) -> Option<u64> {
        self.length.map(|len| self.offset + len.saturating_sub(1))
    }

    /// Whether this asks for the whole object (from 0 to the end).
    pub fn is_whole(&self) -> bool {
        self.offset == 0 && self.length.is_none()
    }

    /// The value of an HTTP `Range` header for this range.
    pub fn header_value(&self) -> String {
        match self.last() {
            Some(last) => format!("bytes={}-{last}", self.offset),
            None => format!("bytes={}-", self.offset),
        }
    }
}

/// The `Range` header to send for `range`, if any.
pub fn request_header(range: Option<&ByteRange>) -> Option<(String, String)> {
    let range = range.filter(|r| !r.is_whole())?;
    if range.length == Some(0) {
        // HTTP cannot ask for zero bytes; callers answer that without a request.
        return None;
    }
    Some(("range".to_string(), range.header_value()))
}

/// Checks that a successful answer to a ranged GET holds exactly the bytes
/// asked for: a 206 whose `Content-Range` starts at the offset and ends where
/// asked (or at the object's end), or a 200 only when the whole object was
/// asked for. A provider that ignored the range would otherwise hand the host
/// the wrong bytes at the right place.
pub fn check_response(what: &str, range: Option<&ByteRange>, response: &Response) -> Result<(), ProviderError> {
    let Some(range) = range.filter(|r| !r.is_whole()) else {
        return Ok(());
    };
    let refuse = |detail: String| {
        Err(ProviderError::new(ErrorKind::Other, format!("{what}: asked for {}, {detail}", range.header_value()))
            .with_status(response.status))
    };
    if response.status != 206 {
        return refuse(format!("the provider answered HTTP {} without a range", response.status));
    }
    let Some(content_range) = response.header("content-range") else {
        return refuse("the provider's 206 answer has no Content-Range".into());
    };
    let Some((first, last, total)) = parse_content_range(content_range) else {
        return refuse(format!("the provider's Content-Range {content_range:?} is not bytes FIRST-LAST/SIZE"));
    };
    let end_ok = match range.last() {
        Some(asked_last) => last == asked_last || total.is_some_and(|t| asked_last >= t && last + 1 == t),
        None => total.is_none_or(|t| last + 1 == t),
    };
    if first != range.offset || !end_ok {
        return refuse(format!("the provider sent {content_range:?}"));
    }
    Ok(())
}

/// `bytes FIRST-LAST/SIZE` (SIZE may be `*`).
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?, total))
}

/// The part of a host file `content` that `range` names, for adapters whose
/// objects are host files (the local adapter). An empty range past the end
/// is refused as the contract says; a range running past the end is cut there.
pub fn slice(content: Body, range: Option<&ByteRange>) -> Result<Body, ProviderError> {
    let Some(range) = range.filter(|r| !r.is_whole()) else {
        return Ok(content);
    };
    let size = content
        .size()
        .ok_or_else(|| ProviderError::new(ErrorKind::Other, "the content's size is unknown: it cannot be ranged"))?;
    if range.offset > size {
        return Err(ProviderError::invalid(format!(
            "the range starts at byte {} but the object has {size} bytes",
            range.offset
        )));
    }
    let available = size - range.offset;
    content.slice(range.offset, range.length.map_or(available, |len| len.min(available)))
}
