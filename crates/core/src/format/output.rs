//! How every unpacker writes into the staged directory: each file is
//! created fresh (an earlier entry of the same name, or a hard link to
//! it, is never written through), its declared size reserved up front
//! (`fallocate`, so a full disk shows before the bytes are inflated and
//! the file is laid out in one piece), written back behind the writer as
//! the download's writer does ([`Writeback`]), and the whole directory is
//! made durable by
//! one `syncfs` before it is renamed into place ([`sync_filesystem`]).
//! One fsync per file costs ~1 ms on this project's machines: over a
//! minute for an archive of 65536 entries, against ~15 µs per file for
//! one `syncfs` at the end.
//!
//! The archive decides the layout, so a name that collides with another
//! entry's kind (a file where a directory is, a directory below a file) is
//! the archive's fault: [`UnpackError::Invalid`], not a disk error.

use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{Limits, UnpackError};
use crate::transfer::writer::Writeback;

/// Read and write size while copying an entry out.
pub(super) const COPY_BUFFER: usize = 1 << 20;

/// A disk error, or the archive's layout contradicting itself.
pub(super) fn layout_error(name: &str, err: io::Error) -> UnpackError {
    match err.kind() {
        ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::AlreadyExists
        | ErrorKind::DirectoryNotEmpty => UnpackError::Invalid(format!("entry {name:?}: {err}")),
        _ => UnpackError::Io(err),
    }
}

pub(super) fn create_dirs(path: &Path, name: &str) -> Result<(), UnpackError> {
    fs::create_dir_all(path).map_err(|e| layout_error(name, e))
}

/// A new, empty file at `path` (whatever was there before is unlinked).
pub(super) fn create_file(path: &Path, name: &str) -> Result<File, UnpackError> {
    if let Some(parent) = path.parent() {
        create_dirs(parent, name)?;
    }
    remove_file_at(path, name)?;
    // Readable too: the file path maps it to inflate into (`inflate.rs`).
    File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| layout_error(name, e))
}

/// Unlinks a file (or link) at `path`; a directory there is refused.
pub(super) fn remove_file_at(path: &Path, name: &str) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(UnpackError::Invalid(format!(
            "entry {name:?} is a file where the archive has a directory"
        ))),
        Ok(_) => fs::remove_file(path).map_err(UnpackError::Io),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(layout_error(name, e)),
    }
}

/// Copies `reader` to its end into `out`, which the archive says will hold
/// `declared` bytes; read errors are the archive's (a bad CRC, a truncated
/// stream), write errors the disk's.
pub(super) fn copy_into(
    reader: &mut impl Read,
    out: &mut File,
    buffer: &mut [u8],
    name: &str,
    declared: u64,
) -> Result<u64, UnpackError> {
    reserve(out, declared)?;
    let mut written = 0u64;
    let mut writeback = Writeback::default();
    loop {
        let n = match reader.read(buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(UnpackError::Invalid(format!("entry {name:?}: {e}"))),
        };
        out.write_all(&buffer[..n])?;
        written += n as u64;
        writeback.wrote(out, written)?;
    }
    Ok(written)
}

/// Reserves `len` bytes of disk for `file` without changing its size
/// (`FALLOC_FL_KEEP_SIZE`: an entry shorter than declared stays short).
/// A filesystem that cannot is left to allocate as it writes.
fn reserve(file: &File, len: u64) -> io::Result<()> {
    let Ok(len) = i64::try_from(len) else {
        return Ok(());
    };
    if len == 0 {
        return Ok(());
    }
    // SAFETY: fallocate(2) on a descriptor `file` keeps open for the call.
    let done = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
    if done == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => Ok(()),
        _ => Err(err),
    }
}

/// Makes everything written under `dir` durable: one `syncfs(2)` of its
/// filesystem, which also reports a failed writeback of any file in it.
pub(super) fn sync_filesystem(dir: &Path) -> io::Result<()> {
    let handle = File::open(dir)?;
    // SAFETY: syncfs(2) only reads the descriptor, which `handle` keeps
    // open for the call.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Counts an archive's entries against its [`Limits`] and the disk, before
/// each is written: a deflate bomb or a flood of entries is refused before
/// it fills the disk TorchServe shares. A name given twice counts twice
/// (the later entry replaces the earlier, as tar and TorchServe's own
/// unzip do).
pub(super) struct Budget {
    limits: Limits,
    dir: PathBuf,
    entries: u64,
    bytes: u64,
}

impl Budget {
    pub(super) fn new(limits: Limits, dir: &Path) -> Self {
        Budget {
            limits,
            dir: dir.to_path_buf(),
            entries: 0,
            bytes: 0,
        }
    }

    /// A directory entry: it only counts.
    pub(super) fn admit_dir(&mut self, name: &str) -> Result<(), UnpackError> {
        self.count(name)
    }

    /// A file of `declared` bytes: counted, within
    /// the byte bound and the free space of the disk. The forms enforce the
    /// declared size while copying (a zip entry may not inflate past it, a
    /// tar entry is exactly it).
    pub(super) fn admit_file(&mut self, name: &str, declared: u64) -> Result<(), UnpackError> {
        self.count(name)?;
        self.bytes = self.bytes.saturating_add(declared);
        if self.bytes > self.limits.max_bytes {
            return Err(UnpackError::Invalid(format!(
                "the archive unpacks to more than {} bytes (unpack.max_bytes) at entry {name:?}",
                self.limits.max_bytes
            )));
        }
        let free = free_bytes(&self.dir)?;
        if declared > free {
            return Err(UnpackError::Io(io::Error::new(
                ErrorKind::StorageFull,
                format!("entry {name:?} needs {declared} bytes, {free} are free"),
            )));
        }
        Ok(())
    }

    fn count(&mut self, name: &str) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::Invalid(format!(
                "the archive has more than {} entries (unpack.max_entries) at {name:?}",
                self.limits.max_entries
            )));
        }
        Ok(())
    }
}

/// Bytes an unprivileged writer may still use on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a path with NUL"))?;
    // SAFETY: statvfs(2) writes one struct into `stat`, which is zeroed and
    // big enough; `path` is a valid C string for the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}
