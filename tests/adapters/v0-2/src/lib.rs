//! An adapter built for `wharf:provider@0.2.0`, before checksum trailers:
//! objects in the granted directory, named by their SHA-256, read whole or
//! by range. It proves that the host still serves adapters of that contract,
//! ranges included.

wit_bindgen::generate!({
    world: "provider",
    path: "../../../wit/0.2.0",
});

use exports::wharf::provider::adapter::{
    ByteRange, Capabilities, ContentKind, DownloadResult, DownloadSupport, Guest, ObjectRef, Page, UploadRequest,
};
use wharf::provider::storage;
use wharf::provider::types::{ErrorKind, ObjectInfo, ProviderError};

fn refused(kind: ErrorKind, message: String) -> ProviderError {
    ProviderError { kind, status: None, code: None, message }
}

fn unsupported(what: &str) -> ProviderError {
    refused(ErrorKind::Unsupported, format!("{what} is not offered"))
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

struct V02;

impl Guest for V02 {
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
            ranged_download: true,
            resolve: false,
        })
    }

    fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
        let size = storage::write(&path_of(&req.sha256), req.content)?;
        Ok(info(&req.sha256, Some(size)))
    }

    fn download(target: ObjectRef, derived: bool, range: Option<ByteRange>) -> Result<DownloadResult, ProviderError> {
        if derived {
            return Err(unsupported("derived content"));
        }
        let whole = storage::open(&path_of(&target.remote_id))?;
        let content = match range {
            None => whole,
            Some(ByteRange { offset, length }) => {
                let size = whole.size().unwrap_or(0);
                if offset > size {
                    return Err(refused(ErrorKind::InvalidRequest, format!("offset {offset} is past {size} bytes")));
                }
                let length = length.unwrap_or(size - offset).min(size - offset);
                whole.slice(offset, length)?
            }
        };
        Ok(DownloadResult { content, kind: ContentKind::Original, mime: None })
    }

    fn resolve(_reference: String) -> Result<ObjectInfo, ProviderError> {
        Err(unsupported("resolving references"))
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

export!(V02);
