//! Upload: the same bytes are sent once per provider and purpose, whoever
//! sends them and through whichever host; each principal gets a record of
//! its own.
//!
//! Uploads of the same content racing through several hosts (or several
//! requests of one host) take turns through an upload claim in the catalog:
//! the claimant sends the bytes, renewing its claim every third of
//! `[host] claim_ttl_secs` while it does; the others poll for its record and
//! then answer `deduplicated: true`. A claim whose host died lapses after
//! the time to live, and the next uploader claims it and sends the bytes
//! itself; a failed upload releases its claim at once. Renewing rather than
//! sizing the time to live to the longest upload keeps a dead host's claim
//! short however long uploads may take.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

mod own_ids;

use super::{Caller, Gateway, GatewayError, new_id, now};
use crate::body::{Body, Copied, FileRange, Progress, digest_of, to_hex};
use crate::catalog::{ClaimOutcome, EventKind, ObjectRecord};
use crate::identity::FileIdentity;
use crate::runtime::{Adapter, DownloadSupport};
use crate::validation::{Rules, names};

/// How often an uploader waiting for another's claim looks for its record.
const CLAIM_POLL: Duration = Duration::from_millis(75);

/// What to upload.
pub enum Source<'a> {
    /// A file inside the caller's sandbox roots.
    Path(PathBuf),
    /// Standard input, spooled to the data directory while it is hashed.
    Stdin,
    /// Bytes already in memory (base64 content from an MCP client).
    Bytes { name: String, content: Bytes, mime: Option<String> },
    /// A stream (an HTTP request body), spooled while it is hashed.
    Stream { name: String, reader: Box<dyn AsyncRead + Send + Unpin + 'a>, mime: Option<String> },
}

#[derive(Default, Clone)]
pub struct UploadOptions {
    pub provider: Option<String>,
    pub purpose: Option<String>,
    /// The name to record instead of the source's own.
    pub name: Option<String>,
    /// Refuse sources larger than this (a server's upload limit), before any
    /// provider is touched; streams are cut off as soon as they pass it.
    pub max_size: Option<u64>,
    /// Counts the bytes sent to providers, for progress reports.
    pub progress: Option<Arc<Progress>>,
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
    /// For a file source: the file and its identity when it was hashed, to
    /// catch a change made while it uploads on every path (multipart parts
    /// and TUS chunks are read piecemeal, so no single read sees it all).
    source: Option<(Arc<std::fs::File>, FileIdentity)>,
}

impl Content {
    /// An error when the source file is no longer what was hashed: the copy
    /// just sent may hold bytes of two versions, and must not be recorded.
    fn changed_since_hashed(&self) -> Option<GatewayError> {
        let (file, hashed) = self.source.as_ref()?;
        let now = FileIdentity::of(file);
        if now.as_ref().is_ok_and(|now| now == hashed) {
            return None;
        }
        Some(GatewayError::Input {
            what: self.name.clone(),
            source: std::io::Error::other(
                "the file changed while it was being uploaded (its size or times differ from when it was hashed); nothing was recorded, upload it again",
            ),
        })
    }
}

pub(super) fn guess_mime(name: &str) -> String {
    mime_guess::from_path(name).first_or_octet_stream().essence_str().to_string()
}

/// A record this upload holds, and whether the upload made it (and so must
/// undo it if the upload fails).
struct Held {
    record: ObjectRecord,
    deduplicated: bool,
    created: bool,
}

