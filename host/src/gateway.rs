//! Wharf's operations, shared by the CLI, the MCP server and (later) the HTTP
//! API: upload with SHA-256 dedup, verified download, info, list, remove.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::body::{Body, BodyError, Copied, Digest, FileRange, digest_of, parse_hex, to_hex};
use crate::catalog::{Catalog, CatalogError, CopyState, DownloadRecord, ObjectRecord, SqliteCatalog};
use crate::config::Config;
use crate::runtime::{
    Adapter, CallError, ContentKind, DownloadSupport, ErrorKind, ObjectInfo, ObjectRef, Runtime, WIT_VERSION,
};
use crate::sandbox::{Destination, Sandbox, SandboxError, WriteError};

/// What to upload.
pub enum Source {
    /// A file inside the sandbox roots.
    Path(PathBuf),
    /// Standard input, spooled to the data directory while it is hashed.
    Stdin,
    /// Bytes already in memory (base64 content from an MCP client).
    Bytes { name: String, content: Bytes, mime: Option<String> },
}

#[derive(Debug, Default, Clone)]
pub struct UploadOptions {
    pub provider: Option<String>,
    pub purpose: Option<String>,
    /// The name to record instead of the source's own.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Uploaded {
    pub id: String,
    pub provider: String,
    pub remote_id: String,
    pub sha256: String,
    pub size: u64,
    pub name: String,
    pub mime: String,
    /// The provider already held these bytes: nothing was sent.
    pub deduplicated: bool,
    /// The cache provider's copy that keeps the original bytes, for providers
    /// that cannot give them back or do not keep them.
    pub backup_id: Option<String>,
}

impl Uploaded {
    fn from_record(record: ObjectRecord, deduplicated: bool, backup_id: Option<String>) -> Self {
        Self {
            id: record.id,
            provider: record.provider,
            remote_id: record.remote_id,
            sha256: record.sha256,
            size: record.size,
            name: record.name,
            mime: record.mime,
            deduplicated,
            backup_id,
        }
    }
}

