//! The benchmark of issue 7: every case against its baseline, measured in
//! the same run on the same servers (real SeaweedFS, real Dragonfly, real
//! TorchServe 0.12, all on 127.0.0.1), each run alternating variant and
//! baseline. Prints a table of median, min and max and the ratio of the
//! medians. `scripts/bench` builds everything in release mode and runs it.
//!
//!     scripts/bench [--size-mb 1024] [--runs 3] [--cases cold,warm,...] [--json FILE]
//!
//! Cases: cold, warm, register, many, fleet, memory (`direct` runs with
//! `cold`). Every loop is bounded by --runs; every server is stopped when
//! its handle drops.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dragonfly_endpoint_core::fetch::filtered_query_params;
use dragonfly_endpoint_testbed::{
    cached_mar, plugins_dir, DragonflyCluster, Mar, S3Server, TorchServe,
};
use serde_json::{json, Value};

const BUCKET: &str = "models";
const MIB: f64 = 1024.0 * 1024.0;

struct Args {
    size_mb: u64,
    runs: usize,
    cases: Vec<String>,
    json: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        size_mb: 1024,
        runs: 3,
        cases: ["cold", "warm", "register", "many", "fleet", "memory"]
            .map(String::from)
            .to_vec(),
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--size-mb" => args.size_mb = value().parse().expect("--size-mb N"),
            "--runs" => args.runs = value().parse().expect("--runs N"),
            "--cases" => args.cases = value().split(',').map(String::from).collect(),
            "--json" => args.json = Some(PathBuf::from(value())),
            // cargo bench passes --bench to harness=false targets.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!((1..=20).contains(&args.runs), "--runs 1..=20");
    args
}

/// One line of the result table.
struct Row {
    case: &'static str,
    variant: String,
    unit: &'static str,
    values: Vec<f64>,
    baseline: Option<(String, Vec<f64>)>,
    goal: String,
    /// Whether the goal holds, from the medians (None: reported only).
    met: Option<bool>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .map(|(_, base)| median(&self.values) / median(base))
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| case | variant | median | min | max | baseline (median) | ratio | goal | met |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let fmt = |v: f64, unit: &str| match unit {
        "s" if v < 0.1 => format!("{:.1} ms", v * 1e3),
        "s" => format!("{v:.2} s"),
        "MiB" => format!("{v:.0} MiB"),
        "x" => format!("{v:.3}x"),
        _ => format!("{v:.2} {unit}"),
    };
    for row in rows {
        let baseline = match &row.baseline {
            Some((label, base)) => format!("{label}: {}", fmt(median(base), row.unit)),
            None => "-".into(),
        };
        let ratio = row.ratio().map(|r| format!("{r:.2}")).unwrap_or("-".into());
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.case,
            row.variant,
            fmt(median(&row.values), row.unit),
            fmt(min(&row.values), row.unit),
            fmt(max(&row.values), row.unit),
            baseline,
            ratio,
            row.goal,
            met
        );
    }
}

fn write_json(path: &Path, rows: &[Row]) {
    let mut file = std::fs::File::create(path).expect("--json file");
    for row in rows {
        let line = json!({
            "case": row.case,
            "variant": row.variant,
            "unit": row.unit,
            "values": row.values,
            "median": median(&row.values),
            "baseline": row.baseline.as_ref().map(|(l, v)| json!({"label": l, "values": v, "median": median(v)})),
            "ratio": row.ratio(),
            "goal": row.goal,
            "met": row.met,
        });
        writeln!(file, "{line}").expect("write --json");
    }
}

fn progress(text: &str) {
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

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1800))
        .build()
        .expect("http client")
}

