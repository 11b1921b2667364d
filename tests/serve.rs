//! `wharf serve` over real HTTP, against docs/http-api.md: download links
//! (files, directories as ZIP, stored files at the local provider and at S3),
//! their uses under concurrency, HEAD and Range resumption; refusals (paths
//! escaping the sandbox, symlinks, size limits, bad numbers) that serve and
//! create nothing; principals and tokens; the file API (multipart and raw
//! uploads, limits, PATCH, paging, DELETE); graceful shutdown on SIGTERM;
//! /metrics; and `curl -OJ` saving a link under its own name.
//!
//! Most tests share one server (each with its own principals and its own
//! subdirectory of the sandbox root); tests that need a different config
//! start their own. The S3 test needs `weed` (tests/requirements.txt).

mod common;
#[path = "support/s3_server.rs"]
mod s3_server;
#[path = "support/serve.rs"]
mod serve;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode_str;
use reqwest::header::{HeaderMap, RANGE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use common::{Scratch, pattern, sha256_hex};
use serve::{ServeOptions, ServeProcess, client};

const MIB: usize = 1 << 20;
/// `max_upload_bytes` of the shared server.
const SHARED_MAX_UPLOAD: usize = MIB;

// ---- the shared server ----

struct Shared {
    scratch: Scratch,
    serve: ServeProcess,
}

/// The server most tests share. Its config: token auth, uploads up to 1 MiB,
/// and one principal (`roots_dora`) confined to a root of its own.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let scratch = Scratch::new();
        serve::remove_at_exit(scratch.dir.path());
        let dora_root = scratch.work().join("dora_root");
        std::fs::create_dir(&dora_root).unwrap();
        let extra = format!(
            r#"
[server]
auth = "token"
max_upload_bytes = {SHARED_MAX_UPLOAD}
shutdown_grace_secs = 5

[principals.roots_dora]
sandbox_roots = ["{}"]
"#,
            dora_root.display()
        );
        let serve = ServeProcess::start(&scratch, &extra);
        Shared { scratch, serve }
    })
}

impl Shared {
    /// A fresh directory under the sandbox root, for one test.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.scratch.work().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A file outside the sandbox root (beside providers.toml).
    fn outside(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.scratch.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn api(&self, principal: &str) -> Api {
        Api::new(&self.serve, principal, false)
    }
}

// ---- an API client acting as one principal ----

struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(serve: &ServeProcess, principal: &str, admin: bool) -> Self {
        Self { http: client(), base: serve.base_url.clone(), token: Some(serve.token(principal, admin)) }
    }

    fn anonymous(serve: &ServeProcess) -> Self {
        Self { http: client(), base: serve.base_url.clone(), token: None }
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Url {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base)).unwrap();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn request(&self, method: Method, path: &str, query: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path, query));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send(&self, method: Method, path: &str) -> reqwest::Response {
        self.request(method, path, &[]).send().await.unwrap()
    }

    async fn send_json(&self, method: Method, path: &str, body: &Value) -> reqwest::Response {
        self.request(method, path, &[])
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// POST /api/download/generate, whatever the answer.
    async fn try_generate(&self, body: Value) -> reqwest::Response {
        self.send_json(Method::POST, "/api/download/generate", &body).await
    }

    /// POST /api/download/generate → 200.
    async fn generate(&self, body: Value) -> Value {
        let response = self.try_generate(body.clone()).await;
        expect_json(response, StatusCode::OK, &format!("generate {body}")).await
    }

    /// A raw upload (`?name=`) → 201: the one `Uploaded` record.
    async fn upload(&self, name: &str, bytes: &[u8]) -> Value {
        self.upload_to(name, bytes, &[]).await
    }

    async fn upload_to(&self, name: &str, bytes: &[u8], query: &[(&str, &str)]) -> Value {
        let mut params = vec![("name", name)];
        params.extend_from_slice(query);
        let response = self.request(Method::POST, "/api/files", &params).body(bytes.to_vec()).send().await.unwrap();
        let answer = expect_json(response, StatusCode::CREATED, &format!("upload {name}")).await;
        let files = answer["files"].as_array().unwrap_or_else(|| panic!("no files in {answer}"));
        assert_eq!(files.len(), 1, "one record for one raw upload: {answer}");
        files[0].clone()
    }

    /// GET /api/files/{id} → 200.
    async fn file(&self, id: &str) -> Value {
        expect_json(self.send(Method::GET, &format!("/api/files/{id}")).await, StatusCode::OK, id).await
    }

    /// GET /api/files?QUERY → 200.
    async fn list(&self, query: &[(&str, &str)]) -> Value {
        let response = self.request(Method::GET, "/api/files", query).send().await.unwrap();
        expect_json(response, StatusCode::OK, &format!("list {query:?}")).await
    }

    /// The ids of every file this principal lists.
    async fn listed_ids(&self) -> Vec<String> {
        let answer = self.list(&[("limit", "1000")]).await;
        ids(&answer["files"])
    }

    async fn stats(&self) -> Value {
        expect_json(self.send(Method::GET, "/api/download/stats").await, StatusCode::OK, "stats").await
    }
}

fn ids(files: &Value) -> Vec<String> {
    files
        .as_array()
        .unwrap_or_else(|| panic!("not a list of files: {files}"))
        .iter()
        .map(|f| f["id"].as_str().expect("a file id").to_string())
        .collect()
}

/// The download URL of a link, built from the server's address.
fn link_url(serve: &ServeProcess, link: &Value) -> String {
    format!("{}/api/download/{}", serve.base_url, link["token"].as_str().expect("a link token"))
}

// ---- checking answers ----

async fn expect_json(response: reqwest::Response, status: StatusCode, what: &str) -> Value {
    let got = response.status();
    let body = response.bytes().await.unwrap();
    assert_eq!(got, status, "{what}: body: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

/// Asserts an RFC 9457 problem with this status; returns its JSON.
async fn expect_problem(response: reqwest::Response, status: StatusCode, what: &str) -> Value {
    let got = response.status();
    let content_type = header(response.headers(), "content-type");
    let body = response.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert_eq!(got, status, "{what}: body: {text}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: Content-Type {content_type:?}, not application/problem+json; body: {text}"
    );
    let problem: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    assert_eq!(problem["status"], status.as_u16(), "{what}: {problem}");
    assert!(problem["title"].as_str().is_some_and(|t| !t.is_empty()), "{what}: no title: {problem}");
    assert!(problem["detail"].is_string(), "{what}: no detail: {problem}");
    problem
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
}

/// A GET's status, headers and whole body.
async fn fetch(http: &reqwest::Client, url: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = http.get(url).send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.bytes().await.unwrap_or_else(|e| panic!("GET {url}: reading the body: {e}"));
    (status, headers, body.to_vec())
}

/// A GET that may fail mid-body: the status and what arrived (Err when the
/// connection broke).
async fn fetch_fallible(http: &reqwest::Client, url: &str) -> (StatusCode, Result<Vec<u8>, String>) {
    let mut response = http.get(url).send().await.unwrap();
    let status = response.status();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return (status, Ok(body)),
            Err(e) => return (status, Err(format!("{e} after {} bytes", body.len()))),
        }
    }
}

/// Equal bytes, without printing megabytes when they differ.
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!("{what}: {} bytes received, {} expected; first difference at {first:?}", got.len(), want.len());
    }
}

