//! The `.mar` form: a zip archive, unpacked into a directory that
//! TorchServe registers as it is, so registration no longer waits for
//! TorchServe to unzip the archive on one core.
//!
//! While the archive downloads, a thread of its own inflates the entries
//! from the same blocks the writer stores ([`StreamFeed`], the download's
//! [`BlockTap`]): unpacking overlaps the transfer. When the download ends,
//! what the stream produced is checked against the archive's central
//! directory. Where the stream cannot be used (entries with data
//! descriptors, a transfer restarted from byte 0, an archive the peer
//! hard-linked without streaming it, an archive already in the store), the
//! finished file is unpacked instead.
//!
//! Either way every entry's CRC-32 is checked, every entry becomes a
//! regular file inside the directory (a name that would escape it is
//! refused, no symbolic link is created, as TorchServe's own unzip does),
//! and each file is synced before the directory is renamed into place.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::{Buf, Bytes};
use zip::read::ZipFile;
use zip::result::ZipError;
use zip::ZipArchive;

use super::{empty_dir, UnpackError, UnpackStats, UnpackedFrom};
use crate::model_store::background::spawn_cleanup;
use crate::model_store::TempDir;
use crate::transfer::writer::{BlockTap, SYNC_EVERY_BYTES};

/// Read and write size while copying an entry out.
const COPY_BUFFER: usize = 1 << 20;
/// 1 MiB blocks queued for the unpacking thread before the writer waits.
const BLOCKS_QUEUED: usize = 8;

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
struct EntryDigest {
    name: String,
    crc32: u32,
    size: u64,
}

type StreamResult = Result<(Vec<EntryDigest>, UnpackStats), UnpackError>;

/// The download side of a streaming unpack: the writer hands it every
/// block it stores, in order.
pub struct StreamFeed {
    blocks: Option<SyncSender<Bytes>>,
    restarted: Arc<AtomicBool>,
}

impl BlockTap for StreamFeed {
    /// Blocks while the unpacking thread is [`BLOCKS_QUEUED`] blocks
    /// behind, so memory stays bounded and the slower side sets the pace.
    fn block(&mut self, block: &Bytes) {
        if let Some(blocks) = &self.blocks {
            if blocks.send(block.clone()).is_err() {
                // The thread stopped (done or failed); finish() decides.
                self.blocks = None;
            }
        }
    }

    /// The transfer starts over from byte 0: what was streamed is void.
    fn restart(&mut self) {
        self.blocks = None;
        self.restarted.store(true, Ordering::Relaxed);
    }
}

/// The unpacking side of a streaming unpack.
pub struct StreamUnpacker {
    dir: Option<TempDir>,
    thread: Option<JoinHandle<StreamResult>>,
    restarted: Arc<AtomicBool>,
}

/// Starts unpacking into `dir` whatever the returned feed is given.
pub fn stream_unpacker(dir: TempDir) -> io::Result<(StreamUnpacker, StreamFeed)> {
    let (tx, rx) = sync_channel(BLOCKS_QUEUED);
    let target = dir.path().to_path_buf();
    let thread = std::thread::Builder::new()
        .name("dfe-unpack".into())
        .spawn(move || {
            let mut reader = ChannelReader {
                blocks: rx,
                current: Bytes::new(),
            };
            unpack_stream(&mut reader, &target)
        })?;
    let restarted = Arc::new(AtomicBool::new(false));
    Ok((
        StreamUnpacker {
            dir: Some(dir),
            thread: Some(thread),
            restarted: restarted.clone(),
        },
        StreamFeed {
            blocks: Some(tx),
            restarted,
        },
    ))
}

impl StreamUnpacker {
    /// Ends the unpack once `archive`, the file the stream was written to,
    /// is complete and verified. The feed must be dropped by then.
    pub fn finish(
        mut self,
        archive: &Path,
    ) -> Result<(TempDir, UnpackStats, UnpackedFrom), UnpackError> {
        let streamed = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(UnpackError::Invalid("the unpacking thread panicked".into())),
            None => Err(UnpackError::Invalid("no unpacking thread".into())),
        };
        let dir = self
            .dir
            .take()
            .ok_or_else(|| UnpackError::Invalid("no unpacking directory".into()))?;
        if !self.restarted.load(Ordering::Relaxed) {
            match streamed {
                Ok((entries, stats)) => {
                    if central_directory(archive)? == sorted(entries) {
                        return Ok((dir, stats, UnpackedFrom::Stream));
                    }
                    tracing::info!(
                        "{}: streamed entries differ from the central directory; unpacking the file",
                        archive.display()
                    );
                }
                // Disk errors come back from the file unpack too.
                Err(e) => tracing::debug!("{}: streaming unpack stopped: {e}", archive.display()),
            }
        }
        empty_dir(dir.path())?;
        let stats = unpack_file(archive, &dir)?;
        Ok((dir, stats, UnpackedFrom::File))
    }
}

