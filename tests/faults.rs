//! Faults on the wire: each operation against the real S3 server (SeaweedFS)
//! and the Supabase, Kimi and GLM fakes, through the fault proxy, once per
//! fault. Every cell must end in success
//! after retry, or in a clear error within the configured limits; never a
//! partial file at a destination, never a record without its object nor an
//! object without its record (checked by listing the server afterwards),
//! never a hang. The test prints the matrix as a table.
//!
//! Needs `weed` from tests/requirements.txt; `scripts/test` installs it.
//! `WHARF_FAULT_PROVIDERS=kimi,glm` runs the rows of those providers only.

mod common;
#[path = "support/fault_proxy.rs"]
mod fault_proxy;
#[path = "support/glm_fake.rs"]
mod glm_fake;
#[path = "support/kimi_fake.rs"]
mod kimi_fake;
#[path = "support/s3_server.rs"]
mod s3_server;
#[path = "support/supabase_fake.rs"]
mod supabase_fake;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Scratch, pattern, records};
use fault_proxy::{Fault, FaultProxy};
use futures::StreamExt;
use glm_fake::FakeGlm;
use kimi_fake::FakeKimi;
use s3_server::{ACCESS_KEY_ID, S3Server, SECRET_ACCESS_KEY};
use supabase_fake::{BucketLimits, FakeSupabase};
use wharf::gateway::{Caller, Source, UploadOptions};

const BUCKET: &str = "wharf-faults";
const PREFIX: &str = "faults/";
const KEY_ID_ENV: &str = "WHARF_TEST_S3_ACCESS_KEY_ID";
const SECRET_ENV: &str = "WHARF_TEST_S3_SECRET_ACCESS_KEY";
const SUPABASE_KEY_ENV: &str = "WHARF_TEST_SUPABASE_KEY";
const SUPABASE_KEY: &str = "eyJ-test-service-role-key";
const KIMI_KEY_ENV: &str = "WHARF_TEST_KIMI_KEY";
const KIMI_KEY: &str = "sk-test-kimi-key";
const GLM_KEY_ENV: &str = "WHARF_TEST_GLM_KEY";
const MIB: usize = 1 << 20;
/// The adapter's time limit per call; a stalled connection is given up well within it.
const TIMEOUT_SECS: u64 = 9;
/// No cell may take longer than this, whatever happens.
const CELL_LIMIT: Duration = Duration::from_secs(45);

#[derive(Debug, Clone, Copy)]
enum Operation {
    SmallUpload,
    LargeUpload,
    Download,
    /// The content streamed as `wharf serve` streams it to an HTTP client.
    Stream,
    Stat,
    List,
    Delete,
}

impl Operation {
    /// Listing first: its answer grows with every object stored, and even
    /// dripped at 1 KiB/s it must arrive within the time limit.
    const ALL: [Operation; 7] = [
        Operation::List,
        Operation::SmallUpload,
        Operation::LargeUpload,
        Operation::Download,
        Operation::Stream,
        Operation::Stat,
        Operation::Delete,
    ];

    fn label(self) -> &'static str {
        match self {
            Operation::SmallUpload => "small upload",
            Operation::LargeUpload => "multipart/TUS upload",
            Operation::Download => "download",
            Operation::Stream => "HTTP stream",
            Operation::Stat => "stat",
            Operation::List => "list",
            Operation::Delete => "delete",
        }
    }
}

/// A test server behind its fault proxy.
enum Server {
    S3(S3Server),
    Supabase(FakeSupabase),
    Kimi(FakeKimi),
    Glm(FakeGlm),
}

