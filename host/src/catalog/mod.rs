//! What Wharf knows about the files it moved: content by SHA-256, the copies
//! held at each provider, and download history.
//!
//! Behind a small trait so that a shared database (Postgres, for deployments
//! with several hosts) can stand in for the embedded SQLite file.

mod sqlite;

pub use sqlite::SqliteCatalog;

use serde::Serialize;

/// One copy of some content at one provider, as returned by upload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectRecord {
    /// Wharf's id for this copy (`wf_…`).
    pub id: String,
    pub provider: String,
    /// The provider's id or key for it.
    pub remote_id: String,
    /// Lowercase hex SHA-256 of the original bytes.
    pub sha256: String,
    pub size: u64,
    pub name: String,
    pub mime: String,
    pub purpose: Option<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    pub state: CopyState,
}

/// Whether the provider still holds a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyState {
    Present,
    /// The provider said not-found or gone for it.
    Gone,
}

/// A download, for the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownloadRecord {
    pub object_id: String,
    pub destination: String,
    /// `provider` or `cache`.
    pub source: String,
    pub at: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("catalog {path}: {message}")]
pub struct CatalogError {
    pub path: String,
    pub message: String,
}

#[async_trait::async_trait]
pub trait Catalog: Send + Sync {
    /// A present copy of `sha256` at `provider` uploaded with `purpose`.
    async fn find_copy(
        &self,
        provider: &str,
        sha256: &str,
        purpose: Option<&str>,
    ) -> Result<Option<ObjectRecord>, CatalogError>;
    async fn object(&self, id: &str) -> Result<Option<ObjectRecord>, CatalogError>;
    /// Every copy of some content, oldest first.
    async fn copies(&self, sha256: &str) -> Result<Vec<ObjectRecord>, CatalogError>;
    /// Copies at one provider, or everywhere; newest first.
    async fn objects(&self, provider: Option<&str>) -> Result<Vec<ObjectRecord>, CatalogError>;
    /// Records a completed upload: the content, if new, and the copy, together.
    /// Returns the copy's id: `object.id`, or the id already recorded for the
    /// same remote object (which is then marked present again).
    async fn insert(&self, object: &ObjectRecord) -> Result<String, CatalogError>;
    async fn set_state(&self, id: &str, state: CopyState) -> Result<(), CatalogError>;
    /// Forgets a copy, its downloads, and the content if no copy is left.
    async fn remove(&self, id: &str) -> Result<(), CatalogError>;
    async fn record_download(&self, download: &DownloadRecord) -> Result<(), CatalogError>;
    async fn downloads(&self, object_id: &str) -> Result<Vec<DownloadRecord>, CatalogError>;
}
