//! fleet: N = 2, 4, 8 nodes over shaped links (scripts/testbed/fleet: a
//! network namespace per node, the store's egress capped, Dragonfly's
//! default scheduling) pull one fresh archive at once, each with its own
//! dfdaemon and CLI; against the same N downloading it straight from the
//! store over the same links. Runs alternate which goes first. Reports the
//! time until the last node has it, what the store sent (its metric and
//! its link's counter) and, per node, bytes from the source and from
//! peers (dfdaemon's own counters); draws the chart (`--chart FILE`).

use std::path::Path;
use std::time::Instant;

use dragonfly_endpoint_testbed::{Fleet, Mar, PREFIX};
use serde_json::json;

use crate::fixtures::progress;
use crate::stats::{median, Row};
use crate::Args;

/// One fleet pull: time to the last node, store bytes (metric, link).
struct Run {
    seconds: f64,
    sent: u64,
    wire: u64,
}

/// What one N measured.
pub struct Point {
    pub nodes: usize,
    dragonfly: Vec<Run>,
    direct: Vec<Run>,
    /// Per node, summed over the Dragonfly runs: (from source, from peers).
    traffic: Vec<(u64, u64)>,
}

fn measured(fleet: &Fleet, pull: impl FnOnce()) -> Run {
    let (sent, (wire, _)) = (fleet.sent_bytes(), fleet.counters("store"));
    let started = Instant::now();
    pull();
    let seconds = started.elapsed().as_secs_f64();
    Run {
        seconds,
        sent: fleet.sent_bytes() - sent,
        wire: fleet.counters("store").0 - wire,
    }
}

fn dragonfly_pull(fleet: &Fleet, work: &Path, key: &str) -> Run {
    let configs: Vec<_> = (1..=fleet.nodes)
        .map(|k| fleet.config(k, &work.join("cfg"), json!({"register_as": "mar"})))
        .collect();
    measured(fleet, || {
        std::thread::scope(|scope| {
            for (i, config) in configs.iter().enumerate() {
                let store = work.join(format!("store-{}", i + 1));
                let _ = std::fs::remove_dir_all(&store);
                scope.spawn(move || {
                    let output = fleet
                        .pull(i + 1, config, &store, &["--model", key, "--no-progress"])
                        .output()
                        .expect("run the CLI");
                    assert!(
                        output.status.success(),
                        "node {}: {}",
                        i + 1,
                        String::from_utf8_lossy(&output.stderr)
                    );
                });
            }
        });
    })
}

fn direct_pull(fleet: &Fleet, work: &Path, key: &str) -> Run {
    let url = fleet.presign(&format!("{PREFIX}{key}"));
    measured(fleet, || {
        std::thread::scope(|scope| {
            for k in 1..=fleet.nodes {
                let out = work.join(format!("direct-{k}.mar"));
                let url = url.as_str();
                scope.spawn(move || {
                    let curl = std::path::PathBuf::from("/usr/bin/curl");
                    let out_text = out.display().to_string();
                    let status = fleet
                        .on(&format!("node-{k}"), &curl, &["-sSf", "-o", &out_text, url])
                        .status()
                        .expect("run curl");
                    assert!(status.success(), "node {k}: curl failed");
                    let _ = std::fs::remove_file(&out);
                });
            }
        });
    })
}

pub fn run(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    let mut points = Vec::new();
    for &nodes in &args.fleet_nodes {
        progress(&format!("fleet: {nodes} nodes over shaped links"));
        let fleet = Fleet::start(nodes, &[]);
        fleet.make_bucket();
        let work = work.join(format!("fleet-{nodes}"));
        std::fs::create_dir_all(&work).expect("fleet work dir");
        let mut point = Point {
            nodes,
            dragonfly: Vec::new(),
            direct: Vec::new(),
            traffic: vec![(0, 0); nodes],
        };
        for run in 0..args.runs {
            let key = format!("fleet-{nodes}-{run}.mar");
            fleet.upload(&format!("{PREFIX}{key}"), &mar.path);
            let before: Vec<_> = (1..=nodes).map(|k| fleet.peer_traffic(k)).collect();
            let dragonfly_first = run % 2 == 0;
            if !dragonfly_first {
                point.direct.push(direct_pull(&fleet, &work, &key));
            }
            point.dragonfly.push(dragonfly_pull(&fleet, &work, &key));
            for (k, (source, peers)) in before.iter().enumerate() {
                let (s, p) = fleet.peer_traffic(k + 1);
                point.traffic[k].0 += s - source;
                point.traffic[k].1 += p - peers;
            }
            if dragonfly_first {
                point.direct.push(direct_pull(&fleet, &work, &key));
            }
            let (d, b) = (point.dragonfly.last(), point.direct.last());
            progress(&format!(
                "  run {}: dragonfly {:.2} s, direct {:.2} s",
                run + 1,
                d.map_or(f64::NAN, |r| r.seconds),
                b.map_or(f64::NAN, |r| r.seconds)
            ));
        }
        push_rows(&point, mar, rows);
        points.push(point);
    }
    growth_row(&points, rows);
    if let Some(path) = &args.chart {
        crate::chart::write(path, &points, mar.bytes);
    }
}

