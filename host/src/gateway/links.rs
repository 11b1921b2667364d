//! Download links: a URL a person can use a limited number of times before
//! it expires, for a file or directory inside the principal's roots or for a
//! stored file. Uses are taken atomically in the catalog; see
//! [`LinkRecord::decide`] for the rule that lets a cut download resume.

use std::io::Write;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cap_std::fs::Dir;
use futures::StreamExt as _;
use governor::clock::{Clock as _, DefaultClock};
use serde::Serialize;
use tokio::sync::mpsc;

use super::download::{ContentStream, Metered, StreamEnd, after_stream};
use super::tokens::{new_secret, secret_digest};
use super::{Caller, Gateway, GatewayError, Principal, now};
use crate::body::{Body, FileRange, to_hex};
use crate::catalog::{LinkKind, LinkRecord, LinkStats, UseOutcome, UseRequest};
use crate::sandbox::Entry;

/// What a link is for.
#[derive(Debug, Clone)]
pub enum LinkTarget {
    /// A file or directory inside the caller's sandbox roots.
    Path(PathBuf),
    /// A stored file (`wf_…`).
    FileId(String),
}

#[derive(Debug, Clone)]
pub struct LinkRequest {
    pub target: LinkTarget,
    /// 1 to 60; 5 when absent.
    pub expiry_minutes: Option<u32>,
    /// 1 to 100; 1 when absent.
    pub max_downloads: Option<u32>,
    /// The name the person's browser saves it under.
    pub filename: Option<String>,
    /// A size limit below the server's own.
    pub max_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct LinkCreated {
    pub token: String,
    pub download_url: String,
    /// Seconds since the Unix epoch.
    pub expires_at: i64,
    /// `file`, `directory` or `stored`.
    pub file_type: &'static str,
    /// Bytes; a directory's is the total of its files.
    pub size: u64,
    pub sha256: Option<String>,
}

/// A `Range: bytes=…` request: `first-last`, `first-`, or `-suffix` (`first`
/// absent, `last` is then the suffix length).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeRequest {
    pub first: Option<u64>,
    pub last: Option<u64>,
}

impl RangeRequest {
    /// `[start, end)` of a file of `size` bytes, or `None` when the range
    /// cannot be satisfied.
    pub fn within(self, size: u64) -> Option<(u64, u64)> {
        match (self.first, self.last) {
            (Some(first), _) if first >= size => None,
            (Some(first), Some(last)) if last < first => None,
            (Some(first), Some(last)) => Some((first, last.saturating_add(1).min(size))),
            (Some(first), None) => Some((first, size)),
            (None, Some(suffix)) if suffix > 0 && size > 0 => Some((size - suffix.min(size), size)),
            _ => None,
        }
    }
}

/// What a link serves: headers first, then (for GET) the bytes.
pub struct LinkTransfer {
    pub kind: LinkKind,
    pub filename: String,
    pub mime: String,
    /// The whole file's size; `None` for a directory's ZIP, whose size is
    /// known only once it is written.
    pub size: Option<u64>,
    /// `[start, end)` when a range is served.
    pub range: Option<(u64, u64)>,
    pub sha256: Option<String>,
    pub content: LinkContent,
}

pub enum LinkContent {
    /// HEAD: headers only, no use taken.
    Headers,
    Stream(ContentStream),
}

/// How deep a directory link's ZIP goes.
const MAX_DEPTH: usize = 64;
/// How much a ZIP's writer hands to the socket at a time.
const ZIP_CHUNK: usize = 256 * 1024;

/// A directory's regular files, by path relative to it, sorted.
struct DirListing {
    files: Vec<(String, u64)>,
    total: u64,
}

