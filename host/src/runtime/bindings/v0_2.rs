//! Host bindings of the `wharf:provider` world (`wit/provider.wit`).

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
