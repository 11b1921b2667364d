//! AWS Signature Version 4 for S3, header-signed requests and presigned URLs.
//!
//! The secret access key never enters the adapter: the first step of the key
//! derivation, HMAC keyed by `"AWS4" + secret`, runs in the host
//! (`secrets::hmac_sha256`); the rest of the chain is keyed by derived values.
//! The access key id goes into the `Authorization` header as a placeholder
//! the host fills in; it is not part of what a header signature covers.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use wharf_adapter_sdk::percent::encode_component;
use wharf_adapter_sdk::{ProviderError, secrets};

/// Names of the provider's secrets, as keys of its `secrets` table.
const ACCESS_KEY_ID: &str = "access_key_id";
const SECRET_ACCESS_KEY: &str = "secret_access_key";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The longest a presigned URL may live.
pub const MAX_PRESIGN_SECS: u64 = 604_800;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The canonical query string, which is also what the request URL carries, so
/// that the store sees exactly what was signed.
pub fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode_component(k), encode_component(v))).collect();
    encoded.sort();
    encoded.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Header values as SigV4 canonicalises them: trimmed, inner runs of spaces
/// collapsed. Requests carry the canonical value, so nothing can differ.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch.
pub fn amz_timestamp(secs: u64) -> String {
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Signs requests for one region at one moment.
pub struct Signer {
    key: Vec<u8>,
    timestamp: String,
    scope: String,
}

impl Signer {
    /// A signer for requests sent now. One host call, for the date key.
    pub fn now(region: &str) -> Result<Self, ProviderError> {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let timestamp = amz_timestamp(secs);
        let k_date = secrets::hmac_sha256(SECRET_ACCESS_KEY, "AWS4", &timestamp.as_bytes()[..8])?;
        Ok(Self::from_date_key(&k_date, &timestamp, region))
    }

    /// The rest of the key derivation, from `HMAC("AWS4" + secret, date)`.
    fn from_date_key(k_date: &[u8], timestamp: &str, region: &str) -> Self {
        let k_region = hmac(k_date, region.as_bytes());
        let k_service = hmac(&k_region, b"s3");
        let key = hmac(&k_service, b"aws4_request");
        let scope = format!("{}/{region}/s3/aws4_request", &timestamp[..8]);
        Self { key, timestamp: timestamp.to_string(), scope }
    }

    fn signature(&self, canonical_request: &str) -> String {
        let string_to_sign =
            format!("{ALGORITHM}\n{}\n{}\n{}", self.timestamp, self.scope, sha256_hex(canonical_request.as_bytes()));
        hex::encode(hmac(&self.key, string_to_sign.as_bytes()))
    }

    /// Signs a request: adds `x-amz-date` and `x-amz-content-sha256` to
    /// `headers` (lowercase names), canonicalises their values, and returns the
    /// `Authorization` value. Every header in `headers` is signed, and `host`.
    pub fn authorize(
        &self,
        method: &str,
        path: &str,
        query: &str,
        host: &str,
        headers: &mut Vec<(String, String)>,
        payload_sha256: &str,
    ) -> String {
        headers.push(("x-amz-date".into(), self.timestamp.clone()));
        headers.push(("x-amz-content-sha256".into(), payload_sha256.into()));
        for (_, value) in headers.iter_mut() {
            *value = canonical_value(value);
        }
        let mut signed: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).chain([("host", host)]).collect();
        signed.sort();
        let canonical_headers: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let signed_headers = signed.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(";");
        let canonical_request =
            format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}");
        format!(
            "{ALGORITHM} Credential={{{{secret:{ACCESS_KEY_ID}}}}}/{}, SignedHeaders={signed_headers}, Signature={}",
            self.scope,
            self.signature(&canonical_request)
        )
    }

    /// The query string of a presigned GET of `path`, signature included.
    pub fn presign_query(&self, access_key_id: &str, path: &str, host: &str, expires_secs: u64) -> String {
        let credential = format!("{access_key_id}/{}", self.scope);
        let expires = expires_secs.to_string();
        let query = canonical_query(&[
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", &credential),
            ("X-Amz-Date", &self.timestamp),
            ("X-Amz-Expires", &expires),
            ("X-Amz-SignedHeaders", "host"),
        ]);
        let canonical_request = format!("GET\n{path}\n{query}\nhost:{host}\n\nhost\n{UNSIGNED_PAYLOAD}");
        format!("{query}&X-Amz-Signature={}", self.signature(&canonical_request))
    }
}

#[cfg(test)]
mod tests {
    //! The worked examples of AWS's "Signature Version 4: authenticating
    //! requests" pages for S3 (header-based and query-string).

    use super::*;
    use wharf_adapter_sdk::percent::encode_path;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const HOST: &str = "examplebucket.s3.amazonaws.com";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn signer() -> Signer {
        // What the host computes from the secret.
        let k_date = hmac(format!("AWS4{SECRET}").as_bytes(), b"20130524");
        Signer::from_date_key(&k_date, "20130524T000000Z", "us-east-1")
    }

    fn signature(authorization: &str) -> &str {
        authorization.rsplit("Signature=").next().unwrap()
    }

    #[test]
    fn get_object() {
        let mut headers = vec![("range".to_string(), "bytes=0-9".to_string())];
        let auth = signer().authorize("GET", "/test.txt", "", HOST, &mut headers, EMPTY);
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential={{secret:access_key_id}}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        ), "{auth}");
        assert_eq!(signature(&auth), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    }

    #[test]
    fn put_object_with_an_encoded_key() {
        let payload = sha256_hex(b"Welcome to Amazon S3.");
        let mut headers = vec![
            ("date".to_string(), "Fri, 24 May 2013 00:00:00 GMT".to_string()),
            ("x-amz-storage-class".to_string(), "REDUCED_REDUNDANCY".to_string()),
        ];
        let path = format!("/{}", encode_path("test$file.text"));
        let auth = signer().authorize("PUT", &path, "", HOST, &mut headers, &payload);
        assert_eq!(signature(&auth), "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    }

    #[test]
    fn list_objects() {
        let query = canonical_query(&[("prefix", "J"), ("max-keys", "2")]);
        assert_eq!(query, "max-keys=2&prefix=J");
        let auth = signer().authorize("GET", "/", &query, HOST, &mut Vec::new(), EMPTY);
        assert_eq!(signature(&auth), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    }

    #[test]
    fn presigned_get() {
        let query = signer().presign_query("AKIAIOSFODNN7EXAMPLE", "/test.txt", HOST, 86_400);
        assert!(query.starts_with("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&"), "{query}");
        assert!(
            query.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
            "{query}"
        );
    }

    #[test]
    fn encoding_and_timestamps() {
        assert_eq!(encode_path("a b/ü~:"), "a%20b/%C3%BC~%3A");
        assert_eq!(encode_component("a/b"), "a%2Fb");
        assert_eq!(amz_timestamp(0), "19700101T000000Z");
        assert_eq!(amz_timestamp(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_timestamp(951_827_696), "20000229T123456Z");
        assert_eq!(canonical_value("  a   b  "), "a b");
    }
}
