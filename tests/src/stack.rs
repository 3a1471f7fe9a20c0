//! The usual stack of an end-to-end test, started in one call: the S3
//! server with the bucket and a Dragonfly cluster ([`Origin`]), a plugin
//! config written into a fresh work dir, and optionally TorchServe with
//! only the plugin jar and that config as its default plugin config.
//!
//! ```no_run
//! use dragonfly_endpoint_testbed::*;
//!
//! let stack = Stack::builder()
//!     .peers(2)
//!     .config(serde_json::json!({"min_worker": 0}))
//!     .start_with_torchserve();
//! let Stack { work, origin, ts, .. } = stack;
//! let mar = make_mar("alpha", 2.0, &work.path().join("mars"), 1);
//! origin.upload(&format!("{PREFIX}alpha.mar"), &mar.path);
//! let (status, report) = call(&ts, "PUT", "/dragonfly?model=alpha.mar");
//! assert_eq!(status, 200, "{report:#}");
//! ```
//!
//! Destructure a named stack, as above: the fields left out stay in it and
//! live to the end of the scope. Destructured straight from the builder's
//! call, they would be dropped at once (the work dir with the config, the
//! plugins path of a running TorchServe).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{write_config, BUCKET};
use crate::servers::{plugins_dir, DragonflyCluster, Jar, S3Server, TorchServe};

/// S3, one Dragonfly peer (or more) and nothing else yet.
pub struct Origin {
    pub s3: S3Server,
    pub dragonfly: DragonflyCluster,
}

impl Origin {
    pub fn start(peers: usize) -> Origin {
        Self::start_with(peers, &[])
    }

    /// With more arguments of `scripts/testbed/dragonfly start`, e.g.
    /// `["--proxy-ca", cert, key]`.
    pub fn start_with(peers: usize, dragonfly_args: &[&str]) -> Origin {
        let s3 = S3Server::start();
        s3.mb(BUCKET);
        Origin {
            s3,
            dragonfly: DragonflyCluster::start_with(peers, dragonfly_args),
        }
    }

    pub fn upload(&self, key: &str, file: &Path) {
        self.s3.put(BUCKET, key, file);
    }

    /// Deletes `key` (an object of `bytes`) and waits, up to a minute,
    /// until its disk is free: SeaweedFS's filer hands the delete to the
    /// volumes a moment later, and only a vacuum then frees the space.
    pub fn discard(&self, key: &str, bytes: u64) {
        let before = self.s3.data_bytes();
        self.s3.remove(BUCKET, key);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.s3.vacuum();
            // Most of it: the filer's own metadata files grow a little.
            if self.s3.data_bytes() + bytes / 10 * 9 <= before {
                return;
            }
            if Instant::now() > deadline {
                eprintln!("{key}: deleted, but its {bytes} bytes were not freed within 60 s");
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A model directory: every file under `dir` below the folder `prefix`.
    pub fn upload_dir(&self, prefix: &str, dir: &Path) {
        self.s3.put_dir(BUCKET, prefix, dir);
    }
}

/// TorchServe with only the plugin jar in its plugins path and `config` as
/// its default plugin config (`dragonfly_endpoint_config`), then the lines
/// of `extra_config` in its config.properties. Keep the returned directory
/// alive as long as the server.
pub fn torchserve_with_plugin(
    jar: Jar,
    config: &Path,
    extra_config: &str,
) -> (tempfile::TempDir, TorchServe) {
    let plugins = plugins_dir(jar);
    let ts = TorchServe::start(plugins.path(), &plugin_config(config, extra_config));
    (plugins, ts)
}

/// [`torchserve_with_plugin`] on TorchServe `version` (see
/// [`TorchServe::start_version`]).
pub fn torchserve_version_with_plugin(
    version: &str,
    jar: Jar,
    config: &Path,
    extra_config: &str,
) -> (tempfile::TempDir, TorchServe) {
    let plugins = plugins_dir(jar);
    let ts = TorchServe::start_version(
        version,
        plugins.path(),
        &plugin_config(config, extra_config),
    );
    (plugins, ts)
}

/// config.properties lines naming `config` as the default plugin config,
/// then `extra_config`.
pub(crate) fn plugin_config(config: &Path, extra_config: &str) -> String {
    format!(
        "dragonfly_endpoint_config={}\n{extra_config}",
        config.display()
    )
}

/// A started stack: TorchServe (`()` when started without it), the
/// origin, the config written for peer 1 and the work dir holding it.
/// Fields drop in this order: TorchServe stops first, the work dir goes
/// last.
pub struct Stack<T = ()> {
    pub ts: T,
    /// TorchServe's plugins path, kept as long as TorchServe runs.
    _plugins: Option<tempfile::TempDir>,
    pub origin: Origin,
    /// The plugin config: the S3 server, bucket [`BUCKET`], prefix
    /// [`crate::PREFIX`], peer 1's proxy, and the builder's extra keys.
    pub config: PathBuf,
    /// A fresh temp dir for the test's files; the config is under it.
    pub work: tempfile::TempDir,
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder {
            peers: 1,
            dragonfly_args: Vec::new(),
            config_dir: "cfg".to_string(),
            config: serde_json::json!({}),
            plugin: true,
            ts_config: String::new(),
        }
    }
}

/// How to start a [`Stack`]. By default: one peer, the config at
/// `cfg/config.json` under the work dir with no extra key, and TorchServe
/// (with [`StackBuilder::start_with_torchserve`]) loading the plugin jar.
pub struct StackBuilder {
    peers: usize,
    dragonfly_args: Vec<String>,
    config_dir: String,
    config: Value,
    plugin: bool,
    ts_config: String,
}

impl StackBuilder {
    /// `n` Dragonfly peers; the config names peer 1.
    pub fn peers(mut self, n: usize) -> Self {
        self.peers = n;
        self
    }

