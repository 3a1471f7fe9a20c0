//! The `.mar` form: a zip archive, unpacked into a directory that
//! TorchServe registers as it is, so registration no longer waits for
//! TorchServe to unzip the archive on one core.
//!
//! While the archive downloads, a thread of its own inflates the entries
//! from the same blocks the writer stores (the [`super::StreamFeed`]): unpacking
//! overlaps the transfer. When the download ends, what the stream
//! produced is checked against the archive's central directory. Where the
//! stream cannot be used (a transfer restarted from byte 0, an archive the
//! peer hard-linked without streaming it, an archive already in the
//! store), the finished file is unpacked instead. Stored entries
//! (`zip-store`) are never inflated: the zip reader copies them through
//! its CRC-32 (crc32fast) at disk speed on both paths, as fast as the
//! alternatives measured (see docs/architecture.md). Zip64 archives (over
//! 4 GiB, or over 65535 entries) take the same paths.
//!
//! Either way every entry's CRC-32 is checked, every entry becomes a
//! regular file inside the directory (a name that would escape it is
//! refused, no symbolic link is created, as TorchServe's own unzip does).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use zip::read::ZipFile;
use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use super::inflate::{allocate, inflate_into, map_archive};
use super::output::{copy_into, create_dirs, create_file, Budget, COPY_BUFFER};
use super::stream::Stream;
use super::{empty_dir, Form, Limits, UnpackError, UnpackStats, UnpackedFrom};
use crate::model_store::TempDir;

impl From<ZipError> for UnpackError {
    fn from(err: ZipError) -> Self {
        match err {
            ZipError::Io(e) => UnpackError::Invalid(format!("reading the archive: {e}")),
            other => UnpackError::Invalid(other.to_string()),
        }
    }
}

/// An entry as the archive describes it; what the stream unpacked must
/// match the central directory entry for entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct EntryDigest {
    name: String,
    crc32: u32,
    size: u64,
}

pub(super) type StreamResult = Result<(Vec<EntryDigest>, UnpackStats), UnpackError>;

/// Ends a streaming unpack once `archive`, the file the stream was
/// written to, is complete and verified. The feed must be dropped by then.
pub(super) fn finish(
    stream: Stream<StreamResult>,
    archive: &Path,
    limits: Limits,
) -> Result<(TempDir, UnpackStats, UnpackedFrom), UnpackError> {
    let joined = stream.join()?;
    if !joined.restarted {
        match joined.result {
            Some(Ok((entries, stats))) => {
                if central_directory(archive)? == sorted(entries) {
                    return Ok((joined.dir, stats, UnpackedFrom::Stream));
                }
                tracing::info!(
                    "{}: streamed entries differ from the central directory; unpacking the file",
                    archive.display()
                );
            }
            // Disk errors come back from the file unpack too.
            Some(Err(e)) => {
                tracing::debug!("{}: streaming unpack stopped: {e}", archive.display())
            }
            None => tracing::warn!("{}: the unpacking thread panicked", archive.display()),
        }
    }
    empty_dir(joined.dir.path())?;
    let stats = unpack_file(archive, &joined.dir, limits)?;
    Ok((joined.dir, stats, UnpackedFrom::File))
}

