//! Downloads: original bytes verified against the SHA-256 recorded at upload,
//! written atomically to a path or streamed to an HTTP client; and a
//! provider's derived content, never passed off as the original.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;

mod ranges;
mod stream;

use self::ranges::RangeFailure;
use self::stream::{CopySource, verified_stream};
use super::{Caller, GatewayError, now};
use crate::body::{Body, BodyError, Copied, Digest, Progress, parse_hex, to_hex};
use crate::catalog::{CopyState, DownloadRecord, ObjectRecord};
use crate::runtime::{ByteRange, ContentKind, DownloadSupport};
use crate::sandbox::{Destination, PartialFile, WriteError};

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Downloaded {
    pub id: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// `provider`, or `cache` when the bytes came from the cache provider.
    pub source: &'static str,
    /// The provider whose copy served the bytes.
    pub provider: String,
    /// `original`, or `derived` for a provider's derived content (extracted
    /// text), which is never written under the original's name.
    pub kind: &'static str,
    /// The bytes written match the SHA-256 recorded at upload.
    pub verified: bool,
    /// Copies tried before the one that served, and why they failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedCopy>,
}

/// Bytes on their way to an HTTP client. An error item means the transfer
/// failed: the server must abort the response, not end it.
pub type ContentStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A stored file's content, ready to stream.
pub struct StreamedContent {
    pub record: ObjectRecord,
    /// The whole content's size.
    pub size: u64,
    /// `[start, end)` of what `stream` carries.
    pub range: (u64, u64),
    pub mime: String,
    /// Known for originals; `None` for derived content.
    pub sha256: Option<String>,
    pub derived: bool,
    pub stream: ContentStream,
}

/// How a stream ended, for whoever meters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    Complete,
    /// Wharf's side failed (the provider, the SHA-256 check, a read).
    Failed,
    /// The client went away first.
    ClientGone,
}

type OnEnd = Box<dyn FnOnce(StreamEnd, u64) + Send>;

/// Counts the bytes a stream hands out and reports how it ended, exactly once:
/// at its end, its first error, or when it is dropped unfinished.
pub(crate) struct Metered {
    inner: ContentStream,
    sent: u64,
    on_end: Option<OnEnd>,
}

impl Metered {
    pub(crate) fn new(inner: ContentStream, on_end: impl FnOnce(StreamEnd, u64) + Send + 'static) -> Self {
        Self { inner, sent: 0, on_end: Some(Box::new(on_end)) }
    }

    fn finish(&mut self, end: StreamEnd) {
        if let Some(on_end) = self.on_end.take() {
            on_end(end, self.sent);
        }
    }
}

impl Stream for Metered {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => self.sent += chunk.len() as u64,
            Poll::Ready(Some(Err(_))) => self.finish(StreamEnd::Failed),
            Poll::Ready(None) => self.finish(StreamEnd::Complete),
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.finish(StreamEnd::ClientGone);
    }
}

/// Runs `work` on the runtime after a stream has ended (stream callbacks are
/// synchronous; catalog updates are not).
pub(crate) fn after_stream(work: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(work);
    }
}

/// A copy that was tried and failed before the one that served a download.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct FailedCopy {
    pub provider: String,
    /// The record of the copy (`wf_…`).
    pub id: String,
    /// `not-found`, `corrupt`, `unavailable`, …
    pub kind: String,
    pub error: String,
}

/// Why one copy could not serve a download.
enum CopyFailure {
    /// The copy failed: the next one may serve.
    Copy { kind: &'static str, error: GatewayError },
    /// The destination failed: no other copy can help.
    Destination(GatewayError),
}

/// The copy that served a download, for the history.
struct Served<'a> {
    /// The record asked for.
    record: &'a ObjectRecord,
    /// The copy read.
    copy: &'a ObjectRecord,
    /// `provider`, `cache` or `derived`.
    source: &'static str,
    bytes: u64,
    started: Instant,
}

