//! TorchServe with the plugin on a node of the fleet bed
//! ([`Fleet::torchserve`]): `scripts/testbed/fleet torchserve` runs
//! `scripts/testbed/torchserve start` inside the node's network namespace,
//! bound to the node's address, in `DIR/ts/node-K`. The bed routes nothing
//! out of its subnet, so the test process (in the machine's own
//! namespace) calls it as it reads dfdaemon's metrics: with curl run on the
//! node ([`FleetTorchServe::call`], [`FleetTorchServe::infer`]), the
//! tokens in header files rather than on a command line. Stopped when
//! dropped, before the fleet it borrows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::fleet::Fleet;
use crate::servers::{plugins_dir, Jar};
use crate::stack::plugin_config;

/// How long [`FleetTorchServe::call`] waits for an answer, as
/// [`crate::http`] does.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

pub struct FleetTorchServe<'a> {
    fleet: &'a Fleet,
    host: String,
    dir: PathBuf,
    env: BTreeMap<String, String>,
    stopped: bool,
    /// `Authorization: Bearer <token>` for curl's `-H @file`; None
    /// without token auth.
    management_header: Option<PathBuf>,
    inference_header: Option<PathBuf>,
    /// The plugins path (only the jar) and the files written for it: the
    /// extra config.properties lines, the token headers.
    _plugins: tempfile::TempDir,
    _files: tempfile::TempDir,
}

fn header_file(dir: &Path, name: &str, token: &str) -> Option<PathBuf> {
    if token.is_empty() {
        return None;
    }
    let path = dir.join(name);
    std::fs::write(&path, format!("Authorization: Bearer {token}\n")).expect("write a header file");
    Some(path)
}

impl<'a> FleetTorchServe<'a> {
    pub(crate) fn start(
        fleet: &'a Fleet,
        k: usize,
        jar: Jar,
        config: &Path,
        extra_config: &str,
    ) -> FleetTorchServe<'a> {
        assert!((1..=fleet.nodes).contains(&k), "the fleet has no node {k}");
        let host = format!("node-{k}");
        let plugins = plugins_dir(jar);
        let files = tempfile::Builder::new()
            .prefix("dfe-fleet-ts-")
            .tempdir()
            .expect("temp dir");
        let extra = files.path().join("extra.properties");
        std::fs::write(&extra, plugin_config(config, extra_config))
            .expect("write the extra config");
        let mut ts = FleetTorchServe {
            fleet,
            dir: fleet.dir().join("ts").join(&host),
            host,
            env: BTreeMap::new(),
            stopped: false,
            management_header: None,
            inference_header: None,
            _plugins: plugins,
            _files: files,
        };
        let plugins_path = ts._plugins.path().display().to_string();
        let extra_path = extra.display().to_string();
        let output = fleet
            .command(
                "torchserve",
                &[
                    &ts.host,
                    "--plugins",
                    &plugins_path,
                    "--extra-config",
                    &extra_path,
                ],
            )
            .output()
            .expect("run scripts/testbed/fleet torchserve");
        if !output.status.success() {
            ts.stop();
            panic!(
                "fleet torchserve {}: {}\n{}",
                ts.host,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let text = std::fs::read_to_string(ts.dir.join("env")).unwrap_or_default();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                ts.env.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let files = ts._files.path();
        ts.management_header = header_file(files, "management", ts.management_token());
        ts.inference_header = header_file(files, "inference", ts.inference_token());
        ts
    }

    pub fn env(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{}'s TorchServe env has no {key}", self.host))
    }

    /// `node-K`.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// `http://<node address>:port`, reachable from inside the bed only.
    pub fn management(&self) -> &str {
        self.env("TS_MANAGEMENT_URL")
    }
    pub fn inference(&self) -> &str {
        self.env("TS_INFERENCE_URL")
    }
    /// Empty where the server has no token auth (before 0.11.1).
    pub fn management_token(&self) -> &str {
        self.env("TS_MANAGEMENT_TOKEN")
    }
    pub fn inference_token(&self) -> &str {
        self.env("TS_INFERENCE_TOKEN")
    }
    pub fn model_store(&self) -> PathBuf {
        PathBuf::from(self.env("TS_MODEL_STORE"))
    }
    pub fn log_dir(&self) -> PathBuf {
        PathBuf::from(self.env("TS_LOG_DIR"))
    }
    /// The JVM.
    pub fn pid(&self) -> u32 {
        self.env("TS_PID").parse().expect("TS_PID")
    }

    /// `method url` by curl on the node, with the header file and the
    /// body: the status and the body's text, or why curl got none.
    fn curl(
        &self,
        method: &str,
        url: &str,
        header: Option<&Path>,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        let max_time = timeout.as_secs().max(1).to_string();
        let mut args: Vec<String> = [
            "-sS",
            "--noproxy",
            "*",
            "--connect-timeout",
            "10",
            "--max-time",
            max_time.as_str(),
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ]
        .map(String::from)
        .to_vec();
        if let Some(header) = header {
            args.extend(["-H".into(), format!("@{}", header.display())]);
        }
        if let Some(body) = body {
            // As the client of client.rs sends it: no Content-Type.
            args.extend(["--data-binary", body, "-H", "Content-Type:"].map(String::from));
        }
        args.push(url.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self
            .fleet
            .on(&self.host, Path::new("/usr/bin/curl"), &args)
            .output()
            .map_err(|e| format!("curl on {}: {e}", self.host))?;
        if !output.status.success() {
            return Err(format!(
                "{method} {url} on {}: curl {}\n{}",
                self.host,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let (body, code) = text
            .rsplit_once('\n')
            .ok_or_else(|| format!("{method} {url}: no status in {text:?}"))?;
        let code = code
            .trim()
            .parse()
            .map_err(|e| format!("{method} {url}: status {code:?}: {e}"))?;
        Ok((code, body.to_string()))
    }

    /// `method path_and_query` on the management port with the token, with
    /// a deadline: the status and the body as JSON (a JSON string when it
    /// is not JSON), or why no answer came.
    pub fn send(
        &self,
        method: &str,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<(u16, Value), String> {
        let url = format!("{}{path_and_query}", self.management());
        let header = self.management_header.as_deref();
        let (status, text) = self.curl(method, &url, header, None, timeout)?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    /// [`FleetTorchServe::send`] within 600 s; panics without an answer.
    pub fn call(&self, method: &str, path_and_query: &str) -> (u16, Value) {
        self.send(method, path_and_query, CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The model's answer for x = 1 (`POST /predictions/<model>` with the
    /// inference token), or the HTTP status when it does not answer.
    pub fn infer(&self, model: &str) -> Result<f64, u16> {
        let url = format!("{}/predictions/{model}", self.inference());
        let header = self.inference_header.as_deref();
        let (status, text) = self
            .curl("POST", &url, header, Some("1"), CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        if status != 200 {
            return Err(status);
        }
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("inference of {model} on {}: {e}: {text}", self.host));
        body["y"].as_f64().ok_or(500)
    }

    pub fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            match self
                .fleet
                .command("torchserve-stop", &[&self.host])
                .output()
            {
                Ok(output) if output.status.success() => {}
                Ok(output) => eprintln!(
                    "stopping TorchServe on {}: {}\n{}",
                    self.host,
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ),
                Err(e) => eprintln!("stopping TorchServe on {}: {e}", self.host),
            }
        }
    }
}

impl Drop for FleetTorchServe<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}