/// Unpacks the complete archive at `archive` into `dir`. Deflated entries
/// are inflated whole from a mapping of the archive ([`inflate`]), the
/// rest (stored entries, or any entry where mapping is not possible) are
/// copied through the zip reader as the stream does.
pub(super) fn unpack_file(
    archive: &Path,
    dir: &TempDir,
    limits: Limits,
) -> Result<UnpackStats, UnpackError> {
    let mut file = File::open(archive)?;
    let mut magic = [0u8; 4];
    let is_zip =
        file.read_exact(&mut magic).is_ok() && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06");
    if !is_zip {
        return Err(UnpackError::WrongForm(Form::Zip));
    }
    // SAFETY: the archive is the model store's copy of a finished
    // download, held under the model's lock; nothing truncates it while
    // it is unpacked.
    let mapped = unsafe { map_archive(&file) };
    let mut zip = ZipArchive::new(BufReader::with_capacity(COPY_BUFFER, File::open(archive)?))?;
    let mut out = FileOut {
        dir: dir.path(),
        buffer: vec![0u8; COPY_BUFFER],
        stats: UnpackStats::default(),
        budget: Budget::new(limits, dir.path()),
    };
    for index in 0..zip.len() {
        let whole = {
            let raw = zip.by_index_raw(index)?;
            match mapped.as_deref().and_then(|m| deflate_stream(&raw, m)) {
                Some(stream) => Some((place(&raw, dir.path())?, raw.size(), raw.crc32(), stream)),
                None => None,
            }
        };
        match whole {
            Some(((name, path), size, crc32, stream)) => {
                out.budget.admit_file(&name, size)?;
                let mut file = create_file(&path, &name)?;
                if allocate(&file, size)? {
                    inflate_into(stream, &file, size, crc32, &name)?;
                } else {
                    let mut entry = zip.by_index(index)?;
                    copy_entry(&mut entry, &mut file, &name, size, &mut out.buffer)?;
                }
                out.stats.files += 1;
                out.stats.bytes += size;
            }
            None => {
                let mut entry = zip.by_index(index)?;
                write_entry(
                    &mut entry,
                    out.dir,
                    &mut out.buffer,
                    &mut out.stats,
                    &mut out.budget,
                )?;
            }
        }
    }
    Ok(out.stats)
}

/// What the file path carries from entry to entry.
struct FileOut<'a> {
    dir: &'a Path,
    buffer: Vec<u8>,
    stats: UnpackStats,
    budget: Budget,
}

/// A deflated file entry's whole deflate stream within the mapped
/// archive, when it can be inflated in one call (not encrypted, inside
/// the file).
fn deflate_stream<'m, R: Read>(entry: &ZipFile<'_, R>, mapped: &'m [u8]) -> Option<&'m [u8]> {
    if entry.compression() != CompressionMethod::Deflated || entry.encrypted() || entry.is_dir() {
        return None;
    }
    let start = usize::try_from(entry.data_start()?).ok()?;
    let len = usize::try_from(entry.compressed_size()).ok()?;
    mapped.get(start..start.checked_add(len)?)
}

/// Copies `entry` through the zip reader into `file`: exactly the `size`
/// bytes the archive declares; reading it to its end checks its CRC-32.
fn copy_entry<R: Read>(
    entry: &mut ZipFile<'_, R>,
    file: &mut File,
    name: &str,
    size: u64,
    buffer: &mut [u8],
) -> Result<(), UnpackError> {
    // One byte past the declared size is enough to know it lied: a bomb
    // that declares 1 byte never writes more than 2.
    let mut bounded = Read::take(&mut *entry, size.saturating_add(1));
    let written = copy_into(&mut bounded, file, buffer, name, size)?;
    if written != size {
        return Err(UnpackError::Invalid(format!(
            "entry {name:?}: {written} bytes, the archive says {size}"
        )));
    }
    Ok(())
}

/// What the stream thread runs (see [`super::stream::spawn`]).
pub(super) fn unpack_stream(reader: &mut impl Read, dir: &Path, limits: Limits) -> StreamResult {
    let mut entries = Vec::new();
    let mut stats = UnpackStats::default();
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut budget = Budget::new(limits, dir);
    // Ends at the central directory; the writer stores the rest anyway.
    while let Some(mut entry) = zip::read::read_zipfile_from_stream(reader)? {
        entries.push(write_entry(
            &mut entry,
            dir,
            &mut buffer,
            &mut stats,
            &mut budget,
        )?);
    }
    Ok((entries, stats))
}

/// The entry's name and where it goes under `dir`.
fn place<R: Read>(entry: &ZipFile<'_, R>, dir: &Path) -> Result<(String, PathBuf), UnpackError> {
    let name = entry.name()?.into_owned();
    let relative = entry.enclosed_name().ok_or_else(|| {
        UnpackError::Invalid(format!(
            "entry {name:?} would be written outside the model directory"
        ))
    })?;
    Ok((name, dir.join(relative)))
}

