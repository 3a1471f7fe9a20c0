//! TorchServe's model store: safe archive names, atomic writes and the
//! ledger of what this plugin pulled.
//!
//! An archive only ever appears in the store whole: bytes go to a hidden
//! temporary file in the same directory, which is synced and renamed over the
//! final name. A temporary file is removed when its guard is dropped, so an
//! error, a cancelled request or a panic leaves the store as it was.
//! Hidden names (leading dot) are used for everything that is not a finished
//! archive, because TorchServe skips hidden entries when it scans the store.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::{is_no_space, CoreError, Result};

/// Longest file name most filesystems accept.
const MAX_NAME_BYTES: usize = 255;
const LEDGER_DIR: &str = ".dragonfly-endpoint";
/// Unpacked archives, one directory per archive version (inside the hidden
/// ledger directory, so TorchServe's `--models all` never sees them).
const UNPACKED_DIR: &str = "unpacked";
const TEMP_MARKER: &str = ".dfpart-";
/// Marks the hard link that keeps the previous archive while its
/// replacement registers.
const BACKUP_MARKER: &str = ".dfprev-";

/// Checks a model store file name taken from a request or an object key.
pub fn validate_file_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is a relative path")
    } else if name.contains('/') || name.contains('\\') {
        Some("contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.starts_with('.') {
        Some("starts with '.' (hidden names are reserved)")
    } else if name.len() > MAX_NAME_BYTES {
        Some("is longer than 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CoreError::invalid(
            "model",
            format!("file name {name:?} {reason}"),
        )),
        None => Ok(()),
    }
}

/// The model store file name for an object key: its last segment.
pub fn file_name_for_key(key: &str) -> Result<String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    validate_file_name(name)?;
    Ok(name.to_string())
}

/// The model name TorchServe registers an archive under by default: the file
/// name without its `.mar` extension.
pub fn default_model_name(file_name: &str) -> String {
    file_name
        .strip_suffix(".mar")
        .unwrap_or(file_name)
        .to_string()
}

