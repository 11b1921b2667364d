//! Everything a Wharf provider adapter needs: the bindings of the
//! `wharf:provider` world (see `wit/README.md`) and helpers for what every
//! adapter repeats: reading its config, classifying HTTP failures, reading
//! small response bodies, byte ranges, percent-encoding, timestamps.
//!
//! An adapter implements [`Provider`] (its capabilities and the operations
//! it offers) and registers it with `wharf_adapter_sdk::export_adapter!(MyAdapter);`.

wit_bindgen::generate!({
    world: "provider",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "export_adapter",
    default_bindings_module: "wharf_adapter_sdk",
});

pub mod config;
pub mod errors;
pub mod percent;
mod provider;
pub mod range;
pub mod response;
pub mod timestamp;

pub use exports::wharf::provider::adapter::{
    ByteRange, Capabilities, ContentKind, DownloadResult, DownloadSupport, ObjectRef, Page, UploadRequest,
};
pub use provider::Provider;
pub use wharf::provider::types::{Body, ErrorKind, ObjectInfo, ProviderError};
pub use wharf::provider::{http, log, secrets, storage};

/// Logs a message through the host, tagged with this adapter's name.
pub fn log_debug(message: &str) {
    log::log(log::Level::Debug, message);
}
