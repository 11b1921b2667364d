//! `providers.toml`: which adapters to load and what each may do.
//!
//! Everything is checked at load, and every problem is reported as
//! `FILE:LINE:COLUMN: what is wrong` followed by how to fix it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::validation::clamd::Address as ClamdAddress;
use crate::validation::{RuleSet, TypePattern};

/// The environment variable naming the config file when `--config` is absent.
pub const CONFIG_ENV: &str = "WHARF_CONFIG";

/// A validated configuration. Relative paths are resolved against the config
/// file's directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub data_dir: PathBuf,
    pub sandbox_roots: Vec<PathBuf>,
    pub default_provider: String,
    pub cache_provider: String,
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The principal the CLI and `wharf mcp` act as.
    pub principal: String,
    pub server: ServerConfig,
    /// Per-principal settings; a principal not listed uses the host's.
    pub principals: BTreeMap<String, PrincipalConfig>,
    /// What relative user paths under `[host] sandbox_roots` are relative
    /// to. Not in the file: the CLI and `wharf mcp` use the working
    /// directory; `wharf serve`, whose clients cannot know its working
    /// directory, uses the first root.
    pub relative_to_first_root: bool,
    /// Where the catalog lives.
    pub catalog: CatalogConfig,
    /// How long an upload claim lasts unless its holder renews it: how long
    /// others wait for the copy a killed host was sending. See gateway/upload.rs.
    pub claim_ttl: Duration,
    /// `[host] resolution`: the providers whose copies a download tries, in
    /// order. `None`: the cache provider first, then the file's own provider.
    pub resolution: Option<Vec<String>>,
    pub retention: RetentionConfig,
    /// `[host.validation]`: rules for every upload, and the malware scan.
    pub validation: HostValidation,
    /// `[host.downloads]`: parallel ranged reads of large files.
    pub downloads: DownloadConfig,
}

/// `[host.downloads]`: a file of at least `parallel_from` bytes, at a
/// provider over the network that serves byte ranges, is read as
/// `streams` ranged reads at once; smaller files, and `streams = 1`, as one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DownloadConfig {
    pub streams: usize,
    pub parallel_from: u64,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        Self { streams: 4, parallel_from: 64 << 20 }
    }
}

/// The most ranged reads of one download at once.
const MAX_DOWNLOAD_STREAMS: usize = 32;

/// `[retention]`: what `wharf gc` (and `wharf serve` on its clean-up timer)
/// removes. Each rule is off unless set, except expired links and spool
/// leftovers, which are always removed.
#[derive(Debug, Clone, Default)]
pub struct RetentionConfig {
    /// Download history and statistics events older than this many days.
    pub history_days: Option<u64>,
    /// Records of copies gone (or corrupt) for longer than this many days.
    pub gone_days: Option<u64>,
    /// A directory downloads are saved into, and how old its files may get.
    pub downloads_dir: Option<PathBuf>,
    pub downloads_max_age: Option<Duration>,
    /// The most the cache provider's copies may hold, in bytes; beyond it the
    /// least recently downloaded copies go first, when another copy can
    /// still return the original bytes.
    pub cache_max_bytes: Option<u64>,
}

/// `[host.validation]`
#[derive(Debug, Clone, Default)]
pub struct HostValidation {
    pub rules: RuleSet,
    pub scan: Option<ScanConfig>,
}

/// `[host.validation] scan = "clamd"`: every upload is streamed to clamd first.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub clamd: ClamdAddress,
    /// Refuse uploads when clamd cannot be reached (fail closed).
    pub required: bool,
    pub timeout: Duration,
}

/// `[providers.NAME.validation]`: rules for uploads to one provider, and for
/// some of its purposes (`[providers.NAME.validation.purpose.PURPOSE]`).
#[derive(Debug, Clone, Default)]
pub struct ProviderValidation {
    pub rules: RuleSet,
    pub purposes: BTreeMap<String, RuleSet>,
}

/// The environment variable holding the PostgreSQL URL when `url_env` is absent.
pub const DATABASE_URL_ENV: &str = "WHARF_DATABASE_URL";

/// `[host] catalog`: the embedded SQLite file, or a PostgreSQL database that
/// several hosts share.
#[derive(Debug, Clone)]
pub enum CatalogConfig {
    Sqlite { path: PathBuf },
    Postgres(Box<PostgresConfig>),
}

/// `[host.postgres]`, with the connection read from the environment.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The variable the URL came from, for messages.
    pub url_env: String,
    /// Parsed from the URL; its `Debug` hides the password.
    pub connection: tokio_postgres::Config,
    pub max_connections: usize,
}

impl PostgresConfig {
    /// `postgres://USER@HOST:PORT/DATABASE`: the URL without its password, for
    /// messages and logs.
    pub fn describe(&self) -> String {
        let c = &self.connection;
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let host = match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                };
                match c.get_ports().get(i).or(c.get_ports().first()) {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                }
            })
            .collect();
        let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
        format!("postgres://{user}{}/{}", hosts.join(","), c.get_dbname().unwrap_or_default())
    }
}

/// `[server]`: how `wharf serve` listens, authenticates and limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The base of the links handed out; `http://<listen>` when not set.
    pub public_url: Option<String>,
    pub auth: AuthMode,
    pub shutdown_grace: Duration,
    pub max_upload_bytes: u64,
    /// For routes that do not move file bytes.
    pub request_timeout: Duration,
    pub cleanup_interval: Duration,
    pub links: LinkLimits,
    /// Browser origins besides the server's own that may call `/mcp`.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// `Authorization: Bearer <token>` on every request.
    Token,
    /// No authentication: every request is the principal `local`. Loopback only.
    None,
}

/// `[server.links]`
#[derive(Debug, Clone, Copy)]
pub struct LinkLimits {
    /// Largest file, or directory total, a link may serve.
    pub max_size: u64,
    /// Link generations per principal per minute.
    pub rate_per_minute: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            auth: AuthMode::Token,
            shutdown_grace: Duration::from_secs(30),
            max_upload_bytes: 1 << 30,
            request_timeout: Duration::from_secs(30),
            cleanup_interval: Duration::from_secs(300),
            links: LinkLimits { max_size: 100 << 20, rate_per_minute: 60 },
            allowed_origins: Vec::new(),
        }
    }
}