impl Server {
    fn provider(&self) -> &'static str {
        match self {
            Server::S3(_) => "s3",
            Server::Supabase(_) => "supabase",
            Server::Kimi(_) => "kimi",
            Server::Glm(_) => "glm",
        }
    }

    fn upstream(&self) -> String {
        match self {
            Server::S3(server) => server.endpoint.clone(),
            Server::Supabase(fake) => fake.origin(),
            Server::Kimi(fake) => fake.origin(),
            Server::Glm(fake) => fake.origin(),
        }
    }

    /// Kimi and GLM name their files themselves and give back only derived
    /// content, which no digest covers; Wharf keeps the originals in its cache.
    fn derived_only(&self) -> bool {
        matches!(self, Server::Kimi(_) | Server::Glm(_))
    }

    /// The provider's entry, its endpoint at the proxy.
    fn entry(&self, proxy: &FaultProxy) -> String {
        let url = &proxy.url;
        let common = format!(
            "allowed_hosts = [\"{url}\"]\n\
             limits = {{ timeout_secs = {TIMEOUT_SECS} }}\n\
             retry = {{ max_retries = 3, base_delay_ms = 50, max_delay_ms = 200, max_retry_after_ms = 2000 }}\n"
        );
        let (plugin, secrets, config) = match self {
            Server::S3(_) => (
                "s3",
                format!("access_key_id = \"{KEY_ID_ENV}\", secret_access_key = \"{SECRET_ENV}\""),
                format!(
                    "endpoint = \"{url}\", region = \"us-east-1\", bucket = \"{BUCKET}\", prefix = \"{PREFIX}\", \
                     multipart_threshold = 5242880, part_size = 5242880"
                ),
            ),
            Server::Supabase(_) => (
                "supabase",
                format!("api_key = \"{SUPABASE_KEY_ENV}\""),
                format!(
                    "base_url = \"{url}{}\", bucket = \"{BUCKET}\", prefix = \"{PREFIX}\"",
                    supabase_fake::BASE_PATH
                ),
            ),
            Server::Kimi(_) => ("kimi", format!("api_key = \"{KIMI_KEY_ENV}\""), format!("base_url = \"{url}/v1\"")),
            Server::Glm(_) => {
                ("glm", format!("api_key = \"{GLM_KEY_ENV}\""), format!("base_url = \"{url}{}\"", glm_fake::BASE_PATH))
            }
        };
        format!(
            "\n[providers.{plugin}]\nplugin = \"{plugin}\"\nsecrets = {{ {secrets} }}\nconfig = {{ {config} }}\n{common}"
        )
    }

    /// The request an operation's fault goes on: its method and a part of
    /// its target; `None` where the provider has no such operation. `key` is
    /// the object's key at the provider (for Kimi and GLM, the id they gave).
    fn faulted(&self, operation: Operation, key: &str) -> Option<(&'static str, String)> {
        Some(match (self, operation) {
            (Server::S3(_), Operation::SmallUpload) => ("PUT", key.to_string()),
            (Server::S3(_), Operation::LargeUpload) => ("PUT", "partNumber=2".into()),
            (Server::S3(_), Operation::Download | Operation::Stream) => ("GET", key.to_string()),
            (Server::S3(_), Operation::Stat) => ("HEAD", key.to_string()),
            (Server::S3(_), Operation::List) => ("GET", "list-type=2".into()),
            (Server::S3(_), Operation::Delete) => ("DELETE", key.to_string()),
            (Server::Supabase(_), Operation::SmallUpload) => ("POST", format!("/object/{BUCKET}/{key}")),
            (Server::Supabase(_), Operation::LargeUpload) => ("PATCH", "/upload/resumable/".into()),
            (Server::Supabase(_), Operation::Download | Operation::Stream) => {
                ("GET", format!("/object/{BUCKET}/{key}"))
            }
            (Server::Supabase(_), Operation::Stat) => ("GET", format!("/object/info/{BUCKET}/{key}")),
            (Server::Supabase(_), Operation::List) => ("POST", "/object/list".into()),
            (Server::Supabase(_), Operation::Delete) => ("DELETE", format!("/object/{BUCKET}/{key}")),
            // No multipart; their streams are derived content, a download's.
            (Server::Kimi(_) | Server::Glm(_), Operation::LargeUpload | Operation::Stream) => return None,
            (Server::Kimi(_) | Server::Glm(_), Operation::SmallUpload) => ("POST", "/files".into()),
            (Server::Kimi(_) | Server::Glm(_), Operation::Download) => ("GET", format!("/files/{key}/content")),
            (Server::Kimi(_), Operation::Stat) => ("GET", format!("/files/{key}")),
            // GLM has no call for one file: stat finds it in its purpose's listing.
            (Server::Glm(_), Operation::Stat) => ("GET", "/files?".into()),
            (Server::Kimi(_), Operation::List) => ("GET", "/v1/files".into()),
            (Server::Glm(_), Operation::List) => ("GET", "/files?".into()),
            (Server::Kimi(_) | Server::Glm(_), Operation::Delete) => ("DELETE", format!("/files/{key}")),
        })
    }

    /// The keys under the prefix (every file id, for Kimi and GLM), as the
    /// server itself lists them.
    async fn stored_keys(&self) -> BTreeSet<String> {
        match self {
            Server::S3(server) => {
                server.list_keys(BUCKET, PREFIX).await.into_iter().filter(|key| key.starts_with(PREFIX)).collect()
            }
            Server::Supabase(fake) => fake.keys(BUCKET).into_iter().filter(|key| key.starts_with(PREFIX)).collect(),
            Server::Kimi(fake) => fake.files().into_iter().map(|file| file.id).collect(),
            Server::Glm(fake) => fake.files().into_iter().map(|file| file.id).collect(),
        }
    }

    /// Uploads begun and never finished, if the server keeps any in view.
    async fn pending_uploads(&self) -> Option<String> {
        match self {
            Server::S3(server) => Some(server.pending_uploads(BUCKET).await).filter(|p| p.contains("<Upload>")),
            _ => None,
        }
    }

    fn large_size(&self) -> usize {
        match self {
            // Three parts of 5 MiB (the least S3 accepts), the last short.
            Server::S3(_) => 11 * MIB,
            // Two TUS chunks (6 MiB each but the last) past the 6 MiB threshold.
            _ => 7 * MIB,
        }
    }

    /// What the provider's derived content of `original` is.
    fn derived(&self, original: &[u8]) -> Vec<u8> {
        match self {
            Server::Kimi(_) => kimi_fake::extracted_text(original).into_bytes(),
            _ => original.to_vec(),
        }
    }
}

