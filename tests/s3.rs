//! The S3 adapter in the real host against a real S3 server (SeaweedFS, which
//! checks SigV4 signatures), started once for this test binary.
//!
//! Needs `weed` from tests/requirements.txt; `scripts/test` installs it.

mod common;
#[path = "support/s3_server.rs"]
mod s3_server;

use base64::Engine as _;
use common::{Scratch, pattern, sha256_hex};
use s3_server::{ACCESS_KEY_ID, S3Server, SECRET_ACCESS_KEY};
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;
use wharf::body::{Body, FileRange};
use wharf::catalog::CopyState;
use wharf::config::Config;
use wharf::gateway::{GatewayError, Source, UploadOptions};
use wharf::runtime::{Adapter, CallError, ErrorKind, ObjectRef, Runtime};

const BUCKET: &str = "wharf-test";
const KEY_ID_ENV: &str = "WHARF_TEST_S3_ACCESS_KEY_ID";
const SECRET_ENV: &str = "WHARF_TEST_S3_SECRET_ACCESS_KEY";
const WRONG_SECRET_ENV: &str = "WHARF_TEST_S3_WRONG_SECRET";
const WRONG_SECRET: &str = "not-the-secret-0123456789";
const MIB: usize = 1 << 20;

static SERVER: OnceCell<S3Server> = OnceCell::const_new();

/// The server shared by every test here; each test works under its own prefix.
async fn server() -> &'static S3Server {
    SERVER
        .get_or_init(|| async {
            // SAFETY: set once, before any test reads them (every test awaits
            // this first), to constant values; nothing here reads the
            // environment from C while they are set.
            unsafe {
                std::env::set_var(KEY_ID_ENV, ACCESS_KEY_ID);
                std::env::set_var(SECRET_ENV, SECRET_ACCESS_KEY);
                std::env::set_var(WRONG_SECRET_ENV, WRONG_SECRET);
            }
            let server = S3Server::start().await;
            server.create_bucket(BUCKET).await;
            server
        })
        .await
}

/// A `[providers.NAME]` entry for the S3 adapter on the test server.
/// `extra` adds config keys (`, part_size = …`).
fn provider(name: &str, server: &S3Server, prefix: &str, secret_env: &str, extra: &str) -> String {
    let endpoint = &server.endpoint;
    format!(
        r#"
[providers.{name}]
plugin = "s3"
allowed_hosts = ["{endpoint}"]
secrets = {{ access_key_id = "{KEY_ID_ENV}", secret_access_key = "{secret_env}" }}
config = {{ endpoint = "{endpoint}", region = "us-east-1", bucket = "{BUCKET}", prefix = "{prefix}", access_key_id_for_presign = "{ACCESS_KEY_ID}"{extra} }}
"#
    )
}

fn to(provider: &str) -> UploadOptions {
    UploadOptions { provider: Some(provider.into()), ..UploadOptions::default() }
}

/// The adapter loaded on its own, for the calls the gateway does not make
/// (presign, one page of a listing, uploads of crafted bodies).
struct Direct {
    adapter: Adapter,
    // Dropped after the adapter: the engine's epoch thread stops with it.
    _runtime: Runtime,
}

async fn direct(scratch: &Scratch, name: &str) -> Direct {
    let config = Config::load(&scratch.config_path()).expect("test config is valid");
    let runtime = Runtime::new(&scratch.data().join("components"), 64 << 20).unwrap();
    let adapter = runtime.load(&config.providers[name]).await.unwrap();
    Direct { adapter, _runtime: runtime }
}

fn object(remote_id: &str) -> ObjectRef {
    ObjectRef { remote_id: remote_id.into(), purpose: None }
}

fn provider_error(err: &CallError) -> &wharf::runtime::ProviderError {
    match err {
        CallError::Provider { error, .. } => error,
        other => panic!("expected a provider error, got: {other}"),
    }
}

