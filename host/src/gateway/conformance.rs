//! `wharf plugins test NAME`: a conformance suite run against a configured
//! provider through its adapter: upload, stat, list, verified download,
//! ranged download, delete, and the classification of missing objects.
//! Steps the adapter declares unsupported are skipped, never failed.

use bytes::Bytes;
use serde::Serialize;

use super::{Gateway, GatewayError, os_random};
use crate::body::{Body, digest_of, to_hex};
use crate::runtime::{Adapter, ByteRange, CallError, ContentKind, DownloadSupport, ErrorKind, ObjectRef};

/// The test object, in lines of CSV: large enough for a range in its
/// middle, and a type every built-in provider accepts (GLM's file-extract
/// takes documents, spreadsheets and images only).
const PAYLOAD_LINES: usize = 4_000;
/// Listing gives up after this many pages without finding the object.
const MAX_LIST_PAGES: usize = 100;
const RANGE: ByteRange = ByteRange { offset: 1_000, length: Some(5_000) };

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConformanceStep {
    pub step: &'static str,
    pub outcome: StepOutcome,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    pub provider: String,
    pub steps: Vec<ConformanceStep>,
    /// No step failed.
    pub passed: bool,
}

impl ConformanceReport {
    fn push(&mut self, step: &'static str, outcome: StepOutcome, detail: impl Into<String>) {
        self.passed &= outcome != StepOutcome::Failed;
        self.steps.push(ConformanceStep { step, outcome, detail: detail.into() });
    }

    fn outcome(&mut self, step: &'static str, result: Result<String, String>) -> bool {
        match result {
            Ok(detail) => self.push(step, StepOutcome::Passed, detail),
            Err(detail) => self.push(step, StepOutcome::Failed, detail),
        }
        self.passed
    }

    fn skip(&mut self, step: &'static str, why: &str) {
        self.push(step, StepOutcome::Skipped, why);
    }
}

