//! 1 GiB up to and down from a local S3 server (SeaweedFS, the tests' harness)
//! through Wharf's S3 adapter (the release `wharf` binary), against `aws s3 cp`
//! and `rclone copyto` in the same run, each with its default settings and a
//! fresh server of its own; Wharf's peak RSS at two sizes, to show it is flat;
//! and WHARF_BENCH_FILES (default 1,000) files of 4 KiB uploaded by
//! `wharf upload --jobs 8` and by `rclone copy`, files per second.
//!
//! `scripts/bench` installs the tools and runs this; or
//! `cargo bench --bench s3_transfer` with `weed` and `aws` in target/test-venv
//! and `rclone` on PATH. WHARF_BENCH_MIB sets the size (default 1024),
//! WHARF_BENCH_RUNS the rounds (default 3; the fastest run of each tool is reported),
//! WHARF_BENCH_CHECKSUMS=0 turns off Wharf's `checksum_sha256` (on by default:
//! the AWS CLI signs its payloads over plain HTTP, so the server checks its bytes too).
//!
//! Every tool shares the 2 cores with the server, and the source file sits in
//! the page cache: this compares clients, not disks.

#[path = "../../tests/support/s3_server.rs"]
mod s3_server;
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use s3_server::{ACCESS_KEY_ID, REGION, S3Server, SECRET_ACCESS_KEY};
use support::{Took, env_u64, in_turn, measure};

const BUCKET: &str = "bench";

/// Size of the second Wharf run that shows RSS does not grow with the file.
const SMALL_MIB: u64 = 128;
/// Where the many small files are, under the bench's directory.
const SMALL_FILES_DIR: &str = "small-files";
const SMALL_FILE_BYTES: usize = 4096;

fn write_source(path: &Path, mib: u64) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let block: Vec<u8> = (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    for i in 0..mib {
        let mut block = block.clone();
        block[..8].copy_from_slice(&i.to_le_bytes());
        file.write_all(&block)?;
    }
    Ok(())
}

struct Bench {
    work: PathBuf,
    endpoint: String,
    aws: PathBuf,
    /// Whether Wharf sends SHA-256 checksums the server checks (single PUTs
    /// and every multipart part), as the AWS CLI's signed payloads are
    /// checked: on unless WHARF_BENCH_CHECKSUMS=0.
    checksums: bool,
}

impl Bench {
    /// `wharf` with a config for this server, its data (catalog, compiled
    /// components) under `data`.
    fn wharf(&self, data: &str, args: &[&str]) -> Command {
        let config = self.work.join(format!("{data}.toml"));
        let text = format!(
            r#"[host]
data_dir = "{data}"
sandbox_roots = ["."]
default_provider = "s3"

[providers.local]
plugin = "local"
storage_dir = "{data}/local"

[providers.s3]
plugin = "s3"
allowed_hosts = ["{endpoint}"]
secrets = {{ access_key_id = "BENCH_S3_KEY_ID", secret_access_key = "BENCH_S3_SECRET" }}
config = {{ endpoint = "{endpoint}", region = "{REGION}", bucket = "{BUCKET}", prefix = "wharf/", checksum_sha256 = {checksums} }}
"#,
            endpoint = self.endpoint,
            checksums = self.checksums,
        );
        std::fs::write(&config, text).expect("writing the bench config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
        cmd.current_dir(&self.work)
            .env("BENCH_S3_KEY_ID", ACCESS_KEY_ID)
            .env("BENCH_S3_SECRET", SECRET_ACCESS_KEY)
            .arg("--config")
            .arg(&config)
            .arg("--json")
            .args(args);
        cmd
    }

    /// Uploads then downloads `file` with Wharf, in a fresh data directory
    /// (so the upload is never deduplicated) whose compiled-component cache
    /// is warmed first.
    fn wharf_round_trip(&self, data: &str, file: &str) -> anyhow::Result<(Took, Took)> {
        measure(&mut self.wharf(data, &["plugins"]))?;
        let (up, out) = measure(&mut self.wharf(data, &["upload", file]))?;
        let id = serde_json::from_str::<serde_json::Value>(&out)?["id"]
            .as_str()
            .context("wharf upload printed no id")?
            .to_string();
        let back = format!("{file}.wharf-back");
        let (down, _) = measure(&mut self.wharf(data, &["download", &id, "-o", &back]))?;
        self.check_same(file, &back)?;
        Ok((up, down))
    }

    fn aws_round_trip(&self) -> anyhow::Result<(Took, Took)> {
        let key = format!("s3://{BUCKET}/aws/big.bin");
        let (up, _) = measure(&mut self.aws(&["big.bin", &key]))?;
        let (down, _) = measure(&mut self.aws(&[&key, "aws-back.bin"]))?;
        self.check_same("big.bin", "aws-back.bin")?;
        Ok((up, down))
    }

    fn rclone_round_trip(&self) -> anyhow::Result<(Took, Took)> {
        let key = format!("bench:{BUCKET}/rclone/big.bin");
        let (up, _) = measure(&mut self.rclone(&["copyto", "big.bin", &key]))?;
        let (down, _) = measure(&mut self.rclone(&["copyto", &key, "rclone-back.bin"]))?;
        self.check_same("big.bin", "rclone-back.bin")?;
        Ok((up, down))
    }

    fn aws(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.aws);
        cmd.current_dir(&self.work)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(["--endpoint-url", &self.endpoint, "--only-show-errors", "s3", "cp"])
            .args(args);
        cmd
    }

