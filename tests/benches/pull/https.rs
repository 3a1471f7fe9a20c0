//! https: the two routes to an `https://` object store through the peer
//! (`download.https_via_peer`), weighed by measurement. One S3 server
//! behind a TLS front (tls_front.rs), one Dragonfly peer started with both
//! `--proxy-ca` (it intercepts CONNECT with the bench's CA) and
//! `--proxy-tls-rule <the front>` (it fetches `http://` of the front over
//! TLS), so both routes run on the same peer:
//!
//! - `tls_rule`: the CLI asks the proxy for `http://` of the front; one TLS
//!   leg on the node (dfdaemon to the store);
//! - `tunnel`: the CLI sends `CONNECT`, dfdaemon intercepts it with its CA
//!   (trusted through `download.ca_cert`); two TLS legs (CLI to dfdaemon,
//!   dfdaemon to the store).
//!
//! Each timed run is a cold CLI pull (`register_as: mar`) of a fresh key,
//! paired (`pairs::measure`), the page cache written back and dropped
//! before it. Per route: wall, MB/s, the CPU seconds of the CLI, of
//! dfdaemon and of the TLS front, CPU seconds per GiB of CLI + dfdaemon.
//! After each tunnel run, the front's own ceiling: curl of that object
//! straight through it and straight from the store (no Dragonfly, the
//! store's page cache warm, to /dev/null).
//!
//! Then the route not built, measured with its own real client: dfget
//! asking dfdaemon over its gRPC socket (`DownloadTask`) for `s3://` of
//! the same store with credentials (no presigning, dfdaemon's OpenDAL
//! backend, output hard-linked), paired against tls_rule again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use dragonfly_endpoint_testbed::{
    config_json, make_pki, write_config_file, DragonflyCluster, Mar, Origin, S3Server, BUCKET,
};
use serde_json::json;

use crate::fixtures::{cli_pull, fresh_dir, progress, Keys};
use crate::forms::settle;
use crate::pairs::{children_cpu_seconds, cpu_seconds, measure, Sample};
use crate::stats::Row;
use crate::tls_front::TlsFront;
use crate::Args;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// CPU seconds of each process over one run.
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    cli: f64,
    dfdaemon: f64,
    front: f64,
    s3: f64,
}

/// The processes whose CPU seconds a run counts (the CLI or curl: waited-for
/// children).
struct Pids {
    dfdaemon: u32,
    front: u32,
    s3: u32,
}

impl Pids {
    fn now(&self) -> Cpu {
        Cpu {
            cli: children_cpu_seconds(),
            dfdaemon: cpu_seconds(self.dfdaemon),
            front: cpu_seconds(self.front),
            s3: cpu_seconds(self.s3),
        }
    }

    /// Wall seconds of `work` and the CPU seconds each process used.
    fn timed(&self, work: impl FnOnce()) -> (f64, Cpu) {
        let (before, started) = (self.now(), Instant::now());
        work();
        let wall = started.elapsed().as_secs_f64();
        let after = self.now();
        let cpu = Cpu {
            cli: after.cli - before.cli,
            dfdaemon: after.dfdaemon - before.dfdaemon,
            front: after.front - before.front,
            s3: after.s3 - before.s3,
        };
        (wall, cpu)
    }
}

/// One route's per-run figures beside its wall times.
#[derive(Default)]
struct Runs {
    cpu: Vec<Cpu>,
    mb_per_s: Vec<f64>,
}

impl Runs {
    fn skip_first(&mut self) {
        self.cpu.remove(0);
        self.mb_per_s.remove(0);
    }

    fn each(&self, f: impl Fn(&Cpu) -> f64) -> Vec<f64> {
        self.cpu.iter().map(f).collect()
    }
}

/// A plugin config for `route` whose store endpoint is the TLS front; the
/// front's CA trusted (the plugin's own listing and HEAD go to it, and the
/// tunnel's interception is signed by the same CA).
fn route_config(
    dir: &Path,
    route: &str,
    s3: &S3Server,
    proxy: &str,
    front: &str,
    ca: &Path,
) -> PathBuf {
    let extra = json!({
        "register_as": "mar",
        "download": {"ca_cert": ca, "https_via_peer": route},
    });
    let mut config = config_json(s3, "", proxy, extra);
    config["object_storage"]["endpoint"] = front.into();
    write_config_file(dir, &format!("{route}.json"), &config)
}