/// The CLI next to this bench binary (target/release/).
fn cli() -> PathBuf {
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
struct Origin {
    s3: S3Server,
}

impl Origin {
    fn start() -> Origin {
        let s3 = S3Server::start();
        s3.mb(BUCKET);
        Origin { s3 }
    }

    /// A key nobody has fetched yet, so no peer has a task for it.
    fn fresh(&self, mar: &Mar, key: &str) -> String {
        self.s3.put(BUCKET, key, &mar.path);
        key.to_string()
    }

    fn presign(&self, key: &str) -> String {
        self.s3.presign(BUCKET, key, 3600)
    }
}

fn write_config(dir: &Path, name: &str, s3: &S3Server, proxy: &str, extra: Value) -> PathBuf {
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
fn cli_pull(config: &Path, store: &Path, model: &str) -> (f64, Value) {
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
fn curl(url: &str, proxy: Option<&str>, out: &Path) -> f64 {
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

fn fresh_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// cold, direct and warm: the download alone (the CLI with `register_as:
/// mar`, nothing registered).
fn download_cases(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    let origin = Origin::start();
    let dragonfly = DragonflyCluster::start(1);
    let proxy = dragonfly.proxy(1);
    let cfg = work.join("cfg-download");
    let mar_only = write_config(
        &cfg,
        "mar.json",
        &origin.s3,
        &proxy,
        json!({"register_as": "mar"}),
    );
    let streamed_warm = write_config(
        &cfg,
        "streamed.json",
        &origin.s3,
        &proxy,
        json!({"register_as": "mar", "download": {"hard_link": "off"}}),
    );
    let (mut plugin, mut plugin_dl, mut via_curl, mut direct) = (vec![], vec![], vec![], vec![]);
    let (mut warm_link, mut warm_link_wall, mut warm_stream) = (vec![], vec![], vec![]);
    let mut keys = Vec::new();
    for run in 0..args.runs {
        progress(&format!("cold/direct/warm run {}/{}", run + 1, args.runs));
        // The plugin, cold.
        let key = origin.fresh(mar, &format!("cold-plugin-{run}.mar"));
        let store = fresh_dir(work, "store");
        let (wall, report) = cli_pull(&mar_only, &store, &key);
        let download = &report["models"][0]["download"];
        assert_eq!(download["served_from"], "dragonfly", "{report:#}");
        plugin.push(wall);
        plugin_dl.push(download["seconds"].as_f64().unwrap_or(f64::NAN));
        keys.push(key);
        // curl through the same proxy, cold.
        let key = origin.fresh(mar, &format!("cold-curl-{run}.mar"));
        let out = fresh_dir(work, "curl").join("a.mar");
        via_curl.push(curl(&origin.presign(&key), Some(&proxy), &out));
        assert_eq!(
            std::fs::metadata(&out).map(|m| m.len()).ok(),
            Some(mar.bytes)
        );
        // Straight from the store: the physical limit.
        direct.push(curl(&origin.presign(&key), None, &out));

        // Warm: the task of this run's plugin key is in the peer's cache;
        // an empty store each time.
        let key = &keys[run];
        let store = fresh_dir(work, "store");
        let (wall, report) = cli_pull(&mar_only, &store, key);
        let download = &report["models"][0]["download"];
        assert_eq!(download["hard_linked"], true, "{report:#}");
        warm_link.push(download["seconds"].as_f64().unwrap_or(f64::NAN));
        warm_link_wall.push(wall);
        let store = fresh_dir(work, "store");
        let (_, report) = cli_pull(&streamed_warm, &store, key);
        let download = &report["models"][0]["download"];
        assert_eq!(download["served_from"], "dragonfly_cache", "{report:#}");
        warm_stream.push(download["seconds"].as_f64().unwrap_or(f64::NAN));
    }
    let mb = args.size_mb;
    let cold_ratio = median(&plugin) / median(&via_curl);
    rows.push(Row {
        case: "cold pull",
        variant: format!("plugin CLI via dfdaemon, {mb} MiB (process wall)"),
        unit: "s",
        values: plugin.clone(),
        baseline: Some(("curl -x same proxy".into(), via_curl.clone())),
        goal: "ratio <= 1.05".into(),
        met: Some(cold_ratio <= 1.05),
    });
    rows.push(Row {
        case: "cold pull",
        variant: "plugin download only (report's seconds)".into(),
        unit: "s",
        values: plugin_dl,
        baseline: Some(("curl -x same proxy".into(), via_curl)),
        goal: "-".into(),
        met: None,
    });
    rows.push(Row {
        case: "physical limit",
        variant: "curl straight from the S3 server".into(),
        unit: "s",
        values: direct,
        baseline: Some(("plugin cold pull".into(), plugin)),
        goal: "reported".into(),
        met: None,
    });
    let link_ms = median(&warm_link) * 1e3;
    rows.push(Row {
        case: "warm pull",
        variant: "hard link from the peer cache (report's seconds)".into(),
        unit: "s",
        values: warm_link,
        baseline: Some(("streamed from the peer cache".into(), warm_stream.clone())),
        goal: format!("<= 20 ms for 1 GiB (median {link_ms:.1} ms)"),
        met: Some(link_ms <= 20.0),
    });
    rows.push(Row {
        case: "warm pull",
        variant: "hard link, CLI process wall (start, HEAD, presign, link)".into(),
        unit: "s",
        values: warm_link_wall,
        baseline: Some(("streamed from the peer cache".into(), warm_stream)),
        goal: "-".into(),
        met: None,
    });
}

/// TorchServe with the plugin and its model API on, for the baseline.
struct Serving {
    ts: TorchServe,
    _plugins: tempfile::TempDir,
}

impl Serving {
    fn start(config: &Path) -> Serving {
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

    fn call(&self, method: &str, path: &str) -> (u16, Value) {
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
    fn timed(&self, method: &str, path: &str) -> f64 {
        let started = Instant::now();
        let (status, body) = self.call(method, path);
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(status, 200, "{method} {path}: {body:#}");
        seconds
    }

    fn check_answer(&self, model: &str, mar: &Mar) {
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
    fn remove_store_files(&self, prefix: &str) {
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

/// register: PUT /dragonfly until registered with 1 worker vs TorchServe's
/// own POST /models?url=<presigned URL>, cold, warm and re-pull, and the
/// same with `register_as: mar`.
fn register_case(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    let origin = Origin::start();
    let dragonfly = DragonflyCluster::start(1);
    let cfg = work.join("cfg-register");
    let config = write_config(
        &cfg,
        "config.json",
        &origin.s3,
        &dragonfly.proxy(1),
        json!({}),
    );
    let mar_config = write_config(
        &cfg,
        "mar.json",
        &origin.s3,
        &dragonfly.proxy(1),
        json!({"register_as": "mar"}),
    );
    let serving = Serving::start(&config);
    let (mut cold, mut warm, mut repull, mut cold_mar, mut baseline) =
        (vec![], vec![], vec![], vec![], vec![]);
    for run in 0..args.runs {
        progress(&format!("register run {}/{}", run + 1, args.runs));
        // TorchServe's own registration from a presigned URL.
        let name = format!("base{run}");
        let key = origin.fresh(mar, &format!("{name}.mar"));
        let url: String =
            url::form_urlencoded::byte_serialize(origin.presign(&key).as_bytes()).collect();
        baseline.push(serving.timed(
            "POST",
            &format!("/models?url={url}&model_name={name}&initial_workers=1&synchronous=true"),
        ));
        serving.check_answer(&name, mar);
        serving.call("DELETE", &format!("/models/{name}"));
        serving.remove_store_files(&name);

        // The plugin, cold (a new key: nothing cached anywhere).
        let name = format!("reg{run}");
        let key = origin.fresh(mar, &format!("{name}.mar"));
        cold.push(serving.timed("PUT", &format!("/dragonfly?model={key}")));
        serving.check_answer(&name, mar);
        // Unregistered through TorchServe only: archive and unpacked copy
        // stay; the re-pull only registers.
        serving.call("DELETE", &format!("/models/{name}"));
        repull.push(serving.timed("PUT", &format!("/dragonfly?model={key}")));
        serving.check_answer(&name, mar);
        // Removed with the plugin (archive and copy gone); the peer still
        // has the task: warm.
        serving.call("DELETE", &format!("/dragonfly?model={name}"));
        warm.push(serving.timed("PUT", &format!("/dragonfly?model={key}")));
        serving.check_answer(&name, mar);
        serving.call("DELETE", &format!("/dragonfly?model={name}"));

        // register_as mar, cold: TorchServe unzips.
        let name = format!("regmar{run}");
        let key = origin.fresh(mar, &format!("{name}.mar"));
        cold_mar.push(serving.timed(
            "PUT",
            &format!("/dragonfly?model={key}&config={}", mar_config.display()),
        ));
        serving.check_answer(&name, mar);
        serving.call("DELETE", &format!("/dragonfly?model={name}"));
    }
    let base = || {
        (
            "TorchServe POST /models?url=presigned".to_string(),
            baseline.clone(),
        )
    };
    let ratio = |v: &[f64]| median(v) / median(&baseline);
    rows.push(Row {
        case: "register end to end",
        variant: "PUT, cold (unpacked while streaming)".into(),
        unit: "s",
        met: Some(ratio(&cold) <= 0.5),
        values: cold,
        baseline: Some(base()),
        goal: "ratio <= 0.5".into(),
    });
    rows.push(Row {
        case: "register end to end",
        variant: "PUT, warm (peer cache: hard link, unpack from file)".into(),
        unit: "s",
        met: Some(ratio(&warm) <= 0.2),
        values: warm,
        baseline: Some(base()),
        goal: "ratio <= 0.2".into(),
    });
    rows.push(Row {
        case: "register end to end",
        variant: "PUT, re-pull (unchanged, unpacked copy cached)".into(),
        unit: "s",
        met: None,
        values: repull,
        baseline: Some(base()),
        goal: "-".into(),
    });
    rows.push(Row {
        case: "register end to end",
        variant: "PUT, cold, register_as mar (TorchServe unzips)".into(),
        unit: "s",
        met: None,
        values: cold_mar,
        baseline: Some(base()),
        goal: "-".into(),
    });
}

/// many: `model=all` over 8 archives of size/8 vs one of size.
fn many_case(args: &Args, mar: &Mar, parts: &[Mar], work: &Path, rows: &mut Vec<Row>) {
    let origin = Origin::start();
    let dragonfly = DragonflyCluster::start(1);
    let (mut many, mut one) = (vec![], vec![]);
    for run in 0..args.runs {
        progress(&format!("many run {}/{}", run + 1, args.runs));
        for (i, part) in parts.iter().enumerate() {
            origin.fresh(part, &format!("many{run}/part{i}.mar"));
        }
        origin.fresh(mar, &format!("one{run}/whole.mar"));
        let cfg = work.join("cfg-many");
        let many_config = write_config(
            &cfg,
            "many.json",
            &origin.s3,
            &dragonfly.proxy(1),
            json!({"register_as": "mar", "object_storage": {
                "type": "s3", "bucket_name": BUCKET, "prefix": format!("many{run}/"),
                "region": origin.s3.region(), "endpoint": origin.s3.endpoint(),
                "access_key": origin.s3.access_key(), "secret_key": origin.s3.secret_key()}}),
        );
        let one_config = write_config(
            &cfg,
            "one.json",
            &origin.s3,
            &dragonfly.proxy(1),
            json!({"register_as": "mar", "object_storage": {
                "type": "s3", "bucket_name": BUCKET, "prefix": format!("one{run}/"),
                "region": origin.s3.region(), "endpoint": origin.s3.endpoint(),
                "access_key": origin.s3.access_key(), "secret_key": origin.s3.secret_key()}}),
        );
        let (wall, report) = cli_pull(&many_config, &fresh_dir(work, "store"), "all");
        assert_eq!(report["models"].as_array().map(Vec::len), Some(parts.len()));
        many.push(wall);
        one.push(cli_pull(&one_config, &fresh_dir(work, "store"), "all").0);
    }
    let ratio = median(&many) / median(&one);
    rows.push(Row {
        case: "many models",
        variant: format!(
            "model=all, {} x {} MiB",
            parts.len(),
            args.size_mb / parts.len() as u64
        ),
        unit: "s",
        values: many,
        baseline: Some((format!("1 x {} MiB", args.size_mb), one)),
        goal: "ratio <= 1.2".into(),
        met: Some(ratio <= 1.2),
    });
}

/// fleet: 3 nodes (a dfdaemon and a CLI each) pull one archive at once.
fn fleet_case(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    let origin = Origin::start();
    let dragonfly = DragonflyCluster::start(3);
    let configs: Vec<PathBuf> = (1..=3)
        .map(|i| {
            write_config(
                &work.join("cfg-fleet"),
                &format!("node{i}.json"),
                &origin.s3,
                &dragonfly.proxy(i),
                json!({"register_as": "mar"}),
            )
        })
        .collect();
    let (mut wall, mut sent, mut direct_wall, mut direct_sent) = (vec![], vec![], vec![], vec![]);
    for run in 0..args.runs {
        progress(&format!("fleet run {}/{}", run + 1, args.runs));
        let key = origin.fresh(mar, &format!("fleet-{run}.mar"));
        let before = origin.s3.sent_bytes();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for (i, config) in configs.iter().enumerate() {
                let store = fresh_dir(work, &format!("fleet-store-{i}"));
                let key = key.clone();
                scope.spawn(move || cli_pull(config, &store, &key));
            }
        });
        wall.push(started.elapsed().as_secs_f64());
        sent.push((origin.s3.sent_bytes() - before) as f64 / mar.bytes as f64);

        let key = origin.fresh(mar, &format!("fleet-direct-{run}.mar"));
        let before = origin.s3.sent_bytes();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for i in 0..3 {
                let url = origin.presign(&key);
                let out = fresh_dir(work, &format!("fleet-direct-{i}")).join("a.mar");
                scope.spawn(move || curl(&url, None, &out));
            }
        });
        direct_wall.push(started.elapsed().as_secs_f64());
        direct_sent.push((origin.s3.sent_bytes() - before) as f64 / mar.bytes as f64);
    }
    let sent_median = median(&sent);
    rows.push(Row {
        case: "fleet",
        variant: "object store sent, 3 nodes via Dragonfly (x archive size)".into(),
        unit: "x",
        values: sent,
        baseline: Some(("3 nodes direct".into(), direct_sent)),
        goal: "<= 1.1 x size".into(),
        met: Some(sent_median <= 1.1),
    });
    rows.push(Row {
        case: "fleet",
        variant: "wall time, 3 nodes via Dragonfly".into(),
        unit: "s",
        values: wall,
        baseline: Some(("3 nodes direct (curl)".into(), direct_wall)),
        goal: "reported".into(),
        met: None,
    });
}

/// A value of /proc/PID/status in KiB, as MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// memory: peak RSS of the CLI during a cold pull (with unpacking), and
/// the TorchServe JVM's RSS growth during a cold PUT.
fn memory_case(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    let origin = Origin::start();
    let dragonfly = DragonflyCluster::start(1);
    let cfg = work.join("cfg-memory");
    let config = write_config(
        &cfg,
        "config.json",
        &origin.s3,
        &dragonfly.proxy(1),
        json!({}),
    );
    let serving = Serving::start(&config);
    let jvm = serving.ts.pid();
    // The first call loads the native library: a one-time cost, not a pull's.
    let (status, _) = serving.call("GET", "/dragonfly");
    assert_eq!(status, 200);
    let (mut cli_peak, mut jvm_growth) = (vec![], vec![]);
    for run in 0..args.runs {
        progress(&format!("memory run {}/{}", run + 1, args.runs));
        let key = origin.fresh(mar, &format!("mem-cli-{run}.mar"));
        let store = fresh_dir(work, "store");
        let mut child = Command::new(cli())
            .args(["pull", "--no-progress", "--config"])
            .arg(&config)
            .arg("--model-store")
            .arg(&store)
            .args(["--model", &key])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the CLI");
        let mut peak: f64 = 0.0;
        loop {
            if let Some(hwm) = status_mib(child.id(), "VmHWM:") {
                peak = peak.max(hwm);
            }
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "CLI pull failed");
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        cli_peak.push(peak);

        let name = format!("mem{run}");
        let key = origin.fresh(mar, &format!("{name}.mar"));
        let before = status_mib(jvm, "VmRSS:").expect("JVM RSS");
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut top: f64 = 0.0;
                while !done.load(Ordering::Relaxed) {
                    if let Some(rss) = status_mib(jvm, "VmRSS:") {
                        top = top.max(rss);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                top
            })
        };
        serving.timed("PUT", &format!("/dragonfly?model={key}"));
        done.store(true, Ordering::Relaxed);
        let top = sampler.join().expect("sampler");
        jvm_growth.push((top - before).max(0.0));
        serving.call("DELETE", &format!("/dragonfly?model={name}"));
    }
    rows.push(Row {
        case: "memory",
        variant: format!(
            "CLI peak RSS (VmHWM), cold {} MiB pull + unpack",
            args.size_mb
        ),
        unit: "MiB",
        met: Some(median(&cli_peak) <= 64.0),
        values: cli_peak,
        baseline: None,
        goal: "<= 64 MiB".into(),
    });
    rows.push(Row {
        case: "memory",
        variant: "TorchServe JVM RSS growth during a cold PUT (workers excluded)".into(),
        unit: "MiB",
        met: Some(median(&jvm_growth) <= 64.0),
        values: jvm_growth,
        baseline: None,
        goal: "<= 64 MiB".into(),
    });
}

fn main() {
    let args = parse_args();
    let size = args.size_mb as f64;
    progress(&format!(
        "archive {} MiB, {} run(s), cases {}",
        args.size_mb,
        args.runs,
        args.cases.join(",")
    ));
    let mar = cached_mar("big", size, 41);
    progress(&format!(
        "archive: {} ({:.0} MiB)",
        mar.path.display(),
        mar.bytes as f64 / MIB
    ));
    let work = tempfile::Builder::new()
        .prefix("dfe-bench-")
        .tempdir()
        .expect("work dir");
    let mut rows = Vec::new();
    let wants = |case: &str| args.cases.iter().any(|c| c == case);
    if wants("cold") || wants("warm") || wants("direct") {
        download_cases(&args, &mar, work.path(), &mut rows);
    }
    if wants("register") {
        register_case(&args, &mar, work.path(), &mut rows);
    }
    if wants("many") {
        let parts: Vec<Mar> = (0..8)
            .map(|i| cached_mar("part", size / 8.0, 100 + i))
            .collect();
        many_case(&args, &mar, &parts, work.path(), &mut rows);
    }
    if wants("fleet") {
        fleet_case(&args, &mar, work.path(), &mut rows);
    }
    if wants("memory") {
        memory_case(&args, &mar, work.path(), &mut rows);
    }
    print_table(&rows);
    if let Some(path) = &args.json {
        write_json(path, &rows);
    }
}