impl Caller {
    /// Uploads one source. When the provider already holds the same bytes for
    /// the same purpose (sent by anyone), nothing is sent: the caller gets its
    /// own record of that copy.
    pub async fn upload(&self, source: Source<'_>, options: &UploadOptions) -> Result<Uploaded, GatewayError> {
        let adapter = self.adapter(options.provider.as_deref())?;
        let provider = adapter.name().to_string();
        let purpose = options.purpose.as_deref();
        let mut content = self.prepare(source, options).await?;
        // Before anything is sent, backups included; also before a dedup hit
        // is answered, since the rules may have changed since those bytes were sent.
        let rules = Rules::resolve(&self.config, &provider, purpose);
        content.mime = self
            .validator
            .check(&rules, &content.name, content.size, &content.mime, &content.body)
            .await
            .map_err(Box::new)?;
        if let Some(max) = adapter.capabilities().max_size.filter(|max| content.size > *max) {
            return Err(GatewayError::TooLarge {
                name: content.name,
                size: content.size,
                max,
                limit: format!("the most provider {provider} accepts"),
            });
        }
        if let Some(progress) = &options.progress {
            progress.add_total(content.size);
        }
        let backup = match self.needs_backup(&adapter) {
            true => Some(self.hold_copy(&*self.adapter(Some(&self.config.cache_provider))?, &content, None).await?),
            false => None,
        };
        let backup_id = backup.as_ref().map(|held| held.record.id.clone());
        // A backup record made for this upload only goes with it: no orphan stays.
        let made = backup.filter(|held| held.created).map(|held| held.record);
        let backup = BackupHold { caller: self.clone(), record: made };
        match self.hold_copy(&adapter, &content, purpose).await {
            Ok(held) => {
                backup.keep();
                metrics::counter!("wharf_uploads_total", "provider" => provider.clone()).increment(1);
                let event = match held.deduplicated {
                    true => {
                        metrics::counter!("wharf_dedup_hits_total", "provider" => provider.clone()).increment(1);
                        EventKind::Dedup
                    }
                    false => EventKind::Upload,
                };
                self.note_event(event, &provider, content.size, String::new()).await;
                Ok(Uploaded::from_record(held.record, held.deduplicated, backup_id))
            }
            Err(e) => {
                backup.undo().await;
                self.note_failure("upload", &provider, e.label()).await;
                Err(e)
            }
        }
    }

    /// Opens and hashes the source: a re-readable body (checked against the
    /// digest as it streams), its name, MIME type, digest and size.
    async fn prepare(&self, source: Source<'_>, options: &UploadOptions) -> Result<Content, GatewayError> {
        let mut source_identity = None;
        let (body, own_name, mime, copied) = match source {
            Source::Path(path) => {
                let mut range = self.sandbox().open_file(&path)?;
                self.check_size(&path.display().to_string(), range.len, options)?;
                let identity = FileIdentity::of(&range.file)
                    .map_err(|source| GatewayError::Input { what: path.display().to_string(), source })?;
                let copied = match self.identities.as_ref().and_then(|index| index.lookup(&identity)) {
                    // Hashed before and unchanged since: a stat, not a read.
                    // The upload still checks the bytes it sends against it.
                    Some(sha256) => Copied { size: range.len, sha256 },
                    None => {
                        let copied = range.clone().hash().await.map_err(GatewayError::Read)?;
                        if let Some(index) = &self.identities {
                            index.remember(&identity, &copied.sha256);
                        }
                        copied
                    }
                };
                range.expected = Some(copied.sha256);
                range.progress = options.progress.clone();
                source_identity = Some((range.file.clone(), identity));
                let own_name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
                (Body::File(range), own_name, None, copied)
            }
            Source::Stdin => {
                let range = self.spool(tokio::io::stdin(), "standard input", options).await?;
                let copied = Copied { size: range.len, sha256: range.expected.expect("spooling hashes") };
                (Body::File(range), "stdin".to_string(), None, copied)
            }
            Source::Stream { name, reader, mime } => {
                let mut range = self.spool(reader, &name, options).await?;
                range.progress = options.progress.clone();
                let copied = Copied { size: range.len, sha256: range.expected.expect("spooling hashes") };
                (Body::File(range), name, mime, copied)
            }
            Source::Bytes { name, content, mime } => {
                self.check_size(&name, content.len() as u64, options)?;
                let copied = Copied { size: content.len() as u64, sha256: digest_of(&content) };
                (Body::Bytes(content), name, mime, copied)
            }
        };
        let name = names::sanitize(options.name.as_deref().unwrap_or(&own_name));
        let mime = mime.unwrap_or_else(|| guess_mime(&name));
        Ok(Content { body, name, mime, sha256: to_hex(&copied.sha256), size: copied.size, source: source_identity })
    }

    fn check_size(&self, name: &str, size: u64, options: &UploadOptions) -> Result<(), GatewayError> {
        match options.max_size {
            Some(max) if size > max => Err(GatewayError::TooLarge {
                name: name.to_string(),
                size,
                max,
                limit: "the most one upload may be ([server] max_upload_bytes)".into(),
            }),
            _ => Ok(()),
        }
    }

