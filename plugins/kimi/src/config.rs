//! The Kimi adapter's `config` table. The API key is not part of it: it is
//! the provider's `api_key` secret, which the host puts into the
//! `Authorization` header without it ever entering the adapter.

use serde::Deserialize;
use wharf_adapter_sdk::{ProviderError, config};

use crate::core::{PURPOSES, known_purpose};

pub static CONFIG: config::Slot<Config> = config::Slot::new();

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The API root: international `https://api.moonshot.ai/v1`, China
    /// `https://api.moonshot.cn/v1`. Keys work on one platform only.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The purpose of uploads that neither name one nor look like an image,
    /// a video or a JSON Lines file.
    #[serde(default = "default_purpose")]
    pub default_purpose: String,
}

fn default_base_url() -> String {
    "https://api.moonshot.ai/v1".into()
}

fn default_purpose() -> String {
    "file-extract".into()
}

impl Config {
    pub fn parse(json: &str) -> Result<Self, ProviderError> {
        let mut config: Config = config::parse(json)?;
        let has_scheme = config.base_url.starts_with("https://") || config.base_url.starts_with("http://");
        if !has_scheme || config.base_url.contains(['?', '#']) {
            return Err(ProviderError::invalid(format!(
                "base_url {:?} must be an http(s) URL without query, such as \"https://api.moonshot.ai/v1\" (or \"https://api.moonshot.cn/v1\" in China)",
                config.base_url
            )));
        }
        // Paths are appended as "/files...": one slash, whatever the config says.
        config.base_url = config.base_url.trim_end_matches('/').to_string();
        if !known_purpose(&config.default_purpose) {
            return Err(ProviderError::invalid(format!(
                "default_purpose {:?} is not a Kimi purpose; use one of: {}",
                config.default_purpose,
                PURPOSES.join(", ")
            )));
        }
        Ok(config)
    }
}
