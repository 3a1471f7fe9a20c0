//! One pull request from start to end: choose the archives, download each
//! through the Dragonfly peer (bounded concurrency), commit it into the model
//! store, register it, and report every model's outcome.
//!
//! Each model is independent: one failing does not stop or undo the others.
//! A model whose registration fails gets its previous archive back (or none),
//! so the store ends as it was before the request for that model.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::config::{Config, RegisterAs, RegisterDefaults};
use crate::error::{CoreError, ErrorBody, Result};
use crate::fetch::{FetchTarget, Fetcher, ServedFrom};
use crate::progress::{Phase, Progress, PullTable};
use crate::registry::{ModelRegistry, RegisterRequest};
use crate::request::{PullParams, Selection};
use crate::storage::{ObjectInfo, ObjectStore};
use crate::store::{default_model_name, file_name_for_key, unix_now, LedgerEntry, ModelStore};
use crate::unpack::{self, StreamUnpacker, UnpackError, UnpackedFrom};

/// What a pull needs from its host (the plugin or the CLI).
#[derive(Clone)]
pub struct PullHost {
    pub store: ModelStore,
    /// None: only download (the CLI without a TorchServe to register into).
    pub registry: Option<Arc<dyn ModelRegistry>>,
    pub table: &'static PullTable,
    /// Called with every new progress record (the CLI draws bars from them).
    pub on_start: Option<Arc<dyn Fn(Arc<Progress>) + Send + Sync>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DownloadReport {
    /// `downloaded`, or `unchanged` when the same archive (size and ETag)
    /// was already in the store.
    pub action: &'static str,
    pub bytes: u64,
    pub seconds: f64,
    pub bytes_per_second: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_from: Option<ServedFrom>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    pub attempts: u32,
    /// Taken from the local peer's cache by hard link, not streamed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hard_linked: bool,
}

/// How the archive was unpacked for TorchServe (`register_as: directory`).
#[derive(Debug, Clone, Serialize)]
pub struct UnpackReport {
    pub from: UnpackedFrom,
    pub files: usize,
    pub bytes: u64,
    /// Time spent after the download: the whole unpack from a file, or
    /// only the final check when it streamed alongside the download.
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub model_name: String,
    pub file_name: String,
    pub object: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpacked: Option<UnpackReport>,
    /// `registered` or `already_registered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub bucket: String,
    pub prefix: String,
    pub models: Vec<ModelReport>,
}

impl PullReport {
    /// 200 when every model succeeded, else the most severe status (the
    /// highest: 5xx outranks 4xx).
    pub fn status(&self) -> u16 {
        self.models
            .iter()
            .map(|m| m.status)
            .filter(|s| *s >= 300)
            .max()
            .unwrap_or(200)
    }

