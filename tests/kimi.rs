//! The Kimi adapter component in the real host, against a fake Kimi Files
//! API on loopback (tests/support/kimi_fake.rs).

mod common;
#[path = "support/kimi_fake.rs"]
mod fake;

use std::process::{Command, Output};
use std::sync::Once;
use std::time::Duration;

use axum::http::Method;
use common::{Scratch, pattern, sha256_hex};
use fake::{ContentShape, FakeKimi, Fault, extracted_text, gaps};
use wharf::body::{Body, FileRange};
use wharf::catalog::CopyState;
use wharf::config::Config;
use wharf::gateway::{Caller, Gateway, GatewayError, Source, UploadOptions};
use wharf::runtime::{Adapter, CallError, ErrorKind, ObjectRef, ProviderError, Runtime};

const KEY_VAR: &str = "WHARF_TEST_KIMI_KEY";
const KEY: &str = "sk-test-kimi-4f1c9a2b7e";
/// A key the fake does not accept, like one from the other platform.
const WRONG_KEY_VAR: &str = "WHARF_TEST_KIMI_WRONG_KEY";
const WRONG_KEY: &str = "sk-test-kimi-from-moonshot-cn";

/// A document whose extracted text differs from its bytes (the fake trims),
/// with quotes, a newline and non-ASCII text to cross the JSON shape.
const REPORT: &[u8] = "  Quarterly report\n季度报告: revenue \"up\" 12%\n\n".as_bytes();

fn set_keys() {
    static KEYS: Once = Once::new();
    // SAFETY: set once, before any config of this test binary reads them,
    // and only ever read through std's own locked environment access.
    KEYS.call_once(|| unsafe {
        std::env::set_var(KEY_VAR, KEY);
        std::env::set_var(WRONG_KEY_VAR, WRONG_KEY);
    });
}

/// A `[providers.kimi]` entry for the fake, with the key in `key_var`,
/// requests to `base_url`, and retries quick enough for tests.
fn kimi_entry(fake: &FakeKimi, key_var: &str, base_url: &str) -> String {
    set_keys();
    format!(
        r#"
[providers.kimi]
plugin = "kimi"
allowed_hosts = ["{origin}"]
secrets = {{ api_key = "{key_var}" }}
config = {{ base_url = "{base_url}" }}
retry = {{ base_delay_ms = 50, max_delay_ms = 200 }}
"#,
        origin = fake.origin(),
    )
}

async fn setup() -> (Scratch, FakeKimi, Caller) {
    let fake = FakeKimi::start(KEY).await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&kimi_entry(&fake, KEY_VAR, &fake.base_url())).await;
    (scratch, fake, gateway)
}

/// The Kimi adapter alone, for what the gateway does not reach: small list
/// pages, and uploads that never pass the gateway's own checks.
async fn adapter(scratch: &Scratch, fake: &FakeKimi) -> (Runtime, Adapter) {
    let config = Config::load(&scratch.write_config(&kimi_entry(fake, KEY_VAR, &fake.base_url()))).unwrap();
    let runtime = Runtime::new(&scratch.data().join("components"), 64 << 20).unwrap();
    let adapter = runtime.load(&config.providers["kimi"]).await.unwrap();
    (runtime, adapter)
}

fn to_kimi(purpose: Option<&str>) -> UploadOptions {
    UploadOptions { provider: Some("kimi".into()), purpose: purpose.map(str::to_string), ..UploadOptions::default() }
}

fn provider_error(err: &GatewayError) -> &ProviderError {
    match err {
        GatewayError::Call(CallError::Provider { error, .. }) => error,
        other => panic!("expected a provider error, got: {other}"),
    }
}

fn call_error(err: &CallError) -> &ProviderError {
    match err {
        CallError::Provider { error, .. } => error,
        other => panic!("expected a provider error, got: {other}"),
    }
}

