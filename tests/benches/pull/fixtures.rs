//! What the cases share on top of the test bed's fixtures: progress lines,
//! the bench's HTTP timeout and CLI hint, fresh keys on the origin, config
//! files without a prefix, the timed CLI and curl runs, fresh dirs. The
//! one use of the core's Dragonfly protocol (the filtered query params a
//! curl through the proxy sends) is here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dragonfly_endpoint_core::source::s3::SIGNING_PARAMS;
use dragonfly_endpoint_core::transfer::dragonfly::filtered_query_params;
use dragonfly_endpoint_testbed::{
    cli_in_target, config_json, http_with_timeout, write_config_file, Mar, Origin, S3Server, BUCKET,
};
use serde_json::Value;

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

/// The HTTP client of the register and memory cases: 1800 s per request.
pub fn http() -> reqwest::blocking::Client {
    http_with_timeout(Duration::from_secs(1800))
}

/// The CLI next to this bench binary (target/release/).
fn cli() -> PathBuf {
    cli_in_target("run scripts/bench")
}

/// The bench's keys: the archive copied under fresh keys, presigned for
/// an hour.
pub trait Keys {
    /// A key nobody has fetched yet, so no peer has a task for it.
    fn fresh(&self, mar: &Mar, key: &str) -> String;
    fn presign(&self, key: &str) -> String;
}

impl Keys for Origin {
    fn fresh(&self, mar: &Mar, key: &str) -> String {
        self.upload(key, &mar.path);
        key.to_string()
    }

    fn presign(&self, key: &str) -> String {
        self.s3.presign(BUCKET, key, 3600)
    }
}

/// A plugin config named `name` in `dir`, for every key of the bucket (no
/// prefix).
pub fn write_config(dir: &Path, name: &str, s3: &S3Server, proxy: &str, extra: Value) -> PathBuf {
    write_config_file(dir, name, &config_json(s3, "", proxy, extra))
}

/// `dragonfly-endpoint pull` of `model` into `store`, not started yet.
pub fn pull_command(config: &Path, store: &Path, model: &str) -> Command {
    let mut command = Command::new(cli());
    command
        .args(["pull", "--no-progress", "--config"])
        .arg(config)
        .arg("--model-store")
        .arg(store)
        .args(["--model", model]);
    command
}

/// `dragonfly-endpoint pull` into `store`: wall seconds and the report.
pub fn cli_pull(config: &Path, store: &Path, model: &str) -> (f64, Value) {
    let started = Instant::now();
    let output = pull_command(config, store, model)
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
                    filtered_query_params(SIGNING_PARAMS, &[])
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
