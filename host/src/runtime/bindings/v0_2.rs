//! Host bindings of `wharf:provider@0.2.0` (`wit/0.2.0/provider.wit`): all
//! of the current contract but `body.with-sha256-trailer`, which a 0.2.0
//! adapter cannot ask for. What it shares with 0.1.0 comes from
//! [`bridge_older_version!`], which is told the capabilities added in
//! 0.2.0; its byte ranges, also new in 0.2.0, convert here.

wasmtime::component::bindgen!({
    world: "provider",
    path: "../wit/0.2.0",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wharf:provider/types.body": crate::body::Body,
    },
});

use self::exports::wharf::provider::adapter;
use self::wharf::provider::{http, log, secrets, storage, types};

bridge_older_version!(capabilities since 0.1.0: |c| {
    ranged_download: c.ranged_download,
    resolve: c.resolve,
});

impl From<v0_3::ByteRange> for adapter::ByteRange {
    fn from(r: v0_3::ByteRange) -> Self {
        Self { offset: r.offset, length: r.length }
    }
}
