//! Retention: what `wharf gc` removes, and `wharf serve` on its clean-up
//! timer (on one host at a time, under the clean-up lease): expired links,
//! old download history, spool leftovers, records of copies gone for long,
//! old files in the downloads directory, and cache copies beyond the
//! cache's size, least recently downloaded first.
//!
//! The cache never loses the last original bytes of anything: a cache copy
//! is evicted only while another present copy, at a provider that returns
//! originals, holds the same bytes. Kimi's and GLM's backups therefore stay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{CLEANUP_LEASE, Gateway, GatewayError, now};
use crate::catalog::{ClaimOutcome, CopyState, ObjectRecord};
use crate::runtime::{DownloadSupport, ErrorKind};

/// A spool file older than this belongs to an upload that died with its
/// process (spool files are unlinked as soon as they are open).
pub(super) const SPOOL_MAX_AGE: Duration = Duration::from_secs(3600);
const DAY_SECS: i64 = 86_400;

/// What a collection removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct GcReport {
    pub dry_run: bool,
    /// Expired download links deleted (not counted in a dry run).
    pub expired_links: u64,
    /// Download history and statistics rows older than `history_days`
    /// (not counted in a dry run).
    pub history_rows: u64,
    pub spool_files: u64,
    /// Records forgotten after their copy was gone for `gone_days`.
    pub gone_records: Vec<String>,
    /// Files removed from `downloads_dir`.
    pub old_downloads: Vec<PathBuf>,
    /// Cache copies evicted to bring the cache under `cache_max_bytes`.
    pub evicted: Vec<Evicted>,
    pub bytes_freed: u64,
}

impl GcReport {
    pub fn removed_anything(&self) -> bool {
        self.expired_links + self.history_rows + self.spool_files > 0
            || !self.gone_records.is_empty()
            || !self.old_downloads.is_empty()
            || !self.evicted.is_empty()
    }

    /// One line for people: what went (or would go), and the bytes freed.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run { "would remove" } else { "removed" };
        format!(
            "{verb} {} expired link(s), {} history row(s), {} spool leftover(s), {} record(s) of gone copies, {} old download(s), {} cache cop(ies); {} bytes freed",
            self.expired_links,
            self.history_rows,
            self.spool_files,
            self.gone_records.len(),
            self.old_downloads.len(),
            self.evicted.len(),
            self.bytes_freed
        )
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Evicted {
    pub remote_id: String,
    pub name: String,
    pub size: u64,
    /// Where the bytes can still be fetched from.
    pub kept_at: String,
}

impl Gateway {
    /// Runs every retention rule once; in a dry run, only reports.
    pub async fn gc(&self, dry_run: bool) -> Result<GcReport, GatewayError> {
        let retention = &self.config.retention;
        let mut report = GcReport { dry_run, ..GcReport::default() };
        if !dry_run {
            report.expired_links = self.catalog.delete_expired_links(now()).await?;
            metrics::counter!("wharf_link_expiries_total").increment(report.expired_links);
            if let Some(days) = retention.history_days {
                report.history_rows = self.catalog.delete_history(now() - days as i64 * DAY_SECS).await?;
            }
        }
        let (files, bytes) = remove_old_files(&self.spool_dir, SPOOL_MAX_AGE, dry_run, is_spool_file);
        report.spool_files = files.len() as u64;
        report.bytes_freed += bytes;
        if let Some(days) = retention.gone_days {
            for record in self.catalog.stale_copies(CopyState::Gone, now() - days as i64 * DAY_SECS).await? {
                if !dry_run {
                    self.catalog.remove(&record.id).await?;
                }
                report.gone_records.push(record.id);
            }
        }
        if let (Some(dir), Some(max_age)) = (&retention.downloads_dir, retention.downloads_max_age) {
            let (files, bytes) = remove_old_files(dir, max_age, dry_run, |_| true);
            report.old_downloads = files;
            report.bytes_freed += bytes;
        }
        if let Some(max_bytes) = retention.cache_max_bytes {
            report.evicted = self.evict_cache(max_bytes, dry_run).await?;
            report.bytes_freed += report.evicted.iter().map(|e| e.size).sum::<u64>();
        }
        Ok(report)
    }

