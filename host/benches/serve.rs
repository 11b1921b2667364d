//! `wharf serve` (the release `wharf` binary) over loopback HTTP:
//!
//! 1. one 1 GiB file through a download link, for a file path and for a stored
//!    file (the path that verifies SHA-256 while streaming), against nginx
//!    (`sendfile on`) serving the same file on the same machine, with the
//!    same client (reqwest, reading the stream and discarding it);
//! 2. small files: generate-a-link + download pairs per second, 32 concurrent
//!    clients, each pair a fresh single-use link to a 4 KiB file;
//! 3. the server's peak RSS while 16 clients download the 1 GiB file at once.
//!
//! `scripts/bench --bench serve` (it installs Debian's nginx when missing), or
//! `cargo bench --bench serve` with `nginx` on PATH or at /usr/sbin/nginx
//! (WHARF_BENCH_NGINX overrides). Run as root, nginx serves as root; otherwise
//! as the running user. WHARF_BENCH_MIB sets the big file's size (default
//! 1024), WHARF_BENCH_RUNS the rounds of part 1 (default 3; the servers take
//! turns within a round, best and median reported).
//!
//! Client and servers share the machine's cores and the file sits in the page
//! cache: this compares servers on loopback, not disks or networks.

mod support;

use std::io::{BufRead as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use support::env_u64;

const MIB: u64 = 1 << 20;
/// Part 2: concurrent clients and pairs per client.
const SMALL_CLIENTS: usize = 32;
const SMALL_PAIRS: usize = 100;
const SMALL_SIZE: usize = 4096;
/// Part 3: concurrent downloads of the big file.
const RSS_CLIENTS: usize = 16;
/// Targets from the design.
const TARGET_RATIO: f64 = 0.9;
const TARGET_RSS_MIB: u64 = 128;

/// The content of the big file: a 1 MiB block whose first 8 bytes are the
/// block's index, so that a misplaced block is noticed.
fn base_block() -> Vec<u8> {
    (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect()
}

fn write_big(path: &Path, mib: u64, base: &[u8]) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut block = base.to_vec();
    for i in 0..mib {
        block[..8].copy_from_slice(&i.to_le_bytes());
        file.write_all(&block)?;
    }
    file.into_inner()?.sync_all()?;
    Ok(())
}

/// Whether `chunk`, found at `offset` of the big file, holds what it should.
fn chunk_matches(base: &[u8], mut offset: u64, mut chunk: &[u8]) -> bool {
    while !chunk.is_empty() {
        let index = offset / MIB;
        let within = (offset % MIB) as usize;
        let n = chunk.len().min(MIB as usize - within);
        let (here, rest) = chunk.split_at(n);
        let header = index.to_le_bytes();
        for (k, byte) in here.iter().enumerate().take(8usize.saturating_sub(within)) {
            if *byte != header[within + k] {
                return false;
            }
        }
        let skip = 8usize.saturating_sub(within).min(n);
        if here[skip..] != base[within + skip..within + n] {
            return false;
        }
        offset += n as u64;
        chunk = rest;
    }
    true
}

fn small_content(i: usize) -> Vec<u8> {
    (0..SMALL_SIZE).map(|k| (k.wrapping_mul(31).wrapping_add(i * 7)) as u8).collect()
}

fn mib_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / MIB as f64 / took.as_secs_f64()
}

/// A child process that is killed if the bench stops early.
struct Guard {
    name: &'static str,
    child: Option<Child>,
}

