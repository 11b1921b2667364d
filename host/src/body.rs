//! Host-owned bytes: what the contract's `body` resource holds, and the
//! streaming copies that move it, hashing as they go. Nothing here holds more
//! than a few chunks in memory, whatever the size of the content.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::Stream;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// How much is read, hashed and written at a time.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between a network task and a disk thread.
const CHUNKS_IN_FLIGHT: usize = 8;

pub enum Body {
    File(FileRange),
    Bytes(Bytes),
    /// A response stream; `None` once read.
    Response(Option<reqwest::Response>),
    /// A file or buffer body framed for sending with its SHA-256 after it.
    Trailed(Trailed),
}

/// Bytes framed as one `aws-chunked` chunk followed by a trailer, `NAME:`
/// and the base64 SHA-256 of the bytes, computed as they are read for
/// sending: the receiver checks what it got, and the bytes are read once.
pub struct Trailed {
    /// A `File` or `Bytes` body.
    content: Box<Body>,
    /// The trailer's header name (S3: `x-amz-checksum-sha256`).
    name: String,
}

impl Trailed {
    /// Frames `content`, which must be a file or a buffer (they can be sent again).
    pub fn new(content: &Body, name: &str) -> Result<Self, BodyError> {
        let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid_name {
            return Err(BodyError::BadTrailerName(name.to_string()));
        }
        match content {
            Body::File(_) | Body::Bytes(_) => {
                let content = Box::new(content.try_clone().expect("files and buffers clone"));
                Ok(Self { content, name: name.to_string() })
            }
            Body::Response(_) | Body::Trailed(_) => Err(BodyError::NotFramable),
        }
    }

    fn content_len(&self) -> u64 {
        self.content.size().expect("files and buffers know their size")
    }

    /// What goes before the bytes: the chunk's size in hex.
    fn prefix(&self) -> Bytes {
        Bytes::from(format!("{:x}\r\n", self.content_len()))
    }

    /// What goes after them: the end of the chunk (when there was one), the
    /// last (empty) chunk, the trailer, and the end of the trailers.
    fn suffix(&self, sha256: &Digest) -> Bytes {
        use base64::Engine as _;
        let digest = base64::engine::general_purpose::STANDARD.encode(sha256);
        let end_of_chunk = if self.content_len() > 0 { "\r\n" } else { "" };
        Bytes::from(format!("{end_of_chunk}0\r\n{}:{digest}\r\n\r\n", self.name))
    }

    /// The framed length: what `content-length` says.
    fn size(&self) -> u64 {
        let len = self.content_len();
        let chunk = if len > 0 { self.prefix().len() as u64 + len } else { 0 };
        chunk + self.suffix(&[0; 32]).len() as u64
    }
}

/// Bytes moved so far by a transfer, shared by everything that moves them
/// (multipart parts included), for progress reports.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    /// 0 until known.
    total: AtomicU64,
}

