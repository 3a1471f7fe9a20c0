//! fleet: N = 2, 4, 8 nodes over shaped links (scripts/testbed/fleet: a
//! network namespace per node, the store's egress capped, Dragonfly's
//! default scheduling) pull one fresh archive at once, each with its own
//! dfdaemon and CLI; against the same N downloading it straight from the
//! store over the same links. Runs alternate which goes first. Reports the
//! time until the last node has it, what the store sent (its metric and
//! its link's counter) and, per node, bytes from the source and from
//! peers (dfdaemon's own counters); draws the chart (`--chart FILE`).
//!
//! Nodes 1 and 2 also run TorchServe with the plugin (the product jar).
//! Each run then pulls one more fresh key at once: PUT /dragonfly on both
//! TorchServes (synchronous: 200 once registered with its worker), the
//! CLI on the other nodes; reported is the time until both TorchServes
//! answered, each then checked by an inference and unregistered.
//!
//! Every timed pull starts from nodes whose dfdaemons hold no task: the
//! peers evict a task a minute after it was last used (`--peer-task-ttl`)
//! and the bench waits, untimed, until they have. Without it a full run
//! keeps every run's copy on every node (8 nodes x 3 runs x 2 keys of
//! 1 GiB) and fills the disk.
//!
//! `--fleet-seed-peer`: the bed also runs a seed peer on a host of its own
//! (linked as a node is), as Dragonfly's deployments do; the scheduler has
//! it fetch each new task from the store and schedules the nodes to it.

use std::path::Path;
use std::time::{Duration, Instant};

use dragonfly_endpoint_testbed::{Fleet, FleetTorchServe, Jar, Mar, PREFIX};
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
    /// The shaping, for the rows: "store R, nodes R".
    links: String,
    dragonfly: Vec<Run>,
    direct: Vec<Run>,
    /// Per node, summed over the Dragonfly runs: (from source, from peers).
    traffic: Vec<(u64, u64)>,
    /// How many nodes run TorchServe, and per run the time until all of
    /// them registered the model.
    served: usize,
    registered: Vec<f64>,
}

/// Nodes 1 and 2 run TorchServe (node 1 alone in a fleet of one).
const TORCHSERVE_NODES: usize = 2;

/// How long a node's dfdaemon keeps a task after it was last started or
/// finished; longer than any one download of the case takes (dfdaemon
/// 1.5.10 does not refresh it while pieces arrive).
const PEER_TASK_TTL: &str = "60s";

/// Waits, untimed, until no node's dfdaemon holds a task (the TTL above
/// plus dfdaemon's 5 s GC tick, with room to spare).
fn wait_for_empty_peers(fleet: &Fleet) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let held: u64 = fleet.peers().map(|k| fleet.task_bytes(k)).sum();
        if held == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes' dfdaemons still hold {held} bytes of tasks after 4 minutes"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
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

/// The CLI's config of node `k` (download only: `register_as: mar`).
fn cli_config(fleet: &Fleet, work: &Path, k: usize) -> std::path::PathBuf {
    fleet.config(k, &work.join("cfg"), json!({"register_as": "mar"}))
}

/// Node `k`'s model store, emptied.
fn fresh_store(work: &Path, k: usize) -> std::path::PathBuf {
    let store = work.join(format!("store-{k}"));
    let _ = std::fs::remove_dir_all(&store);
    store
}

/// The CLI pulls `key` on node `k` into `store`.
fn cli_pull(fleet: &Fleet, k: usize, config: &Path, store: &Path, key: &str) {
    let output = fleet
        .pull(k, config, store, &["--model", key, "--no-progress"])
        .output()
        .expect("run the CLI");
    assert!(
        output.status.success(),
        "node {k}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn dragonfly_pull(fleet: &Fleet, work: &Path, key: &str) -> Run {
    let configs: Vec<_> = (1..=fleet.nodes)
        .map(|k| cli_config(fleet, work, k))
        .collect();
    measured(fleet, || {
        std::thread::scope(|scope| {
            for (i, config) in configs.iter().enumerate() {
                let store = fresh_store(work, i + 1);
                scope.spawn(move || cli_pull(fleet, i + 1, config, &store, key));
            }
        });
    })
}

/// TorchServe with the plugin on nodes 1 and 2, started side by side,
/// each with its node's config (its dfdaemon, the store).
fn start_torchserves<'a>(fleet: &'a Fleet, work: &Path) -> Vec<FleetTorchServe<'a>> {
    let cfg = work.join("cfg-torchserve");
    std::thread::scope(|scope| {
        let starts: Vec<_> = (1..=TORCHSERVE_NODES.min(fleet.nodes))
            .map(|k| {
                let config = fleet.config(k, &cfg, json!({}));
                scope.spawn(move || fleet.torchserve(k, Jar::Product, &config, ""))
            })
            .collect();
        starts
            .into_iter()
            .map(|s| s.join().expect("start TorchServe"))
            .collect()
    })
}

