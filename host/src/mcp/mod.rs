//! The Model Context Protocol server: every Wharf operation as a tool, over
//! stdio (`wharf mcp`) and streamable HTTP (`/mcp` in `wharf serve`). Tools
//! parse their arguments, call the gateway as the request's principal, and
//! shape results for models: structured facts, a short summary, resource
//! links; never a file's bytes except from `read_file`. See docs/mcp.md.
//!
//! - `tools.rs`: the tools
//! - `types.rs`: their inputs and outputs
//! - `resources.rs`: `wharf://files/{id}` resources

mod line_limit;
mod resources;
mod tools;
mod types;

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::common::{schema_for_input, schema_for_output};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, JsonObject, ProgressNotificationParam, Resource, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt, tool_handler};
use schemars::JsonSchema;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::body::Progress;
use crate::catalog::ObjectRecord;
use crate::gateway::{Caller, Gateway, Principal};

/// The longest message read, on stdio and over HTTP: large enough for the
/// inline content cap with room to spare, so that an over-cap item gets the
/// tool's own answer; a longer one gets an error naming this limit.
const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Transfers smaller than this finish too fast for progress to mean anything.
const PROGRESS_MIN_BYTES: u64 = 1 << 20;
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct WharfMcp {
    gateway: Arc<Gateway>,
    /// Over stdio, the host's principal; over HTTP, `None`: each request
    /// carries its own, put there by the server's authentication.
    principal: Option<Principal>,
    tool_router: ToolRouter<Self>,
}

/// `wharf://files/{id}`
pub fn file_uri(id: &str) -> String {
    format!("wharf://files/{id}")
}

/// JSON Schema formats that common validators know; schemars adds others
/// (`uint64`, `double`, …) that they warn about, so those are dropped.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

fn drop_nonstandard_formats(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            if object.get("format").and_then(|f| f.as_str()).is_some_and(|f| !STANDARD_FORMATS.contains(&f)) {
                object.remove("format");
            }
            object.values_mut().for_each(drop_nonstandard_formats);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nonstandard_formats),
        _ => {}
    }
}

fn plain(schema: &JsonObject) -> Arc<JsonObject> {
    let mut value = serde_json::Value::Object(schema.clone());
    drop_nonstandard_formats(&mut value);
    match value {
        serde_json::Value::Object(object) => Arc::new(object),
        _ => unreachable!("an object stays an object"),
    }
}

/// A tool's input schema, as plain JSON Schema.
pub(crate) fn input_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    plain(&schema_for_input::<T>().expect("tool inputs are JSON objects"))
}

/// A tool's output schema, as plain JSON Schema.
pub(crate) fn output_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    plain(&schema_for_output::<T>())
}

/// A file as a `resource_link` content block.
fn resource_link(record: &ObjectRecord) -> ContentBlock {
    link_to(&record.id, &record.name, &record.mime, record.size)
}

fn link_to(id: &str, name: &str, mime: &str, size: u64) -> ContentBlock {
    ContentBlock::resource_link(Resource::new(file_uri(id), name).with_mime_type(mime).with_size(size))
}

/// A successful result: structured content, a one-line summary, and links.
fn success(value: &impl Serialize, summary: String, links: Vec<ContentBlock>) -> CallToolResult {
    let structured = serde_json::to_value(value).expect("tool results serialize");
    let mut result = CallToolResult::structured(structured);
    result.content = std::iter::once(ContentBlock::text(summary)).chain(links).collect();
    result
}