impl Caller {
    /// The copies that can return the original bytes of `requested`, in the
    /// order `[host] resolution` gives (by default the cache provider, then
    /// the record's own provider, then any other): present copies of the
    /// same content at providers that return originals, one per remote
    /// object, whoever's record it is (the bytes are the same), or only
    /// those at `provider` when one is named.
    async fn original_copies(
        &self,
        requested: &ObjectRecord,
        provider: Option<&str>,
    ) -> Result<Vec<ObjectRecord>, GatewayError> {
        let mut copies = match requested.verified {
            true => self.catalog.copies(&requested.sha256).await?,
            false => vec![requested.clone()],
        };
        copies.retain(|c| self.serves(c, DownloadSupport::Original) && provider.is_none_or(|p| c.provider == p));
        copies.sort_by_key(|c| (self.resolution_rank(&c.provider, &requested.provider), c.id != requested.id));
        let mut seen = std::collections::HashSet::new();
        copies.retain(|c| seen.insert((c.provider.clone(), c.remote_id.clone())));
        if copies.is_empty() {
            let adapter = self.adapter(Some(&requested.provider))?;
            let reason = match requested.state {
                CopyState::Gone => format!("the copy at provider {} is gone", requested.provider),
                CopyState::Corrupt => format!("the copy at provider {} is corrupt", requested.provider),
                CopyState::Present => format!(
                    "provider {} cannot return original bytes (download: {})",
                    requested.provider,
                    adapter.capabilities().download
                ),
            };
            return Err(GatewayError::NoOriginal {
                id: requested.id.clone(),
                reason,
                cache: self.config.cache_provider.clone(),
            });
        }
        Ok(copies)
    }

    /// Where a provider stands in the resolution order for a file recorded
    /// at `own`: lower is tried first.
    fn resolution_rank(&self, provider: &str, own: &str) -> usize {
        match &self.config.resolution {
            Some(order) => {
                order.iter().position(|p| p == provider).unwrap_or(order.len() + usize::from(provider != own))
            }
            None if provider == self.config.cache_provider => 0,
            None if provider == own => 1,
            None => 2,
        }
    }

