//! The local adapter's `config` table. Where objects live is not part of it:
//! that is the directory the host grants (`storage_dir`).

use serde::Deserialize;
use wharf_adapter_sdk::{ProviderError, config};

pub static CONFIG: config::Slot<Config> = config::Slot::new();

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Objects go under this folder of the granted directory.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_prefix() -> String {
    "objects".into()
}

impl Config {
    pub fn parse(json: &str) -> Result<Self, ProviderError> {
        let config: Config = config::parse(json)?;
        let valid =
            !config.prefix.is_empty() && config.prefix.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
        if !valid {
            return Err(ProviderError::invalid(format!(
                "prefix {:?} must be a relative folder name such as \"objects\"",
                config.prefix
            )));
        }
        Ok(config)
    }
}