impl Guard {
    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!("{} exited early: {status}", self.name);
        }
        Ok(())
    }

    /// Sends `signal` and waits up to `grace` for the exit; kills it after that.
    fn stop(&mut self, signal: i32, grace: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                bail!("{} did not exit within {grace:?} of signal {signal}; killed", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `/proc/PID/status` figure in KiB (VmRSS, VmHWM).
fn proc_kib(pid: i32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// CPU time (user + system) `pid` has used so far, in seconds.
fn cpu_secs(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After "pid (comm) ": state, ppid, …; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rfind(')').map_or("", |i| &stat[i + 1..]).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    (ticks(11) + ticks(12)) as f64 / hz as f64
}

/// Samples VmRSS of `pid` every 50 ms until stopped; returns the peak in KiB.
fn sample_rss(pid: i32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(proc_kib(pid, "VmRSS").unwrap_or(0));
            std::thread::sleep(Duration::from_millis(50));
        }
        peak.max(proc_kib(pid, "VmRSS").unwrap_or(0))
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(guard: &mut Guard, addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        guard.check_running()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{} is not listening on {addr} after {within:?}", guard.name);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn nginx_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("WHARF_BENCH_NGINX") {
        return Ok(path.into());
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).chain([PathBuf::from("/usr/sbin")])
    {
        let candidate = dir.join("nginx");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("nginx is missing; run scripts/bench (it installs Debian's nginx) or set WHARF_BENCH_NGINX")
}

/// nginx in the foreground, one process, serving `root` on a free port.
fn start_nginx(dir: &Path, root: &Path) -> anyhow::Result<(Guard, String)> {
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let d = dir.display();
    // As root, the `user` directive keeps the worker able to read the
    // (0700) temporary directory; as anyone else nginx ignores it with a warning.
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 { "user root root;" } else { "" };
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
{user}
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"#,
        root = root.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let nginx = nginx_binary()?;
    let child = Command::new(&nginx)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", nginx.display()))?;
    let mut guard = Guard { name: "nginx", child: Some(child) };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_port(&mut guard, addr, Duration::from_secs(10)).with_context(|| {
        format!(
            "nginx stderr: {}; error.log: {}",
            std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        )
    })?;
    Ok((guard, format!("http://{addr}")))
}

/// `wharf serve` with the bench config; returns it and its base URL, taken
/// from the line it prints on start.
fn start_wharf(work: &Path, log: &Path) -> anyhow::Result<(Guard, String)> {
    let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        // In the sandbox root, so that the links' relative file paths name
        // the same files whether the server resolves them against its working
        // directory or against the first root.
        .current_dir(work.join("files"))
        .arg("--config")
        .arg(work.join("wharf.toml"))
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log)?)
        .spawn()
        .context("starting wharf serve")?;
    let mut guard = Guard { name: "wharf serve", child: Some(child) };
    let stdout = guard.child.as_mut().and_then(|c| c.stdout.take()).context("piped stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads the first line, then keeps draining stdout so the server never blocks on it.
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(Some(Ok(line))) => line,
        Ok(other) => {
            guard.check_running()?;
            bail!("wharf serve printed no start line ({other:?}); its stderr is in {}", log.display())
        }
        Err(_) => bail!("wharf serve printed nothing within 180 s; its stderr is in {}", log.display()),
    };
    let base = line
        .trim()
        .strip_prefix("wharf serve: listening on ")
        .with_context(|| format!("unexpected start line {line:?}"))?
        .trim_end_matches('/')
        .to_string();
    ensure!(base.starts_with("http://"), "unexpected start line {line:?}");
    Ok((guard, base))
}

/// Renders a response that was not what the bench expected.
async fn unexpected(what: &str, expected: u16, resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    anyhow::anyhow!("{what}: expected {expected}, got {status}: {}", body.chars().take(500).collect::<String>())
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value, expected: u16) -> anyhow::Result<Value> {
    let resp = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body)?)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    if resp.status().as_u16() != expected {
        return Err(unexpected(&format!("POST {url} {body}"), expected, resp).await);
    }
    let bytes = resp.bytes().await?;
    serde_json::from_slice(&bytes).with_context(|| format!("POST {url}: not JSON: {}", String::from_utf8_lossy(&bytes)))
}

/// Generates a link; returns the URL to download from.
async fn generate(client: &reqwest::Client, base: &str, request: Value) -> anyhow::Result<String> {
    let link = post_json(client, &format!("{base}/api/download/generate"), &request, 200).await?;
    let token = link["token"].as_str().with_context(|| format!("no token in {link}"))?;
    let url = link["download_url"].as_str().with_context(|| format!("no download_url in {link}"))?;
    let expected = format!("{base}/api/download/{token}");
    if url != expected {
        // Say so, then measure the link as served at the listening address.
        eprintln!("note: download_url {url:?} is not {expected:?} (the listening address); using the latter");
        return Ok(expected);
    }
    Ok(url.to_string())
}

