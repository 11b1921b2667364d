//! The operator kit: `wharf plugins check` verdicts, `sha256` pins, and
//! components built for older contract versions served beside current ones.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Scratch, pattern, sha256_hex, test_adapter, wharf};
use wharf::config::Config;
use wharf::gateway::{Gateway, Source, UploadOptions};
use wharf::runtime::ContractVersion;

fn builtin(name: &str) -> std::path::PathBuf {
    Path::new(env!("WHARF_BUILTIN_PLUGIN_DIR")).join(format!("wharf_plugin_{name}.wasm"))
}

fn check(scratch: &Scratch, args: &[&str]) -> Output {
    wharf(scratch, &[&["plugins", "check"], args].concat())
}

/// The check's verdict: exit code 0 with every step passed, or 1 with the
/// failed step and why on stdout.
fn verdict(output: &Output) -> (i32, String) {
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().expect("wharf exits"), text)
}

#[test]
fn check_accepts_a_built_in_adapter_and_shows_its_contract_and_capabilities() {
    let scratch = Scratch::new();
    let (code, text) = verdict(&check(&scratch, &[builtin("local").to_str().unwrap()]));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("contract     wharf:provider@0.3.0 (current)"), "{text}");
    assert!(text.contains("ranged-download resolve"), "{text}");
    assert!(text.contains("verdict: usable as an adapter"), "{text}");
    let digest = sha256_hex(&std::fs::read(builtin("local")).unwrap());
    assert!(text.contains(&digest), "the digest to pin is shown: {text}");
}

#[test]
fn check_refuses_a_core_module() {
    let scratch = Scratch::new();
    // The smallest valid core module: the header alone.
    let module = scratch.write("core.wasm", b"\0asm\x01\0\0\0");
    let (code, text) = verdict(&check(&scratch, &[module.to_str().unwrap()]));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL component") && text.contains("core Wasm module, not a component"), "{text}");
}

#[test]
fn check_refuses_a_component_importing_sockets() {
    let scratch = Scratch::new();
    let (code, text) = verdict(&check(&scratch, &[test_adapter("sockets").to_str().unwrap()]));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL imports") && text.contains("wasi:sockets/tcp"), "{text}");
}

#[test]
fn check_refuses_an_unknown_contract_version() {
    let scratch = Scratch::new();
    let (code, text) = verdict(&check(&scratch, &[test_adapter("future").to_str().unwrap()]));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL contract") && text.contains("wharf:provider@0.9.0"), "{text}");
    assert!(text.contains("loads wharf:provider@0.1.0, wharf:provider@0.2.0, wharf:provider@0.3.0"), "{text}");
}

#[test]
fn check_with_a_provider_entry_refuses_a_pin_mismatch_and_json_says_why() {
    let scratch = Scratch::new();
    let pin = "0".repeat(64);
    scratch.write_config(&format!("sha256 = \"{pin}\"\n"));
    let output = check(&scratch, &["--json", "--provider", "local", builtin("local").to_str().unwrap()]);
    let (code, text) = verdict(&output);
    assert_eq!(code, 1, "{text}");
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&output.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(report["passed"], false);
    let failed = report["findings"].as_array().unwrap().iter().find(|f| f["passed"] == false).unwrap();
    assert_eq!(failed["check"], "pin");
    let digest = sha256_hex(&std::fs::read(builtin("local")).unwrap());
    let detail = failed["detail"].as_str().unwrap();
    assert!(detail.contains(&digest) && detail.contains(&pin), "names both digests: {detail}");
}

#[tokio::test]
async fn a_pinned_component_with_other_bytes_is_refused_naming_both_digests() {
    let scratch = Scratch::new();
    let pin = "ab".repeat(32);
    let config = Config::load(&scratch.write_config(&format!("sha256 = \"{pin}\"\n"))).unwrap();
    let err = Gateway::open(config).await.err().expect("a wrong pin is refused");
    let message = format!("{err:#}");
    let digest = sha256_hex(&std::fs::read(builtin("local")).unwrap());
    assert!(message.contains(&pin) && message.contains(&digest), "{message}");
    assert!(message.contains("[providers.local] sha256"), "{message}");

    let config = Config::load(&scratch.write_config(&format!("sha256 = \"{digest}\"\n"))).unwrap();
    Gateway::open(config).await.expect("the right pin loads");
}