/// `[principals.NAME]`
#[derive(Debug, Clone)]
pub struct PrincipalConfig {
    /// Where this principal's paths may point, relative paths resolving
    /// against the first; `[host] sandbox_roots` when `None`.
    pub sandbox_roots: Option<Vec<PathBuf>>,
    /// The objects this principal may register (`wharf register`): patterns
    /// over references such as `s3://bucket/users/alice/*`. None by default.
    pub references: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub plugin: PluginSource,
    /// The SHA-256 (lowercase hex) the component's bytes must have
    /// (`sha256 = "…"`): a different component is refused.
    pub sha256: Option<String>,
    pub allowed_hosts: Vec<AllowedHost>,
    pub secrets: Secrets,
    pub storage: Option<StorageGrant>,
    pub limits: Limits,
    pub retry: RetryPolicy,
    pub validation: ProviderValidation,
    /// The free-form `config` table, as JSON for the adapter's `init`.
    pub adapter_config_json: String,
}

impl ProviderConfig {
    /// An entry for a component checked on its own (`wharf plugins check`
    /// without `--provider`): an empty `config` table, no hosts, secrets or
    /// storage granted, the default limits.
    pub fn standalone(name: &str, component: PathBuf) -> Self {
        Self {
            name: name.to_string(),
            plugin: PluginSource::File(component),
            sha256: None,
            allowed_hosts: Vec::new(),
            secrets: Secrets::default(),
            storage: None,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            validation: ProviderValidation::default(),
            adapter_config_json: "{}".into(),
        }
    }
}

/// Where an adapter's component comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginSource {
    /// An adapter built with Wharf, by name (`local`, `kimi`, ...).
    Builtin(String),
    /// A component file supplied by the operator.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct StorageGrant {
    pub dir: PathBuf,
    pub writable: bool,
}

/// Per-adapter resource limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Linear memory and tables the adapter may grow to.
    pub memory_bytes: u64,
    /// Guest CPU time per operation.
    pub cpu: Duration,
    /// Wall-clock time per operation, host calls (transfers) included.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory_bytes: 64 << 20, cpu: Duration::from_secs(2), timeout: Duration::from_secs(600) }
    }
}

/// How the host retries an adapter operation that failed as rate-limited or
/// unavailable. Other failures are never retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// The first backoff; each retry doubles it, up to `max_delay`, with jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A provider's `retry-after` is honoured up to this; a longer one falls
    /// back to exponential backoff.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// One entry of `allowed_hosts`: `scheme://host[:port]`, where host may start
/// with `*.` to allow its subdomains.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedHost {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl AllowedHost {
    fn parse(entry: &str) -> Result<Self, String> {
        let hint = "write it as scheme://host[:port], e.g. \"https://api.moonshot.ai\" or \"http://127.0.0.1:9000\"";
        let (scheme, rest) = entry.split_once("://").ok_or_else(|| format!("{entry:?} has no scheme; {hint}"))?;
        if scheme != "http" && scheme != "https" {
            return Err(format!("{entry:?}: only http and https are allowed; {hint}"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.is_empty() {
            return Err(format!("{entry:?} must name a host only, without a path; {hint}"));
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
                let port = port.parse().map_err(|_| format!("{entry:?} has a bad port; {hint}"))?;
                (host, port)
            }
            _ => (rest, default_port),
        };
        Ok(Self { scheme: scheme.into(), host: host.to_ascii_lowercase(), port })
    }

    /// Whether a request URL may go to this host.
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_matches = match self.host.strip_prefix("*.") {
            Some(parent) => host.ends_with(&format!(".{parent}")),
            None => host == self.host,
        };
        url.scheme() == self.scheme && host_matches && url.port_or_known_default() == Some(self.port)
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Secret values read from the environment, by the names adapters use.
/// Never printed: `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<String, String>);

impl Secrets {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// A problem in the config file, with where it is and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    pub location: String,
    pub message: String,
}

// ---- the file's shape ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    host: RawHost,
    #[serde(default)]
    providers: BTreeMap<String, Spanned<RawProvider>>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    principals: BTreeMap<String, Spanned<RawPrincipal>>,
    #[serde(default)]
    retention: RawRetention,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    history_days: Option<u64>,
    gone_days: Option<u64>,
    downloads_dir: Option<PathBuf>,
    downloads_max_age_hours: Option<Spanned<u64>>,
    cache_max_bytes: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    public_url: Option<Spanned<String>>,
    auth: Option<AuthMode>,
    shutdown_grace_secs: Option<u64>,
    max_upload_bytes: Option<u64>,
    request_timeout_secs: Option<u64>,
    cleanup_interval_secs: Option<Spanned<u64>>,
    #[serde(default)]
    links: RawLinks,
    #[serde(default)]
    allowed_origins: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLinks {
    max_size: Option<u64>,
    rate_per_minute: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    sandbox_roots: Option<Vec<Spanned<PathBuf>>>,
    #[serde(default)]
    references: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHost {
    data_dir: Option<Spanned<PathBuf>>,
    sandbox_roots: Option<Vec<Spanned<PathBuf>>>,
    default_provider: Option<Spanned<String>>,
    cache: Option<Spanned<String>>,
    principal: Option<Spanned<String>>,
    catalog: Option<Spanned<CatalogKind>>,
    postgres: Option<Spanned<RawPostgres>>,
    claim_ttl_secs: Option<Spanned<u64>>,
    resolution: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    retry: RawRetry,
    validation: Option<RawHostValidation>,
    downloads: Option<RawDownloads>,
}

/// `[host.downloads]`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDownloads {
    streams: Option<Spanned<usize>>,
    parallel_from: Option<u64>,
}

/// `[host.validation]`: the rule keys, and the scanner.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHostValidation {
    max_size: Option<Spanned<u64>>,
    allowed_types: Option<Spanned<Vec<Spanned<String>>>>,
    strict_types: Option<bool>,
    scan: Option<ScanKind>,
    clamd: Option<Spanned<String>>,
    scan_required: Option<Spanned<bool>>,
    scan_timeout_secs: Option<Spanned<u64>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum ScanKind {
    Clamd,
}

/// `[providers.NAME.validation]`: the rule keys, and per-purpose tables of them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProviderValidation {
    max_size: Option<Spanned<u64>>,
    allowed_types: Option<Spanned<Vec<Spanned<String>>>>,
    strict_types: Option<bool>,
    #[serde(default)]
    purpose: BTreeMap<String, RawRules>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    max_size: Option<Spanned<u64>>,
    allowed_types: Option<Spanned<Vec<Spanned<String>>>>,
    strict_types: Option<bool>,
}

/// Debian's clamav-daemon socket.
const DEFAULT_CLAMD: &str = "/run/clamav/clamd.ctl";
const DEFAULT_SCAN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum CatalogKind {
    Sqlite,
    Postgres,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    url_env: Option<Spanned<String>>,
    max_connections: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    plugin: Spanned<String>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    allowed_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<String>>,
    storage_dir: Option<Spanned<PathBuf>>,
    #[serde(default)]
    storage_access: Access,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    retry: RawRetry,
    validation: Option<RawProviderValidation>,
    #[serde(default)]
    config: toml::Table,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_retries: Option<u32>,
    base_delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
    max_retry_after_ms: Option<u64>,
}

impl RawRetry {
    fn over(self, base: RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries.unwrap_or(base.max_retries),
            base_delay: self.base_delay_ms.map_or(base.base_delay, Duration::from_millis),
            max_delay: self.max_delay_ms.map_or(base.max_delay, Duration::from_millis),
            max_retry_after: self.max_retry_after_ms.map_or(base.max_retry_after, Duration::from_millis),
        }
    }
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Access {
    #[default]
    ReadWrite,
    ReadOnly,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mib: Option<u64>,
    cpu_ms: Option<u64>,
    timeout_secs: Option<u64>,
}

impl RawLimits {
    fn over(self, base: Limits) -> Limits {
        Limits {
            memory_bytes: self.memory_mib.map_or(base.memory_bytes, |m| m << 20),
            cpu: self.cpu_ms.map_or(base.cpu, Duration::from_millis),
            timeout: self.timeout_secs.map_or(base.timeout, Duration::from_secs),
        }
    }
}

/// Where to look for the config: `--config`, then `$WHARF_CONFIG`, then `./providers.toml`.
pub fn locate(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("providers.toml"))
}

