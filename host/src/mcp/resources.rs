//! A principal's files as MCP resources: `wharf://files/{id}`.

use base64::Engine as _;
use rmcp::ErrorData;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
};

use super::file_uri;
use super::types::RESOURCE_MAX_BYTES;
use crate::catalog::ObjectQuery;
use crate::gateway::{Caller, GatewayError};

const PAGE: usize = 100;

pub(super) fn gateway_error(e: GatewayError) -> ErrorData {
    match e {
        GatewayError::UnknownId(_) => ErrorData::resource_not_found(e.to_string(), None),
        _ => ErrorData::internal_error(e.to_string(), None),
    }
}

pub(super) async fn list(caller: &Caller, cursor: Option<String>) -> Result<ListResourcesResult, ErrorData> {
    let query = ObjectQuery { after: cursor, limit: Some(PAGE), ..ObjectQuery::default() };
    let page = caller.list(query).await.map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
    let resources = page
        .files
        .into_iter()
        .map(|file| {
            Resource::new(file_uri(&file.id), file.name)
                .with_mime_type(file.mime)
                .with_size(file.size)
                .with_description(format!("at {}, sha256:{}", file.provider, file.sha256))
        })
        .collect();
    let mut result = ListResourcesResult::with_all_items(resources);
    result.next_cursor = page.next;
    Ok(result)
}

pub(super) fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new("wharf://files/{id}", "Wharf file")
            .with_description("A file stored through Wharf, by its id (wf_…)"),
    ])
}

/// Text for text content, a base64 blob for the rest, both up to 1 MiB;
/// larger files are for download links.
pub(super) async fn read(caller: &Caller, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let id = uri.strip_prefix("wharf://files/").filter(|id| !id.is_empty()).ok_or_else(|| {
        ErrorData::invalid_params(format!("{uri:?} is not a Wharf resource; they look like wharf://files/{{id}}"), None)
    })?;
    let content = caller.read_inline(id, false, RESOURCE_MAX_BYTES).await.map_err(gateway_error)?;
    if content.truncated {
        return Err(ErrorData::invalid_request(
            format!(
                "{} ({}) is {} bytes, more than the {RESOURCE_MAX_BYTES} bytes a resource read returns; \
                 use the create_download_link tool for a URL to fetch it",
                content.record.name,
                content.record.id,
                content.size.unwrap_or_default()
            ),
            None,
        ));
    }
    let contents = match content.text() {
        Some(text) => ResourceContents::TextResourceContents {
            uri: uri.to_string(),
            mime_type: Some(content.mime.clone()),
            text: text.to_string(),
            meta: None,
        },
        None => ResourceContents::BlobResourceContents {
            uri: uri.to_string(),
            mime_type: Some(content.mime.clone()),
            blob: base64::engine::general_purpose::STANDARD.encode(&content.bytes),
            meta: None,
        },
    };
    Ok(ReadResourceResult::new(vec![contents]))
}
