//! Preheat: before a rollout, asks the Dragonfly manager to have peers
//! download the exact tasks the nodes' pulls will use, so the pulls are
//! served by peers and the object store sends nothing more. The task must
//! be the pull's to the byte: the same URL (presigned by the same store;
//! Dragonfly leaves the signing parameters out of the task ID), the same
//! tag with the object's version, application and piece length, all
//! taken from the same headers the pull sends ([`crate::transfer::dragonfly`]).
//! One job per object (each has its own tag). [`manager`] is the manager's
//! job API.
//!
//! May import: `config`, `source`, `transfer::dragonfly`, `pull::plan`, `pull::uri`,
//! `error`, `secret`.

pub mod manager;

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Config, PreheatScope};
use crate::error::{CoreError, Result};
use crate::pull::plan::{self, Selection};
use crate::pull::PullRequest;
use crate::source::{self, ObjectSource};
use crate::transfer::dragonfly::{header, peer_headers, with_version_tag};
use manager::Manager;

/// What a preheat request asks; unset fields come from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreheatRequest {
    pub model: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub scope: Option<PreheatScope>,
    pub count: Option<u32>,
    pub percentage: Option<u32>,
    pub ips: Option<Vec<String>>,
}

/// One object's preheat job.
#[derive(Debug, Clone, Serialize)]
pub struct PreheatJob {
    pub model_name: String,
    /// `s3://bucket/key` (never the presigned URL).
    pub object: String,
    pub job: u64,
    pub poll: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreheatReport {
    pub bucket: String,
    pub prefix: String,
    pub jobs: Vec<PreheatJob>,
}

/// Creates one preheat job per object the request selects (every file of
/// a model directory).
pub async fn preheat(config: &Config, request: &PreheatRequest) -> Result<PreheatReport> {
    let manager = Manager::from_config(config)?;
    let as_pull = PullRequest {
        model: request.model.clone(),
        bucket: request.bucket.clone(),
        prefix: request.prefix.clone(),
        ..PullRequest::default()
    };
    let (bucket, prefix, selection): (String, String, Selection) =
        crate::pull::uri::target(&as_pull, config)?;
    let ca_pem = config.ca_cert_pem()?;
    let source = source::connect(&config.object_storage, &bucket, ca_pem.as_deref()).await?;
    let limits = crate::format::Limits {
        max_bytes: config.unpack.max_bytes,
        max_entries: config.unpack.max_entries,
    };
    let planned = plan::plan(&*source, &prefix, &selection, None, limits).await?;
    let headers = peer_headers(config, source.signing_params())?;
    let mut jobs = Vec::new();
    for item in planned {
        let keys: Vec<String> = match &item.directory {
            Some(model) => model.files.iter().map(|f| f.key.clone()).collect(),
            None => vec![item.key.clone()],
        };
        for key in keys {
            let body = job_body(config, request, &*source, &headers, &key).await?;
            let id = manager.create_job(&body).await?;
            tracing::info!("preheat job {id} for {}", source.object_url(&key));
            jobs.push(PreheatJob {
                model_name: item.model_name.clone(),
                object: source.object_url(&key),
                job: id,
                poll: format!("GET /dragonfly/preheat?job={id}"),
            });
        }
    }
    Ok(PreheatReport {
        bucket,
        prefix,
        jobs,
    })
}

/// The manager's job for `key`: the URL, tag, application and piece
/// length the pull would send, the filter list in the manager's form
/// (`&`-separated), the scope.
async fn job_body(
    config: &Config,
    request: &PreheatRequest,
    source: &dyn ObjectSource,
    headers: &HeaderMap,
    key: &str,
) -> Result<Value> {
    let info = source.stat(key).await?;
    let presigned = source.presign(key).await?;
    let headers = with_version_tag(headers.clone(), info.etag.as_deref());
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut origin_headers = serde_json::Map::new();
    for (name, value) in &headers {
        if !name.as_str().starts_with("x-dragonfly-") {
            if let Ok(value) = value.to_str() {
                origin_headers.insert(name.as_str().to_string(), json!(value));
            }
        }
    }
    let preheat = &config.preheat;
    let mut args = json!({
        "type": "file",
        "url": presigned.url.expose(),
        "tag": text(header::TAG).unwrap_or_default(),
        "application": text(header::APPLICATION).unwrap_or_default(),
        "filtered_query_params": text(header::FILTERED_QUERY_PARAMS).unwrap_or_default().replace(',', "&"),
        "headers": origin_headers,
        "scope": request.scope.unwrap_or(preheat.scope),
        "timeout": Duration::from_secs(preheat.timeout_secs).as_nanos() as u64,
    });
    if let Some(length) = text(header::PIECE_LENGTH) {
        let bytes = length
            .parse::<bytesize::ByteSize>()
            .map_err(|_| CoreError::Config {
                path: config.source.clone(),
                reason: format!(
                    "key 'header.{}': {length:?} is not a size",
                    header::PIECE_LENGTH
                ),
            })?;
        args["piece_length"] = json!(bytes.as_u64());
    }
    let ips = request.ips.clone().unwrap_or_else(|| preheat.ips.clone());
    if !ips.is_empty() {
        args["ips"] = json!(ips);
    }
    if let Some(count) = request.count.or(preheat.count) {
        args["count"] = json!(count);
    }
    if let Some(percentage) = request.percentage.or(preheat.percentage) {
        args["percentage"] = json!(percentage);
    }
    Ok(json!({
        "type": "preheat",
        "bio": format!("dragonfly-endpoint: {}", source.object_url(key)),
        "scheduler_cluster_ids": preheat.scheduler_cluster_ids,
        "args": args,
    }))
}

/// A job's state as the manager last recorded it (`PENDING`, `SUCCESS`,
/// `FAILURE`; it checks at 0, 30, 90 s and so on, so it lags), and the
/// hosts that have the task and that failed. The stored URL is left out:
/// it carries a signature.
pub async fn job_state(config: &Config, id: u64) -> Result<Value> {
    let manager = Manager::from_config(config)?;
    let job = manager.job(id).await?;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for state in job["result"]["job_states"].as_array().into_iter().flatten() {
        for result in state["results"].as_array().into_iter().flatten() {
            for task in result["success_tasks"].as_array().into_iter().flatten() {
                done.push(json!({"hostname": task["hostname"], "ip": task["ip"]}));
            }
            for task in result["failure_tasks"].as_array().into_iter().flatten() {
                failed.push(json!({"hostname": task["hostname"], "ip": task["ip"], "description": task["description"]}));
            }
        }
    }
    Ok(json!({
        "job": id,
        "state": job["state"],
        "scope": job["args"]["scope"],
        "bio": job["bio"],
        "created_at": job["created_at"],
        "updated_at": job["updated_at"],
        "preheated_on": done,
        "failed_on": failed,
    }))
}
