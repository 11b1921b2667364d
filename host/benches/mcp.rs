//! Wharf's MCP surface (the release `wharf` binary), measured from a raw
//! JSON-RPC client so that the figures are the server's, not a client SDK's:
//!
//! 1. tool-call round trips: `tools/call get_file_info` of a small stored file,
//!    one at a time, over stdio (`wharf mcp`, initialize at 2025-11-25, one
//!    JSON line each way on the child's stdin and stdout) and over streamable
//!    HTTP (`wharf serve`'s `/mcp`, loopback, one keep-alive connection;
//!    stateless requests at 2026-07-28, and rmcp's session mode at
//!    2025-11-25): median, p99 and mean over WHARF_BENCH_CALLS calls (default
//!    500) after 50 unmeasured ones;
//! 2. a WHARF_BENCH_MIB (default 100) MiB upload by path to the local provider:
//!    `upload_files` through MCP (stdio and HTTP, to servers already running)
//!    against `wharf upload` (a whole process: start, open the catalog, load
//!    the adapter, upload), WHARF_BENCH_RUNS rounds (default 3), each upload of
//!    new bytes (nothing is deduplicated); medians and the ratio MCP / CLI.
//!
//! `cargo bench --bench mcp` (or `scripts/bench --bench mcp`). Client and
//! server share the machine's cores and the files sit in the page cache.

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use sha2::Digest as _;
use support::env_u64;

const MIB: u64 = 1 << 20;
const WARMUP_CALLS: usize = 50;
const LEGACY: &str = "2025-11-25";
const MODERN: &str = "2026-07-28";

fn wharf() -> &'static str {
    env!("CARGO_BIN_EXE_wharf")
}

/// A child process that is killed when the bench ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---- stdio: raw JSON-RPC lines ----

struct StdioClient {
    _child: Guard,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl StdioClient {
    fn start(config: &Path, cwd: &Path, log: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(wharf())
            .arg("--config")
            .arg(config)
            .arg("mcp")
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log)?)
            .spawn()
            .context("starting wharf mcp")?;
        let stdin = child.stdin.take().context("piped stdin")?;
        let stdout = BufReader::with_capacity(1 << 16, child.stdout.take().context("piped stdout")?);
        let mut client = Self { _child: Guard(child), stdin, stdout, next_id: 1 };
        let init = client.request(
            "initialize",
            json!({"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "wharf-bench", "version": "0"}}),
        )?;
        ensure!(init["result"]["protocolVersion"].is_string(), "initialize over stdio: {init}");
        client.notify("notifications/initialized")?;
        Ok(client)
    }

    fn notify(&mut self, method: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{}", json!({"jsonrpc": "2.0", "method": method}))?;
        self.stdin.flush()?;
        Ok(())
    }

    /// Sends one request and reads lines until its response (skipping notifications).
    fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        line.push(b'\n');
        self.stdin.write_all(&line)?;
        self.stdin.flush()?;
        let mut reply = String::new();
        loop {
            reply.clear();
            ensure!(self.stdout.read_line(&mut reply)? > 0, "wharf mcp closed its stdout");
            let message: Value = serde_json::from_str(&reply).with_context(|| format!("not JSON: {reply:?}"))?;
            if message.get("id") == Some(&json!(id)) {
                return Ok(message);
            }
        }
    }

    fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        tool_result(self.request("tools/call", json!({"name": tool, "arguments": arguments}))?, tool)
    }
}

/// The `result` of a tools/call answer, or an error naming what went wrong.
fn tool_result(reply: Value, tool: &str) -> anyhow::Result<Value> {
    if let Some(error) = reply.get("error") {
        bail!("{tool}: JSON-RPC error {error}");
    }
    let result = reply.get("result").cloned().with_context(|| format!("{tool}: no result in {reply}"))?;
    ensure!(result["isError"] != json!(true), "{tool} failed: {result}");
    Ok(result)
}

// ---- HTTP: raw JSON-RPC POSTs ----

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// 2026-07-28: every request stands alone, with its protocol in `_meta` and headers.
    Stateless,
    /// 2025-11-25: initialize, then `Mcp-Session-Id` on every request.
    Session,
}

