//! The contract's exports, dispatched to an adapter's [`Provider`]: an
//! adapter states what it offers and implements those operations; the SDK
//! answers the rest (`unsupported`, with the provider's name) and refuses
//! byte ranges for an adapter that did not declare `ranged-download`.

use std::sync::OnceLock;

use crate::exports::wharf::provider::adapter::Guest;
use crate::{ByteRange, Capabilities, DownloadResult, ObjectInfo, ObjectRef, Page, ProviderError, UploadRequest};

/// One provider adapter. Register it with `export_adapter!(MyAdapter);`.
pub trait Provider {
    /// The provider as people know it ("Kimi", "S3"), in the errors the SDK writes.
    const NAME: &'static str;

    /// Validates the adapter's `config` table (JSON), keeps it for the
    /// operation that follows, and declares what the adapter offers.
    fn init(config_json: &str) -> Result<Capabilities, ProviderError>;

    fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError>;

    /// Only whole objects (`range` none) unless `init` declared `ranged-download`.
    fn download(
        _target: &ObjectRef,
        _derived: bool,
        _range: Option<&ByteRange>,
    ) -> Result<DownloadResult, ProviderError> {
        Err(ProviderError::unsupported(format!("{} does not serve downloads", Self::NAME)))
    }

    fn resolve(_reference: &str) -> Result<ObjectInfo, ProviderError> {
        Err(ProviderError::unsupported(format!(
            "{} does not recognise references to its objects, so they cannot be registered",
            Self::NAME
        )))
    }

    fn stat(_target: &ObjectRef) -> Result<ObjectInfo, ProviderError> {
        Err(ProviderError::unsupported(format!("{} does not describe stored objects", Self::NAME)))
    }

    fn list(_cursor: Option<&str>, _limit: u32) -> Result<Page, ProviderError> {
        Err(ProviderError::unsupported(format!("{} does not list its objects", Self::NAME)))
    }

    fn delete(_target: &ObjectRef) -> Result<(), ProviderError> {
        Err(ProviderError::unsupported(format!("{} does not delete objects", Self::NAME)))
    }

    fn presign(_target: &ObjectRef, _expires_in_secs: u64) -> Result<String, ProviderError> {
        Err(ProviderError::unsupported(format!("{} has no shareable URLs", Self::NAME)))
    }
}

/// What `init` declared, for the checks the SDK makes on later calls. An
/// instance serves one `init` and then one operation.
static DECLARED: OnceLock<Capabilities> = OnceLock::new();

impl<T: Provider> Guest for T {
    fn init(config_json: String) -> Result<Capabilities, ProviderError> {
        let capabilities = T::init(&config_json)?;
        let _ = DECLARED.set(capabilities);
        Ok(capabilities)
    }

    fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
        T::upload(req)
    }

    fn download(target: ObjectRef, derived: bool, range: Option<ByteRange>) -> Result<DownloadResult, ProviderError> {
        let ranged = DECLARED.get().is_some_and(|c| c.ranged_download);
        if !ranged && range.is_some_and(|r| !r.is_whole()) {
            return Err(ProviderError::unsupported(format!("{} serves whole files only, not byte ranges", T::NAME)));
        }
        T::download(&target, derived, range.as_ref())
    }

    fn resolve(reference: String) -> Result<ObjectInfo, ProviderError> {
        T::resolve(&reference)
    }

    fn stat(target: ObjectRef) -> Result<ObjectInfo, ProviderError> {
        T::stat(&target)
    }

    fn list(cursor: Option<String>, limit: u32) -> Result<Page, ProviderError> {
        T::list(cursor.as_deref(), limit)
    }

    fn delete(target: ObjectRef) -> Result<(), ProviderError> {
        T::delete(&target)
    }

    fn presign(target: ObjectRef, expires_in_secs: u64) -> Result<String, ProviderError> {
        T::presign(&target, expires_in_secs)
    }
}
