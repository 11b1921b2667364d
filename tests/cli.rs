//! The `wharf` binary as a user runs it: exit codes, JSON lines, error text.

mod common;

use std::process::{Command, Output};

use common::{Scratch, pattern, sha256_hex};

fn wharf(scratch: &Scratch, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--config")
        .arg(scratch.config_path())
        .args(args)
        .current_dir(scratch.work())
        .output()
        .expect("running wharf")
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn upload_then_download_with_json_output() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let content = pattern(70_000);
    scratch.write("a.bin", &content);
    scratch.write("b.txt", b"bee");

    let up = wharf(&scratch, &["--json", "upload", "a.bin", "b.txt"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let lines = json_lines(&up);
    assert_eq!(lines.len(), 2, "one line per file");
    assert_eq!(lines[0]["sha256"], sha256_hex(&content));
    assert_eq!(lines[0]["provider"], "local");
    assert_eq!(lines[0]["deduplicated"], false);
    let id = lines[0]["id"].as_str().unwrap();

    let down = wharf(&scratch, &["--json", "download", id, "-o", "copy.bin"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let result = &json_lines(&down)[0];
    assert_eq!(result["verified"], true);
    assert_eq!(result["source"], "provider");
    assert_eq!(std::fs::read(scratch.work().join("copy.bin")).unwrap(), content);

    let again = wharf(&scratch, &["--json", "upload", "a.bin"]);
    assert_eq!(json_lines(&again)[0]["deduplicated"], true);

    let plugins = wharf(&scratch, &["--json", "plugins"]);
    let local = &json_lines(&plugins)[0];
    assert_eq!(local["name"], "local");
    assert_eq!(local["wit_version"], "wharf:provider@0.2.0");
    assert_eq!(local["ranged_download"], true);
    assert_eq!(local["download"], "original");
}

#[test]
fn stdin_upload_and_failures_set_the_exit_code() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--config")
        .arg(scratch.config_path())
        .args(["--json", "upload", "-", "--name", "piped.txt"])
        .current_dir(scratch.work())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"from a pipe").unwrap();
    let piped = child.wait_with_output().unwrap();
    assert!(piped.status.success());
    let line = &json_lines(&piped)[0];
    assert_eq!(line["name"], "piped.txt");
    assert_eq!(line["sha256"], sha256_hex(b"from a pipe"));

    let missing = wharf(&scratch, &["--json", "upload", "nope.txt"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    let err: serde_json::Value = serde_json::from_slice(&missing.stderr).expect("a JSON error line");
    assert_eq!(err["input"], "nope.txt");

    let unknown = wharf(&scratch, &["download", "wf_doesnotexist"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no file with id"));

    let usage = wharf(&scratch, &["upload"]);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit with 2");
}

#[test]
fn broken_config_names_the_line() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let mut text = std::fs::read_to_string(scratch.config_path()).unwrap();
    text.push_str("\n[providers.extra]\nplugin = \"local\"\nlimits = { memory_mib = \"lots\" }\n");
    std::fs::write(scratch.config_path(), &text).unwrap();
    let line = text.lines().position(|l| l.contains("lots")).unwrap() + 1;

    let out = wharf(&scratch, &["ls"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let location = format!("{}:{line}:", scratch.config_path().display());
    assert!(stderr.contains(&location), "expected {location} in: {stderr}");
    assert!(stderr.contains("invalid type"), "{stderr}");
}
