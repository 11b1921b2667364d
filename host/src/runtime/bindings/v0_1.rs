//! Host bindings of `wharf:provider@0.1.0` (`wit/0.1.0/provider.wit`): no
//! byte ranges, no `resolve`. What it shares with the current version comes
//! from [`bridge_older_version!`]; its capabilities convert here, declaring
//! neither.

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

bridge_older_version!();

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