    /// `cache` when the bytes come from the cache provider's copy of a file
    /// recorded elsewhere, else `provider`.
    fn source_of(&self, copy: &ObjectRecord, requested: &ObjectRecord) -> &'static str {
        if copy.provider == self.config.cache_provider && copy.provider != requested.provider {
            "cache"
        } else {
            "provider"
        }
    }

    /// Opens a copy's original bytes (or the `range` of them).
    async fn open_copy(&self, copy: &ObjectRecord, range: Option<ByteRange>) -> Result<Body, CopyFailure> {
        let adapter = self.adapter(Some(&copy.provider)).map_err(CopyFailure::Destination)?;
        match adapter.download(&copy.target(), false, range).await {
            Ok((body, ContentKind::Original, _)) => Ok(body),
            Ok((_, ContentKind::Derived, _)) => Err(CopyFailure::Copy {
                kind: "not-original",
                error: GatewayError::NotOriginal { id: copy.id.clone(), provider: copy.provider.clone() },
            }),
            Err(e) => Err(CopyFailure::Copy { kind: e.label(), error: self.note_missing(copy, e).await }),
        }
    }

    /// Downloads one copy into `target`. A stream cut mid-way (a reset, a
    /// short body, a stall) carries on from the last byte received, with a
    /// ranged read where the provider offers one (else from the start), under
    /// the provider's retry policy. A SHA-256 mismatch is fetched once more,
    /// since one may be damage in transit; a second marks the copy corrupt,
    /// never to be served again until it is verified anew.
    async fn fetch_copy(
        &self,
        copy: &ObjectRecord,
        target: &Destination<'_>,
        expected: Option<Digest>,
        progress: &Option<Arc<Progress>>,
    ) -> Result<Copied, CopyFailure> {
        let adapter = self.adapter(Some(&copy.provider)).map_err(CopyFailure::Destination)?;
        let write_error = |source: WriteError| GatewayError::Write {
            id: copy.id.clone(),
            provider: copy.provider.clone(),
            destination: target.display.display().to_string(),
            source: Box::new(source),
        };
        let destination_failed = |source: WriteError| CopyFailure::Destination(write_error(source));
        let mut partial = target.begin().map_err(destination_failed)?;
        let mut refetched = false;
        let mut cuts = 0;
        let parallel = self.parallel_streams(&adapter, copy);
        loop {
            let resume_at = partial.written();
            let range = (resume_at > 0).then_some(ByteRange { offset: resume_at, length: None });
            let appended = match parallel {
                Some(streams) => match self.fetch_in_ranges(copy, &mut partial, progress, streams).await {
                    Ok(()) => Ok(()),
                    Err(RangeFailure::Open(failure)) => return Err(failure),
                    Err(RangeFailure::Body(error)) => Err(error),
                },
                None => {
                    let body = self.open_copy(copy, range).await?;
                    partial.append(body, progress.clone()).await
                }
            };
            match appended {
                Ok(()) => {}
                Err(cut @ BodyError::Http(_)) => {
                    cuts += 1;
                    if !adapter.pause_before_retry(cuts).await {
                        let error = write_error(WriteError::Body(cut));
                        return Err(CopyFailure::Copy { kind: "read", error });
                    }
                    tracing::warn!("{} from {}: {cut}; resuming at byte {}", copy.id, copy.provider, partial.written());
                    if !adapter.capabilities().ranged_download {
                        self.start_over(&mut partial, progress).map_err(destination_failed)?;
                    }
                    continue;
                }
                Err(write @ BodyError::Write { .. }) => return Err(destination_failed(WriteError::Body(write))),
                Err(other) => return Err(CopyFailure::Copy { kind: "read", error: write_error(other.into()) }),
            }
            match partial.check(expected) {
                Ok(_) => return partial.commit().await.map_err(destination_failed),
                Err(mismatch) if !refetched => {
                    tracing::warn!("{} at {}: {mismatch}; fetching it once more", copy.id, copy.provider);
                    refetched = true;
                    self.start_over(&mut partial, progress).map_err(destination_failed)?;
                }
                Err(mismatch) => {
                    self.mark_corrupt(copy).await;
                    return Err(CopyFailure::Copy { kind: "corrupt", error: write_error(mismatch) });
                }
            }
        }
    }

    /// Throws away what a download wrote so far, to fetch it again whole.
    fn start_over(&self, partial: &mut PartialFile, progress: &Option<Arc<Progress>>) -> Result<(), WriteError> {
        if let Some(progress) = progress {
            progress.add_total(partial.written());
        }
        Ok(partial.clear()?)
    }

    /// Marks every record of a remote object corrupt: the object is the same
    /// for all of them.
    async fn mark_corrupt(&self, copy: &ObjectRecord) {
        let records = match self.catalog.copies(&copy.sha256).await {
            Ok(records) => records,
            Err(e) => return tracing::warn!("could not mark {} corrupt: {e}", copy.id),
        };
        for record in records.iter().filter(|r| r.provider == copy.provider && r.remote_id == copy.remote_id) {
            if let Err(e) = self.catalog.set_state(&record.id, CopyState::Corrupt).await {
                tracing::warn!("could not mark {} corrupt: {e}", record.id);
            }
        }
        tracing::warn!("{} at {} failed its SHA-256 check twice: marked corrupt", copy.id, copy.provider);
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
        self.download_tracked(id, destination, provider, None).await
    }

    /// [`Caller::download`], counting the bytes written into `progress`.
    /// Tries the copies in resolution order until one serves; the result
    /// names it and what failed before it.
    pub async fn download_tracked(
        &self,
        id: &str,
        destination: Option<&Path>,
        provider: Option<&str>,
        progress: Option<Arc<Progress>>,
    ) -> Result<Downloaded, GatewayError> {
        if let Some(p) = provider {
            self.adapter(Some(p))?;
        }
        let requested = self.resolve(id, provider).await?;
        let target = self.sandbox().destination(destination, &requested.name)?;
        if let Some(progress) = &progress {
            progress.add_total(requested.size);
        }
        let expected = parse_hex(&requested.sha256).filter(|_| requested.verified);
        let mut failed: Vec<FailedCopy> = Vec::new();
        let mut last_error = None;
        for copy in self.original_copies(&requested, provider).await? {
            let started = Instant::now();
            match self.fetch_copy(&copy, &target, expected, &progress).await {
                Ok(copied) => {
                    let source = self.source_of(&copy, &requested);
                    metrics::counter!("wharf_downloads_total", "source" => source).increment(1);
                    metrics::counter!("wharf_bytes_out_total", "provider" => copy.provider.clone())
                        .increment(copied.size);
                    let served = Served { record: &requested, copy: &copy, source, bytes: copied.size, started };
                    self.record_download(served, target.display.display().to_string()).await?;
                    return Ok(Downloaded {
                        id: requested.id,
                        path: target.display.clone(),
                        sha256: to_hex(&copied.sha256),
                        size: copied.size,
                        source,
                        provider: copy.provider,
                        kind: "original",
                        verified: expected.is_some(),
                        failed,
                    });
                }
                Err(CopyFailure::Destination(error)) => return Err(error),
                Err(CopyFailure::Copy { kind, error }) => {
                    self.note_failure("download", &copy.provider, kind).await;
                    failed.push(FailedCopy {
                        provider: copy.provider.clone(),
                        id: copy.id.clone(),
                        kind: kind.to_string(),
                        error: error.to_string(),
                    });
                    last_error = Some(error);
                }
            }
        }
        match (failed.len(), last_error) {
            // One copy: its own error says it best.
            (1, Some(error)) => Err(error),
            _ => Err(GatewayError::NoCopyServed {
                id: requested.id,
                failures: failed.iter().map(|f| format!("{}: {}", f.provider, f.error)).collect::<Vec<_>>().join("; "),
            }),
        }
    }

    /// The copy whose provider derives content (Kimi's extracted text).
    async fn derived_copy(&self, id: &str) -> Result<ObjectRecord, GatewayError> {
        let object = match id.strip_prefix("sha256:") {
            // Content named by hash: the copy at a provider that derives content.
            Some(hex) => {
                let sha256 =
                    parse_hex(hex).map(|d| to_hex(&d)).ok_or_else(|| GatewayError::UnknownId(id.to_string()))?;
                let copies = self.visible_copies(&sha256).await?;
                if copies.is_empty() {
                    return Err(GatewayError::UnknownId(id.to_string()));
                }
                let derives = |o: &&ObjectRecord| self.serves(o, DownloadSupport::Derived);
                copies.iter().find(derives).cloned().ok_or_else(|| GatewayError::NotAtProvider {
                    id: id.to_string(),
                    provider: "any provider with derived content".into(),
                    held_by: copies.iter().map(|o| o.provider.as_str()).collect::<Vec<_>>().join(", "),
                })?
            }
            None => self.resolve(id, None).await?,
        };
        if self.adapter(Some(&object.provider))?.capabilities().download == DownloadSupport::None {
            return Err(GatewayError::Unsupported {
                what: format!("derived content of {}", object.id),
                provider: object.provider.clone(),
            });
        }
        Ok(object)
    }

    /// Asks the provider for its derived content of `object`.
    async fn open_derived(&self, object: &ObjectRecord) -> Result<(Body, ContentKind, String), GatewayError> {
        let adapter = self.adapter(Some(&object.provider))?;
        match adapter.download(&object.target(), true, None).await {
            Ok((body, kind, mime)) => Ok((body, kind, mime.unwrap_or_else(|| "text/plain".into()))),
            Err(e) => Err(self.note_missing(object, e).await),
        }
    }

    /// Fetches the provider's derived content (Kimi's extracted text) into a
    /// file of its own: `<name>.derived.<ext>` unless a file path is given.
    /// It cannot be verified against the original's SHA-256, and says so.
    pub async fn download_derived(&self, id: &str, destination: Option<&Path>) -> Result<Downloaded, GatewayError> {
        let object = self.derived_copy(id).await?;
        let (body, kind, mime) = self.open_derived(&object).await?;
        let extension = match mime.as_str() {
            m if m.contains("json") => "json",
            m if m.starts_with("text/") => "txt",
            _ => "bin",
        };
        let name = format!("{}.derived.{extension}", object.name);
        let target = self.sandbox().destination(destination, &name)?;
        let started = Instant::now();
        let write_error = |source: WriteError| GatewayError::Write {
            id: object.id.clone(),
            provider: object.provider.clone(),
            destination: target.display.display().to_string(),
            source: Box::new(source),
        };
        // Derived content has no ranges: a cut stream starts over, under the retry policy.
        let adapter = self.adapter(Some(&object.provider))?;
        let mut partial = target.begin().map_err(write_error)?;
        let (mut body, mut cuts) = (body, 0);
        loop {
            match partial.append(body, None).await {
                Ok(()) => break,
                Err(cut @ BodyError::Http(_)) => {
                    cuts += 1;
                    if !adapter.pause_before_retry(cuts).await {
                        return Err(write_error(WriteError::Body(cut)));
                    }
                    tracing::warn!(
                        "derived content of {} from {}: {cut}; fetching it again",
                        object.id,
                        object.provider
                    );
                    partial.clear().map_err(|e| write_error(e.into()))?;
                    body = self.open_derived(&object).await?.0;
                }
                Err(other) => return Err(write_error(WriteError::Body(other))),
            }
        }
        let copied = partial.commit().await.map_err(write_error)?;
        metrics::counter!("wharf_bytes_out_total", "provider" => object.provider.clone()).increment(copied.size);
        let served = Served { record: &object, copy: &object, source: "derived", bytes: copied.size, started };
        self.record_download(served, target.display.display().to_string()).await?;
        Ok(Downloaded {
            path: target.display.clone(),
            sha256: to_hex(&copied.sha256),
            size: copied.size,
            source: "provider",
            provider: object.provider.clone(),
            id: object.id,
            kind: match kind {
                ContentKind::Original => "original",
                ContentKind::Derived => "derived",
            },
            verified: false,
            failed: Vec::new(),
        })
    }

    /// Adds a completed download to the history and its record's count.
    async fn record_download(&self, served: Served<'_>, destination: String) -> Result<(), GatewayError> {
        let record = DownloadRecord {
            object_id: served.record.id.clone(),
            principal: self.principal.name.clone(),
            destination,
            source: served.source.into(),
            provider: served.copy.provider.clone(),
            bytes: served.bytes,
            duration_ms: served.started.elapsed().as_millis() as u64,
            at: now(),
        };
        Ok(self.catalog.record_download(&record).await?)
    }

    /// A stored file's content as a stream for an HTTP client: the original,
    /// verified as it streams (see [`verified_stream`]), or the provider's
    /// derived content. `range` is `[start, end)` of the original, already
    /// checked against its size by the caller. `destination` names where it
    /// goes, for the download history, which records transfers that complete.
    pub async fn stream_content(
        &self,
        id: &str,
        derived: bool,
        range: Option<(u64, u64)>,
        destination: &str,
    ) -> Result<StreamedContent, GatewayError> {
        if derived {
            let object = self.derived_copy(id).await?;
            let (body, _, mime) = self.open_derived(&object).await?;
            let size = body.size();
            let label = format!("{} from {}", object.id, object.provider);
            let stream = verified_stream(body, (0, u64::MAX), None, label, None);
            let content = StreamedContent {
                size: size.unwrap_or(0),
                range: (0, size.unwrap_or(0)),
                mime,
                sha256: None,
                derived: true,
                stream: self.history_on_completion(&object, &object, "derived", destination, size, stream),
                record: object,
            };
            return Ok(content);
        }
        let requested = self.resolve(id, None).await?;
        let whole = (0, requested.size);
        let range = range.unwrap_or(whole);
        let digest = parse_hex(&requested.sha256).filter(|_| requested.verified);
        let mut failures = Vec::new();
        for copy in self.original_copies(&requested, None).await? {
            // A part of the file comes as a ranged read where the provider
            // offers one: only the whole can be checked against the SHA-256,
            // and reading all of a large file to serve its tail (a resumed
            // download) would cost the whole file each time.
            let ranged = range != whole && self.adapter(Some(&copy.provider))?.capabilities().ranged_download;
            let byte_range = ranged.then_some(ByteRange { offset: range.0, length: Some(range.1 - range.0) });
            let body = match self.open_copy(&copy, byte_range).await {
                Ok(body) => body,
                Err(CopyFailure::Destination(error)) => return Err(error),
                Err(CopyFailure::Copy { kind, error }) => {
                    self.note_failure("download", &copy.provider, kind).await;
                    failures.push(format!("{}: {error}", copy.provider));
                    continue;
                }
            };
            let label = format!("{} from {}", requested.id, copy.provider);
            let again = self.adapter(Some(&copy.provider))?.capabilities().ranged_download.then(|| CopySource {
                caller: self.clone(),
                copy: copy.clone(),
                span: if ranged { range } else { whole },
            });
            let stream = match byte_range {
                Some(_) => verified_stream(body, (0, range.1 - range.0), None, label, again),
                None => verified_stream(body, range, digest.map(|d| (requested.size, d)), label, again),
            };
            let source = self.source_of(&copy, &requested);
            metrics::counter!("wharf_downloads_total", "source" => source).increment(1);
            metrics::counter!("wharf_bytes_out_total", "provider" => copy.provider.clone())
                .increment(range.1 - range.0);
            return Ok(StreamedContent {
                size: requested.size,
                range,
                mime: requested.mime.clone(),
                sha256: digest.map(|_| requested.sha256.clone()),
                derived: false,
                stream: self.history_on_completion(
                    &requested,
                    &copy,
                    source,
                    destination,
                    Some(range.1 - range.0),
                    stream,
                ),
                record: requested,
            });
        }
        Err(GatewayError::NoCopyServed { id: requested.id, failures: failures.join("; ") })
    }

    /// Records the download in `record`'s history once the stream completes:
    /// it ended, or handed out all `length` bytes (an HTTP server stops
    /// reading a body once it has sent its Content-Length).
    fn history_on_completion(
        &self,
        record: &ObjectRecord,
        copy: &ObjectRecord,
        source: &'static str,
        destination: &str,
        length: Option<u64>,
        stream: ContentStream,
    ) -> ContentStream {
        let caller = self.clone();
        let (record, copy, destination) = (record.clone(), copy.clone(), destination.to_string());
        let started = Instant::now();
        Box::pin(Metered::new(stream, move |end, sent| {
            let all_sent = end == StreamEnd::ClientGone && length == Some(sent);
            if end == StreamEnd::Complete || all_sent {
                after_stream(async move {
                    let served = Served { record: &record, copy: &copy, source, bytes: sent, started };
                    if let Err(e) = caller.record_download(served, destination).await {
                        tracing::warn!("could not record the download of {}: {e}", record.id);
                    }
                });
            }
        }))
    }
}

