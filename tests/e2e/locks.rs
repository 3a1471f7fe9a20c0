//! Locks that hold: a DELETE waits for a PUT of the same archive, the CLI
//! and the plugin sharing one model store take turns, and a leftover is
//! judged by its lock, not by a process id.

use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use dragonfly_endpoint_testbed::*;

/// Waits until `file` contains `text` (a log line), at most a minute.
fn wait_for_line(file: &Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(file).unwrap_or_default();
        if log.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {text:?} in {} after 60 s",
            file.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn delete_waits_for_a_pull_and_the_cli_and_plugin_take_turns() {
    let stack = Stack::builder().start_with_torchserve();
    let Stack {
        work,
        origin,
        config,
        ts,
        ..
    } = stack;
    let store = ts.model_store();
    let ts_log = ts.log_dir().join("ts_log.log");
    let held = make_mar("held", 2.0, &work.path().join("mars"), 101);
    origin.upload(&format!("{PREFIX}held.mar"), &held.path);

    // A PUT held right after TorchServe registered the model, a DELETE of
    // it meanwhile: the DELETE waits for the PUT, then removes everything.
    let release = work.path().join("release-put");
    ts.arm_hooks(&format!("pull.registered wait {}\n", release.display()));
    let (put, delete) = thread::scope(|scope| {
        let put = scope.spawn(|| call(&ts, "PUT", "/dragonfly?model=held.mar"));
        wait_for_line(&ts_log, "test hook pull.registered: waiting");
        ts.arm_hooks("");
        let delete = scope.spawn(|| call(&ts, "DELETE", "/dragonfly?model=held"));
        wait_for_line(&ts_log, "waiting for the lock of held.mar");
        assert!(!delete.is_finished(), "the DELETE did not wait for the PUT");
        std::fs::write(&release, b"").unwrap();
        (put.join().unwrap(), delete.join().unwrap())
    });
    assert_eq!(put.0, 200, "{:#}", put.1);
    assert_eq!(put.1["models"][0]["registration"], "registered");
    assert_eq!(delete.0, 200, "{:#}", delete.1);
    assert_eq!(delete.1["archive_removed"], "held.mar", "{:#}", delete.1);
    assert_eq!(infer(&ts, "held"), Err(404));
    assert!(store_entries(&store).is_empty(), "{:?}", entries(&store));
    assert!(entries(&store.join(".dragonfly-endpoint/unpacked")).is_empty());
    let (status, state) = call(&ts, "GET", "/dragonfly?model=held");
    assert_eq!(status, 200, "{state:#}");
    assert_eq!(state["archive"], serde_json::Value::Null, "{state:#}");

    // The CLI (another process) holds the archive; the plugin's PUT of it
    // waits, then finds it unchanged and registers it: one download.
    let shared = make_mar("shared", 2.0, &work.path().join("mars"), 102);
    origin.upload(&format!("{PREFIX}shared.mar"), &shared.path);
    let hooks = work.path().join("cli-hooks");
    let release = work.path().join("release-cli");
    std::fs::write(&hooks, format!("pull.staged wait {}\n", release.display())).unwrap();
    let cli_log = work.path().join("cli.log");
    let mut cli = cli_command(&config, &store, &["--model", "shared.mar", "--no-progress"])
        .env("DRAGONFLY_ENDPOINT_TEST_HOOKS", &hooks)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&cli_log).unwrap())
        .spawn()
        .unwrap();
    wait_for_line(&cli_log, "test hook pull.staged: waiting");
    let sent = origin.s3.sent_bytes();
    let put = thread::scope(|scope| {
        let put = scope.spawn(|| call(&ts, "PUT", "/dragonfly?model=shared.mar"));
        wait_for_line(&ts_log, "waiting for the lock of shared.mar");
        std::fs::write(&release, b"").unwrap();
        put.join().unwrap()
    });
    assert!(
        cli.wait().unwrap().success(),
        "{}",
        std::fs::read_to_string(&cli_log).unwrap()
    );
    assert_eq!(put.0, 200, "{:#}", put.1);
    assert_eq!(
        put.1["models"][0]["download"]["action"], "unchanged",
        "{:#}",
        put.1
    );
    assert_close(infer(&ts, "shared").unwrap(), shared.expected);
    assert!(
        origin.s3.sent_bytes() - sent < shared.bytes + shared.bytes / 10,
        "the archive was downloaded twice"
    );

    // A leftover named after a live process (pid 1, as the previous
    // release named them) is stale once its lock is free.
    let leftover = store.join(".shared.mar.dfpart-1-0");
    std::fs::write(&leftover, b"left by a crashed pod").unwrap();
    let (status, body) = call(&ts, "PUT", "/dragonfly?model=shared.mar");
    assert_eq!(status, 200, "{body:#}");
    assert!(!leftover.exists(), "a leftover with a live pid was kept");
    assert_no_partial_files(&store);
}
