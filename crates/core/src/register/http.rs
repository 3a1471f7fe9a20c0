//! TorchServe's management REST API as a [`ModelRegistry`] (the CLI's
//! registry; needs TorchServe's model API on).

use std::time::Duration;

use super::outcome::{self, Answer};
use super::{ModelRegistry, RegisterRequest};
use crate::error::{describe_http_error, CoreError, Result};
use crate::BoxFuture;

pub struct ManagementApi {
    base: url::Url,
    token: Option<String>,
    client: reqwest::Client,
}

impl ManagementApi {
    pub fn new(base: &str, token: Option<String>) -> Result<Self> {
        let base = url::Url::parse(base)
            .map_err(|e| CoreError::invalid("management", format!("{base:?}: {e}")))?;
        let client = reqwest::Client::builder()
            .no_proxy()
            // Synchronous registration waits for workers to start.
            .timeout(Duration::from_secs(3600))
            .build()
            .map_err(|e| CoreError::Internal(describe_http_error(e)))?;
        Ok(ManagementApi {
            base,
            token,
            client,
        })
    }

    fn url(&self, segments: &[&str]) -> Result<url::Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| CoreError::invalid("management", "not a base URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn send(&self, model: &str, request: reqwest::RequestBuilder) -> Result<Answer> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| CoreError::Registration {
            model: model.to_string(),
            status: 502,
            message: format!("TorchServe unreachable: {}", describe_http_error(e)),
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok(answer(status, &body))
    }
}

/// TorchServe's JSON answer: its `message` (or `status`) and `type`.
fn answer(status: u16, body: &str) -> Answer {
    let json = serde_json::from_str::<serde_json::Value>(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(|m| m.as_str())
            .map(str::to_string)
    };
    Answer {
        status: Some(status),
        exception: field("type"),
        message: field("message")
            .or_else(|| field("status"))
            .unwrap_or_else(|| body.trim().to_string()),
    }
}

impl ModelRegistry for ManagementApi {
    fn register<'a>(&'a self, request: &'a RegisterRequest) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let mut url = self.url(&["models"])?;
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("url", &request.url)
                    .append_pair("model_name", &request.model_name);
                for (name, value) in request.options.pairs() {
                    query.append_pair(name, &value);
                }
            }
            let answer = self
                .send(&request.model_name, self.client.post(url))
                .await?;
            outcome::registered(&request.model_name, answer)
        })
    }

    fn unregister<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let url = self.url(&["models", model_name])?;
            let answer = self.send(model_name, self.client.delete(url)).await?;
            outcome::unregistered(model_name, answer)
        })
    }

    fn is_registered<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let url = self.url(&["models", model_name])?;
            let answer = self.send(model_name, self.client.get(url)).await?;
            outcome::is_registered(model_name, answer)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchserve_answers_are_read() {
        let conflict = answer(
            409,
            r#"{"code": 409, "type": "ConflictStatusException", "message": "Model version 1.0 is already registered."}"#,
        );
        assert_eq!(conflict.message, "Model version 1.0 is already registered.");
        assert_eq!(
            conflict.exception.as_deref(),
            Some("ConflictStatusException")
        );
        assert_eq!(
            answer(200, r#"{"status": "Model \"a\" registered"}"#).message,
            "Model \"a\" registered"
        );
        assert_eq!(answer(500, "plain\n").message, "plain");
    }

    #[test]
    fn management_urls_escape_model_names() {
        let api = ManagementApi::new("http://127.0.0.1:8081/", None).unwrap();
        assert_eq!(
            api.url(&["models", "a b"]).unwrap().as_str(),
            "http://127.0.0.1:8081/models/a%20b"
        );
    }
}