/// Content unique to one test (the local provider stores by content).
fn unique(tag: &str, size: usize) -> Vec<u8> {
    let mut bytes = format!("{tag}:").into_bytes();
    bytes.extend(pattern(size.saturating_sub(bytes.len())));
    bytes.truncate(size);
    bytes
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// `filename=` (unquoted) and `filename*=` (decoded) of a Content-Disposition.
fn disposition(value: &str) -> (Option<String>, Option<String>) {
    let mut plain = None;
    let mut extended = None;
    for param in value.split(';').map(str::trim) {
        if let Some(v) = param.strip_prefix("filename*=") {
            let encoded = v.get(..7).filter(|p| p.eq_ignore_ascii_case("utf-8''")).map(|_| &v[7..]);
            let encoded = encoded.unwrap_or_else(|| panic!("filename* is not UTF-8'': {value}"));
            extended =
                Some(percent_decode_str(encoded).decode_utf8().expect("filename* decodes to UTF-8").into_owned());
        } else if let Some(v) = param.strip_prefix("filename=") {
            plain = Some(v.trim_matches('"').to_string());
        }
    }
    (plain, extended)
}

/// The file entries of a ZIP, by name; every entry must be stored.
fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("the body is a ZIP archive");
    let mut entries = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = String::from_utf8(entry.name_raw().to_vec()).expect("a UTF-8 entry name");
        if entry.is_dir() {
            continue;
        }
        assert_eq!(entry.compression(), zip::CompressionMethod::Stored, "entry {name} is not stored");
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap_or_else(|e| panic!("reading entry {name}: {e}"));
        assert!(entries.insert(name.clone(), content).is_none(), "entry {name} twice");
    }
    entries
}

// ---- download links ----

