//! The journal of a replace transaction: before each step that changes
//! the store, what the step is about to change is written down
//! (`.dragonfly-endpoint/journal/<file>.json`, synced), so that after a
//! crash at any point (kill -9 of the JVM or the CLI) the next holder of the
//! file's lock can put the store back as it was, or complete the pull when
//! TorchServe had already registered it ([`ModelStore::recover`]).

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{LedgerEntry, ModelStore, LEDGER_DIR};
use crate::error::{CoreError, Result};

const JOURNAL_DIR: &str = "journal";

/// What a transaction in flight may have changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Journal {
    /// The hard link keeping the previous archive, a file name of the store.
    pub backup: Option<String>,
    /// Whether the archive existed before (a rollback without a backup
    /// then leaves none).
    pub had_previous: bool,
    /// Whether the new archive may have been renamed into place.
    pub archive_replaced: bool,
    /// An unpacked directory the transaction may have committed.
    pub unpacked_dir: Option<PathBuf>,
    /// Set once the model is registered: what the ledger is to record. A
    /// repair then completes the pull rather than undoing it.
    pub registered: Option<LedgerEntry>,
}

impl ModelStore {
    fn journal_path(&self, file_name: &str) -> PathBuf {
        self.dir()
            .join(LEDGER_DIR)
            .join(JOURNAL_DIR)
            .join(format!("{file_name}.json"))
    }

    pub(super) fn read_journal(&self, file_name: &str) -> Option<Journal> {
        let text = fs::read(self.journal_path(file_name)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes the journal durably (temp, fsync, rename, fsync directory)
    /// before the step it describes is taken.
    pub(super) fn write_journal(&self, file_name: &str, journal: &Journal) -> Result<()> {
        let path = self.journal_path(file_name);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| self.write_error(file_name, e))?;
        }
        let bytes = serde_json::to_vec(journal)
            .map_err(|e| CoreError::Internal(format!("journal of {file_name}: {e}")))?;
        let mut temp = self.create_record_temp(file_name)?;
        temp.write_all(&bytes)
            .map_err(|e| self.write_error(file_name, e))?;
        temp.commit(&path)
            .map_err(|e| self.write_error(file_name, e))
    }

    pub(super) fn remove_journal(&self, file_name: &str) {
        match fs::remove_file(self.journal_path(file_name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!("could not remove the journal of {file_name}: {e}");
            }
            _ => {}
        }
    }

    /// File names with a journal (an interrupted transaction).
    pub(super) fn journaled(&self) -> Vec<String> {
        let dir = self.dir().join(LEDGER_DIR).join(JOURNAL_DIR);
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect()
    }
}
