//! Everything the CLI prints goes through [`Output`]: results on stdout (one
//! JSON object per line with `--json`, else a human line), errors and notes
//! on stderr. Writes never panic: `println!` would on a closed pipe
//! (`wharf ls | head`); here a reader that went away only stops the printing.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use indicatif::MultiProgress;
use serde::Serialize;

/// Exit code of a batch stopped by Ctrl-C: 128 + SIGINT, as shells report it.
const INTERRUPTED: u8 = 130;
/// Exit code of a usage error, as clap's own.
const USAGE: u8 = 2;

/// Prints results and errors in the chosen format, remembering how the
/// command went for its exit code.
pub struct Output {
    json: bool,
    failed: bool,
    usage: bool,
    interrupted: bool,
    /// Stdout's reader went away: results have nowhere to go from then on.
    closed: bool,
    /// Progress bars being drawn on stderr, which lines are written around.
    bars: Option<MultiProgress>,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json, failed: false, usage: false, interrupted: false, closed: false, bars: None }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether stdout's reader went away, so that listings can stop early.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Lines are written around these bars until `None` is set.
    pub fn set_bars(&mut self, bars: Option<MultiProgress>) {
        self.bars = bars;
    }

    /// Prints one result.
    pub fn item<T: Serialize>(&mut self, value: &T, human: impl FnOnce(&T) -> String) {
        let line = if self.json { serde_json::to_string(value).expect("results serialize") } else { human(value) };
        self.stdout_line(&line);
    }

    /// Reports a failed item (or command, without `input`): the exit code becomes 1.
    pub fn error(&mut self, input: Option<&str>, err: &dyn std::fmt::Display) {
        self.failed = true;
        let line = if self.json {
            serde_json::json!({ "input": input, "error": err.to_string() }).to_string()
        } else {
            match input {
                Some(input) => format!("error: {input}: {err}"),
                None => format!("error: {err}"),
            }
        };
        self.stderr_line(&line);
    }

    /// Reports a usage error found past clap's own checks: the exit code
    /// becomes clap's, 2.
    pub fn usage(&mut self, err: &dyn std::fmt::Display) {
        self.usage = true;
        self.error(None, err);
    }

    /// Reports that Ctrl-C stopped a batch after `finished` of `count` items:
    /// the exit code becomes 130.
    pub fn interrupted(&mut self, finished: usize, count: usize) {
        self.interrupted = true;
        let line = if self.json {
            serde_json::json!({ "interrupted": true, "finished": finished, "of": count }).to_string()
        } else {
            format!("interrupted: {finished} of {count} finished; the unfinished ones left nothing behind")
        };
        self.stderr_line(&line);
    }

    pub fn exit_code(&self) -> ExitCode {
        if self.interrupted {
            ExitCode::from(INTERRUPTED)
        } else if self.usage {
            ExitCode::from(USAGE)
        } else if self.failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }

    fn stdout_line(&mut self, line: &str) {
        if self.closed {
            return;
        }
        let written = self.around_bars(|| {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}").and_then(|()| stdout.flush())
        });
        match written {
            Ok(()) => {}
            // The reader has all it wanted: not a failure of this command.
            Err(e) if e.kind() == ErrorKind::BrokenPipe => self.closed = true,
            Err(e) => {
                self.closed = true;
                self.error(None, &format_args!("writing to standard output: {e}"));
            }
        }
    }

    fn stderr_line(&self, line: &str) {
        // A closed stderr leaves nowhere to say so.
        let _ = self.around_bars(|| writeln!(std::io::stderr().lock(), "{line}"));
    }

    /// Runs `write` with the progress bars out of the way, so that lines and
    /// bars do not tear each other when both reach the terminal.
    fn around_bars<R>(&self, write: impl FnOnce() -> R) -> R {
        match &self.bars {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
