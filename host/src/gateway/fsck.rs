//! `wharf fsck`: compares the catalog with what the providers hold and with
//! the spool, and (asked to repair) puts right what it can, saying what it did.
//!
//! - A record whose object is gone is marked gone (downloads then go to
//!   another copy), and re-fetched from another copy where one exists.
//! - An object under Wharf's naming (content-addressed: its key ends in its
//!   SHA-256) that no record names is what an upload killed between storing
//!   and recording leaves: it is removed, unless an upload of it is under way.
//! - With `verify`, each copy is read and hashed; one that fails twice is
//!   marked corrupt, and re-fetched from another copy where one exists.
//! - Spool files of uploads that died with their process are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{Gateway, GatewayError};
use crate::body::{Body, FileRange, parse_hex, to_hex};
use crate::catalog::{ClaimOutcome, CopyState, ObjectQuery, ObjectRecord};
use crate::runtime::{Adapter, DownloadSupport, ErrorKind};

/// How long fsck holds an upload claim while it removes an unrecorded object.
const ORPHAN_CLAIM_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
pub struct FsckOptions {
    /// Put right what is found, instead of only reporting it.
    pub repair: bool,
    /// Read every copy and check it against its SHA-256.
    pub verify: bool,
    /// Only this provider (and not the spool).
    pub provider: Option<String>,
}

/// One thing found out of order.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Finding {
    /// `record-without-object`, `object-without-record`, `corrupt-copy` or `stale-spool`.
    pub kind: &'static str,
    pub provider: Option<String>,
    /// The records concerned (`wf_…`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<String>,
    /// The remote object, or the spool file.
    pub object: String,
    pub detail: String,
    /// What the repair did, when one was asked for.
    pub repair: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct FsckReport {
    pub repair: bool,
    /// Remote objects checked against their records.
    pub objects_checked: usize,
    /// Providers that could be checked only in part, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partial: Vec<String>,
    pub findings: Vec<Finding>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let verb = if self.repair { "found and repaired" } else { "found" };
        format!("checked {} object(s); {verb} {} problem(s)", self.objects_checked, self.findings.len())
    }
}

/// Whether a remote id follows Wharf's own naming: its last part is the
/// content's SHA-256 (`prefix + sha256` at S3 and Supabase, the digest itself
/// at the local provider). Objects named otherwise are not Wharf's to remove.
fn wharf_named(remote_id: &str) -> Option<String> {
    let last = remote_id.rsplit('/').next()?;
    (last.len() == 64 && last.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| last.to_string())
}

/// Whether any record of a remote object says the object is there.
fn any_present(records: &[ObjectRecord]) -> bool {
    records.iter().any(|r| r.state == CopyState::Present)
}

impl Gateway {
    /// Checks the catalog against the providers and the spool.
    pub async fn fsck(&self, options: &FsckOptions) -> Result<FsckReport, GatewayError> {
        let mut report = FsckReport { repair: options.repair, ..FsckReport::default() };
        let providers: Vec<String> = match &options.provider {
            Some(name) => vec![self.adapter(Some(name))?.name().to_string()],
            None => self.adapters.load().keys().cloned().collect(),
        };
        for provider in providers {
            self.fsck_provider(&provider, options, &mut report).await?;
        }
        if options.provider.is_none() {
            let (files, _) = super::retention::remove_old_files(
                &self.spool_dir,
                super::retention::SPOOL_MAX_AGE,
                !options.repair,
                super::retention::is_spool_file,
            );
            for file in files {
                report.findings.push(Finding {
                    kind: "stale-spool",
                    provider: None,
                    records: Vec::new(),
                    object: file.display().to_string(),
                    detail: "spool file of an upload that died with its process".into(),
                    repair: options.repair.then(|| "removed".into()),
                });
            }
        }
        Ok(report)
    }

