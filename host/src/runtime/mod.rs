//! The Wasm side of the host: compiling adapter components (once, cached on
//! disk), and running each operation in a fresh, limited store.

pub mod bindings;
mod check;
pub mod contract;
mod imports;
mod limits;
mod retry;
mod state;

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use bindings::{AdapterPre, Instance, UploadRequest};
pub use bindings::{
    ByteRange, Capabilities, ContentKind, DownloadSupport, ErrorKind, ObjectInfo, ObjectRef, Page, ProviderError,
};
pub use check::{CheckReport, Finding};
pub use contract::{ContractError, ContractVersion};
use limits::{CpuBudget, EPOCH_TICK, MemoryLimitExceeded, MemoryLimiter};
use state::{CallState, GrantedDir, ProviderContext};

use crate::body::Body;
use crate::config::{Limits, PluginSource, ProviderConfig, RetryPolicy};

/// Where the granted storage directory appears in an adapter's WASI view.
const STORAGE_MOUNT: &str = "/storage";

/// Adapter instances that may be alive at once, across all adapters.
const MAX_CONCURRENT_INSTANCES: u32 = 128;

/// Compiles and runs adapters. One per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    cache_dir: PathBuf,
    /// One permit per slot of the instance pool: a call past
    /// `MAX_CONCURRENT_INSTANCES` waits for a slot instead of failing.
    instance_slots: Arc<tokio::sync::Semaphore>,
    _ticker: EpochTicker,
}

/// A loaded adapter: its compiled component, ready to instantiate, and what
/// it may reach.
pub struct Adapter {
    pre: AdapterPre,
    contract: ContractVersion,
    /// Lowercase hex SHA-256 of the component's bytes.
    sha256: String,
    context: Arc<ProviderContext>,
    config_json: Arc<str>,
    limits: Limits,
    retry: RetryPolicy,
    capabilities: Capabilities,
    storage_mount: Option<(PathBuf, bool)>,
    plugin_path: PathBuf,
    instance_slots: Arc<tokio::sync::Semaphore>,
}

/// Why an adapter call failed.
/// What an upload stored, and in how many attempts. An attempt that failed
/// after its request arrived may have left a copy of its own at a provider
/// that names objects itself.
#[derive(Debug)]
pub struct Stored {
    pub info: ObjectInfo,
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The adapter answered with a classified provider failure.
    #[error("{provider}: {operation} failed: {}", describe(error))]
    Provider { provider: String, operation: &'static str, error: ProviderError },
    #[error(
        "adapter {provider} exceeded its CPU limit of {limit_ms} ms during {operation}; raise limits.cpu_ms in [providers.{provider}] if it needs more"
    )]
    CpuLimit { provider: String, operation: &'static str, limit_ms: u128 },
    #[error("{source} during {operation}; raise limits.memory_mib in [providers.{}] if it needs more", source.adapter)]
    MemoryLimit { operation: &'static str, source: MemoryLimitExceeded },
    #[error("adapter {provider} did not finish {operation} within {limit_secs} s (limits.timeout_secs)")]
    Timeout { provider: String, operation: &'static str, limit_secs: u64 },
    #[error("adapter {provider} crashed during {operation}: {message}")]
    Trap { provider: String, operation: &'static str, message: String },
}

impl CallError {
    /// The provider's classification, when the failure came from the provider.
    pub fn kind(&self) -> Option<&ErrorKind> {
        match self {
            CallError::Provider { error, .. } => Some(&error.kind),
            _ => None,
        }
    }

    /// A stable label for statistics and metrics: the provider's error kind
    /// (`not-found`, …), or what the host stopped (`timeout`, `cpu-limit`, …).
    pub fn label(&self) -> &'static str {
        match self {
            CallError::Provider { error, .. } => error.kind.label(),
            CallError::CpuLimit { .. } => "cpu-limit",
            CallError::MemoryLimit { .. } => "memory-limit",
            CallError::Timeout { .. } => "timeout",
            CallError::Trap { .. } => "crash",
        }
    }
}

/// Raised by the epoch callback when a call has used its CPU budget.
#[derive(Debug, thiserror::Error)]
#[error("CPU limit exceeded")]
struct CpuLimitExceeded;

impl ErrorKind {
    /// A stable label for metrics: `not-found`, `rate-limited`, ...
    pub fn label(&self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::Gone => "gone",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::RateLimited(_) => "rate-limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::QuotaExceeded => "quota-exceeded",
            ErrorKind::TooLarge => "too-large",
            ErrorKind::InvalidRequest => "invalid-request",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Gone => "gone",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::RateLimited(Some(ms)) => {
                return write!(f, "rate limited (retry after {ms} ms)");
            }
            ErrorKind::RateLimited(None) => "rate limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::QuotaExceeded => "quota exceeded",
            ErrorKind::TooLarge => "too large",
            ErrorKind::InvalidRequest => "invalid request",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Other => "error",
        };
        f.write_str(text)
    }
}

/// A provider failure as people read it: `not found (HTTP 404, NoSuchKey): message`.
pub fn describe(error: &ProviderError) -> String {
    let detail = match (error.status, &error.code) {
        (Some(status), Some(code)) => format!(" (HTTP {status}, {code})"),
        (Some(status), None) => format!(" (HTTP {status})"),
        (None, Some(code)) => format!(" ({code})"),
        (None, None) => String::new(),
    };
    format!("{}{detail}: {}", error.kind, error.message)
}

impl fmt::Display for DownloadSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DownloadSupport::Original => "original",
            DownloadSupport::Derived => "derived",
            DownloadSupport::None => "none",
        })
    }
}

