//! `DELETE /dragonfly?model=x`: unregister a model and remove the archive
//! (and unpacked copies) this plugin pulled for it.

use std::sync::Arc;

use serde_json::json;

use super::query::{Params, Query};
use super::{ApiResponse, HostContext};
use crate::error::{CoreError, Result};
use crate::model_store::{validate_file_name, ModelStore};
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
    // `model` may be the model name or the archive's file name.
    let pulled = store
        .ledger_entries()
        .into_iter()
        .find(|(file, entry)| entry.model_name == model || *file == model);
    let model_name = match &pulled {
        Some((_, entry)) => entry.model_name.clone(),
        None => model.trim_end_matches(".mar").to_string(),
    };
    validate_model_name(&model_name)?;

    let unregistered = match registry.unregister(&model_name).await {
        Ok(message) => Some(message),
        Err(CoreError::NotFound(_)) if pulled.is_some() => None,
        Err(err) => return Err(err),
    };
    let mut removed = None;
    if let Some((file, _)) = &pulled {
        validate_file_name(file)?;
        store.remove_archive(file)?;
        removed = Some(file.clone());
    }
    Ok(ApiResponse::ok(json!({
        "status": format!("model {model_name:?} removed"),
        "model_name": model_name,
        "unregistered": unregistered.is_some(),
        "registry_message": unregistered,
        "archive_removed": removed,
    })))
}
