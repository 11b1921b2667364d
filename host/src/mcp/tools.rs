//! The tools. Each parses its arguments, calls the gateway as the request's
//! principal, and answers with structured content, a one-line summary and a
//! resource link per file. A failed operation is a tool result with
//! `isError: true` naming the file and the reason; a malformed call is a
//! protocol error (rmcp answers those before a tool runs).

use std::future::Future;
use std::path::PathBuf;

use base64::Engine as _;
use futures::future::join_all;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use super::types::*;
use super::{ProgressReport, WharfMcp, failure, input_schema, link_to, output_schema, resource_link, success};
use crate::catalog::{LinkStats, ObjectQuery, Stats};
use crate::gateway::{Caller, Downloaded, LinkRequest, LinkTarget, Registered, Source, UploadOptions};

type ToolResult = Result<CallToolResult, ErrorData>;

/// Runs a transfer unless the client cancels first; a cancelled transfer is
/// dropped, which removes its partial file and records nothing.
async fn unless_cancelled<T>(cancelled: &CancellationToken, work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        outcome = work => Some(outcome),
        _ = cancelled.cancelled() => None,
    }
}

const CANCELLED: &str = "cancelled by the client; nothing was kept";

/// The decoded size of base64 text, from its length alone.
fn decoded_len(base64: &str) -> usize {
    base64.trim().trim_end_matches('=').len() * 3 / 4
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

impl WharfMcp {
    /// A link for a stored file, for `upload_files` with `link: true`.
    async fn link_for(caller: &Caller, id: &str, expiry_minutes: Option<u32>) -> Result<Link, String> {
        let request = LinkRequest {
            target: LinkTarget::FileId(id.to_string()),
            expiry_minutes,
            max_downloads: None,
            filename: None,
            max_size: None,
        };
        caller.create_link(request).await.map(Link::from).map_err(|e| e.to_string())
    }

    async fn download_one(
        caller: &Caller,
        id: &str,
        destination: Option<&std::path::Path>,
        derived: bool,
        progress: Option<std::sync::Arc<crate::body::Progress>>,
    ) -> Result<Downloaded, String> {
        let outcome = match derived {
            true => caller.download_derived(id, destination).await,
            false => caller.download_tracked(id, destination, None, progress).await,
        };
        outcome.map_err(|e| e.to_string())
    }
}

#[tool_router(vis = "pub(super)")]
impl WharfMcp {
    #[tool(
        description = "Upload files by path (preferred: nothing passes through the conversation) or as base64 content (at most 8 MiB decoded per item; for larger files give a path, or POST them to wharf serve's /api/files). Identical bytes already at the provider are not sent again (deduplicated: true). Returns an id (file_id) per file; link: true also returns a download URL per file.",
        input_schema = input_schema::<UploadFilesArgs>(),
        output_schema = output_schema::<UploadFilesResult>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn upload_files(
        &self,
        Parameters(args): Parameters<UploadFilesArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = self.caller(&context)?;
        let report = ProgressReport::start(&context);
        let options = UploadOptions {
            provider: args.provider,
            purpose: args.purpose,
            progress: report.as_ref().map(|r| r.counter.clone()),
            ..UploadOptions::default()
        };
        let mut files = Vec::with_capacity(args.files.len());
        for input in args.files {
            let (label, source) = match input {
                FileInput::Path(path) => (path.clone(), Ok(Source::Path(PathBuf::from(path)))),
                FileInput::Content { filename, content, mime_type } => {
                    let source = if decoded_len(&content) > INLINE_CONTENT_MAX_BYTES {
                        Err(format!(
                            "inline content is limited to {INLINE_CONTENT_MAX_BYTES} bytes per item (about {} decoded here); \
                             give the file's path instead, or POST it to wharf serve's /api/files",
                            decoded_len(&content)
                        ))
                    } else {
                        base64::engine::general_purpose::STANDARD_NO_PAD
                            .decode(content.trim().trim_end_matches('='))
                            .map(|bytes| Source::Bytes {
                                name: filename.clone(),
                                content: bytes.into(),
                                mime: mime_type,
                            })
                            .map_err(|e| format!("content is not valid base64: {e}"))
                    };
                    (filename, source)
                }
            };
            let outcome = match source {
                Ok(source) => match unless_cancelled(&context.ct, caller.upload(source, &options)).await {
                    Some(outcome) => outcome.map_err(|e| e.to_string()),
                    None => return Ok(failure(format!("{label}: upload {CANCELLED}"))),
                },
                Err(e) => Err(e),
            };
            let item = match outcome {
                Ok(file) => {
                    let (link, error) = match args.link {
                        true => match Self::link_for(&caller, &file.id, args.expiry_minutes).await {
                            Ok(link) => (Some(link), None),
                            Err(e) => (None, Some(format!("uploaded, but no download link was made: {e}"))),
                        },
                        false => (None, None),
                    };
                    UploadItem { input: label, file: Some(file), link, error }
                }
                Err(error) => UploadItem { input: label, file: None, link: None, error: Some(error) },
            };
            files.push(item);
        }
        if let Some(report) = report {
            report.finish().await;
        }
        if !files.is_empty() && files.iter().all(|f| f.file.is_none()) {
            let reasons: Vec<String> =
                files.iter().map(|f| format!("{}: {}", f.input, f.error.as_deref().unwrap_or(""))).collect();
            return Ok(failure(format!("no file was uploaded: {}", reasons.join("; "))));
        }
        let mut links = Vec::new();
        let mut lines = Vec::new();
        for item in &files {
            match &item.file {
                Some(file) => {
                    let dedup = if file.deduplicated { ", already there" } else { "" };
                    lines.push(format!(
                        "{} → {} ({}, {}{dedup})",
                        item.input,
                        file.id,
                        human_size(file.size),
                        file.provider
                    ));
                    links.push(link_to(&file.id, &file.name, &file.mime, file.size));
                }
                None => lines.push(format!("{}: failed: {}", item.input, item.error.as_deref().unwrap_or(""))),
            }
        }
        let summary = format!("uploaded {} of {} file(s): {}", links.len(), files.len(), lines.join("; "));
        Ok(success(&UploadFilesResult { files }, summary, links))
    }

    #[tool(
        description = "Download files by id (file_id, or file_ids for several at once) to a path inside the server's sandbox roots, verified against their SHA-256: nothing is written unless the bytes match. derived: true fetches the provider's derived content (e.g. extracted text) into <name>.derived.txt instead.",
        input_schema = input_schema::<DownloadFileArgs>(),
        output_schema = output_schema::<DownloadFileResult>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn download_file(
        &self,
        Parameters(args): Parameters<DownloadFileArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = self.caller(&context)?;
        let destination = args.destination.map(PathBuf::from);
        let ids = match (args.file_id, args.file_ids) {
            (Some(id), None) => vec![id],
            (None, Some(ids)) if !ids.is_empty() => ids,
            _ => return Err(ErrorData::invalid_params("give file_id, or a non-empty file_ids, not both", None)),
        };
        let single = ids.len() == 1;
        let report = ProgressReport::start(&context);
        let progress = report.as_ref().map(|r| r.counter.clone());
        let transfers = ids
            .iter()
            .map(|id| Self::download_one(&caller, id, destination.as_deref(), args.derived, progress.clone()));
        let Some(outcomes) = unless_cancelled(&context.ct, join_all(transfers)).await else {
            return Ok(failure(format!("download {CANCELLED}")));
        };
        if let Some(report) = report {
            report.finish().await;
        }
        let files: Vec<DownloadItem> = ids
            .into_iter()
            .zip(outcomes)
            .map(|(file_id, outcome)| match outcome {
                Ok(file) => DownloadItem { file_id, file: Some(file), error: None },
                Err(error) => DownloadItem { file_id, file: None, error: Some(error) },
            })
            .collect();
        if files.iter().all(|f| f.file.is_none()) {
            let reasons: Vec<String> =
                files.iter().map(|f| format!("{}: {}", f.file_id, f.error.as_deref().unwrap_or(""))).collect();
            return Ok(failure(reasons.join("; ")));
        }
        let mut links = Vec::new();
        let mut lines = Vec::new();
        for item in &files {
            match &item.file {
                Some(file) => {
                    let check = if file.verified { "verified" } else { "not verified" };
                    lines.push(format!("{} → {} ({}, {check})", file.id, file.path.display(), human_size(file.size)));
                    if let Ok(details) = caller.details(&file.id).await {
                        links.push(resource_link(&details.file));
                    }
                }
                None => lines.push(format!("{}: failed: {}", item.file_id, item.error.as_deref().unwrap_or(""))),
            }
        }
        let mut result = DownloadFileResult::default();
        if single && let Some(file) = &files[0].file {
            result.id = Some(file.id.clone());
            result.path = Some(file.path.display().to_string());
            result.sha256 = Some(file.sha256.clone());
            result.size = Some(file.size);
            result.source = Some(file.source.to_string());
            result.kind = Some(file.kind.to_string());
            result.verified = Some(file.verified);
        }
        result.files = files;
        Ok(success(&result, format!("downloaded: {}", lines.join("; ")), links))
    }

    #[tool(
        description = "What Wharf knows about a file (record, other copies of its content, download history) and what its provider says about it now.",
        input_schema = input_schema::<FileIdArgs>(),
        output_schema = output_schema::<FileInfoResult>(),
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn get_file_info(
        &self,
        Parameters(args): Parameters<FileIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = self.caller(&context)?;
        let details = match caller.details(&args.file_id).await {
            Ok(details) => details,
            Err(e) => return Ok(failure(e.to_string())),
        };
        let (remote, remote_error) = match caller.info(&details.file.id).await {
            Ok(info) => (info.remote, info.remote_error),
            Err(e) => (None, Some(e.to_string())),
        };
        let link = resource_link(&details.file);
        let summary = format!(
            "{} ({}): {}, {}, at {}, sha256:{}",
            details.file.name,
            details.file.id,
            human_size(details.file.size),
            details.file.mime,
            details.file.provider,
            details.file.sha256
        );
        let result = FileInfoResult {
            file: details.file.into(),
            copies: details.copies.into_iter().map(Into::into).collect(),
            downloads: details.downloads,
            remote,
            remote_error,
        };
        Ok(success(&result, summary, vec![link]))
    }

    #[tool(
        description = "List your files, newest first, optionally only at one provider or with a name containing some text; page with cursor.",
        input_schema = input_schema::<ListFilesArgs>(),
        output_schema = output_schema::<ListFilesResult>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_files(
        &self,
        Parameters(args): Parameters<ListFilesArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = self.caller(&context)?;
        let limit = args.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Ok(failure(format!("limit must be 1 to 1000, not {limit}")));
        }
        let query = ObjectQuery {
            provider: args.provider,
            name_contains: args.name,
            tag: args.tag,
            mime: args.mime,
            after: args.cursor,
            limit: Some(limit as usize),
            ..ObjectQuery::default()
        };
        let page = match caller.list(query).await {
            Ok(page) => page,
            Err(e) => return Ok(failure(e.to_string())),
        };
        let links = page.files.iter().map(resource_link).collect();
        let more = if page.next.is_some() { " (more: pass next_cursor)" } else { "" };
        let summary = format!("{} file(s){more}", page.files.len());
        let result =
            ListFilesResult { files: page.files.into_iter().map(Into::into).collect(), next_cursor: page.next };
        Ok(success(&result, summary, links))
    }

    #[tool(
        description = "Delete files at their provider and forget them. Bytes another record still points to are kept; a registered file's object stays at its provider unless delete_remote is true.",
        input_schema = input_schema::<DeleteFilesArgs>(),
        output_schema = output_schema::<DeleteFilesResult>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = true)
    )]
    async fn delete_files(
        &self,
        Parameters(args): Parameters<DeleteFilesArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = self.caller(&context)?;
        let mut files = Vec::with_capacity(args.file_ids.len());
        for file_id in args.file_ids {
            let item = match caller.remove(&file_id, args.delete_remote).await {
                Ok(_) => DeleteItem { file_id, deleted: true, error: None },
                Err(e) => DeleteItem { file_id, deleted: false, error: Some(e.to_string()) },
            };
            files.push(item);
        }
        if !files.is_empty() && files.iter().all(|f| !f.deleted) {
            let reasons: Vec<String> =
                files.iter().map(|f| format!("{}: {}", f.file_id, f.error.as_deref().unwrap_or(""))).collect();
            return Ok(failure(format!("nothing was deleted: {}", reasons.join("; "))));
        }
        let deleted = files.iter().filter(|f| f.deleted).count();
        let summary = format!("deleted {deleted} of {} file(s)", files.len());
        Ok(success(&DeleteFilesResult { files }, summary, Vec::new()))
    }

    #[tool(
        description = "Change a file's name, description, tags (`tags` replaces them; `add_tags`/`remove_tags` edit them) or key-value attributes (a null value removes a key).",
        input_schema = input_schema::<UpdateFileArgs>(),
        output_schema = output_schema::<FileView>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_file(
        &self,
        Parameters(args): Parameters<UpdateFileArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = self.caller(&context)?;
        match caller.update(&args.file_id, args.update).await {
            Ok(record) => {
                let link = resource_link(&record);
                let summary = format!("updated {} ({})", record.name, record.id);
                Ok(success(&FileView::from(record), summary, vec![link]))
            }
            Err(e) => Ok(failure(e.to_string())),
        }
    }

    #[tool(
        description = "Make a download link a person can open (for a path inside the server's sandbox roots — a directory becomes a ZIP — or a stored file_id). It works max_downloads times (default 1) and expires after expiry_minutes (default 5). Hand people links instead of file contents.",
        input_schema = input_schema::<CreateLinkArgs>(),
        output_schema = output_schema::<Link>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn create_download_link(
        &self,
        Parameters(args): Parameters<CreateLinkArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = self.caller(&context)?;
        let target = match (args.path, args.file_id) {
            (Some(path), None) => LinkTarget::Path(PathBuf::from(path)),
            (None, Some(id)) => LinkTarget::FileId(id),
            _ => return Err(ErrorData::invalid_params("give exactly one of path and file_id", None)),
        };
        let request = LinkRequest {
            target,
            expiry_minutes: args.expiry_minutes,
            max_downloads: args.max_downloads,
            filename: args.filename,
            max_size: None,
        };
        match caller.create_link(request).await {
            Ok(link) => {
                let summary =
                    format!("{} ({}, expires at {})", link.download_url, human_size(link.size), link.expires_at);
                Ok(success(&Link::from(link), summary, Vec::new()))
            }
            Err(e) => Ok(failure(e.to_string())),
        }
    }

    #[tool(
        description = "Your download links: how many in all, active, used up, expired.",
        output_schema = output_schema::<LinkStats>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn download_stats(&self, context: RequestContext<RoleServer>) -> ToolResult {
        let caller = self.caller(&context)?;
        match caller.link_stats(None).await {
            Ok(stats) => {
                let summary = format!(
                    "{} link(s): {} active, {} used, {} expired",
                    stats.total, stats.active, stats.used, stats.expired
                );
                Ok(success(&stats, summary, Vec::new()))
            }
            Err(e) => Ok(failure(e.to_string())),
        }
    }

    #[tool(
        description = "Record an object that already sits at a provider (an s3://bucket/key address, a provider URL, a Supabase bucket/key) without uploading it again. Allowed only for references the server's operator granted you. Its SHA-256 comes from the provider, or from reading it once (hash: false skips that; it is then marked unverified). Returns a file_id like any upload.",
        input_schema = input_schema::<RegisterFileArgs>(),
        output_schema = output_schema::<Registered>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn register_file(
        &self,
        Parameters(args): Parameters<RegisterFileArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = self.caller(&context)?;
        match caller.register(&args.reference, args.provider.as_deref(), args.hash.unwrap_or(true)).await {
            Ok(registered) => {
                let link = resource_link(&registered.file);
                let summary = format!(
                    "registered {} at {} as {} (SHA-256 from: {:?})",
                    registered.file.name, registered.file.provider, registered.file.id, registered.digest_source
                );
                Ok(success(&registered, summary, vec![link]))
            }
            Err(e) => Ok(failure(e.to_string())),
        }
    }

    #[tool(
        description = "Statistics of your files: files and bytes per provider, uploads and bytes deduplication spared, downloads by source (cache hits), failures by kind, most-downloaded files; since (seconds since the epoch) limits the activity counted.",
        input_schema = input_schema::<FileStatsArgs>(),
        output_schema = output_schema::<Stats>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn file_stats(
        &self,
        Parameters(args): Parameters<FileStatsArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = self.caller(&context)?;
        match caller.stats(args.since).await {
            Ok(stats) => {
                let files: u64 = stats.providers.values().map(|p| p.files).sum();
                let downloads: u64 = stats.downloads.values().sum();
                let summary = format!(
                    "{files} file(s); {} upload(s), {} deduplicated; {downloads} download(s)",
                    stats.uploads, stats.dedup_hits
                );
                Ok(success(&stats, summary, Vec::new()))
            }
            Err(e) => Ok(failure(e.to_string())),
        }
    }

    #[tool(
        description = "The providers files can go to, what each can do (download original bytes or derived content, list, delete, presign), and the limits of these tools.",
        output_schema = output_schema::<ListProvidersResult>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_providers(&self) -> ToolResult {
        let providers = self.gateway.plugins();
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        let summary = format!("{} provider(s): {}", providers.len(), names.join(", "));
        let result = ListProvidersResult {
            providers,
            inline_content_max_bytes: INLINE_CONTENT_MAX_BYTES as u64,
            read_file_max_bytes: READ_FILE_MAX_BYTES as u64,
        };
        Ok(success(&result, summary, Vec::new()))
    }

    #[tool(
        description = "Read a text file's content (or a provider's derived text, e.g. extracted from a PDF) inline, up to 64 KiB; longer text is cut and marked truncated. Binary files are refused: use create_download_link for those.",
        input_schema = input_schema::<ReadFileArgs>(),
        output_schema = output_schema::<ReadFileResult>(),
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn read_file(
        &self,
        Parameters(args): Parameters<ReadFileArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = self.caller(&context)?;
        let max = args.max_bytes.map_or(READ_FILE_MAX_BYTES, |m| (m as usize).clamp(1, READ_FILE_MAX_BYTES));
        let content = match caller.read_inline(&args.file_id, args.derived, max).await {
            Ok(content) => content,
            Err(e) => return Ok(failure(e.to_string())),
        };
        let Some(text) = content.text() else {
            return Ok(failure(format!(
                "{} ({}) is binary ({}); read_file returns text only: use create_download_link for a URL to it",
                content.record.name, content.record.id, content.mime
            )));
        };
        let link = resource_link(&content.record);
        let cut = if content.truncated { ", truncated" } else { "" };
        let summary = format!("{} ({}): {} bytes of text{cut}", content.record.name, content.record.id, text.len());
        let result = ReadFileResult {
            file_id: content.record.id.clone(),
            name: content.record.name.clone(),
            mime: content.mime.clone(),
            size: content.size,
            text: text.to_string(),
            truncated: content.truncated,
        };
        let mut outcome = success(&result, summary, vec![link]);
        // The text is the point: give it to models that read only content blocks.
        outcome.content.insert(1, rmcp::model::ContentBlock::text(result.text));
        Ok(outcome)
    }
}
