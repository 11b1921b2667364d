//! A `wharf serve` host of a multi-host deployment, for the tests and the
//! catalog bench: the catalog in a shared PostgreSQL database, and an S3
//! provider (`s3`, the default and the cache) that every host reaches. Its
//! own data directory holds only what a host may lose: compiled components
//! and the spool.

#![allow(dead_code)] // each test binary or bench uses its own part of this module

use crate::common::Scratch;
use crate::s3_server;
use crate::serve::{self, ServeOptions, ServeProcess};

pub const DATABASE_ENV: &str = "WHARF_TEST_DATABASE_URL";
const KEY_ID_ENV: &str = "WHARF_TEST_S3_ACCESS_KEY_ID";
const SECRET_ENV: &str = "WHARF_TEST_S3_SECRET_ACCESS_KEY";

/// Where a host keeps what it shares with the others.
pub struct Shared<'a> {
    pub database_url: &'a str,
    /// The S3 endpoint this host sends to (the server, or a proxy in front of it).
    pub s3_endpoint: &'a str,
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub claim_ttl_secs: u64,
    pub max_upload_bytes: usize,
}

pub struct Host {
    _scratch: Scratch,
    pub serve: ServeProcess,
}

/// Starts a host; panics, with its stderr, if it does not start.
pub fn start_host(shared: &Shared) -> Host {
    let scratch = Scratch::new();
    serve::remove_at_exit(scratch.dir.path());
    let host = format!(
        "default_provider = \"s3\"\ncache = \"s3\"\ncatalog = \"postgres\"\nclaim_ttl_secs = {}",
        shared.claim_ttl_secs
    );
    let Shared { s3_endpoint: endpoint, bucket, prefix, max_upload_bytes, .. } = shared;
    let extra = format!(
        r#"
[host.postgres]
url_env = "{DATABASE_ENV}"

[server]
auth = "token"
max_upload_bytes = {max_upload_bytes}
shutdown_grace_secs = 2

[providers.s3]
plugin = "s3"
allowed_hosts = ["{endpoint}"]
secrets = {{ access_key_id = "{KEY_ID_ENV}", secret_access_key = "{SECRET_ENV}" }}
config = {{ endpoint = "{endpoint}", region = "{region}", bucket = "{bucket}", prefix = "{prefix}" }}
"#,
        region = s3_server::REGION,
    );
    let options = ServeOptions::default()
        .host(&host)
        .env(DATABASE_ENV, shared.database_url)
        .env(KEY_ID_ENV, s3_server::ACCESS_KEY_ID)
        .env(SECRET_ENV, s3_server::SECRET_ACCESS_KEY);
    let serve = ServeProcess::start_with(&scratch, &extra, options);
    Host { _scratch: scratch, serve }
}
