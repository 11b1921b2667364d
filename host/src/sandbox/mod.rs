//! User paths, confined to the configured sandbox roots.
//!
//! Every file Wharf reads or writes for a user is reached through a cap-std
//! directory opened on one of the roots, so `..`, absolute paths and symlinks
//! that lead out of it are refused by the kernel-level checks of cap-std, not
//! by comparing strings.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt as _};

mod partial;

pub use partial::PartialFile;

use crate::body::{Body, BodyError, Copied, Digest, FileRange, Progress};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "refused {path}: it is outside the sandbox roots ({roots}); add its directory to [host] sandbox_roots to allow it"
    )]
    OutsideRoots { path: String, roots: String },
    #[error(
        "refused {path}: it leads outside sandbox root {root} (through '..' or a symlink), or cannot be opened: {source}"
    )]
    Escapes { path: String, root: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is {kind}, not a regular file; only regular files are read")]
    NotAFile { path: String, kind: &'static str },
    #[error("cannot open sandbox root {path}: {source}; fix [host] sandbox_roots")]
    Root { path: String, source: std::io::Error },
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("SHA-256 mismatch: expected {expected}, received {actual}; nothing was written to {destination}")]
    HashMismatch { expected: String, actual: String, destination: String },
}

struct Root {
    path: PathBuf,
    dir: Dir,
}

pub struct Sandbox {
    roots: Vec<Root>,
    /// What relative paths are relative to.
    cwd: PathBuf,
}

/// A file or directory inside the roots, opened.
pub enum Entry {
    File(FileRange),
    /// A directory, and its absolute path.
    Directory(Dir, PathBuf),
}

/// A place to write inside a root.
pub struct Destination<'a> {
    dir: &'a Dir,
    relative: PathBuf,
    /// The absolute path, for messages and records.
    pub display: PathBuf,
}

impl Sandbox {
    /// Opens the roots. Relative paths resolve against `base` (the working
    /// directory when `None`).
    pub fn open(roots: &[PathBuf], base: Option<&PathBuf>) -> Result<Self, SandboxError> {
        let root_error = |path: &Path, source| SandboxError::Root { path: path.display().to_string(), source };
        let roots = roots
            .iter()
            .map(|path| {
                let path = path.canonicalize().map_err(|e| root_error(path, e))?;
                let dir = Dir::open_ambient_dir(&path, ambient_authority()).map_err(|e| root_error(&path, e))?;
                Ok(Root { path, dir })
            })
            .collect::<Result<_, SandboxError>>()?;
        let cwd = match base {
            Some(base) => base.canonicalize(),
            None => std::env::current_dir().and_then(|d| d.canonicalize()),
        }
        .map_err(|e| SandboxError::Io { path: ".".into(), source: e })?;
        Ok(Self { roots, cwd })
    }

    /// The root a path falls under, and the path relative to it. The relative
    /// part may still hold `..` or symlinks: cap-std judges those when opening.
    fn locate(&self, path: &Path) -> Result<(&Root, PathBuf), SandboxError> {
        let absolute = if path.is_absolute() { path.to_path_buf() } else { self.cwd.join(path) };
        self.roots
            .iter()
            .find_map(|root| absolute.strip_prefix(&root.path).ok().map(|rest| (root, rest.to_path_buf())))
            .ok_or_else(|| SandboxError::OutsideRoots {
                path: path.display().to_string(),
                roots: self.roots.iter().map(|r| r.path.display().to_string()).collect::<Vec<_>>().join(", "),
            })
    }

    fn escapes(path: &Path, root: &Root, source: std::io::Error) -> SandboxError {
        SandboxError::Escapes { path: path.display().to_string(), root: root.path.display().to_string(), source }
    }