/// What the ledger remembers of an archive this plugin wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LedgerEntry {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub model_name: String,
    pub pulled_at_unix: u64,
}

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

    /// A fresh hidden name next to where `file_name` will land; whatever
    /// another writer (the Dragonfly peer) puts there is removed on drop
    /// unless committed.
    pub fn reserve_temp(&self, file_name: &str) -> TempArchive {
        TempArchive {
            path: self
                .dir
                .join(format!(".{file_name}{TEMP_MARKER}{}", unique_suffix())),
            file: None,
        }
    }

    /// A new hidden temporary file next to where `file_name` will land.
    pub fn create_temp(&self, file_name: &str) -> Result<TempArchive> {
        let mut temp = self.reserve_temp(file_name);
        let path = std::mem::take(&mut temp.path);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| self.write_error(file_name, e))?;
        Ok(TempArchive {
            path,
            file: Some(file),
        })
    }

    /// Where the previous archive of `file_name` is kept (a hard link) while
    /// its replacement registers.
    pub fn backup_path(&self, file_name: &str) -> PathBuf {
        self.dir
            .join(format!(".{file_name}{BACKUP_MARKER}{}", std::process::id()))
    }

    /// Maps a write failure to 507 when the disk is full.
    pub fn write_error(&self, file_name: &str, err: std::io::Error) -> CoreError {
        if is_no_space(&err) {
            CoreError::NoSpace {
                path: self.dir.clone(),
                object: file_name.to_string(),
            }
        } else {
            CoreError::io(format!("writing {file_name} into the model store"), err)
        }
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
                .split_once(TEMP_MARKER)
                .or_else(|| name.split_once(BACKUP_MARKER))
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

    /// A fresh hidden directory to unpack `file_name` into, next to the
    /// archive (so a failed pull creates nothing that outlives it); removed
    /// on drop unless committed.
    pub fn create_unpack_temp(&self, file_name: &str) -> Result<TempDir> {
        let path = self
            .dir
            .join(format!(".{file_name}{TEMP_MARKER}{}", unique_suffix()));
        fs::create_dir(&path).map_err(|e| self.write_error(file_name, e))?;
        Ok(TempDir { path })
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

    fn ledger_path(&self, file_name: &str) -> PathBuf {
        self.dir.join(LEDGER_DIR).join(format!("{file_name}.json"))
    }

    pub fn ledger_entry(&self, file_name: &str) -> Option<LedgerEntry> {
        let text = fs::read(self.ledger_path(file_name)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// All ledger entries, by file name.
    pub fn ledger_entries(&self) -> Vec<(String, LedgerEntry)> {
        let Ok(entries) = fs::read_dir(self.dir.join(LEDGER_DIR)) else {
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
        let dir = self.dir.join(LEDGER_DIR);
        fs::create_dir_all(&dir).map_err(|e| self.write_error(file_name, e))?;
        let mut temp = self.create_temp(&format!("{file_name}.json"))?;
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
        on_disk && entry.size == size && etag.is_some() && entry.etag.as_deref() == etag
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

/// A temporary file that is deleted unless committed.
#[derive(Debug)]
pub struct TempArchive {
    path: PathBuf,
    file: Option<File>,
}

impl TempArchive {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&mut self) -> std::io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("temporary file already closed"))
    }

    /// Syncs the data, renames it over `target` and syncs the directory, so
    /// the new name survives a crash and never points at partial data.
    pub fn commit(mut self, target: &Path) -> std::io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        fs::rename(&self.path, target)?;
        if let Some(parent) = target.parent() {
            File::open(parent)?.sync_all()?;
        }
        // Renamed: nothing left for Drop to remove.
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Write for TempArchive {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for TempArchive {
    fn drop(&mut self) {
        self.file.take();
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A directory that is removed, with its content, unless committed.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the directory to `target` (replacing a leftover of the same
    /// name) and syncs the parent, so `target` only ever appears complete.
    /// The files inside must already be synced.
    pub fn commit(mut self, target: &Path) -> std::io::Result<()> {
        if target.exists() {
            fs::remove_dir_all(target)?;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(&self.path, target)?;
        if let Some(parent) = target.parent() {
            File::open(parent)?.sync_all()?;
        }
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// `PID-N`: unique among the temporary names of live processes, and tells
/// [`ModelStore::remove_stale_temps`] whose they are.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
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
    fn names_that_would_escape_or_hide_are_refused() {
        let long = "a".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "a/b.mar",
            "a\\b",
            "a\0.mar",
            "a\n.mar",
            ".hidden.mar",
            &long,
        ] {
            assert!(validate_file_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["resnet.mar", "my model.mar", "модель.mar", &"a".repeat(255)] {
            assert!(validate_file_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn file_name_is_last_key_segment() {
        assert_eq!(
            file_name_for_key("models/v1/resnet.mar").unwrap(),
            "resnet.mar"
        );
        assert_eq!(file_name_for_key("resnet.mar").unwrap(), "resnet.mar");
        assert!(file_name_for_key("models/..").is_err());
        assert!(file_name_for_key("models/").is_err());
        assert_eq!(default_model_name("resnet.mar"), "resnet");
    }

    #[test]
    fn dropped_temp_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        {
            let mut temp = store.create_temp("a.mar").unwrap();
            temp.write_all(b"partial").unwrap();
            assert!(temp.path().exists());
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn committed_temp_file_replaces_target_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        fs::write(store.archive_path("a.mar"), b"old").unwrap();
        let mut temp = store.create_temp("a.mar").unwrap();
        temp.write_all(b"new contents").unwrap();
        temp.commit(&store.archive_path("a.mar")).unwrap();
        assert_eq!(
            fs::read(store.archive_path("a.mar")).unwrap(),
            b"new contents"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

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
            model_name: "a".into(),
            pulled_at_unix: 1,
        };
        store.write_ledger("a.mar", &entry).unwrap();
        assert!(store.is_unchanged("a.mar", 5, Some("e1")));
        assert!(!store.is_unchanged("a.mar", 5, Some("e2")));
        assert!(!store.is_unchanged("a.mar", 6, Some("e1")));
        assert!(!store.is_unchanged("a.mar", 5, None));
        assert_eq!(store.ledger_entries().len(), 1);
        store.remove_archive("a.mar").unwrap();
        assert!(store.ledger_entry("a.mar").is_none());
        assert!(!store.archive_path("a.mar").exists());
    }

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
