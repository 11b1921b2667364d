//! `wharf plugins new NAME`: a new adapter crate in the shape of the built-in
//! ones (lib, config, core, error; the guest release profile and stack; a README),
//! with the SDK and the contract it builds against, so that it builds for
//! wasm32-wasip2 on its own and passes `wharf plugins check` unmodified.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::runtime::ContractVersion;

/// The crate's own files, with `{{name}}`, `{{crate}}`, `{{file}}`,
/// `{{contract}}` and `{{stack_bytes}}` (the built-in adapters' stack) filled in.
const TEMPLATES: [(&str, &str); 7] = [
    ("Cargo.toml", include_str!("template/Cargo.toml.tmpl")),
    (".cargo/config.toml", include_str!("template/cargo-config.toml.tmpl")),
    ("README.md", include_str!("template/README.md.tmpl")),
    ("src/lib.rs", include_str!("template/lib.rs.tmpl")),
    ("src/config.rs", include_str!("template/config.rs.tmpl")),
    ("src/core.rs", include_str!("template/core.rs.tmpl")),
    ("src/error.rs", include_str!("template/error.rs.tmpl")),
];

/// Copied as they are: the contract, the SDK, and the lock file the
/// built-in adapters build with (so the new crate resolves the same versions).
const VERBATIM: [(&str, &str); 12] = [
    ("wit/provider.wit", include_str!("../../../wit/provider.wit")),
    ("Cargo.lock", include_str!("../../../plugins/Cargo.lock")),
    ("vendor/wharf-adapter-sdk/Cargo.toml", include_str!("../../../plugins/sdk/Cargo.toml")),
    ("vendor/wharf-adapter-sdk/src/lib.rs", include_str!("../../../plugins/sdk/src/lib.rs")),
    ("vendor/wharf-adapter-sdk/src/config.rs", include_str!("../../../plugins/sdk/src/config.rs")),
    ("vendor/wharf-adapter-sdk/src/errors.rs", include_str!("../../../plugins/sdk/src/errors.rs")),
    ("vendor/wharf-adapter-sdk/src/percent.rs", include_str!("../../../plugins/sdk/src/percent.rs")),
    ("vendor/wharf-adapter-sdk/src/provider.rs", include_str!("../../../plugins/sdk/src/provider.rs")),
    ("vendor/wharf-adapter-sdk/src/range.rs", include_str!("../../../plugins/sdk/src/range.rs")),
    ("vendor/wharf-adapter-sdk/src/response.rs", include_str!("../../../plugins/sdk/src/response.rs")),
    ("vendor/wharf-adapter-sdk/src/timestamp.rs", include_str!("../../../plugins/sdk/src/timestamp.rs")),
    ("rustfmt.toml", include_str!("../../../rustfmt.toml")),
];

#[derive(Debug, Clone, Serialize)]
pub struct Scaffolded {
    pub name: String,
    pub dir: PathBuf,
    /// Where `cargo build --release --target wasm32-wasip2` puts the component.
    pub component: PathBuf,
    pub contract: ContractVersion,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "adapter name {0:?} must start with a lowercase letter and use only lowercase letters, digits and '-' (it names the crate and the component)"
    )]
    InvalidName(String),
    #[error("{0} already exists; choose another name or --dir")]
    Exists(PathBuf),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes the crate as `parent/NAME`. The directory appears whole or not
/// at all: it is filled under a temporary name and renamed into place.
pub fn new_adapter(name: &str, parent: &Path) -> Result<Scaffolded, ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ScaffoldError::InvalidName(name.to_string()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let crate_name = format!("wharf-plugin-{name}");
    let file = crate_name.replace('-', "_");
    let contract = ContractVersion::CURRENT;
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{file}}", &file)
            .replace("{{contract}}", &contract.to_string())
            .replace("{{stack_bytes}}", env!("WHARF_GUEST_STACK_BYTES"))
    };
    let partial = parent.join(format!(".{name}.partial-{:016x}", rand::random::<u64>()));
    let written = TEMPLATES
        .iter()
        .map(|(path, text)| (*path, fill(text)))
        .chain(VERBATIM.iter().map(|(path, text)| (*path, text.to_string())))
        .try_for_each(|(path, text)| write(&partial.join(path), &text));
    let placed = written.and_then(|()| {
        std::fs::rename(&partial, &dir).map_err(|source| ScaffoldError::Write { path: dir.clone(), source })
    });
    if let Err(e) = placed {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    let component = dir.join("target/wasm32-wasip2/release").join(format!("{file}.wasm"));
    Ok(Scaffolded { name: name.to_string(), dir, component, contract })
}

fn write(path: &Path, text: &str) -> Result<(), ScaffoldError> {
    let parent = path.parent().expect("template paths have a folder");
    std::fs::create_dir_all(parent)
        .and_then(|()| std::fs::write(path, text))
        .map_err(|source| ScaffoldError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SDK file left out of `VERBATIM` breaks every scaffolded crate, and
    /// the integration test would see it only after a wasm build.
    #[test]
    fn every_sdk_source_is_vendored() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(&sdk)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut vendored: Vec<String> = VERBATIM
            .iter()
            .filter_map(|(path, _)| path.strip_prefix("vendor/wharf-adapter-sdk/src/"))
            .map(str::to_string)
            .collect();
        on_disk.sort();
        vendored.sort();
        assert_eq!(vendored, on_disk);
    }
}