impl Drop for StreamUnpacker {
    fn drop(&mut self) {
        // The thread must stop writing before the directory is removed
        // (a dropped feed ends it), or it could create files in a removed
        // directory's place. Joining it here could block an async worker
        // thread for as long as the queued blocks take: a thread of its own
        // waits, then removes the directory.
        if let Some(thread) = self.thread.take() {
            let dir = self.dir.take();
            spawn_cleanup("dfe-unpack-drop", move || {
                let _ = thread.join();
                drop(dir);
            });
        }
    }
}

/// Unpacks the complete archive at `archive` into `dir`.
pub fn unpack_file(archive: &Path, dir: &TempDir) -> Result<UnpackStats, UnpackError> {
    let mut file = File::open(archive)?;
    let mut magic = [0u8; 4];
    let is_zip =
        file.read_exact(&mut magic).is_ok() && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06");
    if !is_zip {
        return Err(UnpackError::NotZip);
    }
    let mut zip = ZipArchive::new(BufReader::with_capacity(COPY_BUFFER, File::open(archive)?))?;
    let mut stats = UnpackStats::default();
    let mut buffer = vec![0u8; COPY_BUFFER];
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index)?;
        write_entry(&mut entry, dir.path(), &mut buffer, &mut stats)?;
    }
    Ok(stats)
}

fn unpack_stream(reader: &mut impl Read, dir: &Path) -> StreamResult {
    let mut entries = Vec::new();
    let mut stats = UnpackStats::default();
    let mut buffer = vec![0u8; COPY_BUFFER];
    // Ends at the central directory; the writer stores the rest anyway.
    while let Some(mut entry) = zip::read::read_zipfile_from_stream(reader)? {
        entries.push(write_entry(&mut entry, dir, &mut buffer, &mut stats)?);
    }
    Ok((entries, stats))
}

/// Writes one entry under `dir`; reading it to its end checks its CRC-32.
fn write_entry<R: Read>(
    entry: &mut ZipFile<'_, R>,
    dir: &Path,
    buffer: &mut [u8],
    stats: &mut UnpackStats,
) -> Result<EntryDigest, UnpackError> {
    let name = entry.name()?.into_owned();
    let relative = entry.enclosed_name().ok_or_else(|| {
        UnpackError::Invalid(format!(
            "entry {name:?} would be written outside the model directory"
        ))
    })?;
    let path = dir.join(relative);
    let digest = EntryDigest {
        name: name.clone(),
        crc32: entry.crc32(),
        size: entry.size(),
    };
    if entry.is_dir() {
        fs::create_dir_all(&path)?;
        return Ok(digest);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut out = File::create(&path)?;
    let mut written = 0u64;
    let mut unsynced = 0u64;
    loop {
        let n = entry
            .read(buffer)
            .map_err(|e| UnpackError::Invalid(format!("entry {name:?}: {e}")))?;
        if n == 0 {
            break;
        }
        out.write_all(&buffer[..n])?;
        written += n as u64;
        unsynced += n as u64;
        // As the download's writer does: the final sync stays short.
        if unsynced >= SYNC_EVERY_BYTES {
            unsynced = 0;
            out.sync_data()?;
        }
    }
    if written != digest.size {
        return Err(UnpackError::Invalid(format!(
            "entry {name:?}: {written} bytes, the archive says {}",
            digest.size
        )));
    }
    out.sync_all()?;
    stats.files += 1;
    stats.bytes += written;
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

/// Reads the blocks the writer sends, in order; the end of the channel is
/// the end of the stream.
struct ChannelReader {
    blocks: Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.blocks.recv() {
                Ok(block) => self.current = block,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_store::ModelStore;
    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;

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

        let (unpacker, mut feed) =
            stream_unpacker(store.create_temp_dir("m.mar").unwrap()).unwrap();
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
        let (unpacker, mut feed) =
            stream_unpacker(store.create_temp_dir("m.mar").unwrap()).unwrap();
        feed_in_blocks(&mut feed, &bytes[..bytes.len() / 2], 1000);
        feed.restart();
        feed_in_blocks(&mut feed, &bytes, 1000);
        drop(feed);
        let (dir, _, from) = unpacker.finish(&archive).unwrap();
        assert_eq!(from, UnpackedFrom::File);
        assert_unpacked(dir.path(), &files);

        // Nothing streamed at all (a hard-linked archive).
        let (unpacker, feed) = stream_unpacker(store.create_temp_dir("m.mar").unwrap()).unwrap();
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

        let (unpacker, mut feed) =
            stream_unpacker(store.create_temp_dir("m.mar").unwrap()).unwrap();
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
        let err = unpack_file(&archive, &dir).unwrap_err();
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
            unpack_file(&archive, &dir),
            Err(UnpackError::NotZip)
        ));
    }

    #[test]
    fn a_dropped_unpack_leaves_nothing() {
        let work = tempfile::tempdir().unwrap();
        let store = ModelStore::open(work.path()).unwrap();
        let archive = work.path().join("m.mar");
        sample_zip(&archive);
        let bytes = fs::read(&archive).unwrap();
        let (unpacker, mut feed) =
            stream_unpacker(store.create_temp_dir("m.mar").unwrap()).unwrap();
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