impl From<BodyError> for std::io::Error {
    fn from(e: BodyError) -> Self {
        std::io::Error::other(e.to_string())
    }
}

/// Up to a few KiB of content, for showing to a model.
pub struct InlineContent {
    pub record: ObjectRecord,
    pub mime: String,
    /// The whole content's size, when known.
    pub size: Option<u64>,
    pub bytes: Vec<u8>,
    /// More content follows what `bytes` holds.
    pub truncated: bool,
    pub derived: bool,
}

impl InlineContent {
    /// The content as text: UTF-8 without NUL bytes (a cut at the end of a
    /// truncated read may split a character; that part is dropped).
    pub fn text(&self) -> Option<&str> {
        let text = match std::str::from_utf8(&self.bytes) {
            Ok(text) => text,
            Err(e) if self.truncated && e.error_len().is_none() => {
                std::str::from_utf8(&self.bytes[..e.valid_up_to()]).expect("valid up to here")
            }
            Err(_) => return None,
        };
        (!text.contains('\0')).then_some(text)
    }
}

impl Caller {
    /// Reads at most `max_bytes` of a stored file (or of the provider's
    /// derived content). Content that fits is verified against its SHA-256
    /// as it is read; a longer one is cut, and says so.
    pub async fn read_inline(&self, id: &str, derived: bool, max_bytes: usize) -> Result<InlineContent, GatewayError> {
        let content = self.stream_content(id, derived, None, "read inline").await?;
        let mut stream = content.stream;
        let mut bytes = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| GatewayError::Input { what: content.record.id.clone(), source })?;
            let room = max_bytes - bytes.len();
            if chunk.len() > room {
                bytes.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(InlineContent {
            size: (!content.derived).then_some(content.size),
            record: content.record,
            mime: content.mime,
            bytes,
            truncated,
            derived: content.derived,
        })
    }
}
