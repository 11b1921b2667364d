//! Several `wharf serve` hosts behind one load balancer, as docs and deploy/
//! describe: the harness starts a real PostgreSQL (the shared catalog) and
//! SeaweedFS (the shared S3 provider, default and cache), then two hosts,
//! each with its own data directory (compiled components, spool), sharing
//! nothing else. Tokens made through one host work on the other.
//!
//! - what one host uploads, the other lists, serves, links, tags and deletes;
//! - a single-use link under 100 concurrent GETs spread over both hosts;
//! - the same 50 MiB uploaded through both hosts at once is sent once;
//! - a host killed with SIGKILL halfway through sending an upload to S3
//!   leaves no record, and its stale claim lapses for a retry through the other.
//!
//! The cluster is shared by the tests of this binary; the last test starts a
//! third host of its own to kill. Needs `weed` (tests/requirements.txt) and
//! PostgreSQL's server binaries (scripts/test installs both).

#[path = "support/cluster.rs"]
mod cluster;
mod common;
#[path = "support/postgres.rs"]
mod postgres_server;
#[path = "support/s3_server.rs"]
mod s3_server;
#[path = "support/serve.rs"]
mod serve;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use cluster::{Host, Shared};
use common::{pattern, sha256_hex};
use postgres_server::PostgresServer;
use s3_server::S3Server;
use serve::client;

const BUCKET: &str = "wharf-multihost";
const PREFIX: &str = "mh/";
/// Short, so that a killed host's claim lapses within the test.
const CLAIM_TTL_SECS: u64 = 2;
const MIB: usize = 1 << 20;

// ---- the cluster ----

struct Cluster {
    database_url: String,
    s3: S3Server,
    a: Host,
    b: Host,
}

/// PostgreSQL, SeaweedFS and two hosts on them, started once for this binary.
async fn shared_cluster() -> &'static Cluster {
    static CLUSTER: tokio::sync::OnceCell<Cluster> = tokio::sync::OnceCell::const_new();
    CLUSTER
        .get_or_init(|| async {
            let database_url = PostgresServer::shared().await.create_database().await;
            let s3 = S3Server::start().await;
            s3.create_bucket(BUCKET).await;
            let a = start_host(&database_url, &s3.endpoint);
            let b = start_host(&database_url, &s3.endpoint);
            Cluster { database_url, s3, a, b }
        })
        .await
}

/// A host on the shared database whose `s3` provider (default and cache)
/// reaches S3 at `endpoint`.
fn start_host(database_url: &str, endpoint: &str) -> Host {
    cluster::start_host(&Shared {
        database_url,
        s3_endpoint: endpoint,
        bucket: BUCKET,
        prefix: PREFIX,
        claim_ttl_secs: CLAIM_TTL_SECS,
        max_upload_bytes: 200 * MIB,
    })
}

// ---- an API client acting as one principal on one host ----

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// `principal`'s token (made through `host`) used on `host`.
    fn on(host: &Host, token: &str) -> Self {
        Self { http: client(), base: host.serve.base_url.clone(), token: token.to_string() }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    /// A raw upload → 201: the one `Uploaded` record.
    async fn upload(&self, name: &str, bytes: Vec<u8>) -> Value {
        let response = self.request(Method::POST, &format!("/api/files?name={name}")).body(bytes).send().await.unwrap();
        let answer = expect_json(response, StatusCode::CREATED, &format!("upload {name} to {}", self.base)).await;
        answer["files"][0].clone()
    }

    async fn json(&self, method: Method, path: &str, body: Option<Value>, status: StatusCode) -> Value {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        expect_json(request.send().await.unwrap(), status, &format!("{method} {}{path}", self.base)).await
    }

    async fn status(&self, method: Method, path: &str) -> StatusCode {
        self.request(method, path).send().await.unwrap().status()
    }

    /// GET of a file's content → 200: its bytes.
    async fn content(&self, id: &str) -> Vec<u8> {
        let response = self.request(Method::GET, &format!("/api/files/{id}/content")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "content of {id} from {}", self.base);
        response.bytes().await.unwrap().to_vec()
    }

    /// The SHA-256s of every file this principal lists.
    async fn listed_sha256s(&self) -> Vec<String> {
        let answer = self.json(Method::GET, "/api/files?limit=1000", None, StatusCode::OK).await;
        answer["files"].as_array().unwrap().iter().map(|f| f["sha256"].as_str().unwrap().to_string()).collect()
    }
}

