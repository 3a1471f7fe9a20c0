//! What every case uses: progress lines, the HTTP client, the CLI and curl
//! runs it times, the origin with fresh keys, config files, fresh dirs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dragonfly_endpoint_core::fetch::filtered_query_params;
use dragonfly_endpoint_testbed::{Mar, S3Server};
use serde_json::{json, Value};

pub const BUCKET: &str = "models";

pub fn progress(text: &str) {
    eprintln!("[bench {}] {text}", chrono_now());
}

fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1800))
        .build()
        .expect("http client")
}

/// The CLI next to this bench binary (target/release/).
pub fn cli() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let cli = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("dragonfly-endpoint");
    assert!(cli.exists(), "{} missing: run scripts/bench", cli.display());
    cli
}

/// S3 with one bucket, and the archive to copy under fresh keys.
pub struct Origin {
    pub s3: S3Server,
}

impl Origin {
    pub fn start() -> Origin {
        let s3 = S3Server::start();
        s3.mb(BUCKET);
        Origin { s3 }
    }

    /// A key nobody has fetched yet, so no peer has a task for it.
    pub fn fresh(&self, mar: &Mar, key: &str) -> String {
        self.s3.put(BUCKET, key, &mar.path);
        key.to_string()
    }

    pub fn presign(&self, key: &str) -> String {
        self.s3.presign(BUCKET, key, 3600)
    }
}

pub fn write_config(dir: &Path, name: &str, s3: &S3Server, proxy: &str, extra: Value) -> PathBuf {
    let mut config = json!({
        "addr": proxy,
        "object_storage": {
            "type": "s3",
            "bucket_name": BUCKET,
            "prefix": "",
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
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("config");
    path
}

/// `dragonfly-endpoint pull` into `store`: wall seconds and the report.
pub fn cli_pull(config: &Path, store: &Path, model: &str) -> (f64, Value) {
    let started = Instant::now();
    let output = Command::new(cli())
        .args(["pull", "--no-progress", "--config"])
        .arg(config)
        .arg("--model-store")
        .arg(store)
        .args(["--model", model])
        .output()
        .expect("run the CLI");
    let seconds = started.elapsed().as_secs_f64();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    assert!(
        output.status.success(),
        "CLI pull of {model} failed: {report:#}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (seconds, report)
}

/// curl to a file, through `proxy` (with the headers the plugin sends) or
/// straight to the store.
pub fn curl(url: &str, proxy: Option<&str>, out: &Path) -> f64 {
    let mut command = Command::new("curl");
    command.args(["-sSf", "-o"]).arg(out);
    match proxy {
        Some(proxy) => {
            command.args(["-x", proxy]);
            command.args(["-H", "X-Dragonfly-Use-P2P: true"]);
            command.args([
                "-H",
                &format!(
                    "X-Dragonfly-Filtered-Query-Params: {}",
                    filtered_query_params(&[])
                ),
            ]);
        }
        None => {
            command.arg("--noproxy").arg("*");
        }
    }
    command.arg(url);
    let started = Instant::now();
    let status = command.status().expect("run curl");
    let seconds = started.elapsed().as_secs_f64();
    assert!(status.success(), "curl {url} failed: {status}");
    seconds
}

pub fn fresh_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}
