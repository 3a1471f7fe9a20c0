//! Hidden files and directories that become part of the store only when
//! committed: bytes go to a hidden name in the same directory, which is
//! synced and renamed over the final name. A guard that is dropped removes
//! what it holds, so an error, a cancelled request or a panic leaves the
//! store as it was. Hidden names (leading dot) are used because TorchServe
//! skips hidden entries when it scans the store.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::ModelStore;
use crate::error::Result;

/// Marks a temporary file or directory.
pub(super) const TEMP_MARKER: &str = ".dfpart-";
/// Marks the hard link that keeps the previous archive while its
/// replacement registers.
pub(super) const BACKUP_MARKER: &str = ".dfprev-";

/// Where a download may write: a new temporary file, and the name the peer
/// may hard-link its finished task to instead (`X-Dragonfly-Output-Path`).
pub struct Staged {
    pub file: TempFile,
    pub link: Option<TempFile>,
}

impl Staged {
    /// The file that holds the download: the peer's link when it made one.
    pub fn into_result(self, hard_linked: bool) -> TempFile {
        match (hard_linked, self.link) {
            (true, Some(link)) => link,
            _ => self.file,
        }
    }
}

impl ModelStore {
    /// A fresh hidden name next to where `file_name` will land; whatever
    /// another writer (the Dragonfly peer) puts there is removed on drop
    /// unless committed.
    pub fn reserve_temp(&self, file_name: &str) -> TempFile {
        TempFile {
            path: self.temp_name(file_name),
            file: None,
        }
    }

    /// A new hidden temporary file next to where `file_name` will land.
    pub fn create_temp(&self, file_name: &str) -> Result<TempFile> {
        let path = self.temp_name(file_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| self.write_error(file_name, e))?;
        Ok(TempFile {
            path,
            file: Some(file),
        })
    }

    /// A fresh hidden directory to unpack `file_name` into, next to the
    /// archive (so a failed pull creates nothing that outlives it); removed
    /// on drop unless committed.
    pub fn create_temp_dir(&self, file_name: &str) -> Result<TempDir> {
        let path = self.temp_name(file_name);
        fs::create_dir(&path).map_err(|e| self.write_error(file_name, e))?;
        Ok(TempDir { path })
    }

    /// Where the previous archive of `file_name` is kept (a hard link) while
    /// its replacement registers.
    pub fn backup_path(&self, file_name: &str) -> PathBuf {
        self.dir()
            .join(format!(".{file_name}{BACKUP_MARKER}{}", std::process::id()))
    }

    fn temp_name(&self, file_name: &str) -> PathBuf {
        self.dir()
            .join(format!(".{file_name}{TEMP_MARKER}{}", unique_suffix()))
    }
}

/// A temporary file that is deleted unless committed.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
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
        sync_parent(target)?;
        // Renamed: nothing left for Drop to remove.
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for TempFile {
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
        sync_parent(target)?;
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

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
