//! Wharf's operations, one place for each, shared by the CLI, the MCP server
//! and the HTTP server. Every surface picks a principal and calls through a
//! [`Caller`]: what a principal may see and do is decided here, never in a
//! surface.
//!
//! - `upload.rs`: upload with SHA-256 dedup and durable backup
//! - `download.rs`: verified downloads, to a path or as a stream, trying the
//!   copies in resolution order
//! - `files.rs`: info, listing, metadata, removal, statistics
//! - `register.rs`: recording objects already at a provider (direct references)
//! - `retention.rs`: `wharf gc`
//! - `links.rs`: single-use download links
//! - `tokens.rs`: API tokens and authentication
//! - `fsck.rs`: the catalog checked against the providers and the spool
//! - `conformance.rs`: `wharf plugins test`, the conformance suite for an adapter
//! - `reload.rs`: hot reload of the adapters under `wharf serve`

mod conformance;
mod download;
mod files;
mod fsck;
mod links;
mod register;
mod reload;
mod retention;
mod tokens;
mod upload;

pub use conformance::{ConformanceReport, ConformanceStep, StepOutcome};
pub use download::{ContentStream, Downloaded, FailedCopy, InlineContent, StreamedContent};
pub use files::{FileDetails, FileInfo, FileUpdate, RemoteInfo};
pub use fsck::{Finding, FsckOptions, FsckReport};
pub use links::{LinkContent, LinkCreated, LinkRequest, LinkTarget, LinkTransfer, RangeRequest};
pub use register::{DigestSource, Registered};
pub use reload::{ReloadError, Reloaded};
pub use retention::{Evicted, GcReport};
pub use tokens::TokenCreated;
pub use upload::{Source, UploadOptions, Uploaded};

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Serialize;

use crate::body::{BodyError, parse_hex, to_hex};
use crate::catalog::{Catalog, CatalogError, CopyState, Event, EventKind, ObjectRecord};
use crate::config::Config;
use crate::identity::IdentityIndex;
use crate::runtime::{Adapter, CallError, ContractVersion, DownloadSupport, ErrorKind, ObjectRef, Runtime};
use crate::sandbox::{Sandbox, SandboxError, WriteError};
use crate::validation::{Refusal, Validator};

/// Who a request acts for. Records, links and history belong to one principal;
/// an admin sees every principal's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub admin: bool,
}