/// Components built for older contract versions keep serving beside current
/// ones: 0.1.0 (no ranges) and 0.2.0 (ranges, no checksum trailers).
#[tokio::test]
async fn components_of_older_contracts_serve_beside_current_ones() {
    let scratch = Scratch::new();
    let data = scratch.data().display().to_string();
    let extra = format!(
        "\n[providers.v01]\nplugin = \"{}\"\nstorage_dir = \"{data}/v01\"\n\
         \n[providers.v02]\nplugin = \"{}\"\nstorage_dir = \"{data}/v02\"\n",
        test_adapter("v0_1").display(),
        test_adapter("v0_2").display(),
    );
    let gateway = scratch.open_gateway(&extra).await;
    let plugins = gateway.plugins();
    let plugin = |name: &str| plugins.iter().find(|p| p.name == name).unwrap().clone();
    assert_eq!(plugin("local").wit_version, ContractVersion::V0_3);
    assert_eq!(plugin("v01").wit_version, ContractVersion::V0_1);
    assert_eq!(plugin("v02").wit_version, ContractVersion::V0_2);
    assert!(!plugin("v01").ranged_download && !plugin("v01").resolve, "0.1.0 has neither");
    assert!(plugin("v02").ranged_download, "0.2.0 has ranges");

    let caller = gateway.host_caller();
    let content = pattern(300_000);
    for provider in ["v01", "v02"] {
        let options = UploadOptions { provider: Some(provider.into()), ..Default::default() };
        let source = Source::Path(scratch.write(&format!("{provider}.bin"), &content));
        let up = caller.upload(source, &options).await.unwrap();
        let destination = scratch.work().join(format!("{provider}-copy.bin"));
        let down = caller.download(&up.id, Some(&destination), Some(provider)).await.unwrap();
        assert_eq!(down.provider, provider);
        assert!(down.verified);
        assert_eq!(std::fs::read(&destination).unwrap(), content);
        let info = caller.info(&up.id).await.unwrap();
        let text = serde_json::to_string(&info).unwrap();
        assert!(text.contains(&format!("\"{provider}\"")), "{text}");
        if plugin(provider).ranged_download {
            // A range of the copy is a ranged read of that adapter.
            let streamed = caller.stream_content(&up.id, false, Some((1000, 2000)), "a test").await.unwrap();
            let chunks: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(streamed.stream).await.unwrap();
            assert_eq!(chunks.concat(), &content[1000..2000]);
        }
    }
}

#[test]
fn the_conformance_suite_passes_for_the_local_adapter() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let (code, text) = verdict(&wharf(&scratch, &["plugins", "test", "local"]));
    assert_eq!(code, 0, "{text}");
    for step in
        ["upload", "stat", "list", "download", "ranged download", "delete", "stat after delete", "missing object"]
    {
        assert!(text.contains(&format!("ok   {step:<18}")), "{step} passes: {text}");
    }
    assert!(text.contains("conformance: passed"), "{text}");
}

#[test]
fn the_conformance_suite_fails_with_a_clear_line_for_wrong_bytes() {
    let scratch = Scratch::new();
    scratch.write_config(&format!(
        "\n[providers.liar]\nplugin = \"{}\"\nstorage_dir = \"{}/liar\"\n",
        test_adapter("liar").display(),
        scratch.data().display()
    ));
    let (code, text) = verdict(&wharf(&scratch, &["plugins", "test", "liar"]));
    assert_eq!(code, 1, "{text}");
    let line = text.lines().find(|l| l.contains("FAIL")).expect("a failed step");
    assert!(line.contains("download") && line.contains("wrong bytes: SHA-256"), "{line}");
    assert!(text.contains("skip ranged download"), "undeclared steps are skipped: {text}");
    assert!(text.contains("conformance: failed"), "{text}");
}

