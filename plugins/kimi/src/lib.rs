//! The Kimi (Moonshot AI) adapter: files for Kimi's models, through its
//! OpenAI-style Files API. Kimi extracts text from what it is sent and
//! gives back only that text, so the adapter declares `derived` downloads
//! and the host keeps the original bytes in its cache provider.

mod config;
mod core;
mod error;

use wharf_adapter_sdk::{
    Adapter, ByteRange, Capabilities, DownloadResult, DownloadSupport, ObjectInfo, ObjectRef, Page, ProviderError,
    UploadRequest, export_adapter,
};

struct Kimi;

impl Adapter for Kimi {
    fn init(config_json: String) -> Result<Capabilities, ProviderError> {
        config::CONFIG.set(config::Config::parse(&config_json)?);
        Ok(Capabilities {
            download: DownloadSupport::Derived,
            stat: true,
            list: true,
            delete: true,
            presign: false,
            resumable_upload: false,
            // Kimi documents no expiry: files stay until deleted.
            persistent: true,
            max_size: Some(core::MAX_FILE_BYTES),
            ranged_download: false,
            resolve: false,
        })
    }

    fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
        core::upload(req)
    }

    fn download(target: ObjectRef, derived: bool, range: Option<ByteRange>) -> Result<DownloadResult, ProviderError> {
        if range.is_some_and(|r| !r.is_whole()) {
            return Err(ProviderError::unsupported("Kimi serves whole files only, not byte ranges"));
        }
        core::download(&target.remote_id, derived)
    }

    fn resolve(_reference: String) -> Result<ObjectInfo, ProviderError> {
        Err(ProviderError::unsupported(
            "Kimi cannot give the original bytes of a file it did not get through Wharf, so its files cannot be registered",
        ))
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

    fn presign(_target: ObjectRef, _expires_in_secs: u64) -> Result<String, ProviderError> {
        Err(ProviderError::unsupported("Kimi has no shareable file URLs"))
    }
}

export_adapter!(Kimi);
