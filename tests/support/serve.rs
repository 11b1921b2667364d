//! A `wharf serve` process for the HTTP tests: writes the config, starts the
//! real binary on a free loopback port, waits for its "listening on" line,
//! and runs `wharf token …` against the same config.
//!
//! Every process started here is killed when its `ServeProcess` is dropped,
//! and, for one kept in a static (never dropped), when the test binary exits
//! (an `atexit` hook; `PR_SET_PDEATHSIG` if the test binary dies). All
//! processes of one test binary share one compiled-component cache, so each
//! adapter is compiled once per test binary.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock, mpsc};
use std::time::{Duration, Instant};

use crate::common::Scratch;

/// How long a server may take to print its "listening on" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `wait` waits for the process to exit (the grace period plus slack).
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
const LISTENING: &str = "wharf serve: listening on ";

/// How a server is started beyond its config.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// `--listen`.
    pub listen: String,
    /// Extra environment for the server and the `wharf token` commands
    /// (e.g. the secrets a provider entry names, the database URL).
    pub env: Vec<(String, String)>,
    /// The `[host]` keys after `data_dir` and `sandbox_roots`; the local
    /// provider for everything when `None` (see `Scratch::write_config_with_host`).
    pub host: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { listen: "127.0.0.1:0".into(), env: Vec::new(), host: None }
    }
}

impl ServeOptions {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = addr.into();
        self
    }

    pub fn host(mut self, settings: &str) -> Self {
        self.host = Some(settings.into());
        self
    }
}

/// Why a server did not start.
#[derive(Debug)]
pub struct StartFailure {
    /// `None` when it was still running at the timeout (it was killed).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

pub struct ServeProcess {
    /// `http://127.0.0.1:PORT`, from the "listening on" line.
    pub base_url: String,
    pub addr: SocketAddr,
    pub pid: u32,
    config: PathBuf,
    work: PathBuf,
    stderr_path: PathBuf,
    env: Vec<(String, String)>,
    child: Mutex<Child>,
}

impl ServeProcess {
    /// Writes the config (`Scratch::write_config(config_extra)`: the local
    /// provider plus whatever sections the test adds, e.g. `[server]`,
    /// `[server.links]`, `[principals.NAME]`, `[providers.NAME]`) and starts
    /// the server on a free loopback port. Panics, with its stderr, if it
    /// does not start.
    pub fn start(scratch: &Scratch, config_extra: &str) -> Self {
        Self::start_with(scratch, config_extra, ServeOptions::default())
    }

    pub fn start_with(scratch: &Scratch, config_extra: &str, options: ServeOptions) -> Self {
        Self::try_start(scratch, config_extra, options).unwrap_or_else(|failure| {
            let status = match failure.status {
                Some(status) => format!("it exited ({status})"),
                None => format!("it printed no {LISTENING:?} line within {START_TIMEOUT:?} (killed)"),
            };
            panic!(
                "wharf serve did not start: {status}.\nconfig:\n{}\nstdout:\n{}\nstderr:\n{}",
                std::fs::read_to_string(scratch.config_path()).unwrap_or_default(),
                failure.stdout,
                failure.stderr
            )
        })
    }

    /// Like `start`, but a server that exits (or never says it listens)
    /// is an `Err` with its exit status and output, for tests of refusals.
    pub fn try_start(scratch: &Scratch, config_extra: &str, options: ServeOptions) -> Result<Self, StartFailure> {
        let config = match &options.host {
            Some(host) => scratch.write_config_with_host(host, config_extra),
            None => scratch.write_config(config_extra),
        };
        link_shared_components(&scratch.data());
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let stderr_path = scratch.dir.path().join(format!("serve-{}.stderr", COUNTER.fetch_add(1, Ordering::Relaxed)));
        let stderr_file = std::fs::File::create(&stderr_path).expect("creating the server's stderr file");

        let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
        command
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", &options.listen])
            .current_dir(scratch.work())
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file));
        // Only one server starts at a time: the first compiles the adapters
        // into the shared cache, the others find them there.
        let _starting = lock(start_lock());
        let mut child = spawn_kept(command).expect("spawning wharf serve");
        let pid = child.id();
        live_pids().push(pid);

