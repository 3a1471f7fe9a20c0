//! The REST API of the plugin, independent of how requests arrive: method,
//! path and query in, status and JSON body out. The JNI bridge and tests
//! call [`handle`]; nothing here knows about Java.
//!
//! | method | path                | what                                   |
//! |--------|---------------------|----------------------------------------|
//! | PUT    | /dragonfly          | pull and register                      |
//! | POST   | /dragonfly[/models] | the same, the Java endpoint's call     |
//! | GET    | /dragonfly          | config (secrets masked) and pulls      |
//! | DELETE | /dragonfly          | unregister a model, remove its archive |

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use crate::config::{Config, ConfigLocation};
use crate::error::{CoreError, Result};
use crate::progress::PullTable;
use crate::pull::{pull, PullHost};
use crate::registry::ModelRegistry;
use crate::request::{Params, PullParams, Query};
use crate::store::{validate_file_name, ModelStore};

/// What the host process tells about itself.
#[derive(Debug, Clone, Default)]
pub struct HostContext {
    pub model_store: PathBuf,
    /// TorchServe's config.properties (only `dragonfly_endpoint_*` are used).
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

impl ApiResponse {
    fn ok(body: serde_json::Value) -> Self {
        ApiResponse { status: 200, body }
    }

    pub fn error(err: &CoreError) -> Self {
        ApiResponse {
            status: err.status(),
            body: serde_json::to_value(err.body()).unwrap_or_default(),
        }
    }

    fn plain(status: u16, kind: &str, message: String) -> Self {
        ApiResponse {
            status,
            body: json!({"code": status, "type": kind, "message": message}),
        }
    }
}

pub async fn handle(
    method: &str,
    path: &str,
    query: &Query,
    host: &HostContext,
    registry: Arc<dyn ModelRegistry>,
) -> ApiResponse {
    let route = path.trim_end_matches('/');
    let allowed: &[&str] = match route {
        "/dragonfly" => &["GET", "PUT", "POST", "DELETE"],
        "/dragonfly/models" => &["POST"],
        _ => {
            return ApiResponse::plain(
                404,
                "ResourceNotFoundException",
                format!("no such resource: {path}; see GET /dragonfly"),
            )
        }
    };
    if !allowed.contains(&method) {
        return ApiResponse::plain(
            405,
            "MethodNotAllowedException",
            format!(
                "{method} is not supported on {route}; use {}",
                allowed.join(", ")
            ),
        );
    }
    let result = match method {
        "PUT" | "POST" => pull_models(query, host, registry).await,
        "GET" => status(query, host),
        "DELETE" => delete_model(query, host, registry).await,
        _ => Err(CoreError::Internal(format!("unrouted method {method}"))),
    };
    result.unwrap_or_else(|err| {
        let response = ApiResponse::error(&err);
        if response.status >= 500 {
            tracing::error!("{method} {route}: {err}");
        } else {
            tracing::warn!("{method} {route}: {err}");
        }
        response
    })
}

fn load_config(requested: Option<&str>, host: &HostContext) -> Result<Config> {
    let location = ConfigLocation::from_env(&host.properties);
    let path = location.resolve(requested)?;
    Config::load(&path)
}

async fn pull_models(
    query: &Query,
    host: &HostContext,
    registry: Arc<dyn ModelRegistry>,
) -> Result<ApiResponse> {
    let params = PullParams::parse(query)?;
    let config = load_config(params.config.as_deref(), host)?;
    let pull_host = PullHost {
        store: ModelStore::open(&host.model_store)?,
        registry: Some(registry),
        table: PullTable::global(),
        on_start: None,
    };
    let report = pull(&pull_host, &config, &params).await?;
    Ok(ApiResponse {
        status: report.status(),
        body: report.body(),
    })
}

fn status(query: &Query, host: &HostContext) -> Result<ApiResponse> {
    let q = Params::new(query, &[&["config", "model"]])?;
    let requested_config = q.text("config")?;
    let model = q.text("model")?;
    let config = match load_config(requested_config.as_deref(), host) {
        Ok(config) => json!(config.redacted()),
        // A bad config named in the query is the caller's error; a missing
        // default config should not hide the pulls.
        Err(err) if requested_config.is_some() => return Err(err),
        Err(err) => json!({"error": err.body()}),
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
        matches(
            a["pulled"]["model_name"].as_str().unwrap_or(""),
            a["file_name"].as_str().unwrap_or(""),
        )
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

async fn delete_model(
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
    crate::request::validate_model_name(&model_name)?;

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
