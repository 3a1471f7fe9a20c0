//! Faults against the real stack: the peer down, refused or restarted, an
//! archive TorchServe refuses, and two callers pulling one model at once.

use std::thread;

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

fn model<'a>(report: &'a Value, file: &str) -> &'a Value {
    report["models"]
        .as_array()
        .and_then(|models| models.iter().find(|m| m["file_name"] == file))
        .unwrap_or_else(|| panic!("{file} not in {report:#}"))
}

#[test]
fn peer_faults_refused_archives_and_concurrent_pulls() {
    let stack = Stack::builder().start_with_torchserve();
    let Stack {
        work,
        mut origin,
        ts,
        ..
    } = stack;
    let good = make_mar("good", 1.0, &work.path().join("mars"), 31);
    origin.upload(&format!("{PREFIX}good.mar"), &good.path);
    let twin = make_mar("twin", 4.0, &work.path().join("mars"), 32);
    origin.upload(&format!("{PREFIX}twin.mar"), &twin.path);
    let later = make_mar("later", 1.0, &work.path().join("mars"), 33);
    origin.upload(&format!("{PREFIX}later.mar"), &later.path);
    let corrupt = work.path().join("corrupt.mar");
    std::fs::write(&corrupt, b"this is not a zip archive").unwrap();
    origin.upload(&format!("{PREFIX}corrupt.mar"), &corrupt);

    let config_dir = work.path().join("cfg");
    let store = ts.model_store();

    // TorchServe refuses one archive (not a zip: its workers cannot load
    // it, a 500 from TorchServe): it is removed and unregistered, the other
    // registers.
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=corrupt.mar,good.mar");
    assert_eq!(status, 500, "{report:#}");
    assert_eq!(report["code"], 500);
    assert_eq!(report["type"], "RegistrationException", "{report:#}");
    let refused = model(&report, "corrupt.mar");
    assert_eq!(refused["status"], 500, "{report:#}");
    assert_eq!(
        refused["error"]["type"], "RegistrationException",
        "{report:#}"
    );
    assert!(
        refused["error"]["message"].as_str().is_some_and(|m| {
            m.contains("TorchServe refused model 'corrupt'")
                && m.contains("Failed to start workers")
        }),
        "{report:#}"
    );
    assert_eq!(model(&report, "good.mar")["status"], 200);
    assert!(
        !store.join("corrupt.mar").exists(),
        "refused archive left in the store"
    );
    assert_close(infer(&ts, "good").unwrap(), good.expected);
    assert_eq!(infer(&ts, "corrupt"), Err(404));

    // Two callers, one model, at once: one download, one registration.
    let sent_before = origin.s3.sent_bytes();
    let (a, b) = thread::scope(|scope| {
        let first = scope.spawn(|| call(&ts, "PUT", "/dragonfly?model=twin.mar"));
        let second = scope.spawn(|| call(&ts, "PUT", "/dragonfly?model=twin.mar"));
        (first.join().unwrap(), second.join().unwrap())
    });
    assert_eq!((a.0, b.0), (200, 200), "{:#}\n{:#}", a.1, b.1);
    let sent = origin.s3.sent_bytes() - sent_before;
    assert!(
        sent < twin.bytes + twin.bytes / 10,
        "the object store sent {sent} bytes for a {}-byte archive pulled by two callers",
        twin.bytes
    );
    let actions: Vec<&Value> = [&a.1, &b.1]
        .iter()
        .map(|r| &model(r, "twin.mar")["download"]["action"])
        .collect();
    assert!(actions.contains(&&json!("downloaded")) && actions.contains(&&json!("unchanged")));
    let registrations: Vec<&Value> = [&a.1, &b.1]
        .iter()
        .map(|r| &model(r, "twin.mar")["registration"])
        .collect();
    assert!(registrations.contains(&&json!("registered")));
    assert!(registrations.contains(&&json!("already_registered")));
    assert_close(infer(&ts, "twin").unwrap(), twin.expected);

    // The peer down: 502 naming the peer; nothing written.
    origin.dragonfly.stop_peer(1);
    let before = store_entries(&store);
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=later.mar");
    let message = assert_error(status, &report, 502);
    assert!(message.contains(&origin.dragonfly.proxy(1)), "{message}");
    assert_eq!(store_entries(&store), before);
    assert_no_partial_files(&store);

    // With fallback to the source the pull goes straight to the store.
    let fallback = write_config(
        &config_dir.join("fallback"),
        &origin.s3,
        &origin.dragonfly.proxy(1),
        json!({"download": {"fallback": "source"}}),
    );
    let (status, report) = call(
        &ts,
        "PUT",
        &format!("/dragonfly?model=later.mar&config={}", fallback.display()),
    );
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(
        model(&report, "later.mar")["download"]["served_from"],
        "source"
    );
    assert_close(infer(&ts, "later").unwrap(), later.expected);

    // The peer back: the next pull goes through it again.
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=later");
    assert_eq!(status, 200, "{body:#}");
    origin.dragonfly.restart_peer(1);
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=later.mar");
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(
        model(&report, "later.mar")["download"]["served_from"],
        "dragonfly"
    );
    assert_close(infer(&ts, "later").unwrap(), later.expected);
}