/// Lists regular files below `dir`. Symlinks are followed only where they
/// resolve inside it to a file (cap-std refuses the others); subdirectories
/// reached through symlinks are skipped, so no loop is possible.
fn list_dir(dir: &Dir, prefix: &str, depth: usize, listing: &mut DirListing) -> std::io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<_> = dir.entries()?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue; // a ZIP entry name must be text
        };
        let path = format!("{prefix}{name}");
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            list_dir(&dir.open_dir(&name)?, &format!("{path}/"), depth + 1, listing)?;
        } else if file_type.is_file() || file_type.is_symlink() {
            match dir.metadata(&name) {
                Ok(meta) if meta.is_file() => {
                    listing.total += meta.len();
                    listing.files.push((path, meta.len()));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Hands what a synchronous writer writes to an async stream.
struct ChannelWriter(mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a ZIP of the listed files as it streams: entries stored as they
/// are, names relative to the directory, no temporary file.
fn zip_stream(dir: Dir, listing: DirListing, label: String) -> ContentStream {
    let (tx, mut rx) = mpsc::channel(8);
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let write = || -> zip::result::ZipResult<()> {
            let sink = std::io::BufWriter::with_capacity(ZIP_CHUNK, ChannelWriter(tx));
            let mut zip = zip::ZipWriter::new_stream(sink);
            for (name, size) in &listing.files {
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored)
                    .large_file(*size >= u64::from(u32::MAX));
                let mut file = dir.open(name)?;
                zip.start_file(name, options)?;
                std::io::copy(&mut file, &mut zip)?;
            }
            zip.finish()?.flush()?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = errors.blocking_send(Err(std::io::Error::other(format!("zipping {label}: {e}"))));
        }
    });
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// A file's identity: what must not change between making a link and serving it.
fn identity_of(range: &FileRange) -> std::io::Result<String> {
    let meta = range.file.metadata()?;
    Ok(format!("{}:{}:{}:{}.{}", meta.dev(), meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()))
}

fn link_unavailable(outcome: UseOutcome) -> GatewayError {
    match outcome {
        UseOutcome::Unknown => GatewayError::UnknownLink,
        UseOutcome::Expired => GatewayError::LinkUnavailable("expired"),
        UseOutcome::Exhausted | UseOutcome::Granted { .. } => GatewayError::LinkUnavailable("no uses left"),
    }
}

/// What a link's target is now, opened and checked, before any use is taken.
enum Opened {
    File(FileRange),
    Directory(Dir, DirListing),
    Stored,
}

impl Caller {
    /// Makes a download link. Links are served by `wharf serve`; they can be
    /// made elsewhere (the CLI, `wharf mcp`) only where `[server] public_url`
    /// says where that server is.
    pub async fn create_link(&self, request: LinkRequest) -> Result<LinkCreated, GatewayError> {
        let Some(base_url) = self.config.server.public_url.clone() else {
            return Err(GatewayError::InvalidRequest(
                "download links are served by `wharf serve`: run it on this catalog, and set [server] public_url to the address people reach it at so that links made outside it point there".into(),
            ));
        };
        if let Err(not_until) = self.link_limiter.check_key(&self.principal.name) {
            return Err(GatewayError::RateLimited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            });
        }
        let expiry_minutes = request.expiry_minutes.unwrap_or(5);
        if !(1..=60).contains(&expiry_minutes) {
            return Err(GatewayError::InvalidRequest(format!("expiry_minutes must be 1 to 60, not {expiry_minutes}")));
        }
        let max_uses = request.max_downloads.unwrap_or(1);
        if !(1..=100).contains(&max_uses) {
            return Err(GatewayError::InvalidRequest(format!("max_downloads must be 1 to 100, not {max_uses}")));
        }
        let server_max = self.config.server.links.max_size;
        let max_size = request.max_size.map_or(server_max, |m| m.min(server_max));
        let too_large = |name: &str, size: u64| GatewayError::TooLarge {
            name: name.to_string(),
            size,
            max: max_size,
            limit: "the most a download link may serve".into(),
        };
        let (kind, target, default_name, size, sha256, identity) = match &request.target {
            LinkTarget::Path(path) => match self.sandbox().open_entry(path)? {
                Entry::File(range) => {
                    if range.len > max_size {
                        return Err(too_large(&path.display().to_string(), range.len));
                    }
                    let identity = identity_of(&range)
                        .map_err(|source| GatewayError::Input { what: path.display().to_string(), source })?;
                    let copied = range.clone().hash().await.map_err(GatewayError::Read)?;
                    let absolute = self.sandbox().absolute(path)?;
                    let name = file_name(&absolute, "download");
                    (LinkKind::File, absolute, name, copied.size, Some(to_hex(&copied.sha256)), Some(identity))
                }
                Entry::Directory(dir, absolute) => {
                    let listing = self.list_directory(dir, &absolute).await?.1;
                    if listing.total > max_size {
                        return Err(too_large(&absolute.display().to_string(), listing.total));
                    }
                    let name = format!("{}.zip", file_name(&absolute, "download"));
                    (LinkKind::Directory, absolute, name, listing.total, None, None)
                }
            },
            LinkTarget::FileId(id) => {
                let record = self.resolve(id, None).await?;
                if record.size > max_size {
                    return Err(too_large(&record.id, record.size));
                }
                (LinkKind::Stored, PathBuf::from(&record.id), record.name, record.size, Some(record.sha256), None)
            }
        };
        let token = new_secret("");
        let created_at = now();
        let link = LinkRecord {
            token_sha256: secret_digest(&token),
            principal: self.principal.name.clone(),
            kind,
            target: target.to_string_lossy().into_owned(),
            filename: request.filename.filter(|f| !f.is_empty()).unwrap_or(default_name),
            size,
            sha256: sha256.clone(),
            identity,
            max_size,
            created_at,
            expires_at: created_at + i64::from(expiry_minutes) * 60,
            max_uses,
            uses: 0,
            charged: 0,
            budget_per_use: LinkRecord::budget_for(size),
        };
        self.catalog.insert_link(&link).await?;
        metrics::counter!("wharf_link_generations_total").increment(1);
        Ok(LinkCreated {
            download_url: format!("{}/api/download/{token}", base_url.trim_end_matches('/')),
            token,
            expires_at: link.expires_at,
            file_type: kind.as_str(),
            size,
            sha256,
        })
    }

    /// Lists a directory's files on a blocking thread.
    async fn list_directory(&self, dir: Dir, path: &Path) -> Result<(Dir, DirListing), GatewayError> {
        let what = path.display().to_string();
        tokio::task::spawn_blocking(move || {
            let mut listing = DirListing { files: Vec::new(), total: 0 };
            list_dir(&dir, "", 0, &mut listing).map(|()| (dir, listing))
        })
        .await
        .expect("listing thread panicked")
        .map_err(|source| GatewayError::Input { what, source })
    }

    /// The caller's links by state.
    pub async fn link_stats(&self, principal: Option<&str>) -> Result<LinkStats, GatewayError> {
        let principal = match principal {
            Some(other) if other != self.principal.name && !self.principal.admin => {
                // Another principal's numbers are an admin's to see.
                return Ok(LinkStats::default());
            }
            Some(other) => other,
            None => &self.principal.name,
        };
        Ok(self.catalog.link_stats(principal, now()).await?)
    }

    /// Opens a link's target as it is now and checks it against the link.
    async fn open_target(&self, link: &LinkRecord) -> Result<Opened, GatewayError> {
        let path = Path::new(&link.target);
        match link.kind {
            LinkKind::File => {
                let Entry::File(range) = self.sandbox().open_entry(path)? else {
                    return Err(GatewayError::Changed { path: link.filename.clone() });
                };
                let identity = identity_of(&range).ok();
                if identity.is_none() || identity != link.identity {
                    return Err(GatewayError::Changed { path: link.filename.clone() });
                }
                Ok(Opened::File(range))
            }
            LinkKind::Directory => {
                let Entry::Directory(dir, absolute) = self.sandbox().open_entry(path)? else {
                    return Err(GatewayError::Changed { path: link.filename.clone() });
                };
                let (dir, listing) = self.list_directory(dir, &absolute).await?;
                if listing.total > link.max_size {
                    return Err(GatewayError::TooLarge {
                        name: link.filename.clone(),
                        size: listing.total,
                        max: link.max_size,
                        limit: "the most this download link may serve".into(),
                    });
                }
                Ok(Opened::Directory(dir, listing))
            }
            LinkKind::Stored => {
                self.resolve(&link.target, None).await?;
                Ok(Opened::Stored)
            }
        }
    }
}

fn file_name(path: &Path, fallback: &str) -> String {
    path.file_name().map_or_else(|| fallback.to_string(), |n| n.to_string_lossy().into_owned())
}

impl Gateway {
    /// Serves a link: checks it, opens its target, takes a use (not for
    /// HEAD), and streams. A transfer that fails on Wharf's side gives its
    /// use back; a cut transfer is charged only the bytes it sent.
    pub async fn open_link(
        self: &Arc<Self>,
        token: &str,
        head: bool,
        range: Option<RangeRequest>,
    ) -> Result<LinkTransfer, GatewayError> {
        let token_sha256 = secret_digest(token);
        let link = self.catalog.link(&token_sha256).await?.ok_or(GatewayError::UnknownLink)?;
        // A Range GET may still draw on the budget of uses already taken;
        // `take_use` decides that below.
        match link.decide(now(), UseRequest::Whole) {
            outcome @ UseOutcome::Expired => return Err(link_unavailable(outcome)),
            outcome @ UseOutcome::Exhausted if head => return Err(link_unavailable(outcome)),
            _ => {}
        }
        let owner = self.caller(Principal::new(link.principal.clone()));
        let range = match (link.kind, range) {
            (LinkKind::Directory, _) | (_, None) => None,
            (_, Some(range)) => {
                Some(range.within(link.size).ok_or(GatewayError::RangeNotSatisfiable { size: link.size })?)
            }
        };
        let opened = owner.open_target(&link).await?;
        let mime = match link.kind {
            LinkKind::Directory => "application/zip".to_string(),
            _ => mime_guess::from_path(&link.filename).first_or_octet_stream().essence_str().to_string(),
        };
        let mut transfer = LinkTransfer {
            kind: link.kind,
            filename: link.filename.clone(),
            mime,
            size: (link.kind != LinkKind::Directory).then_some(link.size),
            range,
            sha256: link.sha256.clone(),
            content: LinkContent::Headers,
        };
        if head {
            return Ok(transfer);
        }
        let (request, charged) = match range {
            Some((start, end)) => (UseRequest::Range { len: end - start }, end - start),
            None => (UseRequest::Whole, 0),
        };
        let outcome = self.catalog.take_use(&token_sha256, now(), request).await?;
        let UseOutcome::Granted { took_use } = outcome else {
            return Err(link_unavailable(outcome));
        };
        if took_use {
            metrics::counter!("wharf_link_uses_total").increment(1);
        }
        let settle = {
            let gateway = self.clone();
            let token_sha256 = token_sha256.clone();
            move |end: StreamEnd, sent: u64| {
                after_stream(async move {
                    // What Wharf failed to serve costs the link nothing.
                    let failed = end == StreamEnd::Failed;
                    let delta = if failed { 0 } else { sent as i64 } - charged as i64;
                    if let Err(e) = gateway.catalog.settle_use(&token_sha256, delta, took_use && failed).await {
                        tracing::warn!("could not settle a download link's use: {e}");
                    }
                })
            }
        };
        let stream: ContentStream = match opened {
            Opened::File(file) => {
                let (start, end) = range.unwrap_or((0, file.len));
                let body = Body::File(FileRange { offset: start, len: end - start, expected: None, ..file });
                Box::pin(body.into_stream().map(|item| item.map_err(std::io::Error::from)))
            }
            Opened::Directory(dir, listing) => zip_stream(dir, listing, link.filename.clone()),
            Opened::Stored => match owner.stream_content(&link.target, false, range, "download link").await {
                Ok(content) => content.stream,
                Err(e) => {
                    settle(StreamEnd::Failed, 0);
                    return Err(e);
                }
            },
        };
        transfer.content = LinkContent::Stream(Box::pin(Metered::new(stream, settle)));
        Ok(transfer)
    }
}
