//! Files that appear whole or not at all.
//!
//! Where the file system allows it (Linux, O_TMPFILE), the bytes go to an
//! unnamed file in the destination's directory, linked in under its name
//! only once complete: a process killed mid-write leaves nothing behind.
//! Elsewhere they go to `.NAME.<16 hex>.wharf-partial` beside the
//! destination, removed on failure; such files left by a killed process are
//! swept by later writes to the same directory.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, OpenOptions};

use super::WriteError;
use crate::body::{Body, BodyError, Copied, Digest, Progress, Sink, to_hex};

/// What named temporary files end with.
const SUFFIX: &str = ".wharf-partial";
/// A named temporary file untouched this long belongs to a dead process: a
/// live transfer writes to it far more often (a stalled connection is given
/// up within two minutes).
const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

enum Temp {
    /// Unnamed (O_TMPFILE): nothing to clean up.
    Unnamed,
    /// A named file beside the destination, removed unless committed.
    Named(String),
}

/// A file being written in place of a destination, invisible (or under a
/// temporary name) until [`PartialFile::commit`]. Dropped uncommitted, it
/// leaves nothing behind.
pub struct PartialFile {
    parent: Dir,
    name: OsString,
    temp: Temp,
    /// `None` only while a body is being appended.
    sink: Option<Sink>,
    label: String,
}

impl PartialFile {
    /// Starts a file at `relative` under `dir`, creating its directories.
    pub fn create(dir: &Dir, relative: &Path, label: &str) -> Result<Self, WriteError> {
        let name = relative
            .file_name()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{label} names no file")))?
            .to_os_string();
        let parent = match relative.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => {
                dir.create_dir_all(parent)?;
                dir.open_dir(parent)?
            }
            None => dir.try_clone()?,
        };
        let (file, temp) = match open_unnamed(&parent)? {
            Some(file) => (file, Temp::Unnamed),
            None => {
                sweep_stale(&parent);
                let temp_name = temp_name(&name);
                let file = parent.open_with(&temp_name, OpenOptions::new().read(true).write(true).create_new(true))?;
                (file.into_std(), Temp::Named(temp_name))
            }
        };
        let sink = Some(Sink::new(file, label.to_string()));
        Ok(Self { parent, name, temp, sink, label: label.to_string() })
    }

    fn sink(&self) -> &Sink {
        self.sink.as_ref().expect("a sink outside appends")
    }

    /// The bytes written so far.
    pub fn written(&self) -> u64 {
        self.sink().size()
    }

    /// Streams `body` onto the end of the file. A body cut short keeps what
    /// arrived before the cut: a ranged read can carry on from there.
    pub async fn append(&mut self, body: Body, progress: Option<Arc<Progress>>) -> Result<(), BodyError> {
        let sink = self.sink.take().expect("a sink outside appends");
        let (sink, result) = body.append_to(sink, progress).await;
        self.sink = Some(sink);
        result
    }

    /// Another handle on the file, for writes at offsets past what was
    /// written, to be taken in in order with [`PartialFile::absorb`].
    pub fn file_for_ranges(&self) -> std::io::Result<File> {
        self.sink().file().try_clone()
    }

    /// Takes in the next `len` bytes written through [`PartialFile::file_for_ranges`].
    pub async fn absorb(&mut self, len: u64) -> Result<(), BodyError> {
        let mut sink = self.sink.take().expect("a sink outside appends");
        let (sink, result) = tokio::task::spawn_blocking(move || {
            let result = sink.absorb(len);
            (sink, result)
        })
        .await
        .expect("hashing thread panicked");
        self.sink = Some(sink);
        result
    }

    /// Throws away what was written, to start over.
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.sink.as_mut().expect("a sink outside appends").clear()
    }

    /// Checks what was written against `expected`, if given.
    pub fn check(&self, expected: Option<Digest>) -> Result<Copied, WriteError> {
        let copied = self.sink().copied();
        match expected.filter(|e| *e != copied.sha256) {
            Some(expected) => Err(WriteError::HashMismatch {
                expected: to_hex(&expected),
                actual: to_hex(&copied.sha256),
                destination: self.label.clone(),
            }),
            None => Ok(copied),
        }
    }

    /// Flushes the file to disk and puts it in place of the destination,
    /// durably.
    pub async fn commit(mut self) -> Result<Copied, WriteError> {
        let sink = self.sink.take().expect("a sink outside appends");
        let (parent, name) = (self.parent.try_clone()?, self.name.clone());
        let temp = std::mem::replace(&mut self.temp, Temp::Unnamed);
        tokio::task::spawn_blocking(move || {
            sink.file().sync_all()?;
            match &temp {
                Temp::Named(temp_name) => {
                    let renamed = parent.rename(temp_name, &parent, &name);
                    if renamed.is_err() {
                        let _ = parent.remove_file(temp_name);
                    }
                    renamed?;
                }
                Temp::Unnamed => link_unnamed(sink.file(), &parent, &name)?,
            }
            // Make the new name itself durable. (cap-std's own directory
            // handles are O_PATH, which cannot be fsynced.)
            parent.open_with(".", OpenOptions::new().read(true))?.sync_all()?;
            Ok(sink.copied())
        })
        .await
        .expect("committing thread panicked")
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if let Temp::Named(temp_name) = &self.temp {
            let _ = self.parent.remove_file(temp_name);
        }
    }
}

