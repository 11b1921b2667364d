//! An adapter built for a contract version the host does not know
//! (`wharf:provider@0.9.0`, in `wit/` beside this crate). The host refuses it
//! by name instead of failing to link it.

wit_bindgen::generate!({
    world: "provider",
    path: "wit",
});

use exports::wharf::provider::adapter::{
    ByteRange, Capabilities, DownloadResult, DownloadSupport, Guest, ObjectRef, Page, UploadRequest,
};
use wharf::provider::types::{ErrorKind, ObjectInfo, ProviderError};

fn unsupported() -> ProviderError {
    ProviderError { kind: ErrorKind::Unsupported, status: None, code: None, message: "nothing is offered".into() }
}

struct Future;

impl Guest for Future {
    fn init(_config_json: String) -> Result<Capabilities, ProviderError> {
        Ok(Capabilities {
            download: DownloadSupport::None,
            stat: false,
            list: false,
            delete: false,
            presign: false,
            resumable_upload: false,
            persistent: false,
            max_size: None,
            ranged_download: false,
            resolve: false,
        })
    }
    fn upload(_req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
        Err(unsupported())
    }
    fn download(_t: ObjectRef, _d: bool, _r: Option<ByteRange>) -> Result<DownloadResult, ProviderError> {
        Err(unsupported())
    }
    fn resolve(_reference: String) -> Result<ObjectInfo, ProviderError> {
        Err(unsupported())
    }
    fn stat(_t: ObjectRef) -> Result<ObjectInfo, ProviderError> {
        Err(unsupported())
    }
    fn list(_c: Option<String>, _l: u32) -> Result<Page, ProviderError> {
        Err(unsupported())
    }
    fn delete(_t: ObjectRef) -> Result<(), ProviderError> {
        Err(unsupported())
    }
    fn presign(_t: ObjectRef, _e: u64) -> Result<String, ProviderError> {
        Err(unsupported())
    }
}

export!(Future);
