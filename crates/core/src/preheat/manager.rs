//! The Dragonfly manager's open job API (`/oapi/v1/jobs`, manager v2.5),
//! authenticated with a personal access token of the `job` scope: create a
//! preheat job, read a job. Every call has a deadline; the manager's
//! refusals name the manager and what to fix.

use std::time::Duration;

use serde_json::Value;

use crate::config::{Config, MANAGER_TOKEN_ENV};
use crate::error::{CoreError, Result};
use crate::secret::{MaskedUrl, Secret};

pub struct Manager {
    base: MaskedUrl,
    token: Secret<String>,
    client: reqwest::Client,
}

impl Manager {
    /// The manager the config names (`preheat.manager`, `preheat.token` or
    /// `DRAGONFLY_MANAGER_TOKEN`).
    pub fn from_config(config: &Config) -> Result<Self> {
        let missing = |reason: String| CoreError::Config {
            path: config.source.clone(),
            reason,
        };
        let base = config.preheat.manager.clone().ok_or_else(|| {
            missing(
                "key 'preheat.manager' is needed to preheat: the Dragonfly manager's REST address"
                    .into(),
            )
        })?;
        let token = config.preheat.token.clone().ok_or_else(|| {
            missing(format!(
                "key 'preheat.token' (or {MANAGER_TOKEN_ENV}) is needed to preheat: a personal access token of the manager with the 'job' scope"
            ))
        })?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(config.download.connect_timeout_secs))
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| CoreError::Internal(format!("manager client: {e}")))?;
        Ok(Manager {
            base,
            token,
            client,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.expose().trim_end_matches('/'))
    }

    /// Sends one request; the manager's answer as JSON, or the error it
    /// stands for.
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let shown = self.base.shown();
        let response = request
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| match e.is_timeout() {
                true => CoreError::Timeout(format!("the Dragonfly manager {shown} ({what})")),
                false => CoreError::Manager {
                    addr: shown.clone(),
                    status: 0,
                    message: format!("{what}: unreachable: {e}"),
                },
            })?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["message"]
            .as_str()
            .or(body["errors"].as_str())
            .unwrap_or("")
            .to_string();
        match status {
            200..=299 => Ok(body),
            404 => Err(CoreError::NotFound(format!(
                "the Dragonfly manager {shown} has no such job ({what})"
            ))),
            401 | 403 => Err(CoreError::Manager {
                addr: shown,
                status,
                message: format!(
                    "{what}: the token was refused ({message}); preheat.token must be an active personal access token with the 'job' scope"
                ),
            }),
            _ => Err(CoreError::Manager {
                addr: shown,
                status,
                message: format!("{what}: {message}"),
            }),
        }
    }

    /// Creates a job; its id.
    pub async fn create_job(&self, job: &Value) -> Result<u64> {
        let body = self
            .send(
                self.client.post(self.url("/oapi/v1/jobs")).json(job),
                "creating a preheat job",
            )
            .await?;
        body["id"].as_u64().ok_or_else(|| CoreError::Manager {
            addr: self.base.shown(),
            status: 200,
            message: "the created job has no id".into(),
        })
    }

    /// The job as the manager keeps it.
    pub async fn job(&self, id: u64) -> Result<Value> {
        self.send(
            self.client.get(self.url(&format!("/oapi/v1/jobs/{id}"))),
            &format!("reading job {id}"),
        )
        .await
    }
}
