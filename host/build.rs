//! Builds the adapters in `plugins/` (and the hostile test adapters in
//! `tests/adapters/`) for `wasm32-wasip2`, so that a fresh checkout needs only
//! `cargo build` or `cargo test`. The host loads them by path at run time
//! (`WHARF_BUILTIN_PLUGIN_DIR`), so editing an adapter does not recompile the host.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let host_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = host_dir.parent().unwrap().to_path_buf();
    let wasm_target_dir = root.join("target").join("wasm");

    for dir in ["wit", "plugins", "tests/adapters"] {
        watch(&root.join(dir));
    }

    ensure_target_installed();
    for manifest in ["plugins/Cargo.toml", "tests/adapters/Cargo.toml"] {
        build_guests(&root.join(manifest), &wasm_target_dir);
    }

    let out = wasm_target_dir.join(TARGET).join("release");
    println!("cargo:rustc-env=WHARF_BUILTIN_PLUGIN_DIR={}", out.display());
}

/// Re-run when any source, manifest, lock file or WIT changes; never for the
/// guests' own target directories.
fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

fn ensure_target_installed() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == TARGET))
        .unwrap_or(false);
    if installed {
        return;
    }
    let status = Command::new("rustup").args(["target", "add", TARGET]).status();
    if !matches!(status, Ok(s) if s.success()) {
        panic!(
            "the {TARGET} Rust target is missing and `rustup target add {TARGET}` failed; install it and build again"
        );
    }
}

fn build_guests(manifest: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        // The child's stdout would be read as build-script directives.
        .stdout(std::process::Stdio::from(std::io::stderr()));
    // The outer build's flags are for the host, not for wasm guests.
    for (key, _) in env::vars() {
        let inherited_build_setting = key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_ENCODED_")
            || matches!(
                key.as_str(),
                "RUSTFLAGS"
                    | "CARGO_BUILD_RUSTFLAGS"
                    | "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "CARGO_INCREMENTAL"
            );
        if inherited_build_setting {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().expect("running cargo for the wasm adapters");
    if !status.success() {
        panic!("building the adapters in {} failed; see the errors above", manifest.display());
    }
}
