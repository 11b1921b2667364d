//! The Supabase adapter's `config` table. The project key is not part of it:
//! it is the `api_key` secret, which only the host ever sees.

use serde::Deserialize;
use wharf_adapter_sdk::{ProviderError, config};

pub static CONFIG: config::Slot<Config> = config::Slot::new();

/// Supabase recommends TUS above 6 MB; standard uploads below.
const DEFAULT_TUS_THRESHOLD: u64 = 6 * 1024 * 1024;
const DEFAULT_SIGNED_URL_EXPIRY: u64 = 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `https://<ref>.supabase.co/storage/v1` (or `<ref>.storage.supabase.co`
    /// for large uploads, or a self-hosted `<gateway>/storage/v1`).
    pub base_url: String,
    pub bucket: String,
    /// Put before every object key, e.g. `"wharf/"`.
    #[serde(default)]
    pub prefix: String,
    /// Overwrite an existing object of the same key (`x-upsert: true`).
    #[serde(default)]
    pub upsert: bool,
    /// Objects larger than this many bytes go through TUS resumable upload.
    #[serde(default = "default_tus_threshold")]
    pub tus_threshold: u64,
    #[serde(default)]
    pub list_version: ListVersion,
    /// Seconds a signed URL lives when the host asks for no particular expiry.
    #[serde(default = "default_signed_url_expiry")]
    pub signed_url_expiry: u64,
    #[serde(default)]
    pub auth: Auth,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum ListVersion {
    /// Cursor listing (`list-v2`), falling back to v1 where the project lacks it.
    #[default]
    Auto,
    V1,
    V2,
}

/// Which headers carry the key.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// `apikey` and `Authorization: Bearer`: legacy `anon`/`service_role`
    /// keys, which are JWTs.
    #[default]
    Both,
    /// `apikey` only: the newer `sb_secret_…`/`sb_publishable_…` keys, which
    /// are not JWTs and are refused in `Authorization`.
    Apikey,
}

fn default_tus_threshold() -> u64 {
    DEFAULT_TUS_THRESHOLD
}

fn default_signed_url_expiry() -> u64 {
    DEFAULT_SIGNED_URL_EXPIRY
}

/// Characters Supabase accepts in object keys; anything else is `InvalidKey`.
pub fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_/!.*'() &$=@;:+,?-".contains(c)
}

impl Config {
    pub fn parse(json: &str) -> Result<Self, ProviderError> {
        let mut config: Config = config::parse(json)?;
        config.base_url = config.base_url.trim_end_matches('/').to_string();
        let scheme_ok = config.base_url.starts_with("https://") || config.base_url.starts_with("http://");
        if !scheme_ok || config.base_url.contains(['?', '#']) {
            return Err(ProviderError::invalid(format!(
                "base_url {:?} must be an http(s) URL such as \"https://<ref>.supabase.co/storage/v1\"",
                config.base_url
            )));
        }
        let bucket_ok = !config.bucket.is_empty() && config.bucket.chars().all(|c| is_key_char(c) && c != '/');
        if !bucket_ok {
            return Err(ProviderError::invalid(format!(
                "bucket {:?} must be a bucket id: a non-empty name without '/'",
                config.bucket
            )));
        }
        let prefix_ok =
            config.prefix.chars().all(is_key_char) && !config.prefix.starts_with('/') && !config.prefix.contains("//");
        if !prefix_ok {
            return Err(ProviderError::invalid(format!(
                "prefix {:?} may use only Supabase key characters (A-Z a-z 0-9 _ / ! . * ' ( ) space & $ = @ ; : + , ? -), not start with '/' nor contain '//'",
                config.prefix
            )));
        }
        if config.signed_url_expiry == 0 {
            return Err(ProviderError::invalid("signed_url_expiry must be at least 1 second"));
        }
        Ok(config)
    }
}