pub fn run(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    progress("https: tls_rule vs tunnel (CLI, cold), one peer with both");
    let pki = make_pki(&work.join("pki"));
    let s3 = S3Server::start();
    s3.mb(BUCKET);
    let front = TlsFront::start(s3.endpoint(), &pki);
    let rule = regex_escape(front.authority());
    let ca = pki.ca_cert.to_str().expect("UTF-8 path");
    let ca_key = pki.ca_key.to_str().expect("UTF-8 path");
    let dragonfly =
        DragonflyCluster::start_with(1, &["--proxy-ca", ca, ca_key, "--proxy-tls-rule", &rule]);
    let origin = Origin { s3, dragonfly };
    let proxy = origin.dragonfly.proxy(1);
    let cfg = work.join("cfg-https");
    let config = |route| route_config(&cfg, route, &origin.s3, &proxy, &front.url, &pki.ca_cert);
    let (tls_rule, tunnel) = (config("tls_rule"), config("tunnel"));
    let pids = Pids {
        dfdaemon: origin.dragonfly.peer_pid(1),
        front: front.pid(),
        s3: origin.s3.pid(),
    };
    let (mut rule_runs, mut tunnel_runs) = (Runs::default(), Runs::default());
    let (mut through_front, mut straight) = (Runs::default(), Runs::default());
    let pull = |config: &Path, key: &str, runs: &mut Runs| {
        let store = fresh_dir(work, "store");
        settle();
        let mut report = serde_json::Value::Null;
        let (wall, cpu) = pids.timed(|| report = cli_pull(config, &store, key).1);
        let download = &report["models"][0]["download"];
        assert_eq!(download["served_from"], "dragonfly", "{report:#}");
        let bytes = std::fs::metadata(store.join(key)).map(|m| m.len()).ok();
        assert_eq!(bytes, Some(mar.bytes), "{key} in the model store");
        runs.cpu.push(cpu);
        runs.mb_per_s.push(mar.bytes as f64 / wall / 1e6);
        progress(&format!(
            "  {key}: {wall:.2} s, CPU cli {:.2} dfdaemon {:.2} front {:.2} s (hard_linked {})",
            cpu.cli, cpu.dfdaemon, cpu.front, download["hard_linked"]
        ));
        Sample {
            wall,
            cpu: cpu.cli + cpu.dfdaemon + cpu.front + cpu.s3,
        }
    };
    let pairs = measure(
        args.pairs,
        |run| {
            let key = origin.fresh(mar, &format!("https-rule-{run}.mar"));
            pull(&tls_rule, &key, &mut rule_runs)
        },
        |run| {
            let key = origin.fresh(mar, &format!("https-tunnel-{run}.mar"));
            let sample = pull(&tunnel, &key, &mut tunnel_runs);
            // The front's ceiling, on the object the store just read.
            let url = origin.presign(&key);
            // SAFETY: sync(2) has no memory effects.
            unsafe { libc::sync() };
            let plain = curl_null(&url, None, &pids, mar.bytes, &mut straight);
            let via_front = curl_null(
                &url,
                Some((&front, ca)),
                &pids,
                mar.bytes,
                &mut through_front,
            );
            progress(&format!(
                "  ceiling, store warm: straight {plain:.0} MB/s, through the TLS front {via_front:.0} MB/s"
            ));
            sample
        },
    );
    for runs in [
        &mut rule_runs,
        &mut tunnel_runs,
        &mut through_front,
        &mut straight,
    ] {
        runs.skip_first();
    }
    push_rows(args, &pairs, &rule_runs, &tunnel_runs, mar.bytes, rows);

    // The gRPC route, by dfget (its real client), against tls_rule again.
    let socket = origin.dragonfly.0.dir().join("peer-1/run/dfdaemon.sock");
    let (mut rule_again, mut grpc_runs) = (Runs::default(), Runs::default());
    let grpc_pairs = measure(
        args.pairs,
        |run| {
            let key = origin.fresh(mar, &format!("https-rule-b-{run}.mar"));
            pull(&tls_rule, &key, &mut rule_again)
        },
        |run| {
            let key = origin.fresh(mar, &format!("https-grpc-{run}.mar"));
            let store = fresh_dir(work, "store");
            settle();
            let (wall, cpu) =
                pids.timed(|| dfget(&socket, &origin.s3, &front.url, &key, &store.join(&key)));
            let bytes = std::fs::metadata(store.join(&key)).map(|m| m.len()).ok();
            assert_eq!(bytes, Some(mar.bytes), "{key} written by dfget");
            grpc_runs.cpu.push(cpu);
            grpc_runs.mb_per_s.push(mar.bytes as f64 / wall / 1e6);
            progress(&format!(
                "  {key} (dfget, gRPC): {wall:.2} s, CPU dfget {:.2} dfdaemon {:.2} front {:.2} s",
                cpu.cli, cpu.dfdaemon, cpu.front
            ));
            Sample {
                wall,
                cpu: cpu.cli + cpu.dfdaemon + cpu.front + cpu.s3,
            }
        },
    );
    rule_again.skip_first();
    grpc_runs.skip_first();
    let gib = mar.bytes as f64 / GIB;
    let mut wall = Row::paired(
        "https",
        format!(
            "tls_rule, CLI pull, {} MiB, cold, vs the gRPC route (CPU: client + dfdaemon + TLS front + S3)",
            args.size_mb
        ),
        "dfget over dfdaemon's gRPC socket, s3:// with credentials, hard-linked".into(),
        &grpc_pairs,
        None,
    );
    wall.goal = "reported".into();
    rows.push(wall);
    let per_gib = |runs: &Runs| runs.each(|c| (c.cli + c.dfdaemon) / gib);
    let (v, b) = (per_gib(&rule_again), per_gib(&grpc_runs));
    rows.push(Row {
        case: "https",
        variant:
            "tls_rule: CPU seconds per GiB, CLI + dfdaemon, vs the gRPC route (dfget + dfdaemon)"
                .into(),
        unit: "s/GiB",
        ratios: Some(v.iter().zip(&b).map(|(v, b)| v / b).collect()),
        values: v,
        baseline: Some(("gRPC route".into(), b)),
        goal: "reported".into(),
        met: None,
        cpu: None,
    });
    let front_cpu = through_front.each(|c| c.cli + c.front + c.s3);
    let store_cpu = straight.each(|c| c.cli + c.s3);
    let front_per_gib = through_front.each(|c| c.front / (mar.bytes as f64 / GIB));
    rows.push(Row {
        case: "https",
        variant:
            "TLS front ceiling: curl through it, no Dragonfly, store warm (CPU: curl + front + S3)"
                .into(),
        unit: "MB/s",
        values: through_front.mb_per_s,
        baseline: Some(("curl straight from the S3 server".into(), straight.mb_per_s)),
        goal: "reported".into(),
        met: None,
        ratios: None,
        cpu: Some((front_cpu, store_cpu)),
    });
    rows.push(Row {
        case: "https",
        variant: "TLS front ceiling: the front's own CPU per GiB".into(),
        unit: "s/GiB",
        values: front_per_gib,
        baseline: None,
        goal: "reported".into(),
        met: None,
        ratios: None,
        cpu: None,
    });
}