#[tokio::test]
async fn round_trip_keeps_bytes_name_and_digest() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&provider("s3", server, "round-trip/", SECRET_ENV, "")).await;
    // Several host chunks and an odd tail; a name that needs encoding.
    let content = pattern(3 * 256 * 1024 + 12_345);
    let name = "Bericht März 2024 (final).bin";
    let up = gateway.upload(Source::Path(scratch.write(name, &content)), &to("s3")).await.unwrap();
    let sha = sha256_hex(&content);
    assert_eq!(up.sha256, sha);
    assert_eq!(up.remote_id, format!("round-trip/{sha}"), "content-addressed key");

    let dest = scratch.work().join("back.bin");
    let down = gateway.download(&up.id, Some(&dest), None).await.unwrap();
    assert!(down.verified);
    assert_eq!(down.sha256, sha);
    assert_eq!(std::fs::read(&dest).unwrap(), content);

    let remote = gateway.info(&up.id).await.unwrap().remote.expect("stat answered");
    assert_eq!(remote.name.as_deref(), Some(name));
    assert_eq!(remote.sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(remote.size, Some(content.len() as u64));
    assert_eq!(remote.mime.as_deref(), Some("application/octet-stream"));
    assert!(remote.created_at.is_some());

    // An empty file is an object too.
    let empty = gateway.upload(Source::Path(scratch.write("empty.txt", b"")), &to("s3")).await.unwrap();
    let dest = scratch.work().join("empty-back.txt");
    gateway.download(&empty.id, Some(&dest), None).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"");

    gateway.remove(&up.id, false).await.unwrap();
    let err = direct(&scratch, "s3").await.adapter.stat(&object(&up.remote_id)).await.unwrap_err();
    assert!(matches!(err.kind(), Some(ErrorKind::NotFound)), "{err}");
}

#[tokio::test]
async fn checksums_and_unsigned_payloads_are_accepted() {
    let server = server().await;
    let scratch = Scratch::new();
    let extra = ", checksum_sha256 = true, unsigned_payload = true";
    let gateway = scratch.gateway(&provider("s3", server, "checksum/", SECRET_ENV, extra)).await;
    let content = pattern(100_000);
    let up = gateway.upload(Source::Path(scratch.write("c.bin", &content)), &to("s3")).await.unwrap();
    let dest = scratch.work().join("c-back.bin");
    gateway.download(&up.id, Some(&dest), None).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
}

/// With `checksum_sha256`, every multipart part carries its SHA-256 in an
/// `aws-chunked` trailer the host computes as it sends the part: the store
/// checks each part and keeps a checksum of the part checksums.
#[tokio::test]
async fn multipart_parts_carry_checksums_the_store_checks() {
    let server = server().await;
    let scratch = Scratch::new();
    let extra = ", checksum_sha256 = true, multipart_threshold = 5242880, part_size = 5242880";
    let gateway = scratch.gateway(&provider("s3", server, "part-checksums/", SECRET_ENV, extra)).await;
    let content = pattern(3 * 5 * MIB + 4321);
    let up = gateway.upload(Source::Path(scratch.write("parts.bin", &content)), &to("s3")).await.unwrap();

    let path = format!("/{BUCKET}/{}", up.remote_id);
    let checksum_mode = [("x-amz-checksum-mode", "ENABLED")];
    let head = server.request_with("HEAD", &path, "", &checksum_mode, Vec::new()).await.unwrap();
    assert!(head.status().is_success(), "HEAD {path}: {}", head.status());
    let checksum = head.headers().get("x-amz-checksum-sha256").map(|v| v.to_str().unwrap().to_string());
    // A composite checksum: the SHA-256 of the four parts' SHA-256s, then `-4`.
    let digest_of_digests = {
        let mut parts = Vec::new();
        for part in content.chunks(5 * MIB) {
            parts.extend_from_slice(&Sha256::digest(part));
        }
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&parts))
    };
    assert_eq!(checksum, Some(format!("{digest_of_digests}-4")), "the store's checksum of the parts");

    let dest = scratch.work().join("parts-back.bin");
    let down = gateway.download(&up.id, Some(&dest), None).await.unwrap();
    assert!(down.verified);
    assert!(std::fs::read(&dest).unwrap() == content, "downloaded bytes differ");
}

