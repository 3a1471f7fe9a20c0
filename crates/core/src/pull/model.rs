//! One model of a pull, step by step, under the file's lock: repair of an
//! earlier crash, stat, the identity checks (one name, one version; one
//! version, many names), the download into staging, the commit, the
//! unpacked directory, registration and the ledger. The store's replace
//! transaction is opened first and finished last, so any failure (or the
//! total deadline) in between leaves the store as it was.

use std::sync::Arc;
use std::time::Instant;

use super::directory;
use super::metrics::Metrics;
use super::object;
use super::plan::Planned;
use super::prepare::{self, Prepared};
use super::progress::{Phase, Progress};
use super::report::{DownloadReport, ModelReport};
use super::PullContext;
use crate::config::RegisterAs;
use crate::error::{CoreError, Result};
use crate::format::StreamUnpacker;
use crate::hooks;
use crate::model_store::{unix_now, LedgerEntry, Replace};
use crate::register::{validate_model_name, RegisterRequest};
use crate::source::ObjectInfo;
use crate::transfer::writer::BlockTap;

pub async fn pull_one(context: &PullContext, item: Planned) -> ModelReport {
    let _in_flight = Metrics::global().start();
    let host = &context.host;
    let object = context.source.object_url(&item.key);
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
    let mut report = ModelReport::new(&item.model_name, &item.file_name, &object);
    let started = Instant::now();
    let locked = async {
        let _lock = host.store.lock(&item.file_name, context.lock_wait).await?;
        host.store.recover(&item.file_name)?;
        run(context, &item, &progress, &mut report).await
    };
    let outcome = match context.total_timeout {
        // Dropping the pull on the deadline rolls its transaction back.
        Some(limit) => tokio::time::timeout(limit, locked)
            .await
            .unwrap_or_else(|_| {
                Err(CoreError::Timeout(format!(
                    "the pull of {object} took longer than {} s (download.total_timeout_secs); the model store is as it was",
                    limit.as_secs()
                )))
            }),
        None => locked.await,
    };
    report.seconds = started.elapsed().as_secs_f64();
    match outcome {
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
    Metrics::global().record(&report);
    report
}

async fn run(
    context: &PullContext,
    item: &Planned,
    progress: &Progress,
    report: &mut ModelReport,
) -> Result<()> {
    let host = &context.host;
    // Refused before anything is downloaded: TorchServe would refuse it.
    validate_model_name(&item.model_name).map_err(|_| {
        CoreError::invalid(
            "model_name",
            format!(
                "{:?} gives the model name {:?}, which TorchServe does not accept (letters, digits, '_', '-', '.', no '..'); pass model_name=",
                item.file_name, item.model_name
            ),
        )
    })?;
    let mut info = match &item.info {
        Some(info) => info.clone(),
        None => context.source.stat(&item.key).await?,
    };
    progress.set_total(info.size);
    let unchanged = match &item.directory {
        Some(_) => host
            .store
            .is_unchanged_dir(&item.file_name, info.size, info.etag.as_deref()),
        None => host
            .store
            .is_unchanged(&item.file_name, info.size, info.etag.as_deref()),
    };
    let ledger = host.store.ledger_entry(&item.file_name);
    let names = recorded_names(context, ledger.as_ref(), &item.model_name).await?;
    let registered = match &host.registry {
        Some(registry) => registry.is_registered(&item.model_name).await?,
        None => false,
    };
    let ours = unchanged
        && ledger
            .as_ref()
            .is_some_and(|l| l.model_names.contains(&item.model_name));
    if registered && !ours {
        return Err(CoreError::Conflict(format!(
            "model {:?} is already registered, but not from this version of {} pulled by this plugin; unregister it first (DELETE /dragonfly?model={})",
            item.model_name, item.file_name, item.model_name
        )));
    }
    if !unchanged && !names.is_empty() {
        return Err(CoreError::Conflict(format!(
            "{} serves model(s) {names:?} from its current version; a new version would replace their files: unregister them first (DELETE /dragonfly?model=...)",
            item.file_name
        )));
    }

    // Dropped on any error below: the store goes back to how it was.
    let mut tx = host.store.replace(&item.file_name);
    let prepared = match &item.directory {
        Some(model) => {
            directory::prepare(
                context, model, item, &info, unchanged, progress, &mut tx, report,
            )
            .await?
        }
        None => {
            archive(
                context, item, &mut info, unchanged, progress, &mut tx, report,
            )
            .await?
        }
    };
    hooks::point("pull.prepared");
    let mut entry = LedgerEntry {
        bucket: context.source.bucket().to_string(),
        key: item.key.clone(),
        size: info.size,
        etag: info.etag.clone(),
        model_names: names,
        pulled_at_unix: unix_now(),
    };
    let registry = match (&host.registry, registered) {
        (Some(registry), false) => registry,
        (Some(_), true) | (None, _) => {
            if registered {
                report.registration = Some("already_registered");
                entry.model_names.push(item.model_name.clone());
            }
            return tx.finish(prepared.dir.as_deref(), &entry);
        }
    };
    progress.set_phase(Phase::Registering);
    let request = RegisterRequest {
        url: prepared.url.clone(),
        model_name: item.model_name.clone(),
        options: context.options.clone(),
    };
    let started = Instant::now();
    let message = registry.register(&request).await?;
    entry.model_names.push(item.model_name.clone());
    tx.registered(&entry)?;
    hooks::point("pull.registered");
    report.registration = Some("registered");
    report.registration_message = Some(message);
    report.registration_seconds = Some(started.elapsed().as_secs_f64());
    tx.finish(prepared.dir.as_deref(), &entry)?;
    hooks::point("pull.ledger_written");
    Ok(())
}

/// An archive: downloaded (unless unchanged) and committed, then turned
/// into what TorchServe registers.
async fn archive(
    context: &PullContext,
    item: &Planned,
    info: &mut ObjectInfo,
    unchanged: bool,
    progress: &Progress,
    tx: &mut Replace,
    report: &mut ModelReport,
) -> Result<Prepared> {
    let mut unpacker = None;
    if unchanged {
        progress.set_bytes(info.size);
        report.download = Some(DownloadReport::unchanged(info.size));
    } else {
        if item.info.is_some() {
            // A listing says nothing of checksums or encryption: the object
            // itself is asked what its content's digest is.
            *info = context.source.stat(&item.key).await?;
            progress.set_total(info.size);
        }
        let download = download(context, item, info, progress, tx, &mut unpacker).await?;
        report.download = Some(download);
        hooks::point("pull.archive_committed");
    }
    match context.register_as {
        RegisterAs::Directory => {
            prepare::directory(context, item, info, unchanged, unpacker, tx, report).await
        }
        RegisterAs::Mar => Ok(Prepared::archive(item)),
    }
}

/// The names the ledger records as registered from the archive's current
/// version that still are. With a registry each is checked (TorchServe's
/// own unregister leaves the ledger behind) and `name` itself is left to
/// the caller; without one (the CLI only downloading) the ledger's word is
/// taken for every name.
async fn recorded_names(
    context: &PullContext,
    ledger: Option<&LedgerEntry>,
    name: &str,
) -> Result<Vec<String>> {
    let Some(ledger) = ledger else {
        return Ok(Vec::new());
    };
    let Some(registry) = &context.host.registry else {
        return Ok(ledger.model_names.clone());
    };
    let mut names = Vec::new();
    for other in ledger.model_names.iter().filter(|n| *n != name) {
        if registry.is_registered(other).await? {
            names.push(other.clone());
        }
    }
    Ok(names)
}

/// Downloads the object into staging and commits it as the archive; with
/// `register_as: directory` it is unpacked as it streams in.
async fn download(
    context: &PullContext,
    item: &Planned,
    info: &ObjectInfo,
    progress: &Progress,
    tx: &mut Replace,
    unpacker: &mut Option<StreamUnpacker>,
) -> Result<DownloadReport> {
    progress.set_phase(Phase::Downloading);
    let tap: Option<Box<dyn BlockTap>> = match context.register_as {
        RegisterAs::Directory => {
            let (stream, feed) = prepare::stream_unpacker(context, tx, item)?;
            *unpacker = Some(stream);
            Some(feed)
        }
        RegisterAs::Mar => None,
    };
    let started = Instant::now();
    let (file, fetched) = object::fetch_staged(
        context,
        &item.key,
        info,
        tx,
        &item.file_name,
        progress.counter(),
        tap,
    )
    .await?;
    tx.commit_archive(file).await?;
    Ok(DownloadReport::downloaded(
        &fetched,
        started.elapsed().as_secs_f64(),
    ))
}