/// The rows of the paired runs: tls_rule as the variant, tunnel as the
/// baseline, each with the median of its per-pair ratios.
fn push_rows(
    args: &Args,
    pairs: &crate::pairs::Pairs,
    rule: &Runs,
    tunnel: &Runs,
    bytes: u64,
    rows: &mut Vec<Row>,
) {
    let mb = args.size_mb;
    let baseline = "tunnel (CONNECT, intercepted with dfdaemon's CA: two TLS legs)";
    let mut wall = Row::paired(
        "https",
        format!(
            "tls_rule (http:// to the proxy, useTLS rule: one TLS leg), CLI pull, {mb} MiB, cold \
             (process wall; CPU: CLI + dfdaemon + TLS front + S3)"
        ),
        baseline.into(),
        pairs,
        None,
    );
    wall.goal = "reported".into();
    rows.push(wall);
    let paired = |variant: &str, unit: &'static str, v: Vec<f64>, b: Vec<f64>| Row {
        case: "https",
        variant: format!("tls_rule: {variant}"),
        unit,
        ratios: Some(v.iter().zip(&b).map(|(v, b)| v / b).collect()),
        values: v,
        baseline: Some(("tunnel".into(), b)),
        goal: "reported".into(),
        met: None,
        cpu: None,
    };
    rows.push(paired(
        "throughput",
        "MB/s",
        rule.mb_per_s.clone(),
        tunnel.mb_per_s.clone(),
    ));
    rows.push(paired(
        "CPU seconds of the CLI",
        "s",
        rule.each(|c| c.cli),
        tunnel.each(|c| c.cli),
    ));
    rows.push(paired(
        "CPU seconds of dfdaemon",
        "s",
        rule.each(|c| c.dfdaemon),
        tunnel.each(|c| c.dfdaemon),
    ));
    rows.push(paired(
        "CPU seconds of the TLS front (the store's TLS)",
        "s",
        rule.each(|c| c.front),
        tunnel.each(|c| c.front),
    ));
    let gib = bytes as f64 / GIB;
    rows.push(paired(
        "CPU seconds per GiB, CLI + dfdaemon",
        "s/GiB",
        rule.each(|c| (c.cli + c.dfdaemon) / gib),
        tunnel.each(|c| (c.cli + c.dfdaemon) / gib),
    ));
}

