//! The S3 adapter's `config` table. The credentials are not part of it: they
//! are the provider's secrets `access_key_id` and `secret_access_key`, which
//! the host fills into headers and signing keys without showing them to the
//! adapter.

use serde::Deserialize;
use wharf_adapter_sdk::{ProviderError, config};

pub static CONFIG: config::Slot<Config> = config::Slot::new();

const MIB: u64 = 1 << 20;
/// S3's smallest part (all but the last) and largest part or single PUT.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 << 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `scheme://host[:port][/base/path]`, e.g. `http://127.0.0.1:8333`.
    pub endpoint: String,
    /// The signing region; compatible stores want a nominal one (`us-east-1`).
    pub region: String,
    pub bucket: String,
    /// Prepended to every key this adapter writes, and the scope of `list`.
    #[serde(default)]
    pub prefix: String,
    /// `endpoint/bucket/key` (true) or `bucket.endpoint/key` (false).
    #[serde(default = "yes")]
    pub path_style: bool,
    /// Objects of at least this many bytes go up in parts.
    #[serde(default = "default_threshold")]
    pub multipart_threshold: u64,
    /// Bytes per part; grown for objects that would need more than 10,000 parts.
    #[serde(default = "default_part_size")]
    pub part_size: u64,
    /// Send `x-amz-checksum-sha256`, for stores that check it: a header on
    /// single PUTs, a trailer on each multipart part (`aws-chunked`).
    #[serde(default)]
    pub checksum_sha256: bool,
    /// Sign single PUTs with `UNSIGNED-PAYLOAD` instead of the content's SHA-256.
    #[serde(default)]
    pub unsigned_payload: bool,
    /// The access key id again, as plain config: a presigned URL carries it in
    /// its query string, which is part of what is signed, so the adapter must
    /// know it (the host fills secrets into headers only). It is an identifier
    /// that every presigned URL reveals, not the secret. Without it the
    /// adapter declares presign unsupported.
    #[serde(default)]
    pub access_key_id_for_presign: Option<String>,

    /// Derived from `endpoint` by `parse`.
    #[serde(skip)]
    pub target: Target,
}

/// Where requests go, split the way SigV4 needs it.
#[derive(Debug, Default)]
pub struct Target {
    pub scheme: String,
    /// `host[:port]` as the `Host` header carries it: lowercase, no default port.
    pub authority: String,
    /// A path the store is mounted under (`/storage/v1/s3`), or empty.
    pub base_path: String,
}

fn yes() -> bool {
    true
}

fn default_threshold() -> u64 {
    64 * MIB
}

fn default_part_size() -> u64 {
    16 * MIB
}

fn invalid(message: String) -> ProviderError {
    ProviderError::invalid(message)
}

impl Config {
    pub fn parse(json: &str) -> Result<Self, ProviderError> {
        let mut config: Config = config::parse(json)?;
        config.target = parse_endpoint(&config.endpoint)?;
        let region_ok =
            !config.region.is_empty() && config.region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !region_ok {
            return Err(invalid(format!("region {:?} must be a region name such as \"us-east-1\"", config.region)));
        }
        check_bucket(&config.bucket, config.path_style)?;
        check_prefix(&config.prefix)?;
        if !(MIN_PART..=MAX_PART).contains(&config.part_size) {
            return Err(invalid(format!(
                "part_size {} must be between {MIN_PART} (5 MiB) and {MAX_PART} (5 GiB) bytes",
                config.part_size
            )));
        }
        if !(1..=MAX_PART).contains(&config.multipart_threshold) {
            return Err(invalid(format!(
                "multipart_threshold {} must be between 1 and {MAX_PART} (5 GiB, the largest single PUT) bytes",
                config.multipart_threshold
            )));
        }
        let id_ok = |id: &String| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !config.access_key_id_for_presign.as_ref().is_none_or(id_ok) {
            return Err(invalid("access_key_id_for_presign must be an access key id (letters and digits)".into()));
        }
        Ok(config)
    }
}

fn parse_endpoint(endpoint: &str) -> Result<Target, ProviderError> {
    let hint = "write it as scheme://host[:port][/path], e.g. \"https://s3.us-east-1.amazonaws.com\" or \"http://127.0.0.1:8333\"";
    let (scheme, rest) =
        endpoint.split_once("://").ok_or_else(|| invalid(format!("endpoint {endpoint:?} has no scheme; {hint}")))?;
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => {
            return Err(invalid(format!("endpoint {endpoint:?}: only http and https are supported; {hint}")));
        }
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) || path.contains(['?', '#']) {
        return Err(invalid(format!(
            "endpoint {endpoint:?} must be a plain URL without credentials, query or fragment; {hint}"
        )));
    }
    // The Host header that will be sent, which SigV4 signs: the client drops a
    // default port, so the signature must not include it either.
    let authority = authority.to_ascii_lowercase();
    let authority = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!("endpoint {endpoint:?} has a bad port; {hint}")));
            }
            if port == default_port { host.to_string() } else { authority }
        }
        _ => authority,
    };
    let base_path = path.trim_end_matches('/');
    if base_path.split('/').any(|s| s == "." || s == "..") {
        return Err(invalid(format!("endpoint {endpoint:?}: its path may not contain '.' or '..' segments")));
    }
    Ok(Target { scheme: scheme.to_string(), authority, base_path: base_path.to_string() })
}

fn check_bucket(bucket: &str, path_style: bool) -> Result<(), ProviderError> {
    let chars_ok =
        bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_');
    if !(3..=63).contains(&bucket.len()) || !chars_ok {
        return Err(invalid(format!(
            "bucket {bucket:?} must be a bucket name: 3 to 63 lowercase letters, digits, '.', '-' or '_'"
        )));
    }
    if !path_style && bucket.contains(['_', '.']) {
        return Err(invalid(format!(
            "bucket {bucket:?} cannot be a host name label (virtual-hosted style); set path_style = true"
        )));
    }
    Ok(())
}

/// The prefix becomes part of every request path; '.' and '..' segments would
/// be resolved away by URL handling and break signatures.
fn check_prefix(prefix: &str) -> Result<(), ProviderError> {
    let segments_ok = prefix.split('/').all(|s| s != "." && s != "..");
    if prefix.starts_with('/') || !segments_ok || prefix.len() > 512 {
        return Err(invalid(format!(
            "prefix {prefix:?} must be a relative key prefix such as \"wharf/\" (no leading '/', no '.' or '..' segments)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_into_what_sigv4_signs() {
        let t = parse_endpoint("http://127.0.0.1:8333").unwrap();
        assert_eq!((t.scheme.as_str(), t.authority.as_str(), t.base_path.as_str()), ("http", "127.0.0.1:8333", ""));
        let t = parse_endpoint("https://S3.Example.com:443/storage/v1/s3/").unwrap();
        assert_eq!((t.authority.as_str(), t.base_path.as_str()), ("s3.example.com", "/storage/v1/s3"));
        let t = parse_endpoint("http://[::1]:9000").unwrap();
        assert_eq!(t.authority, "[::1]:9000");
        let t = parse_endpoint("http://[::1]").unwrap();
        assert_eq!(t.authority, "[::1]");
        for bad in ["127.0.0.1:8333", "ftp://x", "http://u:p@x", "http://x?y", "http://x:8a", "http:///"] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }
}
