//! The principal of a request: from `Authorization: Bearer <token>`, or
//! `local` when `[server] auth = "none"` (loopback only).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::config::AuthMode;
use crate::gateway::{Caller, Principal};

/// The gateway acting for the request's principal.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let gateway = &state.gateway;
        if gateway.config().server.auth == AuthMode::None {
            return Ok(Self(gateway.caller(Principal::new("local"))));
        }
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("this server needs Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be: Bearer <token>"))?;
        match gateway.authenticate(token).await? {
            Some(principal) => Ok(Self(gateway.caller(principal))),
            None => Err(ApiError::unauthorized("the token is unknown, expired or revoked")),
        }
    }
}