#[tokio::test]
async fn link_to_a_file_serves_its_bytes_and_headers() {
    let s = shared();
    let api = s.api("lf_user");
    let dir = s.dir("link_file");
    let content = unique("link-file", 150_000);
    std::fs::write(dir.join("report.bin"), &content).unwrap();

    let before = now();
    let link = api.generate(json!({"file_path": "link_file/report.bin"})).await;
    let token = link["token"].as_str().expect("a token");
    assert_eq!(link["download_url"], format!("{}/api/download/{token}", s.serve.base_url), "{link}");
    assert_eq!(link["file_type"], "file");
    assert_eq!(link["size"], 150_000);
    assert_eq!(link["sha256"], sha256_hex(&content));
    let expires = link["expires_at"].as_u64().expect("expires_at in seconds");
    assert!((before + 298..=now() + 302).contains(&expires), "the default expiry is 5 minutes: {expires}");

    let (status, headers, body) = fetch(&api.http, &link_url(&s.serve, &link)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_same(&body, &content, "link body");
    assert_eq!(header(&headers, "content-length"), "150000");
    assert!(!header(&headers, "content-type").is_empty(), "a Content-Type");
    let cd = header(&headers, "content-disposition");
    assert!(cd.starts_with("attachment"), "{cd}");
    assert_eq!(disposition(&cd), (Some("report.bin".into()), Some("report.bin".into())), "{cd}");
    assert_eq!(header(&headers, "etag"), format!("\"{}\"", sha256_hex(&content)));
    assert!(header(&headers, "cache-control").contains("no-store"), "{headers:?}");
    assert_eq!(header(&headers, "accept-ranges"), "bytes");

    // An absolute path inside the root, a chosen name, a longer life, two uses.
    let absolute = dir.join("report.bin");
    let link = api
        .generate(json!({"file_path": absolute, "filename": "renamed.bin", "expiry_minutes": 60, "max_downloads": 2}))
        .await;
    let expires = link["expires_at"].as_u64().unwrap();
    assert!((before + 3598..=now() + 3602).contains(&expires), "expiry_minutes = 60: {expires}");
    let url = link_url(&s.serve, &link);
    for _ in 0..2 {
        let (status, headers, body) = fetch(&api.http, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert_same(&body, &content, "second link body");
        let cd = header(&headers, "content-disposition");
        assert_eq!(disposition(&cd).1.as_deref(), Some("renamed.bin"), "{cd}");
    }
    expect_problem(api.http.get(&url).send().await.unwrap(), StatusCode::GONE, "third use of a 2-use link").await;
}

#[tokio::test]
async fn link_to_a_directory_serves_a_zip_of_its_tree() {
    let s = shared();
    let api = s.api("ld_user");
    let root = s.dir("link_dir/tree");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.txt", b"alpha\n".to_vec()),
        ("empty.txt", Vec::new()),
        ("sub/b.bin", unique("zip-b", 200_000)),
        ("sub/deeper/c.txt", b"see, deeper".to_vec()),
        ("sub/with space.txt", b"spaced out".to_vec()),
    ];
    for (name, bytes) in &files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::create_dir(root.join("emptydir")).unwrap();
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();

    let link = api.generate(json!({"file_path": "link_dir/tree"})).await;
    assert_eq!(link["file_type"], "directory", "{link}");
    assert!(link["sha256"].is_null(), "no sha256 for a directory: {link}");
    assert_eq!(link["size"], total, "a directory's size is its files' total");

    let (status, headers, body) = fetch(&api.http, &link_url(&s.serve, &link)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let cd = header(&headers, "content-disposition");
    assert!(cd.starts_with("attachment"), "{cd}");
    assert_eq!(disposition(&cd).1.as_deref(), Some("tree.zip"), "{cd}");
    assert_eq!(header(&headers, "accept-ranges"), "none", "directories are not served in ranges");
    assert!(header(&headers, "cache-control").contains("no-store"), "{headers:?}");

    let want: BTreeMap<String, Vec<u8>> = files.into_iter().map(|(n, b)| (n.to_string(), b)).collect();
    let got = unzip(&body);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "entry names");
    for (name, bytes) in &want {
        assert_same(&got[name], bytes, name);
    }
    expect_problem(api.http.get(link_url(&s.serve, &link)).send().await.unwrap(), StatusCode::GONE, "used").await;
}

#[tokio::test]
async fn directory_zip_follows_only_symlinks_that_stay_inside() {
    let s = shared();
    let api = s.api("lds_user");
    let root = s.dir("link_dirsym/tree");
    std::fs::write(root.join("inside.txt"), b"inside bytes").unwrap();
    std::fs::write(s.dir("link_dirsym").join("sibling.txt"), b"SIBLING-OUTSIDE-THE-DIR").unwrap();
    let secret = s.outside("dirsym-secret.txt", b"SECRET-OUTSIDE-THE-ROOT");
    std::os::unix::fs::symlink("inside.txt", root.join("link-in.txt")).unwrap();
    std::os::unix::fs::symlink(&secret, root.join("link-out.txt")).unwrap();
    std::os::unix::fs::symlink("../sibling.txt", root.join("link-up.txt")).unwrap();
    std::os::unix::fs::symlink(s.scratch.dir.path(), root.join("dir-out")).unwrap();

    let link = api.generate(json!({"file_path": "link_dirsym/tree"})).await;
    let (status, _, body) = fetch(&api.http, &link_url(&s.serve, &link)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let entries = unzip(&body);
    for (name, bytes) in &entries {
        for leaked in [&b"SECRET-OUTSIDE-THE-ROOT"[..], b"SIBLING-OUTSIDE-THE-DIR"] {
            assert!(!bytes.windows(leaked.len()).any(|w| w == leaked), "entry {name} carries bytes from outside");
        }
        assert!(!name.starts_with("dir-out"), "entry {name} came through a symlink leaving the directory");
    }
    assert_eq!(entries.get("inside.txt").map(Vec::as_slice), Some(&b"inside bytes"[..]), "{:?}", entries.keys());
    assert_eq!(
        entries.get("link-in.txt").map(Vec::as_slice),
        Some(&b"inside bytes"[..]),
        "a symlink staying inside is followed: {:?}",
        entries.keys()
    );
    assert!(!entries.contains_key("link-out.txt") && !entries.contains_key("link-up.txt"), "{:?}", entries.keys());
}

#[tokio::test]
async fn link_to_a_stored_local_file() {
    let s = shared();
    let api = s.api("ls_user");
    let content = unique("stored-local", 200_000);
    let up = api.upload("stored.bin", &content).await;
    assert_eq!(up["provider"], "local");
    assert_eq!(up["sha256"], sha256_hex(&content));

    let link = api.generate(json!({"file_id": up["id"]})).await;
    assert_eq!(link["file_type"], "stored", "{link}");
    assert_eq!(link["size"], content.len());
    assert_eq!(link["sha256"], sha256_hex(&content));

    let (status, headers, body) = fetch(&api.http, &link_url(&s.serve, &link)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_same(&body, &content, "stored file via link");
    assert_eq!(header(&headers, "content-length"), content.len().to_string());
    assert_eq!(header(&headers, "etag"), format!("\"{}\"", sha256_hex(&content)));
    assert_eq!(header(&headers, "accept-ranges"), "bytes");
    assert!(header(&headers, "cache-control").contains("no-store"));
    assert_eq!(disposition(&header(&headers, "content-disposition")).1.as_deref(), Some("stored.bin"));
}

#[tokio::test]
async fn link_to_a_stored_s3_file() {
    const KEY_ID_ENV: &str = "WHARF_TEST_S3_ACCESS_KEY_ID";
    const SECRET_ENV: &str = "WHARF_TEST_S3_SECRET_ACCESS_KEY";
    const BUCKET: &str = "wharf-serve-test";
    let s3 = s3_server::S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    let endpoint = &s3.endpoint;
    let key_id = s3_server::ACCESS_KEY_ID;
    let extra = format!(
        r#"
[providers.s3]
plugin = "s3"
allowed_hosts = ["{endpoint}"]
secrets = {{ access_key_id = "{KEY_ID_ENV}", secret_access_key = "{SECRET_ENV}" }}
config = {{ endpoint = "{endpoint}", region = "us-east-1", bucket = "{BUCKET}", prefix = "serve", access_key_id_for_presign = "{key_id}" }}
"#
    );
    let scratch = Scratch::new();
    let options = ServeOptions::default().env(KEY_ID_ENV, key_id).env(SECRET_ENV, s3_server::SECRET_ACCESS_KEY);
    let serve = ServeProcess::start_with(&scratch, &extra, options);
    let api = Api::new(&serve, "s3_user", false);

    let content = unique("stored-s3", 300_000);
    let up = api.upload_to("in-s3.bin", &content, &[("provider", "s3")]).await;
    assert_eq!(up["provider"], "s3", "{up}");
    let link = api.generate(json!({"file_id": up["id"]})).await;
    assert_eq!(link["file_type"], "stored", "{link}");
    assert_eq!(link["sha256"], sha256_hex(&content));

    let (status, headers, body) = fetch(&api.http, &link_url(&serve, &link)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_same(&body, &content, "S3 file via link");
    assert_eq!(header(&headers, "etag"), format!("\"{}\"", sha256_hex(&content)));
    assert_eq!(disposition(&header(&headers, "content-disposition")).1.as_deref(), Some("in-s3.bin"));
    expect_problem(api.http.get(link_url(&serve, &link)).send().await.unwrap(), StatusCode::GONE, "used").await;
}

/// A stored file whose bytes no longer match its SHA-256 is never served
/// whole, and the failed transfer gives its use back.
#[tokio::test]
async fn damaged_stored_file_fails_and_gives_the_use_back() {
    let s = shared();
    let api = s.api("dmg_user");
    let content = unique("damaged", 300_000);
    let up = api.upload("damaged.bin", &content).await;
    let sha = up["sha256"].as_str().unwrap();
    let stored = s.scratch.data().join("local/objects").join(&sha[..2]).join(sha);
    assert!(stored.is_file(), "the local provider keeps {}", stored.display());
    let mut damaged = content.clone();
    damaged[150_000] ^= 0xff;
    std::fs::write(&stored, &damaged).unwrap();

    let link = api.generate(json!({"file_id": up["id"]})).await;
    let url = link_url(&s.serve, &link);
    let failed = |(status, body): (StatusCode, Result<Vec<u8>, String>)| match (status, body) {
        (StatusCode::OK, Ok(body)) => {
            assert!(body.len() < content.len(), "the whole damaged file was served ({} bytes)", body.len())
        }
        (StatusCode::OK, Err(_)) => {}
        (status, _) if status.is_server_error() => {}
        (status, body) => panic!("damaged file: unexpected {status}: {body:?}"),
    };
    failed(fetch_fallible(&api.http, &url).await);

    // The use was given back (when the failed response ended): not 410.
    let retry = get_until_not_gone(&api.http, &url).await;
    failed(retry);

    std::fs::write(&stored, &content).unwrap();
    let (status, body) = get_until_not_gone(&api.http, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_same(&body.expect("complete body"), &content, "repaired stored file");
    expect_problem(api.http.get(&url).send().await.unwrap(), StatusCode::GONE, "used after repair").await;
}

/// GETs until the answer is not 410 (a use given back when a response ends
/// may land just after the client saw the connection break).
async fn get_until_not_gone(http: &reqwest::Client, url: &str) -> (StatusCode, Result<Vec<u8>, String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = fetch_fallible(http, url).await;
        if answer.0 != StatusCode::GONE {
            return answer;
        }
        assert!(Instant::now() < deadline, "still 410 after 10 s: the failed transfer's use was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `count` simultaneous GETs of one URL: how many got each status, and the 200 bodies.
async fn concurrent_gets(url: &str, count: usize) -> (BTreeMap<u16, usize>, Vec<Vec<u8>>) {
    let http = client();
    let barrier = Arc::new(tokio::sync::Barrier::new(count));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (http, url, barrier) = (http.clone(), url.to_string(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let (status, _, body) = fetch(&http, &url).await;
            (status.as_u16(), body)
        });
    }
    let mut statuses = BTreeMap::new();
    let mut bodies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        *statuses.entry(status).or_default() += 1;
        if status == 200 {
            bodies.push(body);
        }
    }
    (statuses, bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_use_link_under_100_concurrent_gets() {
    let s = shared();
    let api = s.api("cc_user");
    let content = unique("concurrent", 512 * 1024);
    std::fs::write(s.dir("concurrent").join("once.bin"), &content).unwrap();
    let link = api.generate(json!({"file_path": "concurrent/once.bin"})).await;

    let (statuses, bodies) = concurrent_gets(&link_url(&s.serve, &link), 100).await;
    assert_eq!(statuses, BTreeMap::from([(200, 1), (410, 99)]), "statuses of 100 concurrent GETs");
    assert_same(&bodies[0], &content, "the one 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_use_link_serves_exactly_three() {
    let s = shared();
    let api = s.api("c3_user");
    let content = unique("three", 100_000);
    std::fs::write(s.dir("three").join("thrice.bin"), &content).unwrap();
    let link = api.generate(json!({"file_path": "three/thrice.bin", "max_downloads": 3})).await;

    let (statuses, bodies) = concurrent_gets(&link_url(&s.serve, &link), 20).await;
    assert_eq!(statuses, BTreeMap::from([(200, 3), (410, 17)]), "statuses of 20 concurrent GETs");
    for body in &bodies {
        assert_same(body, &content, "a 200 of the 3-use link");
    }
}

#[tokio::test]
async fn used_link_is_gone_and_unknown_is_404() {
    let s = shared();
    let api = s.api("gone_user");
    std::fs::write(s.dir("gone").join("g.txt"), b"gone soon").unwrap();
    let link = api.generate(json!({"file_path": "gone/g.txt"})).await;
    let url = link_url(&s.serve, &link);
    let (status, _, body) = fetch(&api.http, &url).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"gone soon"[..]));
    for _ in 0..2 {
        let problem = expect_problem(api.http.get(&url).send().await.unwrap(), StatusCode::GONE, "used").await;
        assert!(!problem.to_string().contains("gone soon"), "{problem}");
    }

    let token = link["token"].as_str().unwrap();
    let last = token.chars().last().unwrap();
    let altered = format!("{}{}", &token[..token.len() - last.len_utf8()], if last == 'A' { 'B' } else { 'A' });
    for unknown in ["nonexistent", altered.as_str()] {
        let url = format!("{}/api/download/{unknown}", s.serve.base_url);
        expect_problem(api.http.get(&url).send().await.unwrap(), StatusCode::NOT_FOUND, unknown).await;
        let head = api.http.head(&url).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::NOT_FOUND, "HEAD {unknown}");
    }
}

#[tokio::test]
async fn head_takes_no_use_and_stats_count_links() {
    let s = shared();
    let api = s.api("head_user");
    let content = unique("head", 10_000);
    std::fs::write(s.dir("head").join("h.bin"), &content).unwrap();
    let link = api.generate(json!({"file_path": "head/h.bin"})).await;
    let url = link_url(&s.serve, &link);

    for _ in 0..2 {
        let head = api.http.head(&url).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        let headers = head.headers().clone();
        assert_eq!(header(&headers, "content-length"), "10000");
        assert_eq!(header(&headers, "etag"), format!("\"{}\"", sha256_hex(&content)));
        assert_eq!(disposition(&header(&headers, "content-disposition")).1.as_deref(), Some("h.bin"));
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD has no body");
    }
    let stats = api.stats().await;
    assert_eq!(stats, json!({"total": 1, "active": 1, "used": 0, "expired": 0}), "after two HEADs");

    let (status, _, body) = fetch(&api.http, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_same(&body, &content, "GET after HEADs");
    expect_problem(api.http.get(&url).send().await.unwrap(), StatusCode::GONE, "second GET").await;
    let stats = api.stats().await;
    assert_eq!(stats, json!({"total": 1, "active": 0, "used": 1, "expired": 0}), "after the use");
}

#[tokio::test]
async fn cut_download_resumes_with_range_then_is_gone() {
    let s = shared();
    let api = s.api("rng_user");
    let size = 8 * MIB;
    let content = unique("range", size);
    std::fs::write(s.dir("range").join("big.bin"), &content).unwrap();
    let link = api.generate(json!({"file_path": "range/big.bin"})).await;
    let url = link_url(&s.serve, &link);

    let mut first = api.http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(first.headers(), "accept-ranges"), "bytes");
    assert_eq!(header(first.headers(), "content-length"), size.to_string());
    let mut received = Vec::new();
    while received.len() < MIB {
        received.extend_from_slice(&first.chunk().await.unwrap().expect("the body goes on"));
    }
    drop(first); // the cut: the connection closes with the rest unread
    let n = received.len();

    // The resume works at once, before Wharf has noticed the cut.
    let resumed = api.http.get(&url).header(RANGE, format!("bytes={n}-")).send().await.unwrap();
    let status = resumed.status();
    let headers = resumed.headers().clone();
    let rest = resumed.bytes().await.unwrap();
    assert_eq!(status, StatusCode::PARTIAL_CONTENT, "resume at {n}: {}", String::from_utf8_lossy(&rest));
    assert_eq!(header(&headers, "content-range"), format!("bytes {n}-{}/{size}", size - 1));
    assert_eq!(header(&headers, "content-length"), (size - n).to_string());
    received.extend_from_slice(&rest);
    assert_same(&received, &content, "cut part + resumed part");

    // The file cannot be fetched again and again: no whole GET, and ranges
    // only within the use's allowance (at most one more copy's worth).
    expect_problem(api.http.get(&url).send().await.unwrap(), StatusCode::GONE, "full GET after resume").await;
    for _ in 0..2 {
        let again = api.http.get(&url).header(RANGE, "bytes=0-").send().await.unwrap();
        if again.status() == StatusCode::GONE {
            expect_problem(again, StatusCode::GONE, "Range 0- after resume").await;
            return;
        }
        assert_eq!(again.status(), StatusCode::PARTIAL_CONTENT);
        again.bytes().await.unwrap();
    }
    panic!("the whole file was fetched by Range twice more after one use");
}

#[tokio::test]
async fn ranges_inside_and_outside_the_file() {
    let s = shared();
    let api = s.api("rng2_user");
    let content = unique("small-range", 100);
    std::fs::write(s.dir("range2").join("small.bin"), &content).unwrap();
    let link = api.generate(json!({"file_path": "range2/small.bin", "max_downloads": 2})).await;
    let url = link_url(&s.serve, &link);

    let part = api.http.get(&url).header(RANGE, "bytes=10-19").send().await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(part.headers(), "content-range"), "bytes 10-19/100");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &content[10..20]);

    let beyond = api.http.get(&url).header(RANGE, "bytes=500-").send().await.unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE, "a range past the end");
}

// ---- refusals ----

#[tokio::test]
async fn paths_escaping_the_roots_and_limits_are_refused_and_create_nothing() {
    let s = shared();
    let api = s.api("ref_user");
    let dir = s.dir("refuse");
    let secret = s.outside("outside-refuse.txt", b"TOP-SECRET-OUTSIDE-THE-ROOT");
    std::fs::write(dir.join("ok.txt"), unique("refuse-ok", 100)).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("out-link.txt")).unwrap();
    std::os::unix::fs::symlink(s.scratch.dir.path(), dir.join("up")).unwrap();
    std::fs::create_dir(dir.join("bigdir")).unwrap();
    std::fs::write(dir.join("bigdir/one.bin"), unique("bigdir-1", 60)).unwrap();
    std::fs::write(dir.join("bigdir/two.bin"), unique("bigdir-2", 60)).unwrap();

    let forbidden = StatusCode::FORBIDDEN;
    let cases = [
        (json!({"file_path": "../outside-refuse.txt"}), forbidden),
        (json!({"file_path": "refuse/../../outside-refuse.txt"}), forbidden),
        (json!({"file_path": secret}), forbidden),
        (json!({"file_path": "/etc/passwd"}), forbidden),
        (json!({"file_path": "refuse/out-link.txt"}), forbidden),
        (json!({"file_path": "refuse/up/outside-refuse.txt"}), forbidden),
        (json!({"file_path": "refuse/nope.txt"}), StatusCode::NOT_FOUND),
        (json!({"file_path": "refuse/ok.txt", "max_size": 10}), StatusCode::PAYLOAD_TOO_LARGE),
        (json!({"file_path": "refuse/bigdir", "max_size": 100}), StatusCode::PAYLOAD_TOO_LARGE),
        (json!({"file_path": "refuse/ok.txt", "expiry_minutes": 0}), StatusCode::BAD_REQUEST),
        (json!({"file_path": "refuse/ok.txt", "expiry_minutes": 61}), StatusCode::BAD_REQUEST),
        (json!({"file_path": "refuse/ok.txt", "max_downloads": 0}), StatusCode::BAD_REQUEST),
        (json!({"file_path": "refuse/ok.txt", "max_downloads": 101}), StatusCode::BAD_REQUEST),
        (json!({"file_id": "wf_doesnotexist"}), StatusCode::NOT_FOUND),
        (json!({}), StatusCode::BAD_REQUEST),
    ];
    for (body, status) in cases {
        let problem = expect_problem(api.try_generate(body.clone()).await, status, &body.to_string()).await;
        assert_eq!(problem["type"], "about:blank", "{problem}");
        assert!(!problem.to_string().contains("TOP-SECRET"), "{body}: {problem}");
    }
    let bad_json = api
        .request(Method::POST, "/api/download/generate", &[])
        .header("content-type", "application/json")
        .body("{\"file_path\": ")
        .send()
        .await
        .unwrap();
    expect_problem(bad_json, StatusCode::BAD_REQUEST, "malformed JSON").await;

    let stats = api.stats().await;
    assert_eq!(stats["total"], 0, "refusals create no link: {stats}");
}

#[tokio::test]
async fn file_swapped_after_linking_is_not_served() {
    let s = shared();
    let api = s.api("swap_user");
    let dir = s.dir("swap");
    let inside = dir.join("a.txt");
    std::fs::write(&inside, unique("inside-swap", 100)).unwrap();
    let link = api.generate(json!({"file_path": "swap/a.txt"})).await;

    // Same size and mtime: only the symlink itself gives it away.
    let outside = s.outside("swap-secret.txt", &unique("OUTSIDE-SWAP-SECRET", 100));
    let mtime = std::fs::metadata(&inside).unwrap().modified().unwrap();
    std::fs::File::options().write(true).open(&outside).unwrap().set_modified(mtime).unwrap();
    std::fs::remove_file(&inside).unwrap();
    std::os::unix::fs::symlink(&outside, &inside).unwrap();

    let response = api.http.get(link_url(&s.serve, &link)).send().await.unwrap();
    let status = response.status();
    let content_type = header(response.headers(), "content-type");
    let body = response.bytes().await.unwrap_or_default();
    assert!(
        !body.windows(19).any(|w| w == b"OUTSIDE-SWAP-SECRET"),
        "served the file outside the root through a swapped-in symlink ({status})"
    );
    assert!(status.is_client_error(), "a swapped-in symlink: {status}: {}", String::from_utf8_lossy(&body));
    assert!(content_type.starts_with("application/problem+json"), "{content_type}");

    // A file that changed since the link was made: 409.
    let changing = dir.join("b.txt");
    std::fs::write(&changing, unique("changing", 100)).unwrap();
    let link = api.generate(json!({"file_path": "swap/b.txt"})).await;
    std::fs::write(&changing, unique("changed", 150)).unwrap();
    let response = api.http.get(link_url(&s.serve, &link)).send().await.unwrap();
    expect_problem(response, StatusCode::CONFLICT, "a file changed after linking").await;
}

#[tokio::test]
async fn principal_sandbox_roots_confine_links() {
    let s = shared();
    let api = s.api("roots_dora");
    let own = s.scratch.work().join("dora_root/x.txt");
    std::fs::write(&own, b"dora's own").unwrap();
    std::fs::write(s.scratch.work().join("dora_outside.txt"), b"host root, not dora's").unwrap();

    let link = api.generate(json!({"file_path": "x.txt"})).await;
    let (status, _, body) = fetch(&api.http, &link_url(&s.serve, &link)).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"dora's own"[..]), "relative to dora's first root");
    for path in [json!("../dora_outside.txt"), json!(s.scratch.work().join("dora_outside.txt"))] {
        let response = api.try_generate(json!({"file_path": path})).await;
        expect_problem(response, StatusCode::FORBIDDEN, &format!("dora: {path}")).await;
    }
}