#[tokio::test]
async fn bytes_that_differ_from_their_checksum_are_refused() {
    let server = server().await;
    let scratch = Scratch::new();
    let extra = ", checksum_sha256 = true";
    scratch.write_config(&provider("s3", server, "digest/", SECRET_ENV, extra));
    let direct = direct(&scratch, "s3").await;
    // `x-amz-checksum-sha256` carries the host's digest; the store checks the
    // bytes it receives against it. (SeaweedFS does not check the signed
    // payload hash, `x-amz-content-sha256`, which AWS does.)
    let claimed = sha256_hex(b"other bytes");
    let err = direct
        .adapter
        .upload(Body::Bytes(b"these bytes".to_vec().into()), "x.txt", "text/plain", &claimed, None)
        .await
        .unwrap_err();
    let error = provider_error(&err);
    assert!(matches!(error.kind, ErrorKind::InvalidRequest), "{err}");
    assert_eq!((error.status, error.code.as_deref()), (Some(400), Some("BadDigest")), "{err}");
    let what = format!("PutObject {BUCKET}/digest/{claimed}");
    assert!(err.to_string().contains(&what), "{err}");
}

#[tokio::test]
async fn multipart_upload_of_64_mib_round_trips() {
    let server = server().await;
    let scratch = Scratch::new();
    // 5 MiB parts from 5 MiB up: 13 full parts and a short last one.
    let extra = ", multipart_threshold = 5242880, part_size = 5242880";
    let gateway = scratch.gateway(&provider("s3", server, "multipart/", SECRET_ENV, extra)).await;
    let content = pattern(64 * MIB + 123_457);
    let up = gateway.upload(Source::Path(scratch.write("big.bin", &content)), &to("s3")).await.unwrap();
    let dest = scratch.work().join("big-back.bin");
    let down = gateway.download(&up.id, Some(&dest), None).await.unwrap();
    assert!(down.verified);
    assert_eq!(down.size, content.len() as u64);
    assert!(std::fs::read(&dest).unwrap() == content, "downloaded bytes differ");
    let remote = gateway.info(&up.id).await.unwrap().remote.unwrap();
    assert_eq!(remote.size, Some(content.len() as u64));
    assert_eq!(remote.sha256, Some(up.sha256.clone()));
    // 13 parts: S3 marks a multipart object's ETag with its part count.
    let head = server.request("HEAD", &format!("/{BUCKET}/{}", up.remote_id), "", Vec::new()).await.unwrap();
    let etag = head.headers()["etag"].to_str().unwrap();
    assert!(etag.ends_with("-13\""), "ETag {etag} is not that of 13 parts");
    assert!(
        !server.pending_uploads(BUCKET).await.contains(&up.remote_id),
        "the multipart upload was completed, not left pending"
    );
}

#[tokio::test]
async fn a_failed_multipart_upload_is_aborted() {
    let server = server().await;
    let scratch = Scratch::new();
    let extra = ", multipart_threshold = 5242880, part_size = 5242880";
    scratch.write_config(&provider("s3", server, "aborted/", SECRET_ENV, extra));
    let direct = direct(&scratch, "s3").await;
    let content = pattern(12 * MIB);
    let path = scratch.write("shrinking.bin", &content);
    let sha = sha256_hex(&content);
    // The body promises 12 MiB; the file shrinks to 11 MiB before it is sent,
    // so the third part cannot be read whole and its request fails.
    let range = FileRange::whole(std::fs::File::open(&path).unwrap(), "shrinking.bin").unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_len(11 * MIB as u64).unwrap();
    let err = direct
        .adapter
        .upload(Body::File(range), "shrinking.bin", "application/octet-stream", &sha, None)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("UploadPart 3 of 3"), "{message}");
    assert!(message.contains("ended after"), "{message}");
    let pending = server.pending_uploads(BUCKET).await;
    assert!(
        !pending.contains(&format!("aborted/{sha}")),
        "the failed upload was aborted, yet it is still pending: {pending}"
    );
    let err = direct.adapter.stat(&object(&format!("aborted/{sha}"))).await.unwrap_err();
    assert!(matches!(err.kind(), Some(ErrorKind::NotFound)), "nothing was stored: {err}");
}

