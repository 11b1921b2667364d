//! A real PostgreSQL server for the tests and benches: Debian's server
//! binaries (`/usr/lib/postgresql/*/bin`; scripts/test installs the
//! `postgresql` package), a cluster made by `initdb` in a temporary
//! directory, listening on a free loopback port (and a socket in that
//! directory), trusting local connections as `postgres`.
//!
//! `initdb` and `postgres` refuse to run as root, so when the tests run as
//! root the directory belongs to the `postgres` user and every server
//! command runs as that user.
//!
//! `pg_ctl` starts the server in the background. A small shell supervisor
//! holds the read end of a pipe from this process: when the pipe closes (the
//! server is dropped, or the test process exits or dies, which a server kept
//! in a static for a whole test binary needs), it stops the server with
//! `pg_ctl -m immediate` and removes the directory.

#![allow(dead_code)] // each test binary or bench uses its own part of this module

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the server may take to accept connections (about 3 s here).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(50);

const SUPERVISOR: &str = r#"
bin=$1; dir=$2
read _closed
"$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
rm -rf "$dir"
"#;

pub struct PostgresServer {
    pub port: u16,
    dir: PathBuf,
    supervisor: Child,
}

/// The newest `/usr/lib/postgresql/VERSION/bin` with an `initdb`.
pub fn server_binaries() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten();
    let mut found: Vec<(u32, PathBuf)> = versions
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries: /usr/lib/postgresql/*/bin/initdb is missing; run scripts/test \
             (it installs Debian's postgresql package), or apt-get install postgresql"
        )
    })
}

/// The `postgres` user's uid and gid, from /etc/passwd.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields[..] {
                ["postgres", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
                _ => None,
            }
        })
        .expect(
            "running as root, the server must run as the postgres user, and /etc/passwd has none; \
             apt-get install postgresql creates it",
        )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command for one of the server's binaries, run as `postgres` when we are root.
fn server_command(program: &Path, dir: &Path) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut command = Command::new(program);
    // The server changes to its data directory; the caller's may be unreadable to it.
    command.current_dir(dir).env("LC_ALL", "C");
    if is_root() {
        let (uid, gid) = postgres_user();
        command.uid(uid).gid(gid);
    }
    command
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port").local_addr().unwrap().port()
}

impl PostgresServer {
    /// One server for the whole test binary, started on first use.
    pub async fn shared() -> &'static Self {
        static SHARED: tokio::sync::OnceCell<PostgresServer> = tokio::sync::OnceCell::const_new();
        SHARED.get_or_init(|| Self::start(false)).await
    }

    /// Starts a server and waits until it answers a query. `durable`: with
    /// PostgreSQL's default fsync settings (for benchmarks); tests turn
    /// fsync off, since a crash of the machine loses nothing they need.
    pub async fn start(durable: bool) -> Self {
        let bin = server_binaries();
        let dir =
            tempfile::Builder::new().prefix("wharf-pg-").tempdir().expect("creating a directory for PostgreSQL").keep();
        if is_root() {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("giving the cluster directory to postgres");
        }
        let supervisor = server_command(Path::new("sh"), &dir)
            .args(["-c", SUPERVISOR, "wharf-pg-supervisor"])
            .arg(&bin)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting sh to supervise PostgreSQL");
        let port = free_port();
        let server = Self { port, dir, supervisor };

        let data = server.dir.join("data");
        let initdb = server_command(&bin.join("initdb"), &server.dir)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .expect("running initdb");
        assert!(
            initdb.status.success(),
            "initdb -D {} failed ({}):\n{}{}",
            data.display(),
            initdb.status,
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut options =
            format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300", server.dir.display());
        if !durable {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        // -W: return at once; readiness is polled below with a real connection.
        let started = server_command(&bin.join("pg_ctl"), &server.dir)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(server.log_path())
            .args(["-o", &options, "-W", "start"])
            .output()
            .expect("running pg_ctl start");
        assert!(
            started.status.success(),
            "pg_ctl start failed ({}):\n{}{}\nserver log:\n{}",
            started.status,
            String::from_utf8_lossy(&started.stdout),
            String::from_utf8_lossy(&started.stderr),
            server.log()
        );
        server.wait_ready().await;
        server
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let error = match tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    match client.simple_query("SELECT 1").await {
                        Ok(_) => return,
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) => e.to_string(),
            };
            assert!(
                started.elapsed() < START_TIMEOUT,
                "PostgreSQL on 127.0.0.1:{} did not accept a connection within {START_TIMEOUT:?} (last: {error}); log:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The URL of one of its databases (trust authentication: no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database: its URL.
    pub async fn create_database(&self) -> String {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!("wharf_{}", COUNTER.fetch_add(1, Ordering::Relaxed));
        let admin = connect(&self.url("postgres")).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e:?}"));
        self.url(&name)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Closing the pipe tells the supervisor to stop the server and clean up.
        drop(self.supervisor.stdin.take());
        let _ = self.supervisor.wait();
    }
}

/// A client on the current runtime, for a test's own queries.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e:?}"));
    tokio::spawn(connection);
    client
}
