//! API tokens: made from the operating system's random number generator,
//! shown once, kept only as their SHA-256.

use base64::Engine as _;
use serde::Serialize;

use super::{Gateway, GatewayError, Principal, now, os_random};
use crate::body::{digest_of, to_hex};
use crate::catalog::TokenRecord;
use crate::config::check_principal_name;

/// A new token: the only time its secret part is shown.
#[derive(Debug, Clone, Serialize)]
pub struct TokenCreated {
    pub id: String,
    pub principal: String,
    pub admin: bool,
    pub token: String,
    pub expires_at: Option<i64>,
}

/// 256 bits from the OS RNG, base64url: used for API tokens and link tokens.
pub(super) fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(os_random::<32>()))
}

/// What the catalog keeps of a secret.
pub(super) fn secret_digest(secret: &str) -> String {
    to_hex(&digest_of(secret.as_bytes()))
}

impl Gateway {
    /// Makes a token for `principal`; it expires after `expires_days` if given.
    pub async fn create_token(
        &self,
        principal: &str,
        admin: bool,
        expires_days: Option<u32>,
    ) -> Result<TokenCreated, GatewayError> {
        check_principal_name(principal).map_err(GatewayError::InvalidRequest)?;
        if expires_days == Some(0) {
            return Err(GatewayError::InvalidRequest("--expires takes a number of days, at least 1".into()));
        }
        let token = new_secret("wht_");
        let created_at = now();
        let record = TokenRecord {
            id: format!("tok_{}", hex::encode(os_random::<6>())),
            principal: principal.to_string(),
            admin,
            token_sha256: secret_digest(&token),
            created_at,
            expires_at: expires_days.map(|days| created_at + i64::from(days) * 86_400),
            revoked_at: None,
        };
        self.catalog.insert_token(&record).await?;
        Ok(TokenCreated { id: record.id, principal: record.principal, admin, token, expires_at: record.expires_at })
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, GatewayError> {
        Ok(self.catalog.tokens().await?)
    }

    pub async fn revoke_token(&self, id: &str) -> Result<(), GatewayError> {
        match self.catalog.revoke_token(id, now()).await? {
            true => Ok(()),
            false => Err(GatewayError::UnknownToken(id.to_string())),
        }
    }

    /// The principal a bearer token stands for, if it is known, unexpired and
    /// not revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, GatewayError> {
        let Some(record) = self.catalog.token_by_hash(&secret_digest(token)).await? else {
            return Ok(None);
        };
        let live = record.revoked_at.is_none() && record.expires_at.is_none_or(|at| at > now());
        Ok(live.then_some(Principal { name: record.principal, admin: record.admin }))
    }
}
