//! An adapter built for `wharf:provider@0.1.0`, before byte ranges and
//! `resolve`: objects in the granted directory, named by their SHA-256. It
//! proves that the host still serves adapters of the older contract.

wit_bindgen::generate!({
    world: "provider",
    path: "../../../wit/0.1.0",
});

use exports::wharf::provider::adapter::{
    Capabilities, ContentKind, DownloadResult, DownloadSupport, Guest, ObjectRef, Page, UploadRequest,
};
use wharf::provider::storage;
use wharf::provider::types::{ErrorKind, ObjectInfo, ProviderError};

fn unsupported(what: &str) -> ProviderError {
    ProviderError { kind: ErrorKind::Unsupported, status: None, code: None, message: format!("{what} is not offered") }
}

fn path_of(remote_id: &str) -> String {
    format!("objects/{remote_id}")
}

fn info(remote_id: &str, size: Option<u64>) -> ObjectInfo {
    ObjectInfo {
        remote_id: remote_id.to_string(),
        name: None,
        size,
        sha256: Some(remote_id.to_string()),
        mime: None,
        purpose: None,
        created_at: None,
        expires_at: None,
    }
}

struct V01;

impl Guest for V01 {
    fn init(_config_json: String) -> Result<Capabilities, ProviderError> {
        Ok(Capabilities {
            download: DownloadSupport::Original,
            stat: true,
            list: false,
            delete: false,
            presign: false,
            resumable_upload: false,
            persistent: true,
            max_size: None,
        })
    }

    fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
        let size = storage::write(&path_of(&req.sha256), req.content)?;
        Ok(info(&req.sha256, Some(size)))
    }

    fn download(target: ObjectRef, derived: bool) -> Result<DownloadResult, ProviderError> {
        if derived {
            return Err(unsupported("derived content"));
        }
        let content = storage::open(&path_of(&target.remote_id))?;
        Ok(DownloadResult { content, kind: ContentKind::Original, mime: None })
    }

    fn stat(target: ObjectRef) -> Result<ObjectInfo, ProviderError> {
        let content = storage::open(&path_of(&target.remote_id))?;
        Ok(info(&target.remote_id, content.size()))
    }

    fn list(_cursor: Option<String>, _limit: u32) -> Result<Page, ProviderError> {
        Err(unsupported("listing"))
    }

    fn delete(_target: ObjectRef) -> Result<(), ProviderError> {
        Err(unsupported("deleting"))
    }

    fn presign(_target: ObjectRef, _expires_in_secs: u64) -> Result<String, ProviderError> {
        Err(unsupported("presigning"))
    }
}

export!(V01);
