//! The `wharf` binary as a user runs it: exit codes, JSON lines, error text.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Scratch, pattern, sha256_hex, wharf};

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn upload_then_download_with_json_output() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let content = pattern(70_000);
    scratch.write("a.bin", &content);
    scratch.write("b.txt", b"bee");

    let up = wharf(&scratch, &["--json", "upload", "a.bin", "b.txt"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let lines = json_lines(&up);
    assert_eq!(lines.len(), 2, "one line per file");
    assert_eq!(lines[0]["sha256"], sha256_hex(&content));
    assert_eq!(lines[0]["provider"], "local");
    assert_eq!(lines[0]["deduplicated"], false);
    let id = lines[0]["id"].as_str().unwrap();

    let down = wharf(&scratch, &["--json", "download", id, "-o", "copy.bin"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let result = &json_lines(&down)[0];
    assert_eq!(result["verified"], true);
    assert_eq!(result["source"], "provider");
    assert_eq!(std::fs::read(scratch.work().join("copy.bin")).unwrap(), content);

    let again = wharf(&scratch, &["--json", "upload", "a.bin"]);
    assert_eq!(json_lines(&again)[0]["deduplicated"], true);

    let plugins = wharf(&scratch, &["--json", "plugins"]);
    let local = &json_lines(&plugins)[0];
    assert_eq!(local["name"], "local");
    assert_eq!(local["wit_version"], "wharf:provider@0.3.0");
    assert_eq!(local["ranged_download"], true);
    assert_eq!(local["download"], "original");
}

#[test]
fn stdin_upload_and_failures_set_the_exit_code() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--config")
        .arg(scratch.config_path())
        .args(["--json", "upload", "-", "--name", "piped.txt"])
        .current_dir(scratch.work())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"from a pipe").unwrap();
    let piped = child.wait_with_output().unwrap();
    assert!(piped.status.success());
    let line = &json_lines(&piped)[0];
    assert_eq!(line["name"], "piped.txt");
    assert_eq!(line["sha256"], sha256_hex(b"from a pipe"));

    let missing = wharf(&scratch, &["--json", "upload", "nope.txt"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    let err: serde_json::Value = serde_json::from_slice(&missing.stderr).expect("a JSON error line");
    assert_eq!(err["input"], "nope.txt");

    let unknown = wharf(&scratch, &["download", "wf_doesnotexist"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no file with id"));

    let usage = wharf(&scratch, &["upload"]);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit with 2");
}

#[test]
fn broken_config_names_the_line() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let mut text = std::fs::read_to_string(scratch.config_path()).unwrap();
    text.push_str("\n[providers.extra]\nplugin = \"local\"\nlimits = { memory_mib = \"lots\" }\n");
    std::fs::write(scratch.config_path(), &text).unwrap();
    let line = text.lines().position(|l| l.contains("lots")).unwrap() + 1;

    let out = wharf(&scratch, &["ls"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let location = format!("{}:{line}:", scratch.config_path().display());
    assert!(stderr.contains(&location), "expected {location} in: {stderr}");
    assert!(stderr.contains("invalid type"), "{stderr}");
}

/// Runs `wharf` with `args` in the background, its output captured.
fn spawn_wharf(scratch: &Scratch, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--config")
        .arg(scratch.config_path())
        .args(args)
        .current_dir(scratch.work())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting wharf")
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn batches_run_several_transfers_and_print_results_in_input_order() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let names: Vec<String> = (0..6).map(|i| format!("f{i}.bin")).collect();
    let contents: Vec<Vec<u8>> = (0..6).map(|i| pattern(10_000 + i * 50_000)).collect();
    for (name, content) in names.iter().zip(&contents) {
        scratch.write(name, content);
    }
    let mut args = vec!["--json", "upload", "--jobs", "3"];
    args.extend(names.iter().map(String::as_str));
    let up = wharf(&scratch, &args);
    assert!(up.status.success(), "{}", stderr_of(&up));
    let uploaded = json_lines(&up);
    let recorded: Vec<_> = uploaded.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(recorded, names, "one result per file, in input order");
    for (result, content) in uploaded.iter().zip(&contents) {
        assert_eq!(result["sha256"], sha256_hex(content));
    }

    std::fs::create_dir(scratch.work().join("out")).unwrap();
    let ids: Vec<&str> = uploaded.iter().map(|u| u["id"].as_str().unwrap()).collect();
    let mut args = vec!["--json", "download", "-j", "3", "-o", "out"];
    args.extend(&ids);
    let down = wharf(&scratch, &args);
    assert!(down.status.success(), "{}", stderr_of(&down));
    let downloaded = json_lines(&down);
    assert_eq!(downloaded.iter().map(|d| d["id"].as_str().unwrap()).collect::<Vec<_>>(), ids);
    for (result, (name, content)) in downloaded.iter().zip(names.iter().zip(&contents)) {
        assert_eq!(result["verified"], true);
        assert_eq!(&std::fs::read(scratch.work().join("out").join(name)).unwrap(), content, "{name}");
    }

    // One failure in the middle: the others still run, the exit code says so.
    let mixed = wharf(&scratch, &["--json", "upload", "-j", "2", "f0.bin", "missing.bin", "f1.bin"]);
    assert_eq!(mixed.status.code(), Some(1));
    let results = json_lines(&mixed);
    assert_eq!(results.iter().map(|r| r["name"].as_str().unwrap()).collect::<Vec<_>>(), ["f0.bin", "f1.bin"]);
    assert!(results.iter().all(|r| r["deduplicated"] == true));
    let err: serde_json::Value = serde_json::from_slice(&mixed.stderr).expect("one JSON error line");
    assert_eq!(err["input"], "missing.bin");

    for jobs in ["0", "many"] {
        let zero = wharf(&scratch, &["upload", "--jobs", jobs, "f0.bin"]);
        assert_eq!(zero.status.code(), Some(2), "--jobs {jobs} is a usage error");
        assert!(stderr_of(&zero).contains("--jobs"), "{}", stderr_of(&zero));
    }
    let twice = wharf(&scratch, &["upload", "-", "f0.bin", "-"]);
    assert_eq!(twice.status.code(), Some(2), "standard input can be read once");
}

/// A file of `mib` MiB unlike any other of `seed`.
fn write_large(scratch: &Scratch, name: &str, mib: usize, seed: u8) {
    use std::io::Write;
    let block = pattern(1 << 20);
    let mut file = std::io::BufWriter::new(std::fs::File::create(scratch.work().join(name)).unwrap());
    file.write_all(&[seed; 64]).unwrap();
    for _ in 0..mib {
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
}

/// Files under `dir` (at any depth) that are temporary copies in progress.
fn partial_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            found.extend(partial_files(&path));
        } else if path.to_string_lossy().ends_with(".wharf-partial") {
            found.push(path);
        }
    }
    found
}

/// Whether process `pid` holds open a file being written under `dir`: an
/// unnamed one (O_TMPFILE, shown as `dir/#inode (deleted)`) or a temporary
/// copy in progress.
fn writing_under(pid: u32, dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else { return false };
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().filter_map(|fd| std::fs::read_link(fd.path()).ok()).any(|target| {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        target.starts_with(&dir) && (name.starts_with('#') || name.ends_with(".wharf-partial"))
    })
}

/// Sends SIGINT to `child` as soon as it writes a file under `watched`,
/// i.e. while a transfer is writing, and waits for it to end.
fn interrupt_mid_transfer(child: std::process::Child, watched: &Path) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !writing_under(child.id(), watched) && partial_files(watched).is_empty() {
        assert!(Instant::now() < deadline, "no transfer started writing under {}", watched.display());
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on the pid of a child this test started and has not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    child.wait_with_output().unwrap()
}

/// The holds (upload claims, leases) left in the catalog: an interrupted
/// batch must release its claims, or the next upload of the same bytes would
/// wait for them to lapse.
fn holds_left(scratch: &Scratch) -> Vec<String> {
    let catalog = rusqlite::Connection::open(scratch.data().join("catalog.sqlite3")).unwrap();
    let mut names = catalog.prepare("SELECT name FROM holds").unwrap();
    names.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
}

/// Whether two files hold the same bytes, read a piece at a time.
fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut a, mut b) = (std::fs::File::open(a).unwrap(), std::fs::File::open(b).unwrap());
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            return b.read(&mut y).unwrap() == 0;
        }
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
    }
}

