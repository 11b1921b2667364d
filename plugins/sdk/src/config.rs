//! The adapter's `config` table from providers.toml arrives in `init` as JSON.

use serde::de::DeserializeOwned;
use std::sync::OnceLock;

use crate::{ErrorKind, ProviderError};

/// Parses the config JSON into the adapter's own type. Unknown keys and wrong
/// types become an `invalid-request` error that the host reports against the
/// provider's entry in providers.toml.
pub fn parse<T: DeserializeOwned>(config_json: &str) -> Result<T, ProviderError> {
    serde_json::from_str(config_json)
        .map_err(|e| ProviderError::new(ErrorKind::InvalidRequest, format!("invalid config: {e}")))
}

/// Holds the parsed config for the rest of the instance's life. An instance
/// serves one `init` and then one operation, so this is set exactly once.
pub struct Slot<T>(OnceLock<T>);

impl<T> Slot<T> {
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// Stores the config; a second `init` in the same instance keeps the first.
    pub fn set(&self, config: T) {
        let _ = self.0.set(config);
    }

    /// The config stored by `init`. The host always calls `init` first; an
    /// operation reached without it is a host bug, reported as such.
    pub fn get(&self) -> Result<&T, ProviderError> {
        self.0.get().ok_or_else(|| ProviderError::new(ErrorKind::Other, "operation called before init"))
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}
