//! The GLM adapter's `config` table. The API key is not part of it: it is the
//! provider's `api_key` secret, which only the host ever sees.

use serde::Deserialize;
use wharf_adapter_sdk::{ProviderError, config};

pub static CONFIG: config::Slot<Config> = config::Slot::new();

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// China (BigModel) by default; Z.ai is `https://api.z.ai/api/paas/v4`.
    /// Both serve the same `/files` paths.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The purpose of uploads that name none, and of recorded objects whose
    /// purpose was not recorded.
    #[serde(default = "default_purpose")]
    pub default_purpose: String,
    /// GLM lists files one purpose at a time: "list all" walks these in order.
    #[serde(default = "default_purposes")]
    pub purposes: Vec<String>,
    /// Count the purpose's files before an upload and refuse when it is full,
    /// at the cost of listing it first.
    #[serde(default = "yes")]
    pub check_file_count: bool,
}

fn default_base_url() -> String {
    "https://open.bigmodel.cn/api/paas/v4".into()
}

fn default_purpose() -> String {
    "file-extract".into()
}

fn default_purposes() -> Vec<String> {
    ["batch", "file-extract", "code-interpreter", "agent"].map(String::from).to_vec()
}

fn yes() -> bool {
    true
}

/// Purposes go into query strings and into list cursors (`purpose:after`),
/// so they are kept to the characters GLM's own purposes use.
fn check_purpose(purpose: &str, key: &str) -> Result<(), ProviderError> {
    let valid = !purpose.is_empty()
        && purpose.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ProviderError::invalid(format!(
            "{key}: {purpose:?} is not a GLM purpose; use one such as \"file-extract\", \"batch\", \"code-interpreter\" or \"agent\""
        )))
    }
}

impl Config {
    pub fn parse(json: &str) -> Result<Self, ProviderError> {
        let mut config: Config = config::parse(json)?;
        config.base_url = config.base_url.trim_end_matches('/').to_string();
        let scheme_ok = config.base_url.starts_with("https://") || config.base_url.starts_with("http://");
        if !scheme_ok || config.base_url.contains(['?', '#']) {
            return Err(ProviderError::invalid(format!(
                "base_url {:?} must be an http(s) URL without query, such as \"https://open.bigmodel.cn/api/paas/v4\" or \"https://api.z.ai/api/paas/v4\"",
                config.base_url
            )));
        }
        check_purpose(&config.default_purpose, "default_purpose")?;
        if config.purposes.is_empty() {
            return Err(ProviderError::invalid("purposes is empty: list at least one purpose to list files from"));
        }
        for (i, purpose) in config.purposes.iter().enumerate() {
            check_purpose(purpose, "purposes")?;
            if config.purposes[..i].contains(purpose) {
                return Err(ProviderError::invalid(format!("purposes lists {purpose:?} twice")));
            }
        }
        Ok(config)
    }
}
