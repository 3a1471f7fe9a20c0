//! One pull request from start to end, as orchestration only: connect the
//! store, choose the archives ([`plan`]), pull each with bounded
//! concurrency ([`model`]: download, commit, [`prepare`], register) and
//! report every model's outcome ([`report`], [`progress`], [`metrics`]);
//! a pull may run as a [`jobs`] task that outlives the HTTP call.
//!
//! Each model is independent: one failing does not stop or undo the others.
//! A model whose pull fails gets its previous archive back (or none), so the
//! store ends as it was before the request for that model.
//!
//! May import: every stage (`config`, `source`, `transfer`, `format`,
//! `model_store`, `register`), never `api`.

mod directory;
pub mod jobs;
pub mod metrics;
mod model;
mod object;
pub mod plan;
mod prepare;
pub mod progress;
pub mod report;
pub mod uri;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::config::{Config, RegisterAs};
use crate::error::{CoreError, Result};
use crate::model_store::ModelStore;
use crate::register::{ModelRegistry, Overrides, RegisterOptions};
use crate::source::{self, ObjectSource};
use crate::transfer::Fetcher;
use progress::{Progress, PullTable};
use report::PullReport;

/// What a pull needs from its host (the plugin or the CLI).
#[derive(Clone)]
pub struct PullHost {
    pub store: ModelStore,
    /// None: only download (the CLI without a TorchServe to register into).
    pub registry: Option<Arc<dyn ModelRegistry>>,
    pub table: &'static PullTable,
    /// Called with every new progress record (the CLI draws bars from them).
    pub on_start: Option<Arc<dyn Fn(Arc<Progress>) + Send + Sync>>,
    /// Every model task of the pull, so that whoever cancels it can wait
    /// until each has rolled back (an aborted task is dropped later, by
    /// the runtime, not when its JoinSet is).
    pub tasks: TaskTracker,
}

impl PullHost {
    /// A host that registers into `registry` (if any), with the process's
    /// table of pulls and no progress callback.
    pub fn new(store: ModelStore, registry: Option<Arc<dyn ModelRegistry>>) -> PullHost {
        PullHost {
            store,
            registry,
            table: PullTable::global(),
            on_start: None,
            tasks: TaskTracker::new(),
        }
    }
}

/// What a request asks to pull; unset fields come from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullRequest {
    /// `all`, a key or a comma list; None: the config's `load_model`.
    pub model: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    /// The model name of a single archive.
    pub model_name: Option<String>,
    pub register: Overrides,
}

/// What every model of one pull shares.
struct PullContext {
    host: PullHost,
    source: Arc<dyn ObjectSource>,
    fetcher: Arc<Fetcher>,
    options: RegisterOptions,
    register_as: RegisterAs,
    /// How long a model waits for its file's lock.
    lock_wait: Duration,
    /// The deadline of one model's whole pull, if any.
    total_timeout: Option<Duration>,
    /// What one archive may unpack to (and one directory model hold).
    unpack: crate::format::Limits,
    /// Files of one directory model fetched at once.
    file_concurrency: usize,
}

/// Runs a pull. Errors returned here concern the whole request (bad
/// parameters, config, listing); per-model errors are in the report.
pub async fn pull(host: &PullHost, config: &Config, request: &PullRequest) -> Result<PullReport> {
    let (bucket, prefix, selection) = uri::target(request, config)?;
    let options = request.register.apply(&config.register)?;
    if !config.download.tls_verify {
        tracing::warn!(
            "TLS certificate verification is OFF (download.tls_verify=false in {})",
            config.source.display()
        );
    }

    let ca_pem = config.ca_cert_pem()?;
    let source: Arc<dyn ObjectSource> =
        source::connect(&config.object_storage, &bucket, ca_pem.as_deref())
            .await?
            .into();
    let unpack = crate::format::Limits {
        max_bytes: config.unpack.max_bytes,
        max_entries: config.unpack.max_entries,
    };
    let planned = plan::plan(
        &*source,
        &prefix,
        &selection,
        request.model_name.as_deref(),
        unpack,
    )
    .await?;
    let fetcher = Arc::new(Fetcher::new(config, source.signing_params())?);
    // Files a dead process was working on are repaired before anything
    // else touches them.
    host.store.sweep();

    let context = Arc::new(PullContext {
        host: host.clone(),
        source,
        fetcher,
        options,
        register_as: config.register_as,
        lock_wait: Duration::from_secs(config.download.lock_wait_secs),
        total_timeout: config.download.total_timeout_secs.map(Duration::from_secs),
        unpack,
        file_concurrency: config.download.file_concurrency,
    });
    let limit = Arc::new(Semaphore::new(config.download.concurrency));
    // A JoinSet aborts its tasks when dropped: a cancelled pull (a job
    // cancelled with DELETE) stops every model, and each rolls back; the
    // tracker tells the canceller when the last one has.
    let mut tasks = JoinSet::new();
    for (index, item) in planned.into_iter().enumerate() {
        let (context, limit) = (context.clone(), limit.clone());
        tasks.spawn(host.tasks.track_future(async move {
            let _permit = limit.acquire_owned().await;
            (index, model::pull_one(&context, item).await)
        }));
    }
    let mut models = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(report) => models.push(report),
            Err(e) => return Err(CoreError::Internal(format!("pull task failed: {e}"))),
        }
    }
    // In the order the request listed them, as before.
    models.sort_by_key(|(index, _)| *index);
    let models = models.into_iter().map(|(_, report)| report).collect();
    Ok(PullReport {
        bucket,
        prefix,
        models,
    })
}
