//! The reference forms `resolve` recognises: object URLs under the
//! configured `base_url` (`…/object/BUCKET/KEY`, and the `public/`,
//! `authenticated/`, `sign/` and `info/` routes to the same object; a query
//! such as a signed URL's token is ignored), and `BUCKET/KEY`.

use wharf_adapter_sdk::{ProviderError, percent};

use crate::config::Config;

/// Routes that can stand between `/object/` and the bucket in a URL.
const ROUTES: [&str; 4] = ["public/", "authenticated/", "sign/", "info/"];

/// The key in the configured bucket that `reference` names.
pub fn key_of(config: &Config, reference: &str) -> Result<String, ProviderError> {
    let path = if reference.contains("://") {
        let Some(rest) = reference.strip_prefix(config.base_url.as_str()) else {
            return Err(ProviderError::invalid(format!(
                "{reference:?} is not a URL under this provider's base_url {}",
                config.base_url
            )));
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let Some(object) = rest.strip_prefix("/object/") else {
            return Err(ProviderError::invalid(format!(
                "{reference:?} is not an object URL ({}/object/BUCKET/KEY)",
                config.base_url
            )));
        };
        let object = ROUTES.iter().find_map(|route| object.strip_prefix(route)).unwrap_or(object);
        percent::decode(object).ok_or_else(|| ProviderError::invalid(format!("{object:?} does not decode to UTF-8")))?
    } else {
        reference.to_string()
    };
    let (bucket, key) = path.split_once('/').unwrap_or((&path, ""));
    if bucket != config.bucket {
        return Err(ProviderError::invalid(format!(
            "{reference:?} is in bucket {bucket:?}; this provider holds bucket {:?} (configure another provider for that bucket)",
            config.bucket
        )));
    }
    if key.is_empty() || key.ends_with('/') {
        return Err(ProviderError::invalid(format!("{reference:?} names a bucket or a folder, not an object")));
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(r#"{"base_url": "https://ref.supabase.co/storage/v1", "bucket": "docs"}"#).unwrap()
    }

    #[test]
    fn every_form_names_the_same_key() {
        let config = config();
        for reference in [
            "docs/users/alice/a b.pdf",
            "https://ref.supabase.co/storage/v1/object/docs/users/alice/a%20b.pdf",
            "https://ref.supabase.co/storage/v1/object/public/docs/users/alice/a%20b.pdf",
            "https://ref.supabase.co/storage/v1/object/sign/docs/users/alice/a%20b.pdf?token=x",
        ] {
            assert_eq!(key_of(&config, reference).unwrap(), "users/alice/a b.pdf", "{reference}");
        }
    }

    #[test]
    fn foreign_forms_are_invalid() {
        let config = config();
        for reference in [
            "other/a.pdf",
            "docs/",
            "docs",
            "https://other.supabase.co/storage/v1/object/docs/a.pdf",
            "https://ref.supabase.co/storage/v1/bucket/docs",
            "https://ref.supabase.co/storage/v1/object/public/other/a.pdf",
        ] {
            let error = key_of(&config, reference).unwrap_err();
            assert!(
                matches!(error.kind, wharf_adapter_sdk::ErrorKind::InvalidRequest),
                "{reference}: {}",
                error.message
            );
        }
    }
}
