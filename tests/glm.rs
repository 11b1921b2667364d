//! The GLM adapter component in the real host, against a fake GLM server
//! (tests/support/glm_fake.rs) on 127.0.0.1.

mod common;
#[path = "support/glm_fake.rs"]
mod fake;

use std::process::{Command, Output};
use std::sync::Once;
use std::time::Duration;

use common::{Scratch, pattern, sha256_hex};
use fake::{FakeGlm, Reply};
use wharf::catalog::CopyState;
use wharf::gateway::{Caller, GatewayError, Source, UploadOptions};
use wharf::runtime::{CallError, ErrorKind, ProviderError};

const KEY_VAR: &str = "WHARF_TEST_GLM_KEY";
const WRONG_KEY_VAR: &str = "WHARF_TEST_GLM_WRONG_KEY";
const WRONG_KEY: &str = "glm-wrong-key.fedcba9876543210";

/// Puts the keys where providers.toml says they are. Every test calls this
/// first; the values never change once set.
fn set_keys() {
    static KEYS: Once = Once::new();
    // SAFETY: done once, before the calling test reads the environment; other
    // test threads read it only through std, which locks around set_var.
    KEYS.call_once(|| unsafe {
        std::env::set_var(KEY_VAR, fake::KEY);
        std::env::set_var(WRONG_KEY_VAR, WRONG_KEY);
    });
}

/// A `[providers.NAME]` entry for the GLM adapter against `fake`; `config`
/// adds keys to its config table (`, check_file_count = false`).
fn glm_entry(name: &str, fake: &FakeGlm, key_var: &str, config: &str) -> String {
    format!(
        r#"
[providers.{name}]
plugin = "glm"
allowed_hosts = ["{origin}"]
secrets = {{ api_key = "{key_var}" }}
config = {{ base_url = "{base}"{config} }}
retry = {{ base_delay_ms = 50 }}
"#,
        origin = fake.origin(),
        base = fake.base_url()
    )
}

async fn glm_gateway(scratch: &Scratch, fake: &FakeGlm) -> Caller {
    scratch.gateway(&glm_entry("glm", fake, KEY_VAR, "")).await
}

fn to(provider: &str, purpose: Option<&str>) -> UploadOptions {
    UploadOptions { provider: Some(provider.into()), purpose: purpose.map(str::to_string), ..UploadOptions::default() }
}

/// The provider's classified failure behind a gateway error.
fn provider_error(err: &GatewayError) -> &ProviderError {
    match err {
        GatewayError::Call(CallError::Provider { error, .. }) => error,
        other => panic!("expected a provider error, got: {other}"),
    }
}

#[tokio::test]
async fn upload_stat_and_delete_go_through_the_files_api() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    let content = pattern(300_000);
    let up = gateway.upload(Source::Path(scratch.write("report.pdf", &content)), &to("glm", None)).await.unwrap();
    assert_eq!(up.provider, "glm");
    assert!(up.backup_id.is_some(), "GLM is not persistent: the original is kept in the cache");

    let stored = fake.file(&up.remote_id).expect("the fake holds the upload");
    assert_eq!(stored.bytes.as_ref(), content.as_slice());
    assert_eq!(stored.filename, "report.pdf");
    assert_eq!(stored.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(stored.purpose, "file-extract", "the default purpose");
    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("GET", "/files"), "the count check lists first");
    assert_eq!(seen[0].purpose.as_deref(), Some("file-extract"));
    assert_eq!((seen[1].method.as_str(), seen[1].path.as_str()), ("POST", "/files"));
    assert_eq!(seen[1].purpose.as_deref(), Some("file-extract"));
    assert_eq!((seen[2].method.as_str(), seen[2].path.as_str()), ("GET", "/files"), "the id answered is confirmed");

    // Newer files push the upload onto the second page of its purpose.
    for i in 0..150 {
        fake.seed("file-extract", &format!("other{i}.pdf"), b"other");
    }
    let info = gateway.info(&up.id).await.unwrap();
    let remote = info.remote.unwrap_or_else(|| panic!("stat failed: {:?}", info.remote_error));
    assert_eq!(remote.remote_id, up.remote_id);
    assert_eq!(remote.size, Some(content.len() as u64));
    assert_eq!(remote.name.as_deref(), Some("report.pdf"));
    assert_eq!(remote.purpose.as_deref(), Some("file-extract"));
    let lists = fake.requests("GET", "/files");
    assert!(lists.iter().any(|s| s.query.contains_key("after")), "stat paged with after: {lists:?}");
    assert!(fake.seen().iter().all(|s| s.path == "/files" || s.method != "GET"), "no GET by id: GLM has none");

    gateway.remove(&up.id, false).await.unwrap();
    assert!(fake.file(&up.remote_id).is_none());
    assert_eq!(fake.requests("DELETE", &format!("/files/{}", up.remote_id)).len(), 1);
    assert!(common::records(&gateway, Some("glm")).await.is_empty());
}

