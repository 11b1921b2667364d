//! MCP over streamable HTTP (`POST/GET/DELETE /mcp` inside `wharf serve`),
//! against docs/mcp.md.
//!
//! - Every HTTP check of tests/mcp_suite.py (the official MCP Python SDK
//!   client, bearer tokens), one test each (`suite::…`): the tools, links,
//!   progress, cancellation, the inline cap, resources, principals that do not
//!   see each other's files, 401 with `resource_metadata`, the protected
//!   resource metadata, a foreign `Origin` → 403, a foreign `Host` refused,
//!   a message over 64 MiB → 413, and an older client in session mode
//!   (`Mcp-Session-Id`).
//! - The MCP Inspector's CLI lists the tools and calls list_files, in its
//!   legacy (session) and modern (stateless) protocol eras.
//!
//! All tests share one server (token auth). Each check acts as a principal of
//! its own (`mcp_<check>`), so that link counts and rates do not mix; the
//! principals check uses `alice` and `bob`. Needs what `scripts/test`
//! installs: tests/requirements.txt (`WHARF_TEST_PYTHON`) and the Inspector.

mod common;
#[path = "support/mcp.rs"]
#[macro_use]
mod mcp;
#[path = "support/serve.rs"]
mod serve;

use std::ffi::OsString;
use std::sync::OnceLock;

use common::Scratch;
use serve::ServeProcess;

struct Fixture {
    scratch: Scratch,
    serve: ServeProcess,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let scratch = Scratch::new();
        serve::remove_at_exit(scratch.dir.path());
        let serve = ServeProcess::start(
            &scratch,
            r#"
[server]
auth = "token"
shutdown_grace_secs = 5
"#,
        );
        Fixture { scratch, serve }
    })
}

fn run_check(check: &str) {
    let fixture = fixture();
    let mut args: Vec<OsString> = vec![
        "http".into(),
        "--url".into(),
        fixture.serve.base_url.clone().into(),
        "--work".into(),
        fixture.scratch.work().into(),
        "--token".into(),
    ];
    if check == "principals" {
        args.push(fixture.serve.token("alice", false).into());
        args.push("--token-bob".into());
        args.push(fixture.serve.token("bob", false).into());
    } else {
        args.push(fixture.serve.token(&format!("mcp_{check}"), false).into());
    }
    mcp::run_suite_check(&args, check, fixture.scratch.dir.path());
    assert!(fixture.serve.exited().is_none(), "wharf serve died during {check}: {}", fixture.serve.stderr());
}

suite_checks!(
    "http";
    tools_listed,
    tool_annotations,
    upload_files,
    mixed_upload,
    download_file,
    get_file_info,
    list_files,
    delete_files,
    update_file,
    create_download_link,
    upload_link,
    download_stats,
    register_file,
    file_stats,
    list_providers,
    read_file,
    progress_upload,
    progress_download,
    cancel_download,
    cancel_upload,
    inline_cap,
    resources,
    bad_arguments,
    legacy_client,
    principals,
    auth_required,
    protected_resource_metadata,
    foreign_origin,
    legacy_session_raw,
    foreign_host,
    oversized_body,
);

// ---- the MCP Inspector's CLI ----

#[test]
fn mcp_inspector_cli_lists_tools_and_calls_list_files() {
    let inspector = mcp::inspector();
    let fixture = fixture();
    let token = fixture.serve.token("mcp_inspector", false);
    let url = format!("{}/mcp", fixture.serve.base_url);
    for era in ["legacy", "modern"] {
        let home = fixture.scratch.dir.path().join(format!("inspector-http-{era}"));
        let with = |head: &[&str]| -> Vec<OsString> {
            let mut args: Vec<OsString> = head.iter().map(OsString::from).collect();
            let header = format!("Authorization: Bearer {token}");
            for arg in
                ["--transport", "http", "--server-url", url.as_str(), "--protocol-era", era, "--stored-auth-only"]
            {
                args.push(arg.into());
            }
            // Variadic: last.
            args.push("--header".into());
            args.push(header.into());
            args
        };
        let what = format!("tools/list over HTTP ({era})");
        let tools = inspector.result(&what, &with(&["--method", "tools/list"]), &home);
        mcp::assert_lists_every_tool(&tools, &what);
        let what = format!("tools/call list_files over HTTP ({era})");
        let files = inspector.result(
            &what,
            &with(&["--method", "tools/call", "--tool-name", "list_files", "--tool-args-json", r#"{"limit": 5}"#]),
            &home,
        );
        mcp::assert_lists_files(&files, &what);
        let strict = inspector.run(&with(&["--strict", "--method", "tools/list"]), &home);
        mcp::assert_strict_schemas(&strict, &format!("over HTTP ({era})"));
    }
}
