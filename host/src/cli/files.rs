//! The file commands besides transfers: listing with filters, metadata
//! (`tag`, `edit`), direct references (`register`), removal, statistics and
//! retention (`gc`). Each parses its arguments, calls one gateway operation
//! and prints the result.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveTime};
use clap::Args;

use super::output::{Output, human_size};
use wharf::catalog::{CopyState, ObjectQuery, ObjectRecord, Stats};
use wharf::gateway::{Caller, FileUpdate, FsckOptions, FsckReport, Gateway, GcReport};

#[derive(Args)]
pub struct LsArgs {
    #[arg(long)]
    provider: Option<String>,
    /// Only files with this tag
    #[arg(long)]
    tag: Option<String>,
    /// Only files whose name matches this glob (`*`, `?`; case-insensitive)
    #[arg(long, value_name = "GLOB")]
    name: Option<String>,
    /// Only files of this MIME type or pattern (`image/*`)
    #[arg(long, value_name = "TYPE")]
    mime: Option<String>,
    /// Only files recorded since DATE (YYYY-MM-DD, RFC 3339, or an age such as 7d, 12h)
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    since: Option<i64>,
    /// Ask the provider what it holds instead of reading Wharf's records
    #[arg(long, conflicts_with_all = ["tag", "name", "mime", "since"])]
    remote: bool,
}

#[derive(Args)]
pub struct TagArgs {
    id: String,
    /// +TAG adds a tag, -TAG removes one
    #[arg(required = true, value_name = "+TAG|-TAG", allow_hyphen_values = true)]
    changes: Vec<String>,
}

#[derive(Args)]
pub struct EditArgs {
    id: String,
    /// A new name
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Set a key-value pair
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Remove a key
    #[arg(long = "unset", value_name = "KEY")]
    unset: Vec<String>,
}

#[derive(Args)]
pub struct RegisterArgs {
    /// s3://bucket/key, a provider URL of the object, a Supabase bucket/key, a local SHA-256
    #[arg(required = true, value_name = "REFERENCE")]
    references: Vec<String>,
    /// The provider that holds them [default: the first that recognises each]
    #[arg(long)]
    provider: Option<String>,
    /// Do not read objects whose provider keeps no SHA-256: record them unverified
    #[arg(long)]
    no_hash: bool,
}

#[derive(Args)]
pub struct RmArgs {
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
    /// Also delete registered files' objects at their provider
    #[arg(long)]
    delete_remote: bool,
}

#[derive(Args)]
pub struct StatsArgs {
    /// Count activity since DATE (YYYY-MM-DD, RFC 3339, or an age such as 30d)
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    since: Option<i64>,
}

#[derive(Args)]
pub struct FsckArgs {
    /// Put right what is found (mark, re-fetch from another copy, or remove) and say what was done
    #[arg(long)]
    repair: bool,
    /// Also read every copy and check it against its SHA-256
    #[arg(long)]
    verify: bool,
    /// Check only this provider (and not the spool)
    #[arg(long, value_name = "P")]
    provider: Option<String>,
}

#[derive(Args)]
pub struct GcArgs {
    /// Report what would go, remove nothing
    #[arg(long)]
    dry_run: bool,
}

fn describe(o: &ObjectRecord) -> String {
    let state = match o.state {
        CopyState::Present => "",
        CopyState::Gone => "  (gone)",
        CopyState::Corrupt => "  (corrupt)",
    };
    let unverified = if o.verified { "" } else { "  (unverified)" };
    let tags = if o.tags.is_empty() { String::new() } else { format!("  [{}]", o.tags.join(", ")) };
    format!("{}  {}  {}  {}{tags}{state}{unverified}", o.id, o.provider, human_size(o.size), o.name)
}

