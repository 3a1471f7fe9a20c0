//! Pulls that outlive the HTTP call. A PUT with `synchronous=false` answers
//! 202 at once with a job; the pull runs as a task of the process's runtime,
//! so a multi-GiB model over a slow link does not depend on a client
//! keeping a socket open. `GET /dragonfly?job=ID` shows each model's phase,
//! bytes, rate and outcome; `DELETE /dragonfly?job=ID` cancels it, and every
//! model of it rolls back (its store transaction is dropped).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use super::progress::Progress;
use crate::error::{CoreError, Result};
use crate::model_store::unix_now;

/// Finished jobs kept for `GET`.
const HISTORY: usize = 256;

#[derive(Debug, Clone, PartialEq)]
enum State {
    Running,
    /// The pull ended: its status and the body a synchronous PUT would
    /// have answered.
    Done {
        status: u16,
        body: Value,
    },
    Cancelled,
}

pub struct Job {
    pub id: String,
    started_unix: u64,
    models: Mutex<Vec<Arc<Progress>>>,
    state: Mutex<State>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// The pull's model tasks (its `PullHost::tasks`).
    models_running: TaskTracker,
}

/// How long a cancel waits for aborted models to roll back; their drops
/// only remove files, so this is a guard against a wedged disk.
const ROLLBACK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data is plain.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Job {
    /// A model of the job started (the pull's `on_start`).
    pub fn track(&self, progress: Arc<Progress>) {
        lock(&self.models).push(progress);
    }

    /// The pull's task, to cancel it.
    pub fn run(&self, task: JoinHandle<()>) {
        *lock(&self.task) = Some(task);
    }

    /// The pull ended (ignored once cancelled).
    pub fn finish(&self, status: u16, body: Value) {
        let mut state = lock(&self.state);
        if *state == State::Running {
            *state = State::Done { status, body };
        }
    }

    /// Cancels a running job and waits until its pull has stopped (its
    /// models rolled back); a finished job is a 409.
    pub async fn cancel(&self) -> Result<()> {
        {
            let mut state = lock(&self.state);
            if *state != State::Running {
                return Err(CoreError::Conflict(format!(
                    "job {} is not running (it is {})",
                    self.id,
                    state_name(&state)
                )));
            }
            *state = State::Cancelled;
        }
        let task = lock(&self.task).take();
        if let Some(task) = task {
            task.abort();
            // Err(cancelled) is the expected end.
            let _ = task.await;
        }
        // Aborting the pull aborted its models, but the runtime drops each
        // (and so rolls it back) in its own time: wait for the last.
        self.models_running.close();
        if tokio::time::timeout(ROLLBACK_WAIT, self.models_running.wait())
            .await
            .is_err()
        {
            tracing::warn!("job {}: models still rolling back after a minute", self.id);
        }
        Ok(())
    }

    pub fn snapshot(&self) -> Value {
        let state = lock(&self.state).clone();
        let models: Vec<_> = lock(&self.models).iter().map(|p| p.snapshot()).collect();
        let mut body = json!({
            "job": self.id,
            "state": state_name(&state),
            "started_unix": self.started_unix,
            "models": models,
        });
        if let State::Done {
            status,
            body: result,
        } = state
        {
            body["status"] = status.into();
            body["result"] = result;
        }
        body
    }
}

fn state_name(state: &State) -> &'static str {
    match state {
        State::Running => "running",
        State::Done { status, .. } if *status < 300 => "done",
        State::Done { .. } => "failed",
        State::Cancelled => "cancelled",
    }
}

#[derive(Default)]
pub struct JobTable {
    jobs: Mutex<VecDeque<Arc<Job>>>,
}

impl JobTable {
    pub fn global() -> &'static JobTable {
        static TABLE: OnceLock<JobTable> = OnceLock::new();
        TABLE.get_or_init(JobTable::default)
    }

    /// A running job whose pull spawns its models on `models_running`.
    pub fn create(&self, models_running: TaskTracker) -> Arc<Job> {
        let job = Arc::new(Job {
            id: new_id(),
            started_unix: unix_now(),
            models: Mutex::new(Vec::new()),
            state: Mutex::new(State::Running),
            task: Mutex::new(None),
            models_running,
        });
        let mut jobs = lock(&self.jobs);
        jobs.push_back(job.clone());
        // Forget the oldest finished jobs; never a running one.
        while jobs.len() > HISTORY {
            match jobs.iter().position(|j| *lock(&j.state) != State::Running) {
                Some(i) => {
                    jobs.remove(i);
                }
                None => break,
            }
        }
        job
    }

    /// The job of `id`: 400 when `id` is not a job id, 404 when unknown.
    pub fn get(&self, id: &str) -> Result<Arc<Job>> {
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CoreError::invalid(
                "job",
                format!("{id:?} is not a job id (16 hex digits)"),
            ));
        }
        lock(&self.jobs)
            .iter()
            .find(|j| j.id == id)
            .cloned()
            .ok_or_else(|| CoreError::NotFound(format!("no job {id} is known")))
    }
}

/// 16 hex digits, unguessable enough that ids of other callers' jobs are
/// not found by counting.
fn new_id() -> String {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom(2) writes at most `bytes.len()` bytes into it.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != bytes.len() as isize {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        bytes = nanos.to_le_bytes();
    }
    crate::digest::hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_finish_cancel_and_refuse_bad_ids() {
        let table = JobTable::default();
        let job = table.create(TaskTracker::new());
        assert_eq!(table.get(&job.id).unwrap().id, job.id);
        assert_eq!(
            table
                .get("0123456789abcdef")
                .map(|_| ())
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(table.get("nope").map(|_| ()).unwrap_err().status(), 400);
        job.run(tokio::spawn(std::future::pending()));
        assert_eq!(job.snapshot()["state"], "running");
        job.cancel().await.unwrap();
        assert_eq!(job.snapshot()["state"], "cancelled");
        assert_eq!(job.cancel().await.unwrap_err().status(), 409);
        job.finish(200, json!({}));
        assert_eq!(
            job.snapshot()["state"],
            "cancelled",
            "a cancelled job stays cancelled"
        );
        let done = table.create(TaskTracker::new());
        done.finish(502, json!({"code": 502}));
        assert_eq!(done.snapshot()["state"], "failed");
        assert_eq!(done.snapshot()["result"]["code"], 502);
    }

    /// Drops like a model's staged file: slowly, and says when it is gone.
    struct SlowRollback(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for SlowRollback {
        fn drop(&mut self) {
            std::thread::sleep(std::time::Duration::from_millis(300));
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_answers_only_after_every_model_rolled_back() {
        let table = JobTable::default();
        let tracker = TaskTracker::new();
        let job = table.create(tracker.clone());
        let rolled_back = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (started, mut is_started) = tokio::sync::mpsc::channel(1);
        let staged = SlowRollback(rolled_back.clone());
        // As `pull` does: models in a JoinSet inside the job's task.
        job.run(tokio::spawn(async move {
            let mut models = tokio::task::JoinSet::new();
            models.spawn(tracker.track_future(async move {
                let _staged = staged;
                let _ = started.send(()).await;
                std::future::pending::<()>().await
            }));
            while models.join_next().await.is_some() {}
        }));
        is_started.recv().await;
        job.cancel().await.unwrap();
        assert!(
            rolled_back.load(std::sync::atomic::Ordering::SeqCst),
            "cancel answered before the model's staged file was dropped"
        );
    }
}