fn to(provider: &str) -> UploadOptions {
    UploadOptions { provider: Some(provider.into()), ..UploadOptions::default() }
}

/// Content unique to one cell, so that every cell has keys of its own.
fn content(cell: usize, size: usize) -> Vec<u8> {
    let mut bytes = pattern(size);
    bytes[..8].copy_from_slice(&(cell as u64).to_le_bytes());
    bytes
}

/// Text unique to one cell, for providers that answer with extracted text:
/// letters only, so that the text they give back is as long as the file.
fn text(cell: usize, size: usize) -> Vec<u8> {
    let mut bytes = format!("cell {cell}\n").into_bytes();
    bytes.extend((0..size - bytes.len()).map(|i| b'a' + (i % 26) as u8));
    bytes
}

/// How a cell that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Ok,
    /// Derived content arrived altered, and Wharf said it was unverified:
    /// the provider gives no digest that could catch it.
    Unverifiable,
}

/// How one cell ended.
struct Outcome {
    /// The verdict, or the error; `None` where the provider has no such operation.
    result: Option<Result<Verdict, String>>,
    elapsed: Duration,
}

/// Runs one operation with `fault` scripted on the request that carries it.
async fn run_cell(
    gateway: &Caller,
    scratch: &Scratch,
    (server, proxy): (&Server, &FaultProxy),
    cell: usize,
    operation: Operation,
    fault: Fault,
) -> Result<Verdict, String> {
    let provider = server.provider();
    let on = |key: &str| {
        let (method, target) = server.faulted(operation, key).expect("the operation exists at this provider");
        proxy.once(method, &target, fault);
    };
    let small = if server.derived_only() { text(cell, 8 * 1024) } else { content(cell, 8 * 1024) };
    let key_of = |bytes: &[u8]| format!("{PREFIX}{}", common::sha256_hex(bytes));
    let error = |e: wharf::gateway::GatewayError| e.to_string();
    // `.csv`: a type every provider here takes for its default purpose.
    let upload = |name: &str, bytes: &[u8]| {
        let path = scratch.write(&format!("{name}-{cell}.csv"), bytes);
        async move { gateway.upload(Source::Path(path), &to(provider)).await.map_err(error) }
    };
    match operation {
        Operation::SmallUpload => {
            on(&key_of(&small));
            upload("small", &small).await?;
        }
        Operation::LargeUpload => {
            let large = content(cell, server.large_size());
            on(&key_of(&large));
            upload("large", &large).await?;
        }
        Operation::Download => {
            let up = upload("down", &small).await?;
            on(&up.remote_id);
            let destination = scratch.work().join(format!("back-{cell}.csv"));
            let result = if server.derived_only() {
                gateway.download_derived(&up.id, Some(&destination)).await
            } else {
                gateway.download(&up.id, Some(&destination), Some(provider)).await
            };
            match result {
                Ok(downloaded) => {
                    let back = std::fs::read(&destination).map_err(|e| e.to_string())?;
                    let expected = if server.derived_only() { server.derived(&small) } else { small.clone() };
                    if back != expected {
                        if !downloaded.verified && fault == Fault::FlippedBit {
                            return Ok(Verdict::Unverifiable);
                        }
                        return Err(format!(
                            "downloaded bytes differ ({} bytes, verified: {})",
                            back.len(),
                            downloaded.verified
                        ));
                    }
                }
                Err(e) if destination.exists() => return Err(format!("failed ({e}) but left {destination:?}")),
                Err(e) => return Err(e.to_string()),
            }
        }
        Operation::Stream => {
            let up = upload("stream", &small).await?;
            on(&up.remote_id);
            let mut content = gateway.stream_content(&up.id, false, None, "an HTTP client").await.map_err(error)?;
            let mut back = Vec::new();
            while let Some(chunk) = content.stream.next().await {
                back.extend_from_slice(
                    &chunk.map_err(|e| format!("the stream failed after {} bytes: {e}", back.len()))?,
                );
            }
            if back != small {
                return Err(format!("streamed bytes differ ({} bytes)", back.len()));
            }
        }
        Operation::Stat => {
            let up = upload("stat", &small).await?;
            on(&up.remote_id);
            let info = gateway.info(&up.id).await.map_err(error)?;
            match (info.remote, info.remote_error) {
                (Some(remote), _) if remote.size == Some(small.len() as u64) => {}
                (Some(remote), _) => return Err(format!("stat answered size {:?}", remote.size)),
                (None, error) => return Err(error.unwrap_or_else(|| "no stat".into())),
            }
        }
        Operation::List => {
            let up = upload("list", &small).await?;
            on(&up.remote_id);
            let listed = gateway.list_remote(Some(provider)).await.map_err(error)?;
            if !listed.iter().any(|item| item.remote_id == up.remote_id) {
                return Err(format!("the listing of {} objects lacks the one just stored", listed.len()));
            }
        }
        Operation::Delete => {
            let up = upload("delete", &small).await?;
            on(&up.remote_id);
            gateway.remove(&up.id, false).await.map_err(error)?;
        }
    }
    Ok(Verdict::Ok)
}

