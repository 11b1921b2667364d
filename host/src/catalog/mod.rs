//! What Wharf knows: content by SHA-256, each principal's records of the
//! copies held at each provider, download history, API tokens, download
//! links, and the holds that let several hosts take turns (upload claims,
//! the clean-up lease).
//!
//! Behind a small trait with two backends: the embedded SQLite file, and
//! PostgreSQL for deployments with several hosts. Both apply the same rules
//! ([`LinkRecord::decide`], [`Hold::yields_to`]) inside their own transactions.

mod postgres;
mod sqlite;

pub use postgres::PostgresCatalog;
pub use sqlite::SqliteCatalog;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::CatalogConfig;

/// Opens the catalog the config names, bringing its schema up to date.
pub async fn open(config: &CatalogConfig) -> Result<Arc<dyn Catalog>, CatalogError> {
    Ok(match config {
        CatalogConfig::Sqlite { path } => Arc::new(SqliteCatalog::open(path)?),
        CatalogConfig::Postgres(postgres) => Arc::new(PostgresCatalog::connect(postgres).await?),
    })
}

/// One principal's record of a copy of some content at one provider.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ObjectRecord {
    /// Wharf's id for this record (`wf_…`).
    pub id: String,
    /// Whose record it is. Records of several principals may name the same
    /// remote object: dedup is global, ownership is not.
    pub principal: String,
    pub provider: String,
    /// The provider's id or key for it.
    pub remote_id: String,
    /// Lowercase hex SHA-256 of the original bytes.
    pub sha256: String,
    pub size: u64,
    pub name: String,
    pub mime: String,
    pub purpose: Option<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    pub state: CopyState,
    pub description: String,
    pub tags: Vec<String>,
    /// Free key-value pairs.
    pub attributes: BTreeMap<String, String>,
    /// Recorded by `wharf register` (the object was already at the provider):
    /// deleting the record leaves the object there unless asked otherwise.
    pub registered: bool,
    /// Whether `sha256` is the content's digest. False only for objects
    /// registered without hashing whose provider keeps no digest: their
    /// `sha256` is then a placeholder (see [`ObjectRecord::unhashed`]) and
    /// their downloads cannot be verified.
    pub verified: bool,
    /// Completed downloads of this record, and when the last one ended.
    pub download_count: u64,
    pub last_download_at: Option<i64>,
}

/// A new record as an upload makes it: present, hashed, never downloaded,
/// without description, tags or pairs. The identifying fields are the
/// caller's to fill in.
impl Default for ObjectRecord {
    fn default() -> Self {
        Self {
            id: String::new(),
            principal: String::new(),
            provider: String::new(),
            remote_id: String::new(),
            sha256: String::new(),
            size: 0,
            name: String::new(),
            mime: String::new(),
            purpose: None,
            created_at: 0,
            state: CopyState::Present,
            description: String::new(),
            tags: Vec::new(),
            attributes: BTreeMap::new(),
            registered: false,
            verified: true,
            download_count: 0,
            last_download_at: None,
        }
    }
}

impl ObjectRecord {
    /// The placeholder content key of a record whose digest is unknown:
    /// unique to the record, so it is never taken for a copy of other content.
    pub fn unhashed(id: &str) -> String {
        format!("unhashed:{id}")
    }

    fn is_hashed(sha256: &str) -> bool {
        !sha256.starts_with("unhashed:")
    }
}

/// Whether the provider still holds a good copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CopyState {
    Present,
    /// The provider said not-found or gone for it.
    Gone,
    /// Its bytes failed the SHA-256 check twice in a row: never served again
    /// until it is verified anew.
    Corrupt,
}

impl CopyState {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyState::Present => "present",
            CopyState::Gone => "gone",
            CopyState::Corrupt => "corrupt",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "gone" => CopyState::Gone,
            "corrupt" => CopyState::Corrupt,
            _ => CopyState::Present,
        }
    }
}

/// A download, for the history.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DownloadRecord {
    pub object_id: String,
    pub principal: String,
    pub destination: String,
    /// `provider`, `cache`, or `derived`.
    pub source: String,
    /// The provider whose copy served it.
    pub provider: String,
    pub bytes: u64,
    pub duration_ms: u64,
    pub at: i64,
}

