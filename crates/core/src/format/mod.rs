//! The forms a model arrives in, and how each becomes a directory that
//! TorchServe registers as it is: [`Form::of`] tells the form by the file
//! name, [`stream_unpacker`] unpacks it while it downloads,
//! [`unpack_file`] from the finished file. Each form is one file:
//! `zip.rs` (`.mar`: deflated or stored entries, zip64) and `tar.rs`
//! (`.tar.gz`, `.tgz`; names placed by `tar_names.rs`); `stream.rs` is the
//! streaming plumbing they share, `output.rs` how they write files,
//! `inflate.rs` the finished file's one-call inflate of a deflated entry.
//! Model directories need no unpacking: `pull/directory.rs` fetches them.
//!
//! May import: `error`, `model_store` (staging), `transfer::writer` (the
//! block tap a streaming unpacker implements).

mod inflate;
mod output;
mod stream;
mod tar;
mod tar_names;
mod zip;

#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::path::Path;

use serde::Serialize;

use stream::Stream;
pub use stream::StreamFeed;

use crate::model_store::TempDir;

/// What one archive may unpack to (the config's `unpack` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of all files.
    pub max_bytes: u64,
    /// Entries (files, directories, links).
    pub max_entries: u64,
}

impl Limits {
    /// No bound but the disk's free space (tests, tools).
    pub const NONE: Limits = Limits {
        max_bytes: u64::MAX,
        max_entries: u64::MAX,
    };
}

/// The archive forms this plugin unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A `.mar`: zip, deflated or stored (`zip-store`), zip64 or not.
    Zip,
    /// `torch-model-archiver --archive-format tgz`: gzip, then tar.
    TarGz,
}

impl Form {
    /// The file name endings of each form: what `model=` accepts and
    /// `model=all` lists (TorchServe loads every other file as a tar.gz,
    /// but only these are model archives by name). The default model name
    /// is the file name without it (`model_store::default_model_name`).
    pub const ENDINGS: [(&'static str, Form); 3] = [
        (".mar", Form::Zip),
        (".tar.gz", Form::TarGz),
        (".tgz", Form::TarGz),
    ];

    /// The form of an archive by its file name.
    pub fn of(file_name: &str) -> Option<Form> {
        Self::ENDINGS
            .iter()
            .find(|(ending, _)| file_name.ends_with(ending))
            .map(|(_, form)| *form)
    }
}

impl std::fmt::Display for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Form::Zip => "zip",
            Form::TarGz => "tar.gz",
        })
    }
}

/// The unpacking side of a streaming unpack, whatever the form.
pub struct StreamUnpacker(Unpacking);

enum Unpacking {
    Zip(Stream<zip::StreamResult>, Limits),
    TarGz(Stream<tar::StreamResult>, Limits),
}

/// Starts unpacking an archive of `form` into `dir` as it streams in:
/// hand the feed to the download's writer as its tap, then call
/// [`StreamUnpacker::finish`] once the file is complete and verified.
pub fn stream_unpacker(
    form: Form,
    dir: TempDir,
    limits: Limits,
) -> io::Result<(StreamUnpacker, StreamFeed)> {
    let (unpacking, feed) = match form {
        Form::Zip => {
            let (stream, feed) = stream::spawn(dir, move |r, d| zip::unpack_stream(r, d, limits))?;
            (Unpacking::Zip(stream, limits), feed)
        }
        Form::TarGz => {
            let (stream, feed) = stream::spawn(dir, move |r, d| tar::unpack_stream(r, d, limits))?;
            (Unpacking::TarGz(stream, limits), feed)
        }
    };
    Ok((StreamUnpacker(unpacking), feed))
}

impl StreamUnpacker {
    /// The unpacked directory, synced and ready to commit: from the
    /// stream, or from `archive` (the finished file) where the stream
    /// could not be used.
    pub fn finish(
        self,
        archive: &Path,
    ) -> Result<(TempDir, UnpackStats, UnpackedFrom), UnpackError> {
        let (dir, stats, from) = match self.0 {
            Unpacking::Zip(stream, limits) => zip::finish(stream, archive, limits)?,
            Unpacking::TarGz(stream, limits) => tar::finish(stream, archive, limits)?,
        };
        output::sync_filesystem(dir.path())?;
        Ok((dir, stats, from))
    }
}

/// Unpacks the finished archive at `archive`, of `form`, into `dir` and
/// syncs it, ready to commit.
pub fn unpack_file(
    form: Form,
    archive: &Path,
    dir: &TempDir,
    limits: Limits,
) -> Result<UnpackStats, UnpackError> {
    let stats = match form {
        Form::Zip => zip::unpack_file(archive, dir, limits)?,
        Form::TarGz => tar::unpack_file(archive, dir, limits)?,
    };
    output::sync_filesystem(dir.path())?;
    Ok(stats)
}

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
    #[error("not a {0} archive")]
    WrongForm(Form),
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
