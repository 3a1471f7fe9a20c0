//! Removals that run on threads of their own (a large unpacked tree, an
//! unpacking thread to wait for), so that no async worker blocks on them,
//! not even from a destructor. A request still answers only once they are
//! done ([`settle`]), and the CLI waits before it exits: the store the
//! caller sees is the one it was told about.

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static PENDING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Runs `work` on a thread of its own, remembered until it ends.
pub fn spawn_cleanup(name: &str, work: impl FnOnce() + Send + 'static) {
    match std::thread::Builder::new()
        .name(name.to_string())
        .spawn(work)
    {
        Ok(handle) => {
            let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
            pending.retain(|h| !h.is_finished());
            pending.push(handle);
        }
        Err(e) => tracing::warn!("could not start a cleanup thread: {e}"),
    }
}

/// Waits until every cleanup has ended, or `limit` has passed; whether
/// they all ended.
pub fn wait_for_cleanups(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let done = {
            let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
            pending.retain(|h| !h.is_finished());
            pending.is_empty()
        };
        if done {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits, on a blocking thread, for the cleanups in flight (two minutes at
/// most: a removal that takes longer is finished by the next sweep).
pub async fn settle() {
    let waited = tokio::task::spawn_blocking(|| wait_for_cleanups(Duration::from_secs(120))).await;
    if !matches!(waited, Ok(true)) {
        tracing::warn!("removals still running after 2 minutes; the next pull sweeps what is left");
    }
}