impl Principal {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), admin: false }
    }

    /// Whether this principal may see what `owner` owns.
    pub fn can_see(&self, owner: &str) -> bool {
        self.admin || self.name == owner
    }

    /// The principal whose records to list: this one's, or everyone's for an admin.
    fn scope(&self) -> Option<String> {
        (!self.admin).then(|| self.name.clone())
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PluginInfo {
    pub name: String,
    /// The contract version the component was built for.
    pub wit_version: ContractVersion,
    pub plugin: PathBuf,
    /// Lowercase hex SHA-256 of the component, for a `sha256` pin.
    pub sha256: String,
    pub download: String,
    pub stat: bool,
    pub list: bool,
    pub delete: bool,
    pub presign: bool,
    pub resumable_upload: bool,
    pub persistent: bool,
    pub max_size: Option<u64>,
    pub ranged_download: bool,
    pub resolve: bool,
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("unknown provider {name:?}; configured providers: {known}")]
    UnknownProvider { name: String, known: String },
    /// Also the answer for another principal's id: existence is not revealed.
    #[error("no file with id {0:?}; use an id printed by upload (wf_…) or sha256:<hex>")]
    UnknownId(String),
    #[error("{id}: no copy at provider {provider}; it is held by: {held_by}")]
    NotAtProvider { id: String, provider: String, held_by: String },
    #[error("{what}: provider {provider} does not offer this (its adapter declares it unsupported)")]
    Unsupported { what: String, provider: String },
    #[error(
        "principal {principal} may not register {reference}; allow it with a pattern in [principals.{principal}] references"
    )]
    ReferenceNotAllowed { reference: String, principal: String },
    #[error("{id}: no copy could serve it: {failures}")]
    NoCopyServed { id: String, failures: String },
    #[error("{id}: {reason}, and the cache provider {cache} holds no copy of its bytes")]
    NoOriginal { id: String, reason: String, cache: String },
    #[error("{name} is {size} bytes; {limit} is {max} bytes")]
    TooLarge { name: String, size: u64, max: u64, limit: String },
    #[error("downloading {id} from {provider} into {destination}: {source}")]
    Write { id: String, provider: String, destination: String, source: Box<WriteError> },
    #[error("reading {what}: {source}")]
    Input { what: String, source: std::io::Error },
    #[error("reading {0}")]
    Read(#[source] BodyError),
    #[error("{provider} returned derived content for {id} where the original was asked for")]
    NotOriginal { id: String, provider: String },
    /// A provider that names files itself answered an upload with a file it
    /// does not hold, twice.
    #[error("{provider}: {detail}; sent twice, no copy confirmed")]
    Unconfirmed { provider: String, detail: String },
    #[error("{id} from {provider}: SHA-256 mismatch: expected {expected}, received {actual}")]
    Corrupt { id: String, provider: String, expected: String, actual: String },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the range asked for is outside the file's {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("unknown download link")]
    UnknownLink,
    #[error("this download link has {0}")]
    LinkUnavailable(&'static str),
    #[error("{path} changed since the link was made; make a new link")]
    Changed { path: String },
    #[error("too many download links generated; try again in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("no API token with id {0:?}; `wharf token ls` lists them")]
    UnknownToken(String),
    /// An upload that `[host.validation]` or a provider's validation refused;
    /// nothing was sent.
    #[error("upload refused: {0}")]
    Refused(#[from] Box<Refusal>),
}

impl GatewayError {
    /// A stable label of what went wrong, for statistics: the provider's
    /// error kind, or what Wharf refused.
    pub fn label(&self) -> &'static str {
        match self {
            GatewayError::Call(e) => e.label(),
            GatewayError::Sandbox(_) => "sandbox",
            GatewayError::Catalog(_) => "catalog",
            GatewayError::TooLarge { .. } => "too-large",
            GatewayError::Write { .. } | GatewayError::Input { .. } | GatewayError::Read(_) => "io",
            GatewayError::Corrupt { .. } => "corrupt",
            GatewayError::Refused(_) => "refused",
            _ => "other",
        }
    }
}

/// The loaded adapters by provider name, swapped whole by a reload.
type Adapters = BTreeMap<String, Arc<Adapter>>;

pub struct Gateway {
    config: Config,
    /// A call takes its adapter out (an `Arc`), so a reload swapping in new
    /// ones lets calls in flight finish on the old.
    adapters: arc_swap::ArcSwap<Adapters>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    catalog: Arc<dyn Catalog>,
    /// The host's sandbox, for principals without roots of their own.
    sandbox: Sandbox,
    principal_sandboxes: BTreeMap<String, Sandbox>,
    spool_dir: PathBuf,
    /// This process among the hosts sharing the catalog, in holds it takes:
    /// host name, process id and a random part (a restarted process may reuse a pid).
    host_id: String,
    link_limiter: governor::DefaultKeyedRateLimiter<String>,
    validator: Validator,
    /// Digests of files this host hashed, by file identity; `None` when its
    /// file cannot be opened (uploads then hash every time).
    identities: Option<IdentityIndex>,
    /// Clean-up left running by calls dropped halfway (an upload claim to
    /// release, a backup record to forget), for [`Gateway::settle`].
    abandoned: tokio_util::task::TaskTracker,
    // Declared last: adapters must drop before the engine's epoch thread stops.
    runtime: Runtime,
}

/// The gateway as one principal calls it. Cheap to make: one per request.
#[derive(Clone)]
pub struct Caller {
    gateway: Arc<Gateway>,
    principal: Principal,
}

impl Deref for Caller {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}

impl ObjectRecord {
    /// How the adapter knows this copy.
    fn target(&self) -> ObjectRef {
        ObjectRef { remote_id: self.remote_id.clone(), purpose: self.purpose.clone() }
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Bytes from the operating system's random number generator.
fn os_random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator is available");
    bytes
}

fn new_id() -> String {
    format!("wf_{}", hex::encode(os_random::<10>()))
}

fn new_host_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}:{}", std::process::id(), hex::encode(os_random::<3>()))
}

/// Loads every configured adapter, and checks that the cache provider can
/// keep and return original bytes.
async fn load_adapters(runtime: &Runtime, config: &Config) -> anyhow::Result<Adapters> {
    let mut adapters = BTreeMap::new();
    for provider in config.providers.values() {
        adapters.insert(provider.name.clone(), Arc::new(runtime.load(provider).await?));
    }
    let cache = &adapters[&config.cache_provider];
    anyhow::ensure!(
        cache.capabilities().download == DownloadSupport::Original && cache.capabilities().persistent,
        "{}: [host] cache = {:?} names a provider that cannot keep and return original bytes; choose a persistent one such as \"local\"",
        config.file.display(),
        config.cache_provider
    );
    Ok(adapters)
}

