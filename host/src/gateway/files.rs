//! A principal's files: what Wharf and the provider know of them, listing,
//! metadata, removal.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Caller, GatewayError};
use crate::catalog::{
    CopyState, DownloadRecord, MetadataUpdate, ObjectPage, ObjectQuery, ObjectRecord, ProviderStats, Stats,
};
use crate::runtime::{ErrorKind, ObjectInfo};
use crate::validation::names::{self, MAX_NAME_BYTES};

#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    #[serde(flatten)]
    pub object: ObjectRecord,
    pub downloads: usize,
    pub last_download: Option<DownloadRecord>,
    /// What the provider says about it now, when it can say.
    pub remote: Option<RemoteInfo>,
    pub remote_error: Option<String>,
}

/// A record with the caller's other records of the same content and its
/// download history.
#[derive(Debug, Clone, Serialize)]
pub struct FileDetails {
    pub file: ObjectRecord,
    pub copies: Vec<ObjectRecord>,
    pub downloads: Vec<DownloadRecord>,
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct RemoteInfo {
    pub remote_id: String,
    pub name: Option<String>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub mime: Option<String>,
    pub purpose: Option<String>,
    pub created_at: Option<u64>,
    pub expires_at: Option<u64>,
}

impl From<ObjectInfo> for RemoteInfo {
    fn from(info: ObjectInfo) -> Self {
        Self {
            remote_id: info.remote_id,
            name: info.name,
            size: info.size,
            sha256: info.sha256,
            mime: info.mime,
            purpose: info.purpose,
            created_at: info.created_at,
            expires_at: info.expires_at,
        }
    }
}

/// The longest description, tag list and key-value set a record keeps.
const MAX_DESCRIPTION_BYTES: usize = 4096;
const MAX_TAGS: usize = 64;
const MAX_ATTRIBUTES: usize = 64;
const MAX_ATTRIBUTE_BYTES: usize = 1024;

/// Changes to a file's metadata, as the CLI, HTTP PATCH and MCP's
/// `update_file` ask for them. What is left out stays as it is.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileUpdate {
    /// A new name (no '/').
    pub name: Option<String>,
    pub description: Option<String>,
    /// Replaces every tag.
    pub tags: Option<Vec<String>>,
    /// Tags to add.
    #[serde(default)]
    pub add_tags: Vec<String>,
    /// Tags to remove.
    #[serde(default)]
    pub remove_tags: Vec<String>,
    /// Key-value pairs to set; a null value removes the key.
    #[serde(default)]
    pub attributes: BTreeMap<String, Option<String>>,
}

impl Caller {
    /// The record, its history, and what the provider says about it now.
    pub async fn info(&self, id: &str) -> Result<FileInfo, GatewayError> {
        let object = self.resolve(id, None).await?;
        let downloads = self.history(&object.id).await?;
        let adapter = self.adapter(Some(&object.provider))?;
        let (remote, remote_error) = if adapter.capabilities().stat {
            match adapter.stat(&object.target()).await {
                Ok(info) => (Some(info.into()), None),
                Err(e) => (None, Some(self.note_missing(&object, e).await.to_string())),
            }
        } else {
            (None, None)
        };
        Ok(FileInfo {
            downloads: downloads.len(),
            last_download: downloads.last().cloned(),
            object,
            remote,
            remote_error,
        })
    }

    /// The record, the caller's other records of the same content, and its
    /// download history, from the catalog alone.
    pub async fn details(&self, id: &str) -> Result<FileDetails, GatewayError> {
        let file = self.resolve(id, None).await?;
        let mut copies = self.visible_copies(&file.sha256).await?;
        copies.retain(|copy| copy.id != file.id);
        let downloads = self.history(&file.id).await?;
        Ok(FileDetails { file, copies, downloads })
    }

    /// Downloads of a record, as far as the caller may see them.
    async fn history(&self, id: &str) -> Result<Vec<DownloadRecord>, GatewayError> {
        let mut downloads = self.catalog.downloads(id).await?;
        downloads.retain(|d| self.principal.can_see(&d.principal));
        Ok(downloads)
    }

    /// The caller's records (every principal's, for an admin), newest first.
    pub async fn list(&self, mut query: ObjectQuery) -> Result<ObjectPage, GatewayError> {
        if let Some(p) = &query.provider {
            self.adapter(Some(p))?;
        }
        if query.limit == Some(0) {
            return Err(GatewayError::InvalidRequest("limit must be at least 1".into()));
        }
        query.principal = self.principal.scope();
        Ok(self.catalog.objects(&query).await?)
    }

