//! A bounded soak: several clients issue random PUT, PUT under another
//! name, DELETE and GET on a few models for a fixed time through real
//! TorchServe. Every answer must be a documented status, and afterwards the
//! store must agree with TorchServe: every registered model's files exist,
//! every archive has its ledger entry, the ledger names exactly the models
//! registered from it, and nothing is left half-written.

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

const CLIENTS: u64 = 4;
const MODELS: usize = 3;
const RUN_FOR: Duration = Duration::from_secs(30);
/// Each client stops after this many calls even if time is left.
const MAX_CALLS: usize = 200;

/// A small deterministic generator: the same sequence every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn random_puts_deletes_and_gets_keep_the_store_consistent() {
    let stack = Stack::builder()
        .config(json!({"initial_workers": 0}))
        .ts_config("enable_model_api=true\n")
        .start_with_torchserve();
    let Stack {
        work, origin, ts, ..
    } = stack;
    for m in 0..MODELS {
        let mar = make_mar(
            &format!("s{m}"),
            1.0,
            &work.path().join("mars"),
            140 + m as u32,
        );
        origin.upload(&format!("{PREFIX}s{m}.mar"), &mar.path);
    }

    let answers: Vec<(String, u16, Value)> = thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let ts = &ts;
                scope.spawn(move || {
                    let mut rng = Lcg(c + 1);
                    let started = Instant::now();
                    let mut seen = Vec::new();
                    while started.elapsed() < RUN_FOR && seen.len() < MAX_CALLS {
                        let m = rng.below(MODELS);
                        let (method, path) = match rng.below(5) {
                            0 => ("PUT", format!("/dragonfly?model=s{m}.mar")),
                            1 => (
                                "PUT",
                                format!("/dragonfly?model=s{m}.mar&model_name=s{m}-alias"),
                            ),
                            2 => ("DELETE", format!("/dragonfly?model=s{m}")),
                            3 => ("DELETE", format!("/dragonfly?model=s{m}-alias")),
                            _ => ("GET", format!("/dragonfly?model=s{m}")),
                        };
                        let (status, body) = call(ts, method, &path);
                        seen.push((format!("{method} {path}"), status, body));
                    }
                    seen
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });

    for (call, status, body) in &answers {
        let allowed: &[u16] = match call.split(' ').next() {
            Some("PUT") => &[200, 409],
            Some("DELETE") => &[200, 404],
            _ => &[200, 404],
        };
        assert!(allowed.contains(status), "{call}: {status} {body:#}");
        if *status >= 400 {
            assert_error(*status, body, *status);
        }
    }
    let ok = answers.iter().filter(|a| a.1 == 200).count();
    println!("soak: {} calls, {ok} answered 200", answers.len());
    assert!(
        ok > answers.len() / 4,
        "too few calls succeeded to mean anything"
    );

    // TorchServe's registrations against the store.
    let listed: Value = http()
        .get(format!("{}/models?limit=1000", ts.management()))
        .bearer_auth(ts.management_token())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let registered: BTreeSet<String> = listed["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["modelName"].as_str().map(str::to_string))
        .collect();
    let store = ts.model_store();
    let mut ledger_names = BTreeSet::new();
    for file in entries(&store.join(".dragonfly-endpoint")) {
        let Some(archive) = file.strip_suffix(".json") else {
            continue;
        };
        let entry: Value = serde_json::from_slice(
            &std::fs::read(store.join(".dragonfly-endpoint").join(&file)).unwrap(),
        )
        .unwrap();
        assert!(
            store.join(archive).is_file(),
            "{archive} has a ledger entry but no file"
        );
        let names = entry["model_names"].as_array().unwrap();
        assert!(
            !names.is_empty(),
            "{archive}: a ledger entry serving no model"
        );
        for name in names {
            let name = name.as_str().unwrap().to_string();
            assert!(
                registered.contains(&name),
                "{name} in the ledger, not in TorchServe"
            );
            assert!(
                ledger_names.insert(name.clone()),
                "{name} in two ledger entries"
            );
        }
    }
    assert_eq!(
        ledger_names, registered,
        "TorchServe and the ledger disagree"
    );
    for name in &registered {
        let (status, body) = call(&ts, "GET", &format!("/dragonfly?model={name}"));
        assert_eq!(status, 200, "{body:#}");
        let file = body["archive"]["file_name"].as_str().unwrap();
        assert!(store.join(file).is_file(), "{name}: {file} missing");
    }
    for file in store_entries(&store) {
        assert!(
            file.ends_with(".mar")
                && store
                    .join(".dragonfly-endpoint")
                    .join(format!("{file}.json"))
                    .is_file(),
            "{file} in the store without a ledger entry"
        );
    }
    assert_no_partial_files(&store);
}
