//! Replacing one archive of the store, and its unpacked directory, as one
//! transaction: the previous archive is kept (a hard link under a hidden
//! name) until the new one is registered, and dropping the transaction
//! before [`Replace::finish`] puts the store back as it was: the previous
//! archive back (or none, if there was none), the new directory gone.

use std::fs;
use std::path::{Path, PathBuf};

use super::{LedgerEntry, ModelStore, Staged, TempDir, TempFile};
use crate::error::{CoreError, Result};

pub struct Replace {
    store: ModelStore,
    file_name: String,
    /// The previous archive, kept while the new one registers.
    backup: Option<PathBuf>,
    /// Whether the new archive was renamed into place.
    archive_committed: bool,
    /// An unpacked directory this transaction created.
    new_dir: Option<PathBuf>,
    finished: bool,
}

impl ModelStore {
    /// Starts replacing `file_name` (the caller holds its [`super::FileLock`]).
    pub fn replace(&self, file_name: &str) -> Replace {
        Replace {
            store: self.clone(),
            file_name: file_name.to_string(),
            backup: None,
            archive_committed: false,
            new_dir: None,
            finished: false,
        }
    }
}

impl Replace {
    pub fn store(&self) -> &ModelStore {
        &self.store
    }

    /// Where a download writes: a new temporary file and, when `link`, a
    /// reserved name for the peer to hard-link its finished task to.
    pub fn stage(&self, link: bool) -> Result<Staged> {
        let link = link.then(|| self.store.reserve_temp(&self.file_name));
        let file = self.store.create_temp(&self.file_name)?;
        Ok(Staged { file, link })
    }

    /// A temporary directory to unpack the archive into.
    pub fn temp_dir(&self) -> Result<TempDir> {
        self.store.create_temp_dir(&self.file_name)
    }

    /// Makes `file` the archive; the previous one is kept until `finish`.
    pub async fn commit_archive(&mut self, file: TempFile) -> Result<()> {
        let current = self.store.archive_path(&self.file_name);
        if current.exists() {
            let backup = self.store.backup_path(&self.file_name);
            let _ = fs::remove_file(&backup);
            fs::hard_link(&current, &backup)
                .map_err(|e| self.store.write_error(&self.file_name, e))?;
            self.backup = Some(backup);
        }
        let committed = tokio::task::spawn_blocking(move || file.commit(&current))
            .await
            .map_err(|e| CoreError::Internal(format!("commit task: {e}")))?;
        committed.map_err(|e| self.store.write_error(&self.file_name, e))?;
        self.archive_committed = true;
        Ok(())
    }

    /// Records an unpacked directory this pull committed, to be removed if
    /// the transaction rolls back.
    pub fn adopt_unpacked(&mut self, dir: PathBuf) {
        self.new_dir = Some(dir);
    }

    /// The pull succeeded: the previous archive goes, and with `keep_dir`
    /// every other unpacked version of the archive; the ledger records the
    /// new one.
    pub fn finish(mut self, keep_dir: Option<&Path>, entry: &LedgerEntry) -> Result<()> {
        self.finished = true;
        if let Some(backup) = self.backup.take() {
            let _ = fs::remove_file(backup);
        }
        if let Some(dir) = keep_dir {
            self.store.remove_unpacked(&self.file_name, Some(dir));
        }
        self.store.write_ledger(&self.file_name, entry)
    }

    fn roll_back(&mut self) {
        let target = self.store.archive_path(&self.file_name);
        let restored = match (self.archive_committed, self.backup.take()) {
            (true, Some(backup)) => fs::rename(&backup, &target),
            (true, None) => match fs::remove_file(&target) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            // The previous archive was never replaced: only its link goes.
            (false, Some(backup)) => fs::remove_file(backup),
            (false, None) => Ok(()),
        };
        if let Err(e) = restored {
            tracing::error!(
                "could not restore {} in the model store: {e}",
                self.file_name
            );
        }
        if let Some(dir) = self.new_dir.take() {
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!("could not remove {}: {e}", dir.display());
            }
        }
    }
}

impl Drop for Replace {
    fn drop(&mut self) {
        if !self.finished {
            self.roll_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn entry() -> LedgerEntry {
        LedgerEntry {
            bucket: "b".into(),
            key: "a.mar".into(),
            size: 3,
            etag: Some("e".into()),
            model_name: "a".into(),
            pulled_at_unix: 1,
        }
    }

    async fn commit_new(tx: &mut Replace, content: &[u8]) {
        let mut staged = tx.stage(false).unwrap();
        staged.file.write_all(content).unwrap();
        tx.commit_archive(staged.file).await.unwrap();
    }

    #[tokio::test]
    async fn a_dropped_replace_puts_the_previous_archive_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        fs::write(store.archive_path("a.mar"), b"old").unwrap();
        let mut tx = store.replace("a.mar");
        commit_new(&mut tx, b"new").await;
        let unpacked = store.unpacked_path("a.mar", 3, Some("e"));
        fs::create_dir_all(&unpacked).unwrap();
        tx.adopt_unpacked(unpacked.clone());
        assert_eq!(fs::read(store.archive_path("a.mar")).unwrap(), b"new");
        drop(tx);
        assert_eq!(fs::read(store.archive_path("a.mar")).unwrap(), b"old");
        assert!(!unpacked.exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "a.mar and the ledger dir"
        );

        // With no previous archive, a rollback leaves none.
        let mut tx = store.replace("b.mar");
        commit_new(&mut tx, b"new").await;
        drop(tx);
        assert!(!store.archive_path("b.mar").exists());
    }

    #[tokio::test]
    async fn a_finished_replace_keeps_the_new_archive_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        fs::write(store.archive_path("a.mar"), b"old").unwrap();
        let old_version = store.unpacked_path("a.mar", 3, Some("old"));
        fs::create_dir_all(&old_version).unwrap();
        let mut tx = store.replace("a.mar");
        commit_new(&mut tx, b"new").await;
        let new_version = store.unpacked_path("a.mar", 3, Some("e"));
        fs::create_dir_all(&new_version).unwrap();
        tx.adopt_unpacked(new_version.clone());
        tx.finish(Some(&new_version), &entry()).unwrap();
        assert_eq!(fs::read(store.archive_path("a.mar")).unwrap(), b"new");
        assert!(new_version.exists() && !old_version.exists());
        assert_eq!(store.ledger_entry("a.mar"), Some(entry()));
        let hidden: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".dfprev-"))
            .collect();
        assert!(hidden.is_empty(), "the backup was left behind");
    }
}