/// `.NAME.<16 hex>.wharf-partial`, cut to fit the file system's 255 bytes.
fn temp_name(name: &OsStr) -> String {
    let shown = name.to_string_lossy();
    let shown = &shown[..shown.floor_char_boundary(crate::validation::names::MAX_NAME_BYTES - 32)];
    format!(".{shown}.{:016x}{SUFFIX}", rand::random::<u64>())
}

/// Whether `name` is one of Wharf's own temporary names.
fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(SUFFIX)) else { return false };
    let Some((_, random)) = rest.rsplit_once('.') else { return false };
    random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes Wharf's temporary files in `dir` that no live transfer writes to.
fn sweep_stale(dir: &Dir) {
    let Ok(entries) = dir.entries() else { return };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| is_temp_name(n)) else { continue };
        let stale = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|modified| now.duration_since(modified.into_std()).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if stale && dir.remove_file(name).is_ok() {
            tracing::info!("removed {name}, left unfinished by an earlier transfer");
        }
    }
}

/// An unnamed file in `dir` (O_TMPFILE), or `None` where the file system
/// does not offer them. Open for reading too: parallel ranged reads write
/// at offsets and the bytes are read back to be hashed in order.
#[cfg(target_os = "linux")]
fn open_unnamed(dir: &Dir) -> std::io::Result<Option<File>> {
    let flags = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;
    // SAFETY: a plain syscall on a directory descriptor we hold and a
    // NUL-terminated path; the result is checked before use.
    let fd = unsafe { libc::openat(dir.as_fd().as_raw_fd(), c".".as_ptr(), flags, 0o666 as libc::c_uint) };
    if fd >= 0 {
        // SAFETY: `fd` was just opened and is owned by nothing else.
        return Ok(Some(unsafe { File::from_raw_fd(fd) }));
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        // The file system (or kernel) has no unnamed files.
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOENT) => Ok(None),
        _ => Err(error),
    }
}

#[cfg(not(target_os = "linux"))]
fn open_unnamed(_dir: &Dir) -> std::io::Result<Option<File>> {
    Ok(None)
}

/// Gives an unnamed file the name `name` in `dir`, replacing what was there.
fn link_unnamed(file: &File, dir: &Dir, name: &OsStr) -> std::io::Result<()> {
    let source = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let link = |target: &OsStr| -> std::io::Result<()> {
        let target = CString::new(target.as_bytes())?;
        // SAFETY: NUL-terminated paths and descriptors we hold; checked below.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                source.as_ptr(),
                dir.as_fd().as_raw_fd(),
                target.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    };
    match link(name) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // linkat never replaces: link under a temporary name, then rename
            // over the old file, which replaces it atomically.
            let temp = temp_name(name);
            link(OsStr::new(&temp))?;
            let renamed = dir.rename(&temp, dir, name);
            if renamed.is_err() {
                let _ = dir.remove_file(&temp);
            }
            renamed
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wharfs_own_temporary_names_are_swept() {
        assert!(is_temp_name(".report.pdf.0123456789abcdef.wharf-partial"));
        assert!(!is_temp_name("report.pdf.0123456789abcdef.wharf-partial"), "no leading dot");
        assert!(!is_temp_name(".report.pdf.0123.wharf-partial"), "short random part");
        assert!(!is_temp_name(".report.pdf.0123456789abcdeg.wharf-partial"), "not hex");
        assert!(!is_temp_name(".report.wharf-partial"));
        let name = temp_name(OsStr::new("report.pdf"));
        assert!(is_temp_name(&name), "{name}");
    }
}
