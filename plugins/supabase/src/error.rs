//! How Supabase Storage failures map to the contract's error kinds.
//!
//! The REST API answers almost every client error with HTTP 400 and puts the
//! real status in the body: `{"statusCode":"404","error":"not_found",
//! "code":"NoSuchKey","message":"Object not found"}`. Real HTTP statuses come
//! only for 5xx, JWT/role denials (403), bad ranges (416), throttling (429),
//! aborted requests (499) and the TUS routes, whose bodies are often plain
//! text. So the body's `code` decides first, then its `statusCode`, and the
//! HTTP status only when the body says nothing.

use serde_json::Value;
use wharf_adapter_sdk::http::Response;
use wharf_adapter_sdk::{ErrorKind, ProviderError};

/// The most of a non-JSON error body quoted in a message.
const QUOTED_BODY_CHARS: usize = 300;

/// One failed answer, read from its status, headers and body.
#[derive(Debug)]
pub struct ApiError {
    pub http_status: u16,
    /// The body's `statusCode` when it has one, else the HTTP status.
    pub status: u16,
    pub code: Option<String>,
    /// The body's short `error` field (`Duplicate`, `not_found`, ...).
    pub error: Option<String>,
    pub message: String,
    retry_after_ms: Option<u64>,
}

impl ApiError {
    /// Reads a failed response. An unreadable body still yields an error
    /// that names the status.
    pub fn read(response: &Response) -> Self {
        let body = response.bytes().unwrap_or_default();
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
        };
        let status = field("statusCode").and_then(|s| s.parse::<u16>().ok()).unwrap_or(response.status);
        let message = field("message").unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            if text.is_empty() { "no error body".to_string() } else { text.chars().take(QUOTED_BODY_CHARS).collect() }
        });
        Self {
            http_status: response.status,
            status,
            code: field("code"),
            error: field("error"),
            message,
            retry_after_ms: response.retry_after_ms(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self.code.as_deref() {
            Some("NoSuchKey" | "NoSuchBucket" | "NoSuchUpload") => ErrorKind::NotFound,
            // Creating a key that exists is refused for good: retrying sends the
            // same request. `upsert = true` is the fix, named in the message.
            Some("KeyAlreadyExists" | "ResourceAlreadyExists") => ErrorKind::InvalidRequest,
            Some("EntityTooLarge") => ErrorKind::TooLarge,
            Some(
                "InvalidMimeType"
                | "InvalidKey"
                | "InvalidRequest"
                | "InvalidRange"
                | "InvalidParameter"
                | "MissingParameter"
                | "MissingContentLength"
                | "InvalidUploadId",
            ) => ErrorKind::InvalidRequest,
            Some("AccessDenied" | "SignatureDoesNotMatch") => ErrorKind::Forbidden,
            Some("InvalidJWT" | "InvalidSignature" | "ExpiredToken") => ErrorKind::Unauthorized,
            Some("SlowDown" | "DatabaseConnectionLimit") => ErrorKind::RateLimited(self.retry_after_ms),
            Some(
                "DatabaseTimeout" | "DatabaseReadOnly" | "InternalError" | "DatabaseError" | "ResourceLocked"
                | "LockTimeout" | "Aborted" | "AbortedTerminate",
            ) => ErrorKind::Unavailable,
            Some("FeatureNotEnabled" | "NotSupported") => ErrorKind::Unsupported,
            _ => match self.status {
                // Aborted by the client side of a proxy, or a held lock: transient.
                423 | 499 => ErrorKind::Unavailable,
                status => ErrorKind::from_status(status, self.retry_after_ms),
            },
        }
    }

    /// Whether a `list-v2` refusal means the project lacks the cursor listing
    /// (so v1 should answer instead): `FeatureNotEnabled`, the route missing
    /// (404 without a code: a missing bucket says `NoSuchBucket`), or the
    /// multitenant server's bare `{"message":"This feature is not available
    /// for your tenant"}`.
    pub fn lacks_feature(&self) -> bool {
        match self.code.as_deref() {
            Some("FeatureNotEnabled" | "NotSupported") => true,
            Some(_) => false,
            None => self.status == 404 || (self.status == 400 && self.message.contains("not available")),
        }
    }

    /// The contract's error, naming the operation and what it was about.
    pub fn into_provider_error(self, what: &str) -> ProviderError {
        let mut message = format!("Supabase {what}: {}", self.message);
        if let Some(error) = self.error.as_ref().filter(|e| Some(*e) != self.code.as_ref()) {
            message.push_str(&format!(" ({error})"));
        }
        if self.status != self.http_status {
            message.push_str(&format!("; answered HTTP {} carrying status {}", self.http_status, self.status));
        }
        let duplicate = matches!(self.code.as_deref(), Some("KeyAlreadyExists" | "ResourceAlreadyExists"))
            || (self.status == 409 && self.message.contains("already exists"));
        if duplicate {
            message.push_str("; set upsert = true in the provider's config to overwrite it");
        }
        let mut error = ProviderError::new(self.kind(), message).with_status(self.status);
        error.code = self.code.or(self.error);
        error
    }
}

/// A failed response as a contract error.
pub fn from_response(response: &Response, what: &str) -> ProviderError {
    ApiError::read(response).into_provider_error(what)
}