/// `wharf plugins new` → `cargo build` → `wharf plugins check`, with no edit between.
#[test]
fn a_scaffolded_adapter_builds_and_passes_check_unmodified() {
    let scratch = Scratch::new();
    let made =
        wharf(&scratch, &["--json", "plugins", "new", "example-store", "--dir", scratch.work().to_str().unwrap()]);
    let (code, text) = verdict(&made);
    assert_eq!(code, 0, "{text}");
    let crate_dir = scratch.work().join("example-store");
    for file in ["Cargo.toml", "README.md", "src/lib.rs", "src/config.rs", "src/core.rs", "src/error.rs"] {
        assert!(crate_dir.join(file).is_file(), "{file} is written");
    }
    assert_eq!(
        wharf(&scratch, &["plugins", "new", "example-store", "--dir", scratch.work().to_str().unwrap()]).status.code(),
        Some(1),
        "an existing crate is not overwritten"
    );

    // The guests' target directory: its dependencies are compiled already.
    let target_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir)
        .current_dir(&crate_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("running cargo");
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    let component = target_dir.join("wasm32-wasip2/release/wharf_plugin_example_store.wasm");
    let (code, text) = verdict(&check(&scratch, &[component.to_str().unwrap()]));
    std::fs::remove_file(&component).ok();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("wharf:provider@0.3.0 (current)"), "{text}");
}

/// Whether a `.wharf-partial` file (a download being written) is in `dir`.
/// Whether a download is writing into `dir`: an unnamed temp file (O_TMPFILE,
/// open in this process as `DIR/#INODE (deleted)`) or a named partial one.
fn download_in_progress(dir: &Path) -> bool {
    let dir = dir.to_string_lossy().into_owned();
    let unnamed = std::fs::read_dir("/proc/self/fd").unwrap().flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            target.to_string_lossy().starts_with(&dir) && target.to_string_lossy().ends_with("(deleted)")
        })
    });
    unnamed
        || std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".wharf-partial"))
}

/// Replaces a file the way operators should: a whole new file renamed over it.
fn replace(path: &Path, bytes: &[u8]) {
    let next = path.with_extension("next");
    std::fs::write(&next, bytes).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[tokio::test]
async fn reload_swaps_a_component_while_a_long_download_finishes_on_the_old_one() {
    let scratch = Scratch::new();
    let component = scratch.dir.path().join("swap.wasm");
    std::fs::copy(builtin("local"), &component).unwrap();
    let extra = format!(
        "\n[providers.swap]\nplugin = \"{}\"\nstorage_dir = \"{}/swap\"\n",
        component.display(),
        scratch.data().display()
    );
    let gateway = scratch.open_gateway(&extra).await;
    let caller = gateway.host_caller();
    let to_swap = UploadOptions { provider: Some("swap".into()), ..Default::default() };
    let content = pattern(96 << 20);
    let up = caller.upload(Source::Path(scratch.write("big.bin", &content)), &to_swap).await.unwrap();

    let destination = scratch.work().join("big-copy.bin");
    let download = tokio::spawn({
        let (caller, id, destination) = (caller.clone(), up.id.clone(), destination.clone());
        async move { caller.download(&id, Some(&destination), Some("swap")).await }
    });
    while !download_in_progress(&scratch.work()) {
        assert!(!download.is_finished(), "the download ended before it could be seen running");
        tokio::task::yield_now().await;
    }
    // The 0.1.0 test adapter keeps objects under another layout: a download
    // served by it could not find this object.
    replace(&component, &std::fs::read(test_adapter("v0_1")).unwrap());
    let reloaded = gateway.reload_adapters().await.expect("the new component loads");
    assert_eq!(reloaded.changed, ["swap"]);
    let swap = |gateway: &Gateway| gateway.plugins().into_iter().find(|p| p.name == "swap").unwrap();
    assert_eq!(swap(&gateway).wit_version, ContractVersion::V0_1);

    let downloaded = download.await.unwrap().expect("the download in flight finishes");
    assert_eq!((downloaded.provider.as_str(), downloaded.verified), ("swap", true));
    assert_eq!(std::fs::read(&destination).unwrap(), content);

    // A broken replacement is refused, naming why; the running one keeps serving.
    replace(&component, b"not a component");
    let err = gateway.reload_adapters().await.expect_err("a broken component is refused");
    assert!(err.to_string().contains("not a Wasm component"), "{err}");
    assert_eq!(swap(&gateway).wit_version, ContractVersion::V0_1);
    let small = pattern(10_000);
    let up = caller.upload(Source::Path(scratch.write("small.bin", &small)), &to_swap).await.unwrap();
    let back = scratch.work().join("small-copy.bin");
    let served = caller.download(&up.id, Some(&back), Some("swap")).await.unwrap();
    assert_eq!((served.provider.as_str(), std::fs::read(&back).unwrap()), ("swap", small));
}