#[tokio::test]
async fn list_pages_with_after_and_walks_every_purpose() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let b1 = fake.seed("batch", "b1.jsonl", b"1");
    let b2 = fake.seed("batch", "b2.jsonl", b"2");
    let b3 = fake.seed("batch", "b3.jsonl", b"3");
    let f1 = fake.seed("file-extract", "f1.pdf", b"4");
    let f2 = fake.seed("file-extract", "f2.pdf", b"5");
    let a1 = fake.seed("agent", "a1.txt", b"6");
    // Not in the configured purposes: never listed.
    fake.seed("code-interpreter", "c1.txt", b"7");
    let entry = glm_entry("glm", &fake, KEY_VAR, r#", purposes = ["batch", "file-extract", "agent"]"#);

    // Through the gateway: everything, one purpose after another.
    let gateway = scratch.gateway(&entry).await;
    let all = gateway.list_remote(Some("glm")).await.unwrap();
    let got: Vec<_> = all.iter().map(|i| (i.remote_id.clone(), i.purpose.clone().unwrap())).collect();
    let expected: Vec<_> = [(&b3, "batch"), (&b2, "batch"), (&b1, "batch"), (&f2, "file-extract")]
        .into_iter()
        .chain([(&f1, "file-extract"), (&a1, "agent")])
        .map(|(id, p)| (id.clone(), p.to_string()))
        .collect();
    assert_eq!(got, expected);
    let purposes: Vec<_> = fake.requests("GET", "/files").into_iter().map(|s| s.purpose.unwrap()).collect();
    assert_eq!(purposes, ["batch", "file-extract", "agent"]);
    drop(gateway);

    // Through the adapter with small pages: cursors carry purpose and `after`.
    let config = wharf::config::Config::load(&scratch.write_config(&entry)).unwrap();
    let runtime = wharf::runtime::Runtime::new(&scratch.data().join("components"), 64 << 20).unwrap();
    let adapter = runtime.load(&config.providers["glm"]).await.unwrap();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = adapter.list(cursor.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2, "at most the limit: {:?}", page.items);
        pages.push(page.items.iter().map(|i| i.remote_id.clone()).collect::<Vec<_>>());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, [vec![b3.clone(), b2.clone()], vec![b1, f2.clone()], vec![f1, a1]]);
    let afters: Vec<_> =
        fake.requests("GET", "/files").into_iter().filter_map(|s| s.query.get("after").cloned()).collect();
    assert_eq!(afters, [b2, f2], "each purpose resumes after the last id it gave");
}

#[tokio::test]
async fn batch_content_is_derived_and_originals_come_from_the_cache() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    let content = b"{\"custom_id\":\"1\",\"method\":\"POST\",\"url\":\"/v4/chat/completions\"}\n".repeat(500);
    let up =
        gateway.upload(Source::Path(scratch.write("data.jsonl", &content)), &to("glm", Some("batch"))).await.unwrap();
    assert_eq!(fake.file(&up.remote_id).unwrap().purpose, "batch");

    let derived = gateway.download_derived(&up.id, Some(&scratch.work())).await.unwrap();
    assert_eq!(derived.kind, "derived");
    assert!(!derived.verified);
    assert_eq!(derived.path, scratch.work().join("data.jsonl.derived.bin"));
    assert_eq!(std::fs::read(&derived.path).unwrap(), content);
    assert_eq!(fake.requests("GET", &format!("/files/{}/content", up.remote_id)).len(), 1);

    let dest = scratch.work().join("back.jsonl");
    let original = gateway.download(&up.id, Some(&dest), None).await.unwrap();
    assert_eq!(original.source, "cache");
    assert!(original.verified);
    assert_eq!(original.sha256, sha256_hex(&content));
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(fake.requests("GET", &format!("/files/{}/content", up.remote_id)).len(), 1, "the cache answered");
}