/// Downloads `url`, checking every byte against the big file's pattern;
/// returns the time from request to last byte.
async fn download_big(client: &reqwest::Client, url: &str, size: u64, base: &[u8]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut resp = client.get(url).send().await.with_context(|| format!("GET {url}"))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(unexpected(&format!("GET {url}"), 200, resp).await);
    }
    if let Some(length) = resp.content_length() {
        ensure!(length == size, "GET {url}: Content-Length {length}, the file is {size} bytes");
    }
    let mut offset = 0u64;
    while let Some(chunk) = resp.chunk().await.with_context(|| format!("GET {url}: body failed at byte {offset}"))? {
        ensure!(offset + chunk.len() as u64 <= size, "GET {url}: more than {size} bytes");
        ensure!(chunk_matches(base, offset, &chunk), "GET {url}: wrong bytes near offset {offset}");
        offset += chunk.len() as u64;
    }
    let took = started.elapsed();
    ensure!(offset == size, "GET {url}: {offset} bytes, the file is {size}");
    Ok(took)
}

/// Uploads the big file as a raw body; returns its file id and the time taken.
async fn upload_big(
    client: &reqwest::Client,
    base: &str,
    path: &Path,
    size: u64,
) -> anyhow::Result<(String, Duration)> {
    let url = format!("{base}/api/files?name=big.bin");
    let file = tokio::fs::File::open(path).await?;
    let started = Instant::now();
    let resp = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    if resp.status().as_u16() != 201 {
        return Err(unexpected(&format!("POST {url} (raw body, {size} bytes)"), 201, resp).await);
    }
    let bytes = resp.bytes().await?;
    let took = started.elapsed();
    let answer: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("POST {url}: not JSON: {}", String::from_utf8_lossy(&bytes)))?;
    let uploaded = &answer["files"][0];
    ensure!(uploaded["size"].as_u64() == Some(size), "POST {url}: unexpected answer {answer}");
    let id = uploaded["id"].as_str().with_context(|| format!("no files[0].id in {answer}"))?;
    Ok((id.to_string(), took))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Part 3: `RSS_CLIENTS` concurrent downloads of one link with a fresh
