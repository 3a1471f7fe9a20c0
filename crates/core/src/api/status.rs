//! `GET /dragonfly[?model=x]`: the effective config (secrets masked), the
//! pulls in flight and done, and the archives the ledger knows.

use serde_json::json;

use super::query::{Params, Query};
use super::{load_config, ApiResponse, HostContext};
use crate::error::{CoreError, Result};
use crate::model_store::ModelStore;
use crate::pull::jobs::JobTable;
use crate::pull::progress::PullTable;

pub(super) fn status(query: &Query, host: &HostContext) -> Result<ApiResponse> {
    let q = Params::new(query, &[&["config", "model", "job"]])?;
    if let Some(job) = q.text("job")? {
        return Ok(ApiResponse::ok(JobTable::global().get(&job)?.snapshot()));
    }
    let requested_config = q.text("config")?;
    let model = q.text("model")?;
    let config = match load_config(requested_config.as_deref(), host) {
        Ok(config) => json!(config.redacted()),
        // A bad config named in the query is the caller's error; a missing
        // default config should not hide the pulls.
        Err(err) if requested_config.is_some() => return Err(err),
        Err(err) => json!({"error": err.body().json()}),
    };
    let store = ModelStore::open(&host.model_store)?;
    let pulls = PullTable::global().snapshot();
    let archives: Vec<serde_json::Value> = store
        .ledger_entries()
        .into_iter()
        .map(|(file, entry)| json!({"file_name": file, "pulled": entry}))
        .collect();
    let Some(model) = model else {
        return Ok(ApiResponse::ok(json!({
            "model_store": host.model_store,
            "config": config,
            "pulls": pulls,
            "archives": archives,
        })));
    };
    let matches = |name: &str, file: &str| name == model || file == model;
    let pulls: Vec<_> = pulls
        .into_iter()
        .filter(|p| matches(&p.model_name, &p.file_name))
        .collect();
    let archive = archives.into_iter().find(|a| {
        let names = a["pulled"]["model_names"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        a["file_name"] == model.as_str() || names.iter().any(|n| n == model.as_str())
    });
    if pulls.is_empty() && archive.is_none() {
        return Err(CoreError::NotFound(format!(
            "no pull of model {model:?} is known"
        )));
    }
    Ok(ApiResponse::ok(json!({
        "model": model,
        "pulls": pulls,
        "archive": archive,
    })))
}
