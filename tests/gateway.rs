//! Upload and download through the real local adapter component.

mod common;

use common::{Scratch, pattern, sha256_hex};
use wharf::catalog::CopyState;
use wharf::gateway::{FsckOptions, GatewayError, GcReport, Principal, Source, UploadOptions};
use wharf::sandbox::{SandboxError, WriteError};

#[tokio::test]
async fn round_trip_returns_identical_bytes() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("").await;
    // Several chunks and an odd tail, so the streaming loops are exercised.
    let content = pattern(3 * 256 * 1024 + 12_345);
    let source = scratch.write("report.bin", &content);

    let up = gateway.upload(Source::Path(source), &UploadOptions::default()).await.unwrap();
    assert_eq!(up.sha256, sha256_hex(&content));
    assert_eq!(up.size, content.len() as u64);
    assert_eq!(up.name, "report.bin");
    assert!(!up.deduplicated);

    let dest = scratch.work().join("back.bin");
    let down = gateway.download(&up.id, Some(&dest), None).await.unwrap();
    assert!(down.verified);
    assert_eq!(down.source, "provider");
    assert_eq!(down.sha256, up.sha256);
    assert_eq!(std::fs::read(&dest).unwrap(), content);

    let info = gateway.info(&up.id).await.unwrap();
    assert_eq!(info.downloads, 1);
    assert_eq!(info.remote.unwrap().size, Some(content.len() as u64));
}

#[tokio::test]
async fn inline_content_and_download_by_hash() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("").await;
    let content = b"inline bytes".to_vec();
    let source = Source::Bytes { name: "note.txt".into(), content: content.clone().into(), mime: None };
    let up = gateway.upload(source, &UploadOptions::default()).await.unwrap();
    assert_eq!(up.mime, "text/plain");

    // Into a directory: the recorded name is used.
    let down = gateway.download(&format!("sha256:{}", up.sha256), Some(&scratch.work()), None).await.unwrap();
    assert_eq!(down.path, scratch.work().join("note.txt"));
    assert_eq!(std::fs::read(&down.path).unwrap(), content);
}

#[tokio::test]
async fn same_content_is_stored_once_with_one_id() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("").await;
    let content = pattern(100_000);
    let first =
        gateway.upload(Source::Path(scratch.write("a.bin", &content)), &UploadOptions::default()).await.unwrap();
    let second =
        gateway.upload(Source::Path(scratch.write("b.bin", &content)), &UploadOptions::default()).await.unwrap();
    assert_eq!(first.id, second.id);
    assert!(second.deduplicated);
    assert_eq!(common::records(&gateway, None).await.len(), 1);
    let stored: Vec<_> = walk(&scratch.data().join("local")).into_iter().filter(|p| !p.ends_with(".json")).collect();
    assert_eq!(stored.len(), 1, "one object file on disk: {stored:?}");

    // Different content is a different object.
    let other =
        gateway.upload(Source::Path(scratch.write("c.bin", b"other")), &UploadOptions::default()).await.unwrap();
    assert_ne!(other.id, first.id);
}

#[tokio::test]
async fn corrupted_object_fails_and_leaves_nothing() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("").await;
    let content = pattern(600_000);
    let up =
        gateway.upload(Source::Path(scratch.write("data.bin", &content)), &UploadOptions::default()).await.unwrap();
    let stored = scratch.data().join("local/objects").join(&up.sha256[..2]).join(&up.sha256);
    let mut damaged = std::fs::read(&stored).unwrap();
    damaged[300_000] ^= 0xff;
    std::fs::write(&stored, damaged).unwrap();

    let outdir = scratch.work().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let err = gateway.download(&up.id, Some(&outdir.join("data.bin")), None).await.unwrap_err();
    assert!(
        matches!(&err, GatewayError::Write { source, .. } if matches!(**source, WriteError::HashMismatch { .. })),
        "expected a hash mismatch, got: {err}"
    );
    assert!(err.to_string().contains("SHA-256 mismatch"), "{err}");
    assert_eq!(std::fs::read_dir(&outdir).unwrap().count(), 0, "no file, partial or final, at the destination");
    assert_eq!(gateway.info(&up.id).await.unwrap().downloads, 0);
}