    /// What the provider itself holds, page by page, whether Wharf put it
    /// there or not. Operators only: it shows every principal's objects.
    pub async fn list_remote(&self, provider: Option<&str>) -> Result<Vec<RemoteInfo>, GatewayError> {
        let adapter = self.adapter(provider)?;
        if !adapter.capabilities().list {
            return Err(GatewayError::Unsupported { what: "listing".into(), provider: adapter.name().into() });
        }
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = adapter.list(cursor.as_deref(), 1000).await?;
            items.extend(page.items.into_iter().map(RemoteInfo::from));
            match page.next_cursor {
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// Changes a record's name, description, tags or key-value pairs.
    pub async fn update(&self, id: &str, edit: FileUpdate) -> Result<ObjectRecord, GatewayError> {
        let object = self.resolve(id, None).await?;
        let invalid = |message: String| Err(GatewayError::InvalidRequest(message));
        // A rename is explicit: an unsafe name is refused, not quietly changed.
        if let Some(name) = &edit.name {
            let safe = names::sanitize(name);
            if safe != *name {
                return invalid(format!(
                    "name {name:?} is not a safe file name (at most {MAX_NAME_BYTES} bytes, NFC, without '/', '\\', '..', control or bidirectional characters, nor a Windows device name); {safe:?} would be"
                ));
            }
        }
        if edit.description.as_ref().is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES) {
            return invalid(format!("description is longer than {MAX_DESCRIPTION_BYTES} bytes"));
        }
        let touches_tags = edit.tags.is_some() || !edit.add_tags.is_empty() || !edit.remove_tags.is_empty();
        let tags = touches_tags.then(|| {
            let mut tags = edit.tags.clone().unwrap_or_else(|| object.tags.clone());
            for tag in &edit.add_tags {
                if !tags.contains(tag) {
                    tags.push(tag.clone());
                }
            }
            tags.retain(|t| !edit.remove_tags.contains(t));
            tags
        });
        if let Some(tags) = &tags
            && (tags.len() > MAX_TAGS
                || tags.iter().any(|t| t.is_empty() || t.len() > 64 || t.chars().any(char::is_control)))
        {
            return invalid(format!("tags: at most {MAX_TAGS}, each 1 to 64 bytes without control characters"));
        }
        let attributes = (!edit.attributes.is_empty()).then(|| {
            let mut attributes = object.attributes.clone();
            for (key, value) in &edit.attributes {
                match value {
                    Some(value) => attributes.insert(key.clone(), value.clone()),
                    None => attributes.remove(key),
                };
            }
            attributes
        });
        if let Some(attributes) = &attributes
            && (attributes.len() > MAX_ATTRIBUTES
                || attributes.iter().any(|(k, v)| k.is_empty() || k.len() + v.len() > MAX_ATTRIBUTE_BYTES))
        {
            return invalid(format!(
                "attributes: at most {MAX_ATTRIBUTES} keys, each non-empty and at most {MAX_ATTRIBUTE_BYTES} bytes with its value"
            ));
        }
        let update = MetadataUpdate { name: edit.name, description: edit.description, tags, attributes };
        self.catalog.update_metadata(&object.id, &update).await?;
        self.catalog.object(&object.id).await?.ok_or_else(|| GatewayError::UnknownId(id.to_string()))
    }

    /// Forgets the caller's record and deletes the copy at its provider,
    /// unless another record (any principal's) still points to the same
    /// bytes. A registered object (one Wharf did not upload) stays at its
    /// provider unless `delete_remote` says otherwise.
    pub async fn remove(&self, id: &str, delete_remote: bool) -> Result<ObjectRecord, GatewayError> {
        let object = self.resolve(id, None).await?;
        match object.registered && !delete_remote {
            true => self.catalog.remove(&object.id).await?,
            false => self.remove_record(&object).await?,
        }
        Ok(object)
    }

    pub(super) async fn remove_record(&self, object: &ObjectRecord) -> Result<(), GatewayError> {
        let adapter = self.adapter(Some(&object.provider))?;
        let shared = self
            .catalog
            .copies(&object.sha256)
            .await?
            .iter()
            .any(|o| o.id != object.id && o.provider == object.provider && o.remote_id == object.remote_id);
        if !shared && object.state == CopyState::Present {
            if !adapter.capabilities().delete {
                return Err(GatewayError::Unsupported {
                    what: format!("deleting {}", object.id),
                    provider: object.provider.clone(),
                });
            }
            match adapter.delete(&object.target()).await {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), Some(ErrorKind::NotFound | ErrorKind::Gone)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.catalog.remove(&object.id).await?;
        Ok(())
    }
}

impl Caller {
    /// The figures of `wharf stats`: the caller's files per provider (every
    /// principal's, for an admin), and activity since `since` (seconds since
    /// the epoch; all of it when `None`).
    pub async fn stats(&self, since: Option<i64>) -> Result<Stats, GatewayError> {
        Ok(self.catalog.stats(self.principal.scope().as_deref(), since.unwrap_or(0)).await?)
    }

    /// The caller's present files and bytes per provider: what `/metrics`
    /// reports at each scrape, without the activity that `stats` adds up.
    pub async fn holdings(&self) -> Result<BTreeMap<String, ProviderStats>, GatewayError> {
        Ok(self.catalog.holdings(self.principal.scope().as_deref()).await?)
    }
}