impl Config {
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            location: file.display().to_string(),
            message: format!(
                "cannot read the config: {e}; create it (the repository's providers.toml is a working start) or pass --config PATH"
            ),
        })?;
        Self::parse(file, &text)
    }

    /// Parses and validates config text; `file` names it in messages and
    /// anchors its relative paths. Secrets and the database URL come from
    /// the process environment.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        Self::parse_with_env(file, text, &|name| std::env::var(name).ok())
    }

    /// `parse`, reading environment variables through `env`.
    pub fn parse_with_env(file: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let at = |span: Option<Range<usize>>, message: String| ConfigError {
            location: locate_span(file, text, span),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_string()))?;
        let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
        };

        let host_limits = raw.host.limits.over(Limits::default());
        let host_retry = raw.host.retry.over(RetryPolicy::default());
        let mut providers = BTreeMap::new();
        for (name, entry) in &raw.providers {
            let span = entry.span();
            let entry = entry.get_ref();
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(at(
                    Some(span),
                    format!("provider name {name:?} may use only letters, digits, '-' and '_'"),
                ));
            }
            let plugin =
                parse_plugin(entry.plugin.get_ref(), &resolve).map_err(|m| at(Some(entry.plugin.span()), m))?;
            let sha256 = entry
                .sha256
                .as_ref()
                .map(|pin| parse_pin(pin.get_ref()).map_err(|m| at(Some(pin.span()), m)))
                .transpose()?;
            let allowed_hosts = entry
                .allowed_hosts
                .iter()
                .map(|h| AllowedHost::parse(h.get_ref()).map_err(|m| at(Some(h.span()), m)))
                .collect::<Result<Vec<_>, _>>()?;
            let mut secrets = BTreeMap::new();
            for (secret, var) in &entry.secrets {
                let value = env(var.get_ref()).ok_or_else(|| {
                    at(
                        Some(var.span()),
                        format!(
                            "providers.{name}.secrets.{secret}: environment variable {} is not set; export it before starting Wharf, or remove provider {name:?}",
                            var.get_ref()
                        ),
                    )
                })?;
                if value.is_empty() {
                    return Err(at(
                        Some(var.span()),
                        format!(
                            "environment variable {} is empty; set it to the key for provider {name:?}",
                            var.get_ref()
                        ),
                    ));
                }
                secrets.insert(secret.clone(), value);
            }
            let storage = entry.storage_dir.as_ref().map(|dir| StorageGrant {
                dir: resolve(dir.get_ref()),
                writable: entry.storage_access == Access::ReadWrite,
            });
            let adapter_config_json =
                serde_json::to_string(&entry.config).expect("a TOML table is representable as JSON");
            let validation = match &entry.validation {
                Some(v) => {
                    let table = format!("[providers.{name}.validation]");
                    let mut purposes = BTreeMap::new();
                    for (purpose, rules) in &v.purpose {
                        let table = format!("[providers.{name}.validation.purpose.{purpose}]");
                        purposes.insert(
                            purpose.clone(),
                            parse_rules(&table, &rules.max_size, &rules.allowed_types, rules.strict_types, &at)?,
                        );
                    }
                    ProviderValidation {
                        rules: parse_rules(&table, &v.max_size, &v.allowed_types, v.strict_types, &at)?,
                        purposes,
                    }
                }
                None => ProviderValidation::default(),
            };
            providers.insert(
                name.clone(),
                ProviderConfig {
                    name: name.clone(),
                    plugin,
                    sha256,
                    allowed_hosts,
                    secrets: Secrets(secrets),
                    storage,
                    limits: entry.limits.over(host_limits),
                    retry: entry.retry.over(host_retry),
                    validation,
                    adapter_config_json,
                },
            );
        }

        let pick = |field: &Option<Spanned<String>>, what: &str| -> Result<String, ConfigError> {
            let (name, span) = match field {
                Some(s) => (s.get_ref().clone(), Some(s.span())),
                None if providers.contains_key("local") => ("local".to_string(), None),
                None => providers.keys().next().cloned().map(|n| (n, None)).ok_or_else(|| {
                    at(
                        None,
                        "no providers are configured; add a [providers.local] entry with plugin = \"local\"".into(),
                    )
                })?,
            };
            if !providers.contains_key(&name) {
                let known: Vec<_> = providers.keys().map(String::as_str).collect();
                return Err(at(span, format!("{what} {name:?} is not configured; use one of: {}", known.join(", "))));
            }
            Ok(name)
        };
        let default_provider = pick(&raw.host.default_provider, "default_provider")?;
        let cache_provider = pick(&raw.host.cache, "cache")?;

        let data_dir = resolve(raw.host.data_dir.as_ref().map_or(Path::new(".wharf"), |d| d.get_ref()));
        let sandbox_roots = match &raw.host.sandbox_roots {
            Some(roots) if roots.is_empty() => {
                return Err(at(
                    None,
                    "[host] sandbox_roots is empty: no path could be read or written; list at least one directory"
                        .into(),
                ));
            }
            Some(roots) => roots.iter().map(|r| resolve(r.get_ref())).collect(),
            None => {
                vec![std::env::current_dir().map_err(|e| at(None, format!("cannot read the working directory: {e}")))?]
            }
        };
        let principal = match &raw.host.principal {
            Some(name) => {
                check_principal_name(name.get_ref()).map_err(|m| at(Some(name.span()), m))?;
                name.get_ref().clone()
            }
            None => "local".to_string(),
        };
        let mut principals = BTreeMap::new();
        for (name, entry) in &raw.principals {
            check_principal_name(name).map_err(|m| at(Some(entry.span()), m))?;
            let sandbox_roots = match &entry.get_ref().sandbox_roots {
                Some(roots) if roots.is_empty() => {
                    return Err(at(
                        Some(entry.span()),
                        format!(
                            "principals.{name}.sandbox_roots is empty; list at least one directory, or leave it out to use [host] sandbox_roots"
                        ),
                    ));
                }
                Some(roots) => Some(roots.iter().map(|r| resolve(r.get_ref())).collect()),
                None => None,
            };
            let mut references = Vec::new();
            for pattern in &entry.get_ref().references {
                let text = pattern.get_ref().trim();
                if text.is_empty() || text == "*" {
                    return Err(at(
                        Some(pattern.span()),
                        format!(
                            "principals.{name}.references: {text:?} would allow every object; name a bucket and prefix, such as \"s3://bucket/users/{name}/*\""
                        ),
                    ));
                }
                references.push(text.to_string());
            }
            principals.insert(name.clone(), PrincipalConfig { sandbox_roots, references });
        }
        let server = parse_server(&raw.server, &at)?;
        let catalog = parse_catalog(&raw.host, &data_dir, env, &at)?;
        let validation = match &raw.host.validation {
            Some(v) => parse_host_validation(v, &resolve, &at)?,
            None => HostValidation::default(),
        };
        let mut downloads = DownloadConfig::default();
        if let Some(raw_downloads) = &raw.host.downloads {
            if let Some(streams) = &raw_downloads.streams {
                if !(1..=MAX_DOWNLOAD_STREAMS).contains(streams.get_ref()) {
                    return Err(at(
                        Some(streams.span()),
                        format!(
                            "[host.downloads] streams must be between 1 (one stream per download) and {MAX_DOWNLOAD_STREAMS}"
                        ),
                    ));
                }
                downloads.streams = *streams.get_ref();
            }
            downloads.parallel_from = raw_downloads.parallel_from.unwrap_or(downloads.parallel_from);
        }
        let claim_ttl = match &raw.host.claim_ttl_secs {
            Some(secs) if *secs.get_ref() == 0 => {
                return Err(at(
                    Some(secs.span()),
                    "[host] claim_ttl_secs must be at least 1 (how long other hosts wait for a copy a dead host was sending)"
                        .into(),
                ));
            }
            Some(secs) => Duration::from_secs(*secs.get_ref()),
            None => DEFAULT_CLAIM_TTL,
        };
        let resolution = match &raw.host.resolution {
            Some(order) => {
                let mut names = Vec::new();
                for name in order {
                    if !providers.contains_key(name.get_ref()) {
                        let known: Vec<_> = providers.keys().map(String::as_str).collect();
                        return Err(at(
                            Some(name.span()),
                            format!(
                                "[host] resolution names provider {:?}, which is not configured; use some of: {}",
                                name.get_ref(),
                                known.join(", ")
                            ),
                        ));
                    }
                    if names.contains(name.get_ref()) {
                        return Err(at(
                            Some(name.span()),
                            format!("[host] resolution lists {:?} twice", name.get_ref()),
                        ));
                    }
                    names.push(name.get_ref().clone());
                }
                Some(names)
            }
            None => None,
        };
        let retention = RetentionConfig {
            history_days: raw.retention.history_days,
            gone_days: raw.retention.gone_days,
            downloads_dir: raw.retention.downloads_dir.as_deref().map(resolve),
            downloads_max_age: match (&raw.retention.downloads_dir, &raw.retention.downloads_max_age_hours) {
                (None, Some(hours)) => {
                    return Err(at(
                        Some(hours.span()),
                        "[retention] downloads_max_age_hours needs downloads_dir: the directory whose files it ages out"
                            .into(),
                    ));
                }
                (_, hours) => hours.as_ref().map(|h| Duration::from_secs(h.get_ref() * 3600)),
            },
            cache_max_bytes: raw.retention.cache_max_bytes,
        };
        Ok(Config {
            file: file.to_path_buf(),
            data_dir,
            sandbox_roots,
            default_provider,
            cache_provider,
            providers,
            principal,
            server,
            principals,
            relative_to_first_root: false,
            catalog,
            claim_ttl,
            resolution,
            retention,
            validation,
            downloads,
        })
    }
}