/// Writes one entry under `dir`; reading it to its end checks its CRC-32.
fn write_entry<R: Read>(
    entry: &mut ZipFile<'_, R>,
    dir: &Path,
    buffer: &mut [u8],
    stats: &mut UnpackStats,
    budget: &mut Budget,
) -> Result<EntryDigest, UnpackError> {
    let (name, path) = place(entry, dir)?;
    let digest = EntryDigest {
        name: name.clone(),
        crc32: entry.crc32(),
        size: entry.size(),
    };
    if entry.is_dir() {
        budget.admit_dir(&name)?;
        create_dirs(&path, &name)?;
        return Ok(digest);
    }
    budget.admit_file(&name, digest.size)?;
    let mut out = create_file(&path, &name)?;
    copy_entry(entry, &mut out, &name, digest.size, buffer)?;
    stats.files += 1;
    stats.bytes += digest.size;
    Ok(digest)
}

/// The entries the central directory lists, sorted.
fn central_directory(archive: &Path) -> Result<Vec<EntryDigest>, UnpackError> {
    let mut zip = ZipArchive::new(BufReader::new(File::open(archive)?))?;
    let mut entries = Vec::with_capacity(zip.len());
    for index in 0..zip.len() {
        let entry = zip.by_index_raw(index)?;
        entries.push(EntryDigest {
            name: entry.name()?.into_owned(),
            crc32: entry.crc32(),
            size: entry.size(),
        });
    }
    Ok(sorted(entries))
}