/// Something counted for `wharf stats` besides downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Bytes sent to a provider.
    Upload,
    /// An upload answered from a copy the provider already held: bytes not sent.
    Dedup,
    /// A failed upload or download; the event's detail names the kind.
    Failure,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Upload => "upload",
            EventKind::Dedup => "dedup",
            EventKind::Failure => "failure",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: i64,
    pub principal: String,
    pub kind: EventKind,
    pub provider: String,
    pub bytes: u64,
    /// For failures: `download: corrupt`, `upload: refused`, …
    pub detail: String,
}

/// What `wharf stats` reports, over records visible to a principal (all, for
/// `None`) and activity since a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Stats {
    /// Present records and their bytes, per provider.
    pub providers: BTreeMap<String, ProviderStats>,
    pub uploads: u64,
    pub bytes_uploaded: u64,
    pub dedup_hits: u64,
    /// Bytes that dedup spared sending.
    pub bytes_not_sent: u64,
    /// Completed downloads by source (`provider`, `cache`, `derived`).
    pub downloads: BTreeMap<String, u64>,
    pub bytes_downloaded: u64,
    /// Failures by what failed and why (`download: corrupt`, …).
    pub failures: BTreeMap<String, u64>,
    pub most_downloaded: Vec<TopFile>,
}

impl Stats {
    /// Adds a group of events of one kind and detail.
    fn add_events(&mut self, kind: &str, detail: String, count: u64, bytes: u64) {
        match kind {
            "upload" => {
                self.uploads += count;
                self.bytes_uploaded += bytes;
            }
            "dedup" => {
                self.dedup_hits += count;
                self.bytes_not_sent += bytes;
            }
            _ => *self.failures.entry(detail).or_default() += count,
        }
    }
}

/// How many files `most_downloaded` lists.
const TOP_FILES: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ProviderStats {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TopFile {
    pub id: String,
    pub name: String,
    pub downloads: u64,
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct ObjectQuery {
    /// Only this principal's records; every principal's when `None`.
    pub principal: Option<String>,
    pub provider: Option<String>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// A glob over the name (`*` any run, `?` one character), case-insensitive.
    pub name_glob: Option<String>,
    /// A MIME type, or a pattern such as `image/*`.
    pub mime: Option<String>,
    /// Records that carry this tag.
    pub tag: Option<String>,
    /// Records made at or after this time (seconds since the epoch).
    pub since: Option<i64>,
    /// A `next` cursor from the previous page.
    pub after: Option<String>,
    /// At most this many; all when `None`.
    pub limit: Option<usize>,
}

/// One page of records, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectPage {
    pub files: Vec<ObjectRecord>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// Changes to a record's metadata; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MetadataUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub attributes: Option<BTreeMap<String, String>>,
}

/// An API token. Only its SHA-256 is kept, so a copy of the catalog opens nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    /// The public handle for `wharf token revoke` (`tok_…`); not a secret.
    pub id: String,
    pub principal: String,
    pub admin: bool,
    #[serde(skip)]
    pub token_sha256: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What a download link serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A file inside the principal's sandbox roots.
    File,
    /// A directory inside them, served as a ZIP.
    Directory,
    /// A file Wharf stores at a provider.
    Stored,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::File => "file",
            LinkKind::Directory => "directory",
            LinkKind::Stored => "stored",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinkRecord {
    /// SHA-256 of the link's token; the token itself is never stored.
    pub token_sha256: String,
    pub principal: String,
    pub kind: LinkKind,
    /// The absolute path (file, directory) or the record id (stored).
    pub target: String,
    /// The name the person's browser saves it under.
    pub filename: String,
    pub size: u64,
    pub sha256: Option<String>,
    /// For files: what the file was when the link was made (device, inode,
    /// size, modification time), so a changed file is not served under it.
    pub identity: Option<String>,
    /// The largest size this link may serve, checked again at download.
    pub max_size: u64,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: u32,
    pub uses: u32,
    /// Bytes charged to the budget: sent by finished transfers, and held
    /// for Range transfers under way.
    pub charged: u64,
    /// Bytes each use allows: the size plus an allowance for resumed transfers.
    pub budget_per_use: u64,
}

impl LinkRecord {
    /// Whether `request` may be served now, and whether it takes a use: the
    /// one rule every catalog backend applies inside its own transaction.
    ///
    /// A whole-file GET always takes a use; the bytes it sends are charged to
    /// the budget when it ends. A Range GET charges its length up front to a
    /// budget of `budget_per_use × uses`; it takes a use only when none has
    /// been taken yet or the budget is spent (and uses are left). So a client
    /// that lost its connection can resume at once, before Wharf has even
    /// noticed the cut, yet the file cannot be fetched again and again.
    pub fn decide(&self, now: i64, request: UseRequest) -> UseOutcome {
        if self.expires_at <= now {
            return UseOutcome::Expired;
        }
        let uses_left = self.uses < self.max_uses;
        match request {
            UseRequest::Whole if uses_left => UseOutcome::Granted { took_use: true },
            UseRequest::Whole => UseOutcome::Exhausted,
            UseRequest::Range { len } => {
                let wanted = self.charged.saturating_add(len);
                let budget = |uses: u32| self.budget_per_use.saturating_mul(uses as u64);
                if self.uses > 0 && wanted <= budget(self.uses) {
                    UseOutcome::Granted { took_use: false }
                } else if uses_left && wanted <= budget(self.uses + 1) {
                    UseOutcome::Granted { took_use: true }
                } else {
                    UseOutcome::Exhausted
                }
            }
        }
    }

    /// The budget each use gives: the size plus an allowance for transfers
    /// that are cut and resumed. A server counts as sent what sits in socket
    /// buffers, megabytes that a cut client never received and asks for
    /// again; so the allowance is an eighth of the size, at least 16 MiB, but
    /// never more than the size itself: at most two copies' worth per use.
    pub fn budget_for(size: u64) -> u64 {
        size.saturating_add(size.min((size / 8).max(16 << 20)))
    }
}

/// What a GET asks of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UseRequest {
    /// The whole file: always takes a use.
    Whole,
    /// Part of the file, `len` bytes: drawn from the byte budget of the uses
    /// taken, taking a use only when none is taken or the budget is spent.
    Range { len: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UseOutcome {
    /// Granted; `took_use` says whether this request took a use.
    Granted {
        took_use: bool,
    },
    Unknown,
    Expired,
    /// No uses (or, for ranges, no byte budget) left.
    Exhausted,
}

/// The caller's links, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LinkStats {
    pub total: u64,
    /// Not expired, with uses left.
    pub active: u64,
    /// No uses left.
    pub used: u64,
    /// Past their expiry with uses left.
    pub expired: u64,
}

/// A named hold that lapses unless its holder renews it: an upload claim
/// (one uploader sends some content while others wait for its record) or a
/// lease (one host at a time runs periodic work).
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    pub holder: String,
    /// Milliseconds since the Unix epoch, by the catalog's clock.
    pub expires_at_ms: i64,
}

