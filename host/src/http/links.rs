//! `/api/download/…`: making links, serving them, and their statistics.

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde::Deserialize;

use super::auth::Authenticated;
use super::content::{ContentHeaders, parse_range, respond};
use super::{ApiError, ApiJson, ApiQuery, AppState};
use crate::catalog::{LinkKind, LinkStats};
use crate::gateway::{LinkContent, LinkCreated, LinkRequest, LinkTarget, LinkTransfer};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    file_path: Option<PathBuf>,
    file_id: Option<String>,
    expiry_minutes: Option<u32>,
    max_downloads: Option<u32>,
    filename: Option<String>,
    max_size: Option<u64>,
}

pub async fn generate(
    Authenticated(caller): Authenticated,
    ApiJson(request): ApiJson<GenerateRequest>,
) -> Result<axum::Json<LinkCreated>, ApiError> {
    let target = match (request.file_path, request.file_id) {
        (Some(path), None) => LinkTarget::Path(path),
        (None, Some(id)) => LinkTarget::FileId(id),
        _ => return Err(ApiError::bad_request("give exactly one of file_path and file_id")),
    };
    let created = caller
        .create_link(LinkRequest {
            target,
            expiry_minutes: request.expiry_minutes,
            max_downloads: request.max_downloads,
            filename: request.filename,
            max_size: request.max_size,
        })
        .await?;
    Ok(axum::Json(created))
}

fn transfer_response(transfer: LinkTransfer) -> Response {
    let headers = ContentHeaders {
        filename: &transfer.filename,
        mime: &transfer.mime,
        size: transfer.size,
        range: transfer.range,
        sha256: transfer.sha256.as_deref(),
        accept_ranges: transfer.kind != LinkKind::Directory,
    };
    let body = match transfer.content {
        LinkContent::Headers => None,
        LinkContent::Stream(stream) => Some(stream),
    };
    respond(headers, body)
}

/// GET and HEAD (the same headers, no use taken). Anyone holding the link
/// may use it: the token is the authority.
pub async fn download(
    State(state): State<AppState>,
    method: Method,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let head = method == Method::HEAD;
    let transfer = state.gateway.open_link(&token, head, parse_range(&headers)).await?;
    Ok(transfer_response(transfer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    principal: Option<String>,
}

pub async fn stats(
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<axum::Json<LinkStats>, ApiError> {
    Ok(axum::Json(caller.link_stats(query.principal.as_deref()).await?))
}