    async fn fsck_provider(
        &self,
        provider: &str,
        options: &FsckOptions,
        report: &mut FsckReport,
    ) -> Result<(), GatewayError> {
        let adapter = self.adapter(Some(provider))?;
        let query = ObjectQuery { provider: Some(provider.to_string()), ..ObjectQuery::default() };
        // One remote object may be named by several principals' records.
        let mut objects: BTreeMap<String, Vec<ObjectRecord>> = BTreeMap::new();
        for record in self.catalog.objects(&query).await?.files {
            objects.entry(record.remote_id.clone()).or_default().push(record);
        }
        let caps = adapter.capabilities();
        let mut missing = BTreeSet::new();
        if caps.list {
            let mut remote = BTreeSet::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = adapter.list(cursor.as_deref(), 1000).await?;
                remote.extend(page.items.into_iter().map(|item| item.remote_id));
                match page.next_cursor {
                    Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                    _ => break,
                }
            }
            report.objects_checked += remote.len();
            missing.extend(
                objects.iter().filter(|(id, r)| any_present(r) && !remote.contains(*id)).map(|(id, _)| id.clone()),
            );
            for orphan in remote.iter().filter(|id| !objects.contains_key(*id)) {
                if let Some(sha256) = wharf_named(orphan) {
                    let finding = self.orphan(&adapter, orphan, &sha256, options.repair).await;
                    report.findings.push(finding);
                }
            }
        } else if caps.stat {
            for (remote_id, records) in objects.iter().filter(|(_, r)| any_present(r)) {
                report.objects_checked += 1;
                match adapter.stat(&records[0].target()).await {
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), Some(ErrorKind::NotFound | ErrorKind::Gone)) => {
                        missing.insert(remote_id.clone());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        } else {
            report.partial.push(format!("{provider}: its adapter can neither list nor stat objects"));
        }
        for remote_id in &missing {
            let detail = format!("{provider} no longer holds it");
            let finding = self.bad_copy(&adapter, &objects[remote_id], CopyState::Gone, detail, options.repair).await?;
            report.findings.push(finding);
        }
        if options.verify && caps.download == DownloadSupport::Original {
            for (_, records) in objects.iter().filter(|(id, r)| any_present(r) && !missing.contains(*id)) {
                let record = &records[0];
                if !record.verified {
                    continue;
                }
                // One mismatch may be damage in transit: a copy is corrupt
                // only when a second read fails too.
                let mut detail = None;
                for _ in 0..2 {
                    match self.hash_copy(&adapter, record).await {
                        Ok(actual) if actual == record.sha256 => {
                            detail = None;
                            break;
                        }
                        Ok(actual) => detail = Some(format!("its SHA-256 is {actual}, recorded {}", record.sha256)),
                        Err(e) => return Err(e),
                    }
                }
                let Some(detail) = detail else { continue };
                let finding = self.bad_copy(&adapter, records, CopyState::Corrupt, detail, options.repair).await?;
                report.findings.push(finding);
            }
        }
        Ok(())
    }

    /// A copy lost (`Gone`) or damaged (`Corrupt`): reported, and mended
    /// when repairing.
    async fn bad_copy(
        &self,
        adapter: &Adapter,
        records: &[ObjectRecord],
        state: CopyState,
        detail: String,
        repair: bool,
    ) -> Result<Finding, GatewayError> {
        let repair = match repair {
            true => Some(self.mend(adapter, records, state).await?),
            false => None,
        };
        Ok(Finding {
            kind: if state == CopyState::Gone { "record-without-object" } else { "corrupt-copy" },
            provider: Some(adapter.name().to_string()),
            records: records.iter().map(|r| r.id.clone()).collect(),
            object: records[0].remote_id.clone(),
            detail,
            repair,
        })
    }

    /// An object no record names; removed when repairing, unless an upload
    /// of the same bytes is under way (its record is about to appear).
    async fn orphan(&self, adapter: &Adapter, remote_id: &str, sha256: &str, repair: bool) -> Finding {
        let mut finding = Finding {
            kind: "object-without-record",
            provider: Some(adapter.name().to_string()),
            records: Vec::new(),
            object: remote_id.to_string(),
            detail: "no record names it (an upload that stopped before recording it)".into(),
            repair: None,
        };
        if !repair {
            return finding;
        }
        // The claim an upload of these bytes (without a purpose) would hold.
        let claim = format!("upload {} {sha256} ", adapter.name());
        let holder = format!("{}/fsck", self.host_id);
        finding.repair = Some(match self.catalog.claim(&claim, &holder, ORPHAN_CLAIM_TTL).await {
            Ok(ClaimOutcome::Granted) => {
                let recorded = self
                    .catalog
                    .copies(sha256)
                    .await
                    .map(|copies| copies.iter().any(|c| c.provider == adapter.name() && c.remote_id == remote_id));
                let outcome = match recorded {
                    Ok(true) => "left: its record appeared meanwhile".to_string(),
                    Ok(false) => match adapter
                        .delete(&crate::runtime::ObjectRef { remote_id: remote_id.to_string(), purpose: None })
                        .await
                    {
                        Ok(()) => "removed".to_string(),
                        Err(e) => format!("could not remove it: {e}"),
                    },
                    Err(e) => format!("left: {e}"),
                };
                let _ = self.catalog.release(&claim, &holder).await;
                outcome
            }
            Ok(ClaimOutcome::HeldBy(other)) => format!("left: {other} is uploading these bytes"),
            Err(e) => format!("left: {e}"),
        });
        finding
    }

