//! The Supabase Storage adapter: objects in one bucket, keyed by
//! `prefix + sha256` of their content.
//!
//! Standard uploads send the host body as the raw request body; above
//! `tus_threshold` bytes, TUS 1.0.0 sends 6 MiB slices of it and resumes a
//! failed chunk from the offset the server reports. Downloads return the
//! response body as is. The key travels only in headers the host fills in
//! (`{{secret:api_key}}`).

mod config;
mod core;
mod error;

use wharf_adapter_sdk::{
    Adapter, Capabilities, DownloadResult, DownloadSupport, ObjectInfo, ObjectRef, Page,
    ProviderError, UploadRequest, export_adapter,
};

struct Supabase;

impl Adapter for Supabase {
    fn init(config_json: String) -> Result<Capabilities, ProviderError> {
        config::CONFIG.set(config::Config::parse(&config_json)?);
        Ok(Capabilities {
            download: DownloadSupport::Original,
            stat: true,
            list: true,
            delete: true,
            presign: true,
            resumable_upload: true,
            persistent: true,
            // Set per project and per bucket (`file_size_limit`); the server
            // answers EntityTooLarge, reported as too-large.
            max_size: None,
        })
    }

    fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
        core::upload(req)
    }

    fn download(target: ObjectRef, derived: bool) -> Result<DownloadResult, ProviderError> {
        core::download(&target.remote_id, derived)
    }

    fn stat(target: ObjectRef) -> Result<ObjectInfo, ProviderError> {
        core::stat(&target.remote_id)
    }

    fn list(cursor: Option<String>, limit: u32) -> Result<Page, ProviderError> {
        core::list(cursor.as_deref(), limit)
    }

    fn delete(target: ObjectRef) -> Result<(), ProviderError> {
        core::delete(&target.remote_id)
    }

    fn presign(target: ObjectRef, expires_in_secs: u64) -> Result<String, ProviderError> {
        core::presign(&target.remote_id, expires_in_secs)
    }
}

export_adapter!(Supabase);
