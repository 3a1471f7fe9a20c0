//! Pulls that outlive the HTTP call, and the metrics that count pulls,
//! through real TorchServe: `synchronous=false` answers 202 with a job that
//! runs to the end without the caller; a cancelled job leaves the store as
//! it was; unknown and malformed job ids are 404 and 400; and
//! `/dragonfly/metrics` counts exactly the pulls made and their bytes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dragonfly_endpoint_testbed::*;
use serde_json::Value;

/// `GET /dragonfly/metrics` as metric line -> value.
fn metrics(ts: &TorchServe) -> BTreeMap<String, f64> {
    let response = http()
        .get(format!("{}/dragonfly/metrics", ts.management()))
        .bearer_auth(ts.management_token())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(kind.starts_with("text/plain"), "{kind}");
    response
        .text()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>, name: &str) -> f64 {
    after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}

/// Polls `GET /dragonfly?job=ID` until `state` is not `running`.
fn wait_job(ts: &TorchServe, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, job) = call(ts, "GET", &format!("/dragonfly?job={id}"));
        assert_eq!(status, 200, "{job:#}");
        if job["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still running: {job:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pulls_outlive_the_call_can_be_cancelled_and_are_counted() {
    let stack = Stack::builder().start_with_torchserve();
    let Stack {
        work,
        origin,
        config,
        ts,
        ..
    } = stack;
    let store = ts.model_store();
    let before = metrics(&ts);

    // A pull as a job: 202 at once, then the job runs to the end.
    let later = make_mar("later", 2.0, &work.path().join("mars"), 151);
    origin.upload(&format!("{PREFIX}later.mar"), &later.path);
    let (status, accepted) = call(&ts, "PUT", "/dragonfly?model=later.mar&synchronous=false");
    assert_eq!(status, 202, "{accepted:#}");
    let id = accepted["job"].as_str().unwrap().to_string();
    assert_eq!(accepted["poll"], format!("GET /dragonfly?job={id}"));
    let job = wait_job(&ts, &id);
    assert_eq!(job["state"], "done", "{job:#}");
    assert_eq!(job["status"], 200, "{job:#}");
    let model = &job["models"][0];
    assert_eq!(model["phase"], "done", "{job:#}");
    assert_eq!(model["bytes"], later.bytes, "{job:#}");
    assert_eq!(
        job["result"]["models"][0]["registration"], "registered",
        "{job:#}"
    );
    // Registered without waiting for workers: they come up on their own.
    let deadline = Instant::now() + Duration::from_secs(120);
    let answer = loop {
        match infer(&ts, "later") {
            Ok(y) => break y,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(status) => panic!("the job's model never answered: {status}"),
        }
    };
    assert_close(answer, later.expected);
    // Once more, synchronously: unchanged, counted, no bytes.
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=later.mar");
    assert_eq!(status, 200, "{report:#}");

    // A job stuck on a silent peer, cancelled: the store is as it was.
    let silent = SilentServer::start();
    let hung = config_variant(&config, "silent.json", |c| {
        c["addr"] = silent.addr.clone().into();
    });
    let slow = make_mar("slow", 2.0, &work.path().join("mars"), 152);
    origin.upload(&format!("{PREFIX}slow.mar"), &slow.path);
    let before_cancel = store_entries(&store);
    let (status, accepted) = call(
        &ts,
        "PUT",
        &format!(
            "/dragonfly?model=slow.mar&synchronous=false&config={}",
            hung.display()
        ),
    );
    assert_eq!(status, 202, "{accepted:#}");
    let slow_id = accepted["job"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while silent.connections() == 0 {
        assert!(Instant::now() < deadline, "the job never reached the peer");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, job) = call(&ts, "GET", &format!("/dragonfly?job={slow_id}"));
    assert_eq!(
        (status, job["state"].as_str()),
        (200, Some("running")),
        "{job:#}"
    );
    assert_eq!(job["models"][0]["phase"], "downloading", "{job:#}");
    let (status, cancelled) = call(&ts, "DELETE", &format!("/dragonfly?job={slow_id}"));
    assert_eq!(status, 200, "{cancelled:#}");
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(store_entries(&store), before_cancel);
    assert_no_partial_files(&store);
    assert_eq!(infer(&ts, "slow"), Err(404));
    let (status, body) = call(&ts, "DELETE", &format!("/dragonfly?job={slow_id}"));
    assert_error(status, &body, 409);

    // Job ids that are not ids, or not known.
    let (status, body) = call(&ts, "GET", "/dragonfly?job=nope");
    assert_error(status, &body, 400);
    let (status, body) = call(&ts, "GET", "/dragonfly?job=0123456789abcdef");
    assert_error(status, &body, 404);

    // The metrics count exactly what happened: two pulls that ended well
    // (the cancelled one never ended), one download through the peer.
    let after = metrics(&ts);
    let ok = "dragonfly_endpoint_pulls_total{outcome=\"ok\",status=\"200\"}";
    assert_eq!(delta(&after, &before, ok), 2.0, "{after:#?}");
    let peer = "dragonfly_endpoint_bytes_total{source=\"peer\"}";
    assert_eq!(
        delta(&after, &before, peer),
        later.bytes as f64,
        "{after:#?}"
    );
    let downloads = "dragonfly_endpoint_pull_duration_seconds_count";
    assert_eq!(delta(&after, &before, downloads), 1.0);
    let registrations = "dragonfly_endpoint_register_duration_seconds_count";
    assert_eq!(delta(&after, &before, registrations), 1.0);
    assert_eq!(
        after["dragonfly_endpoint_pulls_in_flight"], 0.0,
        "{after:#?}"
    );
}
