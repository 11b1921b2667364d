//! Building and classifying [`ProviderError`]s.

use crate::{ErrorKind, ProviderError};

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, status: None, code: None, message: message.into() }
    }

    /// The provider does not offer `what`; answered without sending a request.
    pub fn unsupported(what: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, what)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

impl ErrorKind {
    /// The usual meaning of an HTTP status, for providers whose status codes
    /// mean what they say. Adapters refine it from the error body where the
    /// provider overloads a status (GLM's 429 for an empty balance,
    /// Supabase's 400 for everything).
    pub fn from_status(status: u16, retry_after_ms: Option<u64>) -> Self {
        match status {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            410 => ErrorKind::Gone,
            413 => ErrorKind::TooLarge,
            408 | 429 => ErrorKind::RateLimited(retry_after_ms),
            400..=499 => ErrorKind::InvalidRequest,
            500..=599 => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        }
    }
}