/// Files in the sandbox that are not what a test wrote or a download completed.
fn partial_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with('.') || name.contains("wharf-partial"))
        .collect()
}

/// The catalog's records at the provider and the server's objects under
/// the prefix must name the same keys, and no upload may be left pending.
async fn check_consistency(gateway: &Caller, server: &Server) -> Result<(), String> {
    let recorded: BTreeSet<String> =
        records(gateway, Some(server.provider())).await.into_iter().map(|r| r.remote_id).collect();
    let stored = server.stored_keys().await;
    if recorded != stored {
        let orphans: Vec<_> = stored.difference(&recorded).collect();
        let missing: Vec<_> = recorded.difference(&stored).collect();
        return Err(format!("objects without records: {orphans:?}; records without objects: {missing:?}"));
    }
    if let Some(pending) = server.pending_uploads().await {
        return Err(format!("uploads left pending: {pending}"));
    }
    Ok(())
}

fn print_table(rows: &[(String, Vec<(Fault, Outcome)>)]) {
    let width = 12;
    let mut out = format!("\n{:<32}", "provider: operation \\ fault");
    for fault in Fault::ALL {
        out.push_str(&format!("| {:<width$}", fault.label()));
    }
    out.push('\n');
    out.push_str(&"-".repeat(32 + Fault::ALL.len() * (width + 2)));
    out.push('\n');
    for (row, cells) in rows {
        out.push_str(&format!("{row:<32}"));
        for (_, outcome) in cells {
            let text = match &outcome.result {
                None => "n/a".to_string(),
                Some(result) => {
                    let verdict = match result {
                        Ok(Verdict::Ok) => "ok",
                        Ok(Verdict::Unverifiable) => "unverif",
                        Err(_) => "ERROR",
                    };
                    format!("{verdict} {:.1}s", outcome.elapsed.as_secs_f64())
                }
            };
            out.push_str(&format!("| {text:<width$}"));
        }
        out.push('\n');
    }
    println!("{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_survives_every_single_fault() {
    // SAFETY: set before anything reads the environment, to constant values.
    unsafe {
        std::env::set_var(KEY_ID_ENV, ACCESS_KEY_ID);
        std::env::set_var(SECRET_ENV, SECRET_ACCESS_KEY);
        std::env::set_var(SUPABASE_KEY_ENV, SUPABASE_KEY);
        std::env::set_var(KIMI_KEY_ENV, KIMI_KEY);
        std::env::set_var(GLM_KEY_ENV, glm_fake::KEY);
    }
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    let supabase = FakeSupabase::start(SUPABASE_KEY, &[(BUCKET, BucketLimits::default())]).await;
    let kimi = FakeKimi::start(KIMI_KEY).await;
    let servers = [Server::S3(s3), Server::Supabase(supabase), Server::Kimi(kimi), Server::Glm(FakeGlm::start())];
    let proxies: Vec<FaultProxy> = servers.iter().map(|server| FaultProxy::start(&server.upstream())).collect();
    let scratch = Scratch::new();
    let entries: String = servers.iter().zip(&proxies).map(|(server, proxy)| server.entry(proxy)).collect();
    let gateway = scratch.gateway(&entries).await;

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut cell = 0;
    let only = std::env::var("WHARF_FAULT_PROVIDERS").ok();
    let chosen = |server: &Server| only.as_deref().is_none_or(|list| list.split(',').any(|p| p == server.provider()));
    for (server, proxy) in servers.iter().zip(&proxies).filter(|(server, _)| chosen(server)) {
        for operation in Operation::ALL {
            let row = format!("{}: {}", server.provider(), operation.label());
            let mut cells = Vec::new();
            for fault in Fault::ALL {
                cell += 1;
                if server.faulted(operation, "").is_none() {
                    cells.push((fault, Outcome { result: None, elapsed: Duration::ZERO }));
                    continue;
                }
                proxy.reset();
                let started = Instant::now();
                let run = run_cell(&gateway, &scratch, (server, proxy), cell, operation, fault);
                let mut result = match tokio::time::timeout(CELL_LIMIT, run).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("still running after {CELL_LIMIT:?}")),
                };
                let elapsed = started.elapsed();
                let unused = proxy.unused();
                if result.is_ok() && !unused.is_empty() {
                    result = Err(format!("the fault was never injected: {unused:?}; exchanges: {:?}", proxy.log()));
                }
                let cut = matches!(fault, Fault::ResetMidBody | Fault::ShortBody | Fault::NeverEnds);
                let ranged = !server.derived_only();
                if result.is_ok() && matches!(operation, Operation::Download | Operation::Stream) && cut && ranged {
                    let resumed = proxy.log().iter().any(|exchange| exchange.contains("range=bytes="));
                    if !resumed {
                        result = Err(format!("a cut download did not resume with a ranged read: {:?}", proxy.log()));
                    }
                }
                let leftovers = partial_files(&scratch.work());
                if !leftovers.is_empty() {
                    result = Err(format!("partial files left in the sandbox: {leftovers:?}"));
                }
                if let Err(e) = check_consistency(&gateway, server).await {
                    result = Err(e);
                }
                if let Err(e) = &result {
                    failures.push(format!("{row} × {}: {e}\n    exchanges: {:?}", fault.label(), proxy.log()));
                }
                cells.push((fault, Outcome { result: Some(result), elapsed }));
            }
            rows.push((row, cells));
        }
    }
    print_table(&rows);
    assert!(failures.is_empty(), "{} cells failed:\n{}", failures.len(), failures.join("\n"));
}

