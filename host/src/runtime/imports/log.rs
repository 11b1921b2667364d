//! `wharf:provider/log`: adapter diagnostics into the host's log.

use crate::runtime::bindings::v0_3::wharf::provider::log::{Host, Level};
use crate::runtime::state::CallState;

impl Host for CallState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let adapter = self.provider.name.as_str();
        match level {
            Level::Trace => tracing::trace!(adapter, "{message}"),
            Level::Debug => tracing::debug!(adapter, "{message}"),
            Level::Info => tracing::info!(adapter, "{message}"),
            Level::Warn => tracing::warn!(adapter, "{message}"),
            Level::Error => tracing::error!(adapter, "{message}"),
        }
        Ok(())
    }
}