fn sorted(mut entries: Vec<EntryDigest>) -> Vec<EntryDigest> {
    entries.sort();
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{stream_unpacker, StreamFeed};
    use crate::model_store::ModelStore;
    use crate::transfer::writer::BlockTap;
    use bytes::Bytes;
    use std::fs;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    /// A zip with a deflated and a stored file in a folder, plus a manifest.
    fn sample_zip(path: &Path) -> Vec<(String, Vec<u8>)> {
        let files: Vec<(String, Vec<u8>)> = vec![
            (
                "model.pt".into(),
                (0..300_000u32)
                    .flat_map(|i| (i % 251).to_le_bytes())
                    .collect(),
            ),
            (
                "code/handler.py".into(),
                b"def handle(data, ctx):\n    return data\n".to_vec(),
            ),
            (
                "MAR-INF/MANIFEST.json".into(),
                br#"{"model": {"modelName": "m"}}"#.to_vec(),
            ),
        ];
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        for (i, (name, data)) in files.iter().enumerate() {
            let method = if i == 1 {
                CompressionMethod::Stored
            } else {
                CompressionMethod::Deflated
            };
            zip.start_file(
                name.as_str(),
                SimpleFileOptions::default().compression_method(method),
            )
            .unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
        files
    }

    fn assert_unpacked(dir: &Path, files: &[(String, Vec<u8>)]) {
        for (name, data) in files {
            assert_eq!(&fs::read(dir.join(name)).unwrap(), data, "{name}");
        }
    }

    fn feed_in_blocks(feed: &mut StreamFeed, bytes: &[u8], block: usize) {
        for chunk in bytes.chunks(block) {
            feed.block(&Bytes::copy_from_slice(chunk));
        }
    }

    #[test]
    fn streamed_unpack_matches_the_archive() {
        let work = tempfile::tempdir().unwrap();
        let store = ModelStore::open(work.path()).unwrap();
        let archive = work.path().join("m.mar");
        let files = sample_zip(&archive);
        let bytes = fs::read(&archive).unwrap();

        let (unpacker, mut feed) = stream_unpacker(
            Form::Zip,
            store.create_temp_dir("m.mar").unwrap(),
            Limits::NONE,
        )
        .unwrap();
        feed_in_blocks(&mut feed, &bytes, 4096);
        drop(feed);
        let (dir, stats, from) = unpacker.finish(&archive).unwrap();
        assert_eq!(from, UnpackedFrom::Stream);
        assert_eq!(stats.files, 3);
        assert_eq!(
            stats.bytes,
            files.iter().map(|f| f.1.len() as u64).sum::<u64>()
        );
        assert_unpacked(dir.path(), &files);
    }

    #[test]
    fn a_restarted_or_truncated_stream_falls_back_to_the_file() {
        let work = tempfile::tempdir().unwrap();
        let store = ModelStore::open(work.path()).unwrap();
        let archive = work.path().join("m.mar");
        let files = sample_zip(&archive);
        let bytes = fs::read(&archive).unwrap();

        // Half the bytes, then the transfer starts over.
        let (unpacker, mut feed) = stream_unpacker(
            Form::Zip,
            store.create_temp_dir("m.mar").unwrap(),
            Limits::NONE,
        )
        .unwrap();
        feed_in_blocks(&mut feed, &bytes[..bytes.len() / 2], 1000);
        feed.restart();
        feed_in_blocks(&mut feed, &bytes, 1000);
        drop(feed);
        let (dir, _, from) = unpacker.finish(&archive).unwrap();
        assert_eq!(from, UnpackedFrom::File);
        assert_unpacked(dir.path(), &files);

        // Nothing streamed at all (a hard-linked archive).
        let (unpacker, feed) = stream_unpacker(
            Form::Zip,
            store.create_temp_dir("m.mar").unwrap(),
            Limits::NONE,
        )
        .unwrap();
        drop(feed);
        let (dir, _, from) = unpacker.finish(&archive).unwrap();
        assert_eq!(from, UnpackedFrom::File);
        assert_unpacked(dir.path(), &files);
    }

    #[test]
    fn a_corrupt_entry_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let store = ModelStore::open(work.path()).unwrap();
        let archive = work.path().join("m.mar");
        sample_zip(&archive);
        let mut bytes = fs::read(&archive).unwrap();
        // Inside the stored handler's data: its CRC no longer matches.
        let at = bytes.windows(10).position(|w| w == b"def handle").unwrap();
        bytes[at] ^= 0xff;
        fs::write(&archive, &bytes).unwrap();

        let (unpacker, mut feed) = stream_unpacker(
            Form::Zip,
            store.create_temp_dir("m.mar").unwrap(),
            Limits::NONE,
        )
        .unwrap();
        feed_in_blocks(&mut feed, &bytes, 65536);
        drop(feed);
        let err = unpacker.finish(&archive).unwrap_err();
        assert!(
            matches!(err, UnpackError::Invalid(ref m) if m.contains("code/handler.py")),
            "{err:?}"
        );
    }

    #[test]
    fn names_escaping_the_directory_are_refused() {
        let work = tempfile::tempdir().unwrap();
        let store = ModelStore::open(work.path()).unwrap();
        let archive = work.path().join("evil.mar");
        let mut zip = zip::ZipWriter::new(File::create(&archive).unwrap());
        zip.start_file("../escaped.py", SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"x").unwrap();
        zip.finish().unwrap();

        let dir = store.create_temp_dir("evil.mar").unwrap();
        let err = unpack_file(&archive, &dir, Limits::NONE).unwrap_err();
        assert!(
            matches!(err, UnpackError::Invalid(ref m) if m.contains("outside")),
            "{err:?}"
        );
        assert!(!store.unpacked_root().join("escaped.py").exists());
        assert!(!work.path().join("escaped.py").exists());
    }

    #[test]
    fn not_a_zip_is_left_to_torchserve() {
        let work = tempfile::tempdir().unwrap();
        let store = ModelStore::open(work.path()).unwrap();
        let archive = work.path().join("x.mar");
        fs::write(&archive, b"this is not a zip archive").unwrap();
        let dir = store.create_temp_dir("x.mar").unwrap();
        assert!(matches!(
            unpack_file(&archive, &dir, Limits::NONE),
            Err(UnpackError::WrongForm(Form::Zip))
        ));
    }

    #[test]
    fn a_dropped_unpack_leaves_nothing() {
        let work = tempfile::tempdir().unwrap();
        let store = ModelStore::open(work.path()).unwrap();
        let archive = work.path().join("m.mar");
        sample_zip(&archive);
        let bytes = fs::read(&archive).unwrap();
        let (unpacker, mut feed) = stream_unpacker(
            Form::Zip,
            store.create_temp_dir("m.mar").unwrap(),
            Limits::NONE,
        )
        .unwrap();
        feed_in_blocks(&mut feed, &bytes[..bytes.len() / 3], 4096);
        drop(feed);
        drop(unpacker);
        // The directory goes on a thread of its own, once the unpacking
        // thread has stopped.
        for _ in 0..500 {
            if fs::read_dir(work.path()).unwrap().count() == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(fs::read_dir(work.path()).unwrap().count(), 1, "only m.mar");
        assert!(!store.unpacked_root().exists());
    }
}
