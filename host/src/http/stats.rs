//! `GET /api/stats`: the figures of `wharf stats` for the caller's files
//! (every principal's, for an admin token).

use serde::Deserialize;

use super::auth::Authenticated;
use super::{ApiError, ApiQuery};
use crate::catalog::Stats;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Activity at or after this time, in seconds since the epoch.
    since: Option<i64>,
}

pub async fn stats(
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<axum::Json<Stats>, ApiError> {
    Ok(axum::Json(caller.stats(query.since).await?))
}
