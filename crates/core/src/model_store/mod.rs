//! TorchServe's model store as this plugin writes it: safe names
//! ([`names`]), hidden staging that only becomes visible whole
//! ([`staging`]), the replace transaction that keeps the previous version
//! until the new one is registered ([`transaction`]) and its journal for
//! crash repair ([`journal`]), the per-file lock shared by every process
//! using the store ([`lock`]) and the ledger of what was pulled
//! ([`ledger`]).
//!
//! Layout: `<store>/<file>.mar` (what TorchServe sees), hidden
//! `.<file>.dfpart-*` / `.dfprev-*` / `.dfrecord-*` while a pull runs, and
//! `.dragonfly-endpoint/` with the ledger, `locks/`, `journal/` and
//! `unpacked/<file>-<version>/`.
//!
//! May import: `error`.

pub mod background;
mod journal;
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

    /// Repairs `file_name` after a process died working on it (a crash
    /// skips every destructor): an interrupted transaction is undone, or
    /// completed when TorchServe had registered the model, and the file's
    /// leftover hidden files go. The caller holds the file's lock, so none
    /// of them belongs to a live pull.
    pub fn recover(&self, file_name: &str) -> Result<()> {
        if let Some(journal) = self.read_journal(file_name) {
            match &journal.registered {
                Some(entry) => {
                    tracing::warn!("{file_name}: completing a pull that a crash interrupted after registration");
                    self.complete(file_name, &journal, journal.unpacked_dir.as_deref(), entry)?;
                }
                None => {
                    tracing::warn!("{file_name}: undoing a pull that a crash interrupted");
                    self.undo(file_name, &journal);
                }
            }
        }
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if staging::owner_of(&name.to_string_lossy()) == Some(file_name) {
                let _ = remove_any(&entry.path());
            }
        }
        Ok(())
    }

    /// Repairs every file that a dead process left work on: those with
    /// leftovers or a journal whose lock is free now. A file being pulled
    /// by a live process (this one or another) is left alone.
    pub fn sweep(&self) {
        let mut owners: Vec<String> = self.journaled();
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if let Some(owner) = staging::owner_of(&entry.file_name().to_string_lossy()) {
                    owners.push(owner.to_string());
                }
            }
        }
        owners.sort();
        owners.dedup();
        for owner in owners {
            if validate_file_name(&owner).is_err() {
                continue;
            }
            match self.try_lock(&owner) {
                Ok(Some(_lock)) => {
                    if let Err(e) = self.recover(&owner) {
                        tracing::warn!("repairing {owner} in the model store: {e}");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("locking {owner} to repair it: {e}"),
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
                self.discard_dir(file_name, &path);
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

    #[tokio::test]
    async fn leftovers_go_only_when_their_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        // A crashed pull's temp file, of whatever pid: its lock is free.
        let stale = dir.path().join(".a.mar.dfpart-00ff00ff00ff00ff-0");
        fs::write(&stale, b"x").unwrap();
        let stale_dir = dir.path().join(".a.mar.dfpart-00ff00ff00ff00ff-1");
        fs::create_dir_all(stale_dir.join("MAR-INF")).unwrap();
        // A live pull of b.mar (its lock held): its temp file stays.
        let live = store.create_temp("b.mar").unwrap();
        let held = store
            .lock("b.mar", std::time::Duration::from_secs(1))
            .await
            .unwrap();
        fs::write(dir.path().join("keep.mar"), b"x").unwrap();
        store.sweep();
        assert!(!stale.exists() && !stale_dir.exists());
        assert!(live.path().exists(), "a live pull's temp file was removed");
        assert!(dir.path().join("keep.mar").exists());
        drop(held);
    }

    #[tokio::test]
    async fn a_crash_before_registration_is_undone_after_it_completed() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        fs::write(store.archive_path("a.mar"), b"old").unwrap();
        let entry = LedgerEntry {
            bucket: "b".into(),
            key: "a.mar".into(),
            size: 3,
            etag: Some("v2".into()),
            model_names: vec!["a".into()],
            pulled_at_unix: 1,
        };
        for registered in [false, true] {
            let mut tx = store.replace("a.mar");
            let mut staged = tx.stage(false).unwrap();
            staged.file.write_all(b"new").unwrap();
            tx.commit_archive(staged.file).await.unwrap();
            if registered {
                tx.registered(&entry).unwrap();
            }
            // The process dies: no destructor runs.
            std::mem::forget(tx);
            store.sweep();
            let archive = fs::read(store.archive_path("a.mar")).unwrap();
            if registered {
                assert_eq!(archive, b"new");
                assert_eq!(store.ledger_entry("a.mar"), Some(entry.clone()));
            } else {
                assert_eq!(archive, b"old");
                assert!(store.ledger_entry("a.mar").is_none());
            }
            assert!(store.read_journal("a.mar").is_none());
            let hidden = fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".a.mar"))
                .count();
            assert_eq!(hidden, 0, "leftovers after the repair");
        }
    }
}