    /// More arguments of `scripts/testbed/dragonfly start`, e.g.
    /// `["--proxy-ca", cert, key]`.
    pub fn dragonfly_args(mut self, args: &[&str]) -> Self {
        self.dragonfly_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The config's folder, relative to the work dir (`""`: the work dir
    /// itself); by default it is the only folder the plugin's `config=`
    /// parameter may name, so a test's other configs go next to it.
    pub fn config_dir(mut self, dir: &str) -> Self {
        self.config_dir = dir.to_string();
        self
    }

    /// Top-level keys merged over the written config (see
    /// [`write_config`]).
    pub fn config(mut self, extra: Value) -> Self {
        self.config = extra;
        self
    }

    /// Lines appended to TorchServe's config.properties, e.g.
    /// `"enable_model_api=true\n"`.
    pub fn ts_config(mut self, lines: &str) -> Self {
        self.ts_config = lines.to_string();
        self
    }

    /// TorchServe with an empty plugins path and no plugin config.
    pub fn without_plugin(mut self) -> Self {
        self.plugin = false;
        self
    }

    /// A new work dir, the S3 server with the bucket, the Dragonfly
    /// cluster, and the config written for peer 1.
    pub fn start(self) -> Stack {
        let work = tempfile::tempdir().expect("temp dir");
        let args: Vec<&str> = self.dragonfly_args.iter().map(String::as_str).collect();
        let origin = Origin::start_with(self.peers, &args);
        let config = write_config(
            &work.path().join(&self.config_dir),
            &origin.s3,
            &origin.dragonfly.proxy(1),
            self.config,
        );
        Stack {
            ts: (),
            _plugins: None,
            origin,
            config,
            work,
        }
    }

    /// [`StackBuilder::start`], then TorchServe.
    pub fn start_with_torchserve(self) -> Stack<TorchServe> {
        let (plugin, ts_config) = (self.plugin, self.ts_config.clone());
        let Stack {
            origin,
            config,
            work,
            ..
        } = self.start();
        let (plugins, ts) = if plugin {
            torchserve_with_plugin(Jar::TestHooks, &config, &ts_config)
        } else {
            let plugins = tempfile::tempdir().expect("temp dir");
            let ts = TorchServe::start(plugins.path(), &ts_config);
            (plugins, ts)
        };
        Stack {
            ts,
            _plugins: Some(plugins),
            origin,
            config,
            work,
        }
    }
}