    /// The response body: TorchServe's error fields when something failed,
    /// and always every model's outcome.
    pub fn body(&self) -> serde_json::Value {
        let status = self.status();
        let failed: Vec<&ModelReport> = self.models.iter().filter(|m| m.status >= 300).collect();
        let mut body = if failed.is_empty() {
            serde_json::json!({
                "status": format!("{} model(s) ready", self.models.len()),
            })
        } else {
            let worst = failed
                .iter()
                .find(|m| m.status == status)
                .and_then(|m| m.error.as_ref());
            let summary: Vec<String> = failed
                .iter()
                .map(|m| match &m.error {
                    Some(e) => format!("{}: {}", m.file_name, e.message),
                    None => m.file_name.clone(),
                })
                .collect();
            serde_json::json!({
                "code": status,
                "type": worst.map(|e| e.kind.as_str()).unwrap_or("PullException"),
                "message": format!(
                    "{} of {} model(s) failed: {}",
                    failed.len(),
                    self.models.len(),
                    summary.join("; ")
                ),
            })
        };
        body["bucket"] = self.bucket.clone().into();
        body["prefix"] = self.prefix.clone().into();
        body["models"] = serde_json::to_value(&self.models).unwrap_or_default();
        body
    }
}

/// What every model of one pull shares.
struct PullContext {
    host: PullHost,
    storage: Arc<ObjectStore>,
    fetcher: Arc<Fetcher>,
    defaults: RegisterDefaults,
    register_as: RegisterAs,
}

/// One archive to pull, as resolved from the request.
struct Planned {
    key: String,
    file_name: String,
    model_name: String,
    /// Known from the listing; looked up with HEAD otherwise.
    info: Option<ObjectInfo>,
}

/// Runs a pull. Errors returned here concern the whole request (bad
/// parameters, config, listing); per-model errors are in the report.
pub async fn pull(host: &PullHost, config: &Config, params: &PullParams) -> Result<PullReport> {
    let bucket = params
        .bucket
        .clone()
        .or_else(|| config.object_storage.bucket_name.clone())
        .ok_or_else(|| {
            CoreError::invalid(
                "bucket",
                "missing: set object_storage.bucket_name in the config or pass bucket=",
            )
        })?;
    let prefix = normalize_prefix(
        params
            .prefix
            .as_deref()
            .unwrap_or(&config.object_storage.prefix),
    );
    let selection = params.selection(config)?;
    let defaults = params.register.apply(&config.register_defaults());
    if !config.download.tls_verify {
        tracing::warn!(
            "TLS certificate verification is OFF (download.tls_verify=false in {})",
            config.source.display()
        );
    }

    let ca_pem = config.ca_cert_pem()?;
    let storage =
        Arc::new(ObjectStore::connect(&config.object_storage, &bucket, ca_pem.as_deref()).await?);
    let planned = plan(&storage, &prefix, &selection, params).await?;
    let fetcher = Arc::new(Fetcher::new(config)?);
    host.store.remove_stale_temps();

    let context = Arc::new(PullContext {
        host: host.clone(),
        storage,
        fetcher,
        defaults,
        register_as: config.register_as,
    });
    let limit = Arc::new(Semaphore::new(config.download.concurrency));
    let mut tasks = Vec::new();
    for item in planned {
        let (context, limit) = (context.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            pull_one(&context, item).await
        }));
    }
    let mut models = Vec::new();
    for task in tasks {
        match task.await {
            Ok(report) => models.push(report),
            Err(e) => return Err(CoreError::Internal(format!("pull task failed: {e}"))),
        }
    }
    Ok(PullReport {
        bucket,
        prefix,
        models,
    })
}