#[tokio::test]
async fn listing_pages_with_continuation_tokens() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&provider("s3", server, "listing/", SECRET_ENV, "")).await;
    let mut expected = Vec::new();
    for i in 0..7 {
        let content = format!("object number {i}");
        let up = gateway
            .upload(Source::Path(scratch.write(&format!("{i}.txt"), content.as_bytes())), &to("s3"))
            .await
            .unwrap();
        expected.push((up.remote_id, up.sha256, content.len() as u64));
    }
    expected.sort();

    // Pages of 3 through the adapter: 3, 3, 1, a cursor on all but the last.
    let direct = direct(&scratch, "s3").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = direct.adapter.list(cursor.as_deref(), 3).await.unwrap();
        pages.push(page.items.len());
        seen.extend(page.items.into_iter().map(|i| (i.remote_id, i.sha256.unwrap(), i.size.unwrap())));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, [3, 3, 1]);
    assert_eq!(seen, expected);

    // The whole listing through the gateway (`wharf ls --remote`).
    let mut all: Vec<String> =
        gateway.list_remote(Some("s3")).await.unwrap().into_iter().map(|i| i.remote_id).collect();
    all.sort();
    assert_eq!(all, expected.iter().map(|e| e.0.clone()).collect::<Vec<_>>());
}

#[tokio::test]
async fn presigned_url_serves_the_bytes_without_credentials() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&provider("s3", server, "presign/", SECRET_ENV, "")).await;
    let content = pattern(200_000);
    let up = gateway.upload(Source::Path(scratch.write("shared.bin", &content)), &to("s3")).await.unwrap();
    let direct = direct(&scratch, "s3").await;
    assert!(direct.adapter.capabilities().presign);
    let url = direct.adapter.presign(&object(&up.remote_id), std::time::Duration::from_secs(300)).await.unwrap();
    assert!(url.starts_with(&format!("{}/{BUCKET}/presign/", server.endpoint)), "{url}");
    assert!(!url.contains(SECRET_ACCESS_KEY));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    assert!(response.bytes().await.unwrap() == content, "presigned GET returned other bytes");

    // The signature is what grants access: without it, or altered, no bytes.
    let bare = url.split('?').next().unwrap();
    assert_eq!(client.get(bare).send().await.unwrap().status(), 403);
    let tampered = url.replace("X-Amz-Expires=300", "X-Amz-Expires=301");
    assert_eq!(client.get(&tampered).send().await.unwrap().status(), 403);

    let err =
        direct.adapter.presign(&object(&up.remote_id), std::time::Duration::from_secs(604_801)).await.unwrap_err();
    assert!(matches!(err.kind(), Some(ErrorKind::InvalidRequest)), "{err}");
    assert!(err.to_string().contains("604800"), "{err}");
}

#[tokio::test]
async fn a_wrong_secret_is_unauthorized_and_named() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&provider("s3-wrong", server, "wrong/", WRONG_SECRET_ENV, "")).await;
    let err = gateway.upload(Source::Path(scratch.write("w.txt", b"refused")), &to("s3-wrong")).await.unwrap_err();
    let GatewayError::Call(call) = &err else {
        panic!("expected a provider failure, got: {err}");
    };
    let error = provider_error(call);
    assert!(matches!(error.kind, ErrorKind::Unauthorized), "{err}");
    assert_eq!(error.status, Some(403));
    assert_eq!(error.code.as_deref(), Some("SignatureDoesNotMatch"));
    let message = err.to_string();
    assert!(
        message.starts_with("s3-wrong: upload failed: unauthorized (HTTP 403, SignatureDoesNotMatch)"),
        "{message}"
    );
    assert!(message.contains("secret_access_key"), "says what to check: {message}");
    assert!(!message.contains(WRONG_SECRET) && !message.contains(ACCESS_KEY_ID), "{message}");
    assert!(common::records(&gateway, None).await.is_empty(), "nothing recorded");
}