    /// Copies a stream to an unlinked spool file, hashing it on the way; stops
    /// as soon as it passes the upload limit.
    async fn spool(
        &self,
        mut reader: impl AsyncRead + Unpin,
        what: &str,
        options: &UploadOptions,
    ) -> Result<FileRange, GatewayError> {
        let input = |source| GatewayError::Input { what: what.to_string(), source };
        let path = self.spool_dir.join(format!("upload-{}", hex::encode(super::os_random::<8>())));
        let mut file = std::fs::File::options().read(true).write(true).create_new(true).open(&path).map_err(input)?;
        // The name is not needed once open: the bytes vanish with the handle.
        let _ = std::fs::remove_file(&path);
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf).await.map_err(input)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            self.check_size(what, size, options)?;
            sha2::Digest::update(&mut hasher, &buf[..n]);
            file.write_all(&buf[..n]).map_err(input)?;
        }
        let sha256: [u8; 32] = sha2::Digest::finalize(hasher).into();
        let mut range = FileRange::whole(file, what.to_string()).map_err(input)?;
        range.len = size;
        range.expected = Some(sha256);
        Ok(range)
    }

    /// Whether a provider's copies need the original bytes kept elsewhere.
    fn needs_backup(&self, adapter: &Adapter) -> bool {
        let caps = adapter.capabilities();
        adapter.name() != self.config.cache_provider && (caps.download != DownloadSupport::Original || !caps.persistent)
    }

    /// The caller's record of the content at `adapter`: its own if it has one;
    /// a new record of a copy someone else sent (waiting for it when someone
    /// else is sending it now); or a new upload, under an upload claim.
    async fn hold_copy(
        &self,
        adapter: &Adapter,
        content: &Content,
        purpose: Option<&str>,
    ) -> Result<Held, GatewayError> {
        // The provider has no spaces in its name, nor a digest; the purpose,
        // last, may hold anything.
        let name = format!("upload {} {} {}", adapter.name(), content.sha256, purpose.unwrap_or_default());
        let holder = format!("{}/{}", self.host_id, hex::encode(super::os_random::<4>()));
        loop {
            if let Some(held) = self.existing_copy(adapter, content, purpose).await? {
                return Ok(held);
            }
            match self.catalog.claim(&name, &holder, self.config.claim_ttl).await? {
                ClaimOutcome::Granted => break,
                // Someone is sending these bytes: its record appears when it
                // is done; its claim goes when it fails, lapses when it dies.
                // Its own adapter timeout bounds how long that can take.
                ClaimOutcome::HeldBy(other) => {
                    tracing::debug!("{name}: waiting for {other}'s upload");
                    tokio::time::sleep(CLAIM_POLL).await;
                }
            }
        }
        let claim = UploadClaim::hold(self.gateway.clone(), name, holder, self.config.claim_ttl);
        // The previous claimant may have recorded its copy just before we claimed.
        let held = match self.existing_copy(adapter, content, purpose).await {
            Ok(Some(held)) => Ok(held),
            Ok(None) => self.store_copy(adapter, content, purpose).await.map(|record| Held {
                record,
                deduplicated: false,
                created: true,
            }),
            Err(e) => Err(e),
        };
        claim.release().await;
        held
    }

    /// The caller's record of a copy already at `adapter`, made now if only
    /// another principal has one.
    async fn existing_copy(
        &self,
        adapter: &Adapter,
        content: &Content,
        purpose: Option<&str>,
    ) -> Result<Option<Held>, GatewayError> {
        let existing = self.catalog.find_copy(adapter.name(), &content.sha256, purpose, &self.principal.name).await?;
        Ok(match existing {
            Some(record) if record.principal == self.principal.name => {
                Some(Held { record, deduplicated: true, created: false })
            }
            Some(theirs) => {
                let mut record = self.new_record(adapter, content, purpose, theirs.remote_id);
                record.id = self.catalog.insert(&record).await?;
                Some(Held { record, deduplicated: true, created: true })
            }
            None => None,
        })
    }

    fn new_record(
        &self,
        adapter: &Adapter,
        content: &Content,
        purpose: Option<&str>,
        remote_id: String,
    ) -> ObjectRecord {
        ObjectRecord {
            id: new_id(),
            principal: self.principal.name.clone(),
            provider: adapter.name().to_string(),
            remote_id,
            sha256: content.sha256.clone(),
            size: content.size,
            name: content.name.clone(),
            mime: content.mime.clone(),
            purpose: purpose.map(str::to_string),
            created_at: now(),
            ..ObjectRecord::default()
        }
    }

    /// Uploads the content to one provider and records the copy. A copy that
    /// cannot be recorded is deleted again, so none is left unfindable.
    async fn store_copy(
        &self,
        adapter: &Adapter,
        content: &Content,
        purpose: Option<&str>,
    ) -> Result<ObjectRecord, GatewayError> {
        let info = if adapter.capabilities().download == DownloadSupport::Original {
            let body = content.body.try_clone().expect("upload sources are files or buffers");
            adapter.upload(body, &content.name, &content.mime, &content.sha256, purpose).await?.info
        } else {
            // Providers that give no original back are the ones that name files themselves.
            self.upload_named_by_provider(adapter, content, purpose).await?
        };
        metrics::counter!("wharf_bytes_in_total", "provider" => adapter.name().to_string()).increment(content.size);
        let mut record = self.new_record(adapter, content, purpose, info.remote_id);
        let changed = content.changed_since_hashed();
        let recorded = match changed {
            Some(error) => Err(error),
            None => self.catalog.insert(&record).await.map_err(GatewayError::from),
        };
        match recorded {
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
                Err(e)
            }
        }
    }

    /// Forgets a record this call made, deleting the copy unless another
    /// record still points to it; logs what fails: used while undoing a
    /// failed upload, whose own error is the one to report.
    async fn discard(&self, record: &ObjectRecord) {
        if let Err(e) = self.remove_record(record).await {
            tracing::warn!("{}: could not undo {} after a failed upload: {e}", record.provider, record.id);
        }
    }
}