fn push_rows(point: &Point, mar: &Mar, rows: &mut Vec<Row>) {
    let n = point.nodes;
    let secs = |runs: &[Run]| runs.iter().map(|r| r.seconds).collect::<Vec<_>>();
    let ratios: Vec<f64> = point
        .dragonfly
        .iter()
        .zip(&point.direct)
        .map(|(d, b)| d.seconds / b.seconds)
        .collect();
    let goal = (n == 8).then_some(0.35);
    rows.push(Row {
        case: "fleet",
        variant: format!("{n} nodes via Dragonfly: time to the last node"),
        unit: "s",
        values: secs(&point.dragonfly),
        baseline: Some((
            format!("{n} nodes direct from the store"),
            secs(&point.direct),
        )),
        goal: goal.map_or("reported".into(), |g| format!("ratio <= {g}")),
        met: goal.map(|g| median(&ratios) <= g),
        ratios: Some(ratios),
        cpu: None,
    });
    let size = mar.bytes as f64;
    let times = |runs: &[Run], f: fn(&Run) -> u64| {
        runs.iter().map(|r| f(r) as f64 / size).collect::<Vec<_>>()
    };
    let sent = times(&point.dragonfly, |r| r.sent);
    rows.push(Row {
        case: "fleet",
        variant: format!("{n} nodes: store sent (its metric, x archive size)"),
        unit: "x",
        met: Some(sent.iter().all(|s| *s <= 1.05)),
        values: sent,
        baseline: Some((
            format!("{n} nodes direct"),
            times(&point.direct, |r| r.sent),
        )),
        goal: "<= 1.05 x size, every run".into(),
        ratios: None,
        cpu: None,
    });
    rows.push(Row {
        case: "fleet",
        variant: format!("{n} nodes: store's link carried (tx counter, x size)"),
        unit: "x",
        met: None,
        values: times(&point.dragonfly, |r| r.wire),
        baseline: Some((
            format!("{n} nodes direct"),
            times(&point.direct, |r| r.wire),
        )),
        goal: "reported".into(),
        ratios: None,
        cpu: None,
    });
    let runs = point.dragonfly.len().max(1) as f64;
    let per_node: Vec<String> = point
        .traffic
        .iter()
        .enumerate()
        .map(|(k, (s, p))| {
            format!(
                "n{}: {:.2}/{:.2}",
                k + 1,
                *s as f64 / runs / size,
                *p as f64 / runs / size
            )
        })
        .collect();
    progress(&format!(
        "  {n} nodes, per node (source/peers, x size per run): {}",
        per_node.join(", ")
    ));
    rows.push(Row {
        case: "fleet",
        variant: format!(
            "{n} nodes: per node from source/peers (x size) {}",
            per_node.join(" ")
        ),
        unit: "x",
        values: point
            .traffic
            .iter()
            .map(|(s, _)| *s as f64 / runs / size)
            .collect(),
        baseline: None,
        goal: "reported".into(),
        met: None,
        ratios: None,
        cpu: None,
    });
}

/// How the time to the last node grows from the fewest to the most nodes.
fn growth_row(points: &[Point], rows: &mut Vec<Row>) {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return;
    };
    if first.nodes == last.nodes {
        return;
    }
    let secs = |p: &Point| p.dragonfly.iter().map(|r| r.seconds).collect::<Vec<_>>();
    let growth = median(&secs(last)) / median(&secs(first));
    rows.push(Row {
        case: "fleet",
        variant: format!(
            "time to the last node, {} vs {} nodes via Dragonfly",
            last.nodes, first.nodes
        ),
        unit: "s",
        values: secs(last),
        baseline: Some((format!("{} nodes", first.nodes), secs(first))),
        goal: "ratio <= 1.3".into(),
        met: Some(growth <= 1.3),
        ratios: None,
        cpu: None,
    });
}

impl Point {
    /// Medians for the chart: (time via Dragonfly, time direct, store
    /// bytes via Dragonfly, store bytes direct).
    pub fn medians(&self) -> (f64, f64, f64, f64) {
        let m = |runs: &[Run], f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        (
            m(&self.dragonfly, |r| r.seconds),
            m(&self.direct, |r| r.seconds),
            m(&self.dragonfly, |r| r.sent as f64),
            m(&self.direct, |r| r.sent as f64),
        )
    }
}
