//! The Supabase Storage adapter: objects in one bucket, keyed by
//! `prefix + sha256` of their content.
//!
//! Standard uploads send the host body as the raw request body; above
//! `tus_threshold` bytes, TUS 1.0.0 sends 6 MiB slices of it and resumes a
//! failed chunk from the offset the server reports. Downloads return the
//! response body as is. The key travels only in headers the host fills in
//! (`{{secret:api_key}}`).
//!
//! ```toml
//! [providers.supabase]
//! plugin = "supabase"
//! allowed_hosts = ["https://<ref>.supabase.co", "https://<ref>.storage.supabase.co"]
//! secrets = { api_key = "SUPABASE_SERVICE_KEY" }
//!
//! [providers.supabase.config]
//! base_url = "https://<ref>.storage.supabase.co/storage/v1"   # required
//! bucket = "files"                                            # required
//! # The defaults:
//! prefix = ""                 # put before each key (the content's SHA-256)
//! upsert = false              # true: overwrite an existing key (x-upsert)
//! tus_threshold = 6291456     # bytes; larger objects go through TUS
//! list_version = "auto"       # "v2" (cursor), "v1" (offset), or v2 falling back to v1
//! signed_url_expiry = 3600    # seconds, when the host asks for no expiry
//! auth = "both"               # or "apikey"
//! ```
//!
//! `auth = "both"` sends the key as `apikey` and as `Authorization: Bearer`
//! (legacy `anon`/`service_role` JWT keys); `auth = "apikey"` sends `apikey`
//! only, for the newer `sb_secret_…`/`sb_publishable_…` keys, which are not
//! JWTs. The TUS server answers with an absolute `Location`, which must be
//! inside `allowed_hosts` too.

mod config;
mod core;
mod error;
mod reference;

use wharf_adapter_sdk::{
    ByteRange, Capabilities, DownloadResult, DownloadSupport, ObjectInfo, ObjectRef, Page, Provider, ProviderError,
    UploadRequest, export_adapter,
};

struct Supabase;

impl Provider for Supabase {
    const NAME: &'static str = "Supabase";

    fn init(config_json: &str) -> Result<Capabilities, ProviderError> {
        config::CONFIG.set(config::Config::parse(config_json)?);
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

export_adapter!(Supabase);
