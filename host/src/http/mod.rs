//! `wharf serve`: one HTTP server for download links, the file API, health
//! and metrics. Routes parse input, pick the principal (from the bearer
//! token) and call the gateway; `error.rs` is the one mapping from failures
//! to HTTP answers.
//!
//! - `auth.rs`: the principal of a request
//! - `content.rs`: streaming file bytes with their headers (links and the file API)
//! - `links.rs`: `/api/download/…`
//! - `files.rs`: `/api/files…`
//! - `health.rs`: `/healthz`, `/readyz`, `/metrics`

mod auth;
mod content;
mod error;
mod files;
mod health;
mod links;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::config::{AuthMode, Config};
use crate::gateway::Gateway;

#[derive(Clone)]
struct AppState {
    gateway: Arc<Gateway>,
    metrics: Option<PrometheusHandle>,
}

/// JSON bodies whose rejections are problem documents too.
struct ApiJson<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// Query strings whose rejections are problem documents too.
struct ApiQuery<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// Buckets for adapter call latency, in seconds: from a fresh instance's
/// tens of microseconds to long transfers.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

fn install_metrics() -> Option<PrometheusHandle> {
    let installed = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("wharf_adapter_call_seconds".into()), LATENCY_BUCKETS)
        .and_then(|builder| builder.install_recorder());
    match installed {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!("metrics are off: {e}");
            None
        }
    }
}

/// Counts every request by route, method and status.
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("wharf_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// RFC 9728 metadata for `/mcp` (and the file API): this server is the
/// resource; tokens come from `wharf token create`.
async fn resource_metadata(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::Json<serde_json::Value> {
    let base = state.gateway.config().server.public_url.clone().unwrap_or_default();
    axum::Json(serde_json::json!({
        "resource": format!("{base}/mcp"),
        "resource_name": "Wharf",
        "authorization_servers": [],
        "bearer_methods_supported": ["header"],
        "resource_documentation": "Bearer tokens are issued by the server's operator with `wharf token create --principal NAME`.",
    }))
}

fn router(state: AppState, shutdown: CancellationToken) -> Router {
    let config = &state.gateway.config().server;
    let mcp = Router::new()
        .nest_service("/mcp", crate::mcp::http_service(state.gateway.clone(), shutdown))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_principal));
    // Routes that move file bytes may take as long as the transfer does.
    let transfers = Router::new()
        .route("/api/download/{token}", get(links::download).head(links::download))
        .route("/api/files/{id}/content", get(files::content))
        .route("/api/files", post(files::upload).layer(axum::extract::DefaultBodyLimit::disable()));
    let metadata = Router::new()
        .route("/api/download/generate", post(links::generate))
        .route("/api/download/stats", get(links::stats))
        .route("/api/files", get(files::list))
        .route("/api/files/register", post(files::register))
        .route("/api/stats", get(stats::stats))
        .route("/api/files/{id}", get(files::details).patch(files::update).delete(files::remove))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(auth::RESOURCE_METADATA_PATH, get(resource_metadata))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.request_timeout));
    transfers
        .merge(metadata)
        .merge(mcp)
        .layer(middleware::from_fn(count_requests))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Deletes expired links at start and then every `cleanup_interval`, on
/// whichever host holds the clean-up lease.
fn spawn_cleanup(gateway: Arc<Gateway>, shutdown: CancellationToken) {
    let interval = gateway.config().server.cleanup_interval;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            match gateway.clean_up().await {
                Ok(Some(report)) if report.removed_anything() => tracing::info!("clean-up: {}", report.summary()),
                Ok(_) => {}
                Err(e) => tracing::warn!("clean-up: {e}"),
            }
        }
    });
}

/// Resolves on SIGINT or SIGTERM.
async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// Runs the server until SIGINT or SIGTERM, then lets transfers in flight
/// finish for up to `shutdown_grace_secs`.
pub async fn serve(mut config: Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    let server = &config.server;
    if server.auth == AuthMode::None && !server.listen.ip().is_loopback() {
        anyhow::bail!(
            "{}: [server] auth = \"none\" is allowed only on a loopback address, and listen is {}; \
             listen on 127.0.0.1, or set auth = \"token\" and give clients tokens from `wharf token create`",
            config.file.display(),
            server.listen
        );
    }
    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("listening on {} ([server] listen or --listen)", server.listen))?;
    let bound = listener.local_addr()?;
    if config.server.public_url.is_none() {
        config.server.public_url = Some(format!("http://{bound}"));
    }
    config.relative_to_first_root = true;
    let grace = config.server.shutdown_grace;
    let gateway = Gateway::open(config).await?;
    let state = AppState { gateway: gateway.clone(), metrics: install_metrics() };
    let shutdown = CancellationToken::new();
    gateway.watch_for_changes(shutdown.clone());
    spawn_cleanup(gateway, shutdown.clone());

    let app = router(state, shutdown.clone());
    let graceful = shutdown.clone();
    let mut running = tokio::spawn(async move {
        // Small responses (an MCP event after its priming event, a problem
        // document) must not wait for the client's delayed ACK.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(graceful.cancelled_owned())
            .await
    });
    println!("wharf serve: listening on http://{bound}");
    tokio::select! {
        _ = termination() => {}
        ended = &mut running => return ended.context("the server task failed")?.context("serving HTTP"),
    }
    tracing::info!("shutting down: no new connections; transfers in flight have {} s to finish", grace.as_secs());
    shutdown.cancel();
    match tokio::time::timeout(grace, running).await {
        Ok(ended) => ended.context("the server task failed")?.context("serving HTTP"),
        Err(_) => {
            tracing::warn!("shutdown_grace_secs ({} s) passed; cutting the transfers still running", grace.as_secs());
            Ok(())
        }
    }
}