/// The size and type keys of one validation table, named `table` in messages.
fn parse_rules(
    table: &str,
    max_size: &Option<Spanned<u64>>,
    allowed_types: &Option<Spanned<Vec<Spanned<String>>>>,
    strict_types: Option<bool>,
    at: &dyn Fn(Option<Range<usize>>, String) -> ConfigError,
) -> Result<RuleSet, ConfigError> {
    if let Some(max) = max_size.as_ref().filter(|max| *max.get_ref() == 0) {
        return Err(at(
            Some(max.span()),
            format!("{table} max_size must be at least 1 (bytes); remove it to allow any size"),
        ));
    }
    let allowed_types = match allowed_types {
        Some(list) if list.get_ref().is_empty() => {
            return Err(at(
                Some(list.span()),
                format!(
                    "{table} allowed_types is empty, which would refuse every upload; list the types to accept, e.g. [\"application/pdf\", \"image/*\"], or remove the key"
                ),
            ));
        }
        Some(list) => Some(
            list.get_ref()
                .iter()
                .map(|p| {
                    TypePattern::parse(p.get_ref())
                        .map_err(|m| at(Some(p.span()), format!("{table} allowed_types: {m}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    Ok(RuleSet { max_size: max_size.as_ref().map(|m| *m.get_ref()), allowed_types, strict_types })
}

fn parse_host_validation(
    raw: &RawHostValidation,
    resolve: &dyn Fn(&Path) -> PathBuf,
    at: &dyn Fn(Option<Range<usize>>, String) -> ConfigError,
) -> Result<HostValidation, ConfigError> {
    let table = "[host.validation]";
    let rules = parse_rules(table, &raw.max_size, &raw.allowed_types, raw.strict_types, at)?;
    if raw.scan.is_none() {
        // Scanner settings without a scanner would silently scan nothing.
        let stray = [
            raw.clamd.as_ref().map(|c| ("clamd", c.span())),
            raw.scan_required.as_ref().map(|r| ("scan_required", r.span())),
            raw.scan_timeout_secs.as_ref().map(|t| ("scan_timeout_secs", t.span())),
        ];
        if let Some((key, span)) = stray.into_iter().flatten().next() {
            return Err(at(
                Some(span),
                format!("{table} {key} is set but scan is not; add scan = \"clamd\" to scan uploads, or remove {key}"),
            ));
        }
        return Ok(HostValidation { rules, scan: None });
    }
    let clamd = match &raw.clamd {
        Some(address) => parse_clamd_address(address.get_ref(), resolve).map_err(|m| at(Some(address.span()), m))?,
        None => ClamdAddress::Unix(PathBuf::from(DEFAULT_CLAMD)),
    };
    let timeout = match &raw.scan_timeout_secs {
        Some(secs) if *secs.get_ref() == 0 => {
            return Err(at(Some(secs.span()), format!("{table} scan_timeout_secs must be at least 1")));
        }
        Some(secs) => Duration::from_secs(*secs.get_ref()),
        None => DEFAULT_SCAN_TIMEOUT,
    };
    let required = raw.scan_required.as_ref().is_none_or(|r| *r.get_ref());
    Ok(HostValidation { rules, scan: Some(ScanConfig { clamd, required, timeout }) })
}

/// A Unix socket path (absolute, or relative to the config file) or HOST:PORT.
fn parse_clamd_address(value: &str, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<ClamdAddress, String> {
    if value.contains('/') {
        return Ok(ClamdAddress::Unix(resolve(Path::new(value))));
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(ClamdAddress::Tcp(value.to_string()))
        }
        _ => Err(format!(
            "[host.validation] clamd = {value:?} is neither a socket path nor HOST:PORT; write e.g. \"/run/clamav/clamd.ctl\" or \"127.0.0.1:3310\""
        )),
    }
}

/// Long enough that a renewal (every third of it) survives a slow database
/// round trip; short enough that a dead host's claim does not hold others up for long.
const DEFAULT_CLAIM_TTL: Duration = Duration::from_secs(30);
const DEFAULT_MAX_CONNECTIONS: usize = 16;

fn parse_catalog(
    host: &RawHost,
    data_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    at: &dyn Fn(Option<Range<usize>>, String) -> ConfigError,
) -> Result<CatalogConfig, ConfigError> {
    let kind = host.catalog.as_ref().map_or(CatalogKind::Sqlite, |k| *k.get_ref());
    let raw = match (kind, &host.postgres) {
        (CatalogKind::Sqlite, None) => return Ok(CatalogConfig::Sqlite { path: data_dir.join("catalog.sqlite3") }),
        (CatalogKind::Sqlite, Some(postgres)) => {
            return Err(at(
                Some(postgres.span()),
                "[host.postgres] is set but [host] catalog is \"sqlite\" (the default); set catalog = \"postgres\", or remove [host.postgres]".into(),
            ));
        }
        (CatalogKind::Postgres, raw) => raw.as_ref().map(|r| r.get_ref()),
    };
    let catalog_span = host.catalog.as_ref().map(|k| k.span());
    let (url_env, url_span) = match raw.and_then(|r| r.url_env.as_ref()) {
        Some(var) => (var.get_ref().clone(), Some(var.span())),
        None => (DATABASE_URL_ENV.to_string(), catalog_span.clone()),
    };
    let form = "postgres://USER:PASSWORD@HOST:PORT/DATABASE";
    let url = env(&url_env).filter(|url| !url.is_empty()).ok_or_else(|| {
        at(
            url_span.clone(),
            format!(
                "[host] catalog = \"postgres\" reads its connection URL from environment variable {url_env}, which is not set or empty; export it ({form}), or name another variable in [host.postgres] url_env"
            ),
        )
    })?;
    // Only what the driver says is wrong is repeated, never the value: it
    // holds the password.
    let connection: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        let reason = std::error::Error::source(&e).map_or_else(|| e.to_string(), |cause| format!("{e}: {cause}"));
        at(
            url_span.clone(),
            format!("environment variable {url_env} is not a PostgreSQL connection URL ({reason}); write it as {form}"),
        )
    })?;
    if connection.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(at(
            url_span,
            format!(
                "the URL in {url_env} asks for sslmode=require, but Wharf connects to PostgreSQL without TLS (use it over loopback or a private network); remove sslmode or set it to prefer or disable"
            ),
        ));
    }
    let max_connections = match raw.and_then(|r| r.max_connections.as_ref()) {
        Some(n) if *n.get_ref() == 0 => {
            return Err(at(Some(n.span()), "[host.postgres] max_connections must be at least 1".into()));
        }
        Some(n) => *n.get_ref(),
        None => DEFAULT_MAX_CONNECTIONS,
    };
    Ok(CatalogConfig::Postgres(Box::new(PostgresConfig { url_env, connection, max_connections })))
}

/// Principal names appear in URLs, logs and metrics: keep them plain.
pub fn check_principal_name(name: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if name.is_empty() || name.len() > 128 || !name.chars().all(plain) {
        return Err(format!(
            "principal name {name:?} may use only letters, digits, '-', '_', '.' and '@' (at most 128 characters)"
        ));
    }
    Ok(())
}

fn parse_server(
    raw: &RawServer,
    at: &dyn Fn(Option<Range<usize>>, String) -> ConfigError,
) -> Result<ServerConfig, ConfigError> {
    let defaults = ServerConfig::default();
    let listen = match &raw.listen {
        Some(listen) => listen.get_ref().parse().map_err(|_| {
            at(
                Some(listen.span()),
                format!(
                    "[server] listen = {:?} is not an address; write it as IP:PORT, e.g. \"127.0.0.1:8080\"",
                    listen.get_ref()
                ),
            )
        })?,
        None => defaults.listen,
    };
    let public_url = match &raw.public_url {
        Some(url) => {
            let parsed = reqwest::Url::parse(url.get_ref()).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
            if parsed.is_none() {
                return Err(at(
                    Some(url.span()),
                    format!(
                        "[server] public_url = {:?} is not an http(s) URL; write the base people reach this server at, e.g. \"https://files.example.com\"",
                        url.get_ref()
                    ),
                ));
            }
            Some(url.get_ref().clone())
        }
        None => None,
    };
    let cleanup_interval = match &raw.cleanup_interval_secs {
        Some(secs) if *secs.get_ref() == 0 => {
            return Err(at(Some(secs.span()), "[server] cleanup_interval_secs must be at least 1".into()));
        }
        Some(secs) => Duration::from_secs(*secs.get_ref()),
        None => defaults.cleanup_interval,
    };
    let rate_per_minute = match &raw.links.rate_per_minute {
        Some(rate) if *rate.get_ref() == 0 => {
            return Err(at(
                Some(rate.span()),
                "[server.links] rate_per_minute must be at least 1 (it limits link generations per principal)".into(),
            ));
        }
        Some(rate) => *rate.get_ref(),
        None => defaults.links.rate_per_minute,
    };
    let mut allowed_origins = Vec::new();
    for origin in &raw.allowed_origins {
        let parsed = reqwest::Url::parse(origin.get_ref()).ok().filter(|u| u.has_host() && u.path() == "/");
        if parsed.is_none() {
            return Err(at(
                Some(origin.span()),
                format!(
                    "[server] allowed_origins: {:?} is not an origin; write scheme://host[:port], e.g. \"https://app.example.com\"",
                    origin.get_ref()
                ),
            ));
        }
        allowed_origins.push(origin.get_ref().trim_end_matches('/').to_string());
    }
    Ok(ServerConfig {
        allowed_origins,
        listen,
        public_url,
        auth: raw.auth.unwrap_or(defaults.auth),
        shutdown_grace: raw.shutdown_grace_secs.map_or(defaults.shutdown_grace, Duration::from_secs),
        max_upload_bytes: raw.max_upload_bytes.unwrap_or(defaults.max_upload_bytes),
        request_timeout: raw.request_timeout_secs.map_or(defaults.request_timeout, Duration::from_secs),
        cleanup_interval,
        links: LinkLimits { max_size: raw.links.max_size.unwrap_or(defaults.links.max_size), rate_per_minute },
    })
}

fn parse_plugin(value: &str, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<PluginSource, String> {
    let looks_like_path = value.ends_with(".wasm") || value.contains('/');
    if !looks_like_path {
        if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("plugin {value:?} is neither a built-in adapter name nor a path to a .wasm file"));
        }
        return Ok(PluginSource::Builtin(value.to_string()));
    }
    let path = resolve(Path::new(value));
    if !path.is_file() {
        return Err(format!(
            "plugin file {} does not exist; build the component (cargo build --target wasm32-wasip2) and give its path, or name a built-in adapter such as \"local\"",
            path.display()
        ));
    }
    Ok(PluginSource::File(path))
}

/// A pin is the component's SHA-256 as `sha256sum` prints it.
fn parse_pin(value: &str) -> Result<String, String> {
    let digest = value.strip_prefix("sha256:").unwrap_or(value).to_ascii_lowercase();
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "sha256 {value:?} is not a SHA-256 digest; give the 64 hex digits `sha256sum` prints for the component (`wharf plugins check` shows it too)"
        ));
    }
    Ok(digest)
}