#[tokio::test]
async fn content_is_refused_without_a_request_for_agent_and_code_interpreter() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    for purpose in ["agent", "code-interpreter"] {
        let content = format!("notes for {purpose}").into_bytes();
        let source = scratch.write(&format!("{purpose}.txt"), &content);
        let up = gateway.upload(Source::Path(source), &to("glm", Some(purpose))).await.unwrap();
        let err = gateway.download_derived(&up.id, Some(&scratch.work())).await.unwrap_err();
        let error = provider_error(&err);
        assert!(matches!(error.kind, ErrorKind::Unsupported), "{err}");
        assert!(err.to_string().contains(&format!("{} has purpose {purpose}", up.remote_id)), "{err}");
        assert!(
            fake.seen().iter().all(|s| !s.path.ends_with("/content")),
            "no content request was sent: {:?}",
            fake.seen()
        );
        assert_eq!(common::records(&gateway, Some("glm")).await[0].state, CopyState::Present);
        // The original still comes back, from the cache.
        let back = gateway.download(&up.id, Some(&scratch.work().join(format!("{purpose}.back"))), None).await.unwrap();
        assert_eq!((back.source, back.verified), ("cache", true));
    }
}

#[tokio::test]
async fn throttling_1302_is_retried_after_the_wait_glm_asks_for() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    fake.fail(
        "POST",
        "/files",
        1,
        Reply::error(429, Some("1302"), "您当前使用该API的并发数过高，请降低并发").retry_after("1"),
    );
    let up = gateway.upload(Source::Path(scratch.write("a.pdf", b"pdf bytes")), &to("glm", None)).await.unwrap();
    assert!(fake.file(&up.remote_id).is_some());
    let posts = fake.requests("POST", "/files");
    assert_eq!(posts.iter().map(|s| s.status).collect::<Vec<_>>(), [429, 200]);
    let waited = posts[1].at.duration_since(posts[0].at);
    assert!(waited >= Duration::from_secs(1), "the host honoured Retry-After: 1 (waited {waited:?})");
}

#[tokio::test]
async fn empty_balance_1113_fails_at_once_as_quota() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    fake.fail("POST", "/files", 1, Reply::error(429, Some("1113"), "余额不足或无可用资源包,请充值。").retry_after("1"));
    let err = gateway.upload(Source::Path(scratch.write("a.pdf", b"pdf bytes")), &to("glm", None)).await.unwrap_err();
    assert!(matches!(provider_error(&err).kind, ErrorKind::QuotaExceeded), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("glm: upload failed: quota exceeded (HTTP 429, 1113): uploading a.pdf"), "{text}");
    assert!(text.contains("余额不足"), "the provider's message: {text}");
    assert_eq!(fake.requests("POST", "/files").len(), 1, "never retried");
    assert!(common::records(&gateway, None).await.is_empty(), "no copy recorded, no cache orphan");
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_not_retried() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&glm_entry("glm", &fake, WRONG_KEY_VAR, "")).await;
    let err = gateway.upload(Source::Path(scratch.write("a.pdf", b"pdf")), &to("glm", None)).await.unwrap_err();
    let error = provider_error(&err);
    assert!(matches!(error.kind, ErrorKind::Unauthorized), "{err}");
    assert_eq!((error.status, error.code.as_deref()), (Some(401), Some("1002")));
    let text = err.to_string();
    assert!(text.contains("Authorization Token非法"), "{text}");
    assert!(!text.contains(WRONG_KEY), "the key never appears in errors: {text}");
    assert_eq!(fake.seen().len(), 1, "one request, no retry: {:?}", fake.seen());
    assert!(fake.requests("POST", "/files").is_empty());
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    fake.fail("POST", "/files", 2, Reply::error(500, Some("500"), "Internal Error"));
    let content = pattern(50_000);
    let up = gateway.upload(Source::Path(scratch.write("a.pdf", &content)), &to("glm", None)).await.unwrap();
    let statuses: Vec<_> = fake.requests("POST", "/files").iter().map(|s| s.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(fake.file(&up.remote_id).unwrap().bytes.as_ref(), content.as_slice(), "the body was sent again whole");
    assert_eq!(fake.files().len(), 1);
}

