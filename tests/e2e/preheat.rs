//! Preheat through the real Dragonfly manager: `PUT /dragonfly/preheat`
//! creates a job for the exact task the pull will use, `GET
//! /dragonfly/preheat?job=` follows it to SUCCESS on the peer, and the pull
//! after it is served from the peer's cache: the store sends no more body.
//! Bad job ids and a config without a manager get their 4xx.

use std::time::{Duration, Instant};

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

/// Polls the job until the manager records an end (it checks at 0 and
/// 30 s, then less often).
fn wait_for_job(ts: &TorchServe, id: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, state) = call(ts, "GET", &format!("/dragonfly/preheat?job={id}"));
        assert_eq!(status, 200, "{state:#}");
        if matches!(state["state"].as_str(), Some("SUCCESS" | "FAILURE")) {
            return state;
        }
        assert!(Instant::now() < deadline, "job {id} never ended: {state:#}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_preheated_model_is_pulled_from_the_peer_and_not_the_store() {
    let origin = Origin::start(1);
    let work = tempfile::tempdir().unwrap();
    let preheat = json!({
        "preheat": {
            "manager": origin.dragonfly.manager_url(),
            "token": origin.dragonfly.manager_token(),
        }
    });
    let config = write_config(
        &work.path().join("cfg"),
        &origin.s3,
        &origin.dragonfly.proxy(1),
        preheat,
    );
    let (_plugins, ts) = torchserve_with_plugin(Jar::TestHooks, &config, "");
    let mar = make_mar("warmed", 8.0, &work.path().join("mars"), 71);
    origin.upload(&format!("{PREFIX}warmed.mar"), &mar.path);

    let sent = origin.s3.sent_bytes();
    let (status, body) = call(&ts, "PUT", "/dragonfly/preheat?model=warmed.mar");
    assert_eq!(status, 202, "{body:#}");
    let id = body["jobs"][0]["job"]
        .as_u64()
        .unwrap_or_else(|| panic!("{body:#}"));
    assert_eq!(
        body["jobs"][0]["object"],
        format!("s3://{BUCKET}/{PREFIX}warmed.mar")
    );
    let state = wait_for_job(&ts, id);
    assert_eq!(state["state"], "SUCCESS", "{state:#}");
    assert!(
        !state["preheated_on"].as_array().unwrap().is_empty(),
        "{state:#}"
    );
    // The job's answer never carries the presigned URL.
    assert!(!state.to_string().contains("X-Amz-Signature"), "{state:#}");
    let preheated = origin.s3.sent_bytes() - sent;
    assert!(
        preheated >= mar.bytes,
        "the preheat fetched {preheated} bytes"
    );

    // The pull: the peer has the task, the store sends no body.
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=warmed.mar");
    assert_eq!(status, 200, "{report:#}");
    let download = &report["models"][0]["download"];
    assert_eq!(download["served_from"], "dragonfly_cache", "{report:#}");
    let after = origin.s3.sent_bytes() - sent - preheated;
    assert!(
        after < 1024,
        "the store sent {after} bytes after the preheat"
    );
    assert_close(infer(&ts, "warmed").unwrap(), mar.expected);

    // Job ids the manager does not have, or that are no ids.
    let (status, body) = call(&ts, "GET", "/dragonfly/preheat?job=987654");
    assert_error(status, &body, 404);
    let (status, body) = call(&ts, "GET", "/dragonfly/preheat?job=abc");
    let message = assert_error(status, &body, 400);
    assert!(message.contains("job"), "{message}");
    let (status, body) = call(
        &ts,
        "PUT",
        "/dragonfly/preheat?model=warmed.mar&scope=everyone",
    );
    assert_error(status, &body, 400);
    // A config without a manager: the key to set is named.
    let plain = config_variant(&config, "plain.json", |c| {
        c.as_object_mut().unwrap().remove("preheat");
    });
    let (status, body) = call(
        &ts,
        "PUT",
        &format!(
            "/dragonfly/preheat?model=warmed.mar&config={}",
            plain.display()
        ),
    );
    let message = assert_error(status, &body, 400);
    assert!(message.contains("preheat.manager"), "{message}");
    // A wrong token: the manager refuses, the answer says which key.
    let wrong = config_variant(&config, "wrong.json", |c| {
        c["preheat"]["token"] = json!("not-a-token");
    });
    let (status, body) = call(
        &ts,
        "PUT",
        &format!(
            "/dragonfly/preheat?model=warmed.mar&config={}",
            wrong.display()
        ),
    );
    let message = assert_error(status, &body, 502);
    assert!(message.contains("preheat.token"), "{message}");
    assert!(!message.contains("not-a-token"), "{message}");
}