    /// Reads a copy whole and returns its SHA-256.
    async fn hash_copy(&self, adapter: &Adapter, record: &ObjectRecord) -> Result<String, GatewayError> {
        let (body, _, _) = adapter.download(&record.target(), false, None).await?;
        let mut stream = body.into_stream();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(GatewayError::Read)?);
        }
        Ok(to_hex(&hasher.finalize().into()))
    }

    /// Marks the records of a lost or damaged copy, then stores the bytes
    /// again from another copy where one exists. Says what it did.
    async fn mend(
        &self,
        adapter: &Adapter,
        records: &[ObjectRecord],
        state: CopyState,
    ) -> Result<String, GatewayError> {
        for record in records {
            self.catalog.set_state(&record.id, state).await?;
        }
        let marked = match state {
            CopyState::Gone => "marked gone",
            _ => "marked corrupt",
        };
        let record = &records[0];
        let Some(source) = self.other_copy(record).await? else {
            return Ok(format!("{marked}; no other copy to re-fetch from"));
        };
        let spooled = match self.fetch_into_spool(&source).await {
            Ok(range) => range,
            Err(e) => return Ok(format!("{marked}; re-fetching from {} failed: {e}", source.provider)),
        };
        let info = adapter.upload(Body::File(spooled), &record.name, &record.mime, &record.sha256, None).await;
        match info.map(|stored| stored.info) {
            Ok(info) if info.remote_id == record.remote_id => {
                for record in records {
                    self.catalog.set_state(&record.id, CopyState::Present).await?;
                }
                Ok(format!("re-fetched from {} and stored again", source.provider))
            }
            Ok(info) => {
                // Stored under another id than the records name: not a repair.
                let _ = adapter.delete(&crate::runtime::ObjectRef { remote_id: info.remote_id, purpose: None }).await;
                Ok(format!("{marked}; {} stores new copies under new ids", adapter.name()))
            }
            Err(e) => Ok(format!("{marked}; storing it again failed: {e}")),
        }
    }

    /// A present copy of `copy`'s bytes elsewhere that returns originals.
    async fn other_copy(&self, copy: &ObjectRecord) -> Result<Option<ObjectRecord>, GatewayError> {
        let copies = self.catalog.copies(&copy.sha256).await?;
        Ok(copies.into_iter().find(|c| {
            (c.provider != copy.provider || c.remote_id != copy.remote_id) && self.serves(c, DownloadSupport::Original)
        }))
    }

    /// Fetches a copy into an unlinked spool file, checked against its SHA-256.
    async fn fetch_into_spool(&self, copy: &ObjectRecord) -> Result<FileRange, GatewayError> {
        let adapter = self.adapter(Some(&copy.provider))?;
        let (body, _, _) = adapter.download(&copy.target(), false, None).await?;
        let path = self.spool_dir.join(format!("upload-{}", hex::encode(super::os_random::<8>())));
        let input = |source| GatewayError::Input { what: path.display().to_string(), source };
        let file = std::fs::File::options().read(true).write(true).create_new(true).open(&path).map_err(input)?;
        let _ = std::fs::remove_file(&path);
        let sink = crate::body::Sink::new(file.try_clone().map_err(input)?, path.display().to_string());
        let (sink, result) = body.append_to(sink, None).await;
        result.map_err(GatewayError::Read)?;
        let copied = sink.copied();
        if Some(copied.sha256) != parse_hex(&copy.sha256) {
            return Err(GatewayError::Read(crate::body::BodyError::Changed {
                label: format!("{} at {}", copy.id, copy.provider),
                expected: copy.sha256.clone(),
                actual: to_hex(&copied.sha256),
            }));
        }
        let mut range = FileRange::whole(file, format!("{} from {}", copy.id, copy.provider)).map_err(input)?;
        range.expected = Some(copied.sha256);
        Ok(range)
    }
}