/// The hold that makes periodic clean-up run on one host at a time.
const CLEANUP_LEASE: &str = "lease cleanup";

impl Gateway {
    /// Opens the data directory, the catalog and the sandboxes, and loads
    /// every configured adapter.
    pub async fn open(config: Config) -> anyhow::Result<Arc<Self>> {
        let data_dir = &config.data_dir;
        let spool_dir = data_dir.join("spool");
        std::fs::create_dir_all(&spool_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let catalog = crate::catalog::open(&config.catalog).await?;
        let max_memory = config.providers.values().map(|p| p.limits.memory_bytes).max().unwrap_or(64 << 20);
        let runtime = Runtime::new(&data_dir.join("components"), max_memory)?;
        let adapters = load_adapters(&runtime, &config).await?;
        let base = config.relative_to_first_root.then(|| config.sandbox_roots.first()).flatten();
        let sandbox = Sandbox::open(&config.sandbox_roots, base)?;
        let mut principal_sandboxes = BTreeMap::new();
        for (name, principal) in &config.principals {
            if let Some(roots) = &principal.sandbox_roots {
                let sandbox = Sandbox::open(roots, roots.first())
                    .with_context(|| format!("[principals.{name}] sandbox_roots"))?;
                principal_sandboxes.insert(name.clone(), sandbox);
            }
        }
        let rate = NonZeroU32::new(config.server.links.rate_per_minute).unwrap_or(NonZeroU32::MIN);
        let link_limiter = governor::RateLimiter::keyed(governor::Quota::per_minute(rate));
        let identities = IdentityIndex::open(&data_dir.join("identities.sqlite3"))
            .inspect_err(|e| {
                tracing::warn!("the file-identity index is unavailable ({e}); every upload hashes its file")
            })
            .ok();
        let validator = Validator::new(config.validation.scan.as_ref());
        Ok(Arc::new(Self {
            config,
            adapters: arc_swap::ArcSwap::from_pointee(adapters),
            reloading: tokio::sync::Mutex::new(()),
            catalog,
            sandbox,
            principal_sandboxes,
            spool_dir,
            host_id: new_host_id(),
            link_limiter,
            validator,
            identities,
            abandoned: tokio_util::task::TaskTracker::new(),
            runtime,
        }))
    }

    /// The gateway acting for `principal`.
    pub fn caller(self: &Arc<Self>, principal: Principal) -> Caller {
        Caller { gateway: self.clone(), principal }
    }

    /// The gateway acting for `[host] principal`, as the CLI and `wharf mcp` do.
    pub fn host_caller(self: &Arc<Self>) -> Caller {
        self.caller(Principal::new(self.config.principal.clone()))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Waits for the clean-up of calls dropped halfway so far. A process that
    /// interrupts its calls (the CLI on Ctrl-C) calls this before it exits,
    /// since tasks still running when the runtime stops are cut short.
    pub async fn settle(&self) {
        self.abandoned.close();
        self.abandoned.wait().await;
        self.abandoned.reopen();
    }

    /// Runs the clean-up of a call dropped halfway, from a destructor, in a
    /// task of its own that [`Gateway::settle`] waits for.
    fn clean_up_abandoned(&self, work: impl Future<Output = ()> + Send + 'static) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.abandoned.spawn_on(work, &runtime);
        }
    }

    /// Whether the catalog answers and the adapters are loaded.
    pub async fn ready(&self) -> Result<(), GatewayError> {
        self.catalog.ping().await?;
        Ok(())
    }

    /// The provider's adapter as loaded now; a reload does not change the
    /// one a call has taken.
    fn adapter(&self, name: Option<&str>) -> Result<Arc<Adapter>, GatewayError> {
        let name = name.unwrap_or(&self.config.default_provider);
        let adapters = self.adapters.load();
        adapters.get(name).cloned().ok_or_else(|| GatewayError::UnknownProvider {
            name: name.to_string(),
            known: adapters.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    fn sandbox_of(&self, principal: &Principal) -> &Sandbox {
        self.principal_sandboxes.get(&principal.name).unwrap_or(&self.sandbox)
    }

    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.adapters
            .load()
            .values()
            .map(|adapter| {
                let caps = adapter.capabilities();
                PluginInfo {
                    name: adapter.name().to_string(),
                    wit_version: adapter.contract(),
                    plugin: adapter.plugin_path().to_path_buf(),
                    sha256: adapter.sha256().to_string(),
                    download: caps.download.to_string(),
                    stat: caps.stat,
                    list: caps.list,
                    delete: caps.delete,
                    presign: caps.presign,
                    resumable_upload: caps.resumable_upload,
                    persistent: caps.persistent,
                    max_size: caps.max_size,
                    ranged_download: caps.ranged_download,
                    resolve: caps.resolve,
                    allowed_hosts: adapter.allowed_hosts(),
                }
            })
            .collect()
    }

    /// Whether a copy is present at a provider that downloads `support` content.
    fn serves(&self, copy: &ObjectRecord, support: DownloadSupport) -> bool {
        copy.state == CopyState::Present
            && self.adapters.load().get(&copy.provider).is_some_and(|a| a.capabilities().download == support)
    }

    /// Marks a copy gone when its provider says so, then passes the error on.
    async fn note_missing(&self, object: &ObjectRecord, err: CallError) -> GatewayError {
        if matches!(err.kind(), Some(ErrorKind::NotFound | ErrorKind::Gone))
            && let Err(e) = self.catalog.set_state(&object.id, CopyState::Gone).await
        {
            tracing::warn!("could not mark {} gone: {e}", object.id);
        }
        err.into()
    }
}

impl Caller {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    fn sandbox(&self) -> &Sandbox {
        self.gateway.sandbox_of(&self.principal)
    }

    /// The record an id names, if this principal may see it: a Wharf id, or
    /// `sha256:<hex>` for a present copy of that content among this
    /// principal's records (at `provider`, if given). Another principal's
    /// record answers exactly as an unknown id does.
    async fn resolve(&self, id: &str, provider: Option<&str>) -> Result<ObjectRecord, GatewayError> {
        let unknown = || GatewayError::UnknownId(id.to_string());
        let sha256 = match id.strip_prefix("sha256:") {
            Some(hex) => parse_hex(hex).map(|d| to_hex(&d)).ok_or_else(unknown)?,
            None => {
                let object = self.catalog.object(id).await?.filter(|o| self.principal.can_see(&o.principal));
                let object = object.ok_or_else(unknown)?;
                match provider {
                    Some(p) if p != object.provider => object.sha256,
                    _ => return Ok(object),
                }
            }
        };
        let copies = self.visible_copies(&sha256).await?;
        if copies.is_empty() {
            return Err(unknown());
        }
        let usable = |o: &&ObjectRecord| self.serves(o, DownloadSupport::Original);
        let chosen = match provider {
            Some(p) => copies.iter().find(|o| o.provider == p && o.state == CopyState::Present),
            None => copies
                .iter()
                .filter(usable)
                .find(|o| o.provider == self.config.cache_provider)
                .or_else(|| copies.iter().find(usable)),
        };
        chosen.cloned().ok_or_else(|| GatewayError::NotAtProvider {
            id: id.to_string(),
            provider: provider.unwrap_or("any provider that returns original bytes").to_string(),
            held_by: copies.iter().map(|o| o.provider.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// This principal's records of some content (every record, for an admin).
    async fn visible_copies(&self, sha256: &str) -> Result<Vec<ObjectRecord>, GatewayError> {
        let mut copies = self.catalog.copies(sha256).await?;
        copies.retain(|o| self.principal.can_see(&o.principal));
        Ok(copies)
    }

    /// Counts a failure for `wharf stats` (`operation: kind`). The failure
    /// itself is reported to the caller; losing its count only logs.
    async fn note_failure(&self, operation: &'static str, provider: &str, kind: &'static str) {
        metrics::counter!("wharf_failures_total", "operation" => operation, "kind" => kind).increment(1);
        self.note_event(EventKind::Failure, provider, 0, format!("{operation}: {kind}")).await;
    }

    async fn note_event(&self, kind: EventKind, provider: &str, bytes: u64, detail: String) {
        let event = Event {
            at: now(),
            principal: self.principal.name.clone(),
            kind,
            provider: provider.to_string(),
            bytes,
            detail,
        };
        if let Err(e) = self.catalog.record_event(&event).await {
            tracing::warn!("could not count {} {}: {e}", kind.as_str(), event.detail);
        }
    }
}
