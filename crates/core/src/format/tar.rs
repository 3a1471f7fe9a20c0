//! The `.tar.gz` / `.tgz` form (`torch-model-archiver --archive-format
//! tgz`): gzip, then tar, unpacked into the directory TorchServe would
//! have made of it (names placed as [`super::tar_names`] says).
//!
//! While the archive downloads, a thread of its own decompresses the same
//! blocks the writer stores and unpacks the entries. Unlike a zip, a tar
//! has no index to compare with at the end: when the stream saw every byte
//! of the finished file, its result is the file's, good or bad. Otherwise
//! (a transfer restarted from byte 0, an archive the peer hard-linked
//! without streaming it, one already in the store) the finished file is
//! unpacked instead.
//!
//! Verified: the gzip CRC-32 and length of every member, each file's
//! length, and the tar end-of-archive marker (two zero blocks, then only
//! zeros), so a truncated or corrupt stream is refused. Only regular
//! files, directories and links that stay inside the directory are
//! accepted: a hard link becomes a hard link to the earlier file, a
//! symbolic link a hard link to the file it points at (no symbolic link
//! is ever created, so no later entry can be written through one); device
//! files, FIFOs and every other kind are refused.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ::tar::{Archive, EntryType};
use flate2::bufread::MultiGzDecoder;

use super::output::{
    copy_into, create_dirs, create_file, layout_error, remove_file_at, Budget, COPY_BUFFER,
};
use super::stream::{ChannelReader, Stream};
use super::tar_names::{entry_path, symlink_target, MAX_LINK_HOPS};
use super::{empty_dir, Form, Limits, UnpackError, UnpackStats, UnpackedFrom};
use crate::model_store::TempDir;

/// Bytes the tar reader may hold between two entries (headers, PAX
/// records, GNU long names): it keeps them in memory, so without a bound
/// a small archive could make it hold gigabytes.
const HEADER_BYTES_MAX: u64 = 1 << 20;
/// Tar block size: the end-of-archive marker is two zero blocks.
const BLOCK: u64 = 512;

pub(super) type StreamResult = Result<UnpackStats, UnpackError>;

/// Ends a streaming unpack once `archive`, the file the stream was
/// written to, is complete and verified. The feed must be dropped by then.
pub(super) fn finish(
    stream: Stream<StreamResult>,
    archive: &Path,
    limits: Limits,
) -> Result<(TempDir, UnpackStats, UnpackedFrom), UnpackError> {
    let joined = stream.join()?;
    is_gzip(archive)?;
    let whole = !joined.restarted && joined.bytes == fs::metadata(archive)?.len();
    match joined.result {
        Some(result) if whole => return Ok((joined.dir, result?, UnpackedFrom::Stream)),
        Some(_) => tracing::debug!(
            "{}: the stream did not see the whole file; unpacking the file",
            archive.display()
        ),
        None => tracing::warn!("{}: the unpacking thread panicked", archive.display()),
    }
    empty_dir(joined.dir.path())?;
    let stats = unpack_file(archive, &joined.dir, limits)?;
    Ok((joined.dir, stats, UnpackedFrom::File))
}

/// What the stream thread runs (see [`super::stream::spawn`]).
pub(super) fn unpack_stream(
    reader: &mut ChannelReader,
    dir: &Path,
    limits: Limits,
) -> StreamResult {
    unpack(reader, dir, limits)
}

/// Unpacks the complete archive at `archive` into `dir`.
pub(super) fn unpack_file(
    archive: &Path,
    dir: &TempDir,
    limits: Limits,
) -> Result<UnpackStats, UnpackError> {
    is_gzip(archive)?;
    let file = File::open(archive)?;
    unpack(
        BufReader::with_capacity(COPY_BUFFER, file),
        dir.path(),
        limits,
    )
}

/// Anything but gzip is left to TorchServe, as a zip that is not one.
fn is_gzip(archive: &Path) -> Result<(), UnpackError> {
    let mut magic = [0u8; 2];
    let mut file = File::open(archive)?;
    match file.read_exact(&mut magic) {
        Ok(()) if magic == [0x1f, 0x8b] => Ok(()),
        _ => Err(UnpackError::WrongForm(Form::TarGz)),
    }
}

fn invalid(err: io::Error) -> UnpackError {
    UnpackError::Invalid(format!("reading the tar.gz: {err}"))
}

/// What the entries so far have made of the directory.
#[derive(Default)]
struct Tree {
    stats: UnpackStats,
    /// Regular files written: what links may point at.
    files: HashSet<PathBuf>,
    /// Symbolic links, made once every entry is in place (a target may
    /// come later in the archive).
    symlinks: HashMap<PathBuf, PathBuf>,
}

fn unpack(reader: impl BufRead, dir: &Path, limits: Limits) -> StreamResult {
    let allowance = Rc::new(Cell::new(Some(HEADER_BYTES_MAX)));
    let gzip = Bounded {
        inner: MultiGzDecoder::new(reader),
        allowance: allowance.clone(),
    };
    let mut archive = Archive::new(gzip);
    let mut tree = Tree::default();
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut budget = Budget::new(limits, dir);
    {
        let mut entries = archive.entries().map_err(invalid)?;
        loop {
            allowance.set(Some(HEADER_BYTES_MAX));
            let Some(entry) = entries.next() else { break };
            allowance.set(None);
            let mut entry = entry.map_err(invalid)?;
            write_entry(&mut entry, dir, &mut tree, &mut buffer, &mut budget)?;
            // Data of entries that are not files is read and dropped here,
            // not inside the next header's allowance.
            io::copy(&mut entry, &mut io::sink()).map_err(invalid)?;
        }
    }
    allowance.set(None);
    end_of_archive(archive.into_inner())?;
    link_symlinks(dir, &mut tree)?;
    Ok(tree.stats)
}

