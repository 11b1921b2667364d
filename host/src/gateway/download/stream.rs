//! Content streamed to an HTTP client: verified as it goes, resumed when the
//! wire cuts it, fetched once more when its bytes fail their SHA-256.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::ContentStream;

/// How much of a verified stream is held back until the whole is checked.
const HOLD_BACK: u64 = 1 << 20;
use crate::body::{Body, BodyError, Digest, to_hex};
use crate::catalog::ObjectRecord;
use crate::gateway::Caller;
use crate::runtime::ByteRange;

/// The copy a stream reads, to read it again: the rest after a cut on the
/// wire (a ranged read from the first byte not yet received), or all of it
/// after a SHA-256 mismatch; under the copy's retry policy.
pub(super) struct CopySource {
    pub caller: Caller,
    pub copy: ObjectRecord,
    /// Where the body starts and ends (exclusive) within the object.
    pub span: (u64, u64),
}

impl CopySource {
    /// The body from `received` bytes past its start, once the retry policy
    /// allows retry number `retry`; `None` when it does not, or the copy
    /// cannot serve it.
    async fn reopen(&self, retry: u32, received: u64) -> Option<Body> {
        let adapter = self.caller.adapter(Some(&self.copy.provider)).ok()?;
        if !adapter.pause_before_retry(retry).await {
            return None;
        }
        let offset = self.span.0 + received;
        tracing::warn!("{} from {}: reading again from byte {offset}", self.copy.id, self.copy.provider);
        let range = ByteRange { offset, length: Some(self.span.1 - offset) };
        self.caller.open_copy(&self.copy, Some(range)).await.ok()
    }
}

/// Streams `[start, end)` of `body`, checking the whole body against `expected`
/// (size and SHA-256) when given; reads the whole body even for a range,
/// since only the whole can be verified. A body cut on the wire continues
/// from `again`, when given.
///
/// The last [`HOLD_BACK`] bytes are held back until the check passes, so a
/// client never receives a complete-looking copy of bad bytes. A mismatch is
/// read once more, whole: when the second read verifies and the bytes the
/// client already has hash the same in it, the stream goes on from there;
/// otherwise it ends with an error. Content up to `HOLD_BACK` therefore
/// reaches the client only verified, and a larger file only if the damage
/// lay in its last `HOLD_BACK` bytes: an HTTP response cannot take back what
/// it sent.
pub(super) fn verified_stream(
    body: Body,
    range: (u64, u64),
    expected: Option<(u64, Digest)>,
    label: String,
    again: Option<CopySource>,
) -> ContentStream {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut sender = Sender { tx, range, sent_through: range.0, sent: Sha256::new(), held: VecDeque::new() };
        let mut body = body.into_stream().boxed();
        let mut retries = 0;
        // The SHA-256 of what the client had when the body was read again.
        let mut had: Option<Digest> = None;
        loop {
            let read = match read_pass(&mut body, &mut sender, expected.is_none(), &again, &mut retries).await {
                Ok(read) => read,
                Err(PassEnd::ClientGone) => return,
                Err(PassEnd::Failed(error)) => return sender.fail(format!("{label}: {error}")).await,
            };
            let Some((size, digest)) = expected else { break };
            if read.position != size || read.digest != digest {
                let mismatch = format!(
                    "{label}: SHA-256 mismatch: expected {} ({size} bytes), received {} ({} bytes)",
                    to_hex(&digest),
                    to_hex(&read.digest),
                    read.position
                );
                let refetch = match (&again, had) {
                    (Some(source), None) => {
                        retries += 1;
                        source.reopen(retries, 0).await
                    }
                    _ => None,
                };
                let Some(whole) = refetch else {
                    return sender.fail(mismatch).await;
                };
                tracing::warn!("{mismatch}; reading it once more");
                sender.held.clear();
                had = Some(sender.sent.clone().finalize().into());
                body = whole.into_stream().boxed();
                continue;
            }
            if had.is_some_and(|had| read.prefix != had) {
                let message = "the bytes already sent differ from those of a second, verified read";
                return sender.fail(format!("{label}: SHA-256 mismatch: {message}")).await;
            }
            break;
        }
        for (piece, _) in sender.held.drain(..) {
            if sender.tx.send(Ok(piece)).await.is_err() {
                return;
            }
        }
    });
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// The client's side of a stream: what it has been sent, and the pieces
/// held back until the whole is verified.
struct Sender {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    range: (u64, u64),
    /// The object position up to which the client has its bytes.
    sent_through: u64,
    /// The SHA-256 of the bytes the client has.
    sent: Sha256,
    /// Pieces read and not yet sent, with where each ends; at most
    /// `HOLD_BACK` bytes after the newest is added.
    held: VecDeque<(Bytes, u64)>,
}

impl Sender {
    /// Takes the part of a chunk at `[chunk_start, chunk_end)` the client has
    /// not been sent, sending what no longer needs holding back. `false`
    /// when the client went away.
    async fn offer(&mut self, chunk: &Bytes, chunk_start: u64) -> bool {
        let chunk_end = chunk_start + chunk.len() as u64;
        let (from, to) = (self.sent_through.max(chunk_start).max(self.range.0), self.range.1.min(chunk_end));
        if from >= to {
            return true;
        }
        self.held.push_back((chunk.slice((from - chunk_start) as usize..(to - chunk_start) as usize), to));
        while let Some((piece, end)) = self.held.front() {
            if to - (*end - piece.len() as u64) <= HOLD_BACK {
                break;
            }
            let (piece, end) = self.held.pop_front().expect("checked above");
            self.sent.update(&piece);
            self.sent_through = end;
            if self.tx.send(Ok(piece)).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn fail(self, message: String) {
        let _ = self.tx.send(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message))).await;
    }
}

/// One read of the body, to its end (or, unverified, the range's end).
struct Read {
    position: u64,
    digest: Digest,
    /// The SHA-256 of the bytes the client had when this read began, as
    /// this read found them.
    prefix: Digest,
}

enum PassEnd {
    ClientGone,
    Failed(String),
}

async fn read_pass(
    body: &mut BoxStream<'static, Result<Bytes, BodyError>>,
    sender: &mut Sender,
    unverified: bool,
    again: &Option<CopySource>,
    retries: &mut u32,
) -> Result<Read, PassEnd> {
    let had = (sender.range.0, sender.sent_through);
    let mut whole = Sha256::new();
    let mut prefix = Sha256::new();
    let mut position = 0u64;
    while let Some(item) = body.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(cut @ BodyError::Http(_)) => {
                *retries += 1;
                let resumed = match again {
                    Some(source) => source.reopen(*retries, position).await,
                    None => None,
                };
                match resumed {
                    Some(rest) => *body = rest.into_stream().boxed(),
                    None => return Err(PassEnd::Failed(cut.to_string())),
                }
                continue;
            }
            Err(e) => return Err(PassEnd::Failed(e.to_string())),
        };
        whole.update(&chunk);
        let chunk_start = position;
        position += chunk.len() as u64;
        let (from, to) = (had.0.max(chunk_start), had.1.min(position));
        if from < to {
            prefix.update(&chunk[(from - chunk_start) as usize..(to - chunk_start) as usize]);
        }
        if !sender.offer(&chunk, chunk_start).await {
            return Err(PassEnd::ClientGone);
        }
        if unverified && position >= sender.range.1 {
            break;
        }
    }
    Ok(Read { position, digest: whole.finalize().into(), prefix: prefix.finalize().into() })
}
