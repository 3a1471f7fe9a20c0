//! The file path's inflate of a whole deflated entry in one call
//! (libdeflate). Once the archive is complete on disk nothing needs a
//! streaming inflater's state, and libdeflate inflates a whole buffer
//! markedly faster than zlib-rs streams it (measured in
//! docs/BENCHMARKS.md). The archive and the output file are
//! memory-mapped, so an entry is never copied into the process's own
//! memory: the pages are the page cache's, as with `write`.
//!
//! A write into a mapping of a sparse file on a full disk is a SIGBUS,
//! which would take TorchServe's JVM down. So the output's blocks are
//! allocated first ([`allocate`]); a filesystem that cannot allocate
//! ahead gets the streaming copy instead.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use libdeflater::{DecompressionError, Decompressor};
use memmap2::{Mmap, MmapOptions};

use super::UnpackError;

/// The finished archive, mapped to read whole entries from; None when it
/// cannot be (the caller streams). Its pages are faulted in up front
/// (`MAP_POPULATE`: one pass in the kernel instead of a fault per page).
///
/// # Safety
/// Nothing may truncate the file while the mapping lives (a read past
/// the new end would fault): the caller holds the model's lock on it.
pub(super) unsafe fn map_archive(file: &File) -> Option<Mmap> {
    // SAFETY: as the caller promises.
    unsafe { MmapOptions::new().populate().map(file) }.ok()
}

/// Allocates `len` bytes of disk for `file` and sets its size to `len`;
/// false when the filesystem cannot allocate ahead (the caller streams).
/// A full disk is the error it should be (507), before a byte is inflated.
pub(super) fn allocate(file: &File, len: u64) -> Result<bool, UnpackError> {
    let Ok(signed) = i64::try_from(len) else {
        return Ok(false);
    };
    if signed == 0 {
        return Ok(true);
    }
    // SAFETY: fallocate(2) on a descriptor `file` keeps open for the call;
    // mode 0 allocates the range and extends the size to cover it.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, signed) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => Ok(false),
        _ => Err(UnpackError::Io(err)),
    }
}

/// Inflates `compressed`, an entry's whole deflate stream, into `out`
/// (already [`allocate`]d to `size` bytes): it must inflate to exactly
/// `size` bytes whose CRC-32 is `crc32`, else the archive is invalid.
pub(super) fn inflate_into(
    compressed: &[u8],
    out: &File,
    size: u64,
    crc32: u32,
    name: &str,
) -> Result<(), UnpackError> {
    let too_large =
        || UnpackError::Invalid(format!("entry {name:?}: {size} bytes cannot be mapped"));
    let expected = usize::try_from(size).map_err(|_| too_large())?;
    let mut mapped = match size {
        0 => None,
        // SAFETY: `out` is a file this unpack created in its own staged
        // directory and allocated in full; nothing else writes or
        // truncates it while the mapping lives (this function). Populated
        // up front: faulting 1 GiB page by page cost ~10% of the inflate.
        _ => Some(unsafe { MmapOptions::new().populate().map_mut(out) }?),
    };
    let buffer: &mut [u8] = match mapped.as_mut() {
        Some(map) => &mut map[..],
        None => &mut [],
    };
    if buffer.len() != expected {
        return Err(too_large());
    }
    let written = Decompressor::new()
        .deflate_decompress(compressed, buffer)
        .map_err(|e| {
            UnpackError::Invalid(match e {
                DecompressionError::InsufficientSpace => {
                    format!("entry {name:?} inflates past the {size} bytes it declared")
                }
                DecompressionError::BadData => format!("entry {name:?}: invalid deflate data"),
            })
        })?;
    if written != expected {
        return Err(UnpackError::Invalid(format!(
            "entry {name:?}: {written} bytes, the archive says {size}"
        )));
    }
    let actual = libdeflater::crc32(buffer);
    if actual != crc32 {
        return Err(UnpackError::Invalid(format!(
            "entry {name:?}: CRC-32 {actual:08x}, the archive says {crc32:08x}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflated(data: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// Inflates `stream` into a fresh file declared as `size` bytes with
    /// `crc32`; the file's bytes, or the error.
    fn inflate(stream: &[u8], size: u64, crc32: u32) -> Result<Vec<u8>, UnpackError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        assert!(allocate(&file, size).unwrap(), "this filesystem allocates");
        inflate_into(stream, &file, size, crc32, "entry")?;
        Ok(std::fs::read(&path).unwrap())
    }

    #[test]
    fn a_whole_entry_inflates_to_its_declared_bytes() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let crc = libdeflater::crc32(&data);
        assert_eq!(
            inflate(&deflated(&data), data.len() as u64, crc).unwrap(),
            data
        );
        assert_eq!(inflate(&deflated(b""), 0, 0).unwrap(), b"");
    }

    #[test]
    fn an_entry_that_lies_about_its_size_or_crc_is_invalid() {
        let data = vec![7u8; 100_000];
        let stream = deflated(&data);
        let crc = libdeflater::crc32(&data);
        let invalid = |r: Result<Vec<u8>, UnpackError>| match r {
            Err(UnpackError::Invalid(message)) => message,
            other => panic!("expected Invalid, got {other:?}"),
        };
        // A bomb: more than declared is refused, not written past the end.
        assert!(invalid(inflate(&stream, 1_000, crc))
            .contains("inflates past the 1000 bytes it declared"));
        assert!(invalid(inflate(&stream, 200_000, crc)).contains("100000 bytes"));
        assert!(invalid(inflate(&stream, 100_000, crc ^ 1)).contains("CRC-32"));
        assert!(invalid(inflate(&stream[..stream.len() / 2], 100_000, crc)).contains("deflate"));
        assert!(invalid(inflate(b"\xff\xff\xff", 10, 0)).contains("deflate"));
    }
}
