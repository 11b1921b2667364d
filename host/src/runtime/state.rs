//! What a store holds for the length of one adapter call.

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::{CpuBudget, MemoryLimiter};
use crate::config::{AllowedHost, Secrets};

/// What an adapter may reach, shared by all of its calls.
pub struct ProviderContext {
    pub name: String,
    pub allowed_hosts: Vec<AllowedHost>,
    pub secrets: Secrets,
    pub storage: Option<GrantedDir>,
    pub http: reqwest::Client,
}

/// The directory providers.toml grants an adapter (`storage_dir`).
pub struct GrantedDir {
    pub dir: cap_std::fs::Dir,
    pub path: PathBuf,
    pub writable: bool,
}

/// Per-call store data: a fresh WASI context and resource table, so nothing
/// leaks from one call into the next, and the call's limits.
pub struct CallState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) memory: MemoryLimiter,
    pub(super) cpu: CpuBudget,
    pub(super) provider: Arc<ProviderContext>,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
