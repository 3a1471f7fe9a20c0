//! Registering archives with TorchServe.
//!
//! Inside the plugin the registry calls TorchServe in its own JVM (see the
//! `jni` crate), which works with the model API off and token auth on. The
//! command-line tool uses [`ManagementApi`], TorchServe's management REST
//! API, with a token when given.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

use crate::error::{describe_http_error, CoreError, Result};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything TorchServe's register call takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisterRequest {
    /// The archive's file name in the model store.
    pub url: String,
    pub model_name: String,
    pub handler: Option<String>,
    pub runtime: Option<String>,
    pub batch_size: u32,
    pub max_batch_delay: u32,
    pub response_timeout: u32,
    pub startup_timeout: u32,
    pub initial_workers: u32,
    pub synchronous: bool,
}

pub trait ModelRegistry: Send + Sync {
    /// Registers a model; `Err(CoreError::Registration)` carries TorchServe's
    /// status and message when it refuses.
    fn register<'a>(&'a self, request: &'a RegisterRequest) -> BoxFuture<'a, Result<String>>;
    fn unregister<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<String>>;
    fn is_registered<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<bool>>;
}

/// TorchServe's management API over HTTP.
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

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, model: &str, request: reqwest::RequestBuilder) -> Result<(u16, String)> {
        let response =
            self.authorized(request)
                .send()
                .await
                .map_err(|e| CoreError::Registration {
                    model: model.to_string(),
                    status: 502,
                    message: format!("TorchServe unreachable: {}", describe_http_error(e)),
                })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok((status, torchserve_message(&body)))
    }
}

/// The `message` (or `status`) of a TorchServe JSON answer, else the text.
fn torchserve_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("status"))
                .and_then(|m| m.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| body.trim().to_string())
}

impl ModelRegistry for ManagementApi {
    fn register<'a>(&'a self, request: &'a RegisterRequest) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let mut url = self.url(&["models"])?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("url", &request.url)
                    .append_pair("model_name", &request.model_name)
                    .append_pair("batch_size", &request.batch_size.to_string())
                    .append_pair("max_batch_delay", &request.max_batch_delay.to_string())
                    .append_pair("response_timeout", &request.response_timeout.to_string())
                    .append_pair("startup_timeout", &request.startup_timeout.to_string())
                    .append_pair("initial_workers", &request.initial_workers.to_string())
                    .append_pair("synchronous", &request.synchronous.to_string());
                if let Some(handler) = &request.handler {
                    q.append_pair("handler", handler);
                }
                if let Some(runtime) = &request.runtime {
                    q.append_pair("runtime", runtime);
                }
            }
            let (status, message) = self
                .send(&request.model_name, self.client.post(url))
                .await?;
            if (200..300).contains(&status) {
                Ok(message)
            } else {
                Err(CoreError::Registration {
                    model: request.model_name.clone(),
                    status,
                    message,
                })
            }
        })
    }

    fn unregister<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let url = self.url(&["models", model_name])?;
            let (status, message) = self.send(model_name, self.client.delete(url)).await?;
            match status {
                200..=299 => Ok(message),
                404 => Err(CoreError::NotFound(format!(
                    "model {model_name:?} is not registered"
                ))),
                _ => Err(CoreError::Registration {
                    model: model_name.to_string(),
                    status,
                    message,
                }),
            }
        })
    }

    fn is_registered<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let url = self.url(&["models", model_name])?;
            let (status, message) = self.send(model_name, self.client.get(url)).await?;
            match status {
                200..=299 => Ok(true),
                404 => Ok(false),
                _ => Err(CoreError::Registration {
                    model: model_name.to_string(),
                    status,
                    message,
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchserve_messages_are_extracted() {
        assert_eq!(
            torchserve_message(
                r#"{"code": 409, "type": "ConflictStatusException", "message": "Model version 1.0 is already registered."}"#
            ),
            "Model version 1.0 is already registered."
        );
        assert_eq!(
            torchserve_message(r#"{"status": "Model \"a\" registered"}"#),
            "Model \"a\" registered"
        );
        assert_eq!(torchserve_message("plain\n"), "plain");
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