// ---- principals and tokens ----

#[tokio::test]
async fn principals_see_only_their_own_files() {
    let s = shared();
    let alice = s.api("pr_alice");
    let bob = s.api("pr_bob");
    let admin = Api::new(&s.serve, "pr_admin", true);
    let secret = unique("alice-private", 4000);
    let up = alice.upload("alice-only.txt", &secret).await;
    let id = up["id"].as_str().unwrap().to_string();

    let unknown =
        expect_problem(bob.send(Method::GET, "/api/files/wf_doesnotexist").await, StatusCode::NOT_FOUND, "unknown")
            .await;
    let attempts = [
        (Method::GET, format!("/api/files/{id}")),
        (Method::GET, format!("/api/files/{id}/content")),
        (Method::PATCH, format!("/api/files/{id}")),
        (Method::DELETE, format!("/api/files/{id}")),
    ];
    for (method, path) in attempts {
        let what = format!("bob: {method} {path}");
        let response = match method {
            Method::PATCH => bob.send_json(method, &path, &json!({"name": "stolen.txt"})).await,
            _ => bob.send(method, &path).await,
        };
        let problem = expect_problem(response, StatusCode::NOT_FOUND, &what).await;
        assert_eq!(problem["title"], unknown["title"], "{what}: answers like an unknown id");
        assert!(!problem.to_string().contains("alice"), "{what}: {problem}");
    }
    let response = bob.try_generate(json!({"file_id": id})).await;
    expect_problem(response, StatusCode::NOT_FOUND, "bob: a link to alice's file").await;
    assert!(!bob.listed_ids().await.contains(&id), "bob lists alice's file");

    // The same bytes uploaded by bob are bob's record, not alice's.
    let bobs = bob.upload("bobs-copy.txt", &secret).await;
    assert_ne!(bobs["id"], up["id"], "bob's upload of the same bytes answered with alice's record");
    assert_eq!(bob.file(bobs["id"].as_str().unwrap()).await["file"]["principal"], "pr_bob");

    let mine = alice.file(&id).await;
    assert_eq!(mine["file"]["name"], "alice-only.txt", "bob's PATCH changed nothing");
    assert_eq!(mine["file"]["principal"], "pr_alice");
    let (status, _, body) = fetch_with(&alice, &format!("/api/files/{id}/content")).await;
    assert_eq!(status, StatusCode::OK);
    assert_same(&body, &secret, "alice's content after bob's DELETE");

    let seen = admin.file(&id).await;
    assert_eq!(seen["file"]["principal"], "pr_alice");
    assert!(admin.listed_ids().await.contains(&id), "an admin lists every principal's files");

    // Link statistics: an admin may name another principal.
    alice.generate(json!({"file_id": id})).await;
    assert_eq!(alice.stats().await["total"], 1);
    assert_eq!(bob.stats().await["total"], 0, "bob's own statistics");
    let response =
        admin.request(Method::GET, "/api/download/stats", &[("principal", "pr_alice")]).send().await.unwrap();
    let stats = expect_json(response, StatusCode::OK, "admin: stats of pr_alice").await;
    assert_eq!(stats, json!({"total": 1, "active": 1, "used": 0, "expired": 0}));
}