#[tokio::test]
async fn paths_outside_the_sandbox_are_refused() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("").await;
    let secret = scratch.dir.path().join("secret.txt");
    std::fs::write(&secret, b"outside the root").unwrap();
    std::os::unix::fs::symlink(&secret, scratch.work().join("link.txt")).unwrap();
    std::os::unix::fs::symlink(scratch.dir.path(), scratch.work().join("up")).unwrap();

    let traversal = scratch.work().join("../secret.txt");
    let through_dir_link = scratch.work().join("up/secret.txt");
    for path in [traversal.clone(), secret.clone(), scratch.work().join("link.txt"), through_dir_link] {
        let err = gateway.upload(Source::Path(path.clone()), &UploadOptions::default()).await.unwrap_err();
        assert!(
            matches!(err, GatewayError::Sandbox(SandboxError::OutsideRoots { .. } | SandboxError::Escapes { .. })),
            "{}: {err}",
            path.display()
        );
    }
    assert!(common::records(&gateway, None).await.is_empty(), "nothing was uploaded");

    let up =
        gateway.upload(Source::Path(scratch.write("inside.txt", b"inside")), &UploadOptions::default()).await.unwrap();
    let escapes = [
        scratch.dir.path().join("stolen.txt"),
        scratch.work().join("../stolen.txt"),
        scratch.work().join("up/stolen.txt"),
    ];
    for dest in escapes {
        let err = gateway.download(&up.id, Some(&dest), None).await.unwrap_err();
        assert!(matches!(err, GatewayError::Sandbox(_) | GatewayError::Write { .. }), "{}: {err}", dest.display());
    }
    assert!(!scratch.dir.path().join("stolen.txt").exists());
    // A download onto a symlink replaces the link; it never writes through it.
    let link = scratch.work().join("link.txt");
    gateway.download(&up.id, Some(&link), None).await.unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    assert_eq!(std::fs::read(&secret).unwrap(), b"outside the root", "the symlink's target is untouched");
}

#[tokio::test]
async fn remove_deletes_the_object_and_the_record() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("").await;
    let up =
        gateway.upload(Source::Path(scratch.write("gone.txt", b"soon gone")), &UploadOptions::default()).await.unwrap();
    assert_eq!(gateway.list_remote(None).await.unwrap().len(), 1);
    let removed = gateway.remove(&up.id, false).await.unwrap();
    assert_eq!(removed.state, CopyState::Present);
    assert!(common::records(&gateway, None).await.is_empty());
    assert!(gateway.list_remote(None).await.unwrap().is_empty());
    assert!(matches!(gateway.download(&up.id, None, None).await, Err(GatewayError::UnknownId(_))));
}

#[tokio::test]
async fn a_copy_deleted_behind_wharfs_back_is_marked_gone() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("").await;
    let up = gateway.upload(Source::Path(scratch.write("x.txt", b"x")), &UploadOptions::default()).await.unwrap();
    std::fs::remove_file(scratch.data().join("local/objects").join(&up.sha256[..2]).join(&up.sha256)).unwrap();
    let err = gateway.download(&up.id, Some(&scratch.work().join("x2.txt")), None).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    assert_eq!(common::records(&gateway, None).await[0].state, CopyState::Gone);
    // Uploading the bytes again restores the copy under the same id.
    let again = gateway.upload(Source::Path(scratch.work().join("x.txt")), &UploadOptions::default()).await.unwrap();
    assert_eq!(again.id, up.id);
    assert!(!again.deduplicated);
    gateway.download(&up.id, Some(&scratch.work().join("x2.txt")), None).await.unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.display().to_string());
        }
    }
    files
}