async fn expect_json(response: reqwest::Response, status: StatusCode, what: &str) -> Value {
    let got = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(got, status, "{what}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

/// Bytes no other test uploads.
fn unique(tag: &str, size: usize) -> Vec<u8> {
    let mut bytes = pattern(size);
    let stamp = format!("{tag}-{}-", std::process::id());
    bytes[..stamp.len()].copy_from_slice(stamp.as_bytes());
    bytes
}

/// `wharf_bytes_in_total{provider="s3"}` of one host: bytes it sent to S3.
async fn bytes_sent_to_s3(host: &Host) -> f64 {
    let text = client().get(format!("{}/metrics", host.serve.base_url)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("wharf_bytes_in_total{provider=\"s3\"} "))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

// ---- the tests ----

#[tokio::test]
async fn what_one_host_uploads_the_other_serves_links_tags_and_deletes() {
    let c = shared_cluster().await;
    let token = c.a.serve.token("mh_alice", false);
    let (a, b) = (Api::on(&c.a, &token), Api::on(&c.b, &token));
    let content = unique("across", 300_000);
    let up = a.upload("across.bin", content.clone()).await;
    assert_eq!((up["provider"].as_str(), up["deduplicated"].as_bool()), (Some("s3"), Some(false)), "{up}");
    let id = up["id"].as_str().unwrap();

    // B knows it, lists it and serves its bytes.
    let details = b.json(Method::GET, &format!("/api/files/{id}"), None, StatusCode::OK).await;
    assert_eq!(details["file"]["sha256"], sha256_hex(&content), "{details}");
    assert!(b.listed_sha256s().await.contains(&sha256_hex(&content)));
    assert_eq!(b.content(id).await, content, "B serves what A uploaded");

    // Tags set through B are what A sees.
    let patch = json!({"tags": ["q3", "shared"], "description": "set through B"});
    b.json(Method::PATCH, &format!("/api/files/{id}"), Some(patch), StatusCode::OK).await;
    let seen_by_a = a.json(Method::GET, &format!("/api/files/{id}"), None, StatusCode::OK).await;
    assert_eq!(seen_by_a["file"]["tags"], json!(["q3", "shared"]), "{seen_by_a}");

    // A link made through B works once, through either host.
    let link = b.json(Method::POST, "/api/download/generate", Some(json!({"file_id": id})), StatusCode::OK).await;
    let token_path = format!("/api/download/{}", link["token"].as_str().unwrap());
    let http = client();
    let served = http.get(format!("{}{token_path}", c.a.serve.base_url)).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK, "a link made through B, used through A");
    assert_eq!(served.bytes().await.unwrap().to_vec(), content);
    let again = http.get(format!("{}{token_path}", c.b.serve.base_url)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE, "its one use is gone on B too");

    // Deleted through B: gone for A, and from the bucket.
    b.json(Method::DELETE, &format!("/api/files/{id}"), None, StatusCode::OK).await;
    assert_eq!(a.status(Method::GET, &format!("/api/files/{id}")).await, StatusCode::NOT_FOUND);
    assert!(!a.listed_sha256s().await.contains(&sha256_hex(&content)));
    let key = format!("{PREFIX}{}", sha256_hex(&content));
    assert!(c.s3.list_keys(BUCKET, &key).await.is_empty(), "the object is deleted from S3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_use_link_under_100_gets_spread_over_both_hosts_serves_once() {
    let c = shared_cluster().await;
    let token = c.a.serve.token("mh_bob", false);
    let a = Api::on(&c.a, &token);
    let content = unique("once", 256 * 1024);
    let up = a.upload("once.bin", content.clone()).await;
    let link = a.json(Method::POST, "/api/download/generate", Some(json!({"file_id": up["id"]})), StatusCode::OK).await;
    let path = format!("/api/download/{}", link["token"].as_str().unwrap());

    let http = client();
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let mut gets = tokio::task::JoinSet::new();
    for i in 0..100 {
        let host = if i % 2 == 0 { &c.a } else { &c.b };
        let (http, url, barrier) = (http.clone(), format!("{}{path}", host.serve.base_url), barrier.clone());
        gets.spawn(async move {
            barrier.wait().await;
            let response = http.get(&url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
        });
    }
    let mut statuses = BTreeMap::new();
    let mut bodies = Vec::new();
    while let Some(result) = gets.join_next().await {
        let (status, body) = result.unwrap();
        *statuses.entry(status).or_insert(0) += 1;
        if status == 200 {
            bodies.push(body);
        }
    }
    assert_eq!(statuses, BTreeMap::from([(200, 1), (410, 99)]), "statuses of 100 GETs over two hosts");
    assert_eq!(bodies[0], content, "the one 200 serves the whole file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_50_mib_through_both_hosts_at_once_is_sent_once() {
    let c = shared_cluster().await;
    let (carol, dave) = (c.a.serve.token("mh_carol", false), c.b.serve.token("mh_dave", false));
    let content = unique("fifty", 50 * MIB);
    let sha256 = sha256_hex(&content);
    let sent_before = bytes_sent_to_s3(&c.a).await + bytes_sent_to_s3(&c.b).await;

    let (carol_on_a, dave_on_b) = (Api::on(&c.a, &carol), Api::on(&c.b, &dave));
    let (through_a, through_b) =
        tokio::join!(carol_on_a.upload("fifty.bin", content.clone()), dave_on_b.upload("fifty.bin", content.clone()),);
    assert_eq!((through_a["sha256"].as_str(), through_b["sha256"].as_str()), (Some(&*sha256), Some(&*sha256)));
    assert_eq!(through_a["remote_id"], through_b["remote_id"], "one object");
    assert_ne!(through_a["id"], through_b["id"], "each principal has its own record");
    let deduplicated = [&through_a, &through_b].iter().filter(|up| up["deduplicated"] == json!(true)).count();
    assert_eq!(deduplicated, 1, "one sent the bytes, the other waited for it:\n{through_a}\n{through_b}");

    assert_eq!(c.s3.list_keys(BUCKET, &format!("{PREFIX}{sha256}")).await.len(), 1, "one object at S3");
    // Other tests of this binary send a few MiB to S3 meanwhile; a second
    // copy of these bytes would add 50 MiB more.
    let sent = bytes_sent_to_s3(&c.a).await + bytes_sent_to_s3(&c.b).await - sent_before;
    let size = content.len() as f64;
    assert!(sent >= size && sent < 2.0 * size, "the hosts sent {sent} bytes to S3 for one {size}-byte upload");
    // And either host serves it to either principal.
    assert_eq!(Api::on(&c.a, &dave).content(through_b["id"].as_str().unwrap()).await.len(), content.len());
}

/// A TCP proxy that forwards what clients send at `rate` bytes per second
/// (all connections together), and answers at full speed: it makes an
/// upload to S3 last long enough to kill its host halfway.
struct Throttle {
    addr: SocketAddr,
    forwarded: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Throttle {
    async fn start(upstream: SocketAddr, rate: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let forwarded = Arc::new(AtomicU64::new(0));
        let next_free = Arc::new(tokio::sync::Mutex::new(tokio::time::Instant::now()));
        let task = tokio::spawn({
            let forwarded = forwarded.clone();
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await else { continue };
                    let (mut in_read, mut in_write) = inbound.into_split();
                    let (mut out_read, mut out_write) = outbound.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
                    });
                    let (forwarded, next_free) = (forwarded.clone(), next_free.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = in_read.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            // Each chunk waits for its turn on the shared budget.
                            let turn = {
                                let mut next = next_free.lock().await;
                                let turn = (*next).max(tokio::time::Instant::now());
                                *next = turn + Duration::from_secs_f64(n as f64 / rate as f64);
                                turn
                            };
                            tokio::time::sleep_until(turn).await;
                            if out_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            forwarded.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        let _ = out_write.shutdown().await;
                    });
                }
            }
        });
        Self { addr, forwarded, task }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The claim on some content, as the catalog holds it: its holder.
async fn claim_holder(database_url: &str, provider: &str, sha256: &str) -> Option<String> {
    let client = postgres_server::connect(database_url).await;
    let name = format!("upload {provider} {sha256} ");
    client.query_opt("SELECT holder FROM holds WHERE name = $1", &[&name]).await.unwrap().map(|row| row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_killed_mid_upload_leaves_no_record_and_its_claim_lapses() {
    let c = shared_cluster().await;
    // Host K sends to S3 through a proxy at 4 MiB/s; B sends directly.
    let s3_addr: SocketAddr = c.s3.endpoint.trim_start_matches("http://").parse().unwrap();
    let throttle = Throttle::start(s3_addr, 4 * MIB as u64).await;
    let k = start_host(&c.database_url, &format!("http://{}", throttle.addr));
    let token = k.serve.token("mh_erin", false);
    let (on_k, on_b) = (Api::on(&k, &token), Api::on(&c.b, &token));

    // What K finishes stays.
    let mut complete = Vec::new();
    for i in 0..2 {
        let content = unique(&format!("complete{i}"), 100_000);
        let up = on_k.upload(&format!("complete{i}.bin"), content.clone()).await;
        complete.push((up["id"].as_str().unwrap().to_string(), content));
    }

    // A 24 MiB upload: K spools it at full speed, claims it, and sends it to
    // S3 at 4 MiB/s. Killed once a few MiB have gone.
    let big = unique("killed", 24 * MIB);
    let sha256 = sha256_hex(&big);
    let posting = tokio::spawn({
        let on_k = on_k.clone();
        let big = big.clone();
        async move { on_k.request(Method::POST, "/api/files?name=big.bin").body(big).send().await }
    });
    let forwarded_before = throttle.forwarded.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while throttle.forwarded.load(Ordering::Relaxed) < forwarded_before + 4 * MIB as u64 {
        assert!(Instant::now() < deadline, "K sent less than 4 MiB of the upload to S3 within a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let holder = claim_holder(&c.database_url, "s3", &sha256).await.expect("K holds the upload's claim");
    // SAFETY: kill(2) on the server process this test started.
    assert_eq!(unsafe { libc::kill(k.serve.pid as libc::pid_t, libc::SIGKILL) }, 0);
    k.serve.wait();
    // The connection died with K, or (had K answered) the answer is no success.
    if let Ok(response) = posting.await.unwrap() {
        assert_ne!(response.status(), StatusCode::CREATED, "the killed upload was answered");
    }

    // B serves everything K finished; nothing of the unfinished upload.
    for (id, content) in &complete {
        assert_eq!(&on_b.content(id).await, content, "B serves {id}, finished by K");
    }
    assert!(!on_b.listed_sha256s().await.contains(&sha256), "no record of the unfinished upload");
    assert_eq!(claim_holder(&c.database_url, "s3", &sha256).await.as_deref(), Some(&*holder), "K's claim is stale");

    // A retry through B waits out the stale claim (2 s), then sends the bytes itself.
    let started = Instant::now();
    let retried = on_b.upload("big.bin", big.clone()).await;
    assert_eq!(retried["sha256"], sha256.as_str());
    assert_eq!(retried["deduplicated"], json!(false), "K never recorded a copy: {retried}");
    assert!(started.elapsed() < Duration::from_secs(30), "the retry took {:?}", started.elapsed());
    assert_eq!(on_b.content(retried["id"].as_str().unwrap()).await, big);
    assert_eq!(claim_holder(&c.database_url, "s3", &sha256).await, None, "B released its claim");
}