async fn fetch_with(api: &Api, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = api.send(Method::GET, path).await;
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let s = shared();
    let anonymous = Api::anonymous(&s.serve);
    let with = |token: &str| Api { http: client(), base: s.serve.base_url.clone(), token: Some(token.into()) };

    let check = |what: &'static str| {
        move |response: reqwest::Response| async move {
            let challenge = header(response.headers(), "www-authenticate");
            assert!(challenge.starts_with("Bearer"), "{what}: WWW-Authenticate {challenge:?}");
            expect_problem(response, StatusCode::UNAUTHORIZED, what).await;
        }
    };
    check("no token")(anonymous.send(Method::GET, "/api/files").await).await;
    check("no token, generate")(anonymous.try_generate(json!({"file_path": "x"})).await).await;
    check("unknown token")(with("wharf-not-a-token").send(Method::GET, "/api/files").await).await;
    let basic = anonymous.request(Method::GET, "/api/files", &[]).header("authorization", "Basic dXNlcjpwdw==");
    check("basic auth")(basic.send().await.unwrap()).await;

    let record = s.serve.token_record("auth_carol", false);
    let token = record["token"].as_str().unwrap();
    let id = record["id"].as_str().expect("a token id");
    assert!(id.starts_with("tok_"), "{record}");
    assert_eq!(record["principal"], "auth_carol");
    assert_eq!(record["admin"], false);
    let carol = with(token);
    expect_json(carol.send(Method::GET, "/api/files").await, StatusCode::OK, "carol's token").await;

    let listed = s.serve.wharf(&["--json", "token", "ls"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(id), "token ls lists {id}: {listed}");
    assert!(!listed.contains(token), "token ls must never show a token");

    let revoked = s.serve.wharf(&["token", "revoke", id]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    check("revoked token")(carol.send(Method::GET, "/api/files").await).await;

    // Health and metrics need no token.
    let (status, _, body) = fetch(&anonymous.http, &format!("{}/healthz", s.serve.base_url)).await;
    assert_eq!((status, String::from_utf8_lossy(&body).trim()), (StatusCode::OK, "ok"));
    let ready = anonymous.send(Method::GET, "/readyz").await;
    assert_eq!(expect_json(ready, StatusCode::OK, "readyz").await, json!({"ready": true}));
    assert_eq!(anonymous.send(Method::GET, "/metrics").await.status(), StatusCode::OK);
}

#[test]
fn auth_none_refuses_a_non_loopback_address() {
    let scratch = Scratch::new();
    let options = ServeOptions::default().listen("0.0.0.0:0");
    let failure = match ServeProcess::try_start(&scratch, "\n[server]\nauth = \"none\"\n", options) {
        Ok(serve) => panic!("auth = \"none\" on 0.0.0.0 started and listens at {}", serve.base_url),
        Err(failure) => failure,
    };
    let status = failure.status.unwrap_or_else(|| panic!("it neither served nor exited: {}", failure.stderr));
    assert!(!status.success(), "exit status {status}");
    let stderr = failure.stderr.to_lowercase();
    assert!(
        stderr.contains("auth") && (stderr.contains("loopback") || stderr.contains("0.0.0.0")),
        "the refusal should name auth = \"none\" and the address: {}",
        failure.stderr
    );
}

#[tokio::test]
async fn auth_none_on_loopback_acts_as_local() {
    let scratch = Scratch::new();
    let serve = ServeProcess::start(&scratch, "\n[server]\nauth = \"none\"\n");
    let api = Api::anonymous(&serve);
    let up = api.upload("nobody.txt", b"no token needed").await;
    let file = api.file(up["id"].as_str().unwrap()).await;
    assert_eq!(file["file"]["principal"], "local");
    assert_eq!(ids(&api.list(&[]).await["files"]), vec![up["id"].as_str().unwrap().to_string()]);
}

// ---- the file API ----

#[tokio::test]
async fn multipart_upload_of_two_files_round_trips() {
    let s = shared();
    let api = s.api("mp_user");
    let one = unique("multipart-one", 3000);
    let two = unique("multipart-two", 70_000);
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(one.clone()).file_name("one.txt"))
        .part("file", reqwest::multipart::Part::bytes(two.clone()).file_name("two.bin"));
    let response = api.request(Method::POST, "/api/files", &[]).multipart(form).send().await.unwrap();
    let answer = expect_json(response, StatusCode::CREATED, "multipart upload").await;
    let files = answer["files"].as_array().expect("files");
    assert_eq!(files.len(), 2, "{answer}");

    for (record, (name, bytes)) in files.iter().zip([("one.txt", &one), ("two.bin", &two)]) {
        assert_eq!(record["name"], name, "{record}");
        assert_eq!(record["size"], bytes.len());
        assert_eq!(record["sha256"], sha256_hex(bytes));
        assert_eq!(record["provider"], "local");
        assert_eq!(record["deduplicated"], false);
        let id = record["id"].as_str().unwrap();
        let (status, headers, body) = fetch_with(&api, &format!("/api/files/{id}/content")).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_same(&body, bytes, name);
        assert_eq!(header(&headers, "content-length"), bytes.len().to_string());
        assert_eq!(header(&headers, "etag"), format!("\"{}\"", sha256_hex(bytes)));
        assert!(!header(&headers, "content-type").is_empty(), "{name}: Content-Type");
        assert_eq!(disposition(&header(&headers, "content-disposition")).1.as_deref(), Some(name));
        let file = api.file(id).await;
        assert_eq!(file["file"]["name"], name);
        assert_eq!(file["file"]["principal"], "mp_user");
        assert_eq!(file["file"]["size"], bytes.len());
    }
}

