//! `wharf:provider/storage`: bulk transfer into and out of the adapter's
//! granted directory, through the same cap-std handle as its WASI preopen.

use std::path::Path;

use wasmtime::component::Resource;

use crate::body::{Body, FileRange};
use crate::runtime::bindings::v0_3::wharf::provider::storage::Host;
use crate::runtime::bindings::{ErrorKind, ProviderError};
use crate::runtime::state::{CallState, GrantedDir};
use crate::sandbox::{self, WriteError};

impl CallState {
    fn granted(&self, write: bool) -> Result<&GrantedDir, ProviderError> {
        let name = &self.provider.name;
        let grant = self.provider.storage.as_ref().ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Forbidden,
                format!("provider {name} has no storage directory; grant one with storage_dir in [providers.{name}]"),
            )
        })?;
        if write && !grant.writable {
            return Err(ProviderError::new(
                ErrorKind::Forbidden,
                format!("the storage directory of provider {name} is read-only (storage_access = \"read-only\")"),
            ));
        }
        Ok(grant)
    }
}

fn io_error(err: std::io::Error, what: String) -> ProviderError {
    let kind = match err.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::Forbidden,
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => ErrorKind::QuotaExceeded,
        _ => ErrorKind::Other,
    };
    ProviderError::new(kind, format!("{what}: {err}"))
}

impl Host for CallState {
    async fn write(&mut self, path: String, content: Resource<Body>) -> wasmtime::Result<Result<u64, ProviderError>> {
        let body = self.table.delete(content)?;
        let grant = match self.granted(true) {
            Ok(grant) => grant,
            Err(e) => return Ok(Err(e)),
        };
        let label = grant.path.join(&path).display().to_string();
        let written = sandbox::write_atomic(&grant.dir, Path::new(&path), body, None, &label, None).await;
        Ok(written.map(|copied| copied.size).map_err(|e| match e {
            WriteError::Io(err) => io_error(err, format!("writing {label}")),
            other => ProviderError::new(ErrorKind::Other, other.to_string()),
        }))
    }

    async fn open(&mut self, path: String) -> wasmtime::Result<Result<Resource<Body>, ProviderError>> {
        let grant = match self.granted(false) {
            Ok(grant) => grant,
            Err(e) => return Ok(Err(e)),
        };
        let label = grant.path.join(&path).display().to_string();
        let opened = grant
            .dir
            .open(&path)
            .and_then(|file| FileRange::whole(file.into_std(), label.clone()))
            .map_err(|e| io_error(e, format!("opening {label}")));
        match opened {
            Ok(range) => Ok(Ok(self.table.push(Body::File(range))?)),
            Err(e) => Ok(Err(e)),
        }
    }
}
