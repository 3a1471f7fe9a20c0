//! Three nodes over shaped links (scripts/testbed/fleet: a network
//! namespace each, the store behind 1 Gbit/s, Dragonfly's default
//! scheduling): pulled at once, the store sends the archive once, also
//! when two of the nodes are TorchServe with the plugin registering it
//! beside a CLI; a node whose peer dies mid-pull ends with an error or the
//! model, never a partial file.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

fn report_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// Any temp file of the pull in `store` holding bytes.
/// A CLI pull that succeeded and left exactly the archive in `store`.
fn assert_pulled_whole(output: &std::process::Output, store: &Path, file: &str, mar: &Mar) {
    let report = report_of(output);
    assert!(
        output.status.success(),
        "{report:#}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read(store.join(file)).unwrap(),
        std::fs::read(&mar.path).unwrap()
    );
    assert_no_partial_files(store);
}

fn pull_under_way(store: &Path) -> bool {
    entries(store).iter().any(|name| {
        name.contains(".dfpart-") && std::fs::metadata(store.join(name)).is_ok_and(|m| m.len() > 0)
    })
}

#[test]
fn three_nodes_at_once_make_the_store_send_one_copy() {
    let fleet = Fleet::start(3, &[]);
    fleet.make_bucket();
    let work = tempfile::tempdir().unwrap();
    let mar = make_mar("fleet", 24.0, &work.path().join("mars"), 61);
    fleet.upload(&format!("{PREFIX}fleet.mar"), &mar.path);
    let (store_tx, _) = fleet.counters("store");
    let sent = fleet.sent_bytes();

    let outputs: Vec<_> = thread::scope(|scope| {
        let pulls: Vec<_> = (1..=fleet.nodes)
            .map(|k| {
                let config = fleet.config(k, &work.path().join("cfg"), json!({}));
                let store = work.path().join(format!("store-{k}"));
                let fleet = &fleet;
                scope.spawn(move || {
                    let output = fleet
                        .pull(
                            k,
                            &config,
                            &store,
                            &["--model", "fleet.mar", "--no-progress"],
                        )
                        .output()
                        .unwrap();
                    (store, output)
                })
            })
            .collect();
        pulls.into_iter().map(|p| p.join().unwrap()).collect()
    });
    for (store, output) in &outputs {
        assert_pulled_whole(output, store, "fleet.mar", &mar);
    }
    // The store's own metric, and what its link carried.
    let sent = fleet.sent_bytes() - sent;
    assert!(
        sent >= mar.bytes && sent <= mar.bytes + mar.bytes / 20,
        "the store sent {sent} bytes for a {}-byte archive pulled by 3 nodes",
        mar.bytes
    );
    let (tx, _) = fleet.counters("store");
    let on_the_wire = tx - store_tx;
    assert!(
        on_the_wire <= mar.bytes + mar.bytes / 10,
        "the store's link carried {on_the_wire} bytes for a {}-byte archive",
        mar.bytes
    );
}