impl Hold {
    /// Whether `holder` may take this hold at `now_ms`: it is its own (a
    /// renewal), or it has lapsed, its holder presumed dead. The one rule
    /// every catalog backend applies inside its own transaction.
    pub fn yields_to(&self, holder: &str, now_ms: i64) -> bool {
        self.holder == holder || self.expires_at_ms <= now_ms
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller holds it now, until the time to live passes.
    Granted,
    /// Someone else holds it, named.
    HeldBy(String),
}

#[derive(Debug, thiserror::Error)]
#[error("catalog {path}: {message}")]
pub struct CatalogError {
    pub path: String,
    pub message: String,
}

#[async_trait::async_trait]
pub trait Catalog: Send + Sync {
    /// Answers when the catalog can be queried (for readiness checks).
    async fn ping(&self) -> Result<(), CatalogError>;

    // ---- content and records ----

    /// A present copy of `sha256` at `provider` uploaded with `purpose`:
    /// `principal`'s own record if it has one, else any principal's.
    async fn find_copy(
        &self,
        provider: &str,
        sha256: &str,
        purpose: Option<&str>,
        principal: &str,
    ) -> Result<Option<ObjectRecord>, CatalogError>;
    async fn object(&self, id: &str) -> Result<Option<ObjectRecord>, CatalogError>;
    /// Every record of some content, oldest first, across principals.
    async fn copies(&self, sha256: &str) -> Result<Vec<ObjectRecord>, CatalogError>;
    async fn objects(&self, query: &ObjectQuery) -> Result<ObjectPage, CatalogError>;
    /// Records a completed upload: the content, if new, and the record, together.
    /// Returns the record's id: `object.id`, or the id already recorded for
    /// the same principal and remote object (which is then marked present again).
    async fn insert(&self, object: &ObjectRecord) -> Result<String, CatalogError>;
    /// Sets a record's state, and when it changed if it did.
    async fn set_state(&self, id: &str, state: CopyState) -> Result<(), CatalogError>;
    async fn update_metadata(&self, id: &str, update: &MetadataUpdate) -> Result<(), CatalogError>;
    /// Forgets a record, its downloads, and the content if no record is left.
    async fn remove(&self, id: &str) -> Result<(), CatalogError>;
    /// Adds a completed download to the history and to its record's count.
    async fn record_download(&self, download: &DownloadRecord) -> Result<(), CatalogError>;
    async fn downloads(&self, object_id: &str) -> Result<Vec<DownloadRecord>, CatalogError>;
    async fn record_event(&self, event: &Event) -> Result<(), CatalogError>;
    /// Present records and their bytes per provider, of `principal` (every
    /// principal's for `None`): the part of the statistics `/metrics` reads.
    async fn holdings(&self, principal: Option<&str>) -> Result<BTreeMap<String, ProviderStats>, CatalogError>;
    /// The figures of `wharf stats`: records of `principal` (every
    /// principal's for `None`), activity at or after `since`.
    async fn stats(&self, principal: Option<&str>, since: i64) -> Result<Stats, CatalogError>;

