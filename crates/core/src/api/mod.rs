//! The REST API of the plugin, independent of how requests arrive: method,
//! path and query in, status and JSON body out. The JNI bridge, the CLI and
//! tests call [`handle`]; nothing here knows about Java.
//!
//! | method | path                | what                                   |
//! |--------|---------------------|----------------------------------------|
//! | PUT    | /dragonfly          | pull and register                      |
//! | POST   | /dragonfly[/models] | the same, the Java endpoint's call     |
//! | GET    | /dragonfly          | config (secrets masked) and pulls      |
//! | DELETE | /dragonfly          | unregister a model, remove its archive |
//! |        |                     | (or `?job=ID`: cancel a pull job)      |
//! | GET    | /dragonfly/metrics  | Prometheus text of this process's pulls|
//! | PUT    | /dragonfly/preheat  | preheat jobs in the Dragonfly manager  |
//! | GET    | /dragonfly/preheat  | a preheat job's state (`?job=ID`)      |
//!
//! May import: `pull`, `preheat`, `config`, `register`, `model_store`, `error`.

mod delete;
pub mod preheat;
pub mod query;
mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use crate::config::{Config, ConfigLocation};
use crate::error::{CoreError, Result};
use crate::hooks;
use crate::model_store::ModelStore;
use crate::pull::jobs::JobTable;
use crate::pull::metrics::Metrics;
use crate::pull::{pull, PullHost};
use crate::register::ModelRegistry;
use query::Query;

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
    pub content_type: &'static str,
    /// JSON, or a string holding a text body.
    pub body: serde_json::Value,
}

impl ApiResponse {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        ApiResponse {
            status,
            content_type: "application/json",
            body,
        }
    }

    /// Prometheus' text exposition format.
    pub fn text(status: u16, text: String) -> Self {
        ApiResponse {
            status,
            content_type: "text/plain; version=0.0.4",
            body: serde_json::Value::String(text),
        }
    }

    fn ok(body: serde_json::Value) -> Self {
        Self::json(200, body)
    }

    pub fn error(err: &CoreError) -> Self {
        Self::json(err.status(), err.body().json())
    }

    /// The body as sent: JSON text, or the text itself.
    pub fn text_body(&self) -> String {
        match (&self.body, self.content_type) {
            (serde_json::Value::String(text), ct) if ct.starts_with("text/") => text.clone(),
            (body, _) => body.to_string(),
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
    hooks::point("api.handle");
    let route = path.trim_end_matches('/');
    let result = match route_method(method, route, path) {
        Ok(()) => match (route, method) {
            ("/dragonfly/metrics", _) => Ok(ApiResponse::text(200, Metrics::global().render())),
            ("/dragonfly/preheat", "PUT") => preheat::create(query, host).await,
            ("/dragonfly/preheat", _) => preheat::state(query, host).await,
            (_, "PUT" | "POST") => pull_models(query, host, registry).await,
            (_, "GET") => status::status(query, host),
            (_, "DELETE") => delete::delete(query, host, registry).await,
            _ => Err(CoreError::Internal(format!("unrouted method {method}"))),
        },
        Err(err) => Err(err),
    };
    // What a failed pull or a DELETE discards goes before the answer does.
    crate::model_store::background::settle().await;
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

/// The routes and the methods each takes.
fn route_method(method: &str, route: &str, path: &str) -> Result<()> {
    let allowed: &[&str] = match route {
        "/dragonfly" => &["GET", "PUT", "POST", "DELETE"],
        "/dragonfly/models" => &["POST"],
        "/dragonfly/metrics" => &["GET"],
        "/dragonfly/preheat" => &["PUT", "GET"],
        _ => {
            return Err(CoreError::RouteNotFound {
                path: path.to_string(),
            })
        }
    };
    if allowed.contains(&method) {
        Ok(())
    } else {
        Err(CoreError::MethodNotAllowed {
            method: method.to_string(),
            route: route.to_string(),
            allowed: allowed.join(", "),
        })
    }
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
    let parsed = query::parse_pull(query)?;
    let config = load_config(parsed.config.as_deref(), host)?;
    let background = !parsed.request.register.apply(&config.register)?.synchronous;
    let mut pull_host = PullHost::new(ModelStore::open(&host.model_store)?, Some(registry));
    if !background {
        let report = pull(&pull_host, &config, &parsed.request).await?;
        return Ok(ApiResponse::json(report.status(), report.body()));
    }
    // synchronous=false: the whole pull runs on, the call answers now.
    let job = JobTable::global().create(pull_host.tasks.clone());
    let tracked = job.clone();
    pull_host.on_start = Some(Arc::new(move |progress| tracked.track(progress)));
    let running = job.clone();
    let request = parsed.request;
    job.run(tokio::spawn(async move {
        let (status, body) = match pull(&pull_host, &config, &request).await {
            Ok(report) => (report.status(), report.body()),
            Err(err) => (err.status(), err.body().json()),
        };
        running.finish(status, body);
    }));
    let id = &job.id;
    Ok(ApiResponse::json(
        202,
        json!({
            "status": format!("Pull started as job {id}; it continues without this call"),
            "job": id,
            "poll": format!("GET /dragonfly?job={id}"),
            "cancel": format!("DELETE /dragonfly?job={id}"),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_answer_404_and_405_as_errors() {
        let not_found = route_method("GET", "/dragonfly/nope", "/dragonfly/nope").unwrap_err();
        assert_eq!(not_found.body().kind, "ResourceNotFoundException");
        let not_allowed =
            route_method("PUT", "/dragonfly/models", "/dragonfly/models").unwrap_err();
        assert_eq!(not_allowed.status(), 405);
        assert!(not_allowed.to_string().contains("use POST"));
        assert!(route_method("DELETE", "/dragonfly", "/dragonfly/").is_ok());
    }
}
