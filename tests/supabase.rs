//! The Supabase Storage adapter, in the real host, against a fake Supabase
//! server (tests/support/supabase_fake.rs) on 127.0.0.1.

mod common;
#[path = "support/supabase_fake.rs"]
mod supabase_fake;

use std::collections::BTreeSet;
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Scratch, pattern, sha256_hex};
use serde_json::{Value, json};
use supabase_fake::{BucketLimits, FakeSupabase, PatchFault, TUS_CHUNK, TusFault, V2Listing};
use wharf::catalog::CopyState;
use wharf::config::Config;
use wharf::gateway::{Caller, Gateway, GatewayError, Source, UploadOptions};
use wharf::runtime::{Adapter, ByteRange, CallError, ErrorKind, ObjectRef, ProviderError, Runtime};

/// A legacy (JWT) key: sent as `apikey` and as the bearer token.
const KEY_VAR: &str = "WHARF_TEST_SUPABASE_KEY";
const KEY: &str = "eyJ-test-service-role-key";
/// A new-style secret key: `apikey` only.
const SB_KEY_VAR: &str = "WHARF_TEST_SUPABASE_SB_KEY";
const SB_KEY: &str = "sb_secret_test_only_0123456789";
const BUCKET: &str = "wharf-files";
const PREFIX: &str = "wharf/";

fn set_keys() {
    static KEYS: Once = Once::new();
    // SAFETY: every test calls this before anything reads the environment
    // for these names; the values never change afterwards.
    KEYS.call_once(|| unsafe {
        std::env::set_var(KEY_VAR, KEY);
        std::env::set_var(SB_KEY_VAR, SB_KEY);
    });
}

/// A `[providers.NAME]` entry for the fake; `config` adds keys to the
/// adapter's config table (`, upsert = true`). The prefix is `wharf/`
/// unless `config` sets one.
fn entry(fake: &FakeSupabase, name: &str, key_var: &str, bucket: &str, config: &str) -> String {
    let prefix = if config.contains("prefix =") { String::new() } else { format!(", prefix = \"{PREFIX}\"") };
    format!(
        r#"
[providers.{name}]
plugin = "supabase"
allowed_hosts = ["{origin}"]
secrets = {{ api_key = "{key_var}" }}
config = {{ base_url = "{base}", bucket = "{bucket}"{prefix}{config} }}
# The adapter's own behaviour is under test (classification, TUS resume): with
# the host's retries off, each failure surfaces exactly as the adapter made it.
retry = {{ max_retries = 0 }}
"#,
        origin = fake.origin(),
        base = fake.base_url(),
    )
}

async fn start_fake() -> FakeSupabase {
    set_keys();
    FakeSupabase::start(KEY, &[(BUCKET, BucketLimits::default())]).await
}

fn to(provider: &str) -> UploadOptions {
    UploadOptions { provider: Some(provider.into()), ..UploadOptions::default() }
}

/// The classified provider error inside a gateway error.
fn provider_error(err: &GatewayError) -> &ProviderError {
    match err {
        GatewayError::Call(call) => call_error(call),
        other => panic!("expected a provider error, got: {other}"),
    }
}

/// Error kinds compared by their debug form: the bindings derive no `PartialEq`.
fn kind_of(kind: &ErrorKind) -> String {
    format!("{kind:?}")
}

fn call_error(err: &CallError) -> &ProviderError {
    match err {
        CallError::Provider { error, .. } => error,
        other => panic!("expected a provider error, got: {other}"),
    }
}

/// The adapter outside the gateway, for what the gateway does not expose
/// (paging with small pages, presigning, stat with injected failures).
struct Direct {
    adapter: Adapter,
    _runtime: Runtime,
}

async fn direct(scratch: &Scratch, extra: &str, provider: &str) -> Direct {
    let config = Config::load(&scratch.write_config(extra)).expect("test config is valid");
    let runtime = Runtime::new(&scratch.data().join("components"), 64 << 20).unwrap();
    let adapter = runtime.load(&config.providers[provider]).await.expect("adapter loads");
    Direct { adapter, _runtime: runtime }
}

fn target(remote_id: &str) -> ObjectRef {
    ObjectRef { remote_id: remote_id.into(), purpose: None }
}