    /// Evicts the cache provider's least recently downloaded copies until
    /// what it holds fits `max_bytes`, skipping any copy that holds the last
    /// original bytes of its content.
    async fn evict_cache(&self, max_bytes: u64, dry_run: bool) -> Result<Vec<Evicted>, GatewayError> {
        let cache = &self.config.cache_provider;
        // Several principals' records may name one remote object: it is one
        // copy, held or evicted as a whole.
        let mut objects: Vec<(String, Vec<ObjectRecord>)> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for record in self.catalog.copies_by_last_use(cache).await? {
            match index.get(&record.remote_id) {
                Some(&i) => objects[i].1.push(record),
                None => {
                    index.insert(record.remote_id.clone(), objects.len());
                    objects.push((record.remote_id.clone(), vec![record]));
                }
            }
        }
        let mut held: u64 = objects.iter().map(|(_, records)| records[0].size).sum();
        let mut evicted = Vec::new();
        for (remote_id, records) in objects {
            if held <= max_bytes {
                break;
            }
            let first = &records[0];
            let Some(kept_at) = self.other_original(first).await? else { continue };
            if !dry_run {
                let adapter = self.adapter(Some(cache))?;
                match adapter.delete(&first.target()).await {
                    Ok(()) => {}
                    Err(e) if matches!(e.kind(), Some(ErrorKind::NotFound | ErrorKind::Gone)) => {}
                    Err(e) => return Err(e.into()),
                }
                // The records stay, marked gone: their ids still resolve, and
                // downloads go to the copy that was kept.
                for record in &records {
                    self.catalog.set_state(&record.id, CopyState::Gone).await?;
                }
            }
            held -= first.size;
            evicted.push(Evicted { remote_id, name: first.name.clone(), size: first.size, kept_at });
        }
        Ok(evicted)
    }

    /// A present copy of the same bytes, other than `copy`, at a provider
    /// that returns originals: where they stay fetchable after eviction.
    async fn other_original(&self, copy: &ObjectRecord) -> Result<Option<String>, GatewayError> {
        if !copy.verified {
            return Ok(None);
        }
        let copies = self.catalog.copies(&copy.sha256).await?;
        Ok(copies
            .iter()
            .find(|c| {
                (c.provider != copy.provider || c.remote_id != copy.remote_id)
                    && self.serves(c, DownloadSupport::Original)
            })
            .map(|c| c.provider.clone()))
    }

    /// Runs [`Gateway::gc`] when this host holds the clean-up lease: its
    /// report, or `None` when it is another host's turn.
    ///
    /// The lease outlasts the clean-up interval by half, so its holder keeps
    /// it from one round to the next; when the holder dies, another host
    /// takes it over within two intervals.
    pub async fn clean_up(&self) -> Result<Option<GcReport>, GatewayError> {
        let interval = self.config.server.cleanup_interval;
        let lease = self.catalog.claim(CLEANUP_LEASE, &self.host_id, interval + interval / 2).await?;
        if let ClaimOutcome::HeldBy(holder) = lease {
            tracing::debug!("clean-up is {holder}'s this round");
            return Ok(None);
        }
        self.gc(false).await.map(Some)
    }
}

/// Whether a file in the spool directory is an upload's spool file.
pub(super) fn is_spool_file(name: &str) -> bool {
    name.starts_with("upload-")
}

/// Regular files directly in `dir` older than `max_age` (by modification
/// time) whose name `select` accepts: removed unless `dry_run`. Returns the
/// files and their bytes. A directory that cannot be read has nothing to
/// remove; symbolic links are never followed.
pub(super) fn remove_old_files(
    dir: &Path,
    max_age: Duration,
    dry_run: bool,
    select: impl Fn(&str) -> bool,
) -> (Vec<PathBuf>, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return (Vec::new(), 0) };
    let cutoff = SystemTime::now() - max_age;
    let (mut removed, mut bytes) = (Vec::new(), 0);
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta.modified().is_ok_and(|m| m < cutoff);
        let name = entry.file_name().to_string_lossy().into_owned();
        if !meta.is_file() || !old || !select(&name) {
            continue;
        }
        if !dry_run && let Err(e) = std::fs::remove_file(entry.path()) {
            tracing::warn!("could not remove {}: {e}", entry.path().display());
            continue;
        }
        bytes += meta.len();
        removed.push(entry.path());
    }
    (removed, bytes)
}
