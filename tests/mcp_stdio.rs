//! The official MCP Python SDK client talks to `wharf mcp` over stdio.
//!
//! Needs the packages in tests/requirements.txt; `scripts/test` installs them
//! into a virtual environment and points `WHARF_TEST_PYTHON` at it.

mod common;

use std::path::Path;
use std::process::Command;

use common::Scratch;

#[test]
fn python_sdk_client_round_trips_a_file() {
    let scratch = Scratch::new();
    let config = scratch.write_config("");
    let python = std::env::var("WHARF_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp_client.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_wharf"))
        .arg(&config)
        .arg(scratch.work())
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}; run scripts/test, which installs tests/requirements.txt"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the MCP client failed ({}).\nstdout:\n{stdout}\nstderr:\n{stderr}\n(if `mcp` is missing: scripts/test installs tests/requirements.txt)",
        output.status
    );
    for step in [
        "listed tools",
        "uploaded",
        "deduplicated to",
        "downloaded to",
        "refused a destination",
        "refused invalid base64",
    ] {
        assert!(stdout.contains(step), "missing step {step:?} in:\n{stdout}");
    }
}

/// Clients that probe with a method the server does not know (the Python
/// SDK's `server/discover` on older servers) must get a JSON-RPC error back.
#[test]
fn unknown_methods_get_a_json_rpc_error() {
    use std::io::{BufRead, BufReader, Write};
    let scratch = Scratch::new();
    let config = scratch.write_config("");
    let mut server = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--config")
        .arg(&config)
        .arg("mcp")
        .current_dir(scratch.work())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        // The server reports the client hanging up mid-handshake; expected here.
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = server.stdin.take().unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":7,"method":"wharf/no-such-method","params":{{}}}}"#).unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    drop(stdin);
    let _ = server.wait();
    let reply: serde_json::Value = serde_json::from_str(&line).expect("a JSON-RPC reply");
    assert_eq!(reply["id"], 7, "{reply}");
    assert!(reply["error"]["code"].is_i64(), "an error reply: {reply}");
}
