//! The operations, over the granted directory.
//!
//! Layout: `<prefix>/<first two hex digits>/<sha256>` holds the bytes and
//! `<same>.json` a small record of name, type and purpose.

use serde::{Deserialize, Serialize};
use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};
use wharf_adapter_sdk::{
    ByteRange, ContentKind, DownloadResult, ObjectInfo, Page, ProviderError, UploadRequest, range, storage,
};

use crate::config::CONFIG;
use crate::error::from_io;

/// Where the host preopens the granted directory in this adapter's WASI view.
const MOUNT: &str = "/storage";

#[derive(Serialize, Deserialize, Default)]
struct Meta {
    name: Option<String>,
    mime: Option<String>,
    purpose: Option<String>,
    created_at: Option<u64>,
}

fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The object's path relative to the granted directory. Remote ids are
/// SHA-256 digests; anything else cannot name an object here.
fn object_path(remote_id: &str) -> Result<String, ProviderError> {
    if !is_digest(remote_id) {
        return Err(ProviderError::new(
            wharf_adapter_sdk::ErrorKind::NotFound,
            format!("{remote_id:?} is not a local object id (a lowercase SHA-256)"),
        ));
    }
    let prefix = &CONFIG.get()?.prefix;
    Ok(format!("{prefix}/{}/{remote_id}", &remote_id[..2]))
}

fn meta_path(object: &str) -> String {
    format!("{MOUNT}/{object}.json")
}

fn read_meta(object: &str) -> Meta {
    // A missing or damaged record loses only the display name, never the bytes.
    fs::read(meta_path(object)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
}

fn write_meta(object: &str, meta: &Meta) -> Result<(), ProviderError> {
    let path = meta_path(object);
    let temp = format!("{path}.tmp");
    let json = serde_json::to_vec(meta).expect("metadata serializes");
    fs::write(&temp, json).map_err(|e| from_io(e, &format!("writing {temp}")))?;
    fs::rename(&temp, &path).map_err(|e| from_io(e, &format!("renaming {temp}")))
}

fn info(remote_id: &str, object: &str) -> Result<ObjectInfo, ProviderError> {
    let size = fs::metadata(format!("{MOUNT}/{object}")).map_err(|e| from_io(e, &format!("object {remote_id}")))?.len();
    let meta = read_meta(object);
    Ok(ObjectInfo {
        remote_id: remote_id.to_string(),
        name: meta.name,
        size: Some(size),
        sha256: Some(remote_id.to_string()),
        mime: meta.mime,
        purpose: meta.purpose,
        created_at: meta.created_at,
        expires_at: None,
    })
}

pub fn upload(req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
    let object = object_path(&req.sha256)?;
    // The host checks the bytes against `req.sha256` while it writes them.
    let written = storage::write(&object, req.content)?;
    let created_at = SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
    let meta = Meta { name: Some(req.name), mime: Some(req.mime), purpose: req.purpose, created_at };
    write_meta(&object, &meta)?;
    Ok(ObjectInfo {
        remote_id: req.sha256.clone(),
        name: meta.name,
        size: Some(written),
        sha256: Some(req.sha256),
        mime: meta.mime,
        purpose: meta.purpose,
        created_at,
        expires_at: None,
    })
}

pub fn download(remote_id: &str, derived: bool, range: Option<&ByteRange>) -> Result<DownloadResult, ProviderError> {
    if derived {
        return Err(ProviderError::unsupported(
            "the local provider keeps the original bytes only; it has no derived content",
        ));
    }
    let object = object_path(remote_id)?;
    let content = range::slice(storage::open(&object)?, range)?;
    Ok(DownloadResult { content, kind: ContentKind::Original, mime: read_meta(&object).mime })
}

/// A local reference is an object id: the content's SHA-256, optionally
/// written `sha256:<hex>`. Anything else is not a form this provider knows.
pub fn resolve(reference: &str) -> Result<ObjectInfo, ProviderError> {
    let id = reference.strip_prefix("sha256:").unwrap_or(reference);
    if !is_digest(id) {
        return Err(ProviderError::invalid(format!(
            "{reference:?} is not a local reference: the local provider names objects by their SHA-256 (64 lowercase hex digits)"
        )));
    }
    stat(id)
}

pub fn stat(remote_id: &str) -> Result<ObjectInfo, ProviderError> {
    info(remote_id, &object_path(remote_id)?)
}

pub fn delete(remote_id: &str) -> Result<(), ProviderError> {
    let object = object_path(remote_id)?;
    fs::remove_file(format!("{MOUNT}/{object}")).map_err(|e| from_io(e, &format!("object {remote_id}")))?;
    // The record goes with the bytes; without the bytes it describes nothing.
    let _ = fs::remove_file(meta_path(&object));
    Ok(())
}

/// Objects in id order, from after `cursor`.
pub fn list(cursor: Option<&str>, limit: u32) -> Result<Page, ProviderError> {
    let limit = limit.clamp(1, 1000) as usize;
    let root = format!("{MOUNT}/{}", CONFIG.get()?.prefix);
    let mut shards = match fs::read_dir(&root) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.file_name()).collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(from_io(e, &format!("listing {root}"))),
    };
    shards.sort();
    let mut items = Vec::new();
    for shard in shards {
        let shard = shard.to_string_lossy().into_owned();
        // Skip whole shards before the cursor.
        if cursor.is_some_and(|c| shard.as_str() < &c[..2.min(c.len())]) {
            continue;
        }
        let dir = format!("{root}/{shard}");
        let mut ids: Vec<String> = fs::read_dir(&dir)
            .map_err(|e| from_io(e, &format!("listing {dir}")))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.len() == 64 && !name.contains('.'))
            .filter(|name| cursor.is_none_or(|c| name.as_str() > c))
            .collect();
        ids.sort();
        for id in ids {
            if items.len() == limit {
                let next_cursor = items.last().map(|i: &ObjectInfo| i.remote_id.clone());
                return Ok(Page { items, next_cursor });
            }
            let object = format!("{}/{shard}/{id}", CONFIG.get()?.prefix);
            items.push(info(&id, &object)?);
        }
    }
    Ok(Page { items, next_cursor: None })
}
