//! How S3's failures map to the contract's error kinds.
//!
//! S3 answers with `<Error><Code>…</Code><Message>…</Message></Error>`. The
//! code decides the kind; the status decides when there is no body (HEAD).
//! Credentials that are wrong, expired or signed with a skewed clock are
//! `unauthorized`; valid credentials refused by policy (`AccessDenied`) are
//! `forbidden`. A HEAD refused with 403 carries no code, so it is `forbidden`
//! whatever the cause.

use wharf_adapter_sdk::http::Response;
use wharf_adapter_sdk::{ErrorKind, ProviderError};

use crate::parse;

/// The kind an S3 error code stands for; `None` for codes left to the status.
fn kind_of(code: &str, retry_after_ms: Option<u64>) -> Option<ErrorKind> {
    Some(match code {
        "NoSuchKey" | "NoSuchBucket" | "NoSuchUpload" | "NoSuchVersion" => ErrorKind::NotFound,
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "InvalidToken"
        | "TokenRefreshRequired"
        | "RequestTimeTooSkewed"
        | "MissingSecurityHeader" => ErrorKind::Unauthorized,
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => ErrorKind::Forbidden,
        "SlowDown" | "TooManyRequests" | "RequestLimitExceeded" => ErrorKind::RateLimited(retry_after_ms),
        "InternalError" | "ServiceUnavailable" | "RequestTimeout" | "OperationAborted" => ErrorKind::Unavailable,
        "EntityTooLarge" => ErrorKind::TooLarge,
        _ => return None,
    })
}

/// What to tell the operator beyond S3's own message, for the errors whose
/// fix is in providers.toml.
fn hint(code: &str, status: u16) -> &'static str {
    match (code, status) {
        ("InvalidAccessKeyId" | "SignatureDoesNotMatch", _) => {
            " (check the access_key_id and secret_access_key secrets of this provider)"
        }
        ("RequestTimeTooSkewed", _) => " (this machine's clock is off by more than 15 minutes)",
        ("AuthorizationHeaderMalformed", _) => " (check the region in the provider's config)",
        ("PermanentRedirect", _) | (_, 301 | 307) => {
            " (the bucket is served by another endpoint or region; check endpoint and region)"
        }
        ("NoSuchBucket", _) => " (check the bucket in the provider's config)",
        _ => "",
    }
}

/// A provider error for an S3 error document or, without one, the status.
/// `what` names the operation and object, e.g. `GetObject bucket/key`.
fn classify(what: &str, status: u16, retry_after_ms: Option<u64>, body: &str) -> ProviderError {
    let document = parse::xml(body).ok().filter(|doc| doc.name == "Error");
    let code = document.as_ref().and_then(|d| d.text_of("Code")).unwrap_or("");
    let kind = kind_of(code, retry_after_ms).unwrap_or_else(|| ErrorKind::from_status(status, retry_after_ms));
    let message = match document.as_ref().and_then(|d| d.text_of("Message")).filter(|m| !m.is_empty()) {
        Some(message) => format!("{what}: {message}{}", hint(code, status)),
        None if body.trim().is_empty() => format!("{what}: HTTP {status} without an error body{}", hint(code, status)),
        None => {
            let start: String = body.chars().take(200).collect();
            format!("{what}: HTTP {status}, body starts: {start}")
        }
    };
    let error = ProviderError::new(kind, message).with_status(status);
    if code.is_empty() { error } else { error.with_code(code) }
}

/// Classifies a non-2xx response, reading its (small) error body.
pub fn from_response(what: &str, response: &Response) -> ProviderError {
    // An unreadable body still leaves the status to classify by.
    let body = response.text().unwrap_or_default();
    classify(what, response.status, response.retry_after_ms(), &body)
}

/// An `<Error>` document in a 200 answer (CompleteMultipartUpload), if any.
pub fn error_in_body(what: &str, status: u16, body: &str) -> Option<ProviderError> {
    let document = parse::xml(body).ok()?;
    (document.name == "Error").then(|| classify(what, status, None, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: &str, status: u16) -> ErrorKind {
        let body = format!("<Error><Code>{code}</Code><Message>told</Message></Error>");
        classify("Op b/k", status, Some(5), &body).kind
    }

    #[test]
    fn codes_decide_the_kind() {
        assert!(matches!(kind("NoSuchKey", 404), ErrorKind::NotFound));
        assert!(matches!(kind("SignatureDoesNotMatch", 403), ErrorKind::Unauthorized));
        assert!(matches!(kind("AccessDenied", 403), ErrorKind::Forbidden));
        assert!(matches!(kind("SlowDown", 503), ErrorKind::RateLimited(Some(5))));
        assert!(matches!(kind("InternalError", 200), ErrorKind::Unavailable));
        assert!(matches!(kind("EntityTooLarge", 400), ErrorKind::TooLarge));
        assert!(matches!(kind("InvalidPart", 400), ErrorKind::InvalidRequest));
        let body = "<Error><Code>InvalidAccessKeyId</Code><Message>told</Message></Error>";
        let e = classify("Op b/k", 403, None, body);
        assert_eq!((e.status, e.code.as_deref()), (Some(403), Some("InvalidAccessKeyId")));
        assert!(e.message.starts_with("Op b/k: told (check the access_key_id"), "{}", e.message);
    }

    #[test]
    fn bodiless_errors_fall_back_to_the_status() {
        let e = classify("HeadObject b/k", 404, None, "");
        assert!(matches!(e.kind, ErrorKind::NotFound) && e.code.is_none());
        assert_eq!(e.message, "HeadObject b/k: HTTP 404 without an error body");
        let e = classify("GetObject b/k", 502, None, "<html>bad gateway</html>");
        assert!(matches!(e.kind, ErrorKind::Unavailable));
        assert!(e.message.contains("body starts: <html>"), "{}", e.message);
    }

    #[test]
    fn errors_hidden_in_a_success() {
        let body = "<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code><Message>retry</Message></Error>";
        let e = error_in_body("Complete", 200, body).unwrap();
        assert!(matches!(e.kind, ErrorKind::Unavailable));
        assert!(error_in_body("Complete", 200, "<CompleteMultipartUploadResult/>").is_none());
    }
}