#[test]
fn ctrl_c_stops_a_batch_and_leaves_nothing_partial() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let names = ["big0.bin", "big1.bin", "big2.bin", "big3.bin"];
    for (seed, name) in names.iter().enumerate() {
        write_large(&scratch, name, 48, seed as u8);
    }

    // Uploads: interrupted while the local provider writes a copy.
    let mut args = vec!["--json", "upload", "--jobs", "2"];
    args.extend(names);
    let storage = scratch.data().join("local");
    let up = interrupt_mid_transfer(spawn_wharf(&scratch, &args), &storage);
    assert_eq!(up.status.code(), Some(130), "{}", stderr_of(&up));
    let note: serde_json::Value = serde_json::from_str(stderr_of(&up).lines().last().unwrap()).unwrap();
    assert_eq!(note["interrupted"], true, "{note}");
    let finished: BTreeSet<String> = json_lines(&up).iter().map(|u| u["name"].as_str().unwrap().into()).collect();
    assert!(finished.len() < names.len(), "the batch was stopped halfway: {finished:?}");
    assert_eq!(note["finished"], finished.len());
    assert_eq!(partial_files(&storage), Vec::<PathBuf>::new(), "nothing partial at the provider");
    let listed = wharf(&scratch, &["--json", "ls"]);
    let recorded: BTreeSet<String> = json_lines(&listed).iter().map(|o| o["name"].as_str().unwrap().into()).collect();
    assert_eq!(recorded, finished, "records exist for the finished uploads only");
    assert_eq!(holds_left(&scratch), Vec::<String>::new(), "the stopped uploads released their claims");

    // Downloads: interrupted while writing into the destination.
    let all = wharf(&scratch, &args[..2].iter().chain(&names).copied().collect::<Vec<_>>());
    assert!(all.status.success(), "{}", stderr_of(&all));
    let ids: Vec<String> = json_lines(&all).iter().map(|u| u["id"].as_str().unwrap().into()).collect();
    let dest = scratch.work().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let mut args = vec!["--json", "download", "--jobs", "2", "-o", "dest"];
    args.extend(ids.iter().map(String::as_str));
    let down = interrupt_mid_transfer(spawn_wharf(&scratch, &args), &dest);
    assert_eq!(down.status.code(), Some(130), "{}", stderr_of(&down));
    assert_eq!(partial_files(&dest), Vec::<PathBuf>::new(), "no temporary file left in the destination");
    let reported: BTreeSet<String> = json_lines(&down)
        .iter()
        .map(|d| Path::new(d["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let present: BTreeSet<String> =
        std::fs::read_dir(&dest).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(present, reported, "exactly the finished downloads are in place");
    assert!(present.len() < names.len(), "the batch was stopped halfway: {present:?}");
    assert_eq!(holds_left(&scratch), Vec::<String>::new(), "the stopped downloads released what they held");
    for name in &present {
        assert!(same_bytes(&dest.join(name), &scratch.work().join(name)), "{name} is complete");
    }
}

/// Runs `wharf` with stdout into a pipe of one page, reads one line from it
/// and closes it, as `wharf … | head -1` does; returns that line and how
/// `wharf` ended.
fn read_first_line_then_close(scratch: &Scratch, args: &[&str]) -> (String, Output) {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // Close-on-exec: the read end must not live on in wharf (nor in another
    // test's child), or the pipe would never lose its reader.
    // SAFETY: pipe2(2) fills both descriptors, which are then owned here.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A small pipe fills at once, so that wharf is still writing when the reader goes.
    // SAFETY: fcntl(2) on a descriptor owned here.
    assert!(unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 4096) } > 0);
    let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--config")
        .arg(scratch.config_path())
        .args(args)
        .current_dir(scratch.work())
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::fs::File::from(reader);
    let mut line = Vec::new();
    let mut byte = [0u8];
    while reader.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    drop(reader);
    (String::from_utf8(line).unwrap(), child.wait_with_output().unwrap())
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let names: Vec<String> = (0..200).map(|i| format!("n{i:03}.txt")).collect();
    for name in &names {
        scratch.write(name, name.as_bytes());
    }
    let mut args = vec!["upload", "--jobs", "8"];
    args.extend(names.iter().map(String::as_str));
    assert!(wharf(&scratch, &args).status.success());

    for args in [&["ls"][..], &["--json", "ls"]] {
        let (first, ended) = read_first_line_then_close(&scratch, args);
        assert!(first.contains(".txt"), "{args:?}: {first}");
        assert_eq!(ended.status.code(), Some(0), "{args:?}: {}", stderr_of(&ended));
        assert_eq!(stderr_of(&ended), "", "{args:?}: no panic, no backtrace, no error");
    }
}