/// Every page, following cursors; returns the keys and the cursors seen.
async fn all_pages(adapter: &Adapter, limit: u32) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut cursors = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = adapter.list(cursor.as_deref(), limit).await.unwrap();
        assert!(page.items.len() <= limit as usize, "a page holds at most limit items");
        for item in &page.items {
            let expected = item.remote_id.strip_prefix(PREFIX).map(str::to_string);
            assert_eq!(item.sha256, expected, "the digest comes from the key");
            assert!(item.size.is_some(), "{item:?} has a size");
        }
        keys.extend(page.items.into_iter().map(|i| i.remote_id));
        match page.next_cursor {
            Some(next) => {
                cursors.push(next.clone());
                cursor = Some(next);
            }
            None => return (keys, cursors),
        }
    }
}

async fn upload_distinct(gateway: &Caller, scratch: &Scratch, count: usize) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for i in 0..count {
        let content = format!("object number {i}").into_bytes();
        let up =
            gateway.upload(Source::Path(scratch.write(&format!("f{i}.txt"), &content)), &to("supabase")).await.unwrap();
        keys.insert(up.remote_id);
    }
    keys
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_stat_and_remove() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&entry(&fake, "supabase", KEY_VAR, BUCKET, "")).await;
    let content = pattern(300_000);
    let name = "Quarterly report (final) – été.pdf";
    let up = gateway.upload(Source::Path(scratch.write(name, &content)), &to("supabase")).await.unwrap();
    let key = format!("{PREFIX}{}", sha256_hex(&content));
    assert_eq!(up.remote_id, key, "content addressed: prefix + sha256");

    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "one request for a small upload: {requests:?}");
    let post = &requests[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.uri, format!("/storage/v1/object/{BUCKET}/{key}"));
    assert_eq!(post.header("apikey"), Some(KEY));
    assert_eq!(post.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(post.header("content-type"), Some("application/pdf"));
    assert_eq!(post.header("x-upsert"), None, "no overwrite unless configured");
    assert_eq!(post.body_bytes, content.len() as u64);
    let metadata: Value = serde_json::from_slice(&BASE64.decode(post.header("x-metadata").unwrap()).unwrap()).unwrap();
    assert_eq!(metadata["name"], name);
    assert_eq!(metadata["sha256"], sha256_hex(&content));
    assert_eq!(fake.get(BUCKET, &key).unwrap(), content);

    let dest = scratch.work().join("back.pdf");
    let down = gateway.download(&up.id, Some(&dest), None).await.unwrap();
    assert!(down.verified);
    assert_eq!(down.source, "provider");
    assert_eq!(std::fs::read(&dest).unwrap(), content);

    let remote = gateway.info(&up.id).await.unwrap().remote.unwrap();
    assert_eq!(remote.remote_id, key);
    assert_eq!(remote.name.as_deref(), Some(name), "the name comes back from user metadata");
    assert_eq!(remote.size, Some(content.len() as u64));
    assert_eq!(remote.sha256.as_deref(), Some(up.sha256.as_str()));
    assert_eq!(remote.mime.as_deref(), Some("application/pdf"));
    let created = remote.created_at.expect("created_at is parsed");
    assert!(created.abs_diff(now()) < 120, "created_at {created} is about now");

    fake.clear_requests();
    gateway.remove(&up.id, false).await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "DELETE");
    assert_eq!(requests[0].uri, format!("/storage/v1/object/{BUCKET}/{key}"));
    assert!(fake.keys(BUCKET).is_empty());
    assert!(gateway.list_remote(Some("supabase")).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_is_refused_without_upsert_and_overwritten_with_it() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let tus = ", tus_threshold = 1024";
    let providers = entry(&fake, "supabase", KEY_VAR, BUCKET, "")
        + &entry(&fake, "supabase_upsert", KEY_VAR, BUCKET, ", upsert = true")
        + &entry(&fake, "supabase_tus", KEY_VAR, BUCKET, tus)
        + &entry(&fake, "tus_upsert", KEY_VAR, BUCKET, &format!("{tus}, upsert = true"));
    let gateway = scratch.gateway(&providers).await;
    let stale = b"stale bytes put there by someone else";
    let content = pattern(10_000);
    let key = format!("{PREFIX}{}", sha256_hex(&content));
    let source = scratch.write("data.bin", &content);

    // Standard upload: HTTP 400 carrying 409; TUS: a real 409 in plain text.
    for (provider, http_note) in [("supabase", Some("HTTP 400 carrying status 409")), ("supabase_tus", None)] {
        fake.put(BUCKET, &key, "application/octet-stream", stale);
        fake.clear_requests();
        let err = gateway.upload(Source::Path(source.clone()), &to(provider)).await.unwrap_err();
        let error = provider_error(&err);
        assert_eq!(kind_of(&error.kind), kind_of(&ErrorKind::InvalidRequest), "{err}");
        assert_eq!(error.status, Some(409), "the real status: {err}");
        let text = err.to_string();
        assert!(text.contains("already exists"), "{text}");
        assert!(text.contains("upsert = true"), "the fix is named: {text}");
        if let Some(note) = http_note {
            assert_eq!(error.code.as_deref(), Some("KeyAlreadyExists"));
            assert!(text.contains(note), "{text}");
        }
        // The refusal, then a look at what is there (not this upload's bytes): nothing is written.
        assert_eq!(fake.requests().len(), 2, "{provider}: only a stat after the refusal");
        assert_eq!(fake.get(BUCKET, &key).unwrap(), stale);
        assert!(common::records(&gateway, None).await.is_empty(), "nothing recorded");
    }

    for provider in ["supabase_upsert", "tus_upsert"] {
        fake.put(BUCKET, &key, "application/octet-stream", stale);
        fake.clear_requests();
        let up = gateway.upload(Source::Path(source.clone()), &to(provider)).await.unwrap();
        let requests = fake.requests();
        assert!(
            requests.iter().all(|r| r.header("x-upsert") == Some("true")),
            "{provider}: x-upsert on every request: {requests:?}"
        );
        assert_eq!(fake.get(BUCKET, &key).unwrap(), content, "{provider}");
        let dest = scratch.work().join(format!("{provider}.bin"));
        gateway.download(&up.id, Some(&dest), None).await.unwrap();
        assert_eq!(std::fs::read(dest).unwrap(), content);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_is_not_found_and_marked_gone() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&entry(&fake, "supabase", KEY_VAR, BUCKET, "")).await;
    let up = gateway.upload(Source::Path(scratch.write("x.txt", b"here today")), &to("supabase")).await.unwrap();
    assert!(fake.remove(BUCKET, &up.remote_id));

    let err = gateway.download(&up.id, Some(&scratch.work().join("x2.txt")), None).await.unwrap_err();
    let error = provider_error(&err);
    assert_eq!(kind_of(&error.kind), kind_of(&ErrorKind::NotFound));
    assert_eq!(error.status, Some(404));
    assert_eq!(error.code.as_deref(), Some("NoSuchKey"));
    assert!(err.to_string().contains("Object not found"), "{err}");
    assert!(!scratch.work().join("x2.txt").exists());

    let info = gateway.info(&up.id).await.unwrap();
    let remote_error = info.remote_error.expect("stat fails");
    assert!(remote_error.contains("not found (HTTP 404, NoSuchKey)"), "{remote_error}");
    assert_eq!(common::records(&gateway, None).await[0].state, CopyState::Gone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_limits_refuse_size_and_type_in_both_upload_paths() {
    set_keys();
    let limits = BucketLimits { file_size_limit: Some(4096), allowed_mime_types: Some(vec!["image/*".into()]) };
    let fake = FakeSupabase::start(KEY, &[("images", limits)]).await;
    let scratch = Scratch::new();
    let providers = entry(&fake, "supabase", KEY_VAR, "images", "")
        + &entry(&fake, "supabase_tus", KEY_VAR, "images", ", tus_threshold = 1024");
    let gateway = scratch.gateway(&providers).await;
    let big_png = scratch.write("big.png", &pattern(10_000));
    let text = scratch.write("notes.txt", &pattern(2_000));

    for provider in ["supabase", "supabase_tus"] {
        let err = gateway.upload(Source::Path(big_png.clone()), &to(provider)).await.unwrap_err();
        let error = provider_error(&err);
        assert_eq!(kind_of(&error.kind), kind_of(&ErrorKind::TooLarge), "{provider}: {err}");
        assert_eq!(error.status, Some(413), "{provider}: {err}");

        let err = gateway.upload(Source::Path(text.clone()), &to(provider)).await.unwrap_err();
        let error = provider_error(&err);
        assert_eq!(kind_of(&error.kind), kind_of(&ErrorKind::InvalidRequest), "{provider}: {err}");
        assert_eq!(error.status, Some(415), "{provider}: {err}");
        assert!(err.to_string().contains("text/plain"), "{err}");
    }
    // The standard path carries the codes in the body; TUS answers real
    // statuses with text, and no chunk is sent after a refused creation.
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.method != "PATCH"), "{requests:?}");

    let small_png = scratch.write("small.png", &pattern(1_000));
    gateway.upload(Source::Path(small_png), &to("supabase")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_with_the_v2_cursor() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let providers = entry(&fake, "supabase", KEY_VAR, BUCKET, "");
    let gateway = scratch.gateway(&providers).await;
    let uploaded = upload_distinct(&gateway, &scratch, 5).await;
    fake.put(BUCKET, "elsewhere/not-ours.txt", "text/plain", b"outside the prefix");
    let direct = direct(&scratch, &providers, "supabase").await;

    fake.clear_requests();
    let (keys, cursors) = all_pages(&direct.adapter, 2).await;
    assert_eq!(keys.iter().cloned().collect::<BTreeSet<_>>(), uploaded);
    assert_eq!(keys.len(), 5, "no duplicates across pages: {keys:?}");
    assert_eq!(cursors.len(), 2, "pages of 2, 2 and 1: {cursors:?}");
    assert!(cursors.iter().all(|c| c.starts_with("v2:")), "{cursors:?}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.uri == format!("/storage/v1/object/list-v2/{BUCKET}")));
    assert_eq!(requests[0].json.as_ref().unwrap()["prefix"], PREFIX);
    assert_eq!(requests[0].json.as_ref().unwrap().get("cursor"), None);
    assert_eq!(
        requests[1].json.as_ref().unwrap()["cursor"],
        json!(cursors[0].strip_prefix("v2:").unwrap()),
        "the server's cursor is passed back as it came"
    );

    let remote = gateway.list_remote(Some("supabase")).await.unwrap();
    assert_eq!(remote.len(), 5);

    let err = direct.adapter.list(Some("v1:2"), 2).await;
    assert!(err.is_ok(), "auto mode follows a v1 cursor: {err:?}");
    let err = direct.adapter.list(Some("page-2"), 2).await.unwrap_err();
    assert_eq!(kind_of(&call_error(&err).kind), kind_of(&ErrorKind::InvalidRequest), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_falls_back_to_v1_offsets_where_v2_is_missing() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let providers = entry(&fake, "supabase", KEY_VAR, BUCKET, "")
        + &entry(&fake, "supabase_v1", KEY_VAR, BUCKET, ", list_version = \"v1\"")
        + &entry(&fake, "supabase_v2", KEY_VAR, BUCKET, ", list_version = \"v2\"");
    let gateway = scratch.gateway(&providers).await;
    let uploaded = upload_distinct(&gateway, &scratch, 5).await;
    // A folder inside the prefix and an object outside it: neither is listed.
    fake.put(BUCKET, "wharf/sub/nested.txt", "text/plain", b"nested");
    fake.put(BUCKET, "other.txt", "text/plain", b"outside");
    let auto = direct(&scratch, &providers, "supabase").await;

    for mode in [V2Listing::FeatureNotEnabled, V2Listing::NotAvailableMessage, V2Listing::RouteMissing] {
        fake.set_v2_listing(mode);
        fake.clear_requests();
        let (keys, cursors) = all_pages(&auto.adapter, 2).await;
        assert_eq!(keys.iter().cloned().collect::<BTreeSet<_>>(), uploaded, "{mode:?}");
        assert_eq!(keys.len(), 5, "{mode:?}: {keys:?}");
        assert!(cursors.iter().all(|c| c.starts_with("v1:")), "{mode:?}: {cursors:?}");
        let requests = fake.requests();
        let v2 = requests.iter().filter(|r| r.uri.contains("list-v2")).count();
        assert_eq!(v2, 1, "{mode:?}: v2 is tried once, not on every page");
        let v1: Vec<_> = requests.iter().filter(|r| r.uri == format!("/storage/v1/object/list/{BUCKET}")).collect();
        assert_eq!(v1.len(), cursors.len() + 1, "{mode:?}");
        for (page, request) in v1.iter().enumerate() {
            let body = request.json.as_ref().unwrap();
            assert_eq!(body["prefix"], "wharf", "{mode:?}: v1 lists the prefix's folder");
            assert_eq!(body["offset"], json!(page * 2), "{mode:?}");
            assert_eq!(body["limit"], json!(2));
        }
    }

    // Explicit versions: v1 never asks for v2; v2 reports its refusal.
    fake.set_v2_listing(V2Listing::Enabled);
    let v1 = direct(&scratch, &providers, "supabase_v1").await;
    fake.clear_requests();
    let (keys, _) = all_pages(&v1.adapter, 1000).await;
    assert_eq!(keys.len(), 5);
    assert!(fake.requests().iter().all(|r| !r.uri.contains("list-v2")));

    fake.set_v2_listing(V2Listing::FeatureNotEnabled);
    let v2 = direct(&scratch, &providers, "supabase_v2").await;
    let err = v2.adapter.list(None, 10).await.unwrap_err();
    let error = call_error(&err);
    assert_eq!(kind_of(&error.kind), kind_of(&ErrorKind::Unsupported), "{err}");
    assert_eq!(error.code.as_deref(), Some("FeatureNotEnabled"));
    let err = v2.adapter.list(Some("v1:2"), 10).await.unwrap_err();
    assert_eq!(kind_of(&call_error(&err).kind), kind_of(&ErrorKind::InvalidRequest), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_url_fetches_the_object_without_credentials() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let providers = entry(&fake, "supabase", KEY_VAR, BUCKET, ", signed_url_expiry = 900");
    let gateway = scratch.gateway(&providers).await;
    let content = pattern(2 * 1024 * 1024 + 3);
    let up = gateway.upload(Source::Path(scratch.write("share me.bin", &content)), &to("supabase")).await.unwrap();
    let direct = direct(&scratch, &providers, "supabase").await;

    fake.clear_requests();
    let url = direct.adapter.presign(&target(&up.remote_id), Duration::from_secs(60)).await.unwrap();
    assert!(url.starts_with(&format!("{}/object/sign/{BUCKET}/{}?token=", fake.base_url(), up.remote_id)), "{url}");
    let sign = &fake.requests()[0];
    assert_eq!(sign.uri, format!("/storage/v1/object/sign/{BUCKET}/{}", up.remote_id));
    assert_eq!(sign.json.as_ref().unwrap()["expiresIn"], 60);

    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().to_vec(), content);
    let fetch = fake.requests().last().cloned().unwrap();
    assert_eq!(fetch.header("apikey"), None, "the URL works without the key");
    assert_eq!(fetch.header("authorization"), None);

    let forged = format!("{}x", url);
    let response = reqwest::get(&forged).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "InvalidSignature");

    // No expiry from the host: the configured default.
    direct.adapter.presign(&target(&up.remote_id), Duration::ZERO).await.unwrap();
    assert_eq!(fake.requests().last().unwrap().json.as_ref().unwrap()["expiresIn"], 900);

    let err = direct
        .adapter
        .presign(&target(&format!("{PREFIX}{}", "0".repeat(64))), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(kind_of(&call_error(&err).kind), kind_of(&ErrorKind::NotFound), "{err}");
}

/// Uploads 20 MiB and a bit through TUS with the given fault, and checks
/// the chunks, the resume and the bytes.
async fn tus_round_trip(fault: TusFault) {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&entry(&fake, "supabase", KEY_VAR, BUCKET, ", tus_threshold = 1048576")).await;
    let content = pattern(20 * 1024 * 1024 + 12_345);
    let size = content.len() as u64;
    let key = format!("{PREFIX}{}", sha256_hex(&content));
    fake.set_tus_fault(fault);

    let up = gateway.upload(Source::Path(scratch.write("big.bin", &content)), &to("supabase")).await.unwrap();
    assert_eq!(up.remote_id, key);
    assert!(fake.get(BUCKET, &key).unwrap() == content, "the stored bytes match");

    let requests = fake.requests();
    assert!(
        requests.iter().all(|r| !r.uri.starts_with("/storage/v1/object/")),
        "no standard upload above the threshold"
    );
    let create: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(create.len(), 1);
    assert_eq!(create[0].uri, "/storage/v1/upload/resumable");
    assert_eq!(create[0].header("tus-resumable"), Some("1.0.0"));
    assert_eq!(create[0].header("upload-length"), Some(size.to_string().as_str()));
    let metadata: std::collections::HashMap<_, _> = create[0]
        .header("upload-metadata")
        .unwrap()
        .split(',')
        .map(|pair| {
            let (name, value) = pair.split_once(' ').unwrap();
            (name.to_string(), String::from_utf8(BASE64.decode(value).unwrap()).unwrap())
        })
        .collect();
    assert_eq!(metadata["bucketName"], BUCKET);
    assert_eq!(metadata["objectName"], key);
    assert_eq!(metadata["contentType"], "application/octet-stream");
    let user: Value = serde_json::from_str(&metadata["metadata"]).unwrap();
    assert_eq!(user["name"], "big.bin");
    assert_eq!(fake.user_metadata(BUCKET, &key).unwrap()["name"], "big.bin");

    let patches: Vec<_> = requests.iter().filter(|r| r.method == "PATCH").collect();
    let heads: Vec<_> = requests.iter().filter(|r| r.method == "HEAD").collect();
    assert_eq!(heads.len(), 1, "one HEAD after the failed chunk");
    // 4 chunks of 6 MiB cover 20 MiB; the failed one is sent again from
    // where the server stopped, which shifts the chunks that follow.
    let mut expected_offset = 0u64;
    for (i, patch) in patches.iter().enumerate() {
        let offset: u64 = patch.header("upload-offset").unwrap().parse().unwrap();
        let length: u64 = patch.header("content-length").unwrap().parse().unwrap();
        assert_eq!(length, TUS_CHUNK.min(size - offset), "PATCH {i}: 6 MiB but the last");
        assert_eq!(patch.header("content-type"), Some("application/offset+octet-stream"));
        assert_eq!(patch.header("apikey"), Some(KEY));
        assert_eq!(offset, expected_offset, "PATCH {i} starts where the server is");
        expected_offset = if i + 1 == fault.first { offset + fault.after_bytes } else { offset + length };
    }
    assert_eq!(expected_offset, size);
    let resumed_at = (fault.first as u64 - 1) * TUS_CHUNK + fault.after_bytes;
    let chunks = fault.first + (size - resumed_at).div_ceil(TUS_CHUNK) as usize;
    assert_eq!(patches.len(), chunks, "the chunks before, the failed one, the rest");

    let dest = scratch.work().join("back.bin");
    let down = gateway.download(&up.id, Some(&dest), None).await.unwrap();
    assert!(down.verified);
    assert_eq!(down.size, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_upload_resumes_after_a_dropped_connection() {
    tus_round_trip(TusFault { first: 2, count: 1, after_bytes: 1_000_000, kind: PatchFault::DropConnection }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_upload_resumes_after_a_server_error() {
    tus_round_trip(TusFault { first: 3, count: 1, after_bytes: 2_500_000, kind: PatchFault::ServerError }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_upload_gives_up_after_bounded_attempts() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&entry(&fake, "supabase", KEY_VAR, BUCKET, ", tus_threshold = 0")).await;
    fake.set_tus_fault(TusFault { first: 2, count: 1000, after_bytes: 0, kind: PatchFault::ServerError });
    let content = pattern(7 * 1024 * 1024);
    let err = gateway.upload(Source::Path(scratch.write("stuck.bin", &content)), &to("supabase")).await.unwrap_err();
    let error = provider_error(&err);
    assert_eq!(kind_of(&error.kind), kind_of(&ErrorKind::Unavailable), "{err}");
    assert_eq!(error.status, Some(500));
    let text = err.to_string();
    assert!(text.contains("gave up after 5 attempts to resume, at byte 6291456"), "{text}");
    let requests = fake.requests();
    let patches = requests.iter().filter(|r| r.method == "PATCH").count();
    let heads = requests.iter().filter(|r| r.method == "HEAD").count();
    assert_eq!((patches, heads), (7, 5), "1 good chunk, 6 failed tries, 5 HEADs");
    assert!(common::records(&gateway, None).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_secret_keys_go_in_apikey_only() {
    set_keys();
    let fake = FakeSupabase::start(SB_KEY, &[(BUCKET, BucketLimits::default())]).await;
    let scratch = Scratch::new();
    let providers = entry(&fake, "supabase", SB_KEY_VAR, BUCKET, ", auth = \"apikey\"")
        + &entry(&fake, "supabase_both", SB_KEY_VAR, BUCKET, "")
        + &entry(&fake, "supabase_wrong", KEY_VAR, BUCKET, ", auth = \"apikey\"");
    let gateway = scratch.gateway(&providers).await;
    let content = pattern(50_000);
    let source = scratch.write("a.bin", &content);

    let up = gateway.upload(Source::Path(source.clone()), &to("supabase")).await.unwrap();
    gateway.download(&up.id, Some(&scratch.work().join("b.bin")), None).await.unwrap();
    for request in fake.requests() {
        assert_eq!(request.header("apikey"), Some(SB_KEY));
        assert_eq!(request.header("authorization"), None, "{request:?}");
    }

    // The same key as a bearer token is refused as a malformed JWT.
    let other = scratch.write("c.bin", b"other bytes");
    let err = gateway.upload(Source::Path(other.clone()), &to("supabase_both")).await.unwrap_err();
    let error = provider_error(&err);
    assert_eq!(kind_of(&error.kind), kind_of(&ErrorKind::Unauthorized), "{err}");
    assert_eq!(error.code.as_deref(), Some("InvalidJWT"));
    // A wrong key: the gateway's 401.
    let err = gateway.upload(Source::Path(other), &to("supabase_wrong")).await.unwrap_err();
    let error = provider_error(&err);
    assert_eq!(kind_of(&error.kind), kind_of(&ErrorKind::Unauthorized), "{err}");
    assert_eq!(error.status, Some(401));
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(SB_KEY) && !text.contains(KEY), "no secret in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_classified_by_body_code_then_real_status() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let providers = entry(&fake, "supabase", KEY_VAR, BUCKET, "");
    let gateway = scratch.gateway(&providers).await;
    let up = gateway.upload(Source::Path(scratch.write("s.txt", b"stat me")), &to("supabase")).await.unwrap();
    let direct = direct(&scratch, &providers, "supabase").await;

    let cases = [
        (
            429,
            json!({"statusCode":"429","code":"SlowDown","error":"too_many_connections","message":"Too many connections"}),
            ErrorKind::RateLimited(None),
            429,
        ),
        (
            400,
            json!({"statusCode":"544","code":"DatabaseTimeout","error":"DatabaseTimeout","message":"The connection to the database timed out"}),
            ErrorKind::Unavailable,
            544,
        ),
        (
            403,
            json!({"statusCode":"403","code":"AccessDenied","error":"Unauthorized","message":"new row violates row-level security policy"}),
            ErrorKind::Forbidden,
            403,
        ),
        (
            400,
            json!({"statusCode":"400","code":"InvalidJWT","error":"InvalidJWT","message":"jwt expired"}),
            ErrorKind::Unauthorized,
            400,
        ),
        (
            500,
            json!({"statusCode":"500","code":"InternalError","error":"internal","message":"Internal server error"}),
            ErrorKind::Unavailable,
            500,
        ),
        (499, json!({"message":"client closed request"}), ErrorKind::Unavailable, 499),
        (416, json!({"message":"Range Not Satisfiable"}), ErrorKind::InvalidRequest, 416),
        // A 400 whose body says 404 is a missing object, whatever the HTTP status.
        (
            400,
            json!({"statusCode":"404","code":"NoSuchBucket","error":"Bucket not found","message":"Bucket not found"}),
            ErrorKind::NotFound,
            404,
        ),
    ];
    for (http_status, body, kind, status) in cases {
        fake.inject(axum::http::Method::GET, "/object/info/", http_status, body.clone());
        let err = direct.adapter.stat(&target(&up.remote_id)).await.unwrap_err();
        let error = call_error(&err);
        assert_eq!(kind_of(&error.kind), kind_of(&kind), "{body}: {err}");
        assert_eq!(error.status, Some(status), "{body}: {err}");
        let message = body["message"].as_str().unwrap();
        assert!(error.message.contains(message), "{err}");
        assert!(error.message.contains("stat of"), "names the operation: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_can_be_the_cache_provider() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let text = format!(
        "[host]\ndata_dir = \"{data}\"\nsandbox_roots = [\"{work}\"]\ndefault_provider = \"supabase\"\ncache = \"supabase\"\n{entry}",
        data = scratch.data().display(),
        work = scratch.work().display(),
        entry = entry(&fake, "supabase", KEY_VAR, BUCKET, ""),
    );
    std::fs::write(scratch.config_path(), text).unwrap();
    let config = Config::load(&scratch.config_path()).unwrap();
    let gateway = Gateway::open(config).await.expect("supabase is accepted as the cache").host_caller();
    let plugin = &gateway.plugins()[0];
    assert_eq!(plugin.download, "original");
    assert!(plugin.persistent && plugin.presign && plugin.resumable_upload);

    let content = pattern(1234);
    let up = gateway.upload(Source::Path(scratch.write("c.bin", &content)), &UploadOptions::default()).await.unwrap();
    assert_eq!(up.provider, "supabase");
    let down = gateway.download(&up.id, Some(&scratch.work().join("d.bin")), None).await.unwrap();
    assert_eq!(down.source, "provider");
    assert!(down.verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_is_refused_with_the_reason() {
    let fake = start_fake().await;
    let cases = [
        (", colour = \"blue\"", "colour"),
        (", list_version = \"v3\"", "v3"),
        (", auth = \"bearer\"", "bearer"),
        (", prefix = \"/abs\"", "prefix"),
        (", prefix = \"été/\"", "prefix"),
        (", signed_url_expiry = 0", "signed_url_expiry"),
    ];
    for (extra, needle) in cases {
        let scratch = Scratch::new();
        let config = Config::load(&scratch.write_config(&entry(&fake, "supabase", KEY_VAR, BUCKET, extra))).unwrap();
        let err = match Gateway::open(config).await {
            Ok(_) => panic!("{extra} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("supabase") && err.contains(needle), "{extra}: {err}");
    }
    let scratch = Scratch::new();
    let bad_url = format!(
        "\n[providers.supabase]\nplugin = \"supabase\"\nsecrets = {{ api_key = \"{KEY_VAR}\" }}\nconfig = {{ base_url = \"ftp://example.com\", bucket = \"b\" }}\n"
    );
    let config = Config::load(&scratch.write_config(&bad_url)).unwrap();
    let err = format!("{:#}", Gateway::open(config).await.err().unwrap());
    assert!(err.contains("base_url"), "{err}");
}

/// Ranged reads (contract 0.2.0): the adapter sends `Range`, passes on the
/// 206 only when its `Content-Range` is what was asked, and a range past the
/// end is an invalid request (Supabase's real 416).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_downloads_read_only_the_range() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let extra = entry(&fake, "supabase", KEY_VAR, BUCKET, "");
    let gateway = scratch.gateway(&extra).await;
    let content = pattern(500_000);
    let up = gateway.upload(Source::Path(scratch.write("r.bin", &content)), &to("supabase")).await.unwrap();
    let direct = direct(&scratch, &extra, "supabase").await;
    let read = |range: ByteRange| {
        let (adapter, key) = (&direct.adapter, up.remote_id.clone());
        async move {
            let (body, _, _) = adapter.download(&target(&key), false, Some(range)).await?;
            let chunks: Vec<bytes::Bytes> =
                futures::TryStreamExt::try_collect(body.into_stream()).await.expect("the body reads");
            Ok::<_, CallError>(chunks.concat())
        }
    };
    fake.clear_requests();
    assert_eq!(read(ByteRange { offset: 1000, length: Some(24) }).await.unwrap(), &content[1000..1024]);
    assert_eq!(fake.requests()[0].header("range"), Some("bytes=1000-1023"));
    assert_eq!(read(ByteRange { offset: 499_990, length: None }).await.unwrap(), &content[499_990..]);
    let past = read(ByteRange { offset: 600_000, length: Some(10) }).await.unwrap_err();
    assert_eq!(kind_of(&call_error(&past).kind), "ErrorKind::InvalidRequest", "{past}");
    assert_eq!(call_error(&past).status, Some(416));
}

/// An object already in the bucket is registered from its object URL or as
/// `bucket/key`, hashed by reading it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_registered_from_urls_and_bucket_keys() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let extra = format!(
        "{}\n[principals.local]\nreferences = [\"{base}/object/public/{BUCKET}/shared/*\", \"{BUCKET}/shared/*\"]\n",
        entry(&fake, "supabase", KEY_VAR, BUCKET, ""),
        base = fake.base_url()
    );
    let gateway = scratch.gateway(&extra).await;
    let content = b"%PDF-1.7 someone else's upload".to_vec();
    fake.put(BUCKET, "shared/contract v2.pdf", "application/pdf", &content);

    let url = format!("{}/object/public/{BUCKET}/shared/contract%20v2.pdf", fake.base_url());
    let registered = gateway.register(&url, None, true).await.unwrap();
    assert_eq!(registered.digest_source, wharf::gateway::DigestSource::Read);
    assert_eq!(registered.file.remote_id, "shared/contract v2.pdf");
    assert_eq!(registered.file.sha256, sha256_hex(&content));
    let same = gateway.register(&format!("{BUCKET}/shared/contract v2.pdf"), Some("supabase"), true).await.unwrap();
    assert_eq!(same.file.id, registered.file.id, "both forms name one object");

    let dest = scratch.work().join("contract.pdf");
    let down = gateway.download(&registered.file.id, Some(&dest), None).await.unwrap();
    assert!(down.verified);
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    gateway.remove(&registered.file.id, false).await.unwrap();
    assert_eq!(fake.get(BUCKET, "shared/contract v2.pdf"), Some(content), "the object stays");

    let other = gateway.register("other-bucket/shared/x.pdf", Some("supabase"), true).await.unwrap_err();
    assert!(other.to_string().contains("may not register"), "{other}");
}

/// What `wharf plugins test supabase` runs: every step passes against the fake.
#[tokio::test]
async fn the_conformance_suite_passes() {
    let fake = start_fake().await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&entry(&fake, "supabase", KEY_VAR, BUCKET, "")).await;
    let report = gateway.conformance("supabase").await.unwrap();
    assert!(report.passed, "{report:#?}");
    assert!(report.steps.iter().all(|s| s.outcome == wharf::gateway::StepOutcome::Passed), "{report:#?}");
}
