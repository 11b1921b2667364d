//! `wharf:provider/secrets`: keyed primitives whose keys stay in the host.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::runtime::bindings::v0_3::wharf::provider::secrets::Host;
use crate::runtime::bindings::{ErrorKind, ProviderError};
use crate::runtime::state::CallState;

impl Host for CallState {
    async fn hmac_sha256(
        &mut self,
        secret: String,
        prefix: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, ProviderError>> {
        let Some(value) = self.provider.secrets.get(&secret) else {
            return Ok(Err(unknown_secret(&self.provider.name, &secret)));
        };
        let mut key = prefix.into_bytes();
        key.extend_from_slice(value.as_bytes());
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
        mac.update(&data);
        Ok(Ok(mac.finalize().into_bytes().to_vec()))
    }
}

pub(super) fn unknown_secret(provider: &str, secret: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::InvalidRequest,
        format!(
            "the adapter asked for secret {secret:?}, which providers.toml does not define; add it under [providers.{provider}.secrets]"
        ),
    )
}