#[tokio::test]
async fn other_glm_failures_are_classified_by_code_and_status() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    type Check = fn(&ErrorKind) -> bool;
    let cases: [(Reply, Check, &str); 4] = [
        (Reply::error(434, None, "无权访问文件管理API"), |k| matches!(k, ErrorKind::Forbidden), "forbidden (HTTP 434)"),
        (
            Reply::error(435, Some("1214"), "文件大小超过100MB"),
            |k| matches!(k, ErrorKind::TooLarge),
            "too large (HTTP 435, 1214)",
        ),
        (
            Reply::error(429, Some("1112"), "账户已被锁定"),
            |k| matches!(k, ErrorKind::Forbidden),
            "forbidden (HTTP 429, 1112)",
        ),
        (
            Reply::error(401, Some("1003"), "Token已过期"),
            |k| matches!(k, ErrorKind::Unauthorized),
            "unauthorized (HTTP 401, 1003)",
        ),
    ];
    for (i, (reply, check, shown)) in cases.into_iter().enumerate() {
        let posts_before = fake.requests("POST", "/files").len();
        fake.fail("POST", "/files", 1, reply);
        let source = scratch.write(&format!("case{i}.pdf"), format!("case {i}").as_bytes());
        let err = gateway.upload(Source::Path(source), &to("glm", None)).await.unwrap_err();
        assert!(check(&provider_error(&err).kind), "case {i}: {err}");
        assert!(err.to_string().contains(shown), "case {i}: {err}");
        assert_eq!(fake.requests("POST", "/files").len(), posts_before + 1, "case {i}: not retried");
    }
    // A 429 without a code is read from its message: throttling is retried.
    fake.fail("POST", "/files", 1, Reply::error(429, None, "Uploads too frequent, please retry later"));
    gateway.upload(Source::Path(scratch.write("late.pdf", b"late")), &to("glm", None)).await.unwrap();
    let statuses: Vec<_> = fake.requests("POST", "/files").iter().rev().take(2).map(|s| s.status).collect();
    assert_eq!(statuses, [200, 429]);
}

#[tokio::test]
async fn a_size_glm_did_not_store_is_refused_and_cleaned_up() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    // GLM answers for a file that holds 3 bytes of the 5,000 sent.
    let short = fake.seed("file-extract", "report.pdf", b"abc");
    let answer = serde_json::json!({
        "id": short, "object": "file", "bytes": 3, "created_at": 1722000000,
        "filename": "report.pdf", "purpose": "file-extract"
    });
    fake.fail("POST", "/files", 1, Reply::json(200, answer));
    let err =
        gateway.upload(Source::Path(scratch.write("report.pdf", &pattern(5_000))), &to("glm", None)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("GLM stored 3 bytes of 5000 as {short}; it was deleted again")), "{text}");
    assert!(fake.file(&short).is_none(), "the short copy is gone");
    assert_eq!(fake.requests("DELETE", &format!("/files/{short}")).len(), 1);
    assert!(common::records(&gateway, None).await.is_empty(), "nothing recorded");
}

