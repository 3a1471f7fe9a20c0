//! memory: the CLI's peak RSS over a cold pull with unpacking, and the
//! TorchServe JVM's RSS growth over a cold PUT.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dragonfly_endpoint_testbed::Mar;

use crate::fixtures::{fresh_dir, progress, pull_command, Keys};
use crate::serving::Serving;
use crate::stats::{median, Row};
use crate::Args;

/// A value of /proc/PID/status in KiB, as MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The peak RSS (VmHWM) of a running child, in MiB, sampled every 20 ms
/// until it exits successfully.
pub fn peak_rss(child: &mut std::process::Child) -> f64 {
    let mut peak: f64 = 0.0;
    loop {
        if let Some(hwm) = status_mib(child.id(), "VmHWM:") {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "CLI pull failed");
            return peak;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// memory: peak RSS of the CLI during a cold pull (with unpacking), and
/// the TorchServe JVM's RSS growth during a cold PUT.
pub fn run(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    let (origin, config, serving) = Serving::start_with_origin(&work.join("cfg-memory"));
    let jvm = serving.ts.pid();
    // The first call loads the native library: a one-time cost, not a pull's.
    let (status, _) = serving.call("GET", "/dragonfly");
    assert_eq!(status, 200);
    let (mut cli_peak, mut jvm_growth) = (vec![], vec![]);
    for run in 0..args.runs {
        progress(&format!("memory run {}/{}", run + 1, args.runs));
        let key = origin.fresh(mar, &format!("mem-cli-{run}.mar"));
        let store = fresh_dir(work, "store");
        let mut child = pull_command(&config, &store, &key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the CLI");
        cli_peak.push(peak_rss(&mut child));

        let name = format!("mem{run}");
        let key = origin.fresh(mar, &format!("{name}.mar"));
        let before = status_mib(jvm, "VmRSS:").expect("JVM RSS");
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut top: f64 = 0.0;
                while !done.load(Ordering::Relaxed) {
                    if let Some(rss) = status_mib(jvm, "VmRSS:") {
                        top = top.max(rss);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                top
            })
        };
        serving.timed("PUT", &format!("/dragonfly?model={key}"));
        done.store(true, Ordering::Relaxed);
        let top = sampler.join().expect("sampler");
        jvm_growth.push((top - before).max(0.0));
        serving.call("DELETE", &format!("/dragonfly?model={name}"));
    }
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "memory",
        variant: format!(
            "CLI peak RSS (VmHWM), cold {} MiB pull + unpack",
            args.size_mb
        ),
        unit: "MiB",
        met: Some(median(&cli_peak) <= 64.0),
        values: cli_peak,
        baseline: None,
        goal: "<= 64 MiB".into(),
    });
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "memory",
        variant: "TorchServe JVM RSS growth during a cold PUT (workers excluded)".into(),
        unit: "MiB",
        met: Some(median(&jvm_growth) <= 64.0),
        values: jvm_growth,
        baseline: None,
        goal: "<= 64 MiB".into(),
    });
}
