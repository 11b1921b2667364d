//! The GLM adapter: Zhipu BigModel (`open.bigmodel.cn`) and Z.ai
//! (`api.z.ai`), which serve the same OpenAI-style Files API.
//!
//! GLM gives content back only for `batch` and `file-extract` files, and
//! files may be session-bound or expire, so the adapter declares derived
//! downloads and non-persistent storage: the host keeps every original in its
//! cache provider.

mod config;
mod core;
mod error;

use wharf_adapter_sdk::{
    ByteRange, Capabilities, DownloadResult, DownloadSupport, ObjectInfo, ObjectRef, Page, Provider, ProviderError,
    UploadRequest, export_adapter,
};

struct Glm;

impl Provider for Glm {
    const NAME: &'static str = "GLM";

    fn init(config_json: &str) -> Result<Capabilities, ProviderError> {
        config::CONFIG.set(config::Config::parse(config_json)?);
        Ok(Capabilities {
            download: DownloadSupport::Derived,
            stat: true,
            list: true,
            delete: true,
            presign: false,
            resumable_upload: false,
            persistent: false,
            max_size: Some(core::MAX_SIZE),
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
        core::download(target, derived)
    }

    fn resolve(_reference: &str) -> Result<ObjectInfo, ProviderError> {
        Err(ProviderError::unsupported(
            "GLM cannot give the original bytes of a file it did not get through Wharf, so its files cannot be registered",
        ))
    }

    fn stat(target: &ObjectRef) -> Result<ObjectInfo, ProviderError> {
        core::stat(target)
    }

    fn list(cursor: Option<&str>, limit: u32) -> Result<Page, ProviderError> {
        core::list(cursor, limit)
    }

    fn delete(target: &ObjectRef) -> Result<(), ProviderError> {
        core::delete(&target.remote_id)
    }
}

export_adapter!(Glm);
