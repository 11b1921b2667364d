//! Which contract version a component targets, and whether it reaches for
//! anything beyond the contract. Checked before a component is linked, so an
//! operator learns why it is refused instead of reading a linker error.

use std::fmt;

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The interface every adapter exports, without its version.
const ADAPTER_EXPORT: &str = "wharf:provider/adapter@";

/// The WASI packages an adapter may import: what Rust's standard library
/// needs for files (the granted directory), clocks, randomness and stderr.
/// Sockets and outbound HTTP are refused: the network goes through
/// `wharf:provider/http`, where the host enforces the allowlist.
const ALLOWED_WASI: [&str; 5] = ["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/"];

/// A contract version the host loads. New minor versions are added here,
/// each with its bindings module; see wit/README.md for what a bump promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
pub enum ContractVersion {
    #[serde(rename = "wharf:provider@0.1.0")]
    V0_1,
    #[serde(rename = "wharf:provider@0.2.0")]
    V0_2,
    #[serde(rename = "wharf:provider@0.3.0")]
    V0_3,
}

impl ContractVersion {
    pub const ALL: [ContractVersion; 3] = [ContractVersion::V0_1, ContractVersion::V0_2, ContractVersion::V0_3];

    /// The newest version: what new adapters are built against.
    pub const CURRENT: ContractVersion = ContractVersion::V0_3;

    /// The version number, as in the WIT package (`0.3.0`).
    pub fn number(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
            ContractVersion::V0_3 => "0.3.0",
        }
    }

    fn from_number(number: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.number() == number)
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wharf:provider@{}", self.number())
    }
}

/// Why a component cannot be an adapter for this host.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error(
        "it is a core Wasm module, not a component; build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("it is not a Wasm component (no \\0asm header)")]
    NotWasm,
    #[error(
        "it exports no wharf:provider/adapter interface (it exports: {exports}); build it against the `provider` world of wit/provider.wit"
    )]
    NoAdapter { exports: String },
    #[error("it targets wharf:provider@{found}, which this host does not know; this host loads {supported}")]
    UnknownVersion { found: String, supported: String },
    #[error(
        "it imports {imports}, beyond the contract; adapters reach providers only through wharf:provider/http, where the host enforces allowed_hosts"
    )]
    ForeignImports { imports: String },
}

/// Whether `bytes` hold a component, as opposed to a core module or
/// something else, before compiling them.
pub fn check_encoding(bytes: &[u8]) -> Result<(), ContractError> {
    if wasmparser::Parser::is_component(bytes) {
        Ok(())
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        Err(ContractError::CoreModule)
    } else {
        Err(ContractError::NotWasm)
    }
}

/// The contract version a compiled component targets; refuses imports
/// beyond that contract and the WASI packages adapters need.
pub fn inspect(engine: &Engine, component: &Component) -> Result<ContractVersion, ContractError> {
    let version = version(engine, component)?;
    refuse_foreign_imports(engine, component, version)?;
    Ok(version)
}

/// The contract version of the adapter interface the component exports.
pub fn version(engine: &Engine, component: &Component) -> Result<ContractVersion, ContractError> {
    let exports: Vec<String> = component.component_type().exports(engine).map(|(name, _)| name.to_string()).collect();
    let Some(found) = exports.iter().find_map(|name| name.strip_prefix(ADAPTER_EXPORT)) else {
        let exports = if exports.is_empty() { "nothing".into() } else { exports.join(", ") };
        return Err(ContractError::NoAdapter { exports });
    };
    ContractVersion::from_number(found).ok_or_else(|| ContractError::UnknownVersion {
        found: found.to_string(),
        supported: ContractVersion::ALL.map(|v| v.to_string()).join(", "),
    })
}

/// Refuses imports other than `version`'s own interfaces and the WASI
/// packages adapters need.
pub fn refuse_foreign_imports(
    engine: &Engine,
    component: &Component,
    version: ContractVersion,
) -> Result<(), ContractError> {
    let own_suffix = format!("@{}", version.number());
    let foreign: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| {
            let contract = name.starts_with("wharf:provider/") && name.ends_with(&own_suffix);
            !contract && !ALLOWED_WASI.iter().any(|package| name.starts_with(package))
        })
        .collect();
    if foreign.is_empty() { Ok(()) } else { Err(ContractError::ForeignImports { imports: foreign.join(", ") }) }
}
