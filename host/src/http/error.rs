//! The one mapping from failures to HTTP answers: `application/problem+json`
//! (RFC 9457) with a status, a title and a detail that names what failed.
//! Messages come from the gateway's errors, which never carry a secret.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::gateway::GatewayError;
use crate::runtime::{CallError, ErrorKind};
use crate::sandbox::SandboxError;
use crate::validation::Refusal;

/// A failed request, as the client will see it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<Duration>,
    /// `WWW-Authenticate` (401).
    pub challenge: Option<String>,
    /// The size of the file, for 416's `Content-Range: bytes */SIZE`.
    pub unsatisfiable_size: Option<u64>,
    /// Adds `Connection: close`: the request body was not read to its end,
    /// so the connection cannot carry another request.
    pub close: bool,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            retry_after: None,
            challenge: None,
            unsatisfiable_size: None,
            close: false,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401 with a bearer challenge naming where the resource's metadata is (RFC 9728).
    pub fn unauthorized(detail: impl Into<String>, resource_metadata: Option<&str>) -> Self {
        let challenge = match resource_metadata {
            Some(url) => format!("Bearer realm=\"wharf\", resource_metadata=\"{url}\""),
            None => "Bearer realm=\"wharf\"".to_string(),
        };
        Self { challenge: Some(challenge), ..Self::new(StatusCode::UNAUTHORIZED, detail) }
    }
}

/// The status for a provider's classified failure: the client's own mistakes
/// keep their meaning; the provider's troubles are a bad gateway.
fn provider_status(kind: &ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound | ErrorKind::Gone => StatusCode::NOT_FOUND,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::InvalidRequest => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::RateLimited(_) | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unauthorized | ErrorKind::Forbidden | ErrorKind::QuotaExceeded | ErrorKind::Other => {
            StatusCode::BAD_GATEWAY
        }
    }
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        use GatewayError as E;
        let status = match &error {
            E::Sandbox(SandboxError::OutsideRoots { .. } | SandboxError::Escapes { .. }) => StatusCode::FORBIDDEN,
            E::Sandbox(SandboxError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                StatusCode::NOT_FOUND
            }
            E::Sandbox(SandboxError::NotAFile { .. }) => StatusCode::BAD_REQUEST,
            E::Sandbox(_) => StatusCode::INTERNAL_SERVER_ERROR,
            E::Call(CallError::Provider { error, .. }) => provider_status(&error.kind),
            E::Call(CallError::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
            E::Call(_) => StatusCode::BAD_GATEWAY,
            E::Catalog(_) => StatusCode::INTERNAL_SERVER_ERROR,
            E::UnknownProvider { .. } | E::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            E::UnknownId(_) | E::UnknownLink | E::UnknownToken(_) | E::NotAtProvider { .. } => StatusCode::NOT_FOUND,
            E::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            E::NoOriginal { .. } => StatusCode::GONE,
            E::NoCopyServed { .. } => StatusCode::BAD_GATEWAY,
            E::ReferenceNotAllowed { .. } => StatusCode::FORBIDDEN,
            E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::Write { .. } | E::Read(_) | E::Input { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            E::NotOriginal { .. } | E::Corrupt { .. } | E::Unconfirmed { .. } => StatusCode::BAD_GATEWAY,
            E::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            E::LinkUnavailable(_) => StatusCode::GONE,
            E::Changed { .. } => StatusCode::CONFLICT,
            E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            E::Refused(refusal) => match **refusal {
                Refusal::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                Refusal::TypeNotAllowed { .. } | Refusal::NameContradicts { .. } | Refusal::Infected { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                // The content may be fine: the scanner is what failed.
                Refusal::ScanFailed { .. } => StatusCode::SERVICE_UNAVAILABLE,
                Refusal::Read { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
        };
        let retry_after = match &error {
            E::RateLimited { retry_after } => Some(*retry_after),
            E::Call(CallError::Provider { error, .. }) => match error.kind {
                ErrorKind::RateLimited(Some(ms)) => Some(Duration::from_millis(ms)),
                _ => None,
            },
            _ => None,
        };
        if status.is_server_error() {
            tracing::warn!("{status}: {error}");
        }
        Self {
            retry_after,
            unsatisfiable_size: match error {
                E::RangeNotSatisfiable { size } => Some(size),
                _ => None,
            },
            ..Self::new(status, error.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let problem = Problem { kind: "about:blank", title, status: self.status.as_u16(), detail: &self.detail };
        let body = serde_json::to_vec(&problem).expect("a problem serializes");
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if self.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(size) = self.unsatisfiable_size {
            headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"));
        }
        response
    }
}
