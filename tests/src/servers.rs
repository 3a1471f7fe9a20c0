//! The servers of the test bed: [`Server`], one shell fixture of
//! `scripts/testbed/` in a private temporary directory, and its typed
//! wrappers [`S3Server`], [`DragonflyCluster`] and [`TorchServe`]; the plugin
//! jar TorchServe loads; whether a process is alive. Every server is stopped
//! when its handle is dropped, also when a test panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::repo_root;

fn run(script: &str, args: &[&str]) -> Result<String, String> {
    let path = repo_root().join("scripts/testbed").join(script);
    let output = Command::new("bash")
        .arg(&path)
        .args(args)
        .output()
        .map_err(|e| format!("running {}: {e}", path.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{script} {}: {}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A server started by a shell fixture, described by its `DIR/env` file.
pub struct Server {
    script: &'static str,
    dir: PathBuf,
    env: BTreeMap<String, String>,
    stopped: bool,
    _tmp: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start(script: &'static str, args: &[&str]) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("dfe-{script}-"))
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().join(script);
        let dir_text = dir.display().to_string();
        let mut full = vec!["start", dir_text.as_str()];
        full.extend_from_slice(args);
        let mut server = Server {
            script,
            dir,
            env: BTreeMap::new(),
            stopped: false,
            _tmp: tmp,
        };
        if let Err(e) = run(script, &full) {
            server.stop();
            panic!("{e}");
        }
        server.reload_env();
        server
    }

    pub fn reload_env(&mut self) {
        let text = std::fs::read_to_string(self.dir.join("env")).unwrap_or_default();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                self.env.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }

    pub fn env(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{} env has no {key}", self.script))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs another subcommand of the fixture on this server.
    pub fn command(&self, args: &[&str]) -> String {
        let dir = self.dir.display().to_string();
        let mut full = vec![args[0], dir.as_str()];
        full.extend_from_slice(&args[1..]);
        run(self.script, &full).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let dir = self.dir.display().to_string();
            if let Err(e) = run(self.script, &["stop", &dir]) {
                eprintln!("stopping {}: {e}", self.script);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SeaweedFS with SigV4 checking.
pub struct S3Server(pub Server);

impl S3Server {
    pub fn start() -> S3Server {
        S3Server(Server::start("s3", &[]))
    }
    pub fn endpoint(&self) -> &str {
        self.0.env("S3_ENDPOINT")
    }
    pub fn access_key(&self) -> &str {
        self.0.env("S3_ACCESS_KEY")
    }
    pub fn secret_key(&self) -> &str {
        self.0.env("S3_SECRET_KEY")
    }
    pub fn region(&self) -> &str {
        self.0.env("S3_REGION")
    }
    pub fn log(&self) -> PathBuf {
        PathBuf::from(self.0.env("S3_LOG"))
    }
    pub fn mb(&self, bucket: &str) {
        self.0.command(&["mb", bucket]);
    }
    pub fn put(&self, bucket: &str, key: &str, file: &Path) {
        self.0
            .command(&["put", bucket, key, &file.display().to_string()]);
    }
    /// Uploads every file under `dir` as `prefix` (ending in `/`) plus its
    /// path relative to `dir`: a model directory as operators keep one.
    pub fn put_dir(&self, bucket: &str, prefix: &str, dir: &Path) {
        self.0
            .command(&["put-dir", bucket, prefix, &dir.display().to_string()]);
    }
    /// Uploads in one part with a checksum the store keeps (`SHA256`, ...).
    pub fn put_with_checksum(&self, bucket: &str, key: &str, file: &Path, algorithm: &str) {
        self.0.command(&[
            "put-checksum",
            bucket,
            key,
            &file.display().to_string(),
            algorithm,
        ]);
    }
    pub fn remove(&self, bucket: &str, key: &str) {
        self.0.command(&["rm", bucket, key]);
    }
    /// Compacts the volumes that hold deleted objects: SeaweedFS frees no
    /// disk on delete until then.
    pub fn vacuum(&self) {
        self.0.command(&["vacuum"]);
    }
    /// Bytes of the store's files on disk, deleted objects not yet
    /// compacted included.
    pub fn data_bytes(&self) -> u64 {
        self.0.command(&["data-bytes"]).trim().parse().unwrap_or(0)
    }
    pub fn presign(&self, bucket: &str, key: &str, expires_secs: u64) -> String {
        self.0
            .command(&["presign", bucket, key, &expires_secs.to_string()])
            .trim()
            .to_string()
    }
    pub fn pid(&self) -> u32 {
        self.0.env("S3_PID").parse().expect("S3_PID")
    }
    /// Bytes the S3 server sent, from its own metric.
    pub fn sent_bytes(&self) -> u64 {
        self.0.command(&["sent-bytes"]).trim().parse().unwrap_or(0)
    }
}

/// Manager, scheduler and N dfdaemon peers.
pub struct DragonflyCluster(pub Server);

impl DragonflyCluster {
    pub fn start(peers: usize) -> DragonflyCluster {
        Self::start_with(peers, &[])
    }
    /// With more arguments of `scripts/testbed/dragonfly start`, e.g.
    /// `["--proxy-ca", cert, key]`.
    pub fn start_with(peers: usize, args: &[&str]) -> DragonflyCluster {
        let peers = peers.to_string();
        let mut all = vec!["--peers", peers.as_str()];
        all.extend_from_slice(args);
        DragonflyCluster(Server::start("dragonfly", &all))
    }
    /// `http://127.0.0.1:port` of peer `i` (1-based).
    pub fn proxy(&self, i: usize) -> String {
        self.0.env(&format!("DF_PEER_{i}_PROXY")).to_string()
    }
    /// The manager's REST address and a token with the job scope.
    pub fn manager_url(&self) -> &str {
        self.0.env("DF_MANAGER_URL")
    }
    pub fn manager_token(&self) -> &str {
        self.0.env("DF_MANAGER_TOKEN")
    }
    pub fn peer_pid(&self, i: usize) -> u32 {
        self.0
            .env(&format!("DF_PEER_{i}_PID"))
            .parse()
            .expect("DF_PEER_i_PID")
    }
    pub fn peer_log(&self, i: usize) -> PathBuf {
        PathBuf::from(self.0.env(&format!("DF_PEER_{i}_LOG")))
    }
    pub fn stop_peer(&mut self, i: usize) {
        self.0.command(&["stop-peer", &i.to_string()]);
    }
    pub fn restart_peer(&mut self, i: usize) {
        self.0.command(&["restart-peer", &i.to_string()]);
        self.0.reload_env();
    }
}

/// TorchServe with its version's defaults: 0.12 (the main venv) unless
/// started with [`TorchServe::start_version`]; token auth on and the model
/// API off from 0.11.1, neither exists before.
pub struct TorchServe(pub Server);

impl TorchServe {
    /// TorchServe 0.12. `extra_config`: lines appended to config.properties.
    pub fn start(plugins: &Path, extra_config: &str) -> TorchServe {
        Self::launch(None, plugins, extra_config, None)
    }

    /// With `store` as its model store (default: a fresh one in its dir),
    /// e.g. the store a killed TorchServe left.
    pub fn start_in(plugins: &Path, extra_config: &str, store: Option<&Path>) -> TorchServe {
        Self::launch(None, plugins, extra_config, store)
    }

    /// TorchServe `version` (e.g. "0.9.0") from its venv, which
    /// `scripts/setup` installs for the suite's versions and `scripts/setup
    /// --torchserve-matrix` for all.
    pub fn start_version(version: &str, plugins: &Path, extra_config: &str) -> TorchServe {
        Self::launch(Some(version), plugins, extra_config, None)
    }

    fn launch(
        version: Option<&str>,
        plugins: &Path,
        extra_config: &str,
        store: Option<&Path>,
    ) -> TorchServe {
        let extra = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(extra.path(), extra_config).expect("write extra config");
        let plugins = plugins.display().to_string();
        let extra_path = extra.path().display().to_string();
        let store = store.map(|s| s.display().to_string());
        let mut args = vec!["--plugins", &plugins, "--extra-config", &extra_path];
        if let Some(version) = version {
            args.extend(["--version", version]);
        }
        if let Some(store) = &store {
            args.extend(["--model-store", store.as_str()]);
        }
        TorchServe(Server::start("torchserve", &args))
    }
    /// The version running, as scripts/testbed/torchserve started it.
    pub fn version(&self) -> &str {
        self.0.env("TS_VERSION")
    }
    /// Whether it checks tokens (it wrote key_file.json): 0.11.1 and later.
    pub fn token_auth(&self) -> bool {
        !self.management_token().is_empty()
    }
    pub fn management(&self) -> &str {
        self.0.env("TS_MANAGEMENT_URL")
    }
    pub fn inference(&self) -> &str {
        self.0.env("TS_INFERENCE_URL")
    }
    pub fn management_token(&self) -> &str {
        self.0.env("TS_MANAGEMENT_TOKEN")
    }
    pub fn inference_token(&self) -> &str {
        self.0.env("TS_INFERENCE_TOKEN")
    }
    pub fn model_store(&self) -> PathBuf {
        PathBuf::from(self.0.env("TS_MODEL_STORE"))
    }
    pub fn log_dir(&self) -> PathBuf {
        PathBuf::from(self.0.env("TS_LOG_DIR"))
    }
    pub fn pid(&self) -> u32 {
        self.0.env("TS_PID").parse().expect("TS_PID")
    }
    /// Arms fault points of a test build of the plugin (lines of `point
    /// action`, see crates/core/src/hooks.rs); an empty text disarms them.
    pub fn arm_hooks(&self, lines: &str) {
        std::fs::write(self.0.env("TS_TEST_HOOKS"), lines).expect("write the hooks file");
    }
}

/// Which build of the plugin jar a TorchServe gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jar {
    /// `gradle build`: what operators install (the benchmark measures it).
    Product,
    /// `gradle build -PtestHooks`: the same, with the core's fault points
    /// compiled in (the end-to-end suite; scripts/test builds it).
    TestHooks,
}

/// The plugin jar of that build in build/libs.
pub fn plugin_jar(jar: Jar) -> PathBuf {
    let libs = repo_root().join("build/libs");
    let (kind, command) = match jar {
        Jar::Product => ("product", "gradle build"),
        Jar::TestHooks => ("test-hooks", "gradle build -PtestHooks"),
    };
    std::fs::read_dir(&libs)
        .ok()
        .and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.strip_suffix(".jar").is_some_and(|stem| {
                    let test_build = stem.ends_with("-test-hooks");
                    test_build == (jar == Jar::TestHooks)
                })
            })
        })
        .unwrap_or_else(|| panic!("no {kind} jar in {}: run `{command}` first", libs.display()))
}

/// A directory holding only the plugin jar, for `--plugins-path`.
pub fn plugins_dir(jar: Jar) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let jar = plugin_jar(jar);
    std::fs::copy(&jar, dir.path().join(jar.file_name().expect("jar name"))).expect("copy jar");
    dir
}

/// Whether a process with this pid is running (a zombie waiting for its
/// parent to reap it is not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // "pid (comm) S ...": the state follows the last ')'.
            let after = stat.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}