/// What an adapter declared, as one line: `download=original stat list …`.
impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "download={}", self.download)?;
        let flags = [
            ("stat", self.stat),
            ("list", self.list),
            ("delete", self.delete),
            ("presign", self.presign),
            ("resumable-upload", self.resumable_upload),
            ("persistent", self.persistent),
            ("ranged-download", self.ranged_download),
            ("resolve", self.resolve),
        ];
        for (name, offered) in flags {
            if offered {
                write!(f, " {name}")?;
            }
        }
        match self.max_size {
            Some(max) => write!(f, " max-size={max}"),
            None => Ok(()),
        }
    }
}

/// Advances the engine's epoch every tick, for CPU limits.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("wharf-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("starting the epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How much of a pooled instance's memory, table and async stack stays
/// mapped between instances. The built-in adapters are linked with a 128 KiB
/// stack, which comes first in linear memory (host/build.rs), so the first
/// 256 KiB hold everything a call touches: stack, static data and the start
/// of the heap. Measured with `cargo bench --bench call_overhead`: with the
/// toolchain's 1 MiB stack the median call took 25 µs whatever stayed
/// resident (the stack's top and the data lie beyond 1 MiB, so every call
/// faulted them in again); with 128 KiB and 256 KiB resident it takes 11 µs.
const KEEP_RESIDENT: usize = 256 << 10;

