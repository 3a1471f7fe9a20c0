//! Every wait has a deadline: a peer or a store that accepts connections and
//! never answers is a 504 naming it, not a hang; a pull can have a total
//! deadline; a pull waiting for the same file in another process gives up
//! after a bounded wait; and a killed pull's lock is free at once, so the
//! next pull repairs and proceeds.

use std::process::Stdio;
use std::time::{Duration, Instant};

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

fn model_error(report: &Value) -> &Value {
    &report["models"][0]["error"]
}

#[test]
fn silent_peers_and_stores_are_deadlines_and_locks_hold_across_processes() {
    let stack = Stack::builder().start();
    let Stack {
        work,
        origin,
        config,
        ..
    } = stack;
    let mar = make_mar("slow", 2.0, &work.path().join("mars"), 61);
    origin.upload(&format!("{PREFIX}slow.mar"), &mar.path);
    let store = work.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("slow.mar"), b"previous archive").unwrap();
    let silent = SilentServer::start();
    let quick = json!({"retries": 1, "retry_backoff_ms": 100, "read_timeout_secs": 2});

    // A peer that never sends response headers: 504 naming it, after the
    // read timeout (per attempt), the previous archive untouched.
    let hung_peer = config_variant(&config, "hung-peer.json", |c| {
        c["addr"] = silent.addr.clone().into();
        c["download"] = quick.clone();
    });
    let started = Instant::now();
    let (code, report, stderr) = pull_with_cli(
        &hung_peer,
        &store,
        &["--model", "slow.mar", "--no-progress"],
    );
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report["code"], 504, "{report:#}");
    assert_eq!(model_error(&report)["type"], "GatewayTimeoutException");
    let message = model_error(&report)["message"].as_str().unwrap();
    assert!(
        message.contains(&silent.addr) && message.contains("response headers"),
        "{message}"
    );
    assert!(silent.connections() >= 2, "the retry did not reconnect");
    assert_eq!(
        std::fs::read(store.join("slow.mar")).unwrap(),
        b"previous archive"
    );
    assert_eq!(store_entries(&store), vec!["slow.mar".to_string()]);

    // A store API that never answers: listing and HEAD are 504s naming the
    // store and the operation, within the operation deadline.
    let hung_store = config_variant(&config, "hung-store.json", |c| {
        c["object_storage"]["endpoint"] = silent.addr.clone().into();
        c["object_storage"]["operation_timeout_secs"] = 2.into();
    });
    for (model, operation) in [("all", "ListObjectsV2"), ("slow.mar", "HeadObject")] {
        let started = Instant::now();
        let (code, report, stderr) =
            pull_with_cli(&hung_store, &store, &["--model", model, "--no-progress"]);
        assert_eq!(code, 1, "{report:#}\n{stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(report["code"], 504, "{report:#}");
        assert_eq!(report["type"], "GatewayTimeoutException", "{report:#}");
        let message = report["message"].as_str().unwrap();
        assert!(
            message.contains(operation) && message.contains(&silent.addr),
            "{message}"
        );
    }

    // A total deadline shorter than the read timeout: the whole pull gives
    // up at it, and the store is as it was.
    let deadline = config_variant(&config, "deadline.json", |c| {
        c["addr"] = silent.addr.clone().into();
        c["download"] = json!({"read_timeout_secs": 60, "total_timeout_secs": 2});
    });
    let started = Instant::now();
    let (code, report, _) =
        pull_with_cli(&deadline, &store, &["--model", "slow.mar", "--no-progress"]);
    assert_eq!(code, 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report["code"], 504, "{report:#}");
    assert!(
        model_error(&report)["message"]
            .as_str()
            .unwrap()
            .contains("total_timeout_secs"),
        "{report:#}"
    );
    assert_eq!(
        std::fs::read(store.join("slow.mar")).unwrap(),
        b"previous archive"
    );
    assert_eq!(store_entries(&store), vec!["slow.mar".to_string()]);

    // Two processes, one file: the first holds the lock (stuck on the
    // silent peer), the second gives up after its bounded wait with 409.
    let holder = config_variant(&config, "holder.json", |c| {
        c["addr"] = silent.addr.clone().into();
        c["download"] = json!({"read_timeout_secs": 120, "retries": 0});
    });
    let seen = silent.connections();
    let mut first = cli_command(&holder, &store, &["--model", "slow.mar", "--no-progress"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first has the lock once it has connected to the peer.
    let until = Instant::now() + Duration::from_secs(30);
    while silent.connections() <= seen {
        assert!(
            Instant::now() < until,
            "the first pull never reached the peer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let impatient = config_variant(&config, "impatient.json", |c| {
        c["download"] = json!({"lock_wait_secs": 2});
    });
    let started = Instant::now();
    let (code, report, _) = pull_with_cli(
        &impatient,
        &store,
        &["--model", "slow.mar", "--no-progress"],
    );
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["code"], 409, "{report:#}");
    let message = model_error(&report)["message"].as_str().unwrap();
    assert!(message.contains("lock_wait_secs"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    // kill -9 of the holder: its lock is free at once, and the next pull
    // removes what it left and pulls the archive.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        entries(&store).iter().any(|n| n.contains(".dfpart-")),
        "the killed pull left no temp file to repair: {:?}",
        entries(&store)
    );
    let (code, report, stderr) =
        pull_with_cli(&config, &store, &["--model", "slow.mar", "--no-progress"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(
        std::fs::read(store.join("slow.mar")).unwrap(),
        std::fs::read(&mar.path).unwrap()
    );
    assert_no_partial_files(&store);
    assert_eq!(store_entries(&store), vec!["slow.mar".to_string()]);
}