impl Gateway {
    /// Runs the conformance suite against provider `name`. It stores one
    /// small object there and deletes it again when the adapter can.
    pub async fn conformance(&self, name: &str) -> Result<ConformanceReport, GatewayError> {
        let adapter = self.adapter(Some(name))?;
        let caps = *adapter.capabilities();
        let mut report = ConformanceReport { provider: name.to_string(), steps: Vec::new(), passed: true };

        let nonce = hex::encode(os_random::<8>());
        let payload: Bytes =
            (0..PAYLOAD_LINES).map(|line| format!("wharf,conformance,{nonce},{line:05}\n")).collect::<String>().into();
        let sha256 = to_hex(&digest_of(&payload));
        let file_name = format!("wharf-conformance-{nonce}.csv");
        let uploaded = adapter
            .upload(Body::Bytes(payload.clone()), &file_name, "text/csv", &sha256, None)
            .await
            .map(|stored| stored.info)
            .map_err(|e| format!("{e}"));
        let info = match uploaded {
            Ok(info) => {
                report.outcome("upload", Ok(format!("{} bytes stored as {}", payload.len(), info.remote_id)));
                info
            }
            Err(e) => {
                report.outcome("upload", Err(e));
                return Ok(report);
            }
        };
        let target = ObjectRef { remote_id: info.remote_id.clone(), purpose: info.purpose.clone() };

        if caps.stat {
            let stat = adapter.stat(&target).await.map_err(|e| e.to_string()).and_then(|stat| match stat.size {
                Some(size) if size != payload.len() as u64 => {
                    Err(format!("stat reports {size} bytes; {} were uploaded", payload.len()))
                }
                _ => Ok(format!("found, size {}", stat.size.map_or("not reported".into(), |s| s.to_string()))),
            });
            report.outcome("stat", stat);
        } else {
            report.skip("stat", "the adapter declares no stat");
        }

        if caps.list {
            let found = list_finds(&adapter, &target.remote_id).await;
            report.outcome("list", found);
        } else {
            report.skip("list", "the adapter declares no list");
        }

        match caps.download {
            DownloadSupport::Original => {
                let whole = download(&adapter, &target, false, None).await.and_then(|(bytes, kind)| {
                    if kind != ContentKind::Original {
                        Err("derived content came back where the original was asked for".to_string())
                    } else if bytes != payload {
                        Err(format!(
                            "wrong bytes: SHA-256 {} ({} bytes), uploaded {sha256} ({} bytes)",
                            to_hex(&digest_of(&bytes)),
                            bytes.len(),
                            payload.len()
                        ))
                    } else {
                        Ok(format!("{} bytes, SHA-256 verified", bytes.len()))
                    }
                });
                report.outcome("download", whole);
            }
            // Some providers serve derived content for some purposes only.
            DownloadSupport::Derived => match adapter.download(&target, true, None).await {
                Err(e) if matches!(e.kind(), Some(ErrorKind::Unsupported)) => report.skip("download", &e.to_string()),
                answer => {
                    let read = read_download(answer).await;
                    report.outcome(
                        "download",
                        read.map(|(bytes, _)| format!("{} bytes of derived content", bytes.len())),
                    );
                }
            },
            DownloadSupport::None => report.skip("download", "the adapter declares no download"),
        }

        if caps.ranged_download && caps.download == DownloadSupport::Original {
            let expected = payload.slice(RANGE.offset as usize..(RANGE.offset + RANGE.length.unwrap_or(0)) as usize);
            let ranged = download(&adapter, &target, false, Some(RANGE)).await.and_then(|(bytes, _)| {
                if bytes == expected {
                    Ok(format!("bytes {}..{} verified", RANGE.offset, RANGE.offset + expected.len() as u64))
                } else {
                    Err(format!(
                        "wrong bytes for range {}+{}: got {} bytes that differ from the uploaded ones",
                        RANGE.offset,
                        expected.len(),
                        bytes.len()
                    ))
                }
            });
            report.outcome("ranged download", ranged);
        } else {
            report.skip("ranged download", "the adapter declares no ranged-download");
        }

        if caps.delete {
            let deleted = adapter.delete(&target).await.map(|()| "deleted".to_string()).map_err(|e| e.to_string());
            let deleted = report.outcome("delete", deleted);
            if caps.stat && deleted {
                let after = expect_not_found(adapter.stat(&target).await, "stat after delete");
                report.outcome("stat after delete", after);
            } else {
                report.skip("stat after delete", "needs stat and a successful delete");
            }
        } else {
            report.skip("delete", "the adapter declares no delete");
            report.skip("stat after delete", "the adapter declares no delete");
        }

        let missing = ObjectRef { remote_id: format!("wharf-conformance-missing-{nonce}"), purpose: info.purpose };
        if caps.stat {
            report
                .outcome("missing object", expect_not_found(adapter.stat(&missing).await, "stat of a missing object"));
        } else if caps.download != DownloadSupport::None {
            let derived = caps.download == DownloadSupport::Derived;
            let answer = adapter.download(&missing, derived, None).await.map(drop);
            report.outcome("missing object", expect_not_found(answer, "download of a missing object"));
        } else {
            report.skip("missing object", "the adapter declares neither stat nor download");
        }
        Ok(report)
    }
}

async fn download(
    adapter: &Adapter,
    target: &ObjectRef,
    derived: bool,
    range: Option<ByteRange>,
) -> Result<(Bytes, ContentKind), String> {
    read_download(adapter.download(target, derived, range).await).await
}

async fn read_download(
    answer: Result<(Body, ContentKind, Option<String>), CallError>,
) -> Result<(Bytes, ContentKind), String> {
    let (mut body, kind, _) = answer.map_err(|e| e.to_string())?;
    let bytes = body.read_all(u64::MAX).await.map_err(|e| format!("reading the download: {e}"))?;
    Ok((bytes.into(), kind))
}

async fn list_finds(adapter: &Adapter, remote_id: &str) -> Result<String, String> {
    let mut cursor: Option<String> = None;
    for page_number in 1..=MAX_LIST_PAGES {
        let page = adapter.list(cursor.as_deref(), 100).await.map_err(|e| e.to_string())?;
        if page.items.iter().any(|item| item.remote_id == remote_id) {
            return Ok(format!("found on page {page_number}"));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Err(format!("the uploaded object {remote_id} is not in the listing")),
        }
    }
    Err(format!("the uploaded object {remote_id} is not in the first {MAX_LIST_PAGES} pages"))
}

/// A missing object must be classified `not-found` (or `gone`), not as a
/// failure the host would retry or report as an outage.
fn expect_not_found<T>(answer: Result<T, CallError>, what: &str) -> Result<String, String> {
    match answer {
        Ok(_) => Err(format!("{what} succeeded")),
        Err(e) => match e.kind() {
            Some(ErrorKind::NotFound | ErrorKind::Gone) => Ok(format!("{what}: classified {}", e.label())),
            _ => Err(format!("{what} should be classified not-found, got: {e}")),
        },
    }
}
