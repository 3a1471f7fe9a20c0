//! The block writer: the network side batches the body into 1 MiB blocks
//! and a blocking thread appends them to the file and computes the MD5, so
//! hashing and disk writes never stall the socket and memory stays bounded
//! (a few MiB per pull, whatever the archive size). A [`BlockTap`] sees
//! every block after it is written (the streaming unpacker is one).

use std::fs::File;
use std::io::{Seek, Write};
use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::digest::Algorithm;
use crate::error::{CoreError, Result};

/// Size of the blocks handed to the writer thread.
pub const BLOCK_SIZE: usize = 1 << 20;
/// Blocks in flight between the socket and the writer.
const BLOCKS_IN_FLIGHT: usize = 8;
/// Written files are flushed to disk every this many bytes. The kernel
/// starts writing back only past its dirty thresholds (GiBs on a big
/// machine), so without this the whole file would be written out by the
/// final fsync, after the last byte arrived; this way most of it is on disk
/// by then and the commit waits for the last few MiB only.
pub const SYNC_EVERY_BYTES: u64 = 64 << 20;

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
    Truncate,
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

    /// Empties the file: the next block is byte 0 again.
    pub async fn truncate(&self) -> Result<()> {
        self.send(Block::Truncate).await
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
        let mut unsynced = 0u64;
        while let Some(block) = rx.blocking_recv() {
            let step = match block {
                Block::Data(data) => {
                    if let Some(hasher) = hasher.as_mut() {
                        hasher.update(&data);
                    }
                    written += data.len() as u64;
                    unsynced += data.len() as u64;
                    let mut step = file.write_all(&data);
                    if step.is_ok() && unsynced >= SYNC_EVERY_BYTES {
                        unsynced = 0;
                        step = file.sync_data();
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
                    unsynced = 0;
                    file.set_len(0).and_then(|()| file.rewind())
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