/// `models` and `models/` both mean the folder `models/`.
pub fn normalize_prefix(prefix: &str) -> String {
    let prefix = prefix.trim_start_matches('/');
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

async fn plan(
    storage: &ObjectStore,
    prefix: &str,
    selection: &Selection,
    params: &PullParams,
) -> Result<Vec<Planned>> {
    let mut planned = Vec::new();
    match selection {
        Selection::All => {
            let objects = storage.list_archives(prefix).await?;
            if objects.is_empty() {
                return Err(CoreError::NotFound(format!(
                    "no model archives (*.mar) under s3://{}/{prefix}",
                    storage.bucket()
                )));
            }
            for info in objects {
                let Ok(file_name) = file_name_for_key(&info.key) else {
                    tracing::warn!("skipping object {:?}: not a usable file name", info.key);
                    continue;
                };
                planned.push(Planned {
                    key: info.key.clone(),
                    model_name: default_model_name(&file_name),
                    file_name,
                    info: Some(info),
                });
            }
        }
        Selection::Keys(keys) => {
            for key in keys {
                let file_name = file_name_for_key(key)?;
                let model_name = params
                    .register
                    .model_name
                    .clone()
                    .unwrap_or_else(|| default_model_name(&file_name));
                planned.push(Planned {
                    key: format!("{prefix}{key}"),
                    file_name,
                    model_name,
                    info: None,
                });
            }
        }
    }
    // Two keys in different folders may end in the same file name.
    let mut seen: HashMap<String, String> = HashMap::new();
    for item in &planned {
        if let Some(other) = seen.insert(item.file_name.clone(), item.key.clone()) {
            return Err(CoreError::Conflict(format!(
                "objects {other:?} and {:?} would both be stored as {:?}",
                item.key, item.file_name
            )));
        }
    }
    Ok(planned)
}

/// Serialises pulls of the same file into the same store: a second request
/// for a model waits for the first and then finds it unchanged.
fn file_lock(path: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<BTreeMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Drop locks nobody holds, so the map stays small.
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    locks.entry(path.to_path_buf()).or_default().clone()
}

async fn pull_one(context: &PullContext, item: Planned) -> ModelReport {
    let host = &context.host;
    let object = context.storage.object_url(&item.key);
    let progress = Arc::new(Progress::new(
        &item.model_name,
        &item.file_name,
        &object,
        item.info.as_ref().map(|i| i.size).unwrap_or(0),
    ));
    host.table.track(progress.clone());
    if let Some(on_start) = &host.on_start {
        on_start(progress.clone());
    }
    let mut report = ModelReport {
        model_name: item.model_name.clone(),
        file_name: item.file_name.clone(),
        object: object.clone(),
        status: 200,
        download: None,
        unpacked: None,
        registration: None,
        registration_message: None,
        registration_seconds: None,
        error: None,
    };
    let lock = file_lock(&host.store.archive_path(&item.file_name));
    let _guard = lock.lock().await;
    match run_model(context, &item, &progress, &mut report).await {
        Ok(()) => {
            progress.set_phase(Phase::Done);
            tracing::info!(
                "{} ready as model {:?} ({})",
                object,
                item.model_name,
                report.download.as_ref().map(|d| d.action).unwrap_or("-")
            );
        }
        Err(err) => {
            tracing::error!("{object}: {err}");
            progress.fail(&err.to_string());
            report.status = err.status();
            report.error = Some(err.body());
        }
    }
    report
}

async fn run_model(
    context: &PullContext,
    item: &Planned,
    progress: &Progress,
    report: &mut ModelReport,
) -> Result<()> {
    let (host, storage) = (&context.host, &context.storage);
    let info = match &item.info {
        Some(info) => info.clone(),
        None => storage.head(&item.key).await?,
    };
    progress.set_total(info.size);
    let unchanged = host
        .store
        .is_unchanged(&item.file_name, info.size, info.etag.as_deref());
    let registered = match &host.registry {
        Some(registry) => registry.is_registered(&item.model_name).await?,
        None => false,
    };
    if registered && !unchanged {
        return Err(CoreError::Conflict(format!(
            "model {:?} is already registered from another archive; unregister it first (DELETE /dragonfly?model={})",
            item.model_name, item.model_name
        )));
    }

    // Kept until registration succeeds, to put back if it fails.
    let mut previous: Option<PathBuf> = None;
    let mut unpacker: Option<StreamUnpacker> = None;
    if unchanged {
        progress.set_bytes(info.size);
        report.download = Some(DownloadReport {
            action: "unchanged",
            bytes: info.size,
            seconds: 0.0,
            bytes_per_second: 0,
            served_from: None,
            task_id: None,
            attempts: 0,
            hard_linked: false,
        });
    } else {
        progress.set_phase(Phase::Downloading);
        let target = FetchTarget {
            object: storage.object_url(&item.key),
            url: storage.presign_get(&item.key).await?,
            size: info.size,
            md5: info.md5(),
            version: info.etag.clone(),
        };
        let feed = match context.register_as {
            RegisterAs::Directory => {
                let dir = host.store.create_unpack_temp(&item.file_name)?;
                let (stream, feed) = unpack::stream_unpacker(dir)
                    .map_err(|e| CoreError::io("starting the unpacking thread", e))?;
                unpacker = Some(stream);
                Some(feed)
            }
            RegisterAs::Mar => None,
        };
        let started = Instant::now();
        let (temp, fetched) = context
            .fetcher
            .fetch(&target, &host.store, &item.file_name, progress, feed)
            .await?;
        let final_path = host.store.archive_path(&item.file_name);
        previous = keep_previous(&host.store, &item.file_name)?;
        if let Err(e) = tokio::task::spawn_blocking(move || temp.commit(&final_path))
            .await
            .map_err(|e| CoreError::Internal(format!("commit task: {e}")))?
        {
            restore_previous(&host.store, &item.file_name, previous.take());
            return Err(host.store.write_error(&item.file_name, e));
        }
        let seconds = started.elapsed().as_secs_f64();
        report.download = Some(DownloadReport {
            action: "downloaded",
            bytes: fetched.bytes,
            seconds,
            bytes_per_second: (fetched.bytes as f64 / seconds.max(1e-9)) as u64,
            served_from: Some(fetched.served_from),
            task_id: fetched.task_id,
            attempts: fetched.attempts,
            hard_linked: fetched.hard_linked,
        });
    }

    // From here on a failure leaves the store as it was before this pull.
    let prepared = match context.register_as {
        RegisterAs::Directory => {
            prepare_directory(context, item, &info, unchanged, unpacker, report).await
        }
        RegisterAs::Mar => Ok(Prepared::archive(item)),
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(err) => {
            if !unchanged {
                restore_previous(&host.store, &item.file_name, previous);
            }
            return Err(err);
        }
    };

    let registry = match (&host.registry, registered) {
        (Some(_), true) | (None, _) => {
            if let Some(prev) = previous {
                let _ = std::fs::remove_file(prev);
            }
            if registered {
                report.registration = Some("already_registered");
            }
            prepared.keep_only_this_version(&host.store, &item.file_name);
            return write_ledger(host, storage, item, &info);
        }
        (Some(registry), false) => registry,
    };
    progress.set_phase(Phase::Registering);
    let defaults = &context.defaults;
    let request = RegisterRequest {
        url: prepared.url.clone(),
        model_name: item.model_name.clone(),
        handler: defaults.handler.clone(),
        runtime: defaults.runtime.clone(),
        batch_size: defaults.batch_size,
        max_batch_delay: defaults.max_batch_delay,
        response_timeout: defaults.response_timeout,
        startup_timeout: defaults.startup_timeout,
        initial_workers: defaults.min_worker,
        synchronous: defaults.synchronous,
    };
    let started = Instant::now();
    match registry.register(&request).await {
        Ok(message) => {
            report.registration = Some("registered");
            report.registration_message = Some(message);
            report.registration_seconds = Some(started.elapsed().as_secs_f64());
            if let Some(prev) = previous {
                let _ = std::fs::remove_file(prev);
            }
            prepared.keep_only_this_version(&host.store, &item.file_name);
            write_ledger(host, storage, item, &info)
        }
        Err(err) => {
            if !unchanged {
                // Put the store back as it was before this pull.
                restore_previous(&host.store, &item.file_name, previous);
            }
            prepared.discard_if_new();
            Err(err)
        }
    }
}

/// What TorchServe is asked to register.
struct Prepared {
    /// A file name of the model store, or an absolute directory path.
    url: String,
    /// The unpacked directory, when this pull created it.
    new_dir: Option<PathBuf>,
    /// The unpacked directory in use, new or cached.
    dir: Option<PathBuf>,
}

impl Prepared {
    fn archive(item: &Planned) -> Self {
        Prepared {
            url: item.file_name.clone(),
            new_dir: None,
            dir: None,
        }
    }

    /// After success: older unpacked versions of the archive go.
    fn keep_only_this_version(&self, store: &ModelStore, file_name: &str) {
        if let Some(dir) = &self.dir {
            store.remove_unpacked(file_name, Some(dir));
        }
    }

    /// After a failed registration: a directory this pull made goes.
    fn discard_if_new(&self) {
        if let Some(dir) = &self.new_dir {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                tracing::warn!("could not remove {}: {e}", dir.display());
            }
        }
    }
}