#[tokio::test]
async fn raw_upload_with_a_name_and_dedup() {
    let s = shared();
    let api = s.api("raw_user");
    let content = unique("raw-upload", 5000);
    let up = api.upload("raw note.txt", &content).await;
    assert_eq!(up["name"], "raw note.txt");
    assert_eq!(up["size"], 5000);
    assert_eq!(up["sha256"], sha256_hex(&content));
    assert_eq!(up["deduplicated"], false);
    assert!(up["mime"].as_str().is_some_and(|m| m.starts_with("text/plain")), "{up}");
    let id = up["id"].as_str().unwrap();
    assert!(id.starts_with("wf_"), "{up}");

    let file = api.file(id).await;
    assert_eq!(file["file"]["name"], "raw note.txt");
    assert_eq!(file["file"]["sha256"], sha256_hex(&content));
    let (status, _, body) = fetch_with(&api, &format!("/api/files/{id}/content")).await;
    assert_eq!(status, StatusCode::OK);
    assert_same(&body, &content, "raw upload content");

    let again = api.upload("raw note again.txt", &content).await;
    assert_eq!(again["deduplicated"], true, "{again}");
    assert_eq!(again["sha256"], sha256_hex(&content));
}

#[tokio::test]
async fn upload_over_max_upload_bytes_is_413_and_records_nothing() {
    let s = shared();
    let api = s.api("big_user");
    let big = unique("too-big", SHARED_MAX_UPLOAD + 1);
    let raw = |http: &reqwest::Client| {
        let url = api.url("/api/files", &[("name", "big.bin")]);
        http.post(url).bearer_auth(api.token.as_deref().unwrap()).body(big.clone())
    };
    let multipart = |http: &reqwest::Client| {
        let part = reqwest::multipart::Part::bytes(big.clone()).file_name("big.bin");
        let form = reqwest::multipart::Form::new().part("file", part);
        http.post(api.url("/api/files", &[])).bearer_auth(api.token.as_deref().unwrap()).multipart(form)
    };

    // Each on a connection of its own: the answer itself.
    let fresh = serve::client_builder().pool_max_idle_per_host(0).build().unwrap();
    let response = raw(&fresh).send().await.expect("an answer to an oversized raw upload");
    expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "raw upload over the limit").await;
    let response = multipart(&fresh).send().await.expect("an answer to an oversized multipart upload");
    expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "multipart upload over the limit").await;

    // A client that keeps connections open (browsers, reqwest, hyper) must
    // be able to send its next request after a 413: the server either reads
    // the rest of the body or says `Connection: close`.
    let pooled = client();
    let response = raw(&pooled).send().await.expect("an answer to an oversized raw upload");
    let connection = header(response.headers(), "connection");
    expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "raw upload over the limit, pooled").await;
    let next = pooled.get(api.url("/api/files", &[])).bearer_auth(api.token.as_deref().unwrap()).send().await;
    if let Err(e) = next {
        panic!(
            "the request after a 413 failed ({e}): the 413 left the connection open for reuse \
             (Connection: {connection:?}) but the server closed it with the body unread"
        );
    }

    assert_eq!(api.listed_ids().await, Vec::<String>::new(), "nothing recorded");
    let sha = sha256_hex(&big);
    let object = s.scratch.data().join("local/objects").join(&sha[..2]).join(&sha);
    assert!(!object.exists(), "the provider was not touched: {}", object.display());

    let fits = api.upload("fits.bin", &unique("fits", 1000)).await;
    assert_eq!(api.listed_ids().await, vec![fits["id"].as_str().unwrap().to_string()]);
}

