//! The local adapter, Wharf's embedded default: objects live in the directory
//! that providers.toml grants this adapter (`storage_dir`), named by their
//! SHA-256, so the same bytes are stored once.
//!
//! Bulk bytes move through the host's `storage` interface; the adapter itself
//! touches only small metadata files, through the WASI preopen of the same
//! directory.

mod config;
mod core;
mod error;

use wharf_adapter_sdk::{
    ByteRange, Capabilities, DownloadResult, DownloadSupport, ObjectInfo, ObjectRef, Page, Provider, ProviderError,
    UploadRequest, export_adapter,
};

struct Local;

impl Provider for Local {
    const NAME: &'static str = "the local provider";

    fn init(config_json: &str) -> Result<Capabilities, ProviderError> {
        config::CONFIG.set(config::Config::parse(config_json)?);
        Ok(Capabilities {
            download: DownloadSupport::Original,
            stat: true,
            list: true,
            delete: true,
            presign: false,
            resumable_upload: false,
            persistent: true,
            max_size: None,
            ranged_download: true,
            resolve: true,
        })
    }

    fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
        core::upload(req)
    }

    fn download(target: &ObjectRef, derived: bool, range: Option<&ByteRange>) -> Result<DownloadResult, ProviderError> {
        core::download(&target.remote_id, derived, range)
    }

    fn resolve(reference: &str) -> Result<ObjectInfo, ProviderError> {
        core::resolve(reference)
    }

    fn stat(target: &ObjectRef) -> Result<ObjectInfo, ProviderError> {
        core::stat(&target.remote_id)
    }

    fn list(cursor: Option<&str>, limit: u32) -> Result<Page, ProviderError> {
        core::list(cursor, limit)
    }

    fn delete(target: &ObjectRef) -> Result<(), ProviderError> {
        core::delete(&target.remote_id)
    }

    fn presign(_target: &ObjectRef, _expires_in_secs: u64) -> Result<String, ProviderError> {
        Err(ProviderError::unsupported("the local provider has no URLs of its own; use Wharf's HTTP download links"))
    }
}

export_adapter!(Local);