impl Runtime {
    /// An engine whose instances come from a pooling allocator sized for
    /// `max_memory` per instance (the largest adapter memory limit), with
    /// compiled components cached under `cache_dir`.
    pub fn new(cache_dir: &Path, max_memory: u64) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS provider (aws-lc takes minutes
        // to build); use ring. Fails harmlessly when already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(MAX_CONCURRENT_INSTANCES)
            .total_core_instances(MAX_CONCURRENT_INSTANCES * 4)
            .total_memories(MAX_CONCURRENT_INSTANCES * 2)
            .total_tables(MAX_CONCURRENT_INSTANCES * 4)
            .max_memory_size(max_memory as usize)
            // Reused slots keep their first pages mapped (zeroed, not
            // decommitted): an adapter's stack and small heap then cost no
            // page faults on each fresh instance.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .async_stack_keep_resident(KEEP_RESIDENT);
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        bindings::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;

        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("creating the compiled-component cache {}", cache_dir.display()))?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Self {
            engine,
            linker,
            cache_dir: cache_dir.to_path_buf(),
            instance_slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_INSTANCES as usize)),
            _ticker: ticker,
        })
    }

    /// Compiles a component's bytes (read from `wasm`), or loads them from
    /// the cache when this engine has compiled the same bytes before.
    pub fn compile(&self, bytes: &[u8], wasm: &Path) -> anyhow::Result<Component> {
        contract::check_encoding(bytes).with_context(|| format!("{} is refused", wasm.display()))?;
        let mut engine_hash = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut engine_hash);
        let key = format!("{}-{:016x}", crate::body::to_hex(&crate::body::digest_of(bytes)), engine_hash.finish());
        let cached = self.cache_dir.join(format!("{key}.cwasm"));
        if cached.is_file() {
            // SAFETY: the cache holds only what `precompile_component` wrote for
            // an engine with this compatibility hash; nothing else writes there.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!("recompiling {}: cached copy unusable: {e}", wasm.display())
                }
            }
        }
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a valid component", wasm.display()))?;
        let temp = cached.with_extension(format!("{:016x}.partial", rand::random::<u64>()));
        std::fs::write(&temp, &compiled).and_then(|()| std::fs::rename(&temp, &cached)).with_context(|| {
            let _ = std::fs::remove_file(&temp);
            format!("writing {}", cached.display())
        })?;
        // SAFETY: produced just above by this engine.
        unsafe { Component::deserialize(&self.engine, &compiled) }.map_err(anyhow::Error::from)
    }

    /// Loads the adapter a provider entry names, and calls its `init` once to
    /// check its config and learn its capabilities. Refuses a component whose
    /// bytes differ from the entry's `sha256` pin, one that targets a contract
    /// version this host does not know, and one importing beyond the contract.
    pub async fn load(&self, provider: &ProviderConfig) -> anyhow::Result<Adapter> {
        let name = &provider.name;
        let ComponentSource { path: plugin_path, bytes } =
            component_source(&provider.plugin).with_context(|| format!("provider {name}"))?;
        let sha256 = crate::body::to_hex(&crate::body::digest_of(&bytes));
        if let Some(pin) = &provider.sha256 {
            anyhow::ensure!(
                *pin == sha256,
                "provider {name}: {} has SHA-256 {sha256}, but [providers.{name}] sha256 pins {pin}; \
                 put back the pinned component, or pin the new one if you trust it",
                plugin_path.display()
            );
        }
        let component = self.compile(&bytes, &plugin_path).with_context(|| format!("provider {name}"))?;
        let contract = contract::inspect(&self.engine, &component)
            .with_context(|| format!("provider {name}: {} is refused", plugin_path.display()))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("provider {name}: {} does not fit {contract}", plugin_path.display()))?;
        let pre = AdapterPre::new(contract, pre)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("provider {name}: {} does not export {contract}", plugin_path.display()))?;

        let storage = match &provider.storage {
            Some(grant) => {
                if grant.writable {
                    std::fs::create_dir_all(&grant.dir)
                        .with_context(|| format!("provider {name}: creating storage_dir {}", grant.dir.display()))?;
                }
                let path = grant.dir.canonicalize().with_context(|| {
                    format!("provider {name}: storage_dir {} cannot be opened", grant.dir.display())
                })?;
                let dir = cap_std::fs::Dir::open_ambient_dir(&path, cap_std::ambient_authority())
                    .with_context(|| format!("provider {name}: opening storage_dir {}", path.display()))?;
                Some(GrantedDir { dir, path, writable: grant.writable })
            }
            None => None,
        };
        let storage_mount = storage.as_ref().map(|g| (g.path.clone(), g.writable));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            // A connection silent for a third of the call's time limit is given
            // up, so that a stalled exchange is retried (or a cut download
            // resumed) within the limit instead of using it all up.
            .read_timeout(stall_timeout(provider.limits.timeout))
            // A redirect could lead past the allowlist: adapters see 3xx and decide.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        let context = Arc::new(ProviderContext {
            name: name.clone(),
            allowed_hosts: provider.allowed_hosts.clone(),
            secrets: provider.secrets.clone(),
            storage,
            http,
        });
        let mut adapter = Adapter {
            pre,
            contract,
            sha256,
            context,
            config_json: provider.adapter_config_json.clone().into(),
            limits: provider.limits,
            retry: provider.retry,
            capabilities: placeholder_capabilities(),
            storage_mount,
            plugin_path,
            instance_slots: self.instance_slots.clone(),
        };
        adapter.capabilities = adapter
            .call("init", |_, _| Box::pin(async { Ok(Ok(())) }))
            .await
            .map(|((), capabilities)| capabilities)
            .with_context(|| format!("provider {name}: its config was refused"))?;
        Ok(adapter)
    }
}