/// Metadata from the command line: tags added and removed, key-value pairs,
/// and listings filtered by tag, name glob, type and date.
#[test]
fn tags_pairs_and_filtered_listings() {
    let scratch = Scratch::new();
    scratch.write_config("");
    let ids: Vec<String> =
        [("report-q3.pdf", &b"%PDF-1.7 q3"[..]), ("photo.png", &pattern(100)[..]), ("notes.txt", b"notes")]
            .iter()
            .map(|(name, bytes)| {
                scratch.write(name, bytes);
                let up = wharf(&scratch, &["--json", "upload", name]);
                assert!(up.status.success(), "{}", stderr_of(&up));
                json_lines(&up)[0]["id"].as_str().unwrap().to_string()
            })
            .collect();
    let tagged = wharf(&scratch, &["--json", "tag", &ids[0], "+q3", "+final", "+draft", "-draft"]);
    assert!(tagged.status.success(), "{}", stderr_of(&tagged));
    assert_eq!(json_lines(&tagged)[0]["tags"], serde_json::json!(["q3", "final"]));
    wharf(&scratch, &["tag", &ids[2], "+q3"]);
    let edited =
        wharf(&scratch, &["--json", "edit", &ids[0], "--set", "client=acme", "--set", "year=2026", "--unset", "year"]);
    assert_eq!(json_lines(&edited)[0]["attributes"], serde_json::json!({"client": "acme"}));

    let listed = |args: &[&str]| -> Vec<String> {
        let out = wharf(&scratch, &[&["--json", "ls"][..], args].concat());
        assert!(out.status.success(), "{}", stderr_of(&out));
        json_lines(&out).iter().map(|f| f["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(listed(&["--tag", "q3"]), [ids[2].clone(), ids[0].clone()]);
    assert_eq!(listed(&["--tag", "final", "--mime", "application/pdf"]), [ids[0].clone()]);
    assert_eq!(listed(&["--name", "*.PNG"]), [ids[1].clone()]);
    assert_eq!(listed(&["--since", "1d"]).len(), 3);
    assert!(listed(&["--since", "2999-01-01"]).is_empty());

    let bad = wharf(&scratch, &["tag", &ids[0], "q3"]);
    assert_eq!(bad.status.code(), Some(2), "a tag change without + or - is a usage error");
    assert!(stderr_of(&bad).contains("+TAG"), "{}", stderr_of(&bad));
    let bad_date = wharf(&scratch, &["ls", "--since", "last week"]);
    assert_eq!(bad_date.status.code(), Some(2));
    assert!(stderr_of(&bad_date).contains("YYYY-MM-DD"), "{}", stderr_of(&bad_date));
}

/// `wharf register`, `stats` and `gc` from the command line.
#[test]
fn register_stats_and_gc() {
    let scratch = Scratch::new();
    let content = b"already stored";
    let sha = sha256_hex(content);
    scratch.write_config(&format!("[principals.local]\nreferences = [\"sha256:{sha}\"]\n"));
    scratch.write("a.txt", content);
    let up = wharf(&scratch, &["--json", "upload", "a.txt"]);
    let uploaded = &json_lines(&up)[0];

    let refused = wharf(&scratch, &["register", &"0".repeat(64)]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr_of(&refused).contains("may not register"), "{}", stderr_of(&refused));
    let registered = wharf(&scratch, &["--json", "register", &format!("sha256:{sha}")]);
    assert!(registered.status.success(), "{}", stderr_of(&registered));
    let registered = &json_lines(&registered)[0];
    assert_eq!(registered["digest_source"], "provider");
    assert_eq!(registered["id"], uploaded["id"], "the object already had a record");

    let down = wharf(&scratch, &["--json", "download", uploaded["id"].as_str().unwrap(), "-o", "copy.txt"]);
    assert!(down.status.success(), "{}", stderr_of(&down));
    let stats = wharf(&scratch, &["--json", "stats"]);
    let stats = &json_lines(&stats)[0];
    assert_eq!(stats["providers"]["local"]["files"], 1);
    assert_eq!(stats["uploads"], 1);
    assert_eq!(stats["downloads"]["provider"], 1);
    assert_eq!(stats["most_downloaded"][0]["id"], uploaded["id"]);
    let human = wharf(&scratch, &["stats"]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("cache hit rate"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );

    let gc = wharf(&scratch, &["--json", "gc", "--dry-run"]);
    assert!(gc.status.success(), "{}", stderr_of(&gc));
    assert_eq!(json_lines(&gc)[0]["dry_run"], true);
}