#[tokio::test]
async fn principals_share_bytes_but_not_records() {
    let scratch = Scratch::new();
    let gateway = scratch.open_gateway("").await;
    let alice = gateway.caller(Principal::new("alice"));
    let bob = gateway.caller(Principal::new("bob"));
    let content = pattern(50_000);
    let path = scratch.write("shared.bin", &content);

    let theirs = alice.upload(Source::Path(path.clone()), &UploadOptions::default()).await.unwrap();
    let mine = bob.upload(Source::Path(path), &UploadOptions::default()).await.unwrap();
    assert!(!theirs.deduplicated);
    assert!(mine.deduplicated, "the bytes were already at the provider: nothing sent");
    assert_ne!(mine.id, theirs.id, "each principal gets its own record");
    assert_eq!(mine.remote_id, theirs.remote_id, "of one stored object");
    let objects = scratch.data().join("local/objects");
    // The local adapter keeps each object beside a small JSON record of it.
    let stored = || -> usize {
        let shards = std::fs::read_dir(&objects).unwrap().map(|d| d.unwrap().path());
        shards
            .flat_map(|d| std::fs::read_dir(d).unwrap())
            .filter(|f| f.as_ref().unwrap().path().extension().is_none())
            .count()
    };
    assert_eq!(stored(), 1, "one copy on disk");

    // Another principal's id answers exactly as an unknown one does.
    for err in [
        bob.info(&theirs.id).await.unwrap_err(),
        bob.download(&theirs.id, Some(&scratch.work().join("x")), None).await.unwrap_err(),
        bob.remove(&theirs.id, false).await.unwrap_err(),
    ] {
        assert!(matches!(err, GatewayError::UnknownId(_)), "{err}");
    }
    assert_eq!(common::records(&bob, None).await.len(), 1, "bob lists his own record only");

    // Deleting one record keeps the bytes the other still points to.
    alice.remove(&theirs.id, false).await.unwrap();
    let dest = scratch.work().join("bob.bin");
    bob.download(&mine.id, Some(&dest), None).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    bob.remove(&mine.id, false).await.unwrap();
    assert_eq!(stored(), 0, "the last record's removal deletes the bytes");

    // An admin sees every principal's records.
    let up = alice
        .upload(Source::Bytes { name: "a.txt".into(), content: "a".into(), mime: None }, &UploadOptions::default())
        .await
        .unwrap();
    let admin = gateway.caller(Principal { name: "root".into(), admin: true });
    assert_eq!(admin.info(&up.id).await.unwrap().object.principal, "alice");
}

/// Two gateways on one data directory stand for two processes sharing a
/// SQLite catalog: uploads of the same bytes racing through both take turns
/// through an upload claim, so the bytes are sent once and every other
/// upload answers deduplicated with a record of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uploads_through_two_gateways_send_the_bytes_once() {
    let scratch = Scratch::new();
    let first = scratch.open_gateway("").await;
    let second = scratch.open_gateway("").await;
    let content = bytes::Bytes::from(pattern(2 << 20));
    let uploads = (0..8).map(|i| {
        let gateway = if i % 2 == 0 { first.clone() } else { second.clone() };
        let content = content.clone();
        tokio::spawn(async move {
            let caller = gateway.caller(Principal::new(format!("p{i}")));
            let source = Source::Bytes { name: format!("race-{i}.bin"), content, mime: None };
            caller.upload(source, &UploadOptions::default()).await.unwrap()
        })
    });
    let answers: Vec<_> = futures::future::join_all(uploads).await.into_iter().map(Result::unwrap).collect();
    let sent: Vec<_> = answers.iter().filter(|up| !up.deduplicated).collect();
    assert_eq!(sent.len(), 1, "exactly one upload sent the bytes: {answers:#?}");
    assert!(answers.iter().all(|up| up.remote_id == sent[0].remote_id && up.sha256 == sha256_hex(&content)));
    let ids: std::collections::BTreeSet<_> = answers.iter().map(|up| up.id.as_str()).collect();
    assert_eq!(ids.len(), 8, "each principal has its own record");
}

/// Periodic clean-up runs on one process at a time: the one holding the lease.
#[tokio::test]
async fn clean_up_runs_where_the_lease_is() {
    let scratch = Scratch::new();
    let first = scratch.open_gateway("").await;
    let second = scratch.open_gateway("").await;
    let nothing = |report: Option<GcReport>| report.map(|r| r.removed_anything());
    assert_eq!(nothing(first.clean_up().await.unwrap()), Some(false));
    assert_eq!(second.clean_up().await.unwrap(), None, "the first process holds the lease");
    assert_eq!(nothing(first.clean_up().await.unwrap()), Some(false), "and keeps it");
}