/// The longest a connection may stay silent, whatever the call's limit.
const MAX_STALL: Duration = Duration::from_secs(120);

/// How long a connection may stay silent: a third of the call's time limit,
/// at most [`MAX_STALL`]. Under a limit of three seconds a stall could not
/// be told from the limit itself; the limit then ends the call first.
fn stall_timeout(call_limit: Duration) -> Duration {
    match call_limit / 3 {
        third if third < Duration::from_secs(1) => MAX_STALL,
        third => third.min(MAX_STALL),
    }
}

fn placeholder_capabilities() -> Capabilities {
    Capabilities {
        download: DownloadSupport::None,
        stat: false,
        list: false,
        delete: false,
        presign: false,
        resumable_upload: false,
        persistent: false,
        max_size: None,
        ranged_download: false,
        resolve: false,
    }
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_adapters.rs"));
}

/// A component's bytes and what to call it in messages and listings.
struct ComponentSource {
    path: PathBuf,
    bytes: std::borrow::Cow<'static, [u8]>,
}

/// Where a built-in adapter's component comes from, first found:
/// `$WHARF_PLUGIN_DIR` (only there, when set), `plugins/` beside the
/// executable, the copy embedded in a release build, the build's own output
/// (development builds load by path, so editing an adapter does not
/// recompile the host).
fn component_source(source: &PluginSource) -> anyhow::Result<ComponentSource> {
    let read = |path: PathBuf| -> anyhow::Result<ComponentSource> {
        let bytes = std::fs::read(&path).with_context(|| format!("reading adapter component {}", path.display()))?;
        Ok(ComponentSource { path, bytes: bytes.into() })
    };
    let name = match source {
        PluginSource::File(path) => return read(path.clone()),
        PluginSource::Builtin(name) => name,
    };
    let file = format!("wharf_plugin_{}.wasm", name.replace('-', "_"));
    if let Some(dir) = std::env::var_os("WHARF_PLUGIN_DIR") {
        let path = PathBuf::from(dir).join(&file);
        anyhow::ensure!(
            path.is_file(),
            "no built-in adapter named {name:?}: {} is missing (WHARF_PLUGIN_DIR is set)",
            path.display()
        );
        return read(path);
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("plugins").join(&file)));
    if let Some(path) = beside_exe.filter(|p| p.is_file()) {
        return read(path);
    }
    if let Some((_, bytes)) = embedded::EMBEDDED.iter().find(|(embedded, _)| embedded == name) {
        let path = PathBuf::from(format!("built-in:{name}"));
        return Ok(ComponentSource { path, bytes: (*bytes).into() });
    }
    let path = Path::new(env!("WHARF_BUILTIN_PLUGIN_DIR")).join(&file);
    anyhow::ensure!(
        path.is_file(),
        "no built-in adapter named {name:?}; the built-in ones are the folders of plugins/ (build Wharf with cargo build), or set plugin to the path of a .wasm component"
    );
    read(path)
}

type CallResult<'a, R> = BoxFuture<'a, wasmtime::Result<Result<R, ProviderError>>>;

impl Adapter {
    pub fn name(&self) -> &str {
        &self.context.name
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    pub fn plugin_path(&self) -> &Path {
        &self.plugin_path
    }

    /// The contract version the component was built for.
    pub fn contract(&self) -> ContractVersion {
        self.contract
    }

    /// The `config` table given to `init`, as JSON.
    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    /// Lowercase hex SHA-256 of the component's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn allowed_hosts(&self) -> Vec<String> {
        self.context.allowed_hosts.iter().map(ToString::to_string).collect()
    }