/// Finishes (or finds) the unpacked directory of this archive version.
async fn prepare_directory(
    context: &PullContext,
    item: &Planned,
    info: &ObjectInfo,
    unchanged: bool,
    unpacker: Option<StreamUnpacker>,
    report: &mut ModelReport,
) -> Result<Prepared> {
    let store = context.host.store.clone();
    let target = store.unpacked_path(&item.file_name, info.size, info.etag.as_deref());
    let url = target
        .to_str()
        .ok_or_else(|| CoreError::Internal(format!("{} is not UTF-8", target.display())))?
        .to_string();
    if unchanged && target.is_dir() {
        drop(unpacker);
        let stats = unpack::count_files(&target);
        report.unpacked = Some(UnpackReport {
            from: UnpackedFrom::Cache,
            files: stats.files,
            bytes: stats.bytes,
            seconds: 0.0,
        });
        return Ok(Prepared {
            url,
            new_dir: None,
            dir: Some(target),
        });
    }

    let started = Instant::now();
    let archive = store.archive_path(&item.file_name);
    let file_name = item.file_name.clone();
    let (store_for_task, target_for_task) = (store.clone(), target.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let (dir, stats, from) = match unpacker {
            Some(stream) => stream.finish(&archive)?,
            None => {
                let dir = store_for_task
                    .create_unpack_temp(&file_name)
                    .map_err(|e| UnpackError::Invalid(e.to_string()))?;
                let stats = unpack::unpack_file(&archive, &dir)?;
                (dir, stats, UnpackedFrom::File)
            }
        };
        dir.commit(&target_for_task)?;
        Ok::<_, UnpackError>((stats, from))
    })
    .await
    .map_err(|e| CoreError::Internal(format!("unpack task: {e}")))?;

    match outcome {
        Ok((stats, from)) => {
            report.unpacked = Some(UnpackReport {
                from,
                files: stats.files,
                bytes: stats.bytes,
                seconds: started.elapsed().as_secs_f64(),
            });
            Ok(Prepared {
                url,
                new_dir: Some(target.clone()),
                dir: Some(target),
            })
        }
        Err(UnpackError::NotZip) => {
            tracing::info!(
                "{} is not a zip archive; TorchServe gets the .mar as it is",
                item.file_name
            );
            Ok(Prepared::archive(item))
        }
        Err(UnpackError::Invalid(reason)) => Err(CoreError::InvalidArchive {
            object: context.storage.object_url(&item.key),
            reason,
        }),
        Err(UnpackError::Io(e)) => Err(store.write_error(&item.file_name, e)),
    }
}

