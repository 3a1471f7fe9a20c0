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
use crate::register::{validate_model_name, ModelRegistry};

pub(super) async fn delete_model(
    query: &Query,
    host: &HostContext,
    registry: Arc<dyn ModelRegistry>,
) -> Result<ApiResponse> {
    let q = Params::new(query, &[&["model"]])?;
    let model = q
        .text("model")?
        .ok_or_else(|| CoreError::invalid("model", "missing: name the model to remove"))?;
    let store = ModelStore::open(&host.model_store)?;
    // `model` names a model the ledger knows, or the archive of models.
    let (file, by_file) = match store.ledger_of_model(&model) {
        Some((file, _)) => (Some(file), false),
        None if store.ledger_entry(&model).is_some() => (Some(model.clone()), true),
        None => (None, false),
    };
    let Some(file) = file else {
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
        return Err(CoreError::NotFound(format!(
            "{file} was removed while this DELETE waited"
        )));
    };
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
