//! Reading provider responses.

use serde::de::DeserializeOwned;

use crate::http::Response;
use crate::{ErrorKind, ProviderError};

/// The most an adapter reads of a metadata or error body (JSON, XML).
pub const MAX_METADATA_BYTES: u64 = 4 * 1024 * 1024;

impl Response {
    /// The value of a header (names are lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The wait a throttled provider asked for: `retry-after-ms`, or
    /// `retry-after` in seconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        if let Some(ms) = self.header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
            return Some(ms.max(0.0) as u64);
        }
        let secs = self.header("retry-after")?.trim().parse::<f64>().ok()?;
        Some((secs.max(0.0) * 1000.0) as u64)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Reads a small body (metadata or an error) into memory.
    pub fn bytes(&self) -> Result<Vec<u8>, ProviderError> {
        self.body.read_all(MAX_METADATA_BYTES)
    }

    /// Reads the body as text, replacing invalid UTF-8.
    pub fn text(&self) -> Result<String, ProviderError> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }

    /// Parses the body as JSON, reporting one that is not the expected JSON
    /// with the start of the body. A success answer that does not parse was
    /// most likely damaged on the way (a proxy cut or garbled it), so it is
    /// `unavailable` and retried; the retry policy bounds a provider that
    /// keeps sending it.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        let bytes = self.bytes()?;
        serde_json::from_slice(&bytes).map_err(|e| {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            let kind = if self.is_success() { ErrorKind::Unavailable } else { ErrorKind::Other };
            ProviderError::new(kind, format!("unexpected response (HTTP {}): {e}; body starts: {start}", self.status))
                .with_status(self.status)
        })
    }
}
