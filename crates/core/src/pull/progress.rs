//! The process-wide table of pulls, in flight and done, that `GET /dragonfly`
//! reports. Byte counters are atomics updated by the downloader, so a status
//! call never waits on a pull. (It lives with the pull that writes it, not
//! with the API that reads it, so that the pull never imports the API.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

use crate::model_store::unix_now;

/// How many finished pulls the table keeps.
const HISTORY: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Queued,
    Downloading,
    Registering,
    Done,
    Failed,
}

/// Live counters of one pull.
#[derive(Debug)]
pub struct Progress {
    pub model_name: String,
    pub file_name: String,
    pub object: String,
    bytes: AtomicU64,
    /// Byte counters of the files of a directory model, one per file.
    parts: Mutex<Vec<Arc<AtomicU64>>>,
    total: AtomicU64,
    /// Files of a directory model: how many, how many are in place.
    files: AtomicU64,
    files_done: AtomicU64,
    started: Instant,
    started_unix: u64,
    state: Mutex<(Phase, Option<f64>, Option<String>)>,
}

impl Progress {
    pub fn new(model_name: &str, file_name: &str, object: &str, total: u64) -> Self {
        Progress {
            model_name: model_name.to_string(),
            file_name: file_name.to_string(),
            object: object.to_string(),
            bytes: AtomicU64::new(0),
            parts: Mutex::new(Vec::new()),
            total: AtomicU64::new(total),
            files: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            started: Instant::now(),
            started_unix: unix_now(),
            state: Mutex::new((Phase::Queued, None, None)),
        }
    }

    pub fn bytes(&self) -> u64 {
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let in_parts: u64 = parts.iter().map(|p| p.load(Ordering::Relaxed)).sum();
        self.bytes.load(Ordering::Relaxed) + in_parts
    }

    /// A byte counter for one file of a directory model, summed into
    /// [`Progress::bytes`]: each file's download restarts and resumes on
    /// its own counter.
    pub fn part(&self) -> Arc<AtomicU64> {
        let part = Arc::new(AtomicU64::new(0));
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.push(part.clone());
        part
    }

    /// A directory model of `n` files.
    pub fn set_files(&self, n: usize) {
        self.files.store(n as u64, Ordering::Relaxed);
    }

    /// One more file of a directory model is in place.
    pub fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }

    /// The byte counter the download updates.
    pub fn counter(&self) -> &AtomicU64 {
        &self.bytes
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Relaxed);
    }

    pub fn set_bytes(&self, n: u64) {
        self.bytes.store(n, Ordering::Relaxed);
    }

    fn state(&self) -> MutexGuard<'_, (Phase, Option<f64>, Option<String>)> {
        // A poisoned lock only means a panic elsewhere; the data is plain.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_phase(&self, phase: Phase) {
        let mut state = self.state();
        state.0 = phase;
        if matches!(phase, Phase::Done | Phase::Failed) {
            state.1 = Some(self.started.elapsed().as_secs_f64());
        }
    }

    pub fn fail(&self, message: &str) {
        self.state().2 = Some(message.to_string());
        self.set_phase(Phase::Failed);
    }

    pub fn phase(&self) -> Phase {
        self.state().0
    }

    pub fn snapshot(&self) -> PullStatus {
        let (phase, finished_after, error) = self.state().clone();
        let seconds = finished_after.unwrap_or_else(|| self.started.elapsed().as_secs_f64());
        let bytes = self.bytes();
        PullStatus {
            model_name: self.model_name.clone(),
            file_name: self.file_name.clone(),
            object: self.object.clone(),
            phase,
            bytes,
            total: self.total(),
            seconds,
            bytes_per_second: if seconds > 0.0 {
                (bytes as f64 / seconds) as u64
            } else {
                0
            },
            started_unix: self.started_unix,
            files: match self.files.load(Ordering::Relaxed) {
                0 => None,
                n => Some(n),
            },
            files_done: match self.files.load(Ordering::Relaxed) {
                0 => None,
                _ => Some(self.files_done.load(Ordering::Relaxed)),
            },
            error,
        }
    }
}

/// What `GET /dragonfly` shows of one pull.
#[derive(Debug, Clone, Serialize)]
pub struct PullStatus {
    pub model_name: String,
    pub file_name: String,
    pub object: String,
    pub phase: Phase,
    pub bytes: u64,
    pub total: u64,
    pub seconds: f64,
    pub bytes_per_second: u64,
    pub started_unix: u64,
    /// A directory model's files, and how many are in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_done: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct PullTable {
    pulls: Mutex<VecDeque<Arc<Progress>>>,
}

impl PullTable {
    pub fn global() -> &'static PullTable {
        static TABLE: std::sync::OnceLock<PullTable> = std::sync::OnceLock::new();
        TABLE.get_or_init(PullTable::default)
    }

    pub fn track(&self, progress: Arc<Progress>) {
        let mut pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
        pulls.push_back(progress);
        // Forget the oldest finished pulls; never one in flight.
        while pulls.len() > HISTORY {
            match pulls
                .iter()
                .position(|p| matches!(p.phase(), Phase::Done | Phase::Failed))
            {
                Some(i) => {
                    pulls.remove(i);
                }
                None => break,
            }
        }
    }

    /// Newest first.
    pub fn snapshot(&self) -> Vec<PullStatus> {
        let pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
        pulls.iter().rev().map(|p| p.snapshot()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keeps_in_flight_pulls_and_bounded_history() {
        let table = PullTable::default();
        let live = Arc::new(Progress::new("live", "live.mar", "s3://b/live.mar", 10));
        live.set_phase(Phase::Downloading);
        table.track(live.clone());
        for i in 0..HISTORY + 10 {
            let p = Arc::new(Progress::new(&format!("m{i}"), "m.mar", "s3://b/m.mar", 1));
            p.set_phase(Phase::Done);
            table.track(p);
        }
        let snap = table.snapshot();
        assert_eq!(snap.len(), HISTORY);
        assert!(snap.iter().any(|s| s.model_name == "live"));
        assert_eq!(snap[0].model_name, format!("m{}", HISTORY + 9));
    }

    #[test]
    fn snapshot_reports_bytes_and_error() {
        let p = Progress::new("m", "m.mar", "s3://b/m.mar", 100);
        p.counter().fetch_add(40, Ordering::Relaxed);
        p.fail("boom");
        let s = p.snapshot();
        assert_eq!((s.bytes, s.total, s.phase), (40, 100, Phase::Failed));
        assert_eq!(s.error.as_deref(), Some("boom"));
    }
}
