//! Downloads: original bytes verified against the SHA-256 recorded at upload,
//! written atomically to a path or streamed to an HTTP client; and a
//! provider's derived content, never passed off as the original.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::{Caller, GatewayError, now};
use crate::body::{Body, BodyError, Copied, Digest, Progress, parse_hex, to_hex};
use crate::catalog::{CopyState, DownloadRecord, ObjectRecord};
use crate::runtime::{ContentKind, DownloadSupport};
use crate::sandbox::Destination;

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

/// Where downloaded bytes come from, for messages and the history.
struct Origin<'a> {
    /// The record asked for.
    id: &'a str,
    /// The provider whose copy is read.
    provider: &'a str,
    /// `provider`, `cache` or `derived`, for the history.
    source: &'a str,
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

/// Streams `[start, end)` of `body`, checking the whole body against `expected`
/// (size and SHA-256) when given. The last piece is held back until the check
/// passes, so a client never receives a complete-looking copy of bad bytes: a
/// mismatch ends the stream with an error instead. Reads the whole body even
/// for a range, since only the whole can be verified.
fn verified_stream(body: Body, range: (u64, u64), expected: Option<(u64, Digest)>, label: String) -> ContentStream {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let mut inner = body.into_stream();
    tokio::spawn(async move {
        let (start, end) = range;
        let mut hasher = Sha256::new();
        let mut position = 0u64;
        let mut held: Option<Bytes> = None;
        while let Some(item) = inner.next().await {
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(format!("{label}: {e}")))).await;
                    return;
                }
            };
            if expected.is_some() {
                hasher.update(&chunk);
            }
            let chunk_start = position;
            position += chunk.len() as u64;
            let (from, to) = (start.max(chunk_start), end.min(position));
            if from < to {
                let piece = chunk.slice((from - chunk_start) as usize..(to - chunk_start) as usize);
                if let Some(previous) = held.replace(piece)
                    && tx.send(Ok(previous)).await.is_err()
                {
                    return; // the client went away
                }
            }
            if expected.is_none() && position >= end {
                break;
            }
        }
        if let Some((size, digest)) = expected {
            let actual: Digest = hasher.finalize().into();
            if position != size || actual != digest {
                let message = format!(
                    "{label}: SHA-256 mismatch: expected {} ({size} bytes), received {} ({position} bytes)",
                    to_hex(&digest),
                    to_hex(&actual)
                );
                let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message))).await;
                return;
            }
        }
        if let Some(last) = held {
            let _ = tx.send(Ok(last)).await;
        }
    });
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

impl Caller {
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
            // Any principal's cache record will do: the bytes are the same.
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

    /// Opens the original bytes of `requested` at the copy that can return them.
    async fn open_original(
        &self,
        requested: &ObjectRecord,
        provider_named: bool,
    ) -> Result<(ObjectRecord, &'static str, Body), GatewayError> {
        let (object, source) = self.readable_copy(requested, provider_named).await?;
        let adapter = self.adapter(Some(&object.provider))?;
        let (body, kind, _) = match adapter.download(&object.target(), false).await {
            Ok(download) => download,
            Err(e) => return Err(self.note_missing(&object, e).await),
        };
        if kind != ContentKind::Original {
            return Err(GatewayError::NotOriginal { id: requested.id.clone(), provider: object.provider.clone() });
        }
        metrics::counter!("wharf_downloads_total", "source" => source).increment(1);
        Ok((object, source, body))
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
        let (object, source, body) = self.open_original(&requested, provider.is_some()).await?;
        let expected = parse_hex(&object.sha256);
        let from = Origin { id: &requested.id, provider: &object.provider, source };
        let copied = self.deliver(from, &target, body, expected, progress).await?;
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
        match adapter.download(&object.target(), true).await {
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
        let from = Origin { id: &object.id, provider: &object.provider, source: "derived" };
        let copied = self.deliver(from, &target, body, None, None).await?;
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
        from: Origin<'_>,
        target: &Destination<'_>,
        body: Body,
        expected: Option<Digest>,
        progress: Option<Arc<Progress>>,
    ) -> Result<Copied, GatewayError> {
        let destination = target.display.display().to_string();
        let copied = target.write(body, expected, progress).await.map_err(|source| GatewayError::Write {
            id: from.id.to_string(),
            provider: from.provider.to_string(),
            destination: destination.clone(),
            source: Box::new(source),
        })?;
        metrics::counter!("wharf_bytes_out_total", "provider" => from.provider.to_string()).increment(copied.size);
        self.record_download(from.id, destination, from.source).await?;
        Ok(copied)
    }

    async fn record_download(&self, id: &str, destination: String, source: &str) -> Result<(), GatewayError> {
        let record = DownloadRecord {
            object_id: id.to_string(),
            principal: self.principal.name.clone(),
            destination,
            source: source.into(),
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
            let stream = verified_stream(body, (0, u64::MAX), None, format!("{} from {}", object.id, object.provider));
            let content = StreamedContent {
                size: size.unwrap_or(0),
                range: (0, size.unwrap_or(0)),
                mime,
                sha256: None,
                derived: true,
                stream: self.history_on_completion(&object, "derived", destination, stream),
                record: object,
            };
            return Ok(content);
        }
        let requested = self.resolve(id, None).await?;
        let (object, source, body) = self.open_original(&requested, false).await?;
        let digest = parse_hex(&object.sha256).expect("the catalog records hex SHA-256");
        let range = range.unwrap_or((0, object.size));
        let label = format!("{} from {}", requested.id, object.provider);
        let stream = verified_stream(body, range, Some((object.size, digest)), label);
        metrics::counter!("wharf_bytes_out_total", "provider" => object.provider.clone()).increment(range.1 - range.0);
        Ok(StreamedContent {
            size: object.size,
            range,
            mime: requested.mime.clone(),
            sha256: Some(object.sha256.clone()),
            derived: false,
            stream: self.history_on_completion(&requested, source, destination, stream),
            record: requested,
        })
    }

    /// Records the download in `record`'s history once the stream completes.
    fn history_on_completion(
        &self,
        record: &ObjectRecord,
        source: &'static str,
        destination: &str,
        stream: ContentStream,
    ) -> ContentStream {
        let (caller, id, destination) = (self.clone(), record.id.clone(), destination.to_string());
        Box::pin(Metered::new(stream, move |end, _| {
            if end == StreamEnd::Complete {
                after_stream(async move {
                    if let Err(e) = caller.record_download(&id, destination, source).await {
                        tracing::warn!("could not record the download of {id}: {e}");
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
