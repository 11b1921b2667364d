//! Host bindings of `wharf:provider@0.1.0` (`wit/0.1.0/provider.wit`): no
//! byte ranges, no `resolve`. Its imports are those of 0.2.0 under the older
//! name, so each one converts its values and calls the 0.2.0 implementation;
//! its exports convert into the host's types (those of 0.2.0).

use wasmtime::component::Resource;

use super::v0_2;
use crate::body::Body;
use crate::runtime::state::CallState;

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

/// `From` both ways between two copies of the same error-kind variant.
macro_rules! error_kinds_both_ways {
    ($a:path, $b:path) => {
        error_kinds_both_ways!(@one $a => $b);
        error_kinds_both_ways!(@one $b => $a);
    };
    (@one $from:path => $to:path) => {
        impl From<$from> for $to {
            fn from(kind: $from) -> Self {
                use $from as K;
                match kind {
                    K::NotFound => Self::NotFound,
                    K::Gone => Self::Gone,
                    K::Unauthorized => Self::Unauthorized,
                    K::Forbidden => Self::Forbidden,
                    K::RateLimited(after) => Self::RateLimited(after),
                    K::Unavailable => Self::Unavailable,
                    K::QuotaExceeded => Self::QuotaExceeded,
                    K::TooLarge => Self::TooLarge,
                    K::InvalidRequest => Self::InvalidRequest,
                    K::Unsupported => Self::Unsupported,
                    K::Other => Self::Other,
                }
            }
        }
    };
}

error_kinds_both_ways!(v0_2::ErrorKind, types::ErrorKind);

impl From<v0_2::ProviderError> for types::ProviderError {
    fn from(e: v0_2::ProviderError) -> Self {
        Self { kind: e.kind.into(), status: e.status, code: e.code, message: e.message }
    }
}

impl From<types::ProviderError> for v0_2::ProviderError {
    fn from(e: types::ProviderError) -> Self {
        Self { kind: e.kind.into(), status: e.status, code: e.code, message: e.message }
    }
}

impl From<types::ObjectInfo> for v0_2::ObjectInfo {
    fn from(o: types::ObjectInfo) -> Self {
        Self {
            remote_id: o.remote_id,
            name: o.name,
            size: o.size,
            sha256: o.sha256,
            mime: o.mime,
            purpose: o.purpose,
            created_at: o.created_at,
            expires_at: o.expires_at,
        }
    }
}

