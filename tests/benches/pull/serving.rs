//! TorchServe with the plugin and its model API on: the register and
//! memory cases time calls on it and check each registered model answers.

use std::path::Path;
use std::time::Instant;

use dragonfly_endpoint_testbed::{plugins_dir, Mar, TorchServe};
use serde_json::Value;

use crate::fixtures::http;

/// TorchServe with the plugin and its model API on, for the baseline.
pub struct Serving {
    pub ts: TorchServe,
    _plugins: tempfile::TempDir,
}

impl Serving {
    pub fn start(config: &Path) -> Serving {
        let plugins = plugins_dir();
        let ts = TorchServe::start(
            plugins.path(),
            &format!(
                "dragonfly_endpoint_config={}\nenable_model_api=true\n",
                config.display()
            ),
        );
        Serving {
            ts,
            _plugins: plugins,
        }
    }

    pub fn call(&self, method: &str, path: &str) -> (u16, Value) {
        let response = http()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                format!("{}{path}", self.ts.management()),
            )
            .bearer_auth(self.ts.management_token())
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Timed: the call returns once the model is registered with 1 worker.
    pub fn timed(&self, method: &str, path: &str) -> f64 {
        let started = Instant::now();
        let (status, body) = self.call(method, path);
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(status, 200, "{method} {path}: {body:#}");
        seconds
    }

    pub fn check_answer(&self, model: &str, mar: &Mar) {
        let response = http()
            .post(format!("{}/predictions/{model}", self.ts.inference()))
            .bearer_auth(self.ts.inference_token())
            .body("1")
            .send()
            .expect("inference");
        assert_eq!(response.status().as_u16(), 200, "inference of {model}");
        let body: Value = response.json().expect("inference JSON");
        let y = body["y"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (y - mar.expected).abs() <= 1e-9 * mar.expected.abs(),
            "{model}: {y}"
        );
    }

    /// TorchServe's own registration downloads `<basename>` into the store
    /// and refuses that name again while it exists.
    pub fn remove_store_files(&self, prefix: &str) {
        for entry in std::fs::read_dir(self.ts.model_store())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
