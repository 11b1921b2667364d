//! `wharf upload` and `wharf download`: batches of transfers, a few at a
//! time, through the gateway's own calls. On a terminal, progress bars show
//! the transfers that take a while and the batch as a whole. Ctrl-C drops the
//! running transfers, whose atomic writes then remove their temporary files,
//! waits for the gateway's clean-up, and exits with 130.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::task::JoinSet;

use super::output::{Output, human_size};
use wharf::body::Progress;
use wharf::gateway::{Caller, Downloaded, GatewayError, Source, UploadOptions, Uploaded};

/// A transfer gets a bar of its own once it has run this long (as does the
/// batch): quick ones print nothing but their result lines.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// How often the bars are redrawn from the transfers' byte counters.
const TICK: Duration = Duration::from_millis(100);

#[derive(Args)]
pub struct UploadArgs {
    #[arg(required = true, value_name = "PATH|-")]
    paths: Vec<PathBuf>,
    /// Provider to upload to [default: [host] default_provider]
    #[arg(long)]
    provider: Option<String>,
    /// What the provider should use the file for (e.g. file-extract)
    #[arg(long)]
    purpose: Option<String>,
    /// Name to record instead of the file's own (one file only)
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    batch: BatchArgs,
}

#[derive(Args)]
pub struct DownloadArgs {
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
    /// Destination file, or directory to download into [default: working directory]
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Take the copy held by this provider
    #[arg(long, conflicts_with = "derived")]
    provider: Option<String>,
    /// Fetch the provider's derived content (e.g. Kimi's extracted text) instead of the original bytes, into a separate file
    #[arg(long)]
    derived: bool,
    #[command(flatten)]
    batch: BatchArgs,
}

#[derive(Args)]
struct BatchArgs {
    /// Transfers to run at once; results are printed in the order the inputs were given
    #[arg(short, long, value_name = "N", default_value = "4", value_parser = parse_jobs)]
    jobs: NonZeroUsize,
}

fn parse_jobs(text: &str) -> Result<NonZeroUsize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("at least one transfer must run at a time; give 1 or more".into()),
        Ok(n) => Ok(NonZeroUsize::new(n).expect("not zero")),
        Err(e) => Err(format!("{e}; give a number of transfers, 1 or more")),
    }
}

pub async fn upload(caller: &Caller, args: UploadArgs, out: &mut Output) {
    let UploadArgs { paths, provider, purpose, name, batch } = args;
    if name.is_some() && paths.len() > 1 {
        out.usage(&"--name applies to one file; upload the files one at a time to name each");
        return;
    }
    let stdin = Path::new("-");
    if paths.iter().filter(|p| *p == stdin).count() > 1 {
        out.usage(&"standard input (-) can be uploaded once per batch");
        return;
    }
    let hinted = shows_bars(out);
    let planned = paths
        .into_iter()
        .map(|path| {
            let source = if path == stdin { Source::Stdin } else { Source::Path(path) };
            let (input, hint) = match &source {
                // The total bar's first guess; the gateway's count replaces it
                // once the file is open (and the sandbox has resolved the path).
                Source::Path(path) if hinted => {
                    (path.display().to_string(), std::fs::metadata(path).map_or(0, |m| m.len()))
                }
                Source::Path(path) => (path.display().to_string(), 0),
                _ => ("-".to_string(), 0),
            };
            Planned { input, hint, work: source }
        })
        .collect();
    let options = UploadOptions { provider, purpose, name, ..UploadOptions::default() };
    let transfer = |source, progress| {
        let (caller, options) = (caller.clone(), UploadOptions { progress: Some(progress), ..options.clone() });
        async move { caller.upload(source, &options).await }
    };
    run_batch(caller, "hashing", planned, batch.jobs, out, transfer, |u: &Uploaded| {
        let dedup = if u.deduplicated { "  (already there)" } else { "" };
        format!("{}  {}  {}  sha256:{}  {}{dedup}", u.id, u.provider, human_size(u.size), u.sha256, u.name)
    })
    .await;
}

