//! How filesystem failures map to the contract's error kinds.

use std::io;
use wharf_adapter_sdk::{ErrorKind, ProviderError};

pub fn from_io(err: io::Error, what: &str) -> ProviderError {
    let kind = match err.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => ErrorKind::Forbidden,
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorKind::QuotaExceeded,
        io::ErrorKind::FileTooLarge => ErrorKind::TooLarge,
        _ => ErrorKind::Other,
    };
    ProviderError::new(kind, format!("{what}: {err}"))
}
