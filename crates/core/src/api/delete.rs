//! `DELETE /dragonfly?model=x`: unregister a model and remove the archive
//! (and unpacked copies) this plugin pulled for it, once no other model
//! registered from the same version remains. `model` may be a model name
//! or an archive's file name (then every model registered from it goes).
//! It takes the archive's lock, so it never races a pull of it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::query::{Params, Query};
use super::{ApiResponse, HostContext};
use crate::config::DownloadConfig;
use crate::error::{CoreError, Result};
use crate::model_store::{default_model_name, validate_file_name, ModelStore};
use crate::pull::jobs::JobTable;
use crate::pull::progress::{Phase, PullTable};
use crate::register::{validate_model_name, ModelRegistry};

pub(super) async fn delete(
    query: &Query,
    host: &HostContext,
    registry: Arc<dyn ModelRegistry>,
) -> Result<ApiResponse> {
    let q = Params::new(query, &[&["model", "job"]])?;
    let (model, job) = (q.text("model")?, q.text("job")?);
    match (model, job) {
        (Some(_), Some(_)) => Err(CoreError::invalid(
            "job",
            "give either 'model' or 'job', not both",
        )),
        (None, Some(job)) => {
            let job = JobTable::global().get(&job)?;
            job.cancel().await?;
            Ok(ApiResponse::ok(job.snapshot()))
        }
        (Some(model), None) => delete_model(model, host, registry).await,
        (None, None) => Err(CoreError::invalid(
            "model",
            "missing: name the model to remove (or the job to cancel: job=)",
        )),
    }
}

async fn delete_model(
    model: String,
    host: &HostContext,
    registry: Arc<dyn ModelRegistry>,
) -> Result<ApiResponse> {
    let store = ModelStore::open(&host.model_store)?;
    let Some((file, by_file)) = archive_of(&store, &model) else {
        // Nothing this plugin pulled: only unregister, as TorchServe would.
        let name = if model.ends_with(".mar") {
            validate_file_name(&model)?;
            default_model_name(&model)
        } else {
            model.clone()
        };
        validate_model_name(&name)?;
        let message = registry.unregister(&name).await?;
        return Ok(answer(&[name], vec![message], None));
    };

    // Waits for a pull of the same archive (in any process) to end, and
    // repairs what a crashed one left, before deciding anything.
    let wait = Duration::from_secs(DownloadConfig::default().lock_wait_secs);
    let _lock = store.lock(&file, wait).await?;
    store.recover(&file)?;
    let Some(mut entry) = store.ledger_entry(&file) else {
        // The pull it waited for failed, or registered nothing here.
        let name = if by_file {
            default_model_name(&file)
        } else {
            model
        };
        let message = registry.unregister(&name).await?;
        return Ok(answer(&[name], vec![message], None));
    };
    // Decided under the lock: the pull it may have waited for is done.
    let by_file = by_file && !entry.model_names.contains(&model);
    let names = match (by_file, entry.model_names.is_empty()) {
        (true, false) => entry.model_names.clone(),
        (true, true) => vec![default_model_name(&file)],
        (false, _) => vec![model.clone()],
    };
    let mut messages = Vec::new();
    for name in &names {
        match registry.unregister(name).await {
            Ok(message) => messages.push(message),
            // Already gone from TorchServe (its own API): files still go.
            Err(CoreError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    entry.model_names.retain(|n| !names.contains(n));
    // Files go only when no other model registered from them remains.
    let removed = if entry.model_names.is_empty() {
        store.remove_archive(&file)?;
        Some(file)
    } else {
        store.write_ledger(&file, &entry)?;
        None
    };
    Ok(answer(&names, messages, removed))
}

/// The archive a DELETE of `model` is about, and whether `model` named the
/// archive itself: from the ledger (a model name, or a file name), else a
/// pull in flight in this process, else an archive of that name or of the
/// model's default file name in the store (a pull elsewhere may hold it).
fn archive_of(store: &ModelStore, model: &str) -> Option<(String, bool)> {
    if let Some((file, _)) = store.ledger_of_model(model) {
        return Some((file, false));
    }
    if store.ledger_entry(model).is_some() {
        return Some((model.to_string(), true));
    }
    let in_flight = PullTable::global()
        .snapshot()
        .into_iter()
        .find(|p| p.model_name == model && !matches!(p.phase, Phase::Done | Phase::Failed));
    if let Some(pull) = in_flight {
        return Some((pull.file_name, false));
    }
    [(model.to_string(), true), (format!("{model}.mar"), false)]
        .into_iter()
        .find(|(file, _)| validate_file_name(file).is_ok() && store.archive_path(file).is_file())
}

fn answer(names: &[String], messages: Vec<String>, removed: Option<String>) -> ApiResponse {
    let first = names.first().cloned().unwrap_or_default();
    ApiResponse::ok(json!({
        "status": format!("model(s) {names:?} removed"),
        "model_name": first,
        "model_names": names,
        "unregistered": !messages.is_empty(),
        "registry_message": messages.first(),
        "archive_removed": removed,
    }))
}