    fn store(&self) -> wasmtime::Result<Store<CallState>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr();
        // Adapters touch only small metadata files through WASI (bulk bytes go
        // through the storage interface), so running those calls inline beats
        // a hop to tokio's blocking pool for each.
        wasi.allow_blocking_current_thread(true);
        if let Some((path, writable)) = &self.storage_mount {
            let perms = if *writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            wasi.preopened_dir(path, STORAGE_MOUNT, perms)?;
        }
        let state = CallState {
            wasi: wasi.build(),
            table: wasmtime::component::ResourceTable::new(),
            memory: MemoryLimiter { adapter: self.context.name.clone(), max_bytes: self.limits.memory_bytes },
            cpu: CpuBudget::new(self.limits.cpu),
            provider: self.context.clone(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let cpu = &mut ctx.data_mut().cpu;
            if cpu.ticks_left == 0 {
                return Err(wasmtime::Error::new(CpuLimitExceeded));
            }
            cpu.ticks_left -= 1;
            // Yielding lets the wall-clock timeout fire even while the guest spins.
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }

    /// Runs one operation in a fresh instance: instantiate, `init` with the
    /// adapter's config, then `op`. Returns the operation's result and the
    /// capabilities `init` declared.
    async fn call<R: Send>(
        &self,
        operation: &'static str,
        op: impl for<'a> FnOnce(&'a mut Store<CallState>, &'a Instance) -> CallResult<'a, R> + Send,
    ) -> Result<(R, Capabilities), CallError> {
        let provider = self.name().to_string();
        // Taken before the timeout starts: waiting for a slot is not the adapter's time.
        let _slot = self.instance_slots.acquire().await.expect("the instance semaphore is never closed");
        let run = async {
            let mut store = self.store()?;
            let instance = self.pre.instantiate_async(&mut store).await?;
            let capabilities = match instance.init(&mut store, &self.config_json).await? {
                Ok(capabilities) => capabilities,
                Err(error) => return Ok(Err(error)),
            };
            Ok(op(&mut store, &instance).await?.map(|r| (r, capabilities)))
        };
        let outcome: wasmtime::Result<Result<(R, Capabilities), ProviderError>> =
            match tokio::time::timeout(self.limits.timeout, run).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Err(CallError::Timeout { provider, operation, limit_secs: self.limits.timeout.as_secs() });
                }
            };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CallError::Provider { provider, operation, error }),
            Err(err) => Err(self.classify_trap(operation, err)),
        }
    }

    fn classify_trap(&self, operation: &'static str, err: wasmtime::Error) -> CallError {
        let provider = self.name().to_string();
        if err.downcast_ref::<CpuLimitExceeded>().is_some() {
            return CallError::CpuLimit { provider, operation, limit_ms: self.limits.cpu.as_millis() };
        }
        if let Some(limit) = err.downcast_ref::<MemoryLimitExceeded>() {
            return CallError::MemoryLimit {
                operation,
                source: MemoryLimitExceeded {
                    adapter: limit.adapter.clone(),
                    limit_mib: limit.limit_mib,
                    asked_mib: limit.asked_mib,
                },
            };
        }
        CallError::Trap { provider, operation, message: format!("{err:#}") }
    }

    /// Runs one operation under the provider's retry policy; `attempt` builds
    /// a fresh call each time.
    async fn retrying<R, Fut>(&self, operation: &'static str, attempt: impl FnMut() -> Fut) -> Result<R, CallError>
    where
        Fut: Future<Output = Result<(R, Capabilities), CallError>>,
    {
        let started = std::time::Instant::now();
        let outcome = retry::retrying(&self.retry, self.name(), operation, attempt).await.map(|(value, _)| value);
        metrics::histogram!("wharf_adapter_call_seconds", "provider" => self.name().to_string(), "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        outcome
    }

    /// Waits before retry number `retry` (1-based) of a transfer that failed
    /// on the wire, as the provider's retry policy says; `false` when the
    /// retries have run out.
    pub async fn pause_before_retry(&self, retry: u32) -> bool {
        match retry::backoff(&self.retry, retry) {
            Some(wait) => {
                tracing::warn!(
                    provider = self.name(),
                    attempt = retry,
                    wait_ms = wait.as_millis() as u64,
                    "transfer cut; retrying"
                );
                tokio::time::sleep(wait).await;
                true
            }
            None => false,
        }
    }

    /// Stores content at the provider. The body is streamed by the host; a
    /// retry sends it again from the start.
    pub async fn upload(
        &self,
        content: Body,
        name: &str,
        mime: &str,
        sha256: &str,
        purpose: Option<&str>,
    ) -> Result<Stored, CallError> {
        let size = content.size().unwrap_or(0);
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let attempt = |content: Body| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (name, mime, sha256) = (name.to_string(), mime.to_string(), sha256.to_string());
            let purpose = purpose.map(str::to_string);
            self.call("upload", move |store, instance| {
                Box::pin(async move {
                    let content = store.data_mut().table.push(content)?;
                    let request = UploadRequest { content, name, mime, size, sha256, purpose };
                    instance.upload(store, request).await
                })
            })
        };
        let info = if content.try_clone().is_none() {
            // A response stream can be sent only once: no retry is possible.
            attempt(content).await.map(|(info, _)| info)?
        } else {
            self.retrying("upload", || attempt(content.try_clone().expect("checked above"))).await?
        };
        Ok(Stored { info, attempts: attempts.into_inner() })
    }

    /// Fetches an object, or the byte range of it given: its bytes as a host
    /// body, and whether they are the original or derived content.
    pub async fn download(
        &self,
        target: &ObjectRef,
        derived: bool,
        range: Option<ByteRange>,
    ) -> Result<(Body, ContentKind, Option<String>), CallError> {
        self.retrying("download", || {
            let target = target.clone();
            self.call("download", move |store, instance| {
                Box::pin(async move {
                    let result = instance.download(&mut *store, &target, derived, range).await?;
                    Ok(match result {
                        Ok(download) => {
                            let body = take_body(store, download.content)?;
                            Ok((body, download.kind, download.mime))
                        }
                        Err(e) => Err(e),
                    })
                })
            })
        })
        .await
    }

    pub async fn stat(&self, target: &ObjectRef) -> Result<ObjectInfo, CallError> {
        self.retrying("stat", || {
            let target = target.clone();
            self.call("stat", move |store, instance| Box::pin(async move { instance.stat(store, &target).await }))
        })
        .await
    }

    /// What the provider knows of an object named by a reference (a URL, an
    /// `s3://` address, a key), recognised by the adapter.
    pub async fn resolve(&self, reference: &str) -> Result<ObjectInfo, CallError> {
        self.retrying("resolve", || {
            let reference = reference.to_string();
            self.call("resolve", move |store, instance| {
                Box::pin(async move { instance.resolve(store, &reference).await })
            })
        })
        .await
    }

    pub async fn list(&self, cursor: Option<&str>, limit: u32) -> Result<Page, CallError> {
        self.retrying("list", || {
            let cursor = cursor.map(str::to_string);
            self.call("list", move |store, instance| {
                Box::pin(async move { instance.list(store, cursor.as_deref(), limit).await })
            })
        })
        .await
    }

    pub async fn delete(&self, target: &ObjectRef) -> Result<(), CallError> {
        self.retrying("delete", || {
            let target = target.clone();
            self.call("delete", move |store, instance| Box::pin(async move { instance.delete(store, &target).await }))
        })
        .await
    }

    pub async fn presign(&self, target: &ObjectRef, expires_in: Duration) -> Result<String, CallError> {
        let secs = expires_in.as_secs();
        self.retrying("presign", || {
            let target = target.clone();
            self.call("presign", move |store, instance| {
                Box::pin(async move { instance.presign(store, &target, secs).await })
            })
        })
        .await
    }
}

fn take_body(store: &mut Store<CallState>, handle: Resource<Body>) -> wasmtime::Result<Body> {
    Ok(store.data_mut().table.delete(handle)?)
}
