//! Large files from providers over the network, read as several ranged reads
//! at once (`[host.downloads]`).
//!
//! One TCP stream rarely fills what the machine allows: the server, the
//! loopback or the network and the hashing take turns. With a few ranges in
//! flight, one arrives while another is hashed and written. The ranges are
//! written in order, so the file's SHA-256 is computed once as it is
//! written, and at most `streams` ranges are held in memory: a read ahead
//! of the writer waits for it.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio_util::task::AbortOnDropHandle;

use super::CopyFailure;
use crate::body::{Body, BodyError, Progress};
use crate::catalog::ObjectRecord;
use crate::gateway::Caller;
use crate::runtime::{Adapter, ByteRange};
use crate::sandbox::PartialFile;

/// The size of each ranged read: large enough that a request's cost is
/// noise, small enough that `streams` of them stay well under the memory
/// a transfer may use.
const RANGE_BYTES: u64 = 8 << 20;

/// Why reading in ranges stopped.
pub(super) enum RangeFailure {
    /// The copy could not be opened (or reopened) for a range.
    Open(CopyFailure),
    /// A range's bytes could not be read, or written.
    Body(BodyError),
}

impl Caller {
    /// How many ranged reads to read `copy` with at once, when more than one.
    pub(super) fn parallel_streams(&self, adapter: &Adapter, copy: &ObjectRecord) -> Option<usize> {
        let downloads = self.config.downloads;
        let remote = !adapter.allowed_hosts().is_empty();
        let worth_it = downloads.streams > 1 && copy.size >= downloads.parallel_from.max(2 * RANGE_BYTES);
        (remote && worth_it && adapter.capabilities().ranged_download).then_some(downloads.streams)
    }

    /// Reads `copy` from where `partial` ends to the copy's end as ranged
    /// reads, `streams` at once, appending them in order.
    pub(super) async fn fetch_in_ranges(
        &self,
        copy: &ObjectRecord,
        partial: &mut PartialFile,
        progress: &Option<std::sync::Arc<Progress>>,
        streams: usize,
    ) -> Result<(), RangeFailure> {
        let size = copy.size;
        let ranges = (partial.written()..size).step_by(RANGE_BYTES as usize).map(|offset| ByteRange {
            offset,
            length: Some(RANGE_BYTES.min(size - offset)),
        });
        let mut arriving = futures::stream::iter(ranges)
            .map(|range| {
                let (caller, copy) = (self.clone(), copy.clone());
                // A task of its own, so that reads go on while a range is written;
                // aborted if the download ends early.
                AbortOnDropHandle::new(tokio::spawn(async move { caller.fetch_range(&copy, range).await }))
            })
            .buffered(streams);
        while let Some(joined) = arriving.next().await {
            let bytes = joined.expect("range reads do not panic")?;
            partial.append(Body::Bytes(bytes), progress.clone()).await.map_err(RangeFailure::Body)?;
        }
        Ok(())
    }

    /// One range whole: a read cut on the wire carries on from where it
    /// stopped, under the provider's retry policy.
    async fn fetch_range(&self, copy: &ObjectRecord, range: ByteRange) -> Result<Bytes, RangeFailure> {
        let length = range.length.expect("ranges here have a length");
        let mut buffer = BytesMut::with_capacity(length as usize);
        let mut cuts = 0;
        loop {
            let have = buffer.len() as u64;
            let rest = ByteRange { offset: range.offset + have, length: Some(length - have) };
            let body = self.open_copy(copy, Some(rest)).await.map_err(RangeFailure::Open)?;
            let mut chunks = body.into_stream();
            let mut cut = None;
            while let Some(chunk) = chunks.next().await {
                match chunk {
                    Ok(chunk) => buffer.extend_from_slice(&chunk),
                    Err(e @ BodyError::Http(_)) => {
                        cut = Some(e);
                        break;
                    }
                    Err(e) => return Err(RangeFailure::Body(e)),
                }
            }
            let Some(cut) = cut else {
                if buffer.len() as u64 != length {
                    return Err(RangeFailure::Body(BodyError::Truncated {
                        label: format!("bytes {}-{} of {} at {}", range.offset, range.offset + length, copy.id, copy.provider),
                        read: buffer.len() as u64,
                        len: length,
                    }));
                }
                return Ok(buffer.freeze());
            };
            cuts += 1;
            let adapter = self.adapter(Some(&copy.provider)).map_err(|e| RangeFailure::Open(CopyFailure::Destination(e)))?;
            if !adapter.pause_before_retry(cuts).await {
                return Err(RangeFailure::Body(cut));
            }
            tracing::warn!("{} from {}: {cut}; resuming at byte {}", copy.id, copy.provider, range.offset + buffer.len() as u64);
        }
    }
}