    /// Opens a regular file for reading.
    pub fn open_file(&self, path: &Path) -> Result<FileRange, SandboxError> {
        let (root, relative) = self.locate(path)?;
        if relative.as_os_str().is_empty() {
            return Err(SandboxError::NotAFile { path: path.display().to_string(), kind: "a directory" });
        }
        let not_found_or_escapes = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => SandboxError::Io { path: path.display().to_string(), source: e },
            _ => Self::escapes(path, root, e),
        };
        // Sockets and devices are refused before any open; a FIFO put in a
        // file's place after this check is caught by the non-blocking open:
        // it opens at once (a blocking open would wait for a writer and hang
        // the request) and is refused below. Reads of a regular file are not
        // affected by the flag.
        let file_type = root.dir.metadata(&relative).map_err(not_found_or_escapes)?.file_type();
        if !file_type.is_file() {
            return Err(SandboxError::NotAFile { path: path.display().to_string(), kind: describe(file_type) });
        }
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(libc::O_NONBLOCK);
        let file = root.dir.open_with(&relative, &options).map_err(not_found_or_escapes)?.into_std();
        let io = |source| SandboxError::Io { path: path.display().to_string(), source };
        if !file.metadata().map_err(io)?.is_file() {
            return Err(SandboxError::NotAFile { path: path.display().to_string(), kind: "not a regular file" });
        }
        FileRange::whole(file, path.display().to_string()).map_err(io)
    }

    /// The absolute path a user path names inside the roots (`..` kept, for
    /// cap-std to judge when it is opened).
    pub fn absolute(&self, path: &Path) -> Result<PathBuf, SandboxError> {
        let (root, relative) = self.locate(path)?;
        Ok(root.path.join(relative))
    }

    /// Opens a regular file or a directory (for download links).
    pub fn open_entry(&self, path: &Path) -> Result<Entry, SandboxError> {
        let (root, relative) = self.locate(path)?;
        let absolute = root.path.join(&relative);
        if relative.as_os_str().is_empty() {
            let dir =
                root.dir.try_clone().map_err(|e| SandboxError::Io { path: path.display().to_string(), source: e })?;
            return Ok(Entry::Directory(dir, absolute));
        }
        let metadata = root.dir.metadata(&relative).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SandboxError::Io { path: path.display().to_string(), source: e },
            _ => Self::escapes(path, root, e),
        })?;
        if metadata.is_dir() {
            let dir = root.dir.open_dir(&relative).map_err(|e| Self::escapes(path, root, e))?;
            return Ok(Entry::Directory(dir, absolute));
        }
        self.open_file(path).map(Entry::File)
    }

    /// Where a download goes: `path` if given (into it, named `name`, when it
    /// is a directory), else `name` in the working directory.
    pub fn destination(&self, path: Option<&Path>, name: &str) -> Result<Destination<'_>, SandboxError> {
        let name = crate::validation::names::sanitize(name);
        let requested = path.map_or_else(|| PathBuf::from(&name), Path::to_path_buf);
        let (root, mut relative) = self.locate(&requested)?;
        let is_dir = relative.as_os_str().is_empty() || root.dir.is_dir(&relative);
        if is_dir {
            relative.push(&name);
        }
        let display = root.path.join(&relative);
        if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            // `..` is legal if it stays inside, but the recorded path must be plain.
            return Err(Self::escapes(
                &requested,
                root,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "write destinations may not contain '..'"),
            ));
        }
        Ok(Destination { dir: &root.dir, relative, display })
    }
}

impl Destination<'_> {
    /// Starts writing the destination: nothing appears there until the
    /// returned file is committed.
    pub fn begin(&self) -> Result<PartialFile, WriteError> {
        PartialFile::create(self.dir, &self.relative, &self.display.display().to_string())
    }

    /// Streams the body into place atomically, checking its SHA-256;
    /// `progress` counts the bytes written.
    pub async fn write(
        &self,
        body: Body,
        expected: Option<Digest>,
        progress: Option<Arc<Progress>>,
    ) -> Result<Copied, WriteError> {
        write_atomic(self.dir, &self.relative, body, expected, &self.display.display().to_string(), progress).await
    }
}

/// What a file that is not a regular file is, for messages.
fn describe(file_type: cap_std::fs::FileType) -> &'static str {
    use cap_std::fs::FileTypeExt as _;
    match file_type {
        t if t.is_dir() => "a directory",
        t if t.is_fifo() => "a FIFO",
        t if t.is_socket() => "a socket",
        t if t.is_char_device() || t.is_block_device() => "a device",
        _ => "not a regular file",
    }
}

/// Writes `body` to `relative` under `dir`: into a file that stays invisible
/// (or temporary) until it is complete, fsynced and checked against
/// `expected`, then put in place over whatever was there. On any failure, or
/// if the write is abandoned, nothing appears and the destination is untouched.
pub async fn write_atomic(
    dir: &Dir,
    relative: &Path,
    body: Body,
    expected: Option<Digest>,
    label: &str,
    progress: Option<Arc<Progress>>,
) -> Result<Copied, WriteError> {
    let mut partial = PartialFile::create(dir, relative, label)?;
    partial.append(body, progress).await?;
    partial.check(expected)?;
    partial.commit().await
}
