//! Serialises all work on one file of the store (PUT, POST, DELETE, crash
//! repair), across every process that shares the store: the plugin in
//! TorchServe, the CLI in an init container, pods on one volume. It is an
//! OS file lock (`flock`) on `.dragonfly-endpoint/locks/<file>.lock`, held
//! as long as the returned guard lives and released by the kernel when the
//! process dies, however it dies: a free lock is how a crashed pull's files
//! are told from a live one's.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{ModelStore, LEDGER_DIR};
use crate::error::{CoreError, Result};

const LOCK_DIR: &str = "locks";
/// How often a waiting pull tries the lock again.
const POLL: Duration = Duration::from_millis(50);

/// Held while a pull or a DELETE works on one file; released on drop.
#[derive(Debug)]
pub struct FileLock {
    // Closing the file releases the flock.
    _file: File,
}

impl ModelStore {
    fn lock_path(&self, file_name: &str) -> PathBuf {
        self.dir()
            .join(LEDGER_DIR)
            .join(LOCK_DIR)
            .join(format!("{file_name}.lock"))
    }

    /// Takes the lock of `file_name` if it is free now (None: someone holds
    /// it, in this process or another).
    pub fn try_lock(&self, file_name: &str) -> Result<Option<FileLock>> {
        let path = self.lock_path(file_name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| self.write_error(file_name, e))?;
        }
        // Never removed: removing a lock file while someone holds it would
        // let the next taker lock a different file.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| self.write_error(file_name, e))?;
        // SAFETY: flock(2) on a descriptor this function owns.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if locked {
            return Ok(Some(FileLock { _file: file }));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Ok(None),
            _ => Err(CoreError::io(format!("locking {}", path.display()), err)),
        }
    }

    /// Waits up to `wait` for the lock of `file_name`; then a 409 saying
    /// another pull of it is running.
    pub async fn lock(&self, file_name: &str, wait: Duration) -> Result<FileLock> {
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            if let Some(lock) = self.try_lock(file_name)? {
                return Ok(lock);
            }
            if !told {
                told = true;
                tracing::info!(
                    "waiting for the lock of {file_name}: another pull or removal of it is running"
                );
            }
            if Instant::now() >= deadline {
                return Err(CoreError::Conflict(format!(
                    "another pull or removal of {file_name} is running (in this or another process using the model store {}); gave up after {} s (download.lock_wait_secs); try again later, GET /dragonfly shows pulls in flight",
                    self.dir().display(),
                    wait.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_bounded_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        let held = store.lock("a.mar", Duration::from_secs(1)).await.unwrap();
        // A second open of the same lock file conflicts even in-process.
        assert!(store.try_lock("a.mar").unwrap().is_none());
        assert!(store.try_lock("b.mar").unwrap().is_some());
        let started = Instant::now();
        let err = store
            .lock("a.mar", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 409);
        assert!(err.to_string().contains("lock_wait_secs"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(held);
        assert!(store.try_lock("a.mar").unwrap().is_some());
    }
}
