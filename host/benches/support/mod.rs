//! What the benches share: reading their knobs from the environment,
//! running a command to see what it took, and taking turns with a peer.

#![allow(dead_code)] // each bench uses its own part of this module

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A bench knob: the environment variable's number, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What a command took: wall time, CPU time (user and system) and peak RSS.
#[derive(Debug, Clone, Copy)]
pub struct Took {
    pub wall: Duration,
    pub cpu: Duration,
    pub rss_kib: i64,
}

/// Runs a command to its end, returning what it took and its standard
/// output; a failed command is an error. The kernel's accounting of the
/// child (`wait4`) gives CPU time and peak RSS without sampling.
pub fn measure(cmd: &mut Command) -> anyhow::Result<(Took, String)> {
    let started = Instant::now();
    let child = cmd.stdout(Stdio::piped()).spawn().with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("piped");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out)?;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `usage` is a valid out-parameter.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    anyhow::ensure!(waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{cmd:?} failed");
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    Ok((Took { wall: started.elapsed(), cpu, rss_kib: usage.ru_maxrss }, out))
}

/// Runs Wharf's leg and its peer's, Wharf first or second: benches alternate
/// the order between rounds, since whoever goes first meets a different page
/// cache and server state.
pub fn in_turn<W, P>(
    wharf_first: bool,
    wharf: impl FnOnce() -> anyhow::Result<W>,
    peer: impl FnOnce() -> anyhow::Result<P>,
) -> anyhow::Result<(W, P)> {
    if wharf_first {
        let wharf = wharf()?;
        Ok((wharf, peer()?))
    } else {
        let peer = peer()?;
        Ok((wharf()?, peer))
    }
}
