//! Replacing one archive of the store, and its unpacked directory, as one
//! transaction: the previous archive is kept (a hard link under a hidden
//! name) until the new one is registered, and dropping the transaction
//! before [`Replace::finish`] puts the store back as it was: the previous
//! archive back (or none, if there was none), the new directory gone.
//!
//! Each step that changes the store is written to the journal first, so a
//! process that dies mid-way (no destructor runs) leaves enough for
//! [`ModelStore::recover`] to do what the drop would have done, or to
//! complete the pull once TorchServe had registered it. The caller holds
//! the file's lock for the whole transaction.

use std::fs;
use std::path::{Path, PathBuf};

use super::journal::Journal;
use super::{LedgerEntry, ModelStore, Staged, TempDir, TempFile};
use crate::error::{CoreError, Result};

pub struct Replace {
    store: ModelStore,
    file_name: String,
    journal: Journal,
    /// Whether the journal is on disk (something was changed).
    journaled: bool,
    finished: bool,
}

impl ModelStore {
    /// Starts replacing `file_name` (the caller holds its [`super::FileLock`]).
    pub fn replace(&self, file_name: &str) -> Replace {
        Replace {
            store: self.clone(),
            file_name: file_name.to_string(),
            journal: Journal::default(),
            journaled: false,
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

    fn record(&mut self) -> Result<()> {
        self.store.write_journal(&self.file_name, &self.journal)?;
        self.journaled = true;
        Ok(())
    }

    /// Makes `file` the archive; the previous one is kept until `finish`.
    pub async fn commit_archive(&mut self, file: TempFile) -> Result<()> {
        let current = self.store.archive_path(&self.file_name);
        if current.exists() {
            let backup = self.store.backup_path(&self.file_name);
            fs::hard_link(&current, &backup)
                .map_err(|e| self.store.write_error(&self.file_name, e))?;
            self.journal.had_previous = true;
            self.journal.backup = backup.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        self.journal.archive_replaced = true;
        self.record()?;
        let committed = tokio::task::spawn_blocking(move || file.commit(&current))
            .await
            .map_err(|e| CoreError::Internal(format!("commit task: {e}")))?;
        committed.map_err(|e| self.store.write_error(&self.file_name, e))
    }

    /// Announces the unpacked directory about to be committed at `target`:
    /// from here on a rollback (or a crash repair) removes it.
    pub fn will_commit_unpacked(&mut self, target: &Path) -> Result<()> {
        self.journal.unpacked_dir = Some(target.to_path_buf());
        self.record()
    }

    /// TorchServe registered the model: a crash from here on completes the
    /// pull with `entry` instead of undoing it.
    pub fn registered(&mut self, entry: &LedgerEntry) -> Result<()> {
        self.journal.registered = Some(entry.clone());
        self.record()
    }

    /// The pull succeeded: the previous archive goes, and with `keep_dir`
    /// every other unpacked version of the archive; the ledger records
    /// `entry`.
    pub fn finish(mut self, keep_dir: Option<&Path>, entry: &LedgerEntry) -> Result<()> {
        self.finished = true;
        self.store
            .complete(&self.file_name, &self.journal, keep_dir, entry)
    }
}

impl Drop for Replace {
    fn drop(&mut self) {
        if !self.finished && self.journaled {
            self.store.undo(&self.file_name, &self.journal);
        }
    }
}

impl ModelStore {
    /// Completes a transaction: what `finish` does, and a repair of one
    /// that got as far as registration.
    pub(super) fn complete(
        &self,
        file_name: &str,
        journal: &Journal,
        keep_dir: Option<&Path>,
        entry: &LedgerEntry,
    ) -> Result<()> {
        if let Some(backup) = &journal.backup {
            let _ = fs::remove_file(self.dir().join(backup));
        }
        if let Some(dir) = keep_dir {
            self.remove_unpacked(file_name, Some(dir));
        }
        self.write_ledger(file_name, entry)?;
        self.remove_journal(file_name);
        Ok(())
    }

    /// Undoes a transaction: the previous archive back (or none), the new
    /// unpacked directory gone, the journal last.
    pub(super) fn undo(&self, file_name: &str, journal: &Journal) {
        let target = self.archive_path(file_name);
        let backup = journal.backup.as_ref().map(|b| self.dir().join(b));
        let restored = match (journal.archive_replaced, backup) {
            (true, Some(backup)) => rename_if_present(&backup, &target),
            (true, None) if !journal.had_previous => match fs::remove_file(&target) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            (_, Some(backup)) => remove_if_present(&backup),
            (_, None) => Ok(()),
        };
        if let Err(e) = restored {
            tracing::error!("could not restore {file_name} in the model store: {e}");
            // The journal stays: the next holder of the lock tries again.
            return;
        }
        if let Some(dir) = &journal.unpacked_dir {
            self.discard_dir(file_name, dir);
        }
        self.remove_journal(file_name);
    }
}

/// The backup renamed back over the archive; a backup already gone means
/// an earlier repair restored it.
fn rename_if_present(from: &PathBuf, to: &Path) -> std::io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
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
            model_names: vec!["a".into()],
            pulled_at_unix: 1,
        }
    }

    async fn commit_new(tx: &mut Replace, content: &[u8]) {
        let mut staged = tx.stage(false).unwrap();
        staged.file.write_all(content).unwrap();
        tx.commit_archive(staged.file).await.unwrap();
    }

    /// Waits for the background removal of discarded directories.
    fn wait_gone(path: &Path) {
        for _ in 0..200 {
            if !path.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{} was not removed", path.display());
    }

    #[tokio::test]
    async fn a_dropped_replace_puts_the_previous_archive_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        fs::write(store.archive_path("a.mar"), b"old").unwrap();
        let mut tx = store.replace("a.mar");
        commit_new(&mut tx, b"new").await;
        let unpacked = store.unpacked_path("a.mar", 3, Some("e"));
        tx.will_commit_unpacked(&unpacked).unwrap();
        fs::create_dir_all(&unpacked).unwrap();
        assert_eq!(fs::read(store.archive_path("a.mar")).unwrap(), b"new");
        drop(tx);
        assert_eq!(fs::read(store.archive_path("a.mar")).unwrap(), b"old");
        assert!(!unpacked.exists());
        assert!(store.read_journal("a.mar").is_none());
        let hidden: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".dfp"))
            .map(|e| e.path())
            .collect();
        for path in hidden {
            wait_gone(&path);
        }

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
        tx.will_commit_unpacked(&new_version).unwrap();
        fs::create_dir_all(&new_version).unwrap();
        tx.finish(Some(&new_version), &entry()).unwrap();
        assert_eq!(fs::read(store.archive_path("a.mar")).unwrap(), b"new");
        assert!(new_version.exists());
        wait_gone(&old_version);
        assert_eq!(store.ledger_entry("a.mar"), Some(entry()));
        assert!(store.read_journal("a.mar").is_none());
        let backups: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".dfprev-"))
            .collect();
        assert!(backups.is_empty(), "the backup was left behind");
    }
}