fn write_ledger(
    host: &PullHost,
    storage: &ObjectStore,
    item: &Planned,
    info: &ObjectInfo,
) -> Result<()> {
    host.store.write_ledger(
        &item.file_name,
        &LedgerEntry {
            bucket: storage.bucket().to_string(),
            key: item.key.clone(),
            size: info.size,
            etag: info.etag.clone(),
            model_name: item.model_name.clone(),
            pulled_at_unix: unix_now(),
        },
    )
}

/// Hard-links the archive about to be replaced to a hidden name.
fn keep_previous(store: &ModelStore, file_name: &str) -> Result<Option<PathBuf>> {
    let current = store.archive_path(file_name);
    if !current.exists() {
        return Ok(None);
    }
    let backup = store.backup_path(file_name);
    let _ = std::fs::remove_file(&backup);
    std::fs::hard_link(&current, &backup).map_err(|e| store.write_error(file_name, e))?;
    Ok(Some(backup))
}

/// Puts the previous archive back, or removes the new one if there was none.
fn restore_previous(store: &ModelStore, file_name: &str, previous: Option<PathBuf>) {
    let target = store.archive_path(file_name);
    let result = match previous {
        Some(backup) => std::fs::rename(&backup, &target),
        None => match std::fs::remove_file(&target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
    };
    if let Err(e) = result {
        tracing::error!("could not restore {file_name} in the model store: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(statuses: &[u16]) -> PullReport {
        PullReport {
            bucket: "b".into(),
            prefix: String::new(),
            models: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| ModelReport {
                    model_name: format!("m{i}"),
                    file_name: format!("m{i}.mar"),
                    object: format!("s3://b/m{i}.mar"),
                    status: *s,
                    download: None,
                    unpacked: None,
                    registration: None,
                    registration_message: None,
                    registration_seconds: None,
                    error: (*s >= 300).then(|| ErrorBody {
                        code: *s,
                        kind: "X".into(),
                        message: "failed".into(),
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn overall_status_is_the_most_severe() {
        assert_eq!(report(&[200, 200]).status(), 200);
        assert_eq!(report(&[200, 404]).status(), 404);
        assert_eq!(report(&[404, 502, 200]).status(), 502);
        let body = report(&[200, 502]).body();
        assert_eq!(body["code"], 502);
        assert!(body["message"].as_str().unwrap().contains("1 of 2"));
        assert_eq!(body["models"].as_array().unwrap().len(), 2);
        assert!(report(&[200]).body().get("code").is_none());
    }

    #[test]
    fn prefixes_are_folders() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("models"), "models/");
        assert_eq!(normalize_prefix("/models/"), "models/");
    }

    #[test]
    fn restore_puts_back_previous_archive() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path()).unwrap();
        std::fs::write(store.archive_path("a.mar"), b"old").unwrap();
        let backup = keep_previous(&store, "a.mar").unwrap();
        std::fs::write(dir.path().join("new"), b"new").unwrap();
        std::fs::rename(dir.path().join("new"), store.archive_path("a.mar")).unwrap();
        restore_previous(&store, "a.mar", backup);
        assert_eq!(std::fs::read(store.archive_path("a.mar")).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        restore_previous(&store, "a.mar", None);
        assert!(!store.archive_path("a.mar").exists());
    }
}