    fn rclone(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("rclone");
        cmd.current_dir(&self.work)
            // rclone 1.60's S3 client fails on a CA bundle with a plain-HTTP
            // transport; the endpoint is plain HTTP, so no bundle is needed.
            .env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG", "/dev/null")
            .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
            .env("RCLONE_CONFIG_BENCH_PROVIDER", "SeaweedFS")
            .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("RCLONE_CONFIG_BENCH_REGION", REGION)
            .env("RCLONE_CONFIG_BENCH_ENDPOINT", &self.endpoint)
            .args(args);
        cmd
    }

    /// Uploads the small files with `wharf upload --jobs 8` into a fresh data
    /// directory, and with `rclone copy` (its default 4 transfers); their wall
    /// times. One unmeasured upload goes first, so that neither tool pays for
    /// the fresh server's first volumes; `wharf_first` says who goes next.
    fn small_files(&self, data: &str, names: &[String], wharf_first: bool) -> anyhow::Result<(Duration, Duration)> {
        measure(&mut self.wharf(data, &["plugins"]))?;
        measure(&mut self.rclone(&["copyto", &names[0], &format!("bench:{BUCKET}/warm-up")]))?;
        let wharf = || -> anyhow::Result<Duration> {
            let mut args = vec!["upload", "--jobs", "8"];
            args.extend(names.iter().map(String::as_str));
            let (Took { wall: took, .. }, out) = measure(&mut self.wharf(data, &args))?;
            anyhow::ensure!(out.lines().count() == names.len(), "wharf printed {} results", out.lines().count());
            Ok(took)
        };
        let rclone = || -> anyhow::Result<Duration> {
            let target = format!("bench:{BUCKET}/rclone-small");
            Ok(measure(&mut self.rclone(&["copy", SMALL_FILES_DIR, &target]))?.0.wall)
        };
        in_turn(wharf_first, wharf, rclone)
    }

    fn check_same(&self, a: &str, b: &str) -> anyhow::Result<()> {
        let (a_len, b_len) = (std::fs::metadata(self.work.join(a))?.len(), std::fs::metadata(self.work.join(b))?.len());
        anyhow::ensure!(a_len == b_len, "{b} is {b_len} bytes, {a} is {a_len}");
        let status = Command::new("cmp").current_dir(&self.work).args(["-s", a, b]).status()?;
        anyhow::ensure!(status.success(), "{b} differs from {a}");
        std::fs::remove_file(self.work.join(b))?;
        Ok(())
    }
}

