//! `wharf:provider/types`: the `body` resource.

use wasmtime::component::Resource;

use crate::body::{Body, BodyError, Trailed};
use crate::runtime::bindings::v0_3::wharf::provider::types::{Host, HostBody};
use crate::runtime::bindings::{ErrorKind, ProviderError};
use crate::runtime::state::CallState;

/// The most an adapter may read into its memory at once, whatever it asks.
const READ_ALL_CAP: u64 = 64 << 20;

impl From<BodyError> for ProviderError {
    fn from(err: BodyError) -> Self {
        let kind = match err {
            BodyError::TooLarge { .. } => ErrorKind::TooLarge,
            BodyError::Http(_) => ErrorKind::Unavailable,
            BodyError::Consumed
            | BodyError::NotSliceable
            | BodyError::SliceOutOfRange { .. }
            | BodyError::NotFramable
            | BodyError::SendOnly
            | BodyError::BadTrailerName(_) => ErrorKind::InvalidRequest,
            _ => ErrorKind::Other,
        };
        ProviderError::new(kind, err.to_string())
    }
}

impl Host for CallState {}

impl HostBody for CallState {
    async fn new(&mut self, bytes: Vec<u8>) -> wasmtime::Result<Resource<Body>> {
        Ok(self.table.push(Body::Bytes(bytes.into()))?)
    }

    async fn size(&mut self, body: Resource<Body>) -> wasmtime::Result<Option<u64>> {
        Ok(self.table.get(&body)?.size())
    }

    async fn slice(
        &mut self,
        body: Resource<Body>,
        offset: u64,
        length: u64,
    ) -> wasmtime::Result<Result<Resource<Body>, ProviderError>> {
        match self.table.get(&body)?.slice(offset, length) {
            Ok(part) => Ok(Ok(self.table.push(part)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn with_sha256_trailer(
        &mut self,
        body: Resource<Body>,
        name: String,
    ) -> wasmtime::Result<Result<Resource<Body>, ProviderError>> {
        match Trailed::new(self.table.get(&body)?, &name) {
            Ok(framed) => Ok(Ok(self.table.push(Body::Trailed(framed))?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn read_all(
        &mut self,
        body: Resource<Body>,
        max_bytes: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, ProviderError>> {
        let max = max_bytes.min(READ_ALL_CAP);
        Ok(self.table.get_mut(&body)?.read_all(max).await.map_err(Into::into))
    }

    async fn drop(&mut self, body: Resource<Body>) -> wasmtime::Result<()> {
        self.table.delete(body)?;
        Ok(())
    }
}
