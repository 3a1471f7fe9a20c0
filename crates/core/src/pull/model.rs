//! One model of a pull, step by step: stat, the conflict check, the
//! download into staging, the commit, the unpacked directory, registration
//! and the ledger. The store's replace transaction is opened first and
//! finished last, so any failure in between leaves the store as it was.

use std::sync::Arc;
use std::time::Instant;

use super::plan::Planned;
use super::prepare::{self, Prepared};
use super::progress::{Phase, Progress};
use super::report::{DownloadReport, ModelReport};
use super::PullContext;
use crate::config::RegisterAs;
use crate::error::{CoreError, Result};
use crate::format::zip::StreamUnpacker;
use crate::hooks;
use crate::model_store::{unix_now, LedgerEntry, Replace, TempFile};
use crate::register::RegisterRequest;
use crate::source::ObjectInfo;
use crate::transfer::writer::{BlockTap, WriteTarget};
use crate::transfer::{Destination, FetchTarget};

pub async fn pull_one(context: &PullContext, item: Planned) -> ModelReport {
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
    let _lock = host.store.lock(&item.file_name).await;
    match run(context, &item, &progress, &mut report).await {
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

async fn run(
    context: &PullContext,
    item: &Planned,
    progress: &Progress,
    report: &mut ModelReport,
) -> Result<()> {
    let host = &context.host;
    let info = match &item.info {
        Some(info) => info.clone(),
        None => context.source.stat(&item.key).await?,
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

    // Dropped on any error below: the store goes back to how it was.
    let mut tx = host.store.replace(&item.file_name);
    let mut unpacker = None;
    if unchanged {
        progress.set_bytes(info.size);
        report.download = Some(DownloadReport::unchanged(info.size));
    } else {
        let download = download(context, item, &info, progress, &mut tx, &mut unpacker).await?;
        report.download = Some(download);
        hooks::point("pull.archive_committed");
    }

    let prepared = match context.register_as {
        RegisterAs::Directory => {
            prepare::directory(context, item, &info, unchanged, unpacker, &mut tx, report).await?
        }
        RegisterAs::Mar => Prepared::archive(item),
    };
    hooks::point("pull.prepared");
    let entry = LedgerEntry {
        bucket: context.source.bucket().to_string(),
        key: item.key.clone(),
        size: info.size,
        etag: info.etag.clone(),
        model_name: item.model_name.clone(),
        pulled_at_unix: unix_now(),
    };
    let registry = match (&host.registry, registered) {
        (Some(registry), false) => registry,
        (Some(_), true) | (None, _) => {
            if registered {
                report.registration = Some("already_registered");
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
    hooks::point("pull.registered");
    report.registration = Some("registered");
    report.registration_message = Some(message);
    report.registration_seconds = Some(started.elapsed().as_secs_f64());
    tx.finish(prepared.dir.as_deref(), &entry)?;
    hooks::point("pull.ledger_written");
    Ok(())
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
    let presigned = context.source.presign(&item.key).await?;
    let target = FetchTarget {
        object: context.source.object_url(&item.key),
        url: presigned.url,
        expires_at: presigned.expires_at,
        size: info.size,
        md5: info.md5(),
        version: info.etag.clone(),
    };
    let tap: Option<Box<dyn BlockTap>> = match context.register_as {
        RegisterAs::Directory => {
            let (stream, feed) = prepare::stream_unpacker(tx)?;
            *unpacker = Some(stream);
            Some(feed)
        }
        RegisterAs::Mar => None,
    };
    let store = tx.store().clone();
    let mut staged = tx.stage(context.fetcher.wants_link())?;
    hooks::point("pull.staged");
    let file = staged
        .file
        .file()
        .and_then(|f| f.try_clone())
        .map_err(|e| store.write_error(&item.file_name, e))?;
    let dest = Destination {
        file: WriteTarget {
            file,
            dir: store.dir().to_path_buf(),
            name: item.file_name.clone(),
        },
        link: staged.link.as_ref().map(TempFile::path),
    };
    let started = Instant::now();
    let fetched = context
        .fetcher
        .fetch(&target, dest, progress.counter(), tap)
        .await?;
    tx.commit_archive(staged.into_result(fetched.hard_linked))
        .await?;
    Ok(DownloadReport::downloaded(
        &fetched,
        started.elapsed().as_secs_f64(),
    ))
}