/// `wharf ls`: Wharf's records, or what the provider holds. Stops early when
/// stdout's reader goes away (`wharf ls | head`).
pub async fn list(caller: &Caller, args: LsArgs, out: &mut Output) {
    if args.remote {
        match caller.list_remote(args.provider.as_deref()).await {
            Ok(items) => {
                for item in &items {
                    if out.closed() {
                        break;
                    }
                    out.item(item, |i| {
                        let size = i.size.map_or_else(|| "?".into(), human_size);
                        format!("{}  {size}  {}", i.remote_id, i.name.as_deref().unwrap_or(""))
                    });
                }
            }
            Err(e) => out.error(args.provider.as_deref(), &e),
        }
        return;
    }
    let query = ObjectQuery {
        provider: args.provider.clone(),
        tag: args.tag,
        name_glob: args.name,
        mime: args.mime,
        since: args.since,
        ..ObjectQuery::default()
    };
    match caller.list(query).await {
        Ok(page) => {
            for object in &page.files {
                if out.closed() {
                    break;
                }
                out.item(object, describe);
            }
        }
        Err(e) => out.error(args.provider.as_deref(), &e),
    }
}

pub async fn tag(caller: &Caller, args: TagArgs, out: &mut Output) {
    let mut update = FileUpdate::default();
    for change in &args.changes {
        match change.split_at_checked(1) {
            Some(("+", tag)) if !tag.is_empty() => update.add_tags.push(tag.to_string()),
            Some(("-", tag)) if !tag.is_empty() => update.remove_tags.push(tag.to_string()),
            _ => return out.usage(&format_args!("{change:?}: write +TAG to add a tag or -TAG to remove one")),
        }
    }
    updated(caller, &args.id, update, out).await;
}

pub async fn edit(caller: &Caller, args: EditArgs, out: &mut Output) {
    let mut attributes = BTreeMap::new();
    for pair in &args.set {
        match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => attributes.insert(key.to_string(), Some(value.to_string())),
            _ => return out.usage(&format_args!("--set {pair:?}: write KEY=VALUE")),
        };
    }
    for key in &args.unset {
        attributes.insert(key.clone(), None);
    }
    let update = FileUpdate { name: args.name, description: args.description, attributes, ..FileUpdate::default() };
    updated(caller, &args.id, update, out).await;
}

async fn updated(caller: &Caller, id: &str, update: FileUpdate, out: &mut Output) {
    match caller.update(id, update).await {
        Ok(record) => out.item(&record, |o| {
            let pairs: Vec<String> = o.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let pairs = if pairs.is_empty() { String::new() } else { format!("  {}", pairs.join(" ")) };
            format!("{}{pairs}", describe(o))
        }),
        Err(e) => out.error(Some(id), &e),
    }
}

pub async fn register(caller: &Caller, args: RegisterArgs, out: &mut Output) {
    for reference in &args.references {
        match caller.register(reference, args.provider.as_deref(), !args.no_hash).await {
            Ok(registered) => out.item(&registered, |r| {
                let digest = match r.digest_source {
                    wharf::gateway::DigestSource::Provider => "SHA-256 from the provider",
                    wharf::gateway::DigestSource::Read => "SHA-256 from reading it once",
                    wharf::gateway::DigestSource::None => "not hashed: downloads are unverified",
                };
                format!("{}  ({digest})", describe(&r.file))
            }),
            Err(e) => out.error(Some(reference), &e),
        }
    }
}

pub async fn remove(caller: &Caller, args: RmArgs, out: &mut Output) {
    for id in args.ids {
        match caller.remove(&id, args.delete_remote).await {
            Ok(removed) => out.item(&removed, |o| {
                let kept = if o.registered && !args.delete_remote { "; the object stays at its provider" } else { "" };
                format!("removed {} ({} at {}){kept}", o.id, o.name, o.provider)
            }),
            Err(e) => out.error(Some(&id), &e),
        }
    }
}

pub async fn stats(caller: &Caller, args: StatsArgs, out: &mut Output) {
    match caller.stats(args.since).await {
        Ok(stats) => out.item(&stats, human_stats),
        Err(e) => out.error(None, &e),
    }
}

