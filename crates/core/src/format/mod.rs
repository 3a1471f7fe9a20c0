//! The forms a model arrives in, and how each becomes a directory that
//! TorchServe registers as it is: the `.mar` zip today ([`zip`]); tar
//! archives and directory models are further files here.
//!
//! May import: `error`, `model_store` (staging), `transfer::writer` (the
//! block tap a streaming unpacker implements).

pub mod zip;

use std::fs;
use std::io;
use std::path::Path;

use serde::Serialize;

/// Where an unpacked directory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnpackedFrom {
    /// Unpacked while the archive downloaded.
    Stream,
    /// Unpacked from the finished archive file.
    File,
    /// Already unpacked by an earlier pull of the same archive version.
    Cache,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub files: usize,
    /// Uncompressed bytes written.
    pub bytes: u64,
}

/// Why an archive could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Not an archive of this form: TorchServe gets the file and decides.
    #[error("not a zip archive")]
    NotZip,
    /// An archive that must not be used: bad CRC, unsafe name, truncated.
    #[error("{0}")]
    Invalid(String),
    /// Writing the directory failed (a full disk, permissions).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Files under `dir` and their bytes, counted (for a cached directory).
pub fn count_files(dir: &Path) -> UnpackStats {
    let mut stats = UnpackStats::default();
    let Ok(entries) = fs::read_dir(dir) else {
        return stats;
    };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                let inner = count_files(&entry.path());
                stats.files += inner.files;
                stats.bytes += inner.bytes;
            }
            Ok(_) => {
                stats.files += 1;
                stats.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
            Err(_) => {}
        }
    }
    stats
}

fn empty_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(path)?;
        } else {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}