pub async fn download(caller: &Caller, args: DownloadArgs, out: &mut Output) {
    let DownloadArgs { ids, output, provider, derived, batch } = args;
    let hinted = shows_bars(out) && !derived;
    let mut planned = Vec::with_capacity(ids.len());
    for id in ids {
        // The catalog's size, for the total bar; the download itself reports
        // an id it cannot resolve.
        let hint = match hinted {
            true => caller.details(&id).await.map_or(0, |d| d.file.size),
            false => 0,
        };
        planned.push(Planned { input: id.clone(), hint, work: id });
    }
    let transfer = |id: String, progress| {
        let (caller, output, provider) = (caller.clone(), output.clone(), provider.clone());
        async move {
            match derived {
                true => caller.download_derived(&id, output.as_deref()).await,
                false => caller.download_tracked(&id, output.as_deref(), provider.as_deref(), Some(progress)).await,
            }
        }
    };
    run_batch(caller, "starting", planned, batch.jobs, out, transfer, |d: &Downloaded| {
        let check = match (d.kind, d.verified) {
            ("derived", _) => "derived content, not the original".to_string(),
            (_, true) => format!("sha256:{} verified", d.sha256),
            (_, false) => format!("sha256:{} not verified", d.sha256),
        };
        format!("{}  {}  {}  {check}, from {}", d.id, d.path.display(), human_size(d.size), d.source)
    })
    .await;
}

/// Whether progress bars are drawn: on a terminal, and never with `--json`,
/// whose readers want results only.
fn shows_bars(out: &Output) -> bool {
    !out.json() && std::io::stderr().is_terminal()
}

/// One transfer of a batch, before it starts.
struct Planned<W> {
    /// What the user named (a path, an id), for messages and bars.
    input: String,
    /// The bytes to expect until the transfer knows (0: unknown).
    hint: u64,
    work: W,
}

/// Runs the transfers `jobs` at a time and prints each result in input order
/// (a result waits for those before it, the transfers do not). The exit code
/// becomes 1 if any failed, 130 if Ctrl-C stopped the batch. Each transfer
/// is a task of its own, so that a batch of small files (whose cost is
/// hashing, catalog writes and adapter calls, not waiting) uses every core;
/// leaving this function, however it happens, aborts the tasks left.
async fn run_batch<W, T, Fut>(
    caller: &Caller,
    preparing: &'static str,
    planned: Vec<Planned<W>>,
    jobs: NonZeroUsize,
    out: &mut Output,
    transfer: impl Fn(W, Arc<Progress>) -> Fut,
    human: impl Fn(&T) -> String,
) where
    T: Serialize + Send + 'static,
    Fut: Future<Output = Result<T, GatewayError>> + Send + 'static,
{
    let count = planned.len();
    let mut slots: Vec<Slot> = planned.iter().map(Slot::new).collect();
    let mut bars = shows_bars(out).then(|| Bars::new(preparing));
    out.set_bars(bars.as_ref().map(|b| b.multi.clone()));
    let mut waiting = planned.into_iter().enumerate();
    let mut running = JoinSet::new();
    let mut results: BTreeMap<usize, Result<T, GatewayError>> = BTreeMap::new();
    let mut printed = 0;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Listening for SIGINT replaces its default action (ending the process)
    // from the listener's first poll on. That poll happens here, before any
    // transfer starts: transfers run on other threads at once, and one
    // could be writing before the loop below first polls the listener.
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let listening = match futures::poll!(&mut interrupt) {
        Poll::Ready(Err(e)) => {
            tracing::warn!("cannot listen for Ctrl-C: {e}; it will end the batch abruptly");
            false
        }
        // Ready(Ok) cannot be: no signal was listened for before this poll.
        _ => true,
    };
    let mut interrupted = false;
    loop {
        while running.len() < jobs.get()
            && let Some((index, plan)) = waiting.next()
        {
            slots[index].started = Some(Instant::now());
            let work = transfer(plan.work, slots[index].progress.clone());
            running.spawn(async move { (index, work.await) });
        }
        tokio::select! {
            biased;
            // Only the first poll (above) can fail; from then on the
            // listener ends with a signal only.
            _ = &mut interrupt, if listening => {
                interrupted = true;
                break;
            }
            next = running.join_next() => {
                let Some(joined) = next else { break };
                // Only a panic ends a task here: none is aborted before the loop ends.
                let (index, result) = joined.unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()));
                slots[index].end(result.is_ok());
                results.insert(index, result);
                // Print what is ready in input order.
                while let Some(result) = results.remove(&printed) {
                    print_result(out, &slots[printed].input, result, &human);
                    printed += 1;
                }
            }
            _ = ticker.tick(), if bars.is_some() => {
                if let Some(bars) = &mut bars {
                    bars.draw(&mut slots);
                }
            }
        }
    }
    if interrupted {
        tokio::spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130); // a second Ctrl-C: no more waiting
            }
        });
        // Aborting the transfers stops them, once each task has dropped its
        // work (an abort only asks), which `shutdown` waits for. Dropping a
        // transfer removes its temporary files and hands the rest of its
        // clean-up (upload claims, backup records) to tasks the gateway
        // tracks, which `settle` then waits for.
        running.shutdown().await;
        caller.settle().await;
    }
    if let Some(bars) = bars {
        bars.clear(&mut slots);
    }
    out.set_bars(None);
    if interrupted {
        // Finished transfers held back behind unfinished ones are complete: say so.
        let finished = results.len() + printed;
        for (index, result) in results {
            print_result(out, &slots[index].input, result, &human);
        }
        out.interrupted(finished, count);
    }
}

