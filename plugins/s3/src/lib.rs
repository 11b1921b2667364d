//! The S3 adapter: objects in a bucket of AWS S3 or an S3-compatible store
//! (MinIO, SeaweedFS, Ceph, R2, Supabase's S3 endpoint), addressed by the
//! SHA-256 of their content and signed with SigV4.
//!
//! Bulk bytes never enter the adapter: uploads hand the host's body (or slices
//! of it, for multipart) to the request, and downloads return the response's
//! body. The secret access key stays in the host (see `sigv4`).

mod config;
mod core;
mod error;
mod parse;
mod reference;
mod sigv4;

use wharf_adapter_sdk::{
    ByteRange, Capabilities, DownloadResult, DownloadSupport, ObjectInfo, ObjectRef, Page, Provider, ProviderError,
    UploadRequest, export_adapter,
};

/// S3's portable ceiling for one object (AWS now allows more; compatible
/// stores mostly do not).
const MAX_OBJECT_SIZE: u64 = 5 << 40;

struct S3;

impl Provider for S3 {
    const NAME: &'static str = "S3";

    fn init(config_json: &str) -> Result<Capabilities, ProviderError> {
        let config = config::Config::parse(config_json)?;
        // Presigning needs the access key id in the adapter; see the config.
        let presign = config.access_key_id_for_presign.is_some();
        config::CONFIG.set(config);
        Ok(Capabilities {
            download: DownloadSupport::Original,
            stat: true,
            list: true,
            delete: true,
            presign,
            resumable_upload: false,
            persistent: true,
            max_size: Some(MAX_OBJECT_SIZE),
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

    fn presign(target: &ObjectRef, expires_in_secs: u64) -> Result<String, ProviderError> {
        core::presign(&target.remote_id, expires_in_secs)
    }
}

export_adapter!(S3);
