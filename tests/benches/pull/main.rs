//! The benchmark of issue 7: every case against its baseline, measured in
//! the same run on the same servers (real SeaweedFS, real Dragonfly, real
//! TorchServe 0.12, all on 127.0.0.1), each run alternating variant and
//! baseline. Prints a table of median, min and max and the ratio of the
//! medians. `scripts/bench` builds everything in release mode and runs it.
//!
//!     scripts/bench [--size-mb 1024] [--runs 3] [--pairs 5] [--cases cold,warm,...] [--json FILE]
//!                   [--fleet-nodes 2,4,8] [--fleet-links 1gbit,2500mbit] [--chart FILE]
//!
//! Cases: cold, warm, register, many, fleet (nodes in network namespaces
//! over shaped links; needs root), memory (`direct` runs with
//! `cold`), forms (model directories, zip-store, zip64; paired runs, see
//! `pairs.rs`), https (an `https://` store through the peer: the
//! `tls_rule` and `tunnel` routes, paired). Every loop is bounded by --runs;
//! every server is stopped when its handle drops.

mod chart;
mod cold;
mod fixtures;
mod fleet;
mod forms;
mod https;
mod many;
mod memory;
mod pairs;
mod register;
mod serving;
mod stats;
mod tls_front;
mod warm;

use std::path::PathBuf;

use dragonfly_endpoint_testbed::{cached_mar, Mar};

use crate::fixtures::progress;
use crate::stats::{print_table, write_json};

pub const MIB: f64 = 1024.0 * 1024.0;

pub struct Args {
    pub size_mb: u64,
    pub runs: usize,
    /// Measured pairs of the paired cases (one warm-up pair more).
    pub pairs: usize,
    pub cases: Vec<String>,
    pub json: Option<PathBuf>,
    /// The fleet case's node counts.
    pub fleet_nodes: Vec<usize>,
    /// The fleet case's shaping: the store's egress and each node's link
    /// (tc rates, as `scripts/testbed/netns up` takes them).
    pub fleet_links: (String, String),
    /// The fleet runs a Dragonfly seed peer on a host of its own.
    pub fleet_seed_peer: bool,
    /// Where the fleet case draws its chart (SVG).
    pub chart: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        size_mb: 1024,
        runs: 3,
        pairs: 5,
        cases: [
            "cold", "warm", "register", "many", "fleet", "memory", "forms", "https",
        ]
        .map(String::from)
        .to_vec(),
        json: None,
        fleet_nodes: vec![2, 4, 8],
        fleet_links: ("1gbit".into(), "2500mbit".into()),
        fleet_seed_peer: false,
        chart: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--size-mb" => args.size_mb = value().parse().expect("--size-mb N"),
            "--runs" => args.runs = value().parse().expect("--runs N"),
            "--pairs" => args.pairs = value().parse().expect("--pairs N"),
            "--cases" => args.cases = value().split(',').map(String::from).collect(),
            "--json" => args.json = Some(PathBuf::from(value())),
            "--chart" => args.chart = Some(PathBuf::from(value())),
            "--fleet-nodes" => {
                args.fleet_nodes = value()
                    .split(',')
                    .map(|n| n.parse().expect("--fleet-nodes 2,4,8"))
                    .collect()
            }
            "--fleet-links" => {
                let links = value();
                let (store, node) = links
                    .split_once(',')
                    .expect("--fleet-links STORE_RATE,NODE_RATE (e.g. 1gbit,2500mbit)");
                args.fleet_links = (store.into(), node.into());
            }
            "--fleet-seed-peer" => args.fleet_seed_peer = true,
            // cargo bench passes --bench to harness=false targets.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!((1..=20).contains(&args.runs), "--runs 1..=20");
    assert!((1..=20).contains(&args.pairs), "--pairs 1..=20");
    args
}

fn main() {
    // This binary run again as the https case's TLS front.
    if tls_front::serve_if_asked() {
        return;
    }
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
        cold::run(&args, &mar, work.path(), &mut rows);
    }
    if wants("register") {
        register::run(&args, &mar, work.path(), &mut rows);
    }
    if wants("many") {
        let parts: Vec<Mar> = (0..8)
            .map(|i| cached_mar("part", size / 8.0, 100 + i))
            .collect();
        many::run(&args, &mar, &parts, work.path(), &mut rows);
    }
    if wants("fleet") {
        fleet::run(&args, &mar, work.path(), &mut rows);
    }
    if wants("memory") {
        memory::run(&args, &mar, work.path(), &mut rows);
    }
    if wants("forms") {
        forms::run(&args, work.path(), &mut rows);
    }
    if wants("https") {
        https::run(&args, &mar, work.path(), &mut rows);
    }
    print_table(&rows);
    if let Some(path) = &args.json {
        write_json(path, &rows);
    }
}