#[tokio::test]
async fn pre_checks_refuse_without_uploading() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let unchecked = glm_entry("glm_unchecked", &fake, KEY_VAR, ", check_file_count = false");
    let gateway = scratch.gateway(&format!("{}{unchecked}", glm_entry("glm", &fake, KEY_VAR, ""))).await;

    let err = gateway.upload(Source::Path(scratch.write("tool.exe", b"MZ")), &to("glm", None)).await.unwrap_err();
    assert!(matches!(provider_error(&err).kind, ErrorKind::InvalidRequest), "{err}");
    assert!(err.to_string().contains("purpose file-extract accepts only pdf"), "{err}");

    let scan = scratch.write("scan.png", &vec![7u8; 5 * 1024 * 1024 + 1]);
    let err = gateway.upload(Source::Path(scan), &to("glm", None)).await.unwrap_err();
    assert!(matches!(provider_error(&err).kind, ErrorKind::TooLarge), "{err}");
    assert!(err.to_string().contains("accepts images of at most 5 MiB"), "{err}");

    let sheet = scratch.write("sheet.xlsx", &vec![1u8; 20 * 1024 * 1024 + 1]);
    let err = gateway.upload(Source::Path(sheet), &to("glm", Some("code-interpreter"))).await.unwrap_err();
    assert!(matches!(provider_error(&err).kind, ErrorKind::TooLarge), "{err}");
    assert!(fake.seen().is_empty(), "format and size are checked without a request: {:?}", fake.seen());

    for i in 0..100 {
        fake.seed("file-extract", &format!("full{i}.pdf"), b"x");
    }
    let report = scratch.write("report.pdf", b"report");
    let err = gateway.upload(Source::Path(report.clone()), &to("glm", None)).await.unwrap_err();
    assert!(matches!(provider_error(&err).kind, ErrorKind::QuotaExceeded), "{err}");
    assert!(err.to_string().contains("purpose file-extract already holds 100 files"), "{err}");
    assert!(fake.requests("POST", "/files").is_empty(), "nothing was uploaded");
    assert!(common::records(&gateway, None).await.is_empty(), "no cache orphan either");

    // Without the count check the server is the judge, and says no.
    let err = gateway.upload(Source::Path(report), &to("glm_unchecked", None)).await.unwrap_err();
    assert!(matches!(provider_error(&err).kind, ErrorKind::InvalidRequest), "{err}");
    assert!(err.to_string().contains("file count for purpose file-extract exceeds 100"), "{err}");
    assert_eq!(fake.seen().last().unwrap().method, "POST", "straight to the upload");
}

fn wharf(scratch: &Scratch, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--config")
        .arg(scratch.config_path())
        .args(args)
        .env(KEY_VAR, fake::KEY)
        .current_dir(scratch.work())
        .output()
        .expect("running wharf")
}