/// A failure the model should read: the tool ran, the operation did not.
fn failure(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// Reports a transfer's progress to a client that asked for it (by sending a
/// progress token): at most every 250 ms, and once more at the end.
struct ProgressReport {
    counter: Arc<Progress>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ProgressReport {
    fn start(context: &RequestContext<RoleServer>) -> Option<Self> {
        let token = context.meta.get_progress_token()?;
        let counter = Arc::new(Progress::default());
        let stop = CancellationToken::new();
        let (peer, watched, stopped) = (context.peer.clone(), counter.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(PROGRESS_INTERVAL);
            let mut reported = None;
            loop {
                let last = tokio::select! {
                    _ = ticks.tick() => false,
                    _ = stopped.cancelled() => true,
                };
                let Some(total) = watched.total().filter(|t| *t >= PROGRESS_MIN_BYTES) else {
                    if last {
                        return;
                    }
                    continue;
                };
                let done = if last { total } else { watched.done().min(total) };
                if reported != Some(done) {
                    reported = Some(done);
                    let params = ProgressNotificationParam::new(token.clone(), done as f64).with_total(total as f64);
                    if peer.notify_progress(params).await.is_err() {
                        return;
                    }
                }
                if last {
                    return;
                }
            }
        });
        Some(Self { counter, stop, task })
    }

    /// Sends the last report (all bytes through) after a completed transfer.
    async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

impl WharfMcp {
    pub fn new(gateway: Arc<Gateway>, principal: Option<Principal>) -> Self {
        Self { gateway, principal, tool_router: Self::tool_router() }
    }

    /// The gateway as the request's principal: the host's over stdio, the
    /// bearer token's over HTTP.
    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        if let Some(principal) = &self.principal {
            return Ok(self.gateway.caller(principal.clone()));
        }
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .map(|principal| self.gateway.caller(principal.clone()))
            .ok_or_else(|| ErrorData::invalid_request("the request carries no authenticated principal", None))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for WharfMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(Implementation::new("wharf", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Wharf moves files to and from LLM providers and storage. Upload by path (best) or as base64 \
                 (up to 8 MiB per item) with upload_files; files are named by id (file_id). Hand a person a file \
                 with create_download_link; read text with read_file; results carry ids, sizes, SHA-256 and \
                 resource links (wharf://files/{id}), never raw bytes.",
            )
    }

    async fn list_resources(
        &self,
        request: Option<rmcp::model::PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        resources::list(&self.caller(&context)?, request.and_then(|r| r.cursor)).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, ErrorData> {
        Ok(resources::templates())
    }

    async fn on_custom_request(
        &self,
        request: rmcp::model::CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CustomResult, ErrorData> {
        if request.method == line_limit::TOO_LONG_METHOD {
            return Err(ErrorData::invalid_request(
                format!(
                    "the message is longer than {MAX_MESSAGE_BYTES} bytes, the most this server reads; \
                     give files by path, or POST them to wharf serve's /api/files"
                ),
                None,
            ));
        }
        Err(ErrorData::new(rmcp::model::ErrorCode::METHOD_NOT_FOUND, request.method, None))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, ErrorData> {
        resources::read(&self.caller(&context)?, &request.uri).await.map(Into::into)
    }
}

/// Serves MCP on standard input and output, as the host's principal, until
/// the client disconnects.
pub async fn serve_stdio(gateway: Arc<Gateway>) -> anyhow::Result<()> {
    let principal = Principal::new(gateway.config().principal.clone());
    let (stdin, stdout) = rmcp::transport::stdio();
    let stdin = line_limit::LineLimit::new(stdin, MAX_MESSAGE_BYTES);
    // rmcp's own limit sits above ours, so that it never drops a line unanswered.
    let transport = AsyncRwTransport::new_server(stdin, stdout).with_max_line_length(MAX_MESSAGE_BYTES + (1 << 20));
    let service = WharfMcp::new(gateway, Some(principal)).serve(transport).await?;
    service.waiting().await?;
    Ok(())
}

/// The streamable HTTP service for `/mcp`: stateless for clients of the
/// 2026-07-28 protocol, sessions for older ones. Requests must carry an
/// authenticated `Principal` in their extensions (the server's auth layer
/// puts it there); `Host` and `Origin` must name this server.
pub fn http_service(
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) -> StreamableHttpService<WharfMcp, LocalSessionManager> {
    let server = &gateway.config().server;
    let mut hosts =
        vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string(), server.listen.to_string()];
    let mut origins = vec![format!("http://{}", server.listen)];
    if let Some(public) = server.public_url.as_deref().and_then(|u| reqwest::Url::parse(u).ok()) {
        if let Some(host) = public.host_str() {
            hosts.push(host.to_string());
            hosts.push(format!("{host}:{}", public.port_or_known_default().unwrap_or(80)));
        }
        origins.push(public.origin().ascii_serialization());
    }
    origins.extend(server.allowed_origins.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(MAX_MESSAGE_BYTES)
        .with_cancellation_token(shutdown);
    StreamableHttpService::new(
        move || Ok(WharfMcp::new(gateway.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
