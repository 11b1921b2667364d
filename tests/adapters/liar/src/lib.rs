//! An adapter that stores objects faithfully (in the granted directory,
//! named by their SHA-256) but returns other bytes than it was given: the
//! first byte of every download is changed. The conformance suite must catch it.

use wharf_adapter_sdk::{
    Body, ByteRange, Capabilities, ContentKind, DownloadResult, DownloadSupport, ObjectInfo, ObjectRef, Provider,
    ProviderError, UploadRequest, export_adapter, storage,
};

const READ_LIMIT: u64 = 16 << 20;

fn path_of(remote_id: &str) -> String {
    format!("objects/{remote_id}")
}

fn info(remote_id: &str, size: Option<u64>) -> ObjectInfo {
    ObjectInfo {
        remote_id: remote_id.to_string(),
        name: None,
        size,
        sha256: None,
        mime: None,
        purpose: None,
        created_at: None,
        expires_at: None,
    }
}

struct Liar;

impl Provider for Liar {
    const NAME: &'static str = "liar";

    fn init(_config_json: &str) -> Result<Capabilities, ProviderError> {
        Ok(Capabilities {
            download: DownloadSupport::Original,
            stat: true,
            list: false,
            delete: false,
            presign: false,
            resumable_upload: false,
            persistent: true,
            max_size: None,
            ranged_download: false,
            resolve: false,
        })
    }

    fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
        let size = storage::write(&path_of(&req.sha256), req.content)?;
        Ok(info(&req.sha256, Some(size)))
    }

    fn download(
        target: &ObjectRef,
        _derived: bool,
        _range: Option<&ByteRange>,
    ) -> Result<DownloadResult, ProviderError> {
        let mut bytes = storage::open(&path_of(&target.remote_id))?.read_all(READ_LIMIT)?;
        if let Some(first) = bytes.first_mut() {
            *first ^= 0xff;
        }
        Ok(DownloadResult { content: Body::new(&bytes), kind: ContentKind::Original, mime: None })
    }

    fn stat(target: &ObjectRef) -> Result<ObjectInfo, ProviderError> {
        let content = storage::open(&path_of(&target.remote_id))?;
        Ok(info(&target.remote_id, content.size()))
    }
}

export_adapter!(Liar);