#[tokio::test]
async fn upload_stat_list_content_and_delete() {
    let (scratch, fake, gateway) = setup().await;
    let up = gateway.upload(Source::Path(scratch.write("report.pdf", REPORT)), &to_kimi(None)).await.unwrap();
    assert_eq!(up.provider, "kimi");
    assert!(!up.deduplicated);
    assert!(up.backup_id.is_some(), "Kimi cannot return originals: the cache keeps them");

    let posts = fake.requests_to(Method::POST, "/v1/files");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].purpose.as_deref(), Some("file-extract"));
    assert_eq!(posts[0].filename.as_deref(), Some("report.pdf"));
    assert_eq!(posts[0].content_type.as_deref(), Some("application/pdf"));
    let stored = fake.files();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, up.remote_id);
    assert_eq!(stored[0].content, REPORT, "the multipart file part carries the exact bytes");

    let info = gateway.info(&up.id).await.unwrap();
    assert_eq!(info.remote_error, None);
    let remote = info.remote.unwrap();
    assert_eq!(remote.remote_id, up.remote_id);
    assert_eq!(remote.name.as_deref(), Some("report.pdf"));
    assert_eq!(remote.size, Some(REPORT.len() as u64));
    assert_eq!(remote.purpose.as_deref(), Some("file-extract"));
    assert!(remote.created_at.is_some());
    // Once to confirm the id the upload answered, once for info.
    assert_eq!(fake.requests_to(Method::GET, &format!("/v1/files/{}", up.remote_id)).len(), 2);

    let listed = gateway.list_remote(Some("kimi")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].remote_id, up.remote_id);
    assert_eq!(listed[0].name.as_deref(), Some("report.pdf"));

    let derived = gateway.download_derived(&up.id, Some(&scratch.work())).await.unwrap();
    assert_eq!(derived.kind, "derived");
    assert_eq!(derived.path, scratch.work().join("report.pdf.derived.txt"));
    assert_eq!(std::fs::read_to_string(&derived.path).unwrap(), "Quarterly report\n季度报告: revenue \"up\" 12%");

    gateway.remove(&up.id, false).await.unwrap();
    assert_eq!(fake.requests_to(Method::DELETE, &format!("/v1/files/{}", up.remote_id)).len(), 1);
    assert!(fake.files().is_empty(), "the file is gone at Kimi");
    assert!(common::records(&gateway, Some("kimi")).await.is_empty(), "and from Wharf's records");
}

#[tokio::test]
async fn extracted_text_in_both_shapes_of_content() {
    let (scratch, fake, gateway) = setup().await;
    let up = gateway.upload(Source::Path(scratch.write("report.pdf", REPORT)), &to_kimi(None)).await.unwrap();
    let expected = extracted_text(REPORT);

    fake.set_content_shape(ContentShape::Json);
    let json = gateway.download_derived(&up.id, Some(&scratch.work().join("json.txt"))).await.unwrap();
    assert_eq!(std::fs::read_to_string(&json.path).unwrap(), expected, "the content field, unescaped");

    fake.set_content_shape(ContentShape::PlainText);
    let plain = gateway.download_derived(&up.id, Some(&scratch.work().join("plain.txt"))).await.unwrap();
    assert_eq!(std::fs::read_to_string(&plain.path).unwrap(), expected, "the body as it is");
    assert_eq!(plain.kind, "derived");

    // Named by its hash, the content is asked of the provider that derives it,
    // not of the cache that holds the original.
    let by_hash = format!("sha256:{}", up.sha256);
    let hashed = gateway.download_derived(&by_hash, Some(&scratch.work().join("hashed.txt"))).await.unwrap();
    assert_eq!(hashed.id, up.id);
    assert_eq!(std::fs::read_to_string(&hashed.path).unwrap(), expected);
    assert_eq!(fake.requests_to(Method::GET, &format!("/v1/files/{}/content", up.remote_id)).len(), 3);
}

