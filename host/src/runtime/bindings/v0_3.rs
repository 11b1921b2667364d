//! Host bindings of `wharf:provider@0.3.0` (`wit/provider.wit`), the current
//! contract. Its types are the host's own: other versions convert to them.

wasmtime::component::bindgen!({
    world: "provider",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wharf:provider/types.body": crate::body::Body,
    },
});

pub use self::exports::wharf::provider::adapter::{
    ByteRange, Capabilities, ContentKind, DownloadResult, DownloadSupport, ObjectRef, Page, UploadRequest,
};
pub use self::wharf::provider::types::{ErrorKind, ObjectInfo, ProviderError};