    // ---- retention ----

    /// Deletes download history and events older than `before`; how many rows.
    async fn delete_history(&self, before: i64) -> Result<u64, CatalogError>;
    /// Records in `state` since before `before`.
    async fn stale_copies(&self, state: CopyState, before: i64) -> Result<Vec<ObjectRecord>, CatalogError>;
    /// Present records at `provider`, least recently downloaded (or made) first.
    async fn copies_by_last_use(&self, provider: &str) -> Result<Vec<ObjectRecord>, CatalogError>;

    // ---- API tokens ----

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), CatalogError>;
    async fn token_by_hash(&self, token_sha256: &str) -> Result<Option<TokenRecord>, CatalogError>;
    async fn tokens(&self) -> Result<Vec<TokenRecord>, CatalogError>;
    /// Marks a token revoked; false when there is no such token.
    async fn revoke_token(&self, id: &str, at: i64) -> Result<bool, CatalogError>;

    // ---- download links ----

    async fn insert_link(&self, link: &LinkRecord) -> Result<(), CatalogError>;
    async fn link(&self, token_sha256: &str) -> Result<Option<LinkRecord>, CatalogError>;
    /// Takes what `request` needs of a link atomically (a use, and for a
    /// range its length charged), so that concurrent requests on any number
    /// of hosts never take more than it allows.
    async fn take_use(&self, token_sha256: &str, now: i64, request: UseRequest) -> Result<UseOutcome, CatalogError>;
    /// Settles a finished transfer: adds `delta` bytes to what the link has
    /// charged (what it sent, less what it charged up front), and gives the
    /// use back when the transfer failed on Wharf's side.
    async fn settle_use(&self, token_sha256: &str, delta: i64, give_back_use: bool) -> Result<(), CatalogError>;
    async fn link_stats(&self, principal: &str, now: i64) -> Result<LinkStats, CatalogError>;
    /// Deletes links past their expiry; returns how many.
    async fn delete_expired_links(&self, now: i64) -> Result<u64, CatalogError>;

    // ---- holds: upload claims and leases ----

    /// Takes or renews the hold `name` for `holder` until `ttl` from now, by
    /// the catalog's own clock (one clock for every host): granted when
    /// nobody holds it, `holder` already does, or the last hold lapsed;
    /// otherwise it names who holds it. Atomic across hosts.
    async fn claim(&self, name: &str, holder: &str, ttl: Duration) -> Result<ClaimOutcome, CatalogError>;
    /// Gives up `holder`'s hold on `name`; someone else's is left alone.
    async fn release(&self, name: &str, holder: &str) -> Result<(), CatalogError>;
}

/// A LIKE pattern for a glob (`*` any run, `?` one character), with `\` as
/// the escape character for what LIKE would otherwise read.
fn glob_pattern(glob: &str) -> String {
    let mut pattern = String::new();
    for c in glob.chars() {
        match c {
            '*' => pattern.push('%'),
            '?' => pattern.push('_'),
            '%' | '_' | '\\' => {
                pattern.push('\\');
                pattern.push(c);
            }
            c => pattern.push(c),
        }
    }
    pattern
}

/// A LIKE pattern matching `substring` anywhere, with `\` as the escape
/// character: `%`, `_` and `\` in it match themselves.
fn like_pattern(substring: &str) -> String {
    let mut pattern = String::from("%");
    for c in substring.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Milliseconds since the Unix epoch by this machine's clock.
fn system_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;
