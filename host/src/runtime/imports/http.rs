//! `wharf:provider/http`: requests described by the adapter, sent by the
//! host after checking the allowlist and filling in secrets.

use std::sync::Arc;

use futures::StreamExt;
use reqwest::header::{CONTENT_LENGTH, HeaderName, HeaderValue};

use super::secrets::unknown_secret;
use crate::body::Body;
use crate::runtime::bindings::v0_3::wharf::provider::http::{
    FormPart, Host, PartContent, Request, RequestBody, Response,
};
use crate::runtime::bindings::{ErrorKind, ProviderError};
use crate::runtime::state::{CallState, ProviderContext};

/// Requests of one `send-batch` in flight at once: a window that slides
/// (each finished request lets the next one start), not rounds that wait for
/// their slowest member.
const BATCH_CONCURRENCY: usize = 8;

const PLACEHOLDER_OPEN: &str = "{{secret:";
const PLACEHOLDER_CLOSE: &str = "}}";

fn invalid(message: String) -> ProviderError {
    ProviderError::new(ErrorKind::InvalidRequest, message)
}

impl CallState {
    /// Checks and converts a request, taking its bodies out of the table.
    fn prepare(&mut self, req: Request) -> Result<reqwest::Request, ProviderError> {
        let provider = self.provider.clone();
        let url: reqwest::Url = req.url.parse().map_err(|e| invalid(format!("bad URL {:?}: {e}", req.url)))?;
        if !provider.allowed_hosts.iter().any(|h| h.allows(&url)) {
            let allowed: Vec<String> = provider.allowed_hosts.iter().map(ToString::to_string).collect();
            return Err(ProviderError::new(
                ErrorKind::Forbidden,
                format!(
                    "provider {} may not reach {}://{}; its allowed hosts are [{}]; add the host to allowed_hosts in [providers.{}] if it should",
                    provider.name,
                    url.scheme(),
                    url.host_str().unwrap_or(""),
                    allowed.join(", "),
                    provider.name
                ),
            ));
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| invalid(format!("bad HTTP method {:?}", req.method)))?;
        let mut builder = provider.http.request(method, url);
        for (name, value) in &req.headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(format!("bad header name {name:?}")))?;
            let filled = fill_secrets(&provider, value)?;
            let holds_secret = filled != *value;
            let mut value = HeaderValue::from_str(&filled)
                .map_err(|_| invalid(format!("header {name} has a value that is not valid in HTTP")))?;
            // Keeps the value out of reqwest's and hyper's debug output.
            value.set_sensitive(holds_secret);
            builder = builder.header(name, value);
        }
        builder = match req.body {
            RequestBody::Empty => builder,
            RequestBody::Bytes(bytes) => builder.body(bytes),
            RequestBody::Body(handle) => {
                let body = self.table.delete(handle).map_err(|e| invalid(e.to_string()))?;
                if let Some(size) = body.size() {
                    builder = builder.header(CONTENT_LENGTH, size);
                }
                builder.body(into_reqwest(body))
            }
            RequestBody::Multipart(parts) => builder.multipart(self.form(parts)?),
        };
        builder.build().map_err(|e| invalid(format!("cannot build the request: {e}")))
    }

    fn form(&mut self, parts: Vec<FormPart>) -> Result<reqwest::multipart::Form, ProviderError> {
        let mut form = reqwest::multipart::Form::new();
        for part in parts {
            let mut built = match part.content {
                PartContent::Text(text) => reqwest::multipart::Part::text(text),
                PartContent::File(handle) => {
                    let body = self.table.delete(handle).map_err(|e| invalid(e.to_string()))?;
                    match body.size() {
                        Some(size) => reqwest::multipart::Part::stream_with_length(into_reqwest(body), size),
                        None => reqwest::multipart::Part::stream(into_reqwest(body)),
                    }
                }
            };
            if let Some(filename) = part.filename {
                built = built.file_name(filename);
            }
            if let Some(content_type) = part.content_type {
                built = built
                    .mime_str(&content_type)
                    .map_err(|_| invalid(format!("bad content type {content_type:?} for form part {}", part.name)))?;
            }
            form = form.part(part.name, built);
        }
        Ok(form)
    }

    fn respond(&mut self, response: reqwest::Response) -> wasmtime::Result<Response> {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let body = self.table.push(Body::Response(Some(response)))?;
        Ok(Response { status, headers, body })
    }
}

fn into_reqwest(body: Body) -> reqwest::Body {
    match body {
        Body::Bytes(bytes) => reqwest::Body::from(bytes),
        other => reqwest::Body::wrap_stream(other.into_stream()),
    }
}

/// Replaces each `{{secret:NAME}}` with the secret's value.
fn fill_secrets(provider: &ProviderContext, value: &str) -> Result<String, ProviderError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(PLACEHOLDER_OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + PLACEHOLDER_OPEN.len()..];
        let end = after
            .find(PLACEHOLDER_CLOSE)
            .ok_or_else(|| invalid("unterminated {{secret:...}} placeholder in a header".into()))?;
        let name = &after[..end];
        out.push_str(provider.secrets.get(name).ok_or_else(|| unknown_secret(&provider.name, name))?);
        rest = &after[end + PLACEHOLDER_CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Sends a prepared request. Errors name the provider and the host, never
/// header values (they may hold secrets).
async fn execute(
    provider: Arc<ProviderContext>,
    request: reqwest::Request,
) -> Result<reqwest::Response, ProviderError> {
    let target = format!("{} {}", request.method(), request.url());
    provider.http.execute(request).await.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else {
            "failed"
        };
        // reqwest's message carries the URL but no headers.
        ProviderError::new(ErrorKind::Unavailable, format!("{target} {what}: {}", error_chain(&e)))
    })
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Host for CallState {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, ProviderError>> {
        let request = match self.prepare(req) {
            Ok(request) => request,
            Err(e) => return Ok(Err(e)),
        };
        match execute(self.provider.clone(), request).await {
            Ok(response) => Ok(Ok(self.respond(response)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn send_batch(&mut self, reqs: Vec<Request>) -> wasmtime::Result<Vec<Result<Response, ProviderError>>> {
        // Preparing is cheap: bodies start reading only when their request
        // goes out (see `Body::into_stream`).
        let prepared: Vec<_> = reqs.into_iter().map(|req| self.prepare(req)).collect();
        let provider = self.provider.clone();
        let mut sent: Vec<_> = futures::stream::iter(prepared.into_iter().enumerate())
            .map(|(index, request)| {
                let provider = provider.clone();
                async move { (index, async { execute(provider, request?).await }.await) }
            })
            .buffer_unordered(BATCH_CONCURRENCY)
            .collect()
            .await;
        sent.sort_by_key(|(index, _)| *index);
        sent.into_iter()
            .map(|(_, result)| result)
            .map(|result| match result {
                Ok(response) => Ok(Ok(self.respond(response)?)),
                Err(e) => Ok(Err(e)),
            })
            .collect()
    }
}