struct Http {
    client: reqwest::Client,
    url: String,
    mode: Mode,
    session: Option<String>,
    next_id: u64,
}

impl Http {
    async fn start(client: &reqwest::Client, base: &str, mode: Mode) -> anyhow::Result<Self> {
        let mut http = Self { client: client.clone(), url: format!("{base}/mcp"), mode, session: None, next_id: 1 };
        if mode == Mode::Session {
            let (reply, headers) = http
                .post(
                    "initialize",
                    json!({"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "wharf-bench", "version": "0"}}),
                    true,
                )
                .await?;
            ensure!(reply["result"]["protocolVersion"] == LEGACY, "initialize over HTTP: {reply}");
            let session = headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .context("initialize at 2025-11-25 gave no Mcp-Session-Id")?;
            http.session = Some(session.to_string());
            let resp = http
                .request_builder("notifications/initialized", None)
                .json_body(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .send()
                .await?;
            ensure!(resp.status().is_success(), "notifications/initialized: HTTP {}", resp.status());
        }
        Ok(http)
    }

    fn request_builder(&self, method: &str, name: Option<&str>) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        match self.mode {
            Mode::Stateless => {
                builder = builder.header("MCP-Protocol-Version", MODERN).header("Mcp-Method", method);
                if let Some(name) = name {
                    builder = builder.header("Mcp-Name", name);
                }
            }
            Mode::Session => {
                builder = builder.header("MCP-Protocol-Version", LEGACY);
                if let Some(session) = &self.session {
                    builder = builder.header("Mcp-Session-Id", session);
                }
            }
        }
        builder
    }

    async fn post(
        &mut self,
        method: &str,
        mut params: Value,
        initialize: bool,
    ) -> anyhow::Result<(Value, reqwest::header::HeaderMap)> {
        let id = self.next_id;
        self.next_id += 1;
        if self.mode == Mode::Stateless && !initialize {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "wharf-bench", "version": "0"},
            });
        }
        let name = params.get("name").and_then(Value::as_str).map(str::to_string);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let resp = self.request_builder(method, name.as_deref()).json_body(&body).send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("{method}: HTTP {status}: {text}");
        }
        Ok((read_response(resp, id).await?, headers))
    }

    async fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        let (reply, _) = self.post("tools/call", json!({"name": tool, "arguments": arguments}), false).await?;
        tool_result(reply, tool)
    }
}

trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.body(serde_json::to_vec(body).expect("JSON serializes"))
    }
}

/// The JSON-RPC response with `id`, from a JSON body or an event stream
/// (read only as far as that response).
async fn read_response(mut resp: reqwest::Response, id: u64) -> anyhow::Result<Value> {
    let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if kind.starts_with("application/json") {
        return Ok(serde_json::from_slice(&resp.bytes().await?)?);
    }
    ensure!(kind.starts_with("text/event-stream"), "unexpected Content-Type {kind:?}");
    let mut buffer = String::new();
    while let Some(chunk) = resp.chunk().await? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|l| l.strip_prefix(' ').unwrap_or(l))
                .collect();
            let payload = data.join("\n");
            if payload.trim().is_empty() {
                continue; // an event without data (the priming event of a resumable stream)
            }
            let message: Value = serde_json::from_str(&payload)?;
            if message.get("id") == Some(&json!(id)) {
                return Ok(message);
            }
        }
    }
    bail!("the event stream ended without the response to id {id}")
}

// ---- figures ----

struct Latencies {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

fn latencies(mut samples: Vec<Duration>) -> Latencies {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    Latencies { median: at(0.5), p99: at(0.99), mean }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// A file of `mib` MiB that no other run has written; returns its SHA-256.
fn write_unique(path: &Path, mib: u64, seed: u64) -> anyhow::Result<String> {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut hasher = sha2::Sha256::new();
    let mut block: Vec<u8> = (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let nonce = seed ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    for i in 0..mib {
        block[..8].copy_from_slice(&i.to_le_bytes());
        block[8..16].copy_from_slice(&nonce.to_le_bytes());
        hasher.update(&block);
        file.write_all(&block)?;
    }
    file.into_inner()?.sync_all()?;
    let digest: [u8; 32] = hasher.finalize().into();
    Ok(hex::encode(digest))
}

fn start_serve(config: &Path, cwd: &Path, log: &Path) -> anyhow::Result<(Guard, String)> {
    let mut child = Command::new(wharf())
        .current_dir(cwd)
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log)?)
        .spawn()
        .context("starting wharf serve")?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let guard = Guard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(Some(Ok(line))) => line,
        other => bail!("wharf serve printed no start line ({other:?}); its stderr is in {}", log.display()),
    };
    let base = line
        .trim()
        .strip_prefix("wharf serve: listening on ")
        .with_context(|| format!("unexpected start line {line:?}"))?
        .trim_end_matches('/')
        .to_string();
    Ok((guard, base))
}

