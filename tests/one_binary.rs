//! An installed `wharf` needs nothing beside it: release builds embed the
//! built-in adapters. Development builds load them by path instead, so that
//! editing an adapter does not recompile the host.

mod common;

use std::process::{Command, Output};

use common::pattern;

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    let output = Command::new(dir.join("wharf"))
        .args(["--config", "providers.toml"])
        .args(args)
        .current_dir(dir)
        .env_remove("WHARF_PLUGIN_DIR")
        .env_remove("WHARF_CONFIG")
        .output()
        .expect("running the copied wharf");
    assert!(output.status.success(), "wharf {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_str(String::from_utf8_lossy(&output.stdout).lines().next().expect("a JSON line")).unwrap()
}

#[test]
fn the_binary_copied_alone_uploads_and_downloads_through_the_local_adapter() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path();
    std::fs::copy(env!("CARGO_BIN_EXE_wharf"), dir.join("wharf")).unwrap();
    std::fs::write(
        dir.join("providers.toml"),
        "[host]\ndata_dir = \"data\"\n\n[providers.local]\nplugin = \"local\"\nstorage_dir = \"data/local\"\n",
    )
    .unwrap();
    let content = pattern(200_000);
    std::fs::write(dir.join("a.bin"), &content).unwrap();

    let up = json(&run(dir, &["--json", "upload", "a.bin"]));
    let id = up["id"].as_str().unwrap();
    let down = json(&run(dir, &["--json", "download", id, "-o", "copy.bin"]));
    assert_eq!(down["verified"], true);
    assert_eq!(std::fs::read(dir.join("copy.bin")).unwrap(), content);

    let local = json(&run(dir, &["--json", "plugins"]));
    let plugin = local["plugin"].as_str().unwrap();
    if env!("WHARF_EMBEDDED_ADAPTERS") == "1" {
        assert_eq!(plugin, "built-in:local", "a release build serves the copy it embeds");
    } else {
        assert!(plugin.ends_with("wharf_plugin_local.wasm"), "a development build loads by path: {plugin}");
    }
}