/// `file:line:column` for a byte span of the text.
fn locate_span(file: &Path, text: &str, span: Option<Range<usize>>) -> String {
    match span {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rfind('\n').map_or(before.len(), |i| before.len() - i - 1) + 1;
            format!("{}:{line}:{column}", file.display())
        }
        None => file.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("providers.toml"), text)
    }

    #[test]
    fn unknown_key_names_its_line() {
        let err = parse("[host]\ndata_dir = \".wharf\"\ncolour = \"blue\"\n").unwrap_err();
        assert_eq!(err.location, "providers.toml:3:1");
        assert!(err.message.contains("colour"), "{err}");
    }

    #[test]
    fn wrong_type_names_its_line() {
        let err = parse("[providers.local]\nplugin = \"local\"\n[providers.local.limits]\nmemory_mib = \"lots\"\n")
            .unwrap_err();
        assert!(err.location.starts_with("providers.toml:4:"), "{err}");
    }

    #[test]
    fn missing_secret_names_variable_and_fix() {
        let err = parse("[providers.kimi]\nplugin = \"local\"\nsecrets = { api_key = \"WHARF_TEST_SURELY_UNSET\" }\n")
            .unwrap_err();
        assert!(err.location.starts_with("providers.toml:3:"), "{err}");
        assert!(err.message.contains("WHARF_TEST_SURELY_UNSET is not set"), "{err}");
        assert!(err.message.contains("export it"), "{err}");
    }

    #[test]
    fn a_pin_must_be_a_digest() {
        let err = parse("[providers.local]\nplugin = \"local\"\nsha256 = \"abc\"\n").unwrap_err();
        assert!(err.location.starts_with("providers.toml:3:"), "{err}");
        assert!(err.message.contains("not a SHA-256 digest"), "{err}");
        let digest = "AB".repeat(32);
        let config = parse(&format!("[providers.local]\nplugin = \"local\"\nsha256 = \"{digest}\"\n")).unwrap();
        assert_eq!(config.providers["local"].sha256.as_deref(), Some("ab".repeat(32).as_str()));
    }

    #[test]
    fn bad_plugin_path_names_the_file() {
        let err = parse("[providers.x]\nplugin = \"plugins/nope.wasm\"\n").unwrap_err();
        assert!(err.location.starts_with("providers.toml:2:"), "{err}");
        assert!(err.message.contains("does not exist"), "{err}");
    }

    #[test]
    fn unknown_default_provider_lists_known_ones() {
        let err = parse("[host]\ndefault_provider = \"s4\"\n[providers.local]\nplugin = \"local\"\n").unwrap_err();
        assert!(err.message.contains("use one of: local"), "{err}");
    }

    /// `text` with a provider after it, read with only `vars` in the environment.
    fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        let text = format!("{text}[providers.local]\nplugin = \"local\"\n");
        Config::parse_with_env(Path::new("providers.toml"), &text, &env)
    }

    #[test]
    fn sqlite_is_the_default_catalog() {
        let config = parse_env("[host]\ndata_dir = \"/d\"\n", &[]).unwrap();
        assert!(
            matches!(config.catalog, CatalogConfig::Sqlite { ref path } if path == Path::new("/d/catalog.sqlite3"))
        );
        assert_eq!(config.claim_ttl, DEFAULT_CLAIM_TTL);
    }

    #[test]
    fn postgres_reads_its_url_from_the_named_variable() {
        let text = "[host]\ncatalog = \"postgres\"\nclaim_ttl_secs = 5\n[host.postgres]\nurl_env = \"DB\"\nmax_connections = 4\n";
        let config = parse_env(text, &[("DB", "postgres://wharf:s3cret@db.internal:6543/files")]).unwrap();
        let CatalogConfig::Postgres(pg) = &config.catalog else { panic!("not postgres: {:?}", config.catalog) };
        assert_eq!(pg.describe(), "postgres://wharf@db.internal:6543/files");
        assert_eq!(pg.max_connections, 4);
        assert_eq!(config.claim_ttl, Duration::from_secs(5));
        assert!(!format!("{config:?}").contains("s3cret"), "Debug shows the password: {config:?}");
        // The default variable.
        let config = parse_env("[host]\ncatalog = \"postgres\"\n", &[(DATABASE_URL_ENV, "postgres://u@h/db")]).unwrap();
        assert!(matches!(config.catalog, CatalogConfig::Postgres(_)));
    }

    #[test]
    fn postgres_without_its_variable_names_it_and_the_fix() {
        let err = parse_env("[host]\ncatalog = \"postgres\"\n", &[]).unwrap_err();
        assert_eq!(err.location, "providers.toml:2:11");
        assert!(err.message.contains(DATABASE_URL_ENV) && err.message.contains("export it"), "{err}");
        let err = parse_env("[host]\ncatalog = \"postgres\"\n[host.postgres]\nurl_env = \"MY_DB\"\n", &[]).unwrap_err();
        assert_eq!(err.location, "providers.toml:4:11");
        assert!(err.message.contains("MY_DB"), "{err}");
    }

    #[test]
    fn a_bad_database_url_is_refused_without_repeating_it() {
        let text = "[host]\ncatalog = \"postgres\"\n";
        let err = parse_env(text, &[(DATABASE_URL_ENV, "postgres://u:pw-SECRET@h:notaport/db")]).unwrap_err();
        assert!(err.message.contains("not a PostgreSQL connection URL"), "{err}");
        assert!(!err.to_string().contains("pw-SECRET"), "the password is repeated: {err}");
        let err = parse_env(text, &[(DATABASE_URL_ENV, "postgres://u:pw-SECRET@h/db?sslmode=require")]).unwrap_err();
        assert!(err.message.contains("without TLS"), "{err}");
        assert!(!err.to_string().contains("pw-SECRET"), "the password is repeated: {err}");
    }

    #[test]
    fn parallel_downloads_are_configured_and_checked() {
        let config = parse_env("[host]\n", &[]).unwrap();
        assert_eq!(config.downloads, DownloadConfig { streams: 4, parallel_from: 64 << 20 });
        let config = parse_env("[host.downloads]\nstreams = 8\nparallel_from = 1048576\n", &[]).unwrap();
        assert_eq!(config.downloads, DownloadConfig { streams: 8, parallel_from: 1 << 20 });
        for streams in [0, 33] {
            let err = parse_env(&format!("[host.downloads]\nstreams = {streams}\n"), &[]).unwrap_err();
            assert!(err.to_string().contains("streams must be between 1"), "{err}");
        }
        let err = parse_env("[host.downloads]\nstream = 2\n", &[]).unwrap_err();
        assert!(err.to_string().contains("unknown field `stream`"), "{err}");
    }

    #[test]
    fn catalog_settings_are_checked() {
        let err = parse_env("[host]\ncatalog = \"mysql\"\n", &[]).unwrap_err();
        assert_eq!(err.location, "providers.toml:2:11");
        assert!(err.message.contains("sqlite") && err.message.contains("postgres"), "{err}");
        let err = parse_env("[host]\n[host.postgres]\nurl_env = \"X\"\n", &[]).unwrap_err();
        assert!(err.location.starts_with("providers.toml:2:"), "{err}");
        assert!(err.message.contains("set catalog = \"postgres\""), "{err}");
        let err = parse_env("[host]\nclaim_ttl_secs = 0\n", &[]).unwrap_err();
        assert_eq!(err.location, "providers.toml:2:18");
    }

    /// The configs in deploy/ are what an operator starts from: they must load.
    #[test]
    fn the_deployment_examples_are_valid() {
        let examples = [
            ("deploy/providers.toml", include_str!("../../deploy/providers.toml")),
            ("deploy/compose/providers.toml", include_str!("../../deploy/compose/providers.toml")),
        ];
        let env = |name: &str| match name {
            DATABASE_URL_ENV => Some("postgres://wharf:pw@db:5432/wharf".to_string()),
            _ => Some("a-secret".to_string()),
        };
        for (file, text) in examples {
            let config = Config::parse_with_env(Path::new(file), text, &env).unwrap_or_else(|e| panic!("{e}"));
            assert!(matches!(config.catalog, CatalogConfig::Postgres(_)), "{file}");
            assert_eq!((config.default_provider.as_str(), config.cache_provider.as_str()), ("s3", "s3"), "{file}");
            assert_eq!(config.server.auth, AuthMode::Token, "{file}");
        }
    }

    #[test]
    fn validation_tables_are_read() {
        let text = r#"[host.validation]
max_size = 1000
allowed_types = ["image/*", "Application/PDF"]
scan = "clamd"
clamd = "127.0.0.1:3310"
scan_required = false
[providers.local]
plugin = "local"
[providers.local.validation]
strict_types = true
[providers.local.validation.purpose.file-extract]
max_size = 10
allowed_types = ["application/pdf"]
"#;
        let config = parse(text).unwrap();
        let host = &config.validation;
        assert_eq!(host.rules.max_size, Some(1000));
        let types: Vec<_> = host.rules.allowed_types.iter().flatten().map(ToString::to_string).collect();
        assert_eq!(types, ["image/*", "application/pdf"]);
        let scan = host.scan.as_ref().unwrap();
        assert_eq!(scan.clamd, ClamdAddress::Tcp("127.0.0.1:3310".into()));
        assert!(!scan.required);
        let local = &config.providers["local"].validation;
        assert_eq!(local.rules, RuleSet { strict_types: Some(true), ..RuleSet::default() });
        assert_eq!(local.purposes["file-extract"].max_size, Some(10));

        // The defaults: Debian's socket, fail closed.
        let config = parse("[host.validation]\nscan = \"clamd\"\n[providers.local]\nplugin = \"local\"\n").unwrap();
        let scan = config.validation.scan.unwrap();
        assert_eq!(scan.clamd, ClamdAddress::Unix(DEFAULT_CLAMD.into()));
        assert!(scan.required);
        // A relative socket path is relative to the config file.
        let text =
            "[host.validation]\nscan = \"clamd\"\nclamd = \"run/clamd.sock\"\n[providers.local]\nplugin = \"local\"\n";
        let config = Config::parse(Path::new("/etc/wharf/providers.toml"), text).unwrap();
        assert_eq!(config.validation.scan.unwrap().clamd, ClamdAddress::Unix("/etc/wharf/run/clamd.sock".into()));
    }

    #[test]
    fn validation_mistakes_name_their_line_and_fix() {
        let cases = [
            (
                "[host.validation]\nallowed_types = [\"image/png\", \"pdf\"]\n",
                "2:31",
                "\"pdf\" is not a MIME type pattern",
            ),
            ("[host.validation]\nallowed_types = []\n", "2:17", "refuse every upload"),
            ("[host.validation]\nmax_size = 0\n", "2:12", "max_size must be at least 1"),
            ("[host.validation]\nclamd = \"127.0.0.1:3310\"\n", "2:9", "add scan = \"clamd\""),
            ("[host.validation]\nscan = \"clamd\"\nclamd = \"localhost\"\n", "3:9", "HOST:PORT"),
            ("[host.validation]\nscan = \"clamav\"\n", "2:8", "clamd"),
            (
                "[providers.local]\nplugin = \"local\"\n[providers.local.validation]\nscan = \"clamd\"\n",
                "4:1",
                "unknown field `scan`",
            ),
            (
                "[providers.local]\nplugin = \"local\"\n[providers.local.validation.purpose.x]\nallowed_types = [\"*/pdf\"]\n",
                "4:18",
                "[providers.local.validation.purpose.x] allowed_types",
            ),
        ];
        for (text, at, says) in cases {
            let text = if text.contains("[providers.local]") {
                text.to_string()
            } else {
                format!("{text}[providers.local]\nplugin = \"local\"\n")
            };
            let err = parse(&text).unwrap_err();
            assert_eq!(err.location, format!("providers.toml:{at}"), "{text}: {err}");
            assert!(err.message.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn allowed_hosts_match_scheme_host_and_port() {
        let exact = AllowedHost::parse("https://api.moonshot.ai").unwrap();
        assert!(exact.allows(&"https://api.moonshot.ai/v1/files".parse().unwrap()));
        assert!(!exact.allows(&"http://api.moonshot.ai/v1/files".parse().unwrap()));
        assert!(!exact.allows(&"https://api.moonshot.ai.evil.com/".parse().unwrap()));
        assert!(!exact.allows(&"https://api.moonshot.ai:8443/".parse().unwrap()));
        let wildcard = AllowedHost::parse("https://*.supabase.co").unwrap();
        assert!(wildcard.allows(&"https://abc.supabase.co/storage/v1".parse().unwrap()));
        assert!(!wildcard.allows(&"https://supabase.co.evil.com/".parse().unwrap()));
        let loopback = AllowedHost::parse("http://127.0.0.1:9000").unwrap();
        assert!(loopback.allows(&"http://127.0.0.1:9000/bucket".parse().unwrap()));
        assert!(AllowedHost::parse("api.moonshot.ai").is_err());
        assert!(AllowedHost::parse("https://x.com/v1").is_err());
    }
}
