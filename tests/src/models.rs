//! Model archives: [`make_mar`] builds a real TorchScript `.mar` with
//! tests/support/make_mar.py, [`make_model`] the same model in any form
//! `torch-model-archiver --archive-format` writes (tgz, zip-store, a
//! no-archive directory, weights split over several files), [`cached_mar`]
//! keeps big ones between runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cache_dir, python, repo_root};

/// A model archive (or model directory) built by tests/support/make_mar.py.
#[derive(Debug, Clone)]
pub struct Mar {
    /// `NAME.mar`, `NAME.tar.gz`, or the directory `NAME/`.
    pub path: PathBuf,
    /// Its size; for a directory, of every file under it.
    pub bytes: u64,
    /// The model's answer for x = 1.
    pub expected: f64,
}

/// The forms `torch-model-archiver --archive-format` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `NAME.mar`, deflated entries.
    Default,
    /// `NAME.tar.gz`: every file under the folder `NAME/`.
    Tgz,
    /// `NAME.mar`, stored (not deflated) entries.
    ZipStore,
    /// The directory `NAME/`, `MAR-INF/MANIFEST.json` at its root.
    NoArchive,
}

impl ArchiveFormat {
    fn arg(self) -> &'static str {
        match self {
            ArchiveFormat::Default => "default",
            ArchiveFormat::Tgz => "tgz",
            ArchiveFormat::ZipStore => "zip-store",
            ArchiveFormat::NoArchive => "no-archive",
        }
    }
}

pub fn make_mar(name: &str, size_mb: f64, out_dir: &Path, seed: u32) -> Mar {
    make_model(name, size_mb, out_dir, seed, ArchiveFormat::Default, 1)
}

/// The test model in `format`, its weights split over `shards` files
/// (`weights/shard-K-of-N.pt` beside the module when `shards` > 1).
pub fn make_model(
    name: &str,
    size_mb: f64,
    out_dir: &Path,
    seed: u32,
    format: ArchiveFormat,
    shards: u32,
) -> Mar {
    let output = Command::new(python())
        .arg(repo_root().join("tests/support/make_mar.py"))
        .args([name, &size_mb.to_string()])
        .arg(out_dir)
        .args(["--seed", &seed.to_string()])
        .args(["--archive-format", format.arg()])
        .args(["--shards", &shards.to_string()])
        .output()
        .expect("run make_mar.py");
    assert!(
        output.status.success(),
        "make_mar.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let info: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("make_mar.py prints JSON");
    Mar {
        path: PathBuf::from(info["file"].as_str().expect("file")),
        bytes: info["bytes"].as_u64().expect("bytes"),
        expected: info["expected_y_for_x_1"].as_f64().expect("expected"),
    }
}

/// Like [`make_mar`], kept in the cache between runs: big archives take a
/// while to build and are the same every time for a given name, size and
/// seed.
pub fn cached_mar(name: &str, size_mb: f64, seed: u32) -> Mar {
    cached_model(name, size_mb, seed, ArchiveFormat::Default, 1)
}

/// Like [`make_model`], kept in the cache between runs (see [`cached_mar`]).
pub fn cached_model(
    name: &str,
    size_mb: f64,
    seed: u32,
    format: ArchiveFormat,
    shards: u32,
) -> Mar {
    let form = match (format, shards) {
        (ArchiveFormat::Default, 1) => String::new(),
        _ => format!("-{}-{shards}", format.arg()),
    };
    let dir = cache_dir()
        .join("fixtures")
        .join(format!("{name}-{size_mb}mb-seed{seed}{form}"));
    let meta = dir.join("mar.json");
    if let Ok(text) = std::fs::read(&meta) {
        if let Ok(info) = serde_json::from_slice::<serde_json::Value>(&text) {
            let path = PathBuf::from(info["file"].as_str().unwrap_or(""));
            let bytes = info["bytes"].as_u64().unwrap_or(0);
            if let (true, Some(expected)) = (
                bytes > 0 && disk_bytes(&path) == bytes,
                info["expected"].as_f64(),
            ) {
                return Mar {
                    path,
                    bytes,
                    expected,
                };
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mar = make_model(name, size_mb, &dir, seed, format, shards);
    let info = serde_json::json!({"file": mar.path, "bytes": mar.bytes, "expected": mar.expected});
    std::fs::write(&meta, info.to_string()).expect("write mar.json");
    mar
}

/// The bytes of a file, or of every file under a directory.
fn disk_bytes(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => crate::walk(path)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum(),
        Ok(meta) => meta.len(),
        Err(_) => 0,
    }
}