/// Prepared upload content: a re-readable body and what is known about it.
struct Content {
    body: Body,
    name: String,
    mime: String,
    sha256: String,
    size: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Downloaded {
    pub id: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// `provider`, or `cache` when the bytes came from the cache provider.
    pub source: &'static str,
    /// `original`, or `derived` for a provider's derived content (extracted
    /// text), which is never written under the original's name.
    pub kind: &'static str,
    /// The bytes written match the SHA-256 recorded at upload.
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    #[serde(flatten)]
    pub object: ObjectRecord,
    pub downloads: usize,
    pub last_download: Option<DownloadRecord>,
    /// What the provider says about it now, when it can say.
    pub remote: Option<RemoteInfo>,
    pub remote_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RemoteInfo {
    pub remote_id: String,
    pub name: Option<String>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub mime: Option<String>,
    pub purpose: Option<String>,
    pub created_at: Option<u64>,
    pub expires_at: Option<u64>,
}

impl From<ObjectInfo> for RemoteInfo {
    fn from(info: ObjectInfo) -> Self {
        Self {
            remote_id: info.remote_id,
            name: info.name,
            size: info.size,
            sha256: info.sha256,
            mime: info.mime,
            purpose: info.purpose,
            created_at: info.created_at,
            expires_at: info.expires_at,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub wit_version: &'static str,
    pub plugin: PathBuf,
    pub download: String,
    pub stat: bool,
    pub list: bool,
    pub delete: bool,
    pub presign: bool,
    pub resumable_upload: bool,
    pub persistent: bool,
    pub max_size: Option<u64>,
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
    #[error("no file with id {0:?}; use an id printed by upload (wf_…) or sha256:<hex>")]
    UnknownId(String),
    #[error("{id}: no copy at provider {provider}; it is held by: {held_by}")]
    NotAtProvider { id: String, provider: String, held_by: String },
    #[error("{what}: provider {provider} does not offer this (its adapter declares it unsupported)")]
    Unsupported { what: String, provider: String },
    #[error("{id}: {reason}, and the cache provider {cache} holds no copy of its bytes")]
    NoOriginal { id: String, reason: String, cache: String },
    #[error("{name} is {size} bytes; provider {provider} accepts at most {max} bytes")]
    TooLarge { name: String, size: u64, max: u64, provider: String },
    #[error("downloading {id} from {provider} into {destination}: {source}")]
    Write { id: String, provider: String, destination: String, source: Box<WriteError> },
    #[error("reading standard input: {0}")]
    Stdin(std::io::Error),
    #[error("reading {0}")]
    Read(#[source] BodyError),
    #[error("{provider} returned derived content for {id} where the original was asked for")]
    NotOriginal { id: String, provider: String },
}

pub struct Gateway {
    config: Config,
    adapters: BTreeMap<String, Adapter>,
    catalog: Arc<dyn Catalog>,
    sandbox: Sandbox,
    spool_dir: PathBuf,
    // Declared last: adapters must drop before the engine's epoch thread stops.
    _runtime: Runtime,
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

fn new_id() -> String {
    format!("wf_{}", hex::encode(rand::random::<[u8; 10]>()))
}

fn guess_mime(name: &str) -> String {
    mime_guess::from_path(name).first_or_octet_stream().essence_str().to_string()
}

impl Gateway {
    /// Opens the data directory, the catalog and the sandbox, and loads every
    /// configured adapter.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let data_dir = &config.data_dir;
        let spool_dir = data_dir.join("spool");
        std::fs::create_dir_all(&spool_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let catalog = SqliteCatalog::open(&data_dir.join("catalog.sqlite3"))?;
        let max_memory = config.providers.values().map(|p| p.limits.memory_bytes).max().unwrap_or(64 << 20);
        let runtime = Runtime::new(&data_dir.join("components"), max_memory)?;
        let mut adapters = BTreeMap::new();
        for provider in config.providers.values() {
            adapters.insert(provider.name.clone(), runtime.load(provider).await?);
        }
        let cache = &adapters[&config.cache_provider];
        anyhow::ensure!(
            cache.capabilities().download == DownloadSupport::Original && cache.capabilities().persistent,
            "{}: [host] cache = {:?} names a provider that cannot keep and return original bytes; choose a persistent one such as \"local\"",
            config.file.display(),
            config.cache_provider
        );
        let sandbox = Sandbox::open(&config.sandbox_roots)?;
        Ok(Self { config, adapters, catalog: Arc::new(catalog), sandbox, spool_dir, _runtime: runtime })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn adapter(&self, name: Option<&str>) -> Result<&Adapter, GatewayError> {
        let name = name.unwrap_or(&self.config.default_provider);
        self.adapters.get(name).ok_or_else(|| GatewayError::UnknownProvider {
            name: name.to_string(),
            known: self.adapters.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.adapters
            .values()
            .map(|adapter| {
                let caps = adapter.capabilities();
                PluginInfo {
                    name: adapter.name().to_string(),
                    wit_version: WIT_VERSION,
                    plugin: adapter.plugin_path().to_path_buf(),
                    download: caps.download.to_string(),
                    stat: caps.stat,
                    list: caps.list,
                    delete: caps.delete,
                    presign: caps.presign,
                    resumable_upload: caps.resumable_upload,
                    persistent: caps.persistent,
                    max_size: caps.max_size,
                    allowed_hosts: adapter.allowed_hosts(),
                }
            })
            .collect()
    }

    /// Opens and hashes the source: its body (checked against the digest as
    /// it streams), name, MIME type and digest.
    async fn prepare(
        &self,
        source: Source,
        name: Option<&str>,
    ) -> Result<(Body, String, String, Copied), GatewayError> {
        let (body, own_name, mime, copied) = match source {
            Source::Path(path) => {
                let mut range = self.sandbox.open_file(&path)?;
                let copied = range.clone().hash().await.map_err(GatewayError::Read)?;
                range.expected = Some(copied.sha256);
                let own_name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
                (Body::File(range), own_name, None, copied)
            }
            Source::Stdin => {
                let range = self.spool_stdin().await?;
                let copied = Copied { size: range.len, sha256: range.expected.expect("spooling hashes") };
                (Body::File(range), "stdin".to_string(), None, copied)
            }
            Source::Bytes { name, content, mime } => {
                let copied = Copied { size: content.len() as u64, sha256: digest_of(&content) };
                (Body::Bytes(content), name, mime, copied)
            }
        };
        let name = name.map_or(own_name, str::to_string);
        let mime = mime.unwrap_or_else(|| guess_mime(&name));
        Ok((body, name, mime, copied))
    }

    /// Copies standard input to an unlinked spool file, hashing it on the way.
    async fn spool_stdin(&self) -> Result<FileRange, GatewayError> {
        let path = self.spool_dir.join(format!("stdin-{:016x}", rand::random::<u64>()));
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(GatewayError::Stdin)?;
        // The name is not needed once open: the bytes vanish with the handle.
        let _ = std::fs::remove_file(&path);
        let mut stdin = tokio::io::stdin();
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = stdin.read(&mut buf).await.map_err(GatewayError::Stdin)?;
            if n == 0 {
                break;
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
            file.write_all(&buf[..n]).map_err(GatewayError::Stdin)?;
            size += n as u64;
        }
        let sha256: [u8; 32] = sha2::Digest::finalize(hasher).into();
        let mut range = FileRange::whole(file, "standard input").map_err(GatewayError::Stdin)?;
        range.len = size;
        range.expected = Some(sha256);
        Ok(range)
    }

    /// Uploads one source. When the provider already holds the same bytes for
    /// the same purpose, returns that copy without sending anything.
    pub async fn upload(&self, source: Source, options: &UploadOptions) -> Result<Uploaded, GatewayError> {
        let adapter = self.adapter(options.provider.as_deref())?;
        let provider = adapter.name().to_string();
        let (body, name, mime, copied) = self.prepare(source, options.name.as_deref()).await?;
        if let Some(max) = adapter.capabilities().max_size.filter(|max| copied.size > *max) {
            return Err(GatewayError::TooLarge { name, size: copied.size, max, provider });
        }
        let content = Content { body, name, mime, sha256: to_hex(&copied.sha256), size: copied.size };
        let purpose = options.purpose.as_deref();
        let existing = self.catalog.find_copy(&provider, &content.sha256, purpose).await?;
        let backup = match self.needs_backup(adapter) {
            true => Some(self.ensure_backup(&content).await?),
            false => None,
        };
        let backup_id = backup.as_ref().map(|(record, _)| record.id.clone());
        if let Some(existing) = existing {
            return Ok(Uploaded::from_record(existing, true, backup_id));
        }
        match self.store_copy(adapter, &content, purpose).await {
            Ok(record) => Ok(Uploaded::from_record(record, false, backup_id)),
            Err(e) => {
                if let Some((record, true)) = backup {
                    // The backup was made for this upload only: no orphan stays.
                    self.discard(&record).await;
                }
                Err(e)
            }
        }
    }

    /// Whether a provider's copies need the original bytes kept elsewhere.
    fn needs_backup(&self, adapter: &Adapter) -> bool {
        let caps = adapter.capabilities();
        adapter.name() != self.config.cache_provider && (caps.download != DownloadSupport::Original || !caps.persistent)
    }

    /// The cache provider's copy of the content, stored now if missing.
    /// Returns it and whether this call created it.
    async fn ensure_backup(&self, content: &Content) -> Result<(ObjectRecord, bool), GatewayError> {
        let cache = self.adapter(Some(&self.config.cache_provider))?;
        if let Some(existing) = self.catalog.find_copy(cache.name(), &content.sha256, None).await? {
            return Ok((existing, false));
        }
        Ok((self.store_copy(cache, content, None).await?, true))
    }

    /// Uploads the content to one provider and records the copy. A copy that
    /// cannot be recorded is deleted again, so none is left unfindable.
    async fn store_copy(
        &self,
        adapter: &Adapter,
        content: &Content,
        purpose: Option<&str>,
    ) -> Result<ObjectRecord, GatewayError> {
        let body = content.body.try_clone().expect("upload sources are files or buffers");
        let info = adapter.upload(body, &content.name, &content.mime, &content.sha256, purpose).await?;
        let mut record = ObjectRecord {
            id: new_id(),
            provider: adapter.name().to_string(),
            remote_id: info.remote_id,
            sha256: content.sha256.clone(),
            size: content.size,
            name: content.name.clone(),
            mime: content.mime.clone(),
            purpose: purpose.map(str::to_string),
            created_at: now(),
            state: CopyState::Present,
        };
        match self.catalog.insert(&record).await {
            Ok(id) => {
                record.id = id;
                Ok(record)
            }
            Err(e) => {
                if let Err(undo) = adapter.delete(&record.target()).await {
                    tracing::error!(
                        "{}: could not remove unrecorded copy {}: {undo}",
                        record.provider,
                        record.remote_id
                    );
                }
                Err(e.into())
            }
        }
    }

    /// Deletes a copy this call made and forgets it, logging what fails:
    /// used while undoing a failed upload, whose own error is the one to report.
    async fn discard(&self, record: &ObjectRecord) {
        if let Ok(adapter) = self.adapter(Some(&record.provider))
            && let Err(e) = adapter.delete(&record.target()).await
        {
            tracing::warn!("{}: could not remove {} while undoing an upload: {e}", record.provider, record.id);
        }
        if let Err(e) = self.catalog.remove(&record.id).await {
            tracing::warn!("could not forget {} while undoing an upload: {e}", record.id);
        }
    }

    /// Finds the copy an id names: a Wharf id, or `sha256:<hex>` for any
    /// present copy of that content (at `provider`, if given).
    async fn resolve(&self, id: &str, provider: Option<&str>) -> Result<ObjectRecord, GatewayError> {
        let sha256 = match id.strip_prefix("sha256:") {
            Some(hex) => parse_hex(hex).map(|d| to_hex(&d)).ok_or_else(|| GatewayError::UnknownId(id.to_string()))?,
            None => {
                let object = self.catalog.object(id).await?.ok_or_else(|| GatewayError::UnknownId(id.to_string()))?;
                match provider {
                    Some(p) if p != object.provider => object.sha256,
                    _ => return Ok(object),
                }
            }
        };
        let copies = self.catalog.copies(&sha256).await?;
        if copies.is_empty() {
            return Err(GatewayError::UnknownId(id.to_string()));
        }
        let usable = |o: &&ObjectRecord| {
            o.state == CopyState::Present
                && self
                    .adapters
                    .get(&o.provider)
                    .is_some_and(|a| a.capabilities().download == DownloadSupport::Original)
        };
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

    /// The copy to read the original bytes of `object` from: the object
    /// itself when its provider can return them, else the cache provider's
    /// copy of the same content (`source: cache`), unless a provider was named.
    async fn readable_copy(
        &self,
        object: &ObjectRecord,
        provider_named: bool,
    ) -> Result<(ObjectRecord, &'static str), GatewayError> {
        let adapter = self.adapter(Some(&object.provider))?;
        if adapter.capabilities().download == DownloadSupport::Original && object.state == CopyState::Present {
            return Ok((object.clone(), "provider"));
        }
        if !provider_named {
            let cached = self
                .catalog
                .copies(&object.sha256)
                .await?
                .into_iter()
                .find(|copy| copy.provider == self.config.cache_provider && copy.state == CopyState::Present);
            if let Some(cached) = cached {
                return Ok((cached, "cache"));
            }
        }
        let reason = match object.state {
            CopyState::Gone => format!("the copy at provider {} is gone", object.provider),
            CopyState::Present => format!(
                "provider {} cannot return original bytes (download: {})",
                object.provider,
                adapter.capabilities().download
            ),
        };
        Err(GatewayError::NoOriginal { id: object.id.clone(), reason, cache: self.config.cache_provider.clone() })
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

    /// Downloads original bytes to `destination` (default: the working
    /// directory, under the recorded name), verified against the SHA-256
    /// recorded at upload. Nothing appears at the destination unless it matches.
    pub async fn download(
        &self,
        id: &str,
        destination: Option<&Path>,
        provider: Option<&str>,
    ) -> Result<Downloaded, GatewayError> {
        if let Some(p) = provider {
            self.adapter(Some(p))?;
        }
        let requested = self.resolve(id, provider).await?;
        let (object, source) = self.readable_copy(&requested, provider.is_some()).await?;
        let adapter = self.adapter(Some(&object.provider))?;
        let target = self.sandbox.destination(destination, &object.name)?;
        let (body, kind, _) = match adapter.download(&object.target(), false).await {
            Ok(download) => download,
            Err(e) => return Err(self.note_missing(&object, e).await),
        };
        if kind != ContentKind::Original {
            return Err(GatewayError::NotOriginal { id: id.to_string(), provider: object.provider.clone() });
        }
        let expected = parse_hex(&object.sha256);
        let copied = self.deliver(&requested.id, &object.provider, &target, body, expected, source).await?;
        Ok(Downloaded {
            id: requested.id,
            path: target.display.clone(),
            sha256: to_hex(&copied.sha256),
            size: copied.size,
            source,
            kind: "original",
            verified: expected.is_some(),
        })
    }

    /// Fetches the provider's derived content (Kimi's extracted text) into a
    /// file of its own: `<name>.derived.<ext>` unless a file path is given.
    /// It cannot be verified against the original's SHA-256, and says so.
    pub async fn download_derived(&self, id: &str, destination: Option<&Path>) -> Result<Downloaded, GatewayError> {
        let object = match id.strip_prefix("sha256:") {
            // Content named by hash: the copy at a provider that derives content.
            Some(hex) => {
                let sha256 =
                    parse_hex(hex).map(|d| to_hex(&d)).ok_or_else(|| GatewayError::UnknownId(id.to_string()))?;
                let copies = self.catalog.copies(&sha256).await?;
                if copies.is_empty() {
                    return Err(GatewayError::UnknownId(id.to_string()));
                }
                let derives = |o: &&ObjectRecord| {
                    o.state == CopyState::Present
                        && self
                            .adapters
                            .get(&o.provider)
                            .is_some_and(|a| a.capabilities().download == DownloadSupport::Derived)
                };
                copies.iter().find(derives).cloned().ok_or_else(|| GatewayError::NotAtProvider {
                    id: id.to_string(),
                    provider: "any provider with derived content".into(),
                    held_by: copies.iter().map(|o| o.provider.as_str()).collect::<Vec<_>>().join(", "),
                })?
            }
            None => self.resolve(id, None).await?,
        };
        let adapter = self.adapter(Some(&object.provider))?;
        if adapter.capabilities().download == DownloadSupport::None {
            return Err(GatewayError::Unsupported {
                what: format!("derived content of {}", object.id),
                provider: object.provider.clone(),
            });
        }
        let (body, kind, mime) = match adapter.download(&object.target(), true).await {
            Ok(download) => download,
            Err(e) => return Err(self.note_missing(&object, e).await),
        };
        let extension = match mime.as_deref().unwrap_or("text/plain") {
            m if m.contains("json") => "json",
            m if m.starts_with("text/") => "txt",
            _ => "bin",
        };
        let name = format!("{}.derived.{extension}", object.name);
        let target = self.sandbox.destination(destination, &name)?;
        let copied = self.deliver(&object.id, &object.provider, &target, body, None, "derived").await?;
        Ok(Downloaded {
            id: object.id,
            path: target.display.clone(),
            sha256: to_hex(&copied.sha256),
            size: copied.size,
            source: "provider",
            kind: match kind {
                ContentKind::Original => "original",
                ContentKind::Derived => "derived",
            },
            verified: false,
        })
    }

    /// Writes downloaded bytes into place (checked against `expected`) and
    /// adds the download to the history of `id`.
    async fn deliver(
        &self,
        id: &str,
        provider: &str,
        target: &Destination<'_>,
        body: Body,
        expected: Option<Digest>,
        history_source: &str,
    ) -> Result<Copied, GatewayError> {
        let destination = target.display.display().to_string();
        let copied = target.write(body, expected).await.map_err(|source| GatewayError::Write {
            id: id.to_string(),
            provider: provider.to_string(),
            destination: destination.clone(),
            source: Box::new(source),
        })?;
        let record =
            DownloadRecord { object_id: id.to_string(), destination, source: history_source.into(), at: now() };
        self.catalog.record_download(&record).await?;
        Ok(copied)
    }

    pub async fn info(&self, id: &str) -> Result<FileInfo, GatewayError> {
        let object = self.resolve(id, None).await?;
        let downloads = self.catalog.downloads(&object.id).await?;
        let adapter = self.adapter(Some(&object.provider))?;
        let (remote, remote_error) = if adapter.capabilities().stat {
            match adapter.stat(&object.target()).await {
                Ok(info) => (Some(info.into()), None),
                Err(e) => (None, Some(self.note_missing(&object, e).await.to_string())),
            }
        } else {
            (None, None)
        };
        Ok(FileInfo {
            downloads: downloads.len(),
            last_download: downloads.last().cloned(),
            object,
            remote,
            remote_error,
        })
    }

    /// The copies Wharf recorded, newest first.
    pub async fn list(&self, provider: Option<&str>) -> Result<Vec<ObjectRecord>, GatewayError> {
        if let Some(p) = provider {
            self.adapter(Some(p))?;
        }
        Ok(self.catalog.objects(provider).await?)
    }

    /// What the provider itself holds, page by page, whether Wharf put it
    /// there or not.
    pub async fn list_remote(&self, provider: Option<&str>) -> Result<Vec<RemoteInfo>, GatewayError> {
        let adapter = self.adapter(provider)?;
        if !adapter.capabilities().list {
            return Err(GatewayError::Unsupported { what: "listing".into(), provider: adapter.name().into() });
        }
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = adapter.list(cursor.as_deref(), 1000).await?;
            items.extend(page.items.into_iter().map(RemoteInfo::from));
            match page.next_cursor {
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// Deletes the copy at its provider and forgets it. Bytes that another
    /// record still points to (the same content under another purpose) stay.
    pub async fn remove(&self, id: &str) -> Result<ObjectRecord, GatewayError> {
        let object = self.resolve(id, None).await?;
        let adapter = self.adapter(Some(&object.provider))?;
        let shared = self
            .catalog
            .copies(&object.sha256)
            .await?
            .iter()
            .any(|o| o.id != object.id && o.provider == object.provider && o.remote_id == object.remote_id);
        if !shared && object.state == CopyState::Present {
            if !adapter.capabilities().delete {
                return Err(GatewayError::Unsupported { what: format!("deleting {id}"), provider: object.provider });
            }
            match adapter.delete(&object.target()).await {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), Some(ErrorKind::NotFound | ErrorKind::Gone)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.catalog.remove(&object.id).await?;
        Ok(object)
    }
}