/// A FIFO without a writer, or a socket, named as an upload source is refused
/// at once: opening it must not wait (it would hang an MCP or HTTP request).
#[tokio::test]
async fn sources_that_are_not_regular_files_are_refused_without_blocking() {
    let scratch = Scratch::new();
    let gateway = scratch.gateway("").await;
    let fifo = scratch.work().join("pipe");
    let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path and a mode; mkfifo touches nothing else.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
    let socket = scratch.work().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let mut cases = vec![(fifo, "a FIFO"), (socket, "a socket")];
    // A device node (the null device's numbers) needs CAP_MKNOD.
    let device = scratch.work().join("null");
    let name = std::ffi::CString::new(device.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path, a mode and a device number.
    match unsafe { libc::mknod(name.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) } {
        0 => cases.push((device, "a device")),
        _ => println!("device case skipped: mknod: {}", std::io::Error::last_os_error()),
    }
    let options = UploadOptions::default();
    for (path, kind) in cases {
        let upload = gateway.upload(Source::Path(path.clone()), &options);
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(20), upload).await;
        let err = outcome.unwrap_or_else(|_| panic!("uploading {} blocked", path.display())).unwrap_err();
        assert!(
            matches!(&err, GatewayError::Sandbox(SandboxError::NotAFile { kind: k, .. }) if *k == kind),
            "{}: {err}",
            path.display()
        );
    }
}

/// `wharf gc` removes old files from the downloads directory and spool
/// leftovers of dead uploads, and only reports in a dry run.
#[tokio::test]
async fn gc_ages_out_downloads_and_spool_leftovers() {
    let scratch = Scratch::new();
    let downloads = scratch.work().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let extra = format!("[retention]\ndownloads_dir = \"{}\"\ndownloads_max_age_hours = 1\n", downloads.display());
    let gateway = scratch.open_gateway(&extra).await;
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let aged = |path: &std::path::Path, bytes: &[u8]| {
        std::fs::write(path, bytes).unwrap();
        std::fs::File::options().write(true).open(path).unwrap().set_modified(two_hours_ago).unwrap();
    };
    aged(&downloads.join("old.pdf"), b"old download");
    std::fs::write(downloads.join("new.pdf"), b"fresh").unwrap();
    aged(&scratch.data().join("spool/upload-0123456789abcdef"), b"left by a crash");
    aged(&scratch.data().join("spool/not-ours"), b"someone else's");

    let plan = gateway.gc(true).await.unwrap();
    assert_eq!(plan.old_downloads, [downloads.join("old.pdf")]);
    assert_eq!((plan.spool_files, plan.bytes_freed), (1, 12 + 15));
    assert!(downloads.join("old.pdf").exists(), "a dry run removes nothing");

    let report = gateway.gc(false).await.unwrap();
    assert_eq!((report.old_downloads.len(), report.spool_files, report.bytes_freed), (1, 1, 27));
    assert!(!downloads.join("old.pdf").exists() && downloads.join("new.pdf").exists());
    assert!(!scratch.data().join("spool/upload-0123456789abcdef").exists());
    assert!(scratch.data().join("spool/not-ours").exists(), "only Wharf's spool files are touched");
    assert!(report.summary().contains("27 bytes freed"), "{}", report.summary());
}

/// A small tmpfs mounted over a directory of the sandbox, unmounted on drop.
struct SmallFilesystem {
    path: std::path::PathBuf,
}

impl SmallFilesystem {
    /// `None` (with the reason printed) where this machine does not let the
    /// tests mount one.
    fn mount(path: std::path::PathBuf, bytes: u64) -> Option<Self> {
        std::fs::create_dir_all(&path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self { path }),
            Ok(output) => {
                println!(
                    "skipped: mount -t tmpfs is not permitted: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.path).status();
    }
}

/// A download onto a full file system fails with an error that says so,
/// leaves no temporary file, and does not count against the copy.
#[tokio::test]
async fn a_full_destination_is_a_clear_error_and_leaves_nothing() {
    let scratch = Scratch::new();
    let Some(small) = SmallFilesystem::mount(scratch.work().join("small"), 1 << 20) else { return };
    let gateway = scratch.gateway("").await;
    let content = pattern(3 << 20);
    let up = gateway.upload(Source::Path(scratch.write("big.bin", &content)), &UploadOptions::default()).await.unwrap();

    let dest = small.path.join("big.bin");
    let err = gateway.download(&up.id, Some(&dest), None).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, GatewayError::Write { .. }), "{message}");
    assert!(message.contains("No space left on device") && message.contains("big.bin"), "{message}");
    let left: Vec<_> = std::fs::read_dir(&small.path).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing may be left behind: {left:?}");
    let record = gateway.details(&up.id).await.unwrap().file;
    assert_eq!(record.state, CopyState::Present, "a full destination says nothing about the copy");
    // The space is free again: a small file fits.
    let tiny =
        gateway.upload(Source::Path(scratch.write("tiny.txt", b"fits")), &UploadOptions::default()).await.unwrap();
    gateway.download(&tiny.id, Some(&small.path.join("tiny.txt")), None).await.unwrap();
}

