//! Uploads to providers that name files themselves (Kimi, GLM).
//!
//! S3, Supabase and the local provider store content under a key made of its
//! SHA-256, so a retried upload overwrites what a failed attempt stored. A
//! provider that assigns ids stores a new file on every attempt: an attempt
//! whose answer was lost after the file arrived (a reset, a cut or garbled
//! answer, a stall) leaves a file no record names, and a garbled answer can
//! even name a file that does not exist. Such providers give no original
//! bytes back, so the only evidence of what they hold is what they say
//! about it. Hence, for them:
//! - the id an upload answered is confirmed by asking for that file, and a
//!   file that is not there (or not of the size sent) is sent once more;
//! - after an upload that needed more than one attempt, or failed, the
//!   provider's files of the same name and size created since it began, and
//!   named by no record, are deleted as strays of this upload.
//!
//! Another upload of a different file with the same name and size in the
//! same seconds, not yet recorded, would look like a stray; the upload
//! claim keeps uploads of the same bytes apart, not of different ones.

use super::Content;
use crate::catalog::ObjectQuery;
use crate::gateway::{Caller, GatewayError, now};
use crate::runtime::{Adapter, CallError, ErrorKind, ObjectInfo, ObjectRef};

/// Provider clocks and ours disagree a little; a stray is looked for from
/// this many seconds before the upload began.
const CLOCK_SLACK_SECS: i64 = 5;

/// Sends of one upload: the first, and one more when the id answered
/// cannot be confirmed.
const SENDS: u32 = 2;

impl Caller {
    /// Uploads `content` to a provider that names files itself, confirming
    /// the id it answers and removing strays of failed attempts.
    pub(super) async fn upload_named_by_provider(
        &self,
        adapter: &Adapter,
        content: &Content,
        purpose: Option<&str>,
    ) -> Result<ObjectInfo, GatewayError> {
        let began = now();
        let mut send = 1;
        loop {
            let body = content.body.try_clone().expect("upload sources are files or buffers");
            let stored = match adapter.upload(body, &content.name, &content.mime, &content.sha256, purpose).await {
                Ok(stored) => stored,
                Err(error) => {
                    if may_have_stored(&error) || send > 1 {
                        self.remove_strays(adapter, content, began, None).await;
                    }
                    return Err(error.into());
                }
            };
            match self.confirm(adapter, content, &stored.info, purpose).await {
                Ok(()) => {
                    if stored.attempts > 1 || send > 1 {
                        self.remove_strays(adapter, content, began, Some(&stored.info.remote_id)).await;
                    }
                    return Ok(stored.info);
                }
                Err(unconfirmed) => {
                    tracing::warn!("{}: {unconfirmed}", adapter.name());
                    if send == SENDS {
                        self.remove_strays(adapter, content, began, None).await;
                        return Err(GatewayError::Unconfirmed { provider: adapter.name().into(), detail: unconfirmed });
                    }
                    send += 1;
                }
            }
        }
    }

    /// Asks the provider for the file an upload answered. `Err` says why it
    /// is not the file sent; a provider that cannot be asked now (after its
    /// retries) is taken at its word.
    async fn confirm(
        &self,
        adapter: &Adapter,
        content: &Content,
        info: &ObjectInfo,
        purpose: Option<&str>,
    ) -> Result<(), String> {
        if !adapter.capabilities().stat {
            return Ok(());
        }
        let target = ObjectRef { remote_id: info.remote_id.clone(), purpose: purpose.map(str::to_string) };
        match adapter.stat(&target).await {
            Ok(found) => match found.size {
                Some(size) if size != content.size => Err(format!(
                    "the upload of {} answered id {}, which holds {size} bytes, not {}",
                    content.name, info.remote_id, content.size
                )),
                _ => Ok(()),
            },
            Err(CallError::Provider { error, .. }) if matches!(error.kind, ErrorKind::NotFound | ErrorKind::Gone) => {
                Err(format!("the upload of {} answered id {}, which does not exist", content.name, info.remote_id))
            }
            Err(error) => {
                tracing::warn!("{}: could not confirm upload {}: {error}", adapter.name(), info.remote_id);
                Ok(())
            }
        }
    }

    /// Deletes files at the provider that look like copies of `content` sent
    /// since `began` by this upload's failed attempts: same name and size,
    /// named by no record, other than `keep`. Logs what it removes and what
    /// fails: the upload's own outcome is the one to report.
    async fn remove_strays(&self, adapter: &Adapter, content: &Content, began: i64, keep: Option<&str>) {
        if !adapter.capabilities().list {
            return;
        }
        let listed = match self.list_remote(Some(adapter.name())).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!("{}: could not look for strays of the upload of {}: {e}", adapter.name(), content.name);
                return;
            }
        };
        let since = began - CLOCK_SLACK_SECS;
        let strays: Vec<_> = listed
            .into_iter()
            .filter(|item| Some(item.remote_id.as_str()) != keep)
            .filter(|item| item.name.as_deref() == Some(content.name.as_str()) && item.size == Some(content.size))
            .filter(|item| item.created_at.is_some_and(|at| at as i64 >= since))
            .collect();
        if strays.is_empty() {
            return;
        }
        let query = ObjectQuery { provider: Some(adapter.name().to_string()), ..ObjectQuery::default() };
        let recorded: std::collections::BTreeSet<String> = match self.catalog.objects(&query).await {
            Ok(page) => page.files.into_iter().map(|record| record.remote_id).collect(),
            Err(e) => {
                tracing::warn!("{}: could not check strays against the catalog: {e}", adapter.name());
                return;
            }
        };
        for stray in strays.into_iter().filter(|item| !recorded.contains(&item.remote_id)) {
            let target = ObjectRef { remote_id: stray.remote_id.clone(), purpose: stray.purpose.clone() };
            match adapter.delete(&target).await {
                Ok(()) => tracing::warn!(
                    "{}: removed {}, a copy of {} left by a failed upload attempt",
                    adapter.name(),
                    stray.remote_id,
                    content.name
                ),
                Err(e) => tracing::error!(
                    "{}: could not remove {}, a copy of {} left by a failed upload attempt: {e}",
                    adapter.name(),
                    stray.remote_id,
                    content.name
                ),
            }
        }
    }
}

/// Whether a failed upload may have left a file behind: not when the
/// provider refused it, which it does before storing anything. (An earlier
/// attempt's stray, before a retry that was refused, is missed.)
fn may_have_stored(error: &CallError) -> bool {
    !matches!(
        error.kind(),
        Some(
            ErrorKind::Unauthorized
                | ErrorKind::Forbidden
                | ErrorKind::InvalidRequest
                | ErrorKind::TooLarge
                | ErrorKind::QuotaExceeded
                | ErrorKind::Unsupported
        )
    )
}