        let lines = read_lines(child.stdout.take().unwrap());
        let mut seen = Vec::new();
        let started = Instant::now();
        let failure = |child: &mut Child, seen: &[String], status: Option<ExitStatus>| {
            let status = status.or_else(|| {
                let _ = child.kill();
                None
            });
            let _ = child.wait();
            live_pids().retain(|p| *p != pid);
            StartFailure {
                status,
                stdout: seen.join("\n"),
                stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
            }
        };
        loop {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix(LISTENING) {
                        let base_url = url.trim().trim_end_matches('/').to_string();
                        let addr = base_url
                            .strip_prefix("http://")
                            .and_then(|a| a.parse::<SocketAddr>().ok())
                            .unwrap_or_else(|| panic!("the listening line names no http://IP:PORT: {line:?}"));
                        assert_ne!(addr.port(), 0, "the listening line must name the real port: {line:?}");
                        return Ok(Self {
                            base_url,
                            addr,
                            pid,
                            config,
                            work: scratch.work(),
                            stderr_path,
                            env: options.env,
                            child: Mutex::new(child),
                        });
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = child.try_wait().unwrap() {
                        return Err(failure(&mut child, &seen, Some(status)));
                    }
                    if started.elapsed() > START_TIMEOUT {
                        return Err(failure(&mut child, &seen, None));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Standard output closed without the line: wait for the exit.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while Instant::now() < deadline {
                        if let Some(status) = child.try_wait().unwrap() {
                            return Err(failure(&mut child, &seen, Some(status)));
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    return Err(failure(&mut child, &seen, None));
                }
            }
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Runs `wharf --config <cfg> ARGS…` with this server's environment.
    pub fn wharf(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.work)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("running wharf")
    }

    /// `wharf --json token create --principal NAME [--admin]`: the whole
    /// JSON answer (`id`, `principal`, `admin`, `token`, `expires_at`).
    pub fn token_record(&self, principal: &str, admin: bool) -> serde_json::Value {
        let mut args = vec!["--json", "token", "create", "--principal", principal];
        if admin {
            args.push("--admin");
        }
        let out = self.wharf(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "wharf token create --principal {principal} failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("token create printed no JSON ({e}): {stdout}"));
        assert!(record["token"].is_string(), "token create: no \"token\" in {record}");
        record
    }

    /// A new token for `principal`.
    pub fn token(&self, principal: &str, admin: bool) -> String {
        self.token_record(principal, admin)["token"].as_str().unwrap().to_string()
    }

    /// What the server has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) with a pid this process spawned and has not reaped.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {}: {}", self.pid, std::io::Error::last_os_error());
    }

    /// Waits for the process to exit; panics after a minute.
    pub fn wait(&self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let mut child = lock(&self.child);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "wharf serve (pid {}) did not exit within {EXIT_TIMEOUT:?}; stderr:\n{}",
                self.pid,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        lock(&self.child).try_wait().unwrap()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
        live_pids().retain(|p| *p != self.pid);
    }
}

/// An HTTP client for the tests (plain HTTP, no proxy).
pub fn client() -> reqwest::Client {
    client_builder().build().expect("building an HTTP client")
}

/// What `client` builds, for a test that needs something different.
pub fn client_builder() -> reqwest::ClientBuilder {
    // reqwest is built without a default TLS provider; plain HTTP still wants one set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().connect_timeout(Duration::from_secs(10)).read_timeout(Duration::from_secs(60))
}

/// Removes `path` (a directory) when the test binary exits: for scratch
/// directories kept in statics, which are never dropped.
pub fn remove_at_exit(path: &Path) {
    register_exit_hook();
    lock(exit_dirs()).push(path.to_path_buf());
}

// ---- process bookkeeping ----

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn start_lock() -> &'static Mutex<()> {
    static LOCK: Mutex<()> = Mutex::new(());
    &LOCK
}

fn live_pids() -> MutexGuard<'static, Vec<u32>> {
    static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    register_exit_hook();
    lock(&PIDS)
}

fn exit_dirs() -> &'static Mutex<Vec<PathBuf>> {
    static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    &DIRS
}

fn register_exit_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a plain function; it runs once, at exit.
        unsafe { libc::atexit(at_exit) };
    });
}

extern "C" fn at_exit() {
    // Servers still alive here live in statics: kill them, then remove
    // the directories registered for it.
    let pids: Vec<u32> = live_pids().clone();
    for pid in pids {
        // SAFETY: pids of children spawned here and not yet reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
            libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
        }
    }
    for dir in lock(exit_dirs()).drain(..) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `<data>/components` → one cache directory shared by this test binary.
fn link_shared_components(data: &Path) {
    static SHARED: OnceLock<PathBuf> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wharf-serve-components-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the shared component cache");
        remove_at_exit(&dir);
        dir
    });
    std::fs::create_dir_all(data).expect("creating the data directory");
    let link = data.join("components");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(shared, &link).expect("linking the shared component cache");
    }
}

/// Spawns on one thread that lives as long as the test binary, so that
/// `PR_SET_PDEATHSIG` (which fires when the spawning *thread* ends) kills the
/// server only when the test binary itself goes away.
fn spawn_kept(mut command: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("wharf-serve-spawner".into())
            .spawn(move || {
                for (mut command, reply) in receiver {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("starting the spawner thread");
        Mutex::new(jobs)
    });
    let (reply, answer) = mpsc::channel();
    lock(spawner).send((command, reply)).expect("the spawner thread is alive");
    answer.recv().expect("the spawner thread answers")
}

/// The lines of the server's stdout, read on a thread that keeps draining
/// it after the test stops listening.
fn read_lines(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) => {
                    let _ = sender.send(line);
                }
                Err(_) => break,
            }
        }
    });
    receiver
}
