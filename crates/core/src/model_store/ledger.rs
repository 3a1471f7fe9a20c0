//! The ledger: what this plugin pulled into the store, one JSON file per
//! archive under the hidden `.dragonfly-endpoint/` directory: the object
//! version the archive holds and the model names registered from it. It is
//! what tells an unchanged archive from a new one, "already registered"
//! from a conflict, and what DELETE may remove.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{ModelStore, LEDGER_DIR};
use crate::error::{CoreError, Result};

/// What the ledger remembers of an archive this plugin wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LedgerEntry {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    /// The model names registered through this plugin from this version.
    pub model_names: Vec<String>,
    pub pulled_at_unix: u64,
}

impl LedgerEntry {
    /// Whether this entry records that version (size and ETag) of the
    /// object; without an ETag no version is known to be the same.
    pub fn is_version(&self, size: u64, etag: Option<&str>) -> bool {
        self.size == size && etag.is_some() && self.etag.as_deref() == etag
    }
}

/// An entry as stored, also as an earlier release wrote it (one
/// `model_name`).
#[derive(Deserialize)]
struct Stored {
    bucket: String,
    key: String,
    size: u64,
    etag: Option<String>,
    #[serde(default)]
    model_names: Vec<String>,
    #[serde(default)]
    model_name: Option<String>,
    pulled_at_unix: u64,
}

impl From<Stored> for LedgerEntry {
    fn from(stored: Stored) -> Self {
        let mut model_names = stored.model_names;
        if let Some(name) = stored.model_name {
            if !model_names.contains(&name) {
                model_names.push(name);
            }
        }
        LedgerEntry {
            bucket: stored.bucket,
            key: stored.key,
            size: stored.size,
            etag: stored.etag,
            model_names,
            pulled_at_unix: stored.pulled_at_unix,
        }
    }
}

impl ModelStore {
    fn ledger_path(&self, file_name: &str) -> PathBuf {
        self.dir()
            .join(LEDGER_DIR)
            .join(format!("{file_name}.json"))
    }

    pub fn ledger_entry(&self, file_name: &str) -> Option<LedgerEntry> {
        let text = fs::read(self.ledger_path(file_name)).ok()?;
        serde_json::from_slice::<Stored>(&text).ok().map(Into::into)
    }

    /// All ledger entries, by file name.
    pub fn ledger_entries(&self) -> Vec<(String, LedgerEntry)> {
        let Ok(entries) = fs::read_dir(self.dir().join(LEDGER_DIR)) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(file_name) = name.strip_suffix(".json") {
                if let Some(ledger) = self.ledger_entry(file_name) {
                    found.push((file_name.to_string(), ledger));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    pub fn write_ledger(&self, file_name: &str, entry: &LedgerEntry) -> Result<()> {
        let dir = self.dir().join(LEDGER_DIR);
        fs::create_dir_all(&dir).map_err(|e| self.write_error(file_name, e))?;
        let mut temp = self.create_record_temp(file_name)?;
        let bytes = serde_json::to_vec_pretty(entry)
            .map_err(|e| CoreError::Internal(format!("ledger for {file_name}: {e}")))?;
        temp.write_all(&bytes)
            .map_err(|e| self.write_error(file_name, e))?;
        temp.commit(&self.ledger_path(file_name))
            .map_err(|e| self.write_error(file_name, e))
    }

    pub fn remove_ledger(&self, file_name: &str) {
        let _ = fs::remove_file(self.ledger_path(file_name));
    }

    /// Whether the archive in the store is the one the ledger says this
    /// plugin pulled from `etag` with `size` bytes.
    pub fn is_unchanged(&self, file_name: &str, size: u64, etag: Option<&str>) -> bool {
        let Some(entry) = self.ledger_entry(file_name) else {
            return false;
        };
        let on_disk = fs::metadata(self.archive_path(file_name))
            .map(|m| m.is_file() && m.len() == size)
            .unwrap_or(false);
        on_disk && entry.is_version(size, etag)
    }

    /// Whether the directory model `file_name` (no archive, only its version
    /// directory) is the version the ledger records, still in place.
    pub fn is_unchanged_dir(&self, file_name: &str, size: u64, version: Option<&str>) -> bool {
        let Some(entry) = self.ledger_entry(file_name) else {
            return false;
        };
        entry.is_version(size, version) && self.unpacked_path(file_name, size, version).is_dir()
    }

    /// The ledger entry and file name that records `model_name`.
    pub fn ledger_of_model(&self, model_name: &str) -> Option<(String, LedgerEntry)> {
        self.ledger_entries()
            .into_iter()
            .find(|(_, entry)| entry.model_names.iter().any(|n| n == model_name))
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_needs_matching_ledger_size_and_etag() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        fs::write(store.archive_path("a.mar"), b"12345").unwrap();
        assert!(!store.is_unchanged("a.mar", 5, Some("e1")));
        let entry = LedgerEntry {
            bucket: "b".into(),
            key: "k/a.mar".into(),
            size: 5,
            etag: Some("e1".into()),
            model_names: vec!["a".into()],
            pulled_at_unix: 1,
        };
        store.write_ledger("a.mar", &entry).unwrap();
        assert!(store.is_unchanged("a.mar", 5, Some("e1")));
        assert!(!store.is_unchanged("a.mar", 5, Some("e2")));
        assert!(!store.is_unchanged("a.mar", 6, Some("e1")));
        assert!(!store.is_unchanged("a.mar", 5, None));
        assert_eq!(store.ledger_entries().len(), 1);
        assert_eq!(store.ledger_of_model("a").unwrap().0, "a.mar");
        store.remove_archive("a.mar").unwrap();
        assert!(store.ledger_entry("a.mar").is_none());
        assert!(!store.archive_path("a.mar").exists());
    }

    #[test]
    fn ledgers_of_an_earlier_release_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        fs::create_dir_all(dir.path().join(LEDGER_DIR)).unwrap();
        fs::write(
            dir.path().join(LEDGER_DIR).join("a.mar.json"),
            r#"{"bucket": "b", "key": "a.mar", "size": 1, "etag": "e", "model_name": "a", "pulled_at_unix": 2}"#,
        )
        .unwrap();
        assert_eq!(store.ledger_entry("a.mar").unwrap().model_names, vec!["a"]);
    }
}