#[tokio::test]
async fn a_missing_key_is_not_found() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&provider("s3", server, "missing/", SECRET_ENV, "")).await;
    let direct = direct(&scratch, "s3").await;
    let absent = object(&format!("missing/{}", "0".repeat(64)));
    let Err(err) = direct.adapter.download(&absent, false, None).await else {
        panic!("downloaded an object that does not exist");
    };
    assert!(matches!(err.kind(), Some(ErrorKind::NotFound)), "{err}");
    assert_eq!(provider_error(&err).code.as_deref(), Some("NoSuchKey"));
    assert!(err.to_string().contains(&format!("GetObject {BUCKET}/missing/000")), "{err}");
    let err = direct.adapter.stat(&absent).await.unwrap_err();
    assert!(matches!(err.kind(), Some(ErrorKind::NotFound)), "{err}");
    assert_eq!(provider_error(&err).status, Some(404));

    // Deleted behind Wharf's back: the download says so and the copy is marked gone.
    let up = gateway.upload(Source::Path(scratch.write("m.txt", b"soon missing")), &to("s3")).await.unwrap();
    direct.adapter.delete(&object(&up.remote_id)).await.unwrap();
    let err = gateway.download(&up.id, Some(&scratch.work().join("m2.txt")), None).await.unwrap_err();
    assert!(err.to_string().contains("not found (HTTP 404, NoSuchKey)"), "{err}");
    assert_eq!(common::records(&gateway, Some("s3")).await[0].state, CopyState::Gone);
}

#[tokio::test]
async fn s3_serves_as_the_cache_provider() {
    let server = server().await;
    let scratch = Scratch::new();
    let config = format!(
        r#"[host]
data_dir = "{data}"
sandbox_roots = ["{work}"]
default_provider = "local"
cache = "s3"

[providers.local]
plugin = "local"
storage_dir = "{data}/local"
{s3}"#,
        data = scratch.data().display(),
        work = scratch.work().display(),
        s3 = provider("s3", server, "cache/", SECRET_ENV, ""),
    );
    std::fs::write(scratch.config_path(), config).unwrap();
    let gateway = wharf::gateway::Gateway::open(Config::load(&scratch.config_path()).unwrap())
        .await
        .expect("S3 is accepted as the cache provider")
        .host_caller();
    assert_eq!(gateway.config().cache_provider, "s3");

    let content = pattern(50_000);
    let path = scratch.write("kept.bin", &content);
    let local = gateway.upload(Source::Path(path.clone()), &UploadOptions::default()).await.unwrap();
    assert_eq!(local.provider, "local");
    let cached = gateway.upload(Source::Path(path), &to("s3")).await.unwrap();
    assert_eq!(cached.sha256, local.sha256);

    // With the local bytes gone, the content still comes back, from the cache.
    std::fs::remove_file(scratch.data().join("local/objects").join(&local.sha256[..2]).join(&local.sha256)).unwrap();
    let dest = scratch.work().join("from-cache.bin");
    let down = gateway.download(&format!("sha256:{}", local.sha256), Some(&dest), None).await.unwrap();
    assert!(down.verified);
    assert_eq!(down.id, cached.id, "the cache provider's copy was read");
    assert_eq!(std::fs::read(&dest).unwrap(), content);
}

/// Downloads try the cache provider's copy first; one whose bytes fail the
/// SHA-256 check twice is marked corrupt and the next copy (S3) serves.
#[tokio::test]
async fn a_corrupt_cache_copy_falls_back_to_s3_and_is_marked() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&provider("s3", server, "fallback/", SECRET_ENV, "")).await;
    let content = pattern(300_000);
    let path = scratch.write("both.bin", &content);
    let local = gateway.upload(Source::Path(path.clone()), &UploadOptions::default()).await.unwrap();
    let remote = gateway.upload(Source::Path(path), &to("s3")).await.unwrap();
    let stored = scratch.data().join("local/objects").join(&local.sha256[..2]).join(&local.sha256);
    let mut damaged = content.clone();
    damaged[1000] ^= 0xff;
    std::fs::write(&stored, &damaged).unwrap();

    let dest = scratch.work().join("back.bin");
    let down = gateway.download(&local.id, Some(&dest), None).await.unwrap();
    assert_eq!((down.provider.as_str(), down.verified), ("s3", true));
    assert_eq!(down.failed.len(), 1, "{:?}", down.failed);
    assert_eq!((down.failed[0].provider.as_str(), down.failed[0].kind.as_str()), ("local", "corrupt"));
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(gateway.details(&local.id).await.unwrap().file.state, CopyState::Corrupt);

    // Marked corrupt, the copy is not tried again.
    let again = gateway.download(&format!("sha256:{}", local.sha256), Some(&dest), None).await.unwrap();
    assert_eq!((again.id.as_str(), again.provider.as_str()), (remote.id.as_str(), "s3"));
    assert!(again.failed.is_empty(), "{:?}", again.failed);
    let stats = gateway.stats(None).await.unwrap();
    assert_eq!(stats.failures.get("download: corrupt"), Some(&1), "{stats:?}");
    assert_eq!(gateway.details(&local.id).await.unwrap().downloads.len(), 1, "the first download counts");
}

