//! The host side of the contract's imports, one module per interface.

mod body;
mod http;
mod log;
mod secrets;
mod storage;

use super::bindings::{ErrorKind, ProviderError};

impl ProviderError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, status: None, code: None, message: message.into() }
    }
}