fn mib_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mib = env_u64("WHARF_BENCH_MIB", 1024);
    let runs = env_u64("WHARF_BENCH_RUNS", 3).max(1);
    let checksums = env_u64("WHARF_BENCH_CHECKSUMS", 1) != 0;
    let size = mib << 20;
    let aws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/aws");
    anyhow::ensure!(aws.is_file(), "{} is missing; run scripts/bench", aws.display());
    anyhow::ensure!(
        Command::new("rclone").arg("version").stdout(Stdio::null()).status().is_ok_and(|s| s.success()),
        "rclone is missing; run scripts/bench (it installs Debian's rclone)"
    );

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let work = dir.path().to_path_buf();
    write_source(&work.join("big.bin"), mib)?;
    write_source(&work.join("small.bin"), SMALL_MIB)?;
    let files = env_u64("WHARF_BENCH_FILES", 1000) as usize;
    std::fs::create_dir(work.join(SMALL_FILES_DIR))?;
    let names: Vec<String> = (0..files).map(|i| format!("{SMALL_FILES_DIR}/f{i:05}.bin")).collect();
    for (i, name) in names.iter().enumerate() {
        let mut bytes = vec![0x5a; SMALL_FILE_BYTES];
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(work.join(name), bytes)?;
    }
    // Warm the page cache.
    measure(Command::new("sh").current_dir(&work).args(["-c", "cat big.bin small.bin > /dev/null"]))?;

    // Each run of each tool gets a fresh server: the same starting state for
    // all, and the disk holds one uploaded copy at a time. Tools take turns
    // within a round, so that the load of this shared machine weighs on all
    // of them alike; the fastest run of each counts.
    let mut samples: BTreeMap<(&str, &str), Vec<Took>> = BTreeMap::new();
    for run in 0..runs {
        for tool in ["wharf", "aws", "rclone"] {
            let server = S3Server::start().await;
            server.create_bucket(BUCKET).await;
            let bench = Bench { work: work.clone(), endpoint: server.endpoint.clone(), aws: aws.clone(), checksums };
            let (up, down) = match tool {
                "wharf" => bench.wharf_round_trip(&format!("data{run}"), "big.bin")?,
                "aws" => bench.aws_round_trip()?,
                _ => bench.rclone_round_trip()?,
            };
            samples.entry((tool, "up")).or_default().push(up);
            samples.entry((tool, "down")).or_default().push(down);
        }
    }
    let best = |tool: &'static str, way: &'static str| -> Took {
        samples[&(tool, way)].iter().copied().min_by_key(|s| s.wall).expect("at least one run")
    };
    let (wharf_up, aws_up, rclone_up) = (best("wharf", "up"), best("aws", "up"), best("rclone", "up"));
    let (wharf_down, aws_down, rclone_down) = (best("wharf", "down"), best("aws", "down"), best("rclone", "down"));
    let mut small_files = Vec::new();
    for run in 0..runs {
        let server = S3Server::start().await;
        server.create_bucket(BUCKET).await;
        let bench = Bench { work: work.clone(), endpoint: server.endpoint.clone(), aws: aws.clone(), checksums };
        small_files.push(bench.small_files(&format!("data-files{run}"), &names, run % 2 == 0)?);
    }
    let wharf_files = small_files.iter().map(|(wharf, _)| *wharf).min().expect("at least one run");
    let rclone_files = small_files.iter().map(|(_, rclone)| *rclone).min().expect("at least one run");
    let (small_up, small_down) = {
        let server = S3Server::start().await;
        server.create_bucket(BUCKET).await;
        let bench = Bench { work: work.clone(), endpoint: server.endpoint.clone(), aws: aws.clone(), checksums };
        bench.wharf_round_trip("data-small", "small.bin")?
    };

    let checked = if checksums { "with" } else { "without" };
    println!(
        "transfer of {mib} MiB to and from a local SeaweedFS S3 server, best of {runs} (page cache warm); \
         wharf {checked} checksum_sha256"
    );
    let line = |what: &str, took: Took| {
        println!(
            "  {what:<22} {:>7.0} MiB/s  ({:>6.2} s, peak RSS {:>4} MiB)",
            mib_s(size, took.wall),
            took.wall.as_secs_f64(),
            took.rss_kib / 1024
        );
    };
    line("wharf upload", wharf_up);
    line("aws s3 cp upload", aws_up);
    line("rclone copyto upload", rclone_up);
    line("wharf download", wharf_down);
    line("aws s3 cp download", aws_down);
    line("rclone copyto download", rclone_down);
    let ratio = |a: Took, b: Took| b.wall.as_secs_f64() / a.wall.as_secs_f64();
    println!(
        "  speed ratio wharf/aws:    upload {:.2}, download {:.2}",
        ratio(wharf_up, aws_up),
        ratio(wharf_down, aws_down)
    );
    println!(
        "  speed ratio wharf/rclone: upload {:.2}, download {:.2}",
        ratio(wharf_up, rclone_up),
        ratio(wharf_down, rclone_down)
    );
    println!(
        "  wharf peak RSS: {SMALL_MIB} MiB file: upload {} MiB, download {} MiB; {mib} MiB file: upload {} MiB, download {} MiB",
        small_up.rss_kib / 1024,
        small_down.rss_kib / 1024,
        wharf_up.rss_kib / 1024,
        wharf_down.rss_kib / 1024
    );
    let per_second = |took: Duration| files as f64 / took.as_secs_f64();
    println!(
        "  {files} files of 4 KiB, upload, best of {runs}: wharf (--jobs 8) {:.0} files/s, rclone copy {:.0} files/s, ratio {:.2}",
        per_second(wharf_files),
        per_second(rclone_files),
        rclone_files.as_secs_f64() / wharf_files.as_secs_f64()
    );
    Ok(())
}