/// server; returns (VmHWM KiB, sampled peak VmRSS KiB, aggregate time).
async fn concurrent_rss(
    kind: &str,
    client: &reqwest::Client,
    work: &Path,
    log: &Path,
    request: Value,
    size: u64,
    base_block: &Arc<Vec<u8>>,
) -> anyhow::Result<(u64, u64, Duration)> {
    let (mut server, base) = start_wharf(work, log)?;
    wait_ready(client, &base).await?;
    let url = generate(client, &base, request).await?;
    let pid = server.pid();
    let idle = proc_kib(pid, "VmHWM").unwrap_or(0);
    println!("  {kind}: server VmHWM {} MiB before the downloads", idle / 1024);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(pid, stop.clone());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..RSS_CLIENTS {
        let (client, url, block) = (client.clone(), url.clone(), base_block.clone());
        tasks.spawn(async move { download_big(&client, &url, size, &block).await });
    }
    let mut failure = None;
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result.map_err(anyhow::Error::from).and_then(|r| r) {
            failure.get_or_insert(e);
        }
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sampled = sampler.join().expect("sampler thread");
    let hwm = proc_kib(pid, "VmHWM").unwrap_or(0);
    server.check_running()?;
    stop_wharf(&mut server)?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok((hwm, sampled, took))
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = match client.get(format!("{base}/readyz")).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => format!("{} {}", resp.status(), resp.text().await.unwrap_or_default()),
            Err(e) => e.to_string(),
        };
        ensure!(Instant::now() < deadline, "GET {base}/readyz: not ready after 60 s: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM with nothing in flight: the server should exit 0 promptly.
fn stop_wharf(server: &mut Guard) -> anyhow::Result<()> {
    let status = server.stop(libc::SIGTERM, Duration::from_secs(15))?;
    if !status.success() {
        eprintln!("note: wharf serve exited with {status} after SIGTERM (expected 0)");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mib = env_u64("WHARF_BENCH_MIB", 1024).max(1);
    let runs = env_u64("WHARF_BENCH_RUNS", 3).max(1) as usize;
    let size = mib * MIB;
    nginx_binary()?;

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let work = dir.path().to_path_buf();
    let files = work.join("files");
    std::fs::create_dir_all(files.join("small"))?;
    let log = work.join("wharf-serve.log");
    let limit = (2 * size).max(2 << 30);
    std::fs::write(
        work.join("wharf.toml"),
        format!(
            r#"[host]
data_dir = "data"
sandbox_roots = ["files"]
default_provider = "local"
cache = "local"

[providers.local]
plugin = "local"
storage_dir = "data/local"

[server]
listen = "127.0.0.1:0"
auth = "none"
shutdown_grace_secs = 5
max_upload_bytes = {limit}

[server.links]
max_size = {limit}
rate_per_minute = 1000000
"#
        ),
    )?;

    let block = Arc::new(base_block());
    let big = files.join("big.bin");
    let started = Instant::now();
    write_big(&big, mib, &block)?;
    println!("wrote {mib} MiB in {:.1} s", started.elapsed().as_secs_f64());
    for i in 0..SMALL_CLIENTS {
        std::fs::write(files.join(format!("small/s{i:02}.bin")), small_content(i))?;
    }
    // Warm the page cache.
    std::io::copy(&mut std::fs::File::open(&big)?, &mut std::io::sink())?;

    let client = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()?;

    // Part 1: one big file, nginx and both kinds of Wharf link taking turns.
    let (mut nginx, nginx_base) = start_nginx(&work.join("nginx"), &files)?;
    let (mut wharf, base) = start_wharf(&work, &log)?;
    wait_ready(&client, &base).await?;
    println!("wharf serve at {base}, nginx at {nginx_base}");

    let started = Instant::now();
    let path_url =
        generate(&client, &base, json!({"file_path": "big.bin", "max_downloads": 100, "expiry_minutes": 60})).await?;
    let generate_path = started.elapsed();
    let (id, upload) = upload_big(&client, &base, &big, size).await?;
    let stored_url =
        generate(&client, &base, json!({"file_id": id, "max_downloads": 100, "expiry_minutes": 60})).await?;
    let nginx_url = format!("{nginx_base}/big.bin");

    let kinds = ["nginx", "wharf file-path link", "wharf stored-file link"];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    // Server CPU seconds (user + system) per download.
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for round in 0..runs {
        for turn in 0..kinds.len() {
            // Rotate who goes first, so that no server always follows the same one.
            let k = (round + turn) % kinds.len();
            let url = [&nginx_url, &path_url, &stored_url][k];
            let pid = [nginx.pid(), wharf.pid(), wharf.pid()][k];
            let cpu_before = cpu_secs(pid);
            let took = download_big(&client, url, size, &block).await.with_context(|| kinds[k])?;
            let used = cpu_secs(pid) - cpu_before;
            println!(
                "  round {}: {:<24} {:>7.0} MiB/s  (server CPU {used:.2} s)",
                round + 1,
                kinds[k],
                mib_s(size, took)
            );
            times[k].push(took);
            cpu[k].push(used);
        }
    }
    wharf.check_running()?;
    let part1_hwm = proc_kib(wharf.pid(), "VmHWM").unwrap_or(0);

    // Part 2: small files, generate + download pairs.
    let small_cpu_before = cpu_secs(wharf.pid());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..SMALL_CLIENTS {
        let (client, base) = (client.clone(), base.clone());
        tasks.spawn(async move {
            let expected = small_content(i);
            let mut pairs = Vec::with_capacity(SMALL_PAIRS);
            for _ in 0..SMALL_PAIRS {
                let pair = Instant::now();
                let url =
                    generate(&client, &base, json!({"file_path": format!("small/s{i:02}.bin"), "max_downloads": 1}))
                        .await?;
                let resp = client.get(&url).send().await.with_context(|| format!("GET {url}"))?;
                if resp.status() != reqwest::StatusCode::OK {
                    return Err(unexpected(&format!("GET {url}"), 200, resp).await);
                }
                let body = resp.bytes().await?;
                ensure!(body[..] == expected[..], "GET {url}: {} bytes, not the 4 KiB file's content", body.len());
                pairs.push(pair.elapsed());
            }
            anyhow::Ok(pairs)
        });
    }
    let mut latencies = Vec::with_capacity(SMALL_CLIENTS * SMALL_PAIRS);
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result??);
    }
    let small_took = started.elapsed();
    let small_cpu = cpu_secs(wharf.pid()) - small_cpu_before;
    latencies.sort();
    wharf.check_running()?;
    let after_small_hwm = proc_kib(wharf.pid(), "VmHWM").unwrap_or(0);
    stop_wharf(&mut wharf)?;
    nginx.stop(libc::SIGQUIT, Duration::from_secs(10))?;

    // Part 3: peak RSS, a fresh server (same data) each time.
    println!("part 3: {RSS_CLIENTS} concurrent downloads of {mib} MiB");
    let (path_hwm, path_sampled, path_took) = concurrent_rss(
        "file-path link",
        &client,
        &work,
        &log,
        json!({"file_path": "big.bin", "max_downloads": 100, "expiry_minutes": 60}),
        size,
        &block,
    )
    .await?;
    let (stored_hwm, stored_sampled, stored_took) = concurrent_rss(
        "stored-file link",
        &client,
        &work,
        &log,
        json!({"file_id": id, "max_downloads": 100, "expiry_minutes": 60}),
        size,
        &block,
    )
    .await?;

    let best = |k: usize| *times[k].iter().min().expect("at least one run");
    let med = |k: usize| median(times[k].clone());
    println!();
    println!("wharf serve vs nginx: {mib} MiB over loopback HTTP/1.1, one client, best and median of {runs}");
    println!("(page cache warm; reqwest client reads and checks every byte)");
    println!("  {:<26} {:>10} {:>12} {:>9} {:>14}", "", "best MiB/s", "median MiB/s", "best s", "server CPU s");
    for (k, kind) in kinds.iter().enumerate() {
        let mut used = cpu[k].clone();
        used.sort_by(f64::total_cmp);
        println!(
            "  {kind:<26} {:>10.0} {:>12.0} {:>9.2} {:>14.2}",
            mib_s(size, best(k)),
            mib_s(size, med(k)),
            best(k).as_secs_f64(),
            used[used.len() / 2]
        );
    }
    println!("  (server CPU s: median user + system time of the serving process per download)");
    let ratio = |k: usize| best(0).as_secs_f64() / best(k).as_secs_f64();
    let mark = |ok: bool| if ok { "meets" } else { "MISSES" };
    println!(
        "  ratio wharf/nginx (best): file-path {:.2}, stored {:.2}  (target >= {TARGET_RATIO}: file-path {}, stored {})",
        ratio(1),
        ratio(2),
        mark(ratio(1) >= TARGET_RATIO),
        mark(ratio(2) >= TARGET_RATIO)
    );
    println!(
        "  ratio wharf/nginx (median): file-path {:.2}, stored {:.2}",
        med(0).as_secs_f64() / med(1).as_secs_f64(),
        med(0).as_secs_f64() / med(2).as_secs_f64()
    );
    println!(
        "  also: generating the file-path link (hashes the file) {:.2} s; POST /api/files raw upload {:.0} MiB/s ({:.2} s)",
        generate_path.as_secs_f64(),
        mib_s(size, upload),
        upload.as_secs_f64()
    );
    let pairs = latencies.len();
    println!(
        "small files: {SMALL_CLIENTS} clients x {SMALL_PAIRS} (generate + GET) pairs, 4 KiB single-use links: {:.0} pairs/s \
         ({pairs} in {:.2} s, server CPU {:.2} ms per pair; per pair p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms)",
        pairs as f64 / small_took.as_secs_f64(),
        small_took.as_secs_f64(),
        small_cpu * 1e3 / pairs as f64,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[pairs - 1].as_secs_f64() * 1e3
    );
    println!("peak RSS of wharf serve, {RSS_CLIENTS} concurrent downloads of {mib} MiB (fresh server each):");
    for (kind, hwm, sampled, took) in [
        ("file-path link", path_hwm, path_sampled, path_took),
        ("stored-file link", stored_hwm, stored_sampled, stored_took),
    ] {
        println!(
            "  {kind:<18} VmHWM {:>4} MiB (sampled VmRSS peak {:>4} MiB; target <= {TARGET_RSS_MIB} MiB: {}), aggregate {:.0} MiB/s",
            hwm / 1024,
            sampled / 1024,
            mark(hwm / 1024 <= TARGET_RSS_MIB),
            mib_s(size * RSS_CLIENTS as u64, took)
        );
    }
    println!(
        "  (first server: VmHWM {} MiB after part 1, which includes the {mib} MiB upload; {} MiB after part 2)",
        part1_hwm / 1024,
        after_small_hwm / 1024
    );
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    if !stderr.trim().is_empty() {
        let lines: Vec<&str> = stderr.lines().collect();
        println!("wharf serve stderr (last {} of {} lines):", lines.len().min(20), lines.len());
        for line in &lines[lines.len().saturating_sub(20)..] {
            println!("  {line}");
        }
    }
    Ok(())
}