/// dfget of `s3://BUCKET/key` from the store behind the TLS front, through
/// dfdaemon's gRPC socket: dfdaemon signs and fetches it itself (OpenDAL,
/// the front's certificate not verified: a private CA, and the gRPC route
/// takes none), then hard-links the task to `output`.
fn dfget(socket: &Path, s3: &S3Server, front: &str, key: &str, output: &Path) {
    let dfget = std::env::var("DFE_DFGET").expect("DFE_DFGET (scripts/bench sets it)");
    let out = Command::new(dfget)
        .arg(format!("s3://{BUCKET}/{key}"))
        .arg("-O")
        .arg(output)
        .arg("--endpoint")
        .arg(socket)
        .args(["--storage-endpoint", front])
        .args(["--storage-region", s3.region()])
        .args(["--storage-access-key-id", s3.access_key()])
        .args(["--storage-access-key-secret", s3.secret_key()])
        .args(["--storage-insecure-skip-verify", "true"])
        .args(["--force-hard-link", "--no-progress"])
        .output()
        .expect("run dfget");
    assert!(
        out.status.success(),
        "dfget s3://{BUCKET}/{key}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `127\.0\.0\.1:port`: the front's authority as a proxy rule's regex.
fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// curl of a presigned URL of the store to /dev/null, straight or (with
/// the front and the CA) as `https://` through the TLS front: MB/s, its CPU
/// seconds pushed to `runs`.
fn curl_null(
    url: &str,
    front: Option<(&TlsFront, &str)>,
    pids: &Pids,
    bytes: u64,
    runs: &mut Runs,
) -> f64 {
    let mut command = Command::new("curl");
    command.args([
        "-sSf",
        "--noproxy",
        "*",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
    ]);
    let url = match front {
        Some((front, ca)) => {
            // The presigned URL names the store's host; the bytes go to the front.
            let store = url
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default();
            command.args(["--cacert", ca, "--connect-to"]);
            command.arg(format!("{store}:{}", front.authority()));
            url.replacen("http://", "https://", 1)
        }
        None => url.to_string(),
    };
    command.arg(&url);
    let mut output = None;
    let (wall, cpu) = pids.timed(|| output = Some(command.output().expect("run curl")));
    let output = output.expect("curl ran");
    assert!(
        output.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert_eq!(got, bytes, "curl {url}: bytes");
    let mb_per_s = bytes as f64 / wall / 1e6;
    runs.cpu.push(cpu);
    runs.mb_per_s.push(mb_per_s);
    mb_per_s
}
