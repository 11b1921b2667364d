//! GLM error responses → `ProviderError`.
//!
//! GLM answers `{"error":{"code":"<business code>","message":"..."}}` and
//! overloads HTTP 429: concurrency, uploads too frequent, an empty balance and
//! a locked account all come as 429. The business code tells them apart, so it
//! is read before the status.

use serde::Deserialize;
use serde_json::Value;
use wharf_adapter_sdk::http::Response;
use wharf_adapter_sdk::{ErrorKind, ProviderError};

#[derive(Deserialize, Default)]
struct Envelope {
    error: Option<Detail>,
    // Some GLM gateways answer with a flat `{"code","msg"}` body instead.
    code: Option<Value>,
    msg: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct Detail {
    code: Option<Value>,
    message: Option<String>,
}

/// Codes come as strings ("1113") in the documented shape, as numbers in
/// others.
fn code_text(code: Option<Value>) -> Option<String> {
    match code? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Classifies a failure from its status, business code and message.
fn classify(status: u16, code: Option<&str>, message: &str, retry_after_ms: Option<u64>) -> ErrorKind {
    if (500..=599).contains(&status) {
        return ErrorKind::Unavailable;
    }
    match code.and_then(|c| c.parse::<u32>().ok()) {
        Some(1000..=1004) => return ErrorKind::Unauthorized,
        // Insufficient balance, sent with 429: retrying cannot help.
        Some(1113) => return ErrorKind::QuotaExceeded,
        // The rest of the account range: locked, disabled, in arrears.
        Some(1110..=1121) => return ErrorKind::Forbidden,
        Some(1302) => return ErrorKind::RateLimited(retry_after_ms),
        _ => {}
    }
    match status {
        // No file-management permission (the API is "beta" on some accounts).
        434 => ErrorKind::Forbidden,
        435 => ErrorKind::TooLarge,
        // A 429 without a known code: the message still tells balance and
        // locks (fatal) from throttling (retried, a bounded number of times).
        429 => {
            let lower = message.to_lowercase();
            let says = |words: &[&str]| words.iter().any(|w| lower.contains(w));
            if says(&["balance", "arrear", "余额", "欠费"]) {
                ErrorKind::QuotaExceeded
            } else if says(&["locked", "disabled", "锁定", "禁用"]) {
                ErrorKind::Forbidden
            } else {
                ErrorKind::RateLimited(retry_after_ms)
            }
        }
        _ => ErrorKind::from_status(status, retry_after_ms),
    }
}

/// The classified error of a non-2xx response; `context` says what was being
/// done (`uploading report.pdf (purpose file-extract)`).
pub fn from_response(response: &Response, context: &str) -> ProviderError {
    let status = response.status;
    if (300..=399).contains(&status) {
        let to = response.header("location").unwrap_or("nowhere");
        return ProviderError::new(
            ErrorKind::Other,
            format!("{context}: GLM answered a redirect to {to}; check base_url (Wharf does not follow redirects)"),
        )
        .with_status(status);
    }
    let body = response.bytes().unwrap_or_default();
    let envelope: Envelope = serde_json::from_slice(&body).unwrap_or_default();
    let detail = envelope.error.unwrap_or_default();
    let code = code_text(detail.code).or_else(|| code_text(envelope.code));
    let message = detail.message.or(envelope.message).or(envelope.msg).unwrap_or_else(|| {
        let start = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
        if start.is_empty() { "no error message".to_string() } else { format!("body starts: {start}") }
    });
    let kind = classify(status, code.as_deref(), &message, response.retry_after_ms());
    let hint = match kind {
        ErrorKind::NotFound => {
            " (GLM deleted it, or it expired: Z.ai keeps agent files 180 days; Wharf's cache keeps the original)"
        }
        ErrorKind::QuotaExceeded => " (not retried: top up the GLM account or free quota)",
        _ => "",
    };
    let mut error = ProviderError::new(kind, format!("{context}: {message}{hint}")).with_status(status);
    error.code = code;
    error
}
