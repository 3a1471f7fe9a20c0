//! The plumbing every streaming unpacker shares: the download's writer
//! hands each stored block to a [`StreamFeed`] (its [`BlockTap`]), a
//! bounded channel carries it to a thread of its own, which reads the
//! blocks in order through a [`ChannelReader`] and unpacks them into the
//! staged directory. The form decides what to make of the thread's result
//! once the download is complete ([`Stream::join`]).

use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::{Buf, Bytes};

use super::UnpackError;
use crate::model_store::background::spawn_cleanup;
use crate::model_store::TempDir;
use crate::transfer::writer::BlockTap;

/// 1 MiB blocks queued for the unpacking thread before the writer waits.
const BLOCKS_QUEUED: usize = 8;

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
                // The thread stopped (it panicked); join() decides.
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

/// What the unpacking thread was given and made of it.
pub(super) struct Joined<T> {
    pub dir: TempDir,
    /// `None` when the thread panicked.
    pub result: Option<T>,
    /// Bytes the thread read: all the feed was given, unless restarted.
    pub bytes: u64,
    /// The transfer started over: the bytes streamed are not the file's.
    pub restarted: bool,
}

/// The unpacking side: the thread and the directory it writes into.
pub(super) struct Stream<T: Send + 'static> {
    dir: Option<TempDir>,
    thread: Option<JoinHandle<(T, u64)>>,
    restarted: Arc<AtomicBool>,
}

/// Runs `unpack` on a thread of its own over the blocks the returned feed
/// is given, writing into `dir`. After `unpack` returns, the rest of the
/// stream is read and counted, so the writer never waits on a thread
/// that is done and [`Joined::bytes`] says whether it saw the whole file.
pub(super) fn spawn<T, F>(dir: TempDir, unpack: F) -> io::Result<(Stream<T>, StreamFeed)>
where
    T: Send + 'static,
    F: FnOnce(&mut ChannelReader, &Path) -> T + Send + 'static,
{
    let (tx, rx) = sync_channel(BLOCKS_QUEUED);
    let target = dir.path().to_path_buf();
    let thread = std::thread::Builder::new()
        .name("dfe-unpack".into())
        .spawn(move || {
            let mut reader = ChannelReader {
                blocks: rx,
                current: Bytes::new(),
                bytes: 0,
            };
            let result = unpack(&mut reader, &target);
            reader.drain();
            (result, reader.bytes)
        })?;
    let restarted = Arc::new(AtomicBool::new(false));
    Ok((
        Stream {
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

impl<T: Send + 'static> Stream<T> {
    /// Waits for the thread; the feed must be dropped by then.
    pub fn join(mut self) -> Result<Joined<T>, UnpackError> {
        let (result, bytes) = match self.thread.take().map(JoinHandle::join) {
            Some(Ok((result, bytes))) => (Some(result), bytes),
            _ => (None, 0),
        };
        let dir = self
            .dir
            .take()
            .ok_or_else(|| UnpackError::Invalid("no unpacking directory".into()))?;
        Ok(Joined {
            dir,
            result,
            bytes,
            restarted: self.restarted.load(Ordering::Relaxed),
        })
    }
}

impl<T: Send + 'static> Drop for Stream<T> {
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

/// Reads the blocks the writer sends, in order; the end of the channel is
/// the end of the stream. As a [`BufRead`] it lends the blocks themselves,
/// so a decoder reads them without another copy.
pub(super) struct ChannelReader {
    blocks: Receiver<Bytes>,
    current: Bytes,
    bytes: u64,
}

impl ChannelReader {
    /// Reads and drops the rest of the stream.
    fn drain(&mut self) {
        while let Ok(n) = self.fill_buf().map(<[u8]>::len) {
            if n == 0 {
                break;
            }
            self.consume(n);
        }
    }
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.blocks.recv() {
                Ok(block) => {
                    self.bytes += block.len() as u64;
                    self.current = block;
                }
                Err(_) => break,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, n: usize) {
        self.current.advance(n.min(self.current.len()));
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}
