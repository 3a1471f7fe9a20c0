//! Serialises work on one file of the store: a second pull of a model waits
//! for the first and then finds it unchanged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::OwnedMutexGuard;

use super::ModelStore;

/// Held while a pull works on one file; released on drop.
pub struct FileLock {
    _guard: OwnedMutexGuard<()>,
}

type Locks = Mutex<BTreeMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>;

impl ModelStore {
    /// Waits until no other pull of this process holds `file_name`.
    pub async fn lock(&self, file_name: &str) -> FileLock {
        static LOCKS: OnceLock<Locks> = OnceLock::new();
        let lock = {
            let mut locks = LOCKS
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // Drop locks nobody holds, so the map stays small.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks
                .entry(self.archive_path(file_name))
                .or_default()
                .clone()
        };
        FileLock {
            _guard: lock.lock_owned().await,
        }
    }
}
