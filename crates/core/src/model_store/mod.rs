//! TorchServe's model store as this plugin writes it: safe names
//! ([`names`]), hidden staging that only becomes visible whole
//! ([`staging`]), the replace transaction that keeps the previous version
//! until the new one is registered ([`transaction`]), the per-file lock
//! ([`lock`]) and the ledger of what was pulled ([`ledger`]).
//!
//! Layout: `<store>/<file>.mar` (what TorchServe sees), hidden
//! `.<file>.dfpart-*` / `.<file>.dfprev-*` while a pull runs, and
//! `.dragonfly-endpoint/` with the ledger and `unpacked/<file>-<version>/`.
//!
//! May import: `error`.

mod ledger;
mod lock;
mod names;
mod staging;
mod transaction;

use std::fs;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::error::{CoreError, Result};

pub use ledger::{unix_now, LedgerEntry};
pub use lock::FileLock;
pub use names::{default_model_name, file_name_for_key, validate_file_name};
pub use staging::{Staged, TempDir, TempFile};
pub use transaction::Replace;

const LEDGER_DIR: &str = ".dragonfly-endpoint";
/// Unpacked archives, one directory per archive version (inside the hidden
/// ledger directory, so TorchServe's `--models all` never sees them).
const UNPACKED_DIR: &str = "unpacked";

#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
}

impl ModelStore {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let meta = fs::metadata(&dir)
            .map_err(|e| CoreError::io(format!("model store {}", dir.display()), e))?;
        if !meta.is_dir() {
            return Err(CoreError::Internal(format!(
                "model store {} is not a directory",
                dir.display()
            )));
        }
        Ok(ModelStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn archive_path(&self, file_name: &str) -> PathBuf {
        self.dir.join(file_name)
    }

    /// Maps a write failure to 507 when the disk is full.
    pub fn write_error(&self, file_name: &str, err: std::io::Error) -> CoreError {
        CoreError::write_failed(&self.dir, file_name, err)
    }

    /// Temporary files and unpacking directories left by a process that
    /// died mid-pull (a crash of the JVM skips every destructor). Those of
    /// live processes, this one or a CLI sharing the store, are left alone.
    pub fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Some((_, suffix)) = name
                .split_once(staging::TEMP_MARKER)
                .or_else(|| name.split_once(staging::BACKUP_MARKER))
            else {
                continue;
            };
            let writer_alive = suffix
                .split('-')
                .next()
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if name.starts_with('.') && !writer_alive {
                let _ = remove_any(&entry.path());
            }
        }
    }

    /// Where unpacked archives live.
    pub fn unpacked_root(&self) -> PathBuf {
        self.dir.join(LEDGER_DIR).join(UNPACKED_DIR)
    }

    /// The directory an archive version is unpacked into: one per file name,
    /// ETag and size, so an unchanged archive is never unpacked twice and a
    /// new version never overwrites the one a model may still run from.
    /// Its name never ends in `.mar`, so it cannot shadow an archive of the
    /// store when TorchServe resolves the registration URL.
    pub fn unpacked_path(&self, file_name: &str, size: u64, etag: Option<&str>) -> PathBuf {
        let mut hasher = Md5::new();
        hasher.update(etag.unwrap_or("").as_bytes());
        hasher.update(size.to_le_bytes());
        let digest: String = hasher.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.unpacked_root().join(format!("{file_name}-{digest}"))
    }

    /// Unpacked versions of `file_name` other than `keep`.
    pub fn remove_unpacked(&self, file_name: &str, keep: Option<&Path>) {
        let Ok(entries) = fs::read_dir(self.unpacked_root()) else {
            return;
        };
        let prefix = format!("{file_name}-");
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let is_version = name
                .to_string_lossy()
                .strip_prefix(&prefix)
                .is_some_and(|hash| {
                    !hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit())
                });
            if is_version && keep != Some(path.as_path()) {
                if let Err(e) = fs::remove_dir_all(&path) {
                    tracing::warn!("could not remove {}: {e}", path.display());
                }
            }
        }
    }

    /// Removes an archive, its unpacked versions and its ledger entry.
    pub fn remove_archive(&self, file_name: &str) -> Result<()> {
        validate_file_name(file_name)?;
        match fs::remove_file(self.archive_path(file_name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CoreError::io(format!("removing {file_name}"), e)),
        }
        self.remove_unpacked(file_name, None);
        self.remove_ledger(file_name);
        Ok(())
    }
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temps_of_other_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        let stale = dir.path().join(".a.mar.dfpart-999999999-0");
        fs::write(&stale, b"x").unwrap();
        // A backup kept by a JVM that crashed before registration ended.
        let stale_backup = dir.path().join(".a.mar.dfprev-999999999");
        fs::write(&stale_backup, b"x").unwrap();
        let own_backup = store.backup_path("b.mar");
        fs::write(&own_backup, b"x").unwrap();
        fs::write(dir.path().join("keep.mar"), b"x").unwrap();
        // An unpacking directory of a crashed process.
        let stale_dir = dir.path().join(".a.mar.dfpart-999999999-1");
        fs::create_dir_all(stale_dir.join("MAR-INF")).unwrap();
        fs::write(stale_dir.join("MAR-INF/MANIFEST.json"), b"{}").unwrap();
        store.remove_stale_temps();
        assert!(!stale_dir.exists());
        assert!(!stale.exists());
        assert!(!stale_backup.exists());
        assert!(own_backup.exists(), "a live process's backup was removed");
        assert!(dir.path().join("keep.mar").exists());
    }
}
