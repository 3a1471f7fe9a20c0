//! A fleet on one machine ([`Fleet`], `scripts/testbed/fleet`): every node
//! a network namespace with a shaped link to a private bridge, the S3
//! server behind a 1 Gbit/s link of its own, Dragonfly's control plane with
//! its default scheduling settings, one dfdaemon per node; commands run on
//! a host with [`Fleet::on`], TorchServe with the plugin on a node with
//! [`Fleet::torchserve`] (`fleet_torchserve.rs`). Needs root. Stopped
//! (processes, then every namespace) when dropped. With `--seed-peer` the
//! bed also runs a Dragonfly seed peer on host `seed` (peer N+1), as
//! Dragonfly's own deployments do ([`Fleet::wait_for_seed_peer`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{write_config_file, BUCKET, PREFIX};
use crate::fleet_torchserve::FleetTorchServe;
use crate::repo_root;
use crate::servers::Jar;

pub struct Fleet {
    dir: PathBuf,
    pub nodes: usize,
    env: BTreeMap<String, String>,
    stopped: bool,
    tmp: tempfile::TempDir,
}

fn script() -> PathBuf {
    repo_root().join("scripts/testbed/fleet")
}

fn checked(mut command: Command, what: &str) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl Fleet {
    /// `nodes` nodes; `args`: more options of `fleet start` (`--store-rate`,
    /// `--node-rate`, `--peer-task-ttl`, `--seed-peer`).
    pub fn start(nodes: usize, args: &[&str]) -> Fleet {
        let tmp = tempfile::Builder::new()
            .prefix("dfe-fleet-")
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().join("fleet");
        let mut command = Command::new("bash");
        command
            .arg(script())
            .arg("start")
            .arg(&dir)
            .args(["--nodes", &nodes.to_string()])
            .args(args);
        let mut fleet = Fleet {
            dir,
            nodes,
            env: BTreeMap::new(),
            stopped: false,
            tmp,
        };
        let output = command.output().expect("run scripts/testbed/fleet");
        if !output.status.success() {
            fleet.stop();
            panic!(
                "fleet start: {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        for part in ["net", "s3", "df"] {
            let text =
                std::fs::read_to_string(fleet.dir.join(part).join("env")).unwrap_or_default();
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    fleet.env.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        fleet
    }

    pub fn env(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("the fleet's env has no {key}"))
    }

    /// The bed's directory (`DIR` of `scripts/testbed/fleet`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `scripts/testbed/fleet subcommand DIR args...`, not started.
    pub(crate) fn command(&self, subcommand: &str, args: &[&str]) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(script())
            .arg(subcommand)
            .arg(&self.dir)
            .args(args);
        command
    }

    /// `program args...` on `host` (`store`, `ctl`, `node-K`), not started.
    pub fn on(&self, host: &str, program: &Path, args: &[&str]) -> Command {
        let mut command = self.command("on", &[host]);
        command.arg(program).args(args);
        command
    }

    /// TorchServe 0.12 on node `k`, bound to the node's address, with
    /// only the `jar` build of the plugin in its plugins path, `config`
    /// (e.g. [`Fleet::config`] for node `k`: its dfdaemon, the store) as
    /// its default plugin config, then the lines of `extra_config`.
    /// Stopped when dropped, and by [`Fleet::stop`].
    pub fn torchserve(
        &self,
        k: usize,
        jar: Jar,
        config: &Path,
        extra_config: &str,
    ) -> FleetTorchServe<'_> {
        FleetTorchServe::start(self, k, jar, config, extra_config)
    }

    fn s3(&self, args: &[&str]) -> String {
        let s3 = repo_root().join("scripts/testbed/s3");
        let dir = self.dir.join("s3").display().to_string();
        let mut full = vec![args[0], dir.as_str()];
        full.extend_from_slice(&args[1..]);
        let output = checked(self.on("node-1", &s3, &full), &format!("s3 {}", args[0]));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn make_bucket(&self) {
        self.s3(&["mb", BUCKET]);
    }

    pub fn upload(&self, key: &str, file: &Path) {
        self.s3(&["put", BUCKET, key, &file.display().to_string()]);
    }

    /// A presigned GET of `key`, valid for an hour.
    pub fn presign(&self, key: &str) -> String {
        self.s3(&["presign", BUCKET, key, "3600"])
            .trim()
            .to_string()
    }

    /// The seed peer's number, when the bed has one (`--seed-peer`).
    pub fn seed_peer(&self) -> Option<usize> {
        self.env.get("DF_SEED_PEER")?.parse().ok()
    }

    /// Every peer's number: the nodes' 1..=N, then the seed peer's.
    pub fn peers(&self) -> std::ops::RangeInclusive<usize> {
        1..=self.seed_peer().unwrap_or(self.nodes)
    }

    /// The host peer `k` runs on.
    fn peer_host(&self, k: usize) -> String {
        if self.seed_peer() == Some(k) {
            "seed".into()
        } else {
            format!("node-{k}")
        }
    }

    /// Waits until the scheduler hands new tasks to the seed peer: it
    /// learns of seed peers on a 30 s refresh, and before that sends the
    /// first peers of a task to the source. Probes with small objects
    /// (`probe/…`, outside the models' prefix) fetched through node 1
    /// until the seed peer is the one that went to the source.
    pub fn wait_for_seed_peer(&self) {
        let seed = self.seed_peer().expect("the fleet has no seed peer");
        let probe = self.tmp.path().join("probe");
        std::fs::write(&probe, vec![7u8; 16 << 20]).expect("write the probe object");
        let proxy = self.env("DF_PEER_1_PROXY").to_string();
        let curl = PathBuf::from("/usr/bin/curl");
        let deadline = Instant::now() + Duration::from_secs(120);
        for attempt in 0.. {
            let key = format!("probe/seed-{attempt}");
            self.upload(&key, &probe);
            let url = self.presign(&key);
            let (from_source, _) = self.peer_traffic(seed);
            checked(
                self.on(
                    "node-1",
                    &curl,
                    &[
                        "-fsS",
                        "--max-time",
                        "60",
                        "-x",
                        &proxy,
                        "-o",
                        "/dev/null",
                        &url,
                    ],
                ),
                "probe through node 1",
            );
            if self.peer_traffic(seed).0 > from_source {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the scheduler did not use the seed peer within 2 minutes ({} probes)",
                attempt + 1
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// Peer `k`'s dfdaemon counter of downloaded bytes by where they came
    /// from: (`BACK_TO_SOURCE`, `REMOTE_PEER`).
    pub fn peer_traffic(&self, k: usize) -> (u64, u64) {
        let url = self.env(&format!("DF_PEER_{k}_METRICS_URL")).to_string();
        let curl = PathBuf::from("/usr/bin/curl");
        let output = checked(
            self.on(
                &self.peer_host(k),
                &curl,
                &["-fsS", "--max-time", "10", &url],
            ),
            "dfdaemon metrics",
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let counter = |kind: &str| -> u64 {
            text.lines()
                .filter(|l| l.starts_with("dragonfly_client_download_traffic{"))
                .filter(|l| l.contains(&format!("type=\"{kind}\"")))
                .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                .map(|v| v as u64)
                .sum()
        };
        (counter("BACK_TO_SOURCE"), counter("REMOTE_PEER"))
    }

    /// Bytes of task content node `k`'s dfdaemon holds on disk (its
    /// `content/tasks` directory; 0 once every task was evicted).
    pub fn task_bytes(&self, k: usize) -> u64 {
        let dir = PathBuf::from(self.env(&format!("DF_PEER_{k}_STORAGE_DIR")));
        let mut total = 0;
        let mut pending = vec![dir.join("content").join("tasks")];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                match entry.metadata() {
                    Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                    Ok(meta) => total += meta.len(),
                    Err(_) => {}
                }
            }
        }
        total
    }

    /// Bytes the S3 server sent, by its own metric.
    pub fn sent_bytes(&self) -> u64 {
        self.s3(&["sent-bytes"]).trim().parse().unwrap_or(0)
    }

    /// Bytes `host`'s interface sent and received.
    pub fn counters(&self, host: &str) -> (u64, u64) {
        let mut command = Command::new(repo_root().join("scripts/testbed/netns"));
        command.arg("counters").arg(self.dir.join("net")).arg(host);
        let output = checked(command, "netns counters");
        let text = String::from_utf8_lossy(&output.stdout);
        let mut numbers = text.split_whitespace().map(|n| n.parse().unwrap_or(0));
        (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
    }

    /// A plugin config for node `k`: the store over the bed, node k's peer.
    pub fn config(&self, k: usize, dir: &Path, extra: Value) -> PathBuf {
        let mut config = serde_json::json!({
            "addr": self.env(&format!("DF_PEER_{k}_PROXY")),
            "object_storage": {
                "type": "s3",
                "bucket_name": BUCKET,
                "prefix": PREFIX,
                "region": self.env("S3_REGION"),
                "endpoint": self.env("S3_ENDPOINT"),
                "access_key": self.env("S3_ACCESS_KEY"),
                "secret_key": self.env("S3_SECRET_KEY"),
            },
        });
        if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                base.insert(key.clone(), value.clone());
            }
        }
        write_config_file(dir, &format!("node-{k}.json"), &config)
    }

    /// `dragonfly-endpoint pull` on node `k`, not started yet.
    pub fn pull(&self, k: usize, config: &Path, store: &Path, extra: &[&str]) -> Command {
        let mut args = vec![
            "pull".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--model-store".into(),
            store.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.on(&format!("node-{k}"), &crate::cli(), &args)
    }

    /// Stops node `k`'s dfdaemon.
    pub fn stop_peer(&self, k: usize) {
        let dragonfly = repo_root().join("scripts/testbed/dragonfly");
        let dir = self.dir.join("df").display().to_string();
        checked(
            self.on("ctl", &dragonfly, &["stop-peer", &dir, &k.to_string()]),
            "stop-peer",
        );
    }

    pub fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let _ = Command::new("bash")
                .arg(script())
                .arg("stop")
                .arg(&self.dir)
                .output();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}