/// An upload claim this call holds: renewed in the background while the
/// upload runs, released when it ends, or, if the call is dropped halfway
/// (the client went away, Ctrl-C), released from a task of its own.
struct UploadClaim {
    gateway: Arc<Gateway>,
    name: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl UploadClaim {
    fn hold(gateway: Arc<Gateway>, name: String, holder: String, ttl: Duration) -> Self {
        let renewer = tokio::spawn({
            let (catalog, name, holder) = (gateway.catalog.clone(), name.clone(), holder.clone());
            async move {
                let mut ticks = tokio::time::interval(ttl / 3);
                ticks.tick().await; // the first tick is now, and the claim is fresh
                loop {
                    ticks.tick().await;
                    match catalog.claim(&name, &holder, ttl).await {
                        Ok(ClaimOutcome::Granted) => {}
                        Ok(ClaimOutcome::HeldBy(other)) => {
                            tracing::warn!(
                                "{name}: this upload's claim lapsed (renewal came too late) and {other} took it; \
                                 both may send these bytes"
                            );
                            return;
                        }
                        // The next tick tries again; until the claim lapses nothing is lost.
                        Err(e) => tracing::warn!("{name}: renewing this upload's claim: {e}"),
                    }
                }
            }
        });
        Self { gateway, name, holder, renewer, released: false }
    }

    async fn release(mut self) {
        self.released = true;
        self.renewer.abort();
        if let Err(e) = self.gateway.catalog.release(&self.name, &self.holder).await {
            tracing::warn!("{}: releasing this upload's claim: {e}; it lapses by itself", self.name);
        }
    }
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released {
            return;
        }
        let (catalog, name, holder) = (self.gateway.catalog.clone(), self.name.clone(), self.holder.clone());
        self.gateway.clean_up_abandoned(async move {
            if let Err(e) = catalog.release(&name, &holder).await {
                tracing::warn!("{name}: releasing an abandoned upload's claim: {e}; it lapses by itself");
            }
        });
    }
}

/// The backup record made for one upload: forgotten again (and its copy
/// deleted unless another record points to it) unless the upload completes;
/// at once when it fails, and from a task of its own when the call is dropped
/// halfway, so that no record stays of an unfinished upload.
struct BackupHold {
    caller: Caller,
    record: Option<ObjectRecord>,
}

impl BackupHold {
    /// The upload completed: the record stays.
    fn keep(mut self) {
        self.record = None;
    }

    async fn undo(mut self) {
        if let Some(record) = self.record.take() {
            self.caller.discard(&record).await;
        }
    }
}

impl Drop for BackupHold {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            let caller = self.caller.clone();
            self.caller.clean_up_abandoned(async move { caller.discard(&record).await });
        }
    }
}