/// `key` at once: PUT on every TorchServe, the CLI on the other nodes.
/// Returns the time until every TorchServe registered it (the last PUT's
/// 200) and until the last node had it; then checks each TorchServe's
/// answer and unregisters the model (DELETE, its files gone).
fn served_pull(
    fleet: &Fleet,
    servers: &[FleetTorchServe],
    work: &Path,
    key: &str,
    mar: &Mar,
) -> (f64, f64) {
    let configs: Vec<_> = ((servers.len() + 1)..=fleet.nodes)
        .map(|k| (k, cli_config(fleet, work, k), fresh_store(work, k)))
        .collect();
    let put = format!("/dragonfly?model={key}");
    let started = Instant::now();
    let (registered, last) = std::thread::scope(|scope| {
        let puts: Vec<_> = servers
            .iter()
            .map(|ts| {
                let put = put.as_str();
                scope.spawn(move || {
                    let (status, body) = ts
                        .send("PUT", put, Duration::from_secs(1800))
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(status, 200, "{}: PUT {put}: {body:#}", ts.host());
                    started.elapsed().as_secs_f64()
                })
            })
            .collect();
        let pulls: Vec<_> = configs
            .iter()
            .map(|(k, config, store)| {
                scope.spawn(move || {
                    cli_pull(fleet, *k, config, store, key);
                    started.elapsed().as_secs_f64()
                })
            })
            .collect();
        let registered = puts
            .into_iter()
            .map(|p| p.join().expect("PUT"))
            .fold(0.0, f64::max);
        let last = pulls
            .into_iter()
            .map(|p| p.join().expect("CLI pull"))
            .fold(registered, f64::max);
        (registered, last)
    });
    let name = key.trim_end_matches(".mar");
    for ts in servers {
        let y = ts
            .infer(name)
            .unwrap_or_else(|status| panic!("{}: inference of {name}: {status}", ts.host()));
        assert!(
            (y - mar.expected).abs() <= 1e-9 * mar.expected.abs(),
            "{}: {name} answered {y}",
            ts.host()
        );
        let (status, body) = ts.call("DELETE", &format!("/dragonfly?model={name}"));
        assert_eq!(status, 200, "{}: DELETE {name}: {body:#}", ts.host());
    }
    (registered, last)
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
        let (store_rate, node_rate) = (&args.fleet_links.0, &args.fleet_links.1);
        progress(&format!(
            "fleet: {nodes} nodes over shaped links (store {store_rate}, nodes {node_rate})"
        ));
        let mut bed = vec![
            "--store-rate",
            store_rate.as_str(),
            "--node-rate",
            node_rate.as_str(),
            "--peer-task-ttl",
            PEER_TASK_TTL,
        ];
        if args.fleet_seed_peer {
            bed.push("--seed-peer");
        }
        let fleet = Fleet::start(nodes, &bed);
        fleet.make_bucket();
        if args.fleet_seed_peer {
            fleet.wait_for_seed_peer();
        }
        let work = work.join(format!("fleet-{nodes}"));
        std::fs::create_dir_all(&work).expect("fleet work dir");
        let servers = start_torchserves(&fleet, &work);
        progress(&format!(
            "  TorchServe with the plugin on {} node(s)",
            servers.len()
        ));
        let mut point = Point {
            nodes,
            links: format!(
                "store {store_rate}, nodes {node_rate}{}",
                if args.fleet_seed_peer {
                    ", a seed peer"
                } else {
                    ""
                }
            ),
            dragonfly: Vec::new(),
            direct: Vec::new(),
            traffic: vec![(0, 0); nodes],
            served: servers.len(),
            registered: Vec::new(),
        };
        for run in 0..args.runs {
            let key = format!("fleet-{nodes}-{run}.mar");
            fleet.upload(&format!("{PREFIX}{key}"), &mar.path);
            wait_for_empty_peers(&fleet);
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
            let key = format!("fleet-{nodes}-{run}-ts.mar");
            fleet.upload(&format!("{PREFIX}{key}"), &mar.path);
            wait_for_empty_peers(&fleet);
            let sent = fleet.sent_bytes();
            let (registered, last) = served_pull(&fleet, &servers, &work, &key, mar);
            point.registered.push(registered);
            progress(&format!(
                "  run {}: {} TorchServe node(s) registered in {registered:.2} s, the last node had it at {last:.2} s, the store sent {:.3} x size",
                run + 1,
                servers.len(),
                (fleet.sent_bytes() - sent) as f64 / mar.bytes as f64
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
        variant: format!(
            "{n} nodes via Dragonfly ({}): time to the last node",
            point.links
        ),
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
    let on = match point.served {
        1 => "node 1".to_string(),
        s => format!("nodes 1-{s}"),
    };
    let rest = if n > point.served {
        ", the CLI on the rest"
    } else {
        ""
    };
    rows.push(Row {
        case: "fleet",
        variant: format!(
            "{n} nodes, TorchServe + plugin on {on}{rest}: time until registered on {on} (PUT)"
        ),
        unit: "s",
        values: point.registered.clone(),
        baseline: Some((
            format!("{n} nodes via Dragonfly (CLI): time to the last node"),
            secs(&point.dragonfly),
        )),
        goal: "reported".into(),
        met: None,
        ratios: None,
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
