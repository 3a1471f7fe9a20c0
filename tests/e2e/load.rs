//! The plugin under load inside real TorchServe: status calls answer while
//! a 1 GiB pull runs, and repeated pull/unregister cycles leak nothing.
//! Latencies are printed, not asserted tightly: `scripts/bench` reports
//! them against the 100 ms goal.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

/// Status calls fired at once while the big pull downloads.
const STATUS_CALLS: usize = 50;
/// PUT/DELETE cycles of the leak check.
const CYCLES: usize = 20;

#[test]
fn status_calls_answer_while_a_1gib_pull_runs() {
    // No worker: the archive is unzipped and registered, but a 1 GiB model
    // is not loaded into Python; the pull is what is under test.
    let stack = Stack::builder()
        .config(json!({"min_worker": 0}))
        .start_with_torchserve();
    let Stack { origin, ts, .. } = stack;
    let big = cached_mar("big", 1100.0, 41);
    origin.upload(&format!("{PREFIX}big.mar"), &big.path);

    let (pull, latencies, saw_downloading) = thread::scope(|scope| {
        let pull = scope.spawn(|| call(&ts, "PUT", "/dragonfly?model=big.mar"));
        // Wait until the pull is under way, then fire every call at once.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, state) = call(&ts, "GET", "/dragonfly?model=big");
            if phase_of(&state) == Some("downloading") {
                break;
            }
            assert!(
                Instant::now() < deadline && !pull.is_finished(),
                "the pull never showed as downloading: {state:#}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        let calls: Vec<_> = (0..STATUS_CALLS)
            .map(|i| {
                let ts = &ts;
                scope.spawn(move || {
                    let path = if i % 2 == 0 {
                        "/dragonfly"
                    } else {
                        "/dragonfly?model=big"
                    };
                    let started = Instant::now();
                    let (status, state) = call(ts, "GET", path);
                    (status, started.elapsed(), state)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut saw_downloading = 0;
        for call in calls {
            let (status, elapsed, state) = call.join().unwrap();
            assert_eq!(status, 200, "{state:#}");
            if phase_of(&state) == Some("downloading") {
                saw_downloading += 1;
            }
            latencies.push(elapsed);
        }
        (pull.join().unwrap(), latencies, saw_downloading)
    });

    let (status, report) = pull;
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(report["models"][0]["download"]["bytes"], big.bytes);
    assert_eq!(
        std::fs::metadata(ts.model_store().join("big.mar"))
            .unwrap()
            .len(),
        big.bytes
    );
    let mut sorted = latencies.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    println!(
        "{STATUS_CALLS} status calls during a {} MiB pull: median {:.1} ms, max {:.1} ms ({saw_downloading} saw it downloading)",
        big.bytes >> 20,
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(
        saw_downloading > 0,
        "no status call answered while the pull was downloading"
    );
    assert!(
        max < Duration::from_secs(5),
        "a status call took {max:?}: blocked behind the pull"
    );
}

fn phase_of(state: &Value) -> Option<&str> {
    state["pulls"]
        .as_array()?
        .iter()
        .find(|p| p["model_name"] == "big")?["phase"]
        .as_str()
}

/// Open files and threads of a process, from /proc.
fn fds_and_threads(pid: u32) -> (usize, usize) {
    let count = |dir: String| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    (
        count(format!("/proc/{pid}/fd")),
        count(format!("/proc/{pid}/task")),
    )
}

/// Python workers the JVM started and has not reaped yet (zombies count).
fn workers_of(jvm: u32) -> usize {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter(|entry| {
            let dir = entry.path();
            let parent = std::fs::read_to_string(dir.join("stat"))
                .ok()
                .and_then(|stat| {
                    // "pid (comm) S ppid ...": the ppid follows the state.
                    let after = stat.rsplit_once(')')?.1.to_string();
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            parent == Some(jvm)
                && String::from_utf8_lossy(&cmdline).contains("model_service_worker")
        })
        .count()
}

fn wait_until_no_worker(jvm: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while workers_of(jvm) > 0 {
        assert!(
            Instant::now() < deadline,
            "TorchServe kept the unregistered model's worker for 60 s"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Every file under `dir`, recursively.
fn file_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        file_count(&path)
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn pull_and_unregister_cycles_leak_nothing() {
    let stack = Stack::builder().start_with_torchserve();
    let Stack {
        work, origin, ts, ..
    } = stack;
    let mar = make_mar("cycle", 2.0, &work.path().join("mars"), 42);
    origin.upload(&format!("{PREFIX}cycle.mar"), &mar.path);
    let jvm = ts.pid();
    let ts_tmp = ts.0.dir().join("tmp");

    let mut samples = Vec::new();
    for cycle in 1..=CYCLES {
        let (status, report) = call(&ts, "PUT", "/dragonfly?model=cycle.mar");
        assert_eq!(status, 200, "cycle {cycle}: {report:#}");
        assert_close(infer(&ts, "cycle").unwrap(), mar.expected);
        assert!(
            workers_of(jvm) >= 1,
            "cycle {cycle}: no worker process seen"
        );
        let (status, body) = call(&ts, "DELETE", "/dragonfly?model=cycle");
        assert_eq!(status, 200, "cycle {cycle}: {body:#}");
        assert!(
            !ts.model_store().join("cycle.mar").exists(),
            "cycle {cycle}"
        );
        assert_no_partial_files(&ts.model_store());
        // Sample once TorchServe has reaped the stopped worker.
        wait_until_no_worker(jvm);
        let (fds, threads) = fds_and_threads(jvm);
        samples.push((
            fds,
            threads,
            file_count(&ts_tmp) + file_count(&ts.model_store()),
        ));
    }
    println!("open files, threads, files in TorchServe's temp dir and model store after each cycle: {samples:?}");
    // The first cycles load classes and start pools; compare after them.
    let (base_fds, base_threads, base_tmp) = samples[2];
    let (fds, threads, tmp) = samples[CYCLES - 1];
    assert!(
        fds <= base_fds + 3,
        "open files grew from {base_fds} to {fds}: {samples:?}"
    );
    assert!(
        threads <= base_threads + 3,
        "threads grew from {base_threads} to {threads}: {samples:?}"
    );
    assert!(
        tmp <= base_tmp,
        "temp files grew from {base_tmp} to {tmp}: {samples:?}"
    );
}
