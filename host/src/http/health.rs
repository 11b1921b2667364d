//! Liveness, readiness and Prometheus metrics; no authentication.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::gateway::Principal;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the catalog answers; adapters are loaded before the server listens.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.gateway.ready().await {
        Ok(()) => axum::Json(serde_json::json!({ "ready": true })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "ready": false, "reason": e.to_string() })),
        )
            .into_response(),
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => {
            // What the catalog holds is shared by every host: read it at
            // scrape time rather than counting in one process.
            let everyone = state.gateway.caller(Principal { name: "metrics".into(), admin: true });
            match everyone.holdings().await {
                Ok(holdings) => {
                    for (provider, held) in holdings {
                        metrics::gauge!("wharf_files", "provider" => provider.clone()).set(held.files as f64);
                        metrics::gauge!("wharf_file_bytes", "provider" => provider).set(held.bytes as f64);
                    }
                }
                Err(e) => tracing::warn!("reading the catalog's figures for /metrics: {e}"),
            }
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics are off (see the server log)").into_response(),
    }
}
