//! Crash consistency: `wharf upload` and `wharf download` killed with SIGKILL
//! at seeded random moments. After each kill no partial file is visible, the
//! catalog opens, `wharf fsck` finds nothing to repair or repairs it, and
//! running the command again succeeds.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Scratch, pattern, sha256_hex};

const RUNS: usize = 20;
/// Fixed, so that a failure can be replayed; printed with every run.
const SEED: u64 = 0x5eed_0fc4_a5a5;
const SIZE: usize = 8 << 20;

/// xorshift64*: reproducible moments without a dependency.
struct Moments(u64);

impl Moments {
    fn next_below(&mut self, bound: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let unit = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        bound.mul_f64(unit)
    }
}

fn wharf(scratch: &Scratch) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    command.arg("--config").arg(scratch.config_path()).current_dir(scratch.work());
    command
}

fn run(scratch: &Scratch, args: &[&str]) -> Output {
    wharf(scratch).args(args).output().expect("running wharf")
}

fn json(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.lines().next().unwrap_or_default()).unwrap_or_else(|e| {
        panic!("not a JSON line ({e}): {text}; stderr: {}", String::from_utf8_lossy(&output.stderr))
    })
}

/// Runs `args` and kills it with SIGKILL after `after` (if still running).
fn kill_after(scratch: &Scratch, args: &[&str], after: Duration) -> bool {
    let mut child = wharf(scratch).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while started.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = child.kill().is_ok();
    child.wait().unwrap();
    killed
}

/// Names in `dir` (recursively) that a finished transfer would not leave.
fn partial_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            found.extend(partial_files(&path));
        } else if name.contains("wharf-partial") || name.ends_with(".partial") {
            found.push(path.display().to_string());
        }
    }
    found
}

/// `wharf fsck --repair` succeeds; a second `wharf fsck` then finds nothing.
/// Returns what the repair found. An object whose upload claim the killed
/// process still holds is left alone by the repair (it cannot tell a dead
/// uploader from a slow one): the repair runs again once the claim lapses
/// (`claim_ttl_secs = 1`).
fn fsck_repairs(scratch: &Scratch, context: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let repair = run(scratch, &["--json", "fsck", "--repair", "--verify"]);
        assert!(
            repair.status.success(),
            "{context}: fsck --repair failed: {}",
            String::from_utf8_lossy(&repair.stderr)
        );
        let report = json(&repair);
        let findings = report["findings"].as_array().cloned().unwrap_or_default();
        let claimed = findings.iter().any(|f| f["repair"].as_str().is_some_and(|r| r.contains("is uploading")));
        if !claimed {
            break findings.len();
        }
        assert!(Instant::now() < deadline, "{context}: the killed upload's claim never lapsed: {report}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let check = run(scratch, &["--json", "fsck"]);
    assert!(
        check.status.success(),
        "{context}: fsck still finds problems after a repair: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    found
}

/// The window the kills fall in: the shortest of three uninterrupted runs of
/// `args`, each after `reset`. One run is not enough: on a busy machine a
/// single slow run (a cold page cache, a neighbour's build) stretched the
/// window past most later runs, and most kills then came after the exit.
fn window_of(scratch: &Scratch, args: &[&str], reset: impl Fn()) -> Duration {
    (0..3)
        .map(|_| {
            reset();
            let started = Instant::now();
            let output = run(scratch, args);
            assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
            started.elapsed()
        })
        .min()
        .unwrap()
}

/// Removes the stored file, if there is one.
fn remove_stored(scratch: &Scratch) {
    let listing = run(scratch, &["--json", "ls"]);
    if !listing.stdout.is_empty() {
        let id = json(&listing)["id"].as_str().unwrap().to_string();
        assert!(run(scratch, &["rm", &id]).status.success());
    }
}

#[test]
fn killed_uploads_and_downloads_leave_nothing_behind() {
    let scratch = Scratch::new();
    // The upload claim of a killed process lapses after this: the rerun waits for it.
    let host = format!("{}\nclaim_ttl_secs = 1", common::LOCAL_HOST_SETTINGS);
    scratch.write_config_with_host(&host, "");
    let content = pattern(SIZE);
    let source = scratch.write("big.bin", &content);
    let sha = sha256_hex(&content);
    let mut moments = Moments(SEED);

    // The first run compiles the adapter: the window is measured after it.
    assert!(run(&scratch, &["plugins"]).status.success());
    // Uploads: the first run of each round stores the bytes anew.
    let upload = ["--json", "upload", "big.bin"];
    let window = window_of(&scratch, &upload, || remove_stored(&scratch));
    let mut killed = (0, 0);
    let mut repaired = (0, 0);
    for round in 0..RUNS {
        // The previous round ended with the file stored: start from nothing.
        remove_stored(&scratch);
        let after = moments.next_below(window);
        let context = format!("upload round {round} (seed {SEED:#x}, kill after {after:?})");
        killed.0 += usize::from(kill_after(&scratch, &upload, after));
        let leftovers = partial_files(scratch.dir.path());
        assert!(leftovers.is_empty(), "{context}: partial files: {leftovers:?}");
        repaired.0 += fsck_repairs(&scratch, &context);
        let again = run(&scratch, &upload);
        assert!(again.status.success(), "{context}: rerun failed: {}", String::from_utf8_lossy(&again.stderr));
        assert_eq!(json(&again)["sha256"], sha, "{context}");
    }

    // Downloads of the stored file, over an earlier complete copy or none.
    let id = json(&run(&scratch, &upload))["id"].as_str().unwrap().to_string();
    let download = ["--json", "download", &id, "-o", "back.bin"];
    let destination = scratch.work().join("back.bin");
    let window = window_of(&scratch, &download, || {
        let _ = std::fs::remove_file(&destination);
    });
    for round in 0..RUNS {
        if round % 2 == 0 {
            let _ = std::fs::remove_file(&destination);
        }
        let after = moments.next_below(window);
        let context = format!("download round {round} (seed {SEED:#x}, kill after {after:?})");
        killed.1 += usize::from(kill_after(&scratch, &download, after));
        let leftovers = partial_files(scratch.dir.path());
        assert!(leftovers.is_empty(), "{context}: partial files: {leftovers:?}");
        if destination.exists() {
            assert!(std::fs::read(&destination).unwrap() == content, "{context}: a damaged destination is visible");
        }
        repaired.1 += fsck_repairs(&scratch, &context);
        let again = run(&scratch, &download);
        assert!(again.status.success(), "{context}: rerun failed: {}", String::from_utf8_lossy(&again.stderr));
        assert!(std::fs::read(&destination).unwrap() == content, "{context}");
    }
    assert_eq!(std::fs::read(&source).unwrap(), content, "the source is untouched");
    println!(
        "killed {} of {RUNS} uploads and {} of {RUNS} downloads mid-run; fsck repaired {} and {} findings",
        killed.0, killed.1, repaired.0, repaired.1
    );
    assert!(killed.0 >= RUNS / 2 && killed.1 >= RUNS / 2, "most kills must land while the command runs");
}
