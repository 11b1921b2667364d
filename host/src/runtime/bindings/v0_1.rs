//! Host bindings of `wharf:provider@0.1.0` (`wit/0.1.0/provider.wit`): no
//! byte ranges, no `resolve`. Its imports are the current ones under an
//! older name ([`imports_of_older_version!`]); its exports convert into the
//! host's types (those of the current version).

wasmtime::component::bindgen!({
    world: "provider",
    path: "../wit/0.1.0",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wharf:provider/types.body": crate::body::Body,
    },
});

use self::exports::wharf::provider::adapter;
use self::wharf::provider::{http, log, secrets, storage, types};

imports_of_older_version!();

/// A 0.1.0 adapter offers neither byte ranges nor `resolve`.
impl From<adapter::Capabilities> for v0_3::Capabilities {
    fn from(c: adapter::Capabilities) -> Self {
        Self {
            download: match c.download {
                adapter::DownloadSupport::Original => v0_3::DownloadSupport::Original,
                adapter::DownloadSupport::Derived => v0_3::DownloadSupport::Derived,
                adapter::DownloadSupport::None => v0_3::DownloadSupport::None,
            },
            stat: c.stat,
            list: c.list,
            delete: c.delete,
            presign: c.presign,
            resumable_upload: c.resumable_upload,
            persistent: c.persistent,
            max_size: c.max_size,
            ranged_download: false,
            resolve: false,
        }
    }
}

impl From<adapter::DownloadResult> for v0_3::DownloadResult {
    fn from(d: adapter::DownloadResult) -> Self {
        let kind = match d.kind {
            adapter::ContentKind::Original => v0_3::ContentKind::Original,
            adapter::ContentKind::Derived => v0_3::ContentKind::Derived,
        };
        Self { content: d.content, kind, mime: d.mime }
    }
}

impl From<adapter::Page> for v0_3::Page {
    fn from(p: adapter::Page) -> Self {
        Self { items: p.items.into_iter().map(Into::into).collect(), next_cursor: p.next_cursor }
    }
}

impl From<&v0_3::ObjectRef> for adapter::ObjectRef {
    fn from(r: &v0_3::ObjectRef) -> Self {
        Self { remote_id: r.remote_id.clone(), purpose: r.purpose.clone() }
    }
}

impl From<v0_3::UploadRequest> for adapter::UploadRequest {
    fn from(r: v0_3::UploadRequest) -> Self {
        Self { content: r.content, name: r.name, mime: r.mime, size: r.size, sha256: r.sha256, purpose: r.purpose }
    }
}
