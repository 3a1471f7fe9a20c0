//! TorchServe with the plugin and its model API on: the register and
//! memory cases time calls on it and check each registered model answers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dragonfly_endpoint_testbed::{
    predict, send, torchserve_with_plugin, Jar, Mar, Origin, TorchServe,
};
use serde_json::{json, Value};

use crate::fixtures::{http, write_config, Keys};

/// TorchServe's own registration of `key` under `name` from a presigned
/// URL of the origin, with one worker, answering once registered: the
/// baseline the register cases compare with.
pub fn post_url_path(origin: &Origin, key: &str, name: &str) -> String {
    let url: String =
        url::form_urlencoded::byte_serialize(origin.presign(key).as_bytes()).collect();
    format!("/models?url={url}&model_name={name}&initial_workers=1&synchronous=true")
}

/// TorchServe with the plugin and its model API on, for the baseline.
pub struct Serving {
    pub ts: TorchServe,
    _plugins: tempfile::TempDir,
}

impl Serving {
    /// The origin (one peer), `config.json` in `cfg` for it, and TorchServe
    /// serving with that config.
    pub fn start_with_origin(cfg: &Path) -> (Origin, PathBuf, Serving) {
        let origin = Origin::start(1);
        let config = write_config(
            cfg,
            "config.json",
            &origin.s3,
            &origin.dragonfly.proxy(1),
            json!({}),
        );
        let serving = Serving::start(&config);
        (origin, config, serving)
    }

    fn start(config: &Path) -> Serving {
        let (plugins, ts) = torchserve_with_plugin(Jar::Product, config, "enable_model_api=true\n");
        Serving {
            ts,
            _plugins: plugins,
        }
    }

    pub fn call(&self, method: &str, path: &str) -> (u16, Value) {
        send(&http(), &self.ts, method, path).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
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
        let response = predict(&http(), &self.ts, model).expect("inference");
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