/// The Supabase fake behind a fault proxy, and a gateway with it as
/// `supabase` plus the config in `extra`.
async fn supabase_behind_proxy(extra: &str) -> (Server, FaultProxy, Scratch, Caller) {
    // SAFETY: set before anything reads the environment, to a constant value.
    unsafe { std::env::set_var(SUPABASE_KEY_ENV, SUPABASE_KEY) };
    let supabase = Server::Supabase(FakeSupabase::start(SUPABASE_KEY, &[(BUCKET, BucketLimits::default())]).await);
    let proxy = FaultProxy::start(&supabase.upstream());
    let scratch = Scratch::new();
    let gateway = scratch.gateway(&format!("{}{extra}", supabase.entry(&proxy))).await;
    (supabase, proxy, scratch, gateway)
}

/// A stream to an HTTP client cannot take back what it sent: when bytes it
/// already sent fail the check, even after a second read, it ends with an
/// error, never with a complete-looking file. A flip in the last MiB, held
/// back until the whole is verified, is read again and served whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_stream_never_ends_as_a_complete_file() {
    let (_supabase, proxy, scratch, gateway) = supabase_behind_proxy("").await;
    let read_all = |id: String| {
        let gateway = gateway.clone();
        async move {
            let mut content = gateway.stream_content(&id, false, None, "an HTTP client").await.unwrap();
            let mut received = Vec::new();
            while let Some(chunk) = content.stream.next().await {
                match chunk {
                    Ok(chunk) => received.extend_from_slice(&chunk),
                    Err(e) => return (received, Some(e.to_string())),
                }
            }
            (received, None)
        }
    };

    // 3 MiB flipped in its middle: that byte is sent before the end is read.
    let large = content(1, 3 * MIB);
    let up = gateway.upload(Source::Path(scratch.write("large.bin", &large)), &to("supabase")).await.unwrap();
    proxy.once("GET", &up.remote_id, Fault::FlippedBit);
    let (received, error) = read_all(up.id.clone()).await;
    let error = error.expect("the stream ends with an error");
    assert!(error.contains("the bytes already sent differ"), "{error}");
    assert!(received.len() < large.len(), "{} of {} bytes arrived", received.len(), large.len());
    assert!(proxy.unused().is_empty());

    // 512 KiB flipped in its middle: all of it is held back, so it is read again.
    proxy.reset();
    let small = content(2, MIB / 2);
    let up = gateway.upload(Source::Path(scratch.write("small.bin", &small)), &to("supabase")).await.unwrap();
    proxy.once("GET", &up.remote_id, Fault::FlippedBit);
    let (received, error) = read_all(up.id.clone()).await;
    assert_eq!(error, None);
    assert!(received == small, "the bytes served whole after a second read");
    let reads = proxy.log().iter().filter(|exchange| exchange.starts_with("GET")).count();
    assert_eq!(reads, 2, "{:?}", proxy.log());
}

