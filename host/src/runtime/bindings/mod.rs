//! The contract versions the host speaks, side by side, each with its own
//! bindings (`v0_1`, `v0_2`, `v0_3`), meeting in one set of host types: those
//! of the current version. The rest of the host sees [`Instance`] and never which
//! version an adapter was built for.

#[macro_use]
mod older;
mod v0_1;
mod v0_2;
pub mod v0_3;

use wasmtime::component::{InstancePre, Linker};
use wasmtime::{AsContextMut, Engine};

pub use self::v0_3::{
    ByteRange, Capabilities, ContentKind, DownloadResult, DownloadSupport, ErrorKind, ObjectInfo, ObjectRef, Page,
    ProviderError, UploadRequest,
};
use super::contract::ContractVersion;
use super::state::CallState;

/// Adds the imports of every supported version to the linker.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_3::Provider::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |state| state)?;
    v0_2::Provider::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |state| state)?;
    v0_1::Provider::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |state| state)?;
    Ok(())
}

/// A component linked and checked against the version it targets, ready to instantiate.
pub enum AdapterPre {
    V0_1(v0_1::ProviderPre<CallState>),
    V0_2(v0_2::ProviderPre<CallState>),
    V0_3(v0_3::ProviderPre<CallState>),
}

/// One instance of an adapter, whatever version it speaks.
pub enum Instance {
    V0_1(v0_1::Provider),
    V0_2(v0_2::Provider),
    V0_3(v0_3::Provider),
}

type Answer<T> = wasmtime::Result<Result<T, ProviderError>>;

impl AdapterPre {
    pub fn new(version: ContractVersion, pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        Ok(match version {
            ContractVersion::V0_1 => Self::V0_1(v0_1::ProviderPre::new(pre)?),
            ContractVersion::V0_2 => Self::V0_2(v0_2::ProviderPre::new(pre)?),
            ContractVersion::V0_3 => Self::V0_3(v0_3::ProviderPre::new(pre)?),
        })
    }

    pub fn engine(&self) -> &Engine {
        match self {
            Self::V0_1(pre) => pre.engine(),
            Self::V0_2(pre) => pre.engine(),
            Self::V0_3(pre) => pre.engine(),
        }
    }

    pub async fn instantiate_async(&self, store: impl AsContextMut<Data = CallState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Self::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
            Self::V0_2(pre) => Instance::V0_2(pre.instantiate_async(store).await?),
            Self::V0_3(pre) => Instance::V0_3(pre.instantiate_async(store).await?),
        })
    }
}

impl Instance {
    pub async fn init(&self, store: impl AsContextMut<Data = CallState>, config_json: &str) -> Answer<Capabilities> {
        match self {
            Self::V0_1(i) => v0_1::convert(i.wharf_provider_adapter().call_init(store, config_json).await),
            Self::V0_2(i) => v0_2::convert(i.wharf_provider_adapter().call_init(store, config_json).await),
            Self::V0_3(i) => i.wharf_provider_adapter().call_init(store, config_json).await,
        }
    }

    pub async fn upload(
        &self,
        store: impl AsContextMut<Data = CallState>,
        request: UploadRequest,
    ) -> Answer<ObjectInfo> {
        match self {
            Self::V0_1(i) => v0_1::convert(i.wharf_provider_adapter().call_upload(store, &request.into()).await),
            Self::V0_2(i) => v0_2::convert(i.wharf_provider_adapter().call_upload(store, &request.into()).await),
            Self::V0_3(i) => i.wharf_provider_adapter().call_upload(store, &request).await,
        }
    }

    /// A 0.1.0 adapter declares no `ranged-download`, so the gateway asks it
    /// only for whole objects.
    pub async fn download(
        &self,
        store: impl AsContextMut<Data = CallState>,
        target: &ObjectRef,
        derived: bool,
        range: Option<ByteRange>,
    ) -> Answer<DownloadResult> {
        match self {
            Self::V0_1(i) => {
                if range.is_some_and(|r| r.offset != 0 || r.length.is_some()) {
                    return Ok(Err(ProviderError::new(
                        ErrorKind::Unsupported,
                        "this adapter is built for wharf:provider@0.1.0, which has no byte ranges",
                    )));
                }
                v0_1::convert(i.wharf_provider_adapter().call_download(store, &target.into(), derived).await)
            }
            Self::V0_2(i) => v0_2::convert(
                i.wharf_provider_adapter().call_download(store, &target.into(), derived, range.map(Into::into)).await,
            ),
            Self::V0_3(i) => i.wharf_provider_adapter().call_download(store, target, derived, range).await,
        }
    }

    pub async fn resolve(&self, store: impl AsContextMut<Data = CallState>, reference: &str) -> Answer<ObjectInfo> {
        match self {
            Self::V0_1(_) => Ok(Err(ProviderError::new(
                ErrorKind::Unsupported,
                "this adapter is built for wharf:provider@0.1.0, which cannot resolve references",
            ))),
            Self::V0_2(i) => v0_2::convert(i.wharf_provider_adapter().call_resolve(store, reference).await),
            Self::V0_3(i) => i.wharf_provider_adapter().call_resolve(store, reference).await,
        }
    }

    pub async fn stat(&self, store: impl AsContextMut<Data = CallState>, target: &ObjectRef) -> Answer<ObjectInfo> {
        match self {
            Self::V0_1(i) => v0_1::convert(i.wharf_provider_adapter().call_stat(store, &target.into()).await),
            Self::V0_2(i) => v0_2::convert(i.wharf_provider_adapter().call_stat(store, &target.into()).await),
            Self::V0_3(i) => i.wharf_provider_adapter().call_stat(store, target).await,
        }
    }

    pub async fn list(
        &self,
        store: impl AsContextMut<Data = CallState>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Answer<Page> {
        match self {
            Self::V0_1(i) => v0_1::convert(i.wharf_provider_adapter().call_list(store, cursor, limit).await),
            Self::V0_2(i) => v0_2::convert(i.wharf_provider_adapter().call_list(store, cursor, limit).await),
            Self::V0_3(i) => i.wharf_provider_adapter().call_list(store, cursor, limit).await,
        }
    }

    pub async fn delete(&self, store: impl AsContextMut<Data = CallState>, target: &ObjectRef) -> Answer<()> {
        match self {
            Self::V0_1(i) => v0_1::convert(i.wharf_provider_adapter().call_delete(store, &target.into()).await),
            Self::V0_2(i) => v0_2::convert(i.wharf_provider_adapter().call_delete(store, &target.into()).await),
            Self::V0_3(i) => i.wharf_provider_adapter().call_delete(store, target).await,
        }
    }

    pub async fn presign(
        &self,
        store: impl AsContextMut<Data = CallState>,
        target: &ObjectRef,
        expires_in_secs: u64,
    ) -> Answer<String> {
        match self {
            Self::V0_1(i) => {
                v0_1::convert(i.wharf_provider_adapter().call_presign(store, &target.into(), expires_in_secs).await)
            }
            Self::V0_2(i) => {
                v0_2::convert(i.wharf_provider_adapter().call_presign(store, &target.into(), expires_in_secs).await)
            }
            Self::V0_3(i) => i.wharf_provider_adapter().call_presign(store, target, expires_in_secs).await,
        }
    }
}
