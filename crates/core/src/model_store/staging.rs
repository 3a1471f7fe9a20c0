//! Hidden files and directories that become part of the store only when
//! committed: bytes go to a hidden name in the same directory, which is
//! synced and renamed over the final name. A guard that is dropped removes
//! what it holds, so an error, a cancelled request or a panic leaves the
//! store as it was. Hidden names (leading dot) are used because TorchServe
//! skips hidden entries when it scans the store.
//!
//! Every hidden name is `.<file><marker><id>`: it names the file whose lock
//! covers it (so a crashed process's leftovers are the ones whose lock is
//! free, see [`super::ModelStore::sweep`]), and the id is random per
//! process, so processes in different PID namespaces never collide.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::ModelStore;
use crate::error::Result;

/// Marks a temporary file or directory (a download, an unpacking, trash).
pub(super) const TEMP_MARKER: &str = ".dfpart-";
/// Marks the hard link that keeps the previous archive while its
/// replacement registers.
pub(super) const BACKUP_MARKER: &str = ".dfprev-";
/// Marks a ledger or journal record being written.
pub(super) const RECORD_MARKER: &str = ".dfrecord-";
/// Every marker: no file name of the store may contain one.
pub const MARKERS: &[&str] = &[TEMP_MARKER, BACKUP_MARKER, RECORD_MARKER];

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
        self.create_marked(file_name, TEMP_MARKER)
    }

    /// A new hidden file for a record (ledger, journal) of `file_name`.
    pub(super) fn create_record_temp(&self, file_name: &str) -> Result<TempFile> {
        self.create_marked(file_name, RECORD_MARKER)
    }

    fn create_marked(&self, file_name: &str, marker: &str) -> Result<TempFile> {
        let path = self.hidden_name(file_name, marker);
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

    /// A fresh name to keep the previous archive of `file_name` under (a
    /// hard link) while its replacement registers.
    pub fn backup_path(&self, file_name: &str) -> PathBuf {
        self.hidden_name(file_name, BACKUP_MARKER)
    }

    fn temp_name(&self, file_name: &str) -> PathBuf {
        self.hidden_name(file_name, TEMP_MARKER)
    }

    fn hidden_name(&self, file_name: &str, marker: &str) -> PathBuf {
        self.dir()
            .join(format!(".{file_name}{marker}{}", unique_id()))
    }

    /// Removes a directory of `file_name`'s without making the caller wait
    /// for a large tree: it is renamed to a hidden temporary name at once
    /// (gone from where it was, and swept if the process dies first), then
    /// deleted on a thread of its own.
    pub fn discard_dir(&self, file_name: &str, dir: &Path) {
        let trash = self.temp_name(file_name);
        let target = match fs::rename(dir, &trash) {
            Ok(()) => trash,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => dir.to_path_buf(),
        };
        super::background::spawn_cleanup("dfe-discard", move || remove_logged(&target));
    }
}

fn remove_logged(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("could not remove {}: {e}", path.display());
        }
    }
}

/// The file a hidden name of the store belongs to, and whether it is one:
/// `.<file><marker><id>` gives `<file>`.
pub(super) fn owner_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    MARKERS.iter().find_map(|marker| {
        let (owner, id) = rest.rsplit_once(marker)?;
        let valid_id = id.split_once('-').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_hexdigit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
        (valid_id && !owner.is_empty()).then_some(owner)
    })
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

/// `<random per process>-<counter>`: unique across processes, hosts and
/// PID namespaces sharing a store (two pods may both be PID 1).
fn unique_id() -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = SEED.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // SAFETY: getrandom(2) writes at most `bytes.len()` bytes into it.
        let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        if got == bytes.len() as isize {
            u64::from_le_bytes(bytes)
        } else {
            // No entropy source: time and pid still differ between runs.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            nanos ^ (u64::from(std::process::id()) << 32)
        }
    });
    format!("{seed:016x}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
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
    fn hidden_names_say_whose_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        let temp = store.create_temp("a.b.mar").unwrap();
        let name = temp
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(owner_of(&name), Some("a.b.mar"));
        let backup = store.backup_path("a.mar");
        assert_eq!(
            owner_of(backup.file_name().unwrap().to_str().unwrap()),
            Some("a.mar")
        );
        assert_ne!(
            store.backup_path("a.mar"),
            backup,
            "backup names are unique"
        );
        // Names of an earlier release (PID-N) are recognised too.
        assert_eq!(owner_of(".a.mar.dfpart-4242-0"), Some("a.mar"));
        for other in [
            "a.mar",
            ".a.mar",
            ".a.mar.dfpart-",
            ".a.mar.dfpart-xyz",
            ".dfpart-1-2",
        ] {
            assert_eq!(owner_of(other), None, "{other}");
        }
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
