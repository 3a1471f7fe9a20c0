//! Tests of every form through the common interface ([`super::Form`],
//! [`super::stream_unpacker`], [`super::unpack_file`]): good archives
//! streamed and from the file, hostile ones refused with nothing left
//! behind. Fixtures are built here (tar headers written by hand) or by
//! Python's `zipfile`/`tarfile`, as `torch-model-archiver` builds them.

mod bounds;
mod inflate_speed;
mod stored_speed;
mod tar_good;
mod tar_hostile;
mod zip_forms;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;

use super::{stream_unpacker, unpack_file, Form, Limits, UnpackError, UnpackStats, UnpackedFrom};
use crate::model_store::{ModelStore, TempDir};
use crate::transfer::writer::BlockTap;

/// A model store in a fresh temp dir, with `file_name` written into it.
struct Bed {
    work: tempfile::TempDir,
    store: ModelStore,
    archive: PathBuf,
    limits: Limits,
}

impl Bed {
    fn new(file_name: &str, bytes: &[u8]) -> Bed {
        Self::new_in(tempfile::tempdir().unwrap(), file_name, bytes)
    }

    /// In memory where there is a tmpfs: creating tens of thousands of
    /// files on a loaded disk takes minutes.
    fn in_memory(file_name: &str, bytes: &[u8]) -> Bed {
        let shm = Path::new("/dev/shm");
        let work = match shm.is_dir() {
            true => tempfile::tempdir_in(shm).unwrap(),
            false => tempfile::tempdir().unwrap(),
        };
        Self::new_in(work, file_name, bytes)
    }

    fn new_in(work: tempfile::TempDir, file_name: &str, bytes: &[u8]) -> Bed {
        let store_dir = work.path().join("store");
        fs::create_dir(&store_dir).unwrap();
        let store = ModelStore::open(&store_dir).unwrap();
        let archive = store_dir.join(file_name);
        fs::write(&archive, bytes).unwrap();
        Bed {
            work,
            store,
            archive,
            limits: Limits::NONE,
        }
    }

    /// The same bed, unpacking under `limits`.
    fn with_limits(mut self, limits: Limits) -> Bed {
        self.limits = limits;
        self
    }

    fn form(&self) -> Form {
        Form::of(&self.archive.file_name().unwrap().to_string_lossy()).unwrap()
    }

    fn dir(&self) -> TempDir {
        let name = self.archive.file_name().unwrap().to_string_lossy();
        self.store.create_temp_dir(&name).unwrap()
    }

    /// Streams the whole archive in blocks of `block` bytes.
    fn stream(&self, block: usize) -> Result<(TempDir, UnpackStats, UnpackedFrom), UnpackError> {
        let bytes = fs::read(&self.archive).unwrap();
        let (unpacker, mut feed) = stream_unpacker(self.form(), self.dir(), self.limits).unwrap();
        for chunk in bytes.chunks(block) {
            feed.block(&Bytes::copy_from_slice(chunk));
        }
        drop(feed);
        unpacker.finish(&self.archive)
    }

    /// Nothing streamed (a hard-linked archive): the file is unpacked.
    fn unpack_file(&self) -> Result<(TempDir, UnpackStats), UnpackError> {
        let dir = self.dir();
        unpack_file(self.form(), &self.archive, &dir, self.limits).map(|stats| (dir, stats))
    }

    /// The store holds the archive and nothing else, and nothing appeared
    /// beside it.
    fn assert_nothing_left(&self) {
        let names = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let file = self.archive.file_name().unwrap().to_string_lossy();
        assert_eq!(names(self.store.dir()), vec![file.into_owned()]);
        assert_eq!(names(self.work.path()), vec!["store".to_string()]);
    }
}

/// Both paths refuse the archive, and leave nothing behind.
fn assert_refused(bed: &Bed, needle: &str) {
    for (path, err) in [
        ("stream", bed.stream(1000).err()),
        ("file", bed.unpack_file().err()),
    ] {
        match err {
            Some(UnpackError::Invalid(message)) => {
                assert!(
                    message.contains(needle),
                    "{path}: {message:?}, wanted {needle:?}"
                )
            }
            other => panic!("{path}: {other:?}, wanted Invalid with {needle:?}"),
        }
        bed.assert_nothing_left();
    }
}

/// Every regular file under `dir` (relative path, content); no symbolic
/// link, device or FIFO may be there.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let path = entry.path();
            if kind.is_dir() {
                walk(root, &path, out);
            } else {
                assert!(kind.is_file(), "{} is not a regular file", path.display());
                let relative = path.strip_prefix(root).unwrap();
                out.push((
                    relative.to_string_lossy().into_owned(),
                    fs::read(&path).unwrap(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs a Python script with `python3`; its arguments follow.
fn python(script: &str, args: &[&Path]) {
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "python3 failed");
}

/// Bytes that do not compress, of a given length.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A tar written header by header, so names and kinds no well-behaved
/// writer would produce can be tested.
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn entry(mut self, name: &str, kind: ::tar::EntryType, link: &str, data: &[u8]) -> Self {
        let mut header = ::tar::Header::new_ustar();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        let padding = (512 - data.len() % 512) % 512;
        self.0.resize(self.0.len() + padding, 0);
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, ::tar::EntryType::Regular, "", data)
    }

    /// The tar with its end-of-archive marker, gzipped.
    fn tgz(mut self) -> Vec<u8> {
        self.0.resize(self.0.len() + 1024, 0);
        gzip(&self.0)
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}