#[test]
fn a_node_whose_peer_dies_mid_pull_ends_whole_or_not_at_all() {
    let fleet = Fleet::start(2, &["--node-rate", "200mbit"]);
    fleet.make_bucket();
    let work = tempfile::tempdir().unwrap();
    // ~4 s over the node's 200 Mbit/s link.
    let mar = make_mar("cut", 96.0, &work.path().join("mars"), 62);
    fleet.upload(&format!("{PREFIX}cut.mar"), &mar.path);
    let config = fleet.config(
        2,
        &work.path().join("cfg"),
        json!({"download": {"retries": 1, "retry_backoff_ms": 100, "read_timeout_secs": 5, "connect_timeout_secs": 2}}),
    );
    let store = work.path().join("store");
    let mut pull = fleet
        .pull(2, &config, &store, &["--model", "cut.mar", "--no-progress"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pull_under_way(&store) {
        assert!(Instant::now() < deadline, "the pull never started writing");
        assert!(
            pull.try_wait().unwrap().is_none(),
            "the pull ended before the cut"
        );
        thread::sleep(Duration::from_millis(20));
    }
    fleet.stop_peer(2);
    let output = pull.wait_with_output().unwrap();
    let report = report_of(&output);
    if output.status.success() {
        assert_eq!(
            std::fs::read(store.join("cut.mar")).unwrap(),
            std::fs::read(&mar.path).unwrap()
        );
    } else {
        assert_eq!(report["models"][0]["status"], 502, "{report:#}");
        assert_eq!(store_entries(&store), Vec::<String>::new());
    }
    assert_no_partial_files(&store);
}

#[test]
fn after_a_preheat_a_node_pulls_from_peers_and_the_store_sends_nothing() {
    let fleet = Fleet::start(2, &[]);
    fleet.make_bucket();
    let work = tempfile::tempdir().unwrap();
    let mar = make_mar("warm", 16.0, &work.path().join("mars"), 63);
    fleet.upload(&format!("{PREFIX}warm.mar"), &mar.path);
    let preheat = json!({"preheat": {
        "manager": fleet.env("DF_MANAGER_URL"),
        "token": fleet.env("DF_MANAGER_TOKEN"),
        "scope": "all_peers",
    }});
    let cfg = work.path().join("cfg");
    let config = fleet.config(1, &cfg, preheat.clone());
    let sent = fleet.sent_bytes();
    let output = fleet
        .on(
            "node-1",
            &cli(),
            &[
                "preheat",
                "--config",
                &config.display().to_string(),
                "--model",
                "warm.mar",
                "--wait",
                "180",
            ],
        )
        .output()
        .unwrap();
    let report = report_of(&output);
    assert!(
        output.status.success(),
        "{report:#}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["states"][0]["state"], "SUCCESS", "{report:#}");
    let preheated = fleet.sent_bytes() - sent;
    assert!(
        preheated >= mar.bytes,
        "the preheat fetched {preheated} bytes"
    );

    let config = fleet.config(2, &cfg, preheat);
    let store = work.path().join("store");
    let output = fleet
        .pull(
            2,
            &config,
            &store,
            &["--model", "warm.mar", "--no-progress"],
        )
        .output()
        .unwrap();
    let report = report_of(&output);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(
        report["models"][0]["download"]["served_from"], "dragonfly_cache",
        "{report:#}"
    );
    let after = fleet.sent_bytes() - sent - preheated;
    assert!(
        after < 1024,
        "the store sent {after} bytes after the preheat"
    );
    assert_eq!(
        std::fs::read(store.join("warm.mar")).unwrap(),
        std::fs::read(&mar.path).unwrap()
    );
}

/// Two TorchServes and a CLI pull one archive at the same instant, on a
/// bed with a seed peer, as Dragonfly is deployed: the scheduler has the
/// seed peer fetch the new task and schedules the nodes to it. Without
/// one, Dragonfly's scheduler sends every peer that registers while the
/// task is still pending to the source (a check-then-act in its register
/// handler), and peers registering in the same instant each fetch the
/// whole object (docs/BENCHMARKS.md measured how often).
#[test]
fn two_torchserves_and_a_cli_at_once_register_serve_and_the_store_sends_one_copy() {
    let fleet = Fleet::start(3, &["--seed-peer"]);
    fleet.make_bucket();
    fleet.wait_for_seed_peer();
    let work = tempfile::tempdir().unwrap();
    let mar = make_mar("served", 8.0, &work.path().join("mars"), 64);
    fleet.upload(&format!("{PREFIX}served.mar"), &mar.path);
    let cfg = work.path().join("cfg");
    // TorchServe with the plugin on nodes 1 and 2, started side by side,
    // each with its own node's dfdaemon as the proxy.
    let servers: Vec<FleetTorchServe> = thread::scope(|scope| {
        let starts: Vec<_> = [1, 2]
            .map(|k| {
                let config = fleet.config(k, &cfg, json!({}));
                let fleet = &fleet;
                scope.spawn(move || fleet.torchserve(k, Jar::TestHooks, &config, ""))
            })
            .into_iter()
            .collect();
        starts.into_iter().map(|s| s.join().unwrap()).collect()
    });
    for ts in &servers {
        // On the node's address in the bed, not on the machine's loopback.
        assert!(
            ts.management().starts_with("http://10.231."),
            "{}",
            ts.management()
        );
    }
    let config = fleet.config(3, &cfg, json!({}));
    let store = work.path().join("store-3");
    let sent = fleet.sent_bytes();

    // Both PUTs and the CLI on node 3 at once.
    let (puts, output) = thread::scope(|scope| {
        let puts: Vec<_> = servers
            .iter()
            .map(|ts| {
                scope.spawn(move || {
                    ts.send(
                        "PUT",
                        "/dragonfly?model=served.mar",
                        Duration::from_secs(300),
                    )
                })
            })
            .collect();
        let pull = scope.spawn(|| {
            fleet
                .pull(
                    3,
                    &config,
                    &store,
                    &["--model", "served.mar", "--no-progress"],
                )
                .output()
                .unwrap()
        });
        let puts: Vec<_> = puts.into_iter().map(|p| p.join().unwrap()).collect();
        (puts, pull.join().unwrap())
    });
    for (ts, put) in servers.iter().zip(puts) {
        let (status, report) = put.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "{}: {report:#}", ts.host());
        assert_eq!(
            report["models"][0]["registration"],
            "registered",
            "{}: {report:#}",
            ts.host()
        );
        // Through the node's own peer, not straight from the store.
        assert_eq!(
            report["models"][0]["download"]["served_from"],
            "dragonfly",
            "{}: {report:#}",
            ts.host()
        );
        let answer = ts
            .infer("served")
            .unwrap_or_else(|status| panic!("{}: inference answered {status}", ts.host()));
        assert_close(answer, mar.expected);
        assert_no_partial_files(&ts.model_store());
    }
    assert_pulled_whole(&output, &store, "served.mar", &mar);
    let sent = fleet.sent_bytes() - sent;
    assert!(
        sent >= mar.bytes && sent <= mar.bytes + mar.bytes / 20,
        "the store sent {sent} bytes for a {}-byte archive registered by 2 TorchServes and pulled by a CLI",
        mar.bytes
    );
}