#[test]
fn cli_download_returns_the_original_from_the_cache() {
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    scratch.write_config(&glm_entry("glm", &fake, KEY_VAR, ""));
    let content = pattern(123_457);
    scratch.write("report.pdf", &content);

    let up = wharf(&scratch, &["--json", "upload", "--provider", "glm", "report.pdf"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let uploaded: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    assert_eq!(uploaded["provider"], "glm");
    let remote_id = uploaded["remote_id"].as_str().unwrap();
    assert_eq!(fake.file(remote_id).unwrap().bytes.as_ref(), content.as_slice());

    let down = wharf(&scratch, &["--json", "download", uploaded["id"].as_str().unwrap(), "-o", "copy.pdf"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let downloaded: serde_json::Value = serde_json::from_slice(&down.stdout).unwrap();
    assert_eq!(downloaded["source"], "cache");
    assert_eq!(downloaded["verified"], true);
    assert_eq!(downloaded["sha256"], sha256_hex(&content));
    assert_eq!(std::fs::read(scratch.work().join("copy.pdf")).unwrap(), content);
    assert!(fake.seen().iter().all(|s| !s.path.ends_with("/content")), "GLM was not asked for the bytes");
}

#[tokio::test]
async fn same_bytes_go_to_each_provider_once_and_into_the_cache_once() {
    set_keys();
    let (first, second) = (FakeGlm::start(), FakeGlm::start());
    let scratch = Scratch::new();
    let config = format!("{}{}", glm_entry("glm", &first, KEY_VAR, ""), glm_entry("glm_intl", &second, KEY_VAR, ""));
    let gateway = scratch.gateway(&config).await;
    let source = scratch.write("report.pdf", &pattern(80_000));

    let a = gateway.upload(Source::Path(source.clone()), &to("glm", None)).await.unwrap();
    let b = gateway.upload(Source::Path(source.clone()), &to("glm_intl", None)).await.unwrap();
    let again = gateway.upload(Source::Path(source), &to("glm", None)).await.unwrap();
    assert!(!a.deduplicated && !b.deduplicated && again.deduplicated);
    assert_eq!(again.id, a.id);
    assert_eq!(first.requests("POST", "/files").len(), 1);
    assert_eq!(second.requests("POST", "/files").len(), 1);
    assert_eq!(common::records(&gateway, Some("local")).await.len(), 1, "one cached original");
    assert_eq!(a.backup_id, b.backup_id);
}

#[tokio::test]
async fn hosts_outside_the_allowlist_are_refused_before_connecting() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let entry = glm_entry("glm", &fake, KEY_VAR, "")
        .replace(&format!("allowed_hosts = [\"{}\"]", fake.origin()), "allowed_hosts = [\"https://open.bigmodel.cn\"]");
    assert!(entry.contains("open.bigmodel.cn") && entry.contains(&fake.base_url()), "{entry}");
    let gateway = scratch.gateway(&entry).await;
    let err = gateway.upload(Source::Path(scratch.write("a.pdf", b"pdf")), &to("glm", None)).await.unwrap_err();
    assert!(matches!(provider_error(&err).kind, ErrorKind::Forbidden), "{err}");
    let text = err.to_string();
    assert!(text.contains("may not reach http://127.0.0.1"), "{text}");
    assert!(text.contains("allowed_hosts"), "{text}");
    assert!(fake.seen().is_empty(), "no request reached the server");
}

#[tokio::test]
async fn a_404_on_a_known_id_marks_the_copy_gone() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    let report = gateway.upload(Source::Path(scratch.write("report.pdf", b"report")), &to("glm", None)).await.unwrap();
    let data =
        gateway.upload(Source::Path(scratch.write("d.jsonl", b"{}\n")), &to("glm", Some("batch"))).await.unwrap();
    let state = |id: String| {
        let gateway = &gateway;
        async move { common::records(gateway, Some("glm")).await.into_iter().find(|o| o.id == id).unwrap().state }
    };

    // Expired: stat no longer finds it.
    fake.expire(&report.remote_id);
    let info = gateway.info(&report.id).await.unwrap();
    let error = info.remote_error.expect("stat fails");
    assert!(error.contains("not found") && error.contains("expired"), "{error}");
    assert_eq!(state(report.id.clone()).await, CopyState::Gone);

    // A 404 from /content for a file still listed is no proof it is gone.
    fake.fail("GET", &format!("/files/{}/content", data.remote_id), 1, Reply::error(404, None, "Not Found"));
    let err = gateway.download_derived(&data.id, Some(&scratch.work())).await.unwrap_err();
    assert!(matches!(provider_error(&err).kind, ErrorKind::Unsupported), "{err}");
    assert_eq!(state(data.id.clone()).await, CopyState::Present);

    // Deleted at GLM: the 404 from /content marks it gone.
    fake.expire(&data.remote_id);
    let err = gateway.download_derived(&data.id, Some(&scratch.work())).await.unwrap_err();
    let error = provider_error(&err);
    assert!(matches!(error.kind, ErrorKind::NotFound), "{err}");
    assert_eq!(error.status, Some(404));
    assert_eq!(state(data.id.clone()).await, CopyState::Gone);
    // The original is still in the cache.
    let back = gateway.download(&data.id, Some(&scratch.work().join("d2.jsonl")), None).await.unwrap();
    assert_eq!(back.source, "cache");
}

#[tokio::test]
async fn file_extract_content_refused_by_the_endpoint_is_explained() {
    set_keys();
    let fake = FakeGlm::start();
    fake.serve_content_for(&["batch"]);
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    let up = gateway.upload(Source::Path(scratch.write("report.pdf", b"report")), &to("glm", None)).await.unwrap();
    let err = gateway.download_derived(&up.id, Some(&scratch.work())).await.unwrap_err();
    let error = provider_error(&err);
    assert!(matches!(error.kind, ErrorKind::InvalidRequest), "{err}");
    assert_eq!((error.status, error.code.as_deref()), (Some(400), Some("1214")));
    let text = err.to_string();
    assert!(text.contains("have no retrievable content"), "the provider's message: {text}");
    assert!(text.contains("batch files only"), "the documented conflict: {text}");
    assert_eq!(common::records(&gateway, Some("glm")).await[0].state, CopyState::Present);
}

/// What `wharf plugins test glm` runs against the fake.
#[tokio::test]
async fn the_conformance_suite_passes() {
    set_keys();
    let fake = FakeGlm::start();
    let scratch = Scratch::new();
    let gateway = glm_gateway(&scratch, &fake).await;
    let report = gateway.conformance("glm").await.unwrap();
    assert!(report.passed, "{report:#?}");
    assert!(
        report.steps.iter().any(|s| s.step == "missing object" && s.outcome == wharf::gateway::StepOutcome::Passed)
    );
}