fn print_result<T: Serialize>(
    out: &mut Output,
    input: &str,
    result: Result<T, GatewayError>,
    human: &impl Fn(&T) -> String,
) {
    match result {
        Ok(value) => out.item(&value, human),
        Err(e) => out.error(Some(input), &e),
    }
}

/// A transfer's state, for the bars.
struct Slot {
    input: String,
    hint: u64,
    /// The gateway counts the bytes moved (and to move) here.
    progress: Arc<Progress>,
    started: Option<Instant>,
    /// The bytes the transfer counts for in the total, once it ended: all of
    /// them when it completed (a deduplicated upload moves none), what it
    /// moved when it failed.
    ended: Option<u64>,
    bar: Option<ProgressBar>,
}

impl Slot {
    fn new<W>(plan: &Planned<W>) -> Self {
        Self {
            input: plan.input.clone(),
            hint: plan.hint,
            progress: Arc::default(),
            started: None,
            ended: None,
            bar: None,
        }
    }

    fn size(&self) -> u64 {
        self.ended.unwrap_or_else(|| self.progress.total().unwrap_or(self.hint))
    }

    /// Bytes moved, at most the size: a retried upload, or one that also
    /// sends a backup copy, moves its bytes more than once.
    fn done(&self) -> u64 {
        self.ended.unwrap_or_else(|| self.progress.done().min(self.size()))
    }

    fn end(&mut self, completed: bool) {
        self.ended = Some(if completed { self.size() } else { self.done() });
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Progress bars on stderr: one per transfer running longer than
/// [`SHOW_AFTER`], and one for the batch, below them.
struct Bars {
    multi: MultiProgress,
    started: Instant,
    /// Added once the batch has run [`SHOW_AFTER`].
    total: Option<ProgressBar>,
    /// What a transfer does before it moves bytes ("hashing"), for its bar.
    preparing: &'static str,
}

impl Bars {
    fn new(preparing: &'static str) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        Self { multi, started: Instant::now(), total: None, preparing }
    }

    fn draw(&mut self, slots: &mut [Slot]) {
        if self.started.elapsed() < SHOW_AFTER {
            return;
        }
        let style = |template| {
            let template = format!(
                "{template} [{{bar:30}}] {{binary_bytes}}/{{binary_total_bytes}}  {{binary_bytes_per_sec}}  ETA {{eta}}"
            );
            ProgressStyle::with_template(&template).expect("the template is valid").progress_chars("=> ")
        };
        let size = slots.iter().map(Slot::size).sum();
        let done = slots.iter().map(Slot::done).sum();
        let ended = slots.iter().filter(|slot| slot.ended.is_some()).count();
        let total = self.total.get_or_insert_with(|| {
            let bar = ProgressBar::new(size).with_style(style("{msg:>12}")).with_position(done);
            self.multi.add(bar)
        });
        total.set_message(format!("{ended}/{} done", slots.len()));
        total.set_length(size);
        total.set_position(done);
        for slot in slots.iter_mut().filter(|slot| slot.ended.is_none()) {
            let Some(started) = slot.started else { continue };
            if slot.bar.is_none() && started.elapsed() >= SHOW_AFTER {
                let bar = ProgressBar::new(slot.size()).with_style(style("{wide_msg}"));
                slot.bar = Some(self.multi.insert_before(total, bar));
            }
            if let Some(bar) = &slot.bar {
                // Until the gateway knows the size, it is still reading the
                // source (an upload hashes it first) or finding the copy.
                match slot.progress.total() {
                    None => bar.set_message(format!("{} ({})", slot.input, self.preparing)),
                    Some(_) => bar.set_message(slot.input.clone()),
                }
                bar.set_length(slot.size());
                bar.set_position(slot.done());
            }
        }
    }

    fn clear(self, slots: &mut [Slot]) {
        for bar in slots.iter_mut().filter_map(|slot| slot.bar.take()) {
            bar.finish_and_clear();
        }
        if let Some(total) = self.total {
            total.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
