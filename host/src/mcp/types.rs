//! What the tools take and give: plain JSON Schema types, one per tool.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{DownloadRecord, ObjectRecord};
use crate::gateway::{Downloaded, FileUpdate, LinkCreated, PluginInfo, RemoteInfo, Uploaded};

/// The largest inline (base64) item `upload_files` takes, decoded.
pub const INLINE_CONTENT_MAX_BYTES: usize = 8 << 20;
/// The most text `read_file` returns.
pub const READ_FILE_MAX_BYTES: usize = 64 << 10;
/// The largest content `resources/read` returns inline.
pub const RESOURCE_MAX_BYTES: usize = 1 << 20;

/// A file to upload: a path inside the server's sandbox roots, or inline content.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FileInput {
    /// A path inside the server's sandbox roots.
    Path(String),
    /// Content sent inline, base64-encoded.
    Content {
        filename: String,
        /// The bytes, base64-encoded (standard alphabet, padding optional); at most 8 MiB decoded.
        content: String,
        mime_type: Option<String>,
    },
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UploadFilesArgs {
    /// Files to upload: paths, inline items, or both.
    pub files: Vec<FileInput>,
    /// Provider to upload to; the configured default when absent.
    pub provider: Option<String>,
    /// What the provider should use the files for (e.g. file-extract).
    pub purpose: Option<String>,
    /// Also make a download link for each uploaded file.
    #[serde(default)]
    pub link: bool,
    /// How long those links work, in minutes (1 to 60; default 5).
    pub expiry_minutes: Option<u32>,
}

/// A download link.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Link {
    /// The URL a person (or a plain HTTP GET) downloads the file from.
    pub url: String,
    pub token: String,
    /// Seconds since the Unix epoch.
    pub expires_at: i64,
    pub size: u64,
    pub sha256: Option<String>,
    /// `file`, `directory` or `stored`.
    pub file_type: String,
}

impl From<LinkCreated> for Link {
    fn from(link: LinkCreated) -> Self {
        Self {
            url: link.download_url,
            token: link.token,
            expires_at: link.expires_at,
            size: link.size,
            sha256: link.sha256,
            file_type: link.file_type.to_string(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UploadFilesResult {
    /// One entry per input, in order.
    pub files: Vec<UploadItem>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UploadItem {
    /// The path, or the filename of inline content.
    pub input: String,
    /// The uploaded file, when the upload succeeded.
    pub file: Option<Uploaded>,
    /// Its download link, when one was asked for.
    pub link: Option<Link>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DownloadFileArgs {
    /// An id returned by upload_files (wf_…), or sha256:<hex>.
    pub file_id: Option<String>,
    /// Several ids, downloaded concurrently (into `destination`, a directory).
    pub file_ids: Option<Vec<String>>,
    /// Where to write: a file path, or a directory to write into. The working
    /// directory when absent. Must be inside the server's sandbox roots.
    pub destination: Option<String>,
    /// Fetch the provider's derived content (e.g. extracted text) into a
    /// separate file instead of the original bytes.
    #[serde(default)]
    pub derived: bool,
}

/// For one `file_id`, the file's fields at the top level (as before
/// `file_ids` existed) and in `files`; for `file_ids`, `files` only.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct DownloadFileResult {
    pub id: Option<String>,
    pub path: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub source: Option<String>,
    pub kind: Option<String>,
    pub verified: Option<bool>,
    pub files: Vec<DownloadItem>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DownloadItem {
    pub file_id: String,
    pub file: Option<Downloaded>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FileIdArgs {
    /// A file id (wf_…) or sha256:<hex>.
    pub file_id: String,
}

/// A stored file as the tools show it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileView {
    #[serde(flatten)]
    pub record: ObjectRecord,
    /// The file as an MCP resource: `wharf://files/{id}`.
    pub uri: String,
}

impl From<ObjectRecord> for FileView {
    fn from(record: ObjectRecord) -> Self {
        Self { uri: super::file_uri(&record.id), record }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FileInfoResult {
    pub file: FileView,
    /// The caller's other records of the same content (at other providers or purposes).
    pub copies: Vec<FileView>,
    pub downloads: Vec<DownloadRecord>,
    /// What the provider says about it now, when it can say.
    pub remote: Option<RemoteInfo>,
    pub remote_error: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListFilesArgs {
    /// Only files at this provider.
    pub provider: Option<String>,
    /// Only files whose name contains this (case-insensitive).
    pub name: Option<String>,
    /// Only files with this tag.
    pub tag: Option<String>,
    /// Only files of this MIME type, or pattern such as `image/*`.
    pub mime: Option<String>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
    /// At most this many (1 to 1000; default 100).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListFilesResult {
    /// Newest first.
    pub files: Vec<FileView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeleteFilesArgs {
    /// Ids of files to delete at their provider and forget.
    pub file_ids: Vec<String>,
    /// Also delete registered files' objects at their provider.
    #[serde(default)]
    pub delete_remote: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RegisterFileArgs {
    /// `s3://bucket/key`, a provider URL of the object, or a Supabase `bucket/key`.
    pub reference: String,
    /// The provider that holds it; by default the first that recognises the reference.
    pub provider: Option<String>,
    /// Read the object once to hash it when the provider keeps no SHA-256 (default true).
    pub hash: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FileStatsArgs {
    /// Count activity at or after this time (seconds since the epoch); all of it when absent.
    pub since: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeleteFilesResult {
    pub files: Vec<DeleteItem>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeleteItem {
    pub file_id: String,
    pub deleted: bool,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateFileArgs {
    pub file_id: String,
    #[serde(flatten)]
    pub update: FileUpdate,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateLinkArgs {
    /// A file or directory inside the server's sandbox roots (a directory is served as a ZIP).
    pub path: Option<String>,
    /// A stored file (wf_…).
    pub file_id: Option<String>,
    /// 1 to 60; default 5.
    pub expiry_minutes: Option<u32>,
    /// 1 to 100; default 1.
    pub max_downloads: Option<u32>,
    /// The name the person's browser saves it under.
    pub filename: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListProvidersResult {
    pub providers: Vec<PluginInfo>,
    /// The largest inline (base64) item upload_files takes, decoded.
    pub inline_content_max_bytes: u64,
    /// The most text read_file returns.
    pub read_file_max_bytes: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadFileArgs {
    pub file_id: String,
    /// Read the provider's derived content (e.g. Kimi's extracted text).
    #[serde(default)]
    pub derived: bool,
    /// At most this many bytes (default and cap 65536).
    pub max_bytes: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadFileResult {
    pub file_id: String,
    pub name: String,
    pub mime: String,
    /// The whole file's size, when known.
    pub size: Option<u64>,
    pub text: String,
    /// More follows what `text` holds.
    pub truncated: bool,
}