fn human_stats(stats: &Stats) -> String {
    let mut lines = vec!["files".to_string()];
    for (provider, held) in &stats.providers {
        lines.push(format!("  {provider:<12} {:>8} files  {:>10}", held.files, human_size(held.bytes)));
    }
    lines.push(format!("uploads          {:>8}  {:>10} sent", stats.uploads, human_size(stats.bytes_uploaded)));
    lines.push(format!("dedup hits       {:>8}  {:>10} not sent", stats.dedup_hits, human_size(stats.bytes_not_sent)));
    let downloads: u64 = stats.downloads.values().sum();
    let cached = stats.downloads.get("cache").copied().unwrap_or(0);
    let rate = if downloads > 0 { format!("{:.0}%", cached as f64 * 100.0 / downloads as f64) } else { "-".into() };
    lines.push(format!(
        "downloads        {downloads:>8}  {:>10}  cache hit rate {rate}",
        human_size(stats.bytes_downloaded)
    ));
    for (source, n) in &stats.downloads {
        lines.push(format!("  from {source:<10} {n:>8}"));
    }
    if !stats.failures.is_empty() {
        lines.push("failures".into());
        for (kind, n) in &stats.failures {
            lines.push(format!("  {kind:<24} {n:>6}"));
        }
    }
    if !stats.most_downloaded.is_empty() {
        lines.push("most downloaded".into());
        for file in &stats.most_downloaded {
            lines.push(format!("  {:>6}  {}  {}", file.downloads, file.id, file.name));
        }
    }
    lines.join("\n")
}

pub async fn gc(gateway: &Gateway, args: GcArgs, out: &mut Output) {
    match gateway.gc(args.dry_run).await {
        Ok(report) => out.item(&report, human_gc),
        Err(e) => out.error(None, &e),
    }
}

pub async fn fsck(gateway: &Gateway, args: FsckArgs, out: &mut Output) {
    let options = FsckOptions { repair: args.repair, verify: args.verify, provider: args.provider };
    match gateway.fsck(&options).await {
        Ok(report) => {
            out.item(&report, human_fsck);
            if !report.is_clean() && !report.repair {
                out.error(None, &"problems found; `wharf fsck --repair` puts right what it can");
            }
        }
        Err(e) => out.error(None, &e),
    }
}

fn human_fsck(report: &FsckReport) -> String {
    let mut lines = vec![report.summary()];
    lines.extend(report.partial.iter().map(|p| format!("  not checked: {p}")));
    for f in &report.findings {
        let at = f.provider.as_deref().map(|p| format!(" at {p}")).unwrap_or_default();
        let records = if f.records.is_empty() { String::new() } else { format!(" ({})", f.records.join(", ")) };
        let repair = f.repair.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        lines.push(format!("  {} {}{at}{records}: {}{repair}", f.kind, f.object, f.detail));
    }
    lines.join("\n")
}

fn human_gc(report: &GcReport) -> String {
    let mut lines = vec![report.summary()];
    lines.extend(report.gone_records.iter().map(|id| format!("  forgot {id} (gone)")));
    lines.extend(report.old_downloads.iter().map(|p| format!("  old download {}", p.display())));
    lines.extend(
        report
            .evicted
            .iter()
            .map(|e| format!("  evicted {} ({}, {}; kept at {})", e.remote_id, e.name, human_size(e.size), e.kept_at)),
    );
    lines.join("\n")
}

/// A point in time from `--since`: seconds since the epoch, a date
/// (YYYY-MM-DD, midnight UTC), an RFC 3339 time (…T…Z or …T…+01:00), or an
/// age back from now (`30d`, `12h`, `15m`, `90s`).
fn parse_since(text: &str) -> Result<i64, String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let hint = || format!("{text:?} is not a date: use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or an age such as 7d or 12h");
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    if let Some((number, unit)) = text.split_at_checked(text.len().saturating_sub(1))
        && let Ok(n) = number.parse::<i64>()
    {
        let secs = match unit {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            _ => return Err(hint()),
        };
        return Ok(now - n * secs);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| hint())?;
    Ok(date.and_time(NaiveTime::MIN).and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ages_parse() {
        assert_eq!(parse_since("1970-01-02"), Ok(86_400));
        assert_eq!(parse_since("2026-12-01"), Ok(1_796_083_200));
        assert_eq!(parse_since("2026-12-01T01:02:03Z"), Ok(1_796_083_200 + 3723));
        assert_eq!(parse_since("2026-12-01T02:02:03+01:00"), Ok(1_796_083_200 + 3723));
        assert_eq!(parse_since("1700000000"), Ok(1_700_000_000));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((parse_since("7d").unwrap() - (now - 7 * 86_400)).abs() <= 1);
        for bad in ["yesterday", "2026-13-01", "2026-02-30", "2026-12-01T10:00:00", "7w", ""] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
