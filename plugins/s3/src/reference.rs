//! The reference forms `resolve` recognises: `s3://bucket/key`, and HTTPS
//! (or HTTP) URLs of the configured endpoint, path-style
//! (`endpoint/bucket/key`) or virtual-hosted (`bucket.endpoint/key`),
//! whichever style the adapter itself uses. A query (a presigned URL's
//! signature) is ignored: only the object it names matters.

use wharf_adapter_sdk::ProviderError;
use wharf_adapter_sdk::percent::decode_lossy;

use crate::config::Config;

/// The key in the configured bucket that `reference` names.
pub fn key_of(config: &Config, reference: &str) -> Result<String, ProviderError> {
    let (bucket, key) = if let Some(rest) = reference.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        (bucket.to_string(), key.to_string())
    } else if let Some((scheme, rest)) = reference.split_once("://") {
        endpoint_url(config, scheme, rest).ok_or_else(|| {
            ProviderError::invalid(format!(
                "{reference:?} is not a URL of this provider's endpoint {}://{}{}",
                config.target.scheme, config.target.authority, config.target.base_path
            ))
        })?
    } else {
        return Err(ProviderError::invalid(format!(
            "{reference:?} is not an S3 reference: use s3://{}/KEY or a URL of the endpoint",
            config.bucket
        )));
    };
    if bucket != config.bucket {
        return Err(ProviderError::invalid(format!(
            "{reference:?} is in bucket {bucket:?}; this provider holds bucket {:?} (configure another provider for that bucket)",
            config.bucket
        )));
    }
    if key.is_empty() || key.ends_with('/') {
        return Err(ProviderError::invalid(format!("{reference:?} names a bucket or a folder, not an object")));
    }
    Ok(key)
}

/// `(bucket, key)` of a URL under the endpoint, in either addressing style.
fn endpoint_url(config: &Config, scheme: &str, rest: &str) -> Option<(String, String)> {
    let target = &config.target;
    if !scheme.eq_ignore_ascii_case(&target.scheme) {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = authority.to_ascii_lowercase();
    let path = path.strip_prefix(target.base_path.as_str())?.strip_prefix('/')?;
    if authority == target.authority {
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        return Some((decode_lossy(bucket), decode_lossy(key)));
    }
    let bucket = authority.strip_suffix(&target.authority)?.strip_suffix('.')?;
    Some((bucket.to_string(), decode_lossy(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(r#"{"endpoint": "https://s3.example.com/base", "region": "us-east-1", "bucket": "my-bucket"}"#)
            .unwrap()
    }

    #[test]
    fn every_form_names_the_same_key() {
        let config = config();
        for reference in [
            "s3://my-bucket/users/alice/a b.pdf",
            "https://s3.example.com/base/my-bucket/users/alice/a%20b.pdf",
            "https://my-bucket.s3.example.com/base/users/alice/a%20b.pdf?X-Amz-Signature=abc",
            "HTTPS://S3.EXAMPLE.COM/base/my-bucket/users/alice/a%20b.pdf",
        ] {
            assert_eq!(key_of(&config, reference).unwrap(), "users/alice/a b.pdf", "{reference}");
        }
    }

    #[test]
    fn foreign_forms_are_invalid() {
        let config = config();
        for reference in [
            "s3://other-bucket/k",
            "s3://my-bucket/",
            "s3://my-bucket",
            "https://elsewhere.example.com/base/my-bucket/k",
            "http://s3.example.com/base/my-bucket/k",
            "https://s3.example.com/my-bucket/k",
            "users/alice/a.pdf",
            "https://other.s3.example.com/base/k",
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