impl Progress {
    pub fn add(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Adds to the bytes the transfer (or batch of transfers) will move.
    pub fn add_total(&self, bytes: u64) {
        self.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The bytes the transfer will move, once known.
    pub fn total(&self) -> Option<u64> {
        Some(self.total.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

/// A byte range of an open file, read with positional reads so that several
/// ranges of one file (multipart parts) can be sent at once.
#[derive(Clone)]
pub struct FileRange {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
    /// The digest the whole range must have; checked while it streams, so a
    /// file changed after hashing is caught before it is stored.
    pub expected: Option<Digest>,
    /// What the file is, for messages.
    pub label: Arc<str>,
    /// Counts the bytes read, when someone is watching.
    pub progress: Option<Arc<Progress>>,
}

/// What a completed copy moved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Copied {
    pub size: u64,
    pub sha256: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is {size} bytes, more than the {max} bytes that may be read into memory")]
    TooLarge { size: u64, max: u64 },
    #[error("{label}: {source}")]
    Io { label: String, source: std::io::Error },
    /// Writing to the destination failed (not reading the body).
    #[error("writing {label}: {source}")]
    Write { label: String, source: std::io::Error },
    #[error("{label} ended after {read} of {len} bytes")]
    Truncated { label: String, read: u64, len: u64 },
    #[error("{label} changed while it was being copied: its SHA-256 is now {actual}, it was {expected}")]
    Changed { label: String, expected: String, actual: String },
    #[error("the response body was already read")]
    Consumed,
    #[error("receiving the response body: {0}")]
    Http(#[from] reqwest::Error),
    #[error("only file and buffer bodies can be sliced")]
    NotSliceable,
    #[error("only file and buffer bodies can be framed with a checksum trailer")]
    NotFramable,
    #[error("a body framed with a checksum trailer can only be sent")]
    SendOnly,
    #[error("{0:?} is not a header name for a trailer (letters, digits and '-')")]
    BadTrailerName(String),
    #[error("slice {offset}+{length} is outside a body of {size} bytes")]
    SliceOutOfRange { offset: u64, length: u64, size: u64 },
}

/// How much [`Sink::absorb`] reads back at a time.
const ABSORB_BUFFER: usize = 1 << 20;

/// A file being written from the start, and the digest of what it holds.
pub struct Sink {
    file: File,
    hasher: Sha256,
    size: u64,
    /// What the file is, for messages.
    label: String,
}

impl Sink {
    /// An empty file to write.
    pub fn new(file: File, label: String) -> Self {
        Self { file, hasher: Sha256::new(), size: 0, label }
    }

    /// The bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The size and digest of what the file holds.
    pub fn copied(&self) -> Copied {
        Copied { size: self.size, sha256: self.hasher.clone().finalize().into() }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        self.file.write_all(chunk).map_err(|source| BodyError::Write { label: self.label.clone(), source })?;
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Takes in the `len` bytes that follow what was written, which others
    /// already wrote there at their offsets (parallel ranged reads): reads
    /// them back (from the page cache) to hash them, in order.
    pub fn absorb(&mut self, len: u64) -> Result<(), BodyError> {
        use std::io::Seek as _;
        let io = |source| BodyError::Write { label: self.label.clone(), source };
        let mut buffer = vec![0u8; (len as usize).min(ABSORB_BUFFER)];
        let end = self.size + len;
        while self.size < end {
            let want = ((end - self.size) as usize).min(buffer.len());
            self.file.read_exact_at(&mut buffer[..want], self.size).map_err(io)?;
            self.hasher.update(&buffer[..want]);
            self.size += want as u64;
        }
        // Appends go on from the end of what was taken in.
        self.file.seek(std::io::SeekFrom::Start(self.size)).map_err(io)?;
        Ok(())
    }

    /// Throws away what was written: the file is empty again.
    pub fn clear(&mut self) -> std::io::Result<()> {
        use std::io::Seek as _;
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.hasher = Sha256::new();
        self.size = 0;
        Ok(())
    }
}

pub fn to_hex(digest: &Digest) -> String {
    hex::encode(digest)
}

/// Parses a lowercase or uppercase hex SHA-256.
pub fn parse_hex(text: &str) -> Option<Digest> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text, &mut digest).ok()?;
    Some(digest)
}

pub fn digest_of(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

impl FileRange {
    /// The whole of an open file.
    pub fn whole(file: File, label: impl Into<Arc<str>>) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self { file: Arc::new(file), offset: 0, len, expected: None, label: label.into(), progress: None })
    }

    fn io_error(&self, source: std::io::Error) -> BodyError {
        BodyError::Io { label: self.label.to_string(), source }
    }

    /// Reads the range in chunks on the calling (blocking) thread, handing each
    /// chunk to `sink`. Hashes it when `want_digest` is set or a digest is
    /// expected (and then checks it at the end): nothing is hashed that
    /// nothing checks. Returns the size and the digest, if computed.
    fn for_each_chunk(
        &self,
        want_digest: bool,
        mut sink: impl FnMut(&[u8]) -> Result<(), BodyError>,
    ) -> Result<(u64, Option<Digest>), BodyError> {
        let mut hasher = (want_digest || self.expected.is_some()).then(Sha256::new);
        let mut buf = vec![0u8; CHUNK.min(self.len.max(1) as usize)];
        let mut done = 0u64;
        while done < self.len {
            let want = buf.len().min((self.len - done) as usize);
            let n = self.file.read_at(&mut buf[..want], self.offset + done).map_err(|e| self.io_error(e))?;
            if n == 0 {
                return Err(BodyError::Truncated { label: self.label.to_string(), read: done, len: self.len });
            }
            if let Some(hasher) = &mut hasher {
                hasher.update(&buf[..n]);
            }
            sink(&buf[..n])?;
            done += n as u64;
            if let Some(progress) = &self.progress {
                progress.add(n as u64);
            }
        }
        let sha256: Option<Digest> = hasher.map(|h| h.finalize().into());
        if let (Some(expected), Some(actual)) = (self.expected, &sha256) {
            self.check(expected, actual)?;
        }
        Ok((done, sha256))
    }

    /// Fails with [`BodyError::Changed`] unless the range read as `expected`.
    fn check(&self, expected: Digest, actual: &Digest) -> Result<(), BodyError> {
        if expected == *actual {
            return Ok(());
        }
        Err(BodyError::Changed { label: self.label.to_string(), expected: to_hex(&expected), actual: to_hex(actual) })
    }

    /// Copies the range to `sink`, hashing it.
    fn copy_hashed(&self, sink: impl FnMut(&[u8]) -> Result<(), BodyError>) -> Result<Copied, BodyError> {
        let (size, sha256) = self.for_each_chunk(true, sink)?;
        Ok(Copied { size, sha256: sha256.expect("asked for") })
    }

    /// Hashes the range without copying it anywhere.
    pub async fn hash(self) -> Result<Copied, BodyError> {
        tokio::task::spawn_blocking(move || self.copy_hashed(|_| Ok(()))).await.expect("hashing thread panicked")
    }
}

impl Body {
    /// Another body over the same bytes, for sending them again (a retry, a
    /// second provider). Response streams can be read only once.
    pub fn try_clone(&self) -> Option<Body> {
        match self {
            Body::File(range) => Some(Body::File(range.clone())),
            Body::Bytes(bytes) => Some(Body::Bytes(bytes.clone())),
            Body::Response(_) => None,
            Body::Trailed(framed) => Some(Body::Trailed(Trailed {
                content: Box::new(framed.content.try_clone()?),
                name: framed.name.clone(),
            })),
        }
    }

    pub fn size(&self) -> Option<u64> {
        match self {
            Body::File(range) => Some(range.len),
            Body::Bytes(bytes) => Some(bytes.len() as u64),
            Body::Response(response) => response.as_ref().and_then(|r| r.content_length()),
            Body::Trailed(framed) => Some(framed.size()),
        }
    }

    pub fn slice(&self, offset: u64, length: u64) -> Result<Body, BodyError> {
        let size = self.size().unwrap_or(0);
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(BodyError::SliceOutOfRange { offset, length, size });
        }
        match self {
            Body::File(range) => Ok(Body::File(FileRange {
                file: range.file.clone(),
                offset: range.offset + offset,
                len: length,
                expected: None,
                label: range.label.clone(),
                progress: range.progress.clone(),
            })),
            Body::Bytes(bytes) => Ok(Body::Bytes(bytes.slice(offset as usize..(offset + length) as usize))),
            Body::Response(_) | Body::Trailed(_) => Err(BodyError::NotSliceable),
        }
    }

    /// Reads the whole body into memory, refusing one longer than `max`.
    pub async fn read_all(&mut self, max: u64) -> Result<Vec<u8>, BodyError> {
        if let Some(size) = self.size().filter(|s| *s > max) {
            return Err(BodyError::TooLarge { size, max });
        }
        match self {
            Body::Bytes(bytes) => Ok(bytes.to_vec()),
            Body::File(range) => {
                let range = range.clone();
                tokio::task::spawn_blocking(move || {
                    let mut out = Vec::with_capacity(range.len as usize);
                    range.for_each_chunk(false, |chunk| {
                        out.extend_from_slice(chunk);
                        Ok(())
                    })?;
                    Ok(out)
                })
                .await
                .expect("reading thread panicked")
            }
            Body::Response(slot) => {
                let mut response = slot.take().ok_or(BodyError::Consumed)?;
                let mut out = Vec::new();
                while let Some(chunk) = response.chunk().await? {
                    if out.len() as u64 + chunk.len() as u64 > max {
                        return Err(BodyError::TooLarge { size: out.len() as u64 + chunk.len() as u64, max });
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(out)
            }
            Body::Trailed(_) => Err(BodyError::SendOnly),
        }
    }

    /// Streams the body onto the end of `sink`, hashing it, and hands the sink
    /// back with how the copy ended: a body cut short leaves in the sink
    /// everything received before the cut, so that a transfer can resume.
    /// `progress` counts the bytes as they are written.
    pub async fn append_to(self, sink: Sink, progress: Option<Arc<Progress>>) -> (Sink, Result<(), BodyError>) {
        match self {
            Body::File(mut range) => tokio::task::spawn_blocking(move || {
                let mut sink = sink;
                range.progress = range.progress.or(progress);
                // An empty sink's digest at the end is the range's: checking
                // that one spares hashing every byte twice.
                let expected = if sink.size() == 0 { range.expected.take() } else { None };
                let result = range.for_each_chunk(false, |chunk| sink.write(chunk)).and_then(|_| match expected {
                    Some(expected) => range.check(expected, &sink.copied().sha256),
                    None => Ok(()),
                });
                (sink, result)
            })
            .await
            .expect("copying thread panicked"),
            Body::Bytes(bytes) => tokio::task::spawn_blocking(move || {
                let mut sink = sink;
                let result = sink.write(&bytes);
                if let (Ok(()), Some(progress)) = (&result, progress) {
                    progress.add(bytes.len() as u64);
                }
                (sink, result)
            })
            .await
            .expect("copying thread panicked"),
            Body::Response(slot) => {
                let Some(mut response) = slot else { return (sink, Err(BodyError::Consumed)) };
                let (tx, mut rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
                let writer = tokio::task::spawn_blocking(move || {
                    let mut sink = sink;
                    while let Some(chunk) = rx.blocking_recv() {
                        if let Err(e) = sink.write(&chunk) {
                            return (sink, Err(e));
                        }
                        if let Some(progress) = &progress {
                            progress.add(chunk.len() as u64);
                        }
                    }
                    (sink, Ok(()))
                });
                let received = async {
                    while let Some(chunk) = response.chunk().await? {
                        if tx.send(chunk).await.is_err() {
                            break; // the writer failed; its error is the one to report
                        }
                    }
                    Ok::<_, BodyError>(())
                }
                .await;
                drop(tx);
                let (sink, written) = writer.await.expect("writing thread panicked");
                (sink, written.and(received))
            }
            Body::Trailed(_) => (sink, Err(BodyError::SendOnly)),
        }
    }

    /// The body as a stream of chunks, for sending over HTTP. A file is read on
    /// a blocking thread a few chunks ahead of the socket, and its digest is
    /// checked at the end: a changed file fails the request instead of
    /// completing it with the wrong bytes.
    ///
    /// Reading starts when the stream is first polled, not when it is made:
    /// requests prepared ahead of sending (a batch of multipart parts waiting
    /// for a slot) hold no buffers and no thread until they go out.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
        let mut body = Some(self);
        let mut chunks: Option<mpsc::Receiver<Result<Bytes, BodyError>>> = None;
        futures::stream::poll_fn(move |cx| {
            let rx = chunks.get_or_insert_with(|| body.take().expect("started once").start_reading());
            rx.poll_recv(cx)
        })
    }

    /// Starts the reader behind [`Body::into_stream`].
    fn start_reading(self) -> mpsc::Receiver<Result<Bytes, BodyError>> {
        let (tx, rx) = mpsc::channel::<Result<Bytes, BodyError>>(CHUNKS_IN_FLIGHT);
        match self {
            Body::Bytes(bytes) => {
                let _ = tx.try_send(Ok(bytes));
            }
            Body::File(range) => send_from_blocking(tx, move |send| {
                range.for_each_chunk(false, |chunk| send(Bytes::copy_from_slice(chunk))).map(drop)
            }),
            Body::Trailed(framed) => send_from_blocking(tx, move |send| {
                if framed.content_len() > 0 {
                    send(framed.prefix())?;
                }
                let sha256 = match &*framed.content {
                    Body::File(range) => {
                        let (_, sha256) = range.for_each_chunk(true, |chunk| send(Bytes::copy_from_slice(chunk)))?;
                        sha256.expect("asked for")
                    }
                    Body::Bytes(bytes) => {
                        if !bytes.is_empty() {
                            send(bytes.clone())?;
                        }
                        digest_of(bytes)
                    }
                    Body::Response(_) | Body::Trailed(_) => unreachable!("checked by Trailed::new"),
                };
                send(framed.suffix(&sha256))
            }),
            Body::Response(slot) => {
                tokio::spawn(async move {
                    let Some(mut response) = slot else {
                        let _ = tx.send(Err(BodyError::Consumed)).await;
                        return;
                    };
                    loop {
                        let item = match response.chunk().await {
                            Ok(Some(chunk)) => Ok(chunk),
                            Ok(None) => break,
                            Err(e) => Err(e.into()),
                        };
                        let failed = item.is_err();
                        if tx.send(item).await.is_err() || failed {
                            break;
                        }
                    }
                });
            }
        }
        rx
    }
}

/// Runs `produce` on a blocking thread, handing it a way to send chunks
/// down `tx`; its error, if any, goes down `tx` after them.
fn send_from_blocking(
    tx: mpsc::Sender<Result<Bytes, BodyError>>,
    produce: impl FnOnce(&dyn Fn(Bytes) -> Result<(), BodyError>) -> Result<(), BodyError> + Send + 'static,
) {
    tokio::task::spawn_blocking(move || {
        let send = |bytes: Bytes| tx.blocking_send(Ok(bytes)).map_err(|_| BodyError::Consumed);
        if let Err(e) = produce(&send) {
            let _ = tx.blocking_send(Err(e));
        }
    });
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt as _;

    use super::*;

    async fn sent(body: Body) -> Vec<u8> {
        let chunks: Vec<Bytes> = body.into_stream().try_collect().await.unwrap();
        chunks.concat()
    }

    fn framed(content: &[u8]) -> Vec<u8> {
        use base64::Engine as _;
        let digest = base64::engine::general_purpose::STANDARD.encode(digest_of(content));
        let chunk = match content.len() {
            0 => Vec::new(),
            len => [format!("{len:x}\r\n").as_bytes(), content, b"\r\n"].concat(),
        };
        [chunk, format!("0\r\nx-amz-checksum-sha256:{digest}\r\n\r\n").into_bytes()].concat()
    }

    /// A file slice and a buffer, empty or not, go out as one `aws-chunked`
    /// chunk and a trailer with their SHA-256, as long as `size` says.
    #[tokio::test]
    async fn a_trailed_body_is_one_chunk_then_its_digest() {
        let content: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&content).unwrap();
        let whole = Body::File(FileRange::whole(file, "content").unwrap());
        let cases = [
            (whole.slice(1000, 600_000).unwrap(), &content[1000..601_000]),
            (whole.slice(5, 0).unwrap(), &content[..0]),
            (Body::Bytes(Bytes::from_static(b"hello")), &b"hello"[..]),
        ];
        for (body, bytes) in cases {
            let trailed = Body::Trailed(Trailed::new(&body, "x-amz-checksum-sha256").unwrap());
            let size = trailed.size();
            let out = sent(trailed).await;
            assert_eq!(out, framed(bytes));
            assert_eq!(size, Some(out.len() as u64));
        }
        assert!(matches!(Trailed::new(&whole, "bad name:"), Err(BodyError::BadTrailerName(_))));
        assert!(matches!(Trailed::new(&Body::Response(None), "x"), Err(BodyError::NotFramable)));
    }

    /// A file copied into a sink, fresh or appended to, is checked against
    /// the digest it was hashed to: a file that no longer reads so fails.
    #[tokio::test]
    async fn a_copied_file_is_checked_against_its_digest() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"hello, world").unwrap();
        let range = FileRange::whole(file, "source").unwrap();
        for (before, expected, accepted) in [
            (&b""[..], digest_of(b"hello, world"), true),
            (&b""[..], digest_of(b"hello, there"), false),
            (&b"greeting: "[..], digest_of(b"hello, world"), true),
            (&b"greeting: "[..], digest_of(b"hello, there"), false),
        ] {
            let mut sink = Sink::new(tempfile::tempfile().unwrap(), "copy".into());
            sink.write(before).unwrap();
            let body = Body::File(FileRange { expected: Some(expected), ..range.clone() });
            let (sink, result) = body.append_to(sink, None).await;
            match result {
                Ok(()) => assert!(accepted, "{before:?} + a file taken for another"),
                Err(BodyError::Changed { label, .. }) => assert!(!accepted && label == "source", "{before:?}"),
                Err(e) => panic!("{e}"),
            }
            assert_eq!(sink.copied().sha256, digest_of(&[before, b"hello, world"].concat()));
        }
    }
}
