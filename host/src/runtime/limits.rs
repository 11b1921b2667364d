//! Memory and CPU limits for one adapter call.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// Refuses growth past the adapter's memory limit with an error that names
/// the adapter and the limit, instead of the guest's opaque allocation trap.
pub struct MemoryLimiter {
    pub adapter: String,
    pub max_bytes: u64,
}

/// Recognisable in the error chain of a call that hit its memory limit.
#[derive(Debug, thiserror::Error)]
#[error("adapter {adapter} exceeded its memory limit of {limit_mib} MiB (it asked for {asked_mib} MiB)")]
pub struct MemoryLimitExceeded {
    pub adapter: String,
    pub limit_mib: u64,
    pub asked_mib: u64,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_bytes {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                adapter: self.adapter.clone(),
                limit_mib: self.max_bytes >> 20,
                asked_mib: (desired as u64).div_ceil(1 << 20),
            }));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; a legitimate adapter needs a few thousand.
        Ok(desired <= 100_000)
    }
}

/// The engine's epoch ticks this often; CPU limits are counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Counts how many ticks the guest has run, for the CPU limit.
///
/// The epoch deadline is always one tick ahead, so the callback runs about once
/// per tick of guest execution. Time spent in host calls (a transfer can take
/// minutes) passes without callbacks and costs at most one tick per call: the
/// wall-clock timeout is what bounds those.
pub struct CpuBudget {
    pub ticks_left: u64,
}

impl CpuBudget {
    pub fn new(cpu: Duration) -> Self {
        Self { ticks_left: (cpu.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 }
    }
}