/// A file of at least `[host.downloads] parallel_from` is read as ranged
/// reads at once; a range cut mid-way carries on from where it stopped, and
/// the file arrives whole and verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_download_is_read_in_parallel_ranges() {
    let downloads = "\n[host.downloads]\nstreams = 3\nparallel_from = 16777216\n";
    let (_supabase, proxy, scratch, gateway) = supabase_behind_proxy(downloads).await;

    let large = content(1, 20 * MIB);
    let up = gateway.upload(Source::Path(scratch.write("large.bin", &large)), &to("supabase")).await.unwrap();
    proxy.reset();
    proxy.once("GET", &up.remote_id, Fault::ResetMidBody);
    let destination = scratch.work().join("back.bin");
    let down = gateway.download(&up.id, Some(&destination), Some("supabase")).await.unwrap();
    assert!(down.verified);
    assert!(std::fs::read(&destination).unwrap() == large, "the file arrives whole");
    let ranges: Vec<_> = proxy.log().into_iter().filter(|exchange| exchange.starts_with("GET")).collect();
    // 20 MiB in ranges of 8 MiB: 3 reads, and one more for the rest of the range cut.
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    for (start, end) in [(0, 8 * MIB - 1), (8 * MIB, 16 * MIB - 1), (16 * MIB, 20 * MIB - 1)] {
        let asked = format!("range=bytes={start}-{end} ");
        assert!(ranges.iter().any(|exchange| exchange.contains(&asked)), "{asked} in {ranges:?}");
    }
    assert!(partial_files(&scratch.work()).is_empty());

    // Below the threshold: one stream.
    let small = content(2, 10 * MIB);
    let up = gateway.upload(Source::Path(scratch.write("small.bin", &small)), &to("supabase")).await.unwrap();
    proxy.reset();
    gateway.download(&up.id, Some(&scratch.work().join("small-back.bin")), Some("supabase")).await.unwrap();
    let reads: Vec<_> = proxy.log().into_iter().filter(|exchange| exchange.starts_with("GET")).collect();
    assert!(reads.len() == 1 && !reads[0].contains("range="), "{reads:?}");
}