#[tokio::test]
async fn patch_changes_name_description_and_tags() {
    let s = shared();
    let api = s.api("patch_user");
    let up = api.upload("before.txt", &unique("patch", 500)).await;
    let id = up["id"].as_str().unwrap();
    let path = format!("/api/files/{id}");

    let changes = json!({"name": "after.txt", "description": "quarterly figures", "tags": ["q3", "draft"]});
    let patched = expect_json(api.send_json(Method::PATCH, &path, &changes).await, StatusCode::OK, "PATCH").await;
    assert_eq!(patched["id"], id, "PATCH answers the File: {patched}");
    assert_eq!(patched["name"], "after.txt");
    assert_eq!(patched["description"], "quarterly figures");
    assert_eq!(patched["tags"], json!(["q3", "draft"]));

    let file = api.file(id).await["file"].clone();
    assert_eq!(file["name"], "after.txt");
    assert_eq!(file["description"], "quarterly figures");
    assert_eq!(file["tags"], json!(["q3", "draft"]));

    // Fields left out stay as they are.
    let only = json!({"description": "final"});
    let patched = expect_json(api.send_json(Method::PATCH, &path, &only).await, StatusCode::OK, "PATCH 2").await;
    assert_eq!((patched["name"].clone(), patched["description"].clone()), (json!("after.txt"), json!("final")));
    assert_eq!(patched["tags"], json!(["q3", "draft"]));
    assert_eq!(api.file(id).await["file"]["description"], "final");

    // Tags edited one by one, key-value pairs set and removed, and the
    // listing filtered by tag.
    let edits =
        json!({"add_tags": ["final"], "remove_tags": ["draft"], "attributes": {"client": "acme", "year": "2026"}});
    let patched = expect_json(api.send_json(Method::PATCH, &path, &edits).await, StatusCode::OK, "PATCH 3").await;
    assert_eq!(patched["tags"], json!(["q3", "final"]));
    assert_eq!(patched["attributes"], json!({"client": "acme", "year": "2026"}));
    let removal = json!({"attributes": {"year": null}});
    let patched = expect_json(api.send_json(Method::PATCH, &path, &removal).await, StatusCode::OK, "PATCH 4").await;
    assert_eq!(patched["attributes"], json!({"client": "acme"}));
    assert_eq!(ids(&api.list(&[("tag", "final")]).await["files"]), [id]);
    assert!(ids(&api.list(&[("tag", "draft")]).await["files"]).is_empty());
    let unknown = json!({"labels": ["x"]});
    let problem = expect_problem(
        api.send_json(Method::PATCH, &path, &unknown).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown field",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("labels"), "{problem}");
}

/// `GET /api/stats` counts the caller's files, uploads, dedup hits and
/// downloads; `POST /api/files/register` refuses references the principal
/// was not granted.
#[tokio::test]
async fn stats_and_register_over_http() {
    let s = shared();
    let api = s.api("stats_user");
    let bytes = unique("stats", 700);
    let up = api.upload("counted.bin", &bytes).await;
    api.upload("again.bin", &bytes).await;
    let id = up["id"].as_str().unwrap();
    let content = api.send(Method::GET, &format!("/api/files/{id}/content")).await;
    assert_eq!(content.status(), StatusCode::OK);
    assert_same(&content.bytes().await.unwrap(), &bytes, "content");

    // The download is recorded when its stream ends, just after the answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let stats = loop {
        let stats = expect_json(api.send(Method::GET, "/api/stats").await, StatusCode::OK, "stats").await;
        if stats["downloads"]["provider"] == 1 || std::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(stats["providers"]["local"]["files"], 1, "{stats}");
    assert_eq!((stats["uploads"].clone(), stats["dedup_hits"].clone()), (json!(1), json!(1)), "{stats}");
    assert_eq!(stats["bytes_not_sent"], 700);
    assert_eq!(stats["downloads"]["provider"], 1, "{stats}");
    assert_eq!(stats["most_downloaded"][0]["id"], id);

    let sha = up["sha256"].as_str().unwrap();
    let refused = api.send_json(Method::POST, "/api/files/register", &json!({"reference": sha})).await;
    let problem = expect_problem(refused, StatusCode::FORBIDDEN, "register").await;
    assert!(problem["detail"].as_str().unwrap().contains("may not register"), "{problem}");
}

#[tokio::test]
async fn listing_pages_with_a_cursor() {
    let s = shared();
    let api = s.api("page_user");
    let mut uploaded = BTreeSet::new();
    for i in 0..5 {
        let up = api.upload(&format!("page-{i}.txt"), &unique(&format!("page-{i}"), 200 + i)).await;
        uploaded.insert(up["id"].as_str().unwrap().to_string());
    }

    let whole = api.list(&[]).await;
    assert!(whole["next"].is_null(), "{whole}");
    let order = ids(&whole["files"]);
    let created: Vec<u64> =
        whole["files"].as_array().unwrap().iter().map(|f| f["created_at"].as_u64().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first: {created:?}");

    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 10, "the cursor walk does not end: {walked:?}");
        let mut query = vec![("limit", "1")];
        if let Some(after) = &cursor {
            query.push(("after", after.as_str()));
        }
        let answer = api.list(&query).await;
        let files = ids(&answer["files"]);
        assert!(files.len() <= 1, "limit=1: {answer}");
        walked.extend(files);
        match answer["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(walked, order, "the pages, in order, are the whole listing");
    assert_eq!(walked.iter().cloned().collect::<BTreeSet<_>>(), uploaded);

    let named = api.list(&[("name", "page-3")]).await;
    let named = named["files"].as_array().unwrap();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0]["name"], "page-3.txt");
}

#[tokio::test]
async fn delete_removes_the_record() {
    let s = shared();
    let api = s.api("del_user");
    let keep = api.upload("keep.txt", &unique("keep", 300)).await;
    let up = api.upload("doomed.txt", &unique("doomed", 300)).await;
    let id = up["id"].as_str().unwrap();
    let path = format!("/api/files/{id}");

    let removed = expect_json(api.send(Method::DELETE, &path).await, StatusCode::OK, "DELETE").await;
    assert_eq!(removed["id"], id, "DELETE answers the removed File: {removed}");
    assert_eq!(removed["name"], "doomed.txt");

    expect_problem(api.send(Method::GET, &path).await, StatusCode::NOT_FOUND, "GET after DELETE").await;
    let content = api.send(Method::GET, &format!("{path}/content")).await;
    expect_problem(content, StatusCode::NOT_FOUND, "content after DELETE").await;
    expect_problem(api.send(Method::DELETE, &path).await, StatusCode::NOT_FOUND, "DELETE twice").await;
    expect_problem(api.try_generate(json!({"file_id": id})).await, StatusCode::NOT_FOUND, "link after DELETE").await;
    assert_eq!(api.listed_ids().await, vec![keep["id"].as_str().unwrap().to_string()]);
}

// ---- shutdown, metrics, rate, curl (own servers where the config differs) ----

#[tokio::test]
async fn transfer_in_flight_completes_across_sigterm() {
    let scratch = Scratch::new();
    let serve = ServeProcess::start(&scratch, "\n[server]\nshutdown_grace_secs = 30\n");
    let api = Api::new(&serve, "term_user", false);
    let content = pattern(64 * MIB);
    std::fs::write(scratch.work().join("big.bin"), &content).unwrap();
    let link = api.generate(json!({"file_path": "big.bin"})).await;

    let mut response = api.http.get(link_url(&serve, &link)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = Vec::with_capacity(content.len());
    while received.len() < MIB {
        received.extend_from_slice(&response.chunk().await.unwrap().expect("the body goes on"));
    }

    serve.terminate();
    // It stops accepting: new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpStream::connect_timeout(&serve.addr, Duration::from_secs(1)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            other => {
                assert!(Instant::now() < deadline, "still accepting connections 10 s after SIGTERM: {other:?}");
                drop(other);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(serve.exited().is_none(), "exited with a transfer in flight");

    // The transfer in flight finishes, read slowly.
    let mut next_pause = received.len() + 4 * MIB;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => panic!("the transfer broke after {} bytes: {e}", received.len()),
        }
        if received.len() >= next_pause {
            next_pause += 4 * MIB;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_same(&received, &content, "the transfer across SIGTERM");

    let status = serve.wait();
    assert_eq!(status.code(), Some(0), "exit status {status}; stderr:\n{}", serve.stderr());
}

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses every non-comment line as `name{labels} value [timestamp]`;
/// panics on the first line that does not parse.
fn parse_metrics(text: &str) -> Vec<Sample> {
    fn number(s: &str) -> Option<f64> {
        match s {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ if s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => s.parse().ok(),
            _ => None,
        }
    }
    fn line(line: &str) -> Option<Sample> {
        let name_end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))?;
        let name = &line[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            loop {
                rest = rest.trim_start();
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let eq = rest.find('=')?;
                let key = rest[..eq].trim();
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return None;
                }
                rest = rest[eq + 1..].strip_prefix('"')?;
                let mut value = String::new();
                let mut chars = rest.char_indices();
                let end = loop {
                    match chars.next()? {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next()?.1 {
                            'n' => value.push('\n'),
                            c @ ('\\' | '"') => value.push(c),
                            _ => return None,
                        },
                        (_, c) => value.push(c),
                    }
                };
                labels.insert(key.to_string(), value);
                rest = rest[end + 1..].trim_start();
                if let Some(after) = rest.strip_prefix(',') {
                    rest = after;
                } else if !rest.starts_with('}') {
                    return None;
                }
            }
        }
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        let mut fields = rest.split_whitespace();
        let value = number(fields.next()?)?;
        if let Some(timestamp) = fields.next() {
            timestamp.parse::<i64>().ok()?;
        }
        if fields.next().is_some() {
            return None;
        }
        Some(Sample { name: name.to_string(), labels, value })
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| line(l).unwrap_or_else(|| panic!("/metrics line {} does not parse: {l:?}", i + 1)))
        .collect()
}