/// `wharf fsck` finds each kind of problem, repairs it (re-fetching a damaged
/// copy from another one), says what it did, and then finds nothing.
#[tokio::test]
async fn fsck_finds_and_repairs_what_is_out_of_order() {
    let scratch = Scratch::new();
    let mirror =
        format!("[providers.mirror]\nplugin = \"local\"\nstorage_dir = \"{}/mirror\"\n", scratch.data().display());
    let gateway = scratch.open_gateway(&mirror).await;
    let caller = gateway.host_caller();
    let to = |provider: &str| UploadOptions { provider: Some(provider.into()), ..UploadOptions::default() };
    let object_path =
        |provider: &str, sha: &str| scratch.data().join(provider).join("objects").join(&sha[..2]).join(sha);

    // A copy damaged at rest, with a good copy at the mirror.
    let damaged = pattern(300_000);
    let up = caller.upload(Source::Path(scratch.write("damaged.bin", &damaged)), &to("local")).await.unwrap();
    caller.upload(Source::Path(scratch.write("damaged.bin", &damaged)), &to("mirror")).await.unwrap();
    let mut bytes = damaged.clone();
    bytes[1000] ^= 0x01;
    std::fs::write(object_path("local", &up.sha256), &bytes).unwrap();
    // A record whose object was deleted behind Wharf's back.
    let lost = caller.upload(Source::Path(scratch.write("lost.bin", b"lost bytes")), &to("local")).await.unwrap();
    std::fs::remove_file(object_path("local", &lost.sha256)).unwrap();
    // An object no record names (an upload killed before recording it).
    let orphan_sha = sha256_hex(b"orphan");
    std::fs::create_dir_all(object_path("local", &orphan_sha).parent().unwrap()).unwrap();
    std::fs::write(object_path("local", &orphan_sha), b"orphan").unwrap();
    // A spool file of an upload that died with its process.
    let spooled = scratch.data().join("spool/upload-00112233deadbeef");
    std::fs::write(&spooled, b"left by a crash").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options().write(true).open(&spooled).unwrap().set_modified(two_hours_ago).unwrap();

    let options = |repair| FsckOptions { repair, verify: true, provider: None };
    let report = gateway.fsck(&options(false)).await.unwrap();
    let mut kinds: Vec<_> = report.findings.iter().map(|f| (f.kind, f.object.clone())).collect();
    kinds.sort();
    let mut expected = vec![
        ("corrupt-copy", up.sha256.clone()),
        ("object-without-record", orphan_sha.clone()),
        ("record-without-object", lost.sha256.clone()),
        ("stale-spool", spooled.display().to_string()),
    ];
    expected.sort();
    assert_eq!(kinds, expected, "{report:#?}");
    assert!(report.findings.iter().all(|f| f.repair.is_none()), "a check alone repairs nothing");
    assert!(object_path("local", &orphan_sha).exists() && spooled.exists());

    let repaired = gateway.fsck(&options(true)).await.unwrap();
    let said = |kind: &str| repaired.findings.iter().find(|f| f.kind == kind).and_then(|f| f.repair.clone()).unwrap();
    assert_eq!(said("corrupt-copy"), "re-fetched from mirror and stored again");
    assert_eq!(said("object-without-record"), "removed");
    assert_eq!(said("record-without-object"), "marked gone; no other copy to re-fetch from");
    assert_eq!(said("stale-spool"), "removed");
    assert_eq!(std::fs::read(object_path("local", &up.sha256)).unwrap(), damaged, "the good bytes are back");
    assert!(!object_path("local", &orphan_sha).exists() && !spooled.exists());
    let lost_record = caller.details(&lost.id).await.unwrap().file;
    assert_eq!(lost_record.state, CopyState::Gone);

    let again = gateway.fsck(&options(false)).await.unwrap();
    assert!(again.is_clean(), "{again:#?}");
}
