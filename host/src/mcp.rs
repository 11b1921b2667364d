//! The Model Context Protocol server: Wharf's tools for AI clients.

use std::path::PathBuf;

use base64::Engine as _;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{Json, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gateway::{Caller, Downloaded, Source, UploadOptions, Uploaded};

/// A file to upload: a path inside the sandbox roots, or inline content.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FileInput {
    /// A path inside the server's sandbox roots.
    Path(String),
    /// Content sent inline, base64-encoded.
    Content {
        filename: String,
        /// The bytes, base64-encoded (standard alphabet, padding optional).
        content: String,
        mime_type: Option<String>,
    },
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UploadFilesArgs {
    /// Files to upload.
    pub files: Vec<FileInput>,
    /// Provider to upload to; the configured default when absent.
    pub provider: Option<String>,
    /// What the provider should use the files for (e.g. file-extract).
    pub purpose: Option<String>,
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
    /// Why it failed, when it did.
    pub error: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DownloadFileArgs {
    /// An id returned by upload_files (wf_…), or sha256:<hex>.
    pub file_id: String,
    /// Where to write: a file path, or a directory to write into. The working
    /// directory when absent. Must be inside the server's sandbox roots.
    pub destination: Option<String>,
    /// Fetch the provider's derived content (e.g. extracted text) into a
    /// separate file instead of the original bytes.
    #[serde(default)]
    pub derived: bool,
}

#[derive(Clone)]
pub struct WharfMcp {
    gateway: Caller,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl WharfMcp {
    pub fn new(gateway: Caller) -> Self {
        Self { gateway, tool_router: Self::tool_router() }
    }

    #[tool(
        description = "Upload files by path or as base64 content. Identical bytes already at the provider are not sent again (deduplicated: true). Returns an id per file for download_file."
    )]
    async fn upload_files(
        &self,
        Parameters(args): Parameters<UploadFilesArgs>,
    ) -> Result<Json<UploadFilesResult>, String> {
        let options = UploadOptions { provider: args.provider, purpose: args.purpose, ..UploadOptions::default() };
        let mut files = Vec::with_capacity(args.files.len());
        for input in args.files {
            let (label, source) = match input {
                FileInput::Path(path) => (path.clone(), Ok(Source::Path(PathBuf::from(path)))),
                FileInput::Content { filename, content, mime_type } => {
                    let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(content.trim().trim_end_matches('='))
                        .map_err(|e| format!("content is not valid base64: {e}"));
                    let source = decoded.map(|bytes| Source::Bytes {
                        name: filename.clone(),
                        content: bytes.into(),
                        mime: mime_type,
                    });
                    (filename, source)
                }
            };
            let outcome = match source {
                Ok(source) => self.gateway.upload(source, &options).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            files.push(match outcome {
                Ok(file) => UploadItem { input: label, file: Some(file), error: None },
                Err(error) => UploadItem { input: label, file: None, error: Some(error) },
            });
        }
        if !files.is_empty() && files.iter().all(|f| f.error.is_some()) {
            let reasons: Vec<String> =
                files.iter().map(|f| format!("{}: {}", f.input, f.error.as_deref().unwrap_or(""))).collect();
            return Err(format!("no file was uploaded: {}", reasons.join("; ")));
        }
        Ok(Json(UploadFilesResult { files }))
    }

    #[tool(
        description = "Download a file by the id upload_files returned (or sha256:<hex>) to a path, verified against its SHA-256. Nothing is written unless the bytes match."
    )]
    async fn download_file(&self, Parameters(args): Parameters<DownloadFileArgs>) -> Result<Json<Downloaded>, String> {
        let destination = args.destination.map(PathBuf::from);
        let result = if args.derived {
            self.gateway.download_derived(&args.file_id, destination.as_deref()).await
        } else {
            self.gateway.download(&args.file_id, destination.as_deref(), None).await
        };
        result.map(Json).map_err(|e| e.to_string())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for WharfMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("wharf", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Wharf moves files to and from LLM providers and storage. upload_files takes paths or base64 content and returns ids; download_file writes the exact original bytes back to a path.",
            )
    }
}

/// Serves MCP on standard input and output until the client disconnects.
pub async fn serve_stdio(gateway: Caller) -> anyhow::Result<()> {
    let service = WharfMcp::new(gateway).serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}
