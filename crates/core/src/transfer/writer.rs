//! The block writer: the network side batches the body into 1 MiB blocks
//! and a blocking thread appends them to the file and computes the MD5, so
//! hashing and disk writes never stall the socket and memory stays bounded
//! (a few MiB per pull, whatever the archive size). A [`BlockTap`] sees
//! every block after it is written (the streaming unpacker is one).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::digest::Algorithm;
use crate::error::{CoreError, Result};

/// Size of the blocks handed to the writer thread.
pub const BLOCK_SIZE: usize = 1 << 20;
/// Blocks in flight between the socket and the writer.
const BLOCKS_IN_FLIGHT: usize = 8;
/// The download's writer (and every unpacker) starts writeback of every
/// this many bytes as they are written, without waiting for it
/// (`sync_file_range`), and waits only for the range it started the time
/// before, which is long done: dirty pages stay bounded (the kernel's own
/// thresholds are GiBs on a big machine), the socket and the inflater never
/// wait on the disk, and the final sync has almost nothing left to write.
const WRITEBACK_BYTES: u64 = 8 << 20;

/// Sees the download's blocks as they are written.
pub trait BlockTap: Send {
    /// The next block of the body, in order.
    fn block(&mut self, data: &Bytes);
    /// The transfer starts over from byte 0: what was seen is void.
    fn restart(&mut self);
}

/// Where the writer writes, and what a full disk is reported against.
pub struct WriteTarget {
    pub file: File,
    /// The model store directory (named in a 507).
    pub dir: PathBuf,
    /// The file name the download is for.
    pub name: String,
}

enum Block {
    Data(Bytes),
    /// Empty the file, and write to it again from byte 0.
    Truncate,
    /// From now on only hash and tap the blocks: the peer's hard link is
    /// the file (a cold task linked into the store).
    Discard,
    /// The linked transfer broke: copy its first `len` bytes from the
    /// peer's file (CRC-32C `crc`, as streamed) and write again from there,
    /// so the retry resumes with a `Range` instead of starting over.
    Adopt {
        from: PathBuf,
        len: u64,
        crc: u64,
    },
}

/// The network side's handle on the writer thread.
pub struct WriterSink {
    blocks: mpsc::Sender<Block>,
}

impl WriterSink {
    pub async fn write(&self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.send(Block::Data(data)).await
    }

    /// Empties the file: the next block is byte 0 again (and is written).
    pub async fn truncate(&self) -> Result<()> {
        self.send(Block::Truncate).await
    }

    /// The following blocks are hashed and tapped but not written: the
    /// peer links its own copy of them into the store.
    pub async fn discard(&self) -> Result<()> {
        self.send(Block::Discard).await
    }

    /// Takes the first `len` bytes (CRC-32C `crc`) from the peer's file at
    /// `from` and writes again after them.
    pub async fn adopt(&self, from: &Path, len: u64, crc: u64) -> Result<()> {
        self.send(Block::Adopt {
            from: from.to_path_buf(),
            len,
            crc,
        })
        .await
    }

    async fn send(&self, block: Block) -> Result<()> {
        // A closed channel means the writer failed; its error is reported
        // when the writer is joined.
        self.blocks
            .send(block)
            .await
            .map_err(|_| CoreError::Internal("model store writer stopped".into()))
    }
}

/// Bytes written and, when asked for, their digest.
pub type Written = (u64, Option<Vec<u8>>);

/// Starts the writer thread; `hash`: the digest to compute (only when there
/// is one to compare: hashing costs CPU a 2-core node running dfdaemon
/// feels).
pub fn spawn_writer(
    target: WriteTarget,
    mut tap: Option<Box<dyn BlockTap>>,
    hash: Option<Algorithm>,
) -> (WriterSink, tokio::task::JoinHandle<Result<Written>>) {
    let (tx, mut rx) = mpsc::channel::<Block>(BLOCKS_IN_FLIGHT);
    let handle = tokio::task::spawn_blocking(move || {
        let WriteTarget {
            mut file,
            dir,
            name,
        } = target;
        let mut hasher = hash.map(Algorithm::hasher);
        let mut written = 0u64;
        let mut writing = true;
        let mut writeback = Writeback::default();
        while let Some(block) = rx.blocking_recv() {
            let step = match block {
                Block::Data(data) => {
                    if let Some(hasher) = hasher.as_mut() {
                        hasher.update(&data);
                    }
                    written += data.len() as u64;
                    let mut step = Ok(());
                    if writing {
                        step = file.write_all(&data);
                        if step.is_ok() {
                            step = writeback.wrote(&file, written);
                        }
                    }
                    if let (Ok(()), Some(tap)) = (&step, tap.as_mut()) {
                        tap.block(&data);
                    }
                    step
                }
                Block::Truncate => {
                    if let Some(tap) = tap.as_mut() {
                        tap.restart();
                    }
                    hasher = hash.map(Algorithm::hasher);
                    written = 0;
                    writing = true;
                    writeback = Writeback::default();
                    file.set_len(0).and_then(|()| file.rewind())
                }
                Block::Discard => {
                    writing = false;
                    Ok(())
                }
                Block::Adopt { from, len, crc } => {
                    writing = true;
                    copy_verified(&from, &mut file, len, crc)
                        .and_then(|()| writeback.wrote(&file, len))
                }
            };
            step.map_err(|e| CoreError::write_failed(&dir, &name, e))?;
        }
        let digest = match (hasher, hash) {
            (Some(hasher), Some(algorithm)) => Some(hasher.finalize(algorithm)),
            _ => None,
        };
        Ok((written, digest))
    });
    (WriterSink { blocks: tx }, handle)
}

/// Starts writeback behind a writer (see [`WRITEBACK_BYTES`]).
#[derive(Default)]
pub struct Writeback {
    /// Where the last range handed to writeback ends.
    started: u64,
    /// Where the range before it ends.
    previous: u64,
}

impl Writeback {
    /// `file` now holds `written` bytes from its start.
    pub fn wrote(&mut self, file: &File, written: u64) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        if written < self.started + WRITEBACK_BYTES {
            return Ok(());
        }
        let fd = file.as_raw_fd();
        let range = |from: u64, to: u64, flags| {
            // SAFETY: sync_file_range(2) on a descriptor the writer owns.
            let done = unsafe { libc::sync_file_range(fd, from as i64, (to - from) as i64, flags) };
            if done == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        range(self.started, written, libc::SYNC_FILE_RANGE_WRITE)?;
        if self.previous < self.started {
            // Started one step ago: written out by now; bounds the dirty
            // pages.
            range(
                self.previous,
                self.started,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            )?;
        }
        self.previous = self.started;
        self.started = written;
        Ok(())
    }
}

/// Copies the first `len` bytes of `from` to `to`, which must hold exactly
/// what was streamed (CRC-32C `expected`).
fn copy_verified(from: &Path, to: &mut File, len: u64, expected: u64) -> std::io::Result<()> {
    let mut source = File::open(from)?.take(len);
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    let mut buffer = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = source.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        crc.update(&buffer[..n]);
        to.write_all(&buffer[..n])?;
        copied += n as u64;
    }
    if copied != len || crc.finalize() != expected {
        return Err(std::io::Error::other(
            "the peer's linked file differs from what it streamed",
        ));
    }
    Ok(())
}
