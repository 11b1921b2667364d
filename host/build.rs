//! Builds the adapters in `plugins/` (and the hostile test adapters in
//! `tests/adapters/`) for `wasm32-wasip2`, so that a fresh checkout needs only
//! `cargo build` or `cargo test`. Development builds load them by path at run
//! time (`WHARF_BUILTIN_PLUGIN_DIR`), so editing an adapter does not recompile
//! the host; release builds (and `WHARF_EMBED_ADAPTERS=1`) also embed the
//! built-in ones, so that the binary runs alone.

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

    println!("cargo:rustc-env=WHARF_GUEST_STACK_BYTES={GUEST_STACK_BYTES}");
    let out = wasm_target_dir.join(TARGET).join("release");
    println!("cargo:rustc-env=WHARF_BUILTIN_PLUGIN_DIR={}", out.display());
    write_embedded(&root.join("plugins"), &out);
}

/// Writes `$OUT_DIR/embedded_adapters.rs`: the built-in adapters' components
/// by name, included in release builds, empty otherwise.
fn write_embedded(plugins: &Path, components: &Path) {
    println!("cargo:rerun-if-env-changed=WHARF_EMBED_ADAPTERS");
    let embed =
        env::var("PROFILE").as_deref() == Ok("release") || env::var("WHARF_EMBED_ADAPTERS").as_deref() == Ok("1");
    // Tells the tests which kind of binary they run.
    println!("cargo:rustc-env=WHARF_EMBEDDED_ADAPTERS={}", u8::from(embed));
    let mut entries = String::new();
    if embed {
        let mut names: Vec<String> = std::fs::read_dir(plugins)
            .expect("listing plugins/")
            .flatten()
            .filter(|e| e.path().join("Cargo.toml").is_file() && e.file_name() != "sdk")
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let file = components.join(format!("wharf_plugin_{}.wasm", name.replace('-', "_")));
            assert!(file.is_file(), "the built-in adapter {name} was not built: {} is missing", file.display());
            entries.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", file.display().to_string()));
        }
    }
    let code = format!(
        "/// The built-in adapters' components, by name (empty in development builds).\npub const EMBEDDED: &[(&str, &[u8])] = &[\n{entries}];\n"
    );
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("embedded_adapters.rs");
    std::fs::write(&out, code).expect("writing embedded_adapters.rs");
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

/// The guests' stack, instead of the toolchain's 1 MiB. The stack comes
/// first in linear memory, so a small one puts the stack, the static data and
/// the start of the heap in the first pages, which the host keeps resident
/// between instances (`KEEP_RESIDENT` in src/runtime/mod.rs): a call then
/// costs no page faults. `wharf plugins new` writes the same into the new
/// crate's .cargo/config.toml (`WHARF_GUEST_STACK_BYTES`).
const GUEST_STACK_BYTES: u32 = 128 << 10;

fn build_guests(manifest: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .arg("--config")
        .arg(format!("target.{TARGET}.rustflags = [\"-C\", \"link-arg=-zstack-size={GUEST_STACK_BYTES}\"]"))
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