fn uploaded(result: &Value, sha: &str, what: &str) -> anyhow::Result<()> {
    let file = &result["structuredContent"]["files"][0]["file"];
    ensure!(file["sha256"] == sha, "{what}: uploaded {file}, expected sha256 {sha}");
    ensure!(file["deduplicated"] == false, "{what}: deduplicated; the bench needs new bytes");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let calls = env_u64("WHARF_BENCH_CALLS", 500).max(1) as usize;
    let mib = env_u64("WHARF_BENCH_MIB", 100).max(1);
    let runs = env_u64("WHARF_BENCH_RUNS", 3).max(1) as usize;

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let work = dir.path().to_path_buf();
    let files = work.join("files");
    std::fs::create_dir_all(&files)?;
    let config = work.join("wharf.toml");
    let log = work.join("wharf.log");
    std::fs::write(
        &config,
        format!(
            r#"[host]
data_dir = "{data}"
sandbox_roots = ["{files}"]
default_provider = "local"

[providers.local]
plugin = "local"
storage_dir = "{data}/local"

[server]
auth = "none"
shutdown_grace_secs = 5
max_upload_bytes = {limit}
"#,
            data = work.join("data").display(),
            files = files.display(),
            limit = 4 * mib * MIB,
        ),
    )?;
    // Compile the adapter once, into the cache every process below shares.
    let status = Command::new(wharf()).arg("--config").arg(&config).arg("plugins").stdout(Stdio::null()).status()?;
    ensure!(status.success(), "wharf plugins failed");

    let (_serve, base) = start_serve(&config, &files, &log)?;
    let mut stdio = StdioClient::start(&config, &files, &log)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()?;

    // Part 1: round trips of get_file_info.
    let small = files.join("small.txt");
    std::fs::write(&small, b"a small file for get_file_info\n")?;
    let result = stdio.call("upload_files", json!({"files": [small.display().to_string()]}))?;
    let id = result["structuredContent"]["files"][0]["file"]["id"]
        .as_str()
        .with_context(|| format!("no id in {result}"))?
        .to_string();
    let arguments = json!({"file_id": id});

    println!(
        "MCP tool-call round trips: tools/call get_file_info, {calls} calls one at a time (after {WARMUP_CALLS} unmeasured)"
    );
    let mut samples = Vec::with_capacity(calls);
    for i in 0..WARMUP_CALLS + calls {
        let started = Instant::now();
        stdio.call("get_file_info", arguments.clone())?;
        if i >= WARMUP_CALLS {
            samples.push(started.elapsed());
        }
    }
    let figures = latencies(samples);
    println!(
        "  stdio (wharf mcp, {LEGACY}):            median {:>7.3} ms  p99 {:>7.3} ms  mean {:>7.3} ms",
        ms(figures.median),
        ms(figures.p99),
        ms(figures.mean)
    );

    let mut http_upload: Option<(Http, &str)> = None;
    for (mode, label) in [(Mode::Stateless, "stateless, 2026-07-28"), (Mode::Session, "session, 2025-11-25")] {
        let mut http = match Http::start(&client, &base, mode).await {
            Ok(http) => http,
            Err(e) => {
                println!("  HTTP ({label}): could not start: {e:#}");
                continue;
            }
        };
        if let Err(e) = http.call("get_file_info", arguments.clone()).await {
            println!("  HTTP ({label}): get_file_info failed: {e:#}");
            continue;
        }
        let mut samples = Vec::with_capacity(calls);
        for i in 0..WARMUP_CALLS + calls {
            let started = Instant::now();
            http.call("get_file_info", arguments.clone()).await?;
            if i >= WARMUP_CALLS {
                samples.push(started.elapsed());
            }
        }
        let figures = latencies(samples);
        println!(
            "  HTTP  (wharf serve /mcp, {label}): median {:>7.3} ms  p99 {:>7.3} ms  mean {:>7.3} ms",
            ms(figures.median),
            ms(figures.p99),
            ms(figures.mean)
        );
        if http_upload.is_none() {
            http_upload = Some((http, label));
        }
    }

    // Part 2: a big upload by path, MCP against the CLI, taking turns.
    println!(
        "\nupload of {mib} MiB by path to the local provider, {runs} rounds (new bytes each time, page cache warm)"
    );
    let mut cli = Vec::new();
    let mut over_stdio = Vec::new();
    let mut over_http = Vec::new();
    for round in 0..runs {
        let path = files.join(format!("big-cli-{round}.bin"));
        let sha = write_unique(&path, mib, 3 * round as u64)?;
        let started = Instant::now();
        let out = Command::new(wharf())
            .current_dir(&files)
            .arg("--config")
            .arg(&config)
            .args(["--json", "upload"])
            .arg(&path)
            .stderr(Stdio::inherit())
            .output()?;
        let took = started.elapsed();
        ensure!(out.status.success(), "wharf upload failed: {}", String::from_utf8_lossy(&out.stdout));
        let record: Value = serde_json::from_slice(&out.stdout).context("wharf --json upload printed no JSON")?;
        ensure!(record["sha256"] == sha.as_str(), "wharf upload: {record}");
        cli.push(took);
        std::fs::remove_file(&path)?;

        let path = files.join(format!("big-stdio-{round}.bin"));
        let sha = write_unique(&path, mib, 3 * round as u64 + 1)?;
        let started = Instant::now();
        let result = stdio.call("upload_files", json!({"files": [path.display().to_string()]}))?;
        over_stdio.push(started.elapsed());
        uploaded(&result, &sha, "upload_files over stdio")?;
        std::fs::remove_file(&path)?;

        if let Some((http, _)) = http_upload.as_mut() {
            let path = files.join(format!("big-http-{round}.bin"));
            let sha = write_unique(&path, mib, 3 * round as u64 + 2)?;
            let started = Instant::now();
            let result = http.call("upload_files", json!({"files": [path.display().to_string()]})).await?;
            over_http.push(started.elapsed());
            uploaded(&result, &sha, "upload_files over HTTP")?;
            std::fs::remove_file(&path)?;
        }
    }
    let throughput = |d: Duration| (mib as f64) / d.as_secs_f64();
    let cli_median = median(cli.clone());
    println!(
        "  wharf upload (CLI process):          median {:>7.3} s  {:>7.0} MiB/s  (runs: {:?})",
        cli_median.as_secs_f64(),
        throughput(cli_median),
        cli.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect::<Vec<_>>()
    );
    let stdio_median = median(over_stdio.clone());
    println!(
        "  upload_files over stdio:             median {:>7.3} s  {:>7.0} MiB/s  ratio MCP/CLI {:.2}  (runs: {:?})",
        stdio_median.as_secs_f64(),
        throughput(stdio_median),
        stdio_median.as_secs_f64() / cli_median.as_secs_f64(),
        over_stdio.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect::<Vec<_>>()
    );
    if let Some((_, label)) = &http_upload {
        let http_median = median(over_http.clone());
        println!(
            "  upload_files over HTTP ({label}): median {:>7.3} s  {:>7.0} MiB/s  ratio MCP/CLI {:.2}  (runs: {:?})",
            http_median.as_secs_f64(),
            throughput(http_median),
            http_median.as_secs_f64() / cli_median.as_secs_f64(),
            over_http.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect::<Vec<_>>()
        );
    } else {
        println!("  upload_files over HTTP: skipped (no HTTP mode worked, see above)");
    }
    println!("  (ratio < 1: MCP faster; the CLI's time includes starting the process and loading the adapter)");
    drop(stdio);
    Ok(())
}
