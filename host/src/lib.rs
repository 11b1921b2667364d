//! Wharf: one safe, fast file gateway in front of LLM providers and storage.
//!
//! The host owns I/O, secrets, limits, hashing and tracking; provider
//! adapters are WebAssembly components (see `wit/`) that only translate
//! operations into provider requests.

pub mod body;
pub mod catalog;
pub mod config;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod mcp;
pub mod runtime;
pub mod sandbox;
pub mod scaffold;
pub mod validation;
