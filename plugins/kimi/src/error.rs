//! How Kimi's error answers map to the contract's error kinds.
//!
//! Kimi answers `{"error": {"type": "...", "message": "..."}}`. The status
//! alone misleads in places: a 400 also means "file count reached" (a full
//! quota), a 403 also means "balance exhausted", and a 429 also means
//! "quota exceeded", which must never be retried. The type and message
//! refine it.

use serde::Deserialize;
use wharf_adapter_sdk::http::Response;
use wharf_adapter_sdk::{ErrorKind, ProviderError};

#[derive(Deserialize)]
struct Envelope {
    error: Detail,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// Classifies a non-2xx answer. The error carries the HTTP status, Kimi's
/// `error.type` as the code and its message as the message.
pub fn from_response(resp: &Response) -> ProviderError {
    // An unreadable body still leaves the status to classify by.
    let body = resp.bytes().unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<Envelope>(&body) {
        Ok(Envelope { error }) => (error.kind, error.message),
        Err(_) => (None, None),
    };
    let message = message.unwrap_or_else(|| match body.is_empty() {
        true => "no error body".to_string(),
        false => format!("body starts: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
    });
    let kind = classify(resp.status, code.as_deref(), &message, resp.retry_after_ms());
    let error = ProviderError::new(kind, message).with_status(resp.status);
    match code {
        Some(code) => error.with_code(code),
        None => error,
    }
}

fn classify(status: u16, error_type: Option<&str>, message: &str, retry_after_ms: Option<u64>) -> ErrorKind {
    let message = message.to_lowercase();
    match (status, error_type) {
        // Out of money or quota: retrying cannot help, whatever the status.
        (_, Some("exceeded_current_quota_error")) => ErrorKind::QuotaExceeded,
        (_, Some("rate_limit_reached_error" | "engine_overloaded_error")) => ErrorKind::RateLimited(retry_after_ms),
        (_, Some("content_filter")) => ErrorKind::InvalidRequest,
        // "...exceeded the max file count {n}...": the 1,000-file quota is full.
        (400, _) if message.contains("file count") => ErrorKind::QuotaExceeded,
        // "File size is too large, max file size is 100MB..."
        (400, _) if message.contains("too large") || message.contains("max file size") => ErrorKind::TooLarge,
        // Kimi's help center gives 403 for an insufficient balance: a quota,
        // not a permission. Other 403s (access_terminated_error) stay forbidden.
        (403, _) if message.contains("balance") || message.contains("余额") => ErrorKind::QuotaExceeded,
        _ => ErrorKind::from_status(status, retry_after_ms),
    }
}
