//! kill -9 at every step of a pull, then the next pull: the CLI killed at
//! each of the five steps (temp created, archive committed, unpacked
//! directory committed, registered, ledger written), and the TorchServe
//! JVM killed after the commit and restarted on the same model store. Each
//! time the next pull repairs the store and ends with the new version
//! registered, its ledger entry, and nothing left over: no permanent 409.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use dragonfly_endpoint_testbed::*;
use serde_json::Value;

const STEPS: &[&str] = &[
    "pull.staged",
    "pull.archive_committed",
    "pull.prepared",
    "pull.registered",
    "pull.ledger_written",
];

fn ledger(store: &std::path::Path, file: &str) -> Value {
    let path = store
        .join(".dragonfly-endpoint")
        .join(format!("{file}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_default()).unwrap_or(Value::Null)
}

/// The store after a repair: `file` holds `mar`, the ledger names `model`,
/// no journal, no leftover.
fn assert_repaired(store: &std::path::Path, file: &str, mar: &Mar, model: &str) {
    assert_eq!(
        std::fs::read(store.join(file)).unwrap(),
        std::fs::read(&mar.path).unwrap()
    );
    assert_eq!(
        ledger(store, file)["model_names"],
        serde_json::json!([model])
    );
    assert_no_partial_files(store);
    assert_eq!(store_entries(store), vec![file.to_string()]);
}

#[test]
fn a_kill_at_any_step_is_repaired_by_the_next_pull() {
    let stack = Stack::builder()
        .without_plugin()
        .ts_config("enable_model_api=true\n")
        .start_with_torchserve();
    let Stack {
        work,
        origin,
        config,
        ts,
        ..
    } = stack;
    let hooks = work.path().join("hooks");
    let register = [
        "--management",
        ts.management(),
        "--token",
        ts.management_token(),
    ];
    for (i, step) in STEPS.iter().enumerate() {
        let (model, key) = (format!("crash{i}"), format!("{PREFIX}crash{i}/model.mar"));
        let v1 = make_mar(
            &model,
            1.0,
            &work.path().join(format!("v1-{i}")),
            110 + i as u32,
        );
        let v2 = make_mar(
            &model,
            1.0,
            &work.path().join(format!("v2-{i}")),
            120 + i as u32,
        );
        let store = work.path().join(format!("store-{i}"));
        // The previous version, only downloaded.
        origin.upload(&key, &v1.path);
        let model_key = format!("crash{i}/model.mar");
        let (code, report, stderr) =
            pull_with_cli(&config, &store, &["--model", &model_key, "--no-progress"]);
        assert_eq!(code, 0, "{report:#}\n{stderr}");

        // The new version, killed at `step`.
        origin.upload(&key, &v2.path);
        std::fs::write(&hooks, format!("{step} kill\n")).unwrap();
        let mut args = vec![
            "--model",
            &model_key,
            "--model-name",
            &model,
            "--no-progress",
        ];
        args.extend(register);
        let status = cli_command(&config, &store, &args)
            .env("DRAGONFLY_ENDPOINT_TEST_HOOKS", &hooks)
            .output()
            .unwrap()
            .status;
        assert_eq!(status.signal(), Some(9), "{step}: not killed: {status:?}");

        // The next pull repairs and ends with the new version registered.
        let (code, report, stderr) = pull_with_cli(&config, &store, &args);
        assert_eq!(code, 0, "{step}: {report:#}\n{stderr}");
        assert_repaired(&store, "model.mar", &v2, &model);
        assert_close(infer(&ts, &model).unwrap(), v2.expected);
    }
}

#[test]
fn a_jvm_killed_mid_pull_is_repaired_after_a_restart() {
    let stack = Stack::builder().start();
    let Stack {
        work,
        origin,
        config,
        ..
    } = stack;
    let store = work.path().join("store");
    let v1 = make_mar("jvm", 1.0, &work.path().join("v1"), 131);
    let v2 = make_mar("jvm", 1.0, &work.path().join("v2"), 132);
    origin.upload(&format!("{PREFIX}jvm.mar"), &v1.path);
    let (code, report, stderr) =
        pull_with_cli(&config, &store, &["--model", "jvm.mar", "--no-progress"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    origin.upload(&format!("{PREFIX}jvm.mar"), &v2.path);

    let plugins = plugins_dir(Jar::TestHooks);
    let properties = format!("dragonfly_endpoint_config={}\n", config.display());
    let first = TorchServe::start_in(plugins.path(), &properties, Some(&store));
    first.arm_hooks("pull.archive_committed kill\n");
    let answer = http()
        .put(format!("{}/dragonfly?model=jvm.mar", first.management()))
        .bearer_auth(first.management_token())
        .send();
    assert!(answer.is_err(), "the JVM answered: {answer:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(first.pid()) {
        assert!(Instant::now() < deadline, "the JVM survived its kill");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read(store.join("jvm.mar")).unwrap(),
        std::fs::read(&v2.path).unwrap(),
        "the kill came before the commit"
    );
    drop(first);

    let second = TorchServe::start_in(plugins.path(), &properties, Some(&store));
    let (status, report) = call(&second, "PUT", "/dragonfly?model=jvm.mar");
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(report["models"][0]["registration"], "registered");
    assert_repaired(&store, "jvm.mar", &v2, "jvm");
    assert_close(infer(&second, "jvm").unwrap(), v2.expected);
}