/// `[host] resolution` decides which copy a download reads first.
#[tokio::test]
async fn the_resolution_order_picks_the_copy() {
    let server = server().await;
    let scratch = Scratch::new();
    scratch
        .write_config_with_host(r#"resolution = ["s3", "local"]"#, &provider("s3", server, "order/", SECRET_ENV, ""));
    let gateway =
        wharf::gateway::Gateway::open(Config::load(&scratch.config_path()).unwrap()).await.unwrap().host_caller();
    let path = scratch.write("order.bin", &pattern(1000));
    let local = gateway.upload(Source::Path(path.clone()), &UploadOptions::default()).await.unwrap();
    gateway.upload(Source::Path(path), &to("s3")).await.unwrap();
    let down = gateway.download(&local.id, Some(&scratch.work().join("o.bin")), None).await.unwrap();
    assert_eq!(down.provider, "s3", "s3 comes first in the order");
}

fn registering(server: &S3Server) -> String {
    format!(
        r#"{}
[principals.local]
references = ["s3://{BUCKET}/registered/users/alice/*", "{}/{BUCKET}/registered/users/alice/*", "s3://{BUCKET}/wharf/*", "s3://other-bucket/*", "gopher://*"]
"#,
        provider("s3", server, "wharf/", SECRET_ENV, ""),
        server.endpoint
    )
}

/// An object put into the bucket by someone else is registered without
/// uploading it: hashed by reading it once, then downloaded verified.
#[tokio::test]
async fn a_registered_object_is_hashed_once_and_downloaded_verified() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&registering(server)).await;
    let content = pattern(200_000);
    let key = "registered/users/alice/report.bin";
    let put = server.request("PUT", &format!("/{BUCKET}/{key}"), "", content.clone()).await.unwrap();
    assert!(put.status().is_success(), "PutObject: {}", put.status());

    let registered = gateway.register(&format!("s3://{BUCKET}/{key}"), None, true).await.unwrap();
    assert_eq!(registered.digest_source, wharf::gateway::DigestSource::Read);
    let file = &registered.file;
    assert_eq!((file.provider.as_str(), file.remote_id.as_str(), file.name.as_str()), ("s3", key, "report.bin"));
    assert_eq!(
        (file.sha256.clone(), file.size, file.registered, file.verified),
        (sha256_hex(&content), 200_000, true, true)
    );

    let dest = scratch.work().join("report.bin");
    let down = gateway.download(&file.id, Some(&dest), None).await.unwrap();
    assert!(down.verified);
    assert_eq!(std::fs::read(&dest).unwrap(), content);

    // The path-style URL of the same object names the same record.
    let by_url = gateway.register(&format!("{}/{BUCKET}/{key}", server.endpoint), Some("s3"), true).await.unwrap();
    assert_eq!(by_url.file.id, file.id);

    // Forgetting a registered file leaves the object where it was.
    gateway.remove(&file.id, false).await.unwrap();
    assert_eq!(server.list_keys(BUCKET, "registered/users/alice/").await, [key]);
    let again = gateway.register(&format!("s3://{BUCKET}/{key}"), None, true).await.unwrap();
    gateway.remove(&again.file.id, true).await.unwrap();
    assert!(server.list_keys(BUCKET, "registered/users/alice/").await.is_empty(), "--delete-remote deletes it");
}