/// The sum of a series over the samples whose labels include `filter`.
fn metric(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && filter.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn metrics_count_this_tests_requests() {
    let scratch = Scratch::new();
    let serve = ServeProcess::start(&scratch, "");
    let api = Api::new(&serve, "metrics_user", false);
    let anonymous = Api::anonymous(&serve);

    assert_eq!(anonymous.send(Method::GET, "/api/files").await.status(), StatusCode::UNAUTHORIZED);
    api.upload("m.txt", &unique("metrics", 1000)).await;
    std::fs::write(scratch.work().join("m2.txt"), b"linked twice").unwrap();
    let first = api.generate(json!({"file_path": "m2.txt"})).await;
    api.generate(json!({"file_path": "m2.txt"})).await;
    let (status, _, _) = fetch(&api.http, &link_url(&serve, &first)).await;
    assert_eq!(status, StatusCode::OK);

    let response = anonymous.send(Method::GET, "/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = header(response.headers(), "content-type");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    let samples = parse_metrics(&text);

    let requests = |filter: &[(&str, &str)]| metric(&samples, "wharf_http_requests_total", filter);
    assert!(requests(&[]) >= 5.0, "five requests before /metrics:\n{text}");
    assert!(requests(&[("method", "POST"), ("status", "201")]) >= 1.0, "the upload:\n{text}");
    assert!(requests(&[("method", "POST"), ("status", "200")]) >= 2.0, "the generations:\n{text}");
    assert!(requests(&[("method", "GET"), ("status", "200")]) >= 1.0, "the download:\n{text}");
    assert!(requests(&[("status", "401")]) >= 1.0, "the refusal:\n{text}");
    assert_eq!(metric(&samples, "wharf_link_generations_total", &[]), 2.0, "\n{text}");
    assert!(metric(&samples, "wharf_link_uses_total", &[]) >= 1.0, "\n{text}");
    assert!(metric(&samples, "wharf_uploads_total", &[("provider", "local")]) >= 1.0, "\n{text}");
    assert!(metric(&samples, "wharf_bytes_in_total", &[("provider", "local")]) >= 1000.0, "\n{text}");
}

#[tokio::test]
async fn link_generation_rate_is_limited_per_principal() {
    let scratch = Scratch::new();
    let serve = ServeProcess::start(&scratch, "\n[server.links]\nrate_per_minute = 2\n");
    let alice = Api::new(&serve, "rate_alice", false);
    let bob = Api::new(&serve, "rate_bob", false);
    std::fs::write(scratch.work().join("r.txt"), b"rated").unwrap();
    let body = json!({"file_path": "r.txt"});

    alice.generate(body.clone()).await;
    alice.generate(body.clone()).await;
    let response = alice.try_generate(body.clone()).await;
    let retry_after = header(response.headers(), "retry-after");
    expect_problem(response, StatusCode::TOO_MANY_REQUESTS, "third generation in a minute").await;
    let secs: u64 = retry_after.parse().unwrap_or_else(|_| panic!("Retry-After in seconds: {retry_after:?}"));
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
    bob.generate(body).await;
    assert_eq!(alice.stats().await["total"], 2, "the refused generation created no link");
}

#[tokio::test]
async fn curl_saves_a_link_under_its_own_name() {
    let s = shared();
    let api = s.api("curl_user");
    let dir = s.dir("curl");
    let content = unique("curl-umlaut", 5000);
    std::fs::write(dir.join("Bericht März.txt"), &content).unwrap();
    let link = api.generate(json!({"file_path": "curl/Bericht März.txt"})).await;
    let url = link_url(&s.serve, &link);

    let head = api.http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let cd = header(head.headers(), "content-disposition");
    let (plain, extended) = disposition(&cd);
    assert_eq!(extended.as_deref(), Some("Bericht März.txt"), "{cd}");
    let plain = plain.unwrap_or_else(|| panic!("no filename= for clients without filename* (curl -J): {cd}"));
    assert!(plain.is_ascii(), "filename= is the ASCII fallback: {cd}");

    let saved = curl_oj(&url);
    assert_eq!(saved.0, plain, "curl -J saves under filename=");
    assert!(
        saved.0.starts_with("Bericht M") && saved.0.ends_with("rz.txt"),
        "the fallback keeps the rest of the name: {:?}",
        saved.0
    );
    assert_same(&saved.1, &content, "curl's file");

    // An ASCII name with a space, chosen at generation, is saved as is.
    std::fs::write(dir.join("data.bin"), &content).unwrap();
    let link = api.generate(json!({"file_path": "curl/data.bin", "filename": "Q3 report.txt"})).await;
    let saved = curl_oj(&link_url(&s.serve, &link));
    assert_eq!(saved.0, "Q3 report.txt");
    assert_same(&saved.1, &content, "curl's second file");
}

/// `curl -OJ URL` in an empty directory: the one file it saved, and its bytes.
fn curl_oj(url: &str) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("curl")
        .args(["-fsS", "--noproxy", "*", "-OJ", url])
        .current_dir(dir.path())
        .output()
        .expect("running curl");
    assert!(out.status.success(), "curl -OJ {url}: {}", String::from_utf8_lossy(&out.stderr));
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "curl saved {files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    (name, std::fs::read(&files[0]).unwrap())
}

/// Waits (polling the server's stderr) for a line containing every one of `words`.
async fn stderr_line(serve: &ServeProcess, words: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stderr = serve.stderr();
        if let Some(line) = stderr.lines().find(|l| words.iter().all(|w| l.contains(w))) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no line with {words:?} in the server's stderr:\n{stderr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A component file replaced under `wharf serve` is loaded beside the running
/// one and swapped in; a broken one is refused with a line naming why, and
/// SIGHUP asks for a reload too. The server serves throughout.
#[tokio::test]
async fn a_changed_component_is_swapped_in_and_a_broken_one_refused() {
    let scratch = Scratch::new();
    let plugins = std::path::Path::new(env!("WHARF_BUILTIN_PLUGIN_DIR"));
    let component = scratch.dir.path().join("watched.wasm");
    std::fs::copy(plugins.join("wharf_plugin_local.wasm"), &component).unwrap();
    let extra = format!(
        "\n[server]\nauth = \"none\"\n\n[providers.watched]\nplugin = \"{}\"\nstorage_dir = \"{}/watched\"\n",
        component.display(),
        scratch.data().display()
    );
    let serve = ServeProcess::start_with(&scratch, &extra, ServeOptions::default().env("WHARF_LOG", "wharf=info"));
    let replace = |bytes: &[u8]| {
        let next = component.with_extension("next");
        std::fs::write(&next, bytes).unwrap();
        std::fs::rename(&next, &component).unwrap();
    };

    replace(&std::fs::read(plugins.join("wharf_test_v0_1.wasm")).unwrap());
    stderr_line(&serve, &["reload on a changed file", "swapped in watched"]).await;

    replace(b"not a component");
    let line = stderr_line(&serve, &["refused", "the running adapters keep serving"]).await;
    assert!(line.contains("not a Wasm component"), "{line}");

    // SAFETY: kill(2) with the pid of the server this test started.
    assert_eq!(unsafe { libc::kill(serve.pid as libc::pid_t, libc::SIGHUP) }, 0);
    stderr_line(&serve, &["reload on SIGHUP"]).await;
    let (status, _, _) = fetch(&client(), &format!("{}/healthz", serve.base_url)).await;
    assert_eq!(status, StatusCode::OK);
    serve.terminate();
    assert!(serve.wait().success());
}