fn write_entry(
    entry: &mut ::tar::Entry<'_, impl Read>,
    dir: &Path,
    tree: &mut Tree,
    buffer: &mut [u8],
    budget: &mut Budget,
) -> Result<(), UnpackError> {
    let kind = entry.header().entry_type();
    if kind == EntryType::XGlobalHeader {
        return Ok(());
    }
    let raw = entry.path_bytes().into_owned();
    let name = String::from_utf8_lossy(&raw).into_owned();
    // Old tars mark directories by a trailing slash only.
    let kind = match kind {
        EntryType::Regular if raw.ends_with(b"/") => EntryType::Directory,
        other => other,
    };
    let Some(relative) = entry_path(&raw, kind.is_dir())? else {
        return Ok(());
    };
    let path = dir.join(&relative);
    tree.symlinks.remove(&relative);
    match kind {
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            budget.admit_file(&name, entry.size())?;
            let mut out = create_file(&path, &name)?;
            let declared = entry.size();
            let written = copy_into(entry, &mut out, buffer, &name, declared)?;
            if written != entry.size() {
                return Err(UnpackError::Invalid(format!(
                    "entry {name:?}: {written} bytes, the archive says {}",
                    entry.size()
                )));
            }
            tree.files.insert(relative);
            tree.stats.files += 1;
            tree.stats.bytes += written;
        }
        EntryType::Directory => {
            budget.admit_dir(&name)?;
            create_dirs(&path, &name)?
        }
        EntryType::Link => {
            budget.admit_file(&name, 0)?;
            let target = link_name(entry, &name)?;
            let target = entry_path(&target, false)?
                .filter(|t| tree.files.contains(t))
                .ok_or_else(|| {
                    UnpackError::Invalid(format!(
                        "hard link {name:?} does not point to a file earlier in the archive"
                    ))
                })?;
            if target != relative {
                hard_link(dir, &target, &relative, &name)?;
                tree.files.insert(relative);
                tree.stats.files += 1;
            }
        }
        EntryType::Symlink => {
            budget.admit_file(&name, 0)?;
            let target = symlink_target(&relative, &link_name(entry, &name)?)?;
            tree.files.remove(&relative);
            remove_file_at(&path, &name)?;
            tree.symlinks.insert(relative, target);
        }
        other => {
            return Err(UnpackError::Invalid(format!(
                "entry {name:?} is a {other:?}: only files, directories and links inside the model directory are allowed"
            )))
        }
    }
    Ok(())
}

fn link_name(entry: &::tar::Entry<'_, impl Read>, name: &str) -> Result<Vec<u8>, UnpackError> {
    entry
        .link_name_bytes()
        .map(|b| b.into_owned())
        .ok_or_else(|| UnpackError::Invalid(format!("link {name:?} has no target")))
}

/// `relative` as a hard link to the file at `target` (both inside `dir`).
fn hard_link(dir: &Path, target: &Path, relative: &Path, name: &str) -> Result<(), UnpackError> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        create_dirs(parent, name)?;
    }
    remove_file_at(&path, name)?;
    fs::hard_link(dir.join(target), &path).map_err(|e| layout_error(name, e))
}

/// Each symbolic link becomes a hard link to the file its chain ends at.
fn link_symlinks(dir: &Path, tree: &mut Tree) -> Result<(), UnpackError> {
    let links: Vec<(PathBuf, PathBuf)> = tree.symlinks.drain().collect();
    let pending: HashMap<PathBuf, PathBuf> = links.iter().cloned().collect();
    for (link, first) in &links {
        let name = link.to_string_lossy();
        let mut target = first;
        for _ in 0..MAX_LINK_HOPS {
            match pending.get(target) {
                Some(next) => target = next,
                None => break,
            }
        }
        if !tree.files.contains(target) {
            return Err(UnpackError::Invalid(format!(
                "symbolic link {name:?} does not point to a file of the archive"
            )));
        }
        hard_link(dir, target, link, &name)?;
        tree.stats.files += 1;
    }
    Ok(())
}

/// After the first zero block (read by the tar reader) there must be at
/// least one more and nothing but zeros to the end of the gzip stream,
/// which is read to its end so its last CRC and length are checked.
fn end_of_archive(mut rest: impl Read) -> Result<(), UnpackError> {
    let mut buffer = vec![0u8; 64 << 10];
    let mut zeros = 0u64;
    loop {
        let n = match rest.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(invalid(e)),
        };
        if buffer[..n].iter().any(|b| *b != 0) {
            return Err(UnpackError::Invalid(
                "the tar.gz has data after its end-of-archive marker".into(),
            ));
        }
        zeros += n as u64;
    }
    if zeros < BLOCK {
        return Err(UnpackError::Invalid(
            "the tar.gz ends without its end-of-archive marker (truncated)".into(),
        ));
    }
    Ok(())
}

/// Reads at most `allowance` bytes while it is set, then fails.
struct Bounded<R> {
    inner: R,
    allowance: Rc<Cell<Option<u64>>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.allowance.get() else {
            return self.inner.read(buf);
        };
        if left == 0 {
            return Err(io::Error::other(format!(
                "more than {HEADER_BYTES_MAX} bytes of tar headers before one entry"
            )));
        }
        let cap = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..cap])?;
        self.allowance.set(Some(left - n as u64));
        Ok(n)
    }
}
