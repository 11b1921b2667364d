//! `/api/files…`: upload, list, inspect, read, change and delete stored files.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use tokio_util::io::StreamReader;

use super::auth::Authenticated;
use super::content::{ContentHeaders, parse_range, respond};
use super::{ApiError, ApiJson, ApiQuery};
use crate::catalog::{ObjectPage, ObjectQuery, ObjectRecord};
use crate::gateway::{Caller, FileDetails, FileUpdate, Registered, Source, UploadOptions, Uploaded};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    name: Option<String>,
    provider: Option<String>,
    purpose: Option<String>,
}

#[derive(Serialize)]
pub struct UploadResult {
    files: Vec<Uploaded>,
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("receiving the request body: {e}"))
}

/// How much of a refused upload's body is read and dropped before answering,
/// so that the client is reading when the answer comes rather than having
/// its connection reset mid-send (RFC 9112 §9.6).
const DRAIN_BYTES: u64 = 16 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(2);

async fn drain(body: Body) {
    let mut chunks = body.into_data_stream();
    let mut drained = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = chunks.next().await {
            drained += chunk.len() as u64;
            if drained > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// `multipart/form-data` (file parts, with `provider` and `purpose` parts
/// applying to the file parts after them), or a raw body named by `?name=`.
/// Each file is spooled while hashed, then uploaded as `wharf upload` does.
pub async fn upload(
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<UploadQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let limit = caller.config().server.max_upload_bytes;
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|length| *length > limit) {
        drain(request.into_body()).await;
        let detail = format!(
            "the request body is {length} bytes; this server accepts at most {limit} bytes per upload ([server] max_upload_bytes)"
        );
        return Err(ApiError { close: true, ..ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, detail) });
    }
    upload_body(&caller, query, limit, request).await.map_err(|mut e| {
        // Refused part-way: the rest of the body is unread.
        e.close |= e.status == StatusCode::PAYLOAD_TOO_LARGE;
        e
    })
}

async fn upload_body(caller: &Caller, query: UploadQuery, limit: u64, request: Request) -> Result<Response, ApiError> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let options = UploadOptions {
        provider: query.provider,
        purpose: query.purpose,
        max_size: Some(limit),
        ..UploadOptions::default()
    };
    let files = if is_multipart {
        let multipart =
            Multipart::from_request(request, &()).await.map_err(|e| ApiError::bad_request(e.body_text()))?;
        upload_parts(caller, multipart, options).await?
    } else {
        let name = query.name.ok_or_else(|| {
            ApiError::bad_request("a raw upload needs ?name=FILENAME (or send multipart/form-data with file parts)")
        })?;
        let stream = request.into_body().into_data_stream().map_err(io_error);
        let source = Source::Stream { name, reader: Box::new(StreamReader::new(stream)), mime: None };
        vec![caller.upload(source, &options).await?]
    };
    Ok((StatusCode::CREATED, axum::Json(UploadResult { files })).into_response())
}

async fn upload_parts(
    caller: &Caller,
    mut multipart: Multipart,
    mut options: UploadOptions,
) -> Result<Vec<Uploaded>, ApiError> {
    let limit = options.max_size.unwrap_or(u64::MAX);
    let mut files = Vec::new();
    let mut received = 0u64;
    while let Some(field) = multipart.next_field().await.map_err(|e| ApiError::bad_request(e.body_text()))? {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("upload").to_string();
                let mime = field.content_type().map(str::to_string);
                // The request's limit spans all of its parts.
                options.max_size = Some(limit - received);
                let stream = field.map_err(io_error);
                let source = Source::Stream { name, reader: Box::new(StreamReader::new(stream)), mime };
                let uploaded = caller.upload(source, &options).await?;
                received += uploaded.size;
                files.push(uploaded);
            }
            Some(key @ ("provider" | "purpose")) => {
                let key = key.to_string();
                let value = field.text().await.map_err(|e| ApiError::bad_request(e.body_text()))?;
                let value = Some(value).filter(|v| !v.is_empty());
                if key == "provider" { options.provider = value } else { options.purpose = value }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected form part {:?}; send file parts named \"file\", and optionally \"provider\" and \"purpose\"",
                    other.unwrap_or("")
                )));
            }
        }
    }
    if files.is_empty() {
        return Err(ApiError::bad_request("the form has no part named \"file\""));
    }
    Ok(files)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    provider: Option<String>,
    /// Substring of the name.
    name: Option<String>,
    /// Glob over the name.
    glob: Option<String>,
    mime: Option<String>,
    tag: Option<String>,
    /// Seconds since the epoch.
    since: Option<i64>,
    after: Option<String>,
    limit: Option<usize>,
}

pub async fn list(
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::Json<ObjectPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1 to 1000, not {limit}")));
    }
    let page = caller
        .list(ObjectQuery {
            principal: None,
            provider: query.provider,
            name_contains: query.name,
            name_glob: query.glob,
            mime: query.mime,
            tag: query.tag,
            since: query.since,
            after: query.after,
            limit: Some(limit),
        })
        .await?;
    Ok(axum::Json(page))
}

pub async fn details(
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<axum::Json<FileDetails>, ApiError> {
    Ok(axum::Json(caller.details(&id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentQuery {
    #[serde(default)]
    derived: bool,
}

/// The bytes, verified as they stream; `?derived=true` for the provider's
/// derived content.
pub async fn content(
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ContentQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let range = match (query.derived, parse_range(&headers)) {
        (false, Some(range)) => {
            let details = caller.details(&id).await?;
            let size = details.file.size;
            Some(range.within(size).ok_or(crate::gateway::GatewayError::RangeNotSatisfiable { size })?)
        }
        _ => None,
    };
    let content = caller.stream_content(&id, query.derived, range, "HTTP").await?;
    let filename = match content.derived {
        true => format!("{}.derived.txt", content.record.name),
        false => content.record.name.clone(),
    };
    let headers = ContentHeaders {
        filename: &filename,
        mime: &content.mime,
        size: (!content.derived).then_some(content.size),
        range: range.map(|_| content.range),
        sha256: content.sha256.as_deref(),
        accept_ranges: !content.derived,
    };
    Ok(respond(headers, Some(content.stream)))
}

pub async fn update(
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiJson(update): ApiJson<FileUpdate>,
) -> Result<axum::Json<ObjectRecord>, ApiError> {
    Ok(axum::Json(caller.update(&id, update).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Also delete a registered object at its provider.
    #[serde(default)]
    delete_remote: bool,
}

pub async fn remove(
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<RemoveQuery>,
) -> Result<axum::Json<ObjectRecord>, ApiError> {
    Ok(axum::Json(caller.remove(&id, query.delete_remote).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    reference: String,
    provider: Option<String>,
    /// Read the object once to hash it when the provider keeps no SHA-256.
    #[serde(default = "yes")]
    hash: bool,
}

fn yes() -> bool {
    true
}

/// Records an object already at a provider, without uploading it.
pub async fn register(
    Authenticated(caller): Authenticated,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, axum::Json<Registered>), ApiError> {
    let registered = caller.register(&request.reference, request.provider.as_deref(), request.hash).await?;
    Ok((StatusCode::CREATED, axum::Json(registered)))
}
