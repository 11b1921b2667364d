//! Large files from providers over the network, read as several ranged reads
//! at once (`[host.downloads]`).
//!
//! One TCP stream rarely fills what the machine allows: the server, the
//! loopback or the network and the hashing take turns. With a few ranges in
//! flight, one arrives while another is hashed and written. The ranges are
//! written in order, so the file's SHA-256 is computed once as it is
//! Each range is written at its offset as it arrives; the file takes the
//! ranges in order, hashing each once it and all before it are there (read
//! back from the page cache), so the SHA-256 is computed once, over the
//! file as written. At most `streams` ranges are in flight: a read that
//! would run further ahead of the hashing waits for it.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use futures::StreamExt;
use tokio_util::task::AbortOnDropHandle;

use super::CopyFailure;
use crate::body::{BodyError, Progress};
use crate::catalog::ObjectRecord;
use crate::gateway::Caller;
use crate::runtime::{Adapter, ByteRange};
use crate::sandbox::PartialFile;

/// The size of each ranged read: large enough that a request's cost is
/// noise, small enough that `streams` of them keep the hashing close behind.
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
    /// reads, `streams` at once, each written at its offset; the file takes
    /// them in (hashes them) in order as they complete.
    pub(super) async fn fetch_in_ranges(
        &self,
        copy: &ObjectRecord,
        partial: &mut PartialFile,
        progress: &Option<Arc<Progress>>,
        streams: usize,
    ) -> Result<(), RangeFailure> {
        let size = copy.size;
        let file = Arc::new(partial.file_for_ranges().map_err(|source| {
            RangeFailure::Body(BodyError::Write { label: format!("{} (a second handle)", copy.name), source })
        })?);
        let ranges = (partial.written()..size)
            .step_by(RANGE_BYTES as usize)
            .map(|offset| ByteRange { offset, length: Some(RANGE_BYTES.min(size - offset)) });
        let mut arriving = futures::stream::iter(ranges)
            .map(|range| {
                let (caller, copy, file, progress) = (self.clone(), copy.clone(), file.clone(), progress.clone());
                // A task of its own, so that reads go on while earlier ranges
                // are hashed; aborted if the download ends early.
                AbortOnDropHandle::new(tokio::spawn(async move {
                    caller.fetch_range(&copy, range, &file, progress.as_deref()).await.map(|()| range)
                }))
            })
            .buffered(streams);
        while let Some(joined) = arriving.next().await {
            let range = joined.expect("range reads do not panic")?;
            partial.absorb(range.length.expect("ranges here have a length")).await.map_err(RangeFailure::Body)?;
        }
        Ok(())
    }

    /// One range, written into `file` at its offset: a read cut on the wire
    /// carries on from where it stopped, under the provider's retry policy.
    async fn fetch_range(
        &self,
        copy: &ObjectRecord,
        range: ByteRange,
        file: &File,
        progress: Option<&Progress>,
    ) -> Result<(), RangeFailure> {
        let length = range.length.expect("ranges here have a length");
        let label = || format!("bytes {}-{} of {} at {}", range.offset, range.offset + length, copy.id, copy.provider);
        let mut have = 0;
        let mut cuts = 0;
        loop {
            let rest = ByteRange { offset: range.offset + have, length: Some(length - have) };
            let body = self.open_copy(copy, Some(rest)).await.map_err(RangeFailure::Open)?;
            let mut chunks = body.into_stream();
            let mut cut = None;
            while let Some(chunk) = chunks.next().await {
                match chunk {
                    Ok(chunk) if have + chunk.len() as u64 > length => {
                        let read = have + chunk.len() as u64;
                        return Err(RangeFailure::Body(BodyError::Truncated { label: label(), read, len: length }));
                    }
                    Ok(chunk) => {
                        // Page-cache writes of a chunk: short enough to make on this thread.
                        file.write_all_at(&chunk, range.offset + have)
                            .map_err(|source| RangeFailure::Body(BodyError::Write { label: label(), source }))?;
                        have += chunk.len() as u64;
                        if let Some(progress) = progress {
                            progress.add(chunk.len() as u64);
                        }
                    }
                    Err(e @ BodyError::Http(_)) => {
                        cut = Some(e);
                        break;
                    }
                    Err(e) => return Err(RangeFailure::Body(e)),
                }
            }
            let Some(cut) = cut else {
                if have != length {
                    return Err(RangeFailure::Body(BodyError::Truncated { label: label(), read: have, len: length }));
                }
                return Ok(());
            };
            cuts += 1;
            let adapter =
                self.adapter(Some(&copy.provider)).map_err(|e| RangeFailure::Open(CopyFailure::Destination(e)))?;
            if !adapter.pause_before_retry(cuts).await {
                return Err(RangeFailure::Body(cut));
            }
            tracing::warn!("{} from {}: {cut}; resuming at byte {}", copy.id, copy.provider, range.offset + have);
        }
    }
}
