//! The Kimi (Moonshot AI) adapter: files for Kimi's models, through its
//! OpenAI-style Files API. Kimi extracts text from what it is sent and
//! gives back only that text, so the adapter declares `derived` downloads
//! and the host keeps the original bytes in its cache provider.

mod config;
mod core;
mod error;

use wharf_adapter_sdk::{
    ByteRange, Capabilities, DownloadResult, DownloadSupport, ObjectInfo, ObjectRef, Page, Provider, ProviderError,
    UploadRequest, export_adapter,
};

struct Kimi;

impl Provider for Kimi {
    const NAME: &'static str = "Kimi";

    fn init(config_json: &str) -> Result<Capabilities, ProviderError> {
        config::CONFIG.set(config::Config::parse(config_json)?);
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

    fn download(
        target: &ObjectRef,
        derived: bool,
        _range: Option<&ByteRange>,
    ) -> Result<DownloadResult, ProviderError> {
        core::download(&target.remote_id, derived)
    }

    fn resolve(_reference: &str) -> Result<ObjectInfo, ProviderError> {
        Err(ProviderError::unsupported(
            "Kimi cannot give the original bytes of a file it did not get through Wharf, so its files cannot be registered",
        ))
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
}

export_adapter!(Kimi);
