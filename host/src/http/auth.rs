//! The principal of a request: from `Authorization: Bearer <token>`, or
//! `local` when `[server] auth = "none"` (loopback only). The file API takes
//! it as an extractor; `/mcp` gets it from a middleware that puts it in the
//! request's extensions, where the MCP tools find it.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::config::AuthMode;
use crate::gateway::{Caller, Principal};

/// Where clients learn how to get a token for this server (RFC 9728).
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The principal the request's headers name.
async fn principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let gateway = &state.gateway;
    if gateway.config().server.auth == AuthMode::None {
        return Ok(Principal::new("local"));
    }
    let metadata = gateway.config().server.public_url.as_deref().map(|base| format!("{base}{RESOURCE_METADATA_PATH}"));
    let unauthorized = |detail: &str| ApiError::unauthorized(detail, metadata.as_deref());
    let header = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("this server needs Authorization: Bearer <token>"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| unauthorized("the Authorization header must be: Bearer <token>"))?;
    gateway.authenticate(token).await?.ok_or_else(|| unauthorized("the token is unknown, expired or revoked"))
}

/// The gateway acting for the request's principal.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = principal(state, &parts.headers).await?;
        Ok(Self(state.gateway.caller(principal)))
    }
}

/// Lets a request through only with a principal, which it carries on in its
/// extensions.
pub async fn require_principal(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match principal(&state, request.headers()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}