/// A 0.1.0 adapter offers neither byte ranges nor `resolve`.
impl From<adapter::Capabilities> for v0_2::Capabilities {
    fn from(c: adapter::Capabilities) -> Self {
        Self {
            download: match c.download {
                adapter::DownloadSupport::Original => v0_2::DownloadSupport::Original,
                adapter::DownloadSupport::Derived => v0_2::DownloadSupport::Derived,
                adapter::DownloadSupport::None => v0_2::DownloadSupport::None,
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

impl From<adapter::DownloadResult> for v0_2::DownloadResult {
    fn from(d: adapter::DownloadResult) -> Self {
        let kind = match d.kind {
            adapter::ContentKind::Original => v0_2::ContentKind::Original,
            adapter::ContentKind::Derived => v0_2::ContentKind::Derived,
        };
        Self { content: d.content, kind, mime: d.mime }
    }
}

impl From<adapter::Page> for v0_2::Page {
    fn from(p: adapter::Page) -> Self {
        Self { items: p.items.into_iter().map(Into::into).collect(), next_cursor: p.next_cursor }
    }
}

impl From<&v0_2::ObjectRef> for adapter::ObjectRef {
    fn from(r: &v0_2::ObjectRef) -> Self {
        Self { remote_id: r.remote_id.clone(), purpose: r.purpose.clone() }
    }
}

impl From<v0_2::UploadRequest> for adapter::UploadRequest {
    fn from(r: v0_2::UploadRequest) -> Self {
        Self { content: r.content, name: r.name, mime: r.mime, size: r.size, sha256: r.sha256, purpose: r.purpose }
    }
}

/// Answers of 0.1.0 exports, in the host's types.
pub(super) fn convert<T, U: Into<T>>(
    result: wasmtime::Result<Result<U, types::ProviderError>>,
) -> wasmtime::Result<Result<T, v0_2::ProviderError>> {
    result.map(|answer| answer.map(Into::into).map_err(Into::into))
}

/// Answers of 0.2.0 imports, in 0.1.0's types.
fn back<T, U: Into<T>>(
    result: wasmtime::Result<Result<U, v0_2::ProviderError>>,
) -> wasmtime::Result<Result<T, types::ProviderError>> {
    result.map(|answer| answer.map(Into::into).map_err(Into::into))
}

impl types::Host for CallState {}

impl types::HostBody for CallState {
    async fn new(&mut self, bytes: Vec<u8>) -> wasmtime::Result<Resource<Body>> {
        <Self as v0_2::wharf::provider::types::HostBody>::new(self, bytes).await
    }

    async fn size(&mut self, body: Resource<Body>) -> wasmtime::Result<Option<u64>> {
        <Self as v0_2::wharf::provider::types::HostBody>::size(self, body).await
    }

    async fn slice(
        &mut self,
        body: Resource<Body>,
        offset: u64,
        length: u64,
    ) -> wasmtime::Result<Result<Resource<Body>, types::ProviderError>> {
        back(<Self as v0_2::wharf::provider::types::HostBody>::slice(self, body, offset, length).await)
    }

    async fn read_all(
        &mut self,
        body: Resource<Body>,
        max_bytes: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, types::ProviderError>> {
        back(<Self as v0_2::wharf::provider::types::HostBody>::read_all(self, body, max_bytes).await)
    }

    async fn drop(&mut self, body: Resource<Body>) -> wasmtime::Result<()> {
        <Self as v0_2::wharf::provider::types::HostBody>::drop(self, body).await
    }
}

impl From<http::Request> for v0_2::wharf::provider::http::Request {
    fn from(r: http::Request) -> Self {
        use v0_2::wharf::provider::http::{FormPart, PartContent, RequestBody};
        let body = match r.body {
            http::RequestBody::Empty => RequestBody::Empty,
            http::RequestBody::Bytes(bytes) => RequestBody::Bytes(bytes),
            http::RequestBody::Body(body) => RequestBody::Body(body),
            http::RequestBody::Multipart(parts) => RequestBody::Multipart(
                parts
                    .into_iter()
                    .map(|p| FormPart {
                        name: p.name,
                        filename: p.filename,
                        content_type: p.content_type,
                        content: match p.content {
                            http::PartContent::Text(text) => PartContent::Text(text),
                            http::PartContent::File(body) => PartContent::File(body),
                        },
                    })
                    .collect(),
            ),
        };
        Self { method: r.method, url: r.url, headers: r.headers, body }
    }
}

impl From<v0_2::wharf::provider::http::Response> for http::Response {
    fn from(r: v0_2::wharf::provider::http::Response) -> Self {
        Self { status: r.status, headers: r.headers, body: r.body }
    }
}

impl http::Host for CallState {
    async fn send(&mut self, req: http::Request) -> wasmtime::Result<Result<http::Response, types::ProviderError>> {
        back(<Self as v0_2::wharf::provider::http::Host>::send(self, req.into()).await)
    }

    async fn send_batch(
        &mut self,
        reqs: Vec<http::Request>,
    ) -> wasmtime::Result<Vec<Result<http::Response, types::ProviderError>>> {
        let reqs = reqs.into_iter().map(Into::into).collect();
        let answers = <Self as v0_2::wharf::provider::http::Host>::send_batch(self, reqs).await?;
        Ok(answers.into_iter().map(|answer| answer.map(Into::into).map_err(Into::into)).collect())
    }
}

impl secrets::Host for CallState {
    async fn hmac_sha256(
        &mut self,
        secret: String,
        prefix: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, types::ProviderError>> {
        back(<Self as v0_2::wharf::provider::secrets::Host>::hmac_sha256(self, secret, prefix, data).await)
    }
}

impl storage::Host for CallState {
    async fn write(
        &mut self,
        path: String,
        content: Resource<Body>,
    ) -> wasmtime::Result<Result<u64, types::ProviderError>> {
        back(<Self as v0_2::wharf::provider::storage::Host>::write(self, path, content).await)
    }

    async fn open(&mut self, path: String) -> wasmtime::Result<Result<Resource<Body>, types::ProviderError>> {
        back(<Self as v0_2::wharf::provider::storage::Host>::open(self, path).await)
    }
}

impl log::Host for CallState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        use v0_2::wharf::provider::log::Level;
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        <Self as v0_2::wharf::provider::log::Host>::log(self, level, message).await
    }
}