/// `--no-hash` records the object unverified, and says so everywhere.
#[tokio::test]
async fn an_unhashed_registration_is_unverified() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&registering(server)).await;
    let key = "registered/users/alice/unhashed.bin";
    server.request("PUT", &format!("/{BUCKET}/{key}"), "", b"trust me".to_vec()).await.unwrap();
    let registered = gateway.register(&format!("s3://{BUCKET}/{key}"), None, false).await.unwrap();
    assert_eq!(registered.digest_source, wharf::gateway::DigestSource::None);
    assert!(!registered.file.verified);
    let dest = scratch.work().join("unhashed.bin");
    let down = gateway.download(&registered.file.id, Some(&dest), None).await.unwrap();
    assert!(!down.verified, "nothing to check it against");
    assert_eq!(std::fs::read(&dest).unwrap(), b"trust me");
    // Objects Wharf uploaded carry their digest: registering one reads nothing.
    let up = gateway.upload(Source::Path(scratch.write("mine.bin", b"mine")), &to("s3")).await.unwrap();
    let ours = gateway.register(&format!("s3://{BUCKET}/{}", up.remote_id), None, false).await.unwrap();
    assert_eq!(ours.digest_source, wharf::gateway::DigestSource::Provider);
    assert_eq!(
        (ours.file.id.as_str(), ours.file.sha256.as_str()),
        (up.id.as_str(), up.sha256.as_str()),
        "the same record"
    );
}

/// Unknown forms, other buckets, missing objects and references outside the
/// principal's allowed prefixes are refused, each saying why.
#[tokio::test]
async fn bad_references_are_refused_with_reasons() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&registering(server)).await;
    let refused = |result: Result<wharf::gateway::Registered, GatewayError>| result.unwrap_err().to_string();

    let message = refused(gateway.register(&format!("s3://{BUCKET}/registered/users/bob/x.bin"), None, true).await);
    assert!(message.contains("may not register") && message.contains("[principals.local] references"), "{message}");
    let message = refused(gateway.register("gopher://example.org/x", None, true).await);
    assert!(message.contains("no provider recognises"), "{message}");
    let message = refused(gateway.register("s3://other-bucket/x.bin", Some("s3"), true).await);
    assert!(message.contains("other-bucket") && message.contains(BUCKET), "{message}");
    let missing = gateway.register(&format!("s3://{BUCKET}/registered/users/alice/missing.bin"), None, true).await;
    assert!(
        matches!(&missing, Err(GatewayError::Call(e)) if matches!(e.kind(), Some(ErrorKind::NotFound))),
        "{missing:?}"
    );
    let message =
        refused(gateway.register(&format!("s3://{BUCKET}/registered/users/alice/../bob/x"), None, true).await);
    assert!(message.contains("not a plain reference"), "{message}");
    assert!(gateway.list(Default::default()).await.unwrap().files.is_empty(), "nothing was recorded");
}

/// A Range of a stored file is read as a range at S3, not as the whole object.
#[tokio::test]
async fn ranges_of_stored_files_are_ranged_reads() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&provider("s3", server, "ranges/", SECRET_ENV, "")).await;
    let content = pattern(1_000_000);
    let up = gateway.upload(Source::Path(scratch.write("r.bin", &content)), &to("s3")).await.unwrap();
    let direct = direct(&scratch, "s3").await;
    let range = wharf::runtime::ByteRange { offset: 999_000, length: Some(500) };
    let (body, _, _) = direct.adapter.download(&object(&up.remote_id), false, Some(range)).await.unwrap();
    assert_eq!(body.size(), Some(500), "the response carries the range only");
    let to_end = wharf::runtime::ByteRange { offset: 999_900, length: None };
    let (body, _, _) = direct.adapter.download(&object(&up.remote_id), false, Some(to_end)).await.unwrap();
    assert_eq!(body.size(), Some(100));

    let streamed = gateway.stream_content(&up.id, false, Some((10, 20)), "test").await.unwrap();
    let chunks: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(streamed.stream).await.unwrap();
    assert_eq!(chunks.concat(), &content[10..20]);
}

/// What `wharf plugins test s3` runs: every step passes against SeaweedFS.
#[tokio::test]
async fn the_conformance_suite_passes() {
    let server = server().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&provider("s3", server, "conformance/", SECRET_ENV, "")).await;
    let report = gateway.conformance("s3").await.unwrap();
    assert!(report.passed, "{report:#?}");
    assert!(report.steps.iter().all(|s| s.outcome == wharf::gateway::StepOutcome::Passed), "{report:#?}");
}
