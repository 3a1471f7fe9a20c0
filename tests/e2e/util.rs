//! Helpers shared by the end-to-end tests: a stack of real servers, the
//! config file the plugin reads, and HTTP calls as an operator makes them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dragonfly_endpoint_testbed::{plugins_dir, DragonflyCluster, S3Server, TorchServe};
use serde_json::Value;

pub const BUCKET: &str = "models";
pub const PREFIX: &str = "torchserve/";

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("http client")
}

/// Writes a plugin config into `dir` and returns its path.
pub fn write_config(dir: &Path, s3: &S3Server, proxy: &str, extra: Value) -> PathBuf {
    let mut config = serde_json::json!({
        "addr": proxy,
        "object_storage": {
            "type": "s3",
            "bucket_name": BUCKET,
            "prefix": PREFIX,
            "region": s3.region(),
            "endpoint": s3.endpoint(),
            "access_key": s3.access_key(),
            "secret_key": s3.secret_key(),
        },
    });
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    std::fs::create_dir_all(dir).expect("config dir");
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
    path
}

/// A call to the plugin on TorchServe's management port, with the token.
pub fn call(ts: &TorchServe, method: &str, path_and_query: &str) -> (u16, Value) {
    let url = format!("{}{}", ts.management(), path_and_query);
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let response = http()
        .request(method, &url)
        .bearer_auth(ts.management_token())
        .send()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Asserts TorchServe's error shape and returns the message.
pub fn assert_error(status: u16, body: &Value, expected: u16) -> String {
    assert_eq!(status, expected, "{body:#}");
    assert_eq!(body["code"], expected, "{body:#}");
    assert!(
        body["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{body:#}"
    );
    let message = body["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "{body:#}");
    message
}

/// The model's answer for x = 1, or the HTTP status when it does not answer.
pub fn infer(ts: &TorchServe, model: &str) -> Result<f64, u16> {
    let response = http()
        .post(format!("{}/predictions/{model}", ts.inference()))
        .bearer_auth(ts.inference_token())
        .body("1")
        .send()
        .expect("inference request");
    let status = response.status().as_u16();
    if status != 200 {
        return Err(status);
    }
    let body: Value = response.json().expect("inference JSON");
    body["y"].as_f64().ok_or(500)
}

pub fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= 1e-9 * expected.abs(),
        "{actual} != {expected}"
    );
}

/// Every entry of a directory, hidden ones included.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// No temp or backup file of the plugin in the model store.
pub fn assert_no_partial_files(store: &Path) {
    for name in entries(store) {
        assert!(
            !name.contains(".dfpart-") && !name.contains(".dfprev-"),
            "partial file left in the model store: {name}"
        );
    }
}

/// Scans every file under `dirs` for the secrets.
pub fn assert_no_secrets(dirs: &[&Path], secrets: &[&str], extra_text: &[&str]) {
    for text in extra_text {
        for secret in secrets {
            assert!(!text.contains(secret), "secret leaked in a response");
        }
    }
    for dir in dirs {
        for entry in walk(dir) {
            let Ok(bytes) = std::fs::read(&entry) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "secret leaked in {}",
                    entry.display()
                );
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for entry in rd.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// S3, one Dragonfly peer (or more) and nothing else yet.
pub struct Origin {
    pub s3: S3Server,
    pub dragonfly: DragonflyCluster,
}

impl Origin {
    pub fn start(peers: usize) -> Origin {
        let s3 = S3Server::start();
        s3.mb(BUCKET);
        Origin {
            s3,
            dragonfly: DragonflyCluster::start(peers),
        }
    }

    pub fn upload(&self, key: &str, file: &Path) {
        self.s3.put(BUCKET, key, file);
    }
}

/// TorchServe with only the plugin jar in its plugins path and `config` as
/// its default plugin config (`dragonfly_endpoint_config`). Keep the
/// returned directory alive as long as the server.
pub fn torchserve_with_plugin(config: &Path) -> (tempfile::TempDir, TorchServe) {
    let plugins = plugins_dir();
    let ts = TorchServe::start(
        plugins.path(),
        &format!("dragonfly_endpoint_config={}\n", config.display()),
    );
    (plugins, ts)
}

/// The CLI binary next to this test binary (target/<profile>/).
pub fn cli() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let cli = dir.join("dragonfly-endpoint");
    assert!(
        cli.exists(),
        "{} missing: build the CLI first",
        cli.display()
    );
    cli
}

/// Runs `dragonfly-endpoint pull`: exit code, the JSON report, stderr.
pub fn pull_with_cli(config: &Path, store: &Path, extra: &[&str]) -> (i32, Value, String) {
    let output = Command::new(cli())
        .args(["pull", "--config"])
        .arg(config)
        .arg("--model-store")
        .arg(store)
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (
        output.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