#[tokio::test]
async fn purposes_are_the_callers_or_inferred_from_the_file() {
    let (scratch, fake, gateway) = setup().await;
    let cases = [
        ("photo.png", None, "image"),
        ("clip.mp4", None, "video"),
        ("requests.jsonl", None, "batch"),
        ("notes.md", None, "file-extract"),
        ("scan.png", Some("file-extract"), "file-extract"),
    ];
    for (i, (name, purpose, _)) in cases.iter().enumerate() {
        let path = scratch.write(name, format!("{{\"n\": {i}}}").as_bytes());
        gateway.upload(Source::Path(path), &to_kimi(*purpose)).await.unwrap();
    }
    let sent: Vec<_> = fake.requests_to(Method::POST, "/v1/files");
    let got: Vec<_> = sent.iter().map(|s| (s.filename.clone().unwrap(), s.purpose.clone().unwrap())).collect();
    let want: Vec<_> = cases.iter().map(|(name, _, purpose)| (name.to_string(), purpose.to_string())).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn list_pages_on_the_client_and_survives_changes_between_pages() {
    let scratch = Scratch::new();
    let fake = FakeKimi::start(KEY).await;
    let (_runtime, adapter) = adapter(&scratch, &fake).await;
    let upload = async |name: &str| {
        let body = Body::Bytes(bytes::Bytes::from(format!("content of {name}")));
        adapter.upload(body, name, "text/plain", "unused", None).await.unwrap().info.remote_id
    };
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(upload(&format!("f{i}.txt")).await);
    }

    let first = adapter.list(None, 2).await.unwrap();
    let page_ids = |page: &wharf::runtime::Page| page.items.iter().map(|i| i.remote_id.clone()).collect::<Vec<_>>();
    assert_eq!(page_ids(&first), ids[..2], "oldest first, whatever order Kimi answers in");
    // Between pages: a listed file is deleted and a new one arrives.
    fake.remove(&ids[0]);
    ids.push(upload("late.txt").await);
    let mut cursor = first.next_cursor.clone().expect("more pages follow");
    let mut rest = Vec::new();
    loop {
        let page = adapter.list(Some(&cursor), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        rest.extend(page_ids(&page));
        match page.next_cursor {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(rest, ids[2..], "no file skipped or repeated");
    let all = adapter.list(None, 100).await.unwrap();
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.next_cursor, None, "no cursor on the last page");

    let err = adapter.list(Some("page-2"), 2).await.unwrap_err();
    assert!(matches!(call_error(&err).kind, ErrorKind::InvalidRequest), "{err}");
    assert!(err.to_string().contains("not a Kimi list cursor"), "{err}");
}

#[tokio::test]
async fn status_error_on_http_200_fails_clearly_and_leaves_nothing() {
    let (scratch, fake, gateway) = setup().await;
    fake.script(Method::POST, "/v1/files", 1, Fault::ProcessingError("failed to parse the document".into()));
    let err = gateway.upload(Source::Path(scratch.write("report.pdf", REPORT)), &to_kimi(None)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("kimi: upload failed: invalid request (HTTP 200)"), "{text}");
    assert!(text.contains("report.pdf") && text.contains("status \"error\""), "{text}");
    assert!(text.contains("failed to parse the document"), "{text}");
    assert_eq!(fake.requests_to(Method::POST, "/v1/files").len(), 1, "not retried");
    assert!(fake.files().is_empty(), "the failed file was deleted at Kimi");
    assert!(common::records(&gateway, None).await.is_empty(), "no record, not even the cache backup");
}

#[tokio::test]
async fn upload_dropped_halfway_leaves_no_backup_record() {
    let (scratch, fake, gateway) = setup().await;
    // Kimi answers "wait 30 s": the upload is dropped while it waits, after
    // its cache backup was recorded (as when the CLI is interrupted).
    let fault = Fault::error(429, "rate_limit_reached_error", "Your account reached max request: 3 RPM");
    fake.script(Method::POST, "/v1/files", 1, fault.with_retry_after("30"));
    let options = to_kimi(None);
    let mut upload = Box::pin(gateway.upload(Source::Path(scratch.write("report.pdf", REPORT)), &options));
    while fake.requests_to(Method::POST, "/v1/files").is_empty() {
        tokio::select! {
            done = &mut upload => panic!("the upload should be waiting out Retry-After: {done:?}"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let held = common::records(&gateway, None).await;
    assert_eq!(held.len(), 1, "the cache backup is recorded before Kimi is asked");
    assert_eq!(held[0].provider, "local");
    drop(upload);
    gateway.settle().await;
    assert!(common::records(&gateway, None).await.is_empty(), "the unfinished upload's backup record is gone");
    let blob = scratch.data().join("local/objects").join(&sha256_hex(REPORT)[..2]).join(sha256_hex(REPORT));
    assert!(!blob.exists(), "nor its bytes in the cache");
}

#[tokio::test]
async fn rate_limited_upload_waits_for_retry_after_then_succeeds() {
    let (scratch, fake, gateway) = setup().await;
    let fault = Fault::error(429, "rate_limit_reached_error", "Your account reached max request: 3 RPM");
    fake.script(Method::POST, "/v1/files", 1, fault.with_retry_after("1"));
    let up = gateway.upload(Source::Path(scratch.write("report.pdf", REPORT)), &to_kimi(None)).await.unwrap();
    let posts = fake.requests_to(Method::POST, "/v1/files");
    assert_eq!(posts.len(), 2, "one refusal, one success");
    // The policy's own backoff is 50 ms here: a second's wait is Kimi's.
    let waited = gaps(&posts)[0];
    assert!(waited >= Duration::from_secs(1), "the host waited {waited:?}, not the 1 s asked");
    assert_eq!(posts[1].size, Some(REPORT.len()), "the body was sent again in full");
    assert_eq!(fake.files().len(), 1);
    assert_eq!(fake.files()[0].id, up.remote_id);
}

#[tokio::test]
async fn overload_and_server_errors_are_retried_then_succeed() {
    let (scratch, fake, gateway) = setup().await;
    fake.script(Method::POST, "/v1/files", 2, Fault::error(500, "server_error", "internal error"));
    let up = gateway.upload(Source::Path(scratch.write("report.pdf", REPORT)), &to_kimi(None)).await.unwrap();
    assert_eq!(fake.requests_to(Method::POST, "/v1/files").len(), 3);
    assert_eq!(fake.files().len(), 1, "one file, from the third attempt");

    // A 429 with no Retry-After (Kimi documents none) backs off and retries.
    let stat_path = format!("/v1/files/{}", up.remote_id);
    fake.script(Method::GET, &stat_path, 1, Fault::error(429, "engine_overloaded_error", "The engine is overloaded"));
    let info = gateway.info(&up.id).await.unwrap();
    assert_eq!(info.remote_error, None);
    // The upload's confirmation, then info's 429 and its retry.
    assert_eq!(fake.requests_to(Method::GET, &stat_path).len(), 3);
}

#[tokio::test]
async fn wrong_key_fails_at_once_naming_provider_operation_status_and_message() {
    set_keys();
    let fake = FakeKimi::start(KEY).await;
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&kimi_entry(&fake, WRONG_KEY_VAR, &fake.base_url())).await;
    let err = gateway.upload(Source::Path(scratch.write("report.pdf", REPORT)), &to_kimi(None)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "kimi: upload failed: unauthorized (HTTP 401, invalid_authentication_error): Invalid Authentication"
    );
    assert!(!format!("{err:?}").contains(WRONG_KEY), "the key never appears in errors");
    assert_eq!(fake.requests().len(), 1, "not retried");
    assert!(common::records(&gateway, None).await.is_empty());
}

#[tokio::test]
async fn quota_and_refusals_are_classified_and_never_retried() {
    let (scratch, fake, gateway) = setup().await;
    let cases: [(Fault, &str); 5] = [
        (
            Fault::error(429, "exceeded_current_quota_error", "Your account is suspended, please check your plan")
                .with_retry_after("1"),
            "kimi: upload failed: quota exceeded (HTTP 429, exceeded_current_quota_error): Your account is suspended",
        ),
        (
            Fault::error(403, "permission_denied_error", "Your account balance is insufficient"),
            "kimi: upload failed: quota exceeded (HTTP 403, permission_denied_error)",
        ),
        (
            Fault::error(403, "access_terminated_error", "Access terminated"),
            "kimi: upload failed: forbidden (HTTP 403, access_terminated_error)",
        ),
        (
            Fault::error(400, "content_filter", "The request was rejected because it was considered high risk"),
            "kimi: upload failed: invalid request (HTTP 400, content_filter)",
        ),
        (
            Fault::error(400, "invalid_request_error", "File size is too large, max file size is 100MB"),
            "kimi: upload failed: too large (HTTP 400, invalid_request_error)",
        ),
    ];
    for (i, (fault, expected)) in cases.into_iter().enumerate() {
        fake.script(Method::POST, "/v1/files", 1, fault);
        let name = format!("doc{i}.pdf");
        let err = gateway.upload(Source::Path(scratch.write(&name, &pattern(100 + i))), &to_kimi(None)).await;
        let err = err.unwrap_err();
        assert!(err.to_string().starts_with(expected), "{name}: {err}");
        assert_eq!(fake.requests_to(Method::POST, "/v1/files").len(), i + 1, "{name}: one request, no retry");
    }

    // The account's file count, answered the way Kimi does: a 400.
    fake.set_max_files(1);
    gateway.upload(Source::Path(scratch.write("first.pdf", b"first")), &to_kimi(None)).await.unwrap();
    let before = fake.requests().len();
    let err = gateway.upload(Source::Path(scratch.write("second.pdf", b"second")), &to_kimi(None)).await.unwrap_err();
    assert!(matches!(provider_error(&err).kind, ErrorKind::QuotaExceeded), "{err}");
    assert!(err.to_string().contains("max file count 1"), "{err}");
    assert_eq!(fake.requests().len(), before + 1, "not retried");
}

#[tokio::test]
async fn pre_checks_refuse_without_sending_anything() {
    let (scratch, fake, gateway) = setup().await;
    let refused = [
        ("empty.pdf", &b""[..], None, "empty.pdf is empty"),
        ("report.pdf", REPORT, Some("fine-tune"), "use one of: file-extract, image, video, batch"),
        ("report.pdf", REPORT, Some("batch"), "purpose batch takes a JSON Lines file (.jsonl)"),
        ("report.pdf", REPORT, Some("image"), "purpose image takes an image (image/*); report.pdf is application/pdf"),
        ("photo.png", &b"\x89PNG"[..], Some("video"), "purpose video takes a video"),
    ];
    for (name, content, purpose, expected) in refused {
        let err = gateway.upload(Source::Path(scratch.write(name, content)), &to_kimi(purpose)).await.unwrap_err();
        assert!(matches!(provider_error(&err).kind, ErrorKind::InvalidRequest), "{name}: {err}");
        assert!(err.to_string().contains(expected), "{name} as {purpose:?}: {err}");
    }
    assert!(fake.requests().is_empty(), "nothing reached Kimi: {:?}", fake.requests());
    assert!(common::records(&gateway, None).await.is_empty(), "and nothing was recorded");

    // Over 100 MB (10^8 bytes): refused by the adapter itself, before a byte
    // is read. A sparse file: its size is real, its blocks are not.
    let (_runtime, adapter) = adapter(&scratch, &fake).await;
    let huge = std::fs::File::create(scratch.work().join("huge.pdf")).unwrap();
    huge.set_len(100_000_001).unwrap();
    let body = Body::File(
        FileRange::whole(std::fs::File::open(scratch.work().join("huge.pdf")).unwrap(), "huge.pdf").unwrap(),
    );
    let err = adapter.upload(body, "huge.pdf", "application/pdf", "unused", None).await.unwrap_err();
    assert!(matches!(call_error(&err).kind, ErrorKind::TooLarge), "{err}");
    assert!(err.to_string().contains("huge.pdf is 100000001 bytes"), "{err}");
    assert_eq!(adapter.capabilities().max_size, Some(100_000_000));

    // Original bytes are never asked of Kimi.
    let target = ObjectRef { remote_id: "cv0000000000000000001".into(), purpose: None };
    let Err(err) = adapter.download(&target, false, None).await else { panic!("original bytes from Kimi") };
    assert!(matches!(call_error(&err).kind, ErrorKind::Unsupported), "{err}");
    assert!(fake.requests().is_empty(), "nothing reached Kimi: {:?}", fake.requests());
}

#[tokio::test]
async fn same_bytes_twice_are_uploaded_once_and_cached_once() {
    let (scratch, fake, gateway) = setup().await;
    let content = pattern(50_000);
    let first = gateway.upload(Source::Path(scratch.write("a.pdf", &content)), &to_kimi(None)).await.unwrap();
    let second = gateway.upload(Source::Path(scratch.write("b.pdf", &content)), &to_kimi(None)).await.unwrap();
    assert_eq!(first.id, second.id);
    assert!(second.deduplicated);
    assert_eq!(first.backup_id, second.backup_id);
    assert_eq!(fake.requests_to(Method::POST, "/v1/files").len(), 1, "sent to Kimi once");
    let cached = std::fs::read_dir(scratch.data().join("local/objects").join(&first.sha256[..2]))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(cached, 1, "one copy in the cache");
    let records = common::records(&gateway, None).await;
    assert_eq!(records.len(), 2, "one Kimi copy and one cache copy: {records:?}");
}

#[tokio::test]
async fn a_file_deleted_at_kimi_is_marked_gone_and_the_cache_still_serves_it() {
    let (scratch, fake, gateway) = setup().await;
    let up = gateway.upload(Source::Path(scratch.write("report.pdf", REPORT)), &to_kimi(None)).await.unwrap();
    fake.remove(&up.remote_id);
    let info = gateway.info(&up.id).await.unwrap();
    let remote_error = info.remote_error.unwrap();
    assert!(
        remote_error.contains("kimi: stat failed: not found (HTTP 404, resource_not_found_error)"),
        "{remote_error}"
    );
    let kimi = common::records(&gateway, Some("kimi")).await;
    assert_eq!(kimi[0].state, CopyState::Gone);
    let down = gateway.download(&up.id, Some(&scratch.work().join("back.pdf")), None).await.unwrap();
    assert_eq!(down.source, "cache");
    assert_eq!(std::fs::read(&down.path).unwrap(), REPORT);
}

#[tokio::test]
async fn hosts_outside_the_allowlist_are_refused_before_connecting() {
    set_keys();
    let fake = FakeKimi::start(KEY).await;
    let scratch = Scratch::new();
    // The same server under another name: only the allowlist stands between.
    let elsewhere = format!("http://localhost:{}/v1", fake.addr.port());
    let gateway = scratch.gateway(&kimi_entry(&fake, KEY_VAR, &elsewhere)).await;
    let err = gateway.upload(Source::Path(scratch.write("report.pdf", REPORT)), &to_kimi(None)).await.unwrap_err();
    assert!(matches!(provider_error(&err).kind, ErrorKind::Forbidden), "{err}");
    let text = err.to_string();
    assert!(text.contains("provider kimi may not reach http://localhost"), "{text}");
    assert!(text.contains(&fake.origin().replace("http://", "")), "the message lists the allowed hosts: {text}");
    assert!(fake.requests().is_empty(), "no request reached the server");
}

fn wharf(scratch: &Scratch, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--config")
        .arg(scratch.config_path())
        .args(args)
        .env(KEY_VAR, KEY)
        .current_dir(scratch.work())
        .output()
        .expect("running wharf")
}

fn json_line(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("one JSON line")
}

// The fake serves from a worker thread while the CLI blocks another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_download_returns_the_cached_original_and_derived_text_separately() {
    let fake = FakeKimi::start(KEY).await;
    let scratch = Scratch::new();
    scratch.write_config(&kimi_entry(&fake, KEY_VAR, &fake.base_url()));
    scratch.write("report.pdf", REPORT);

    let up = tokio::task::block_in_place(|| wharf(&scratch, &["--json", "upload", "--provider", "kimi", "report.pdf"]));
    let up = json_line(&up);
    assert_eq!(up["provider"], "kimi");
    assert!(up["backup_id"].is_string(), "{up}");
    let id = up["id"].as_str().unwrap().to_string();
    let remote_id = up["remote_id"].as_str().unwrap().to_string();

    let down = tokio::task::block_in_place(|| wharf(&scratch, &["--json", "download", &id, "-o", "back.pdf"]));
    let down = json_line(&down);
    assert_eq!(down["source"], "cache");
    assert_eq!(down["verified"], true);
    assert_eq!(down["kind"], "original");
    assert_eq!(down["sha256"], sha256_hex(REPORT));
    assert_eq!(std::fs::read(scratch.work().join("back.pdf")).unwrap(), REPORT);

    let derived = tokio::task::block_in_place(|| wharf(&scratch, &["--json", "download", "--derived", &id]));
    let derived = json_line(&derived);
    assert_eq!(derived["kind"], "derived");
    let path = scratch.work().join("report.pdf.derived.txt");
    assert_eq!(derived["path"], path.display().to_string());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), extracted_text(REPORT));
    assert_eq!(std::fs::read(scratch.work().join("report.pdf")).unwrap(), REPORT, "the original is untouched");

    let seen: Vec<_> = fake.requests().into_iter().map(|s| format!("{} {}", s.method, s.path)).collect();
    let expected =
        ["POST /v1/files", &format!("GET /v1/files/{remote_id}"), &format!("GET /v1/files/{remote_id}/content")];
    assert_eq!(seen, expected, "the upload, its confirmation, the derived text");
}

#[tokio::test]
async fn config_mistakes_stop_the_host_naming_the_provider() {
    set_keys();
    let fake = FakeKimi::start(KEY).await;
    let scratch = Scratch::new();
    let entry = |config: &str| {
        format!(
            "[providers.kimi]\nplugin = \"kimi\"\nallowed_hosts = [\"{}\"]\nsecrets = {{ api_key = \"{KEY_VAR}\" }}\nconfig = {config}\n",
            fake.origin()
        )
    };
    let refused = [
        ("{ base_url = \"api.moonshot.ai/v1\" }", "must be an http(s) URL"),
        ("{ default_purpose = \"fine-tune\" }", "use one of: file-extract, image, video, batch"),
        ("{ region = \"cn\" }", "unknown field `region`"),
    ];
    for (config, expected) in refused {
        let loaded = Config::load(&scratch.write_config(&entry(config))).unwrap();
        let err = Gateway::open(loaded).await.err().expect("the config is refused");
        let text = format!("{err:#}");
        assert!(text.contains("provider kimi: its config was refused"), "{config}: {text}");
        assert!(text.contains(expected), "{config}: {text}");
    }

    // A trailing slash is fine; default_purpose applies to plain documents.
    let config = format!("{{ base_url = \"{}/\", default_purpose = \"batch\" }}", fake.base_url());
    let gateway =
        Gateway::open(Config::load(&scratch.write_config(&entry(&config))).unwrap()).await.unwrap().host_caller();
    gateway.upload(Source::Path(scratch.write("jobs.jsonl", b"{}\n")), &to_kimi(None)).await.unwrap();
    let err = gateway.upload(Source::Path(scratch.write("notes.txt", b"notes")), &to_kimi(None)).await.unwrap_err();
    assert!(err.to_string().contains("purpose batch takes a JSON Lines file"), "{err}");
    let posts = fake.requests_to(Method::POST, "/v1/files");
    assert_eq!(posts.len(), 1, "{:?}", fake.requests());
    assert_eq!(posts[0].purpose.as_deref(), Some("batch"));
}

/// Retention evicts cache copies whose bytes another copy can still return,
/// and never the only original: Kimi's backup in the cache stays.
#[tokio::test]
async fn gc_keeps_the_only_original_of_a_kimi_file_and_evicts_others() {
    let fake = FakeKimi::start(KEY).await;
    let scratch = Scratch::new();
    let extra = format!(
        r#"{}
[providers.mirror]
plugin = "local"
storage_dir = "{data}/mirror"

[retention]
cache_max_bytes = 0
"#,
        kimi_entry(&fake, KEY_VAR, &fake.base_url()),
        data = scratch.data().display()
    );
    let gateway = scratch.open_gateway(&extra).await;
    let caller = gateway.host_caller();
    let to = |p: &str| UploadOptions { provider: Some(p.into()), ..UploadOptions::default() };
    let kimi = caller.upload(Source::Path(scratch.write("report.txt", REPORT)), &to("kimi")).await.unwrap();
    let mirrored = pattern(40_000);
    let path = scratch.write("mirrored.bin", &mirrored);
    let cached = caller.upload(Source::Path(path.clone()), &UploadOptions::default()).await.unwrap();
    caller.upload(Source::Path(path), &to("mirror")).await.unwrap();
    let only = caller
        .upload(Source::Path(scratch.write("only.bin", &pattern(5000))), &UploadOptions::default())
        .await
        .unwrap();
    let stored = |sha: &str| scratch.data().join("local/objects").join(&sha[..2]).join(sha);

    let plan = gateway.gc(true).await.unwrap();
    assert_eq!(plan.evicted.iter().map(|e| e.remote_id.as_str()).collect::<Vec<_>>(), [cached.sha256.as_str()]);
    assert_eq!(plan.evicted[0].kept_at, "mirror");
    assert!(stored(&cached.sha256).exists(), "a dry run removes nothing");

    let report = gateway.gc(false).await.unwrap();
    assert_eq!(report.evicted, plan.evicted);
    assert_eq!(report.bytes_freed, 40_000);
    assert!(!stored(&cached.sha256).exists(), "evicted from the cache");
    assert!(stored(&kimi.sha256).exists(), "Kimi's original is kept: Kimi cannot return it");
    assert!(stored(&only.sha256).exists(), "the only copy of its bytes is kept");

    // The evicted record still answers, from the copy that was kept.
    let dest = scratch.work().join("again.bin");
    let down = caller.download(&cached.id, Some(&dest), None).await.unwrap();
    assert_eq!((down.provider.as_str(), down.verified), ("mirror", true));
    assert_eq!(std::fs::read(&dest).unwrap(), mirrored);
    let original = caller.download(&kimi.id, Some(&scratch.work().join("r.txt")), None).await.unwrap();
    assert_eq!((original.source, original.verified), ("cache", true));
}

/// What `wharf plugins test kimi` runs: whole derived downloads only, so
/// ranges are skipped; everything else passes against the fake.
#[tokio::test]
async fn the_conformance_suite_passes() {
    let (_scratch, _fake, gateway) = setup().await;
    let report = gateway.conformance("kimi").await.unwrap();
    assert!(report.passed, "{report:#?}");
    let skipped: Vec<_> =
        report.steps.iter().filter(|s| s.outcome == wharf::gateway::StepOutcome::Skipped).map(|s| s.step).collect();
    assert_eq!(skipped, ["ranged download"], "{report:#?}");
}
