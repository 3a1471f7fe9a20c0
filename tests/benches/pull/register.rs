//! register end to end: the plugin's PUT until the model answers, against
//! what TorchServe itself does from the same state, in paired runs
//! (`pairs::measure`: warm-up discarded, ABBA, median of per-pair ratios,
//! CPU seconds of the JVM, the peer and the store beside wall time):
//!
//! - cold: a fresh key through the plugin vs TorchServe's own
//!   `POST /models?url=<presigned URL>` of a fresh key;
//! - warm: the peer has the task, the model store is empty (the plugin's
//!   DELETE) vs TorchServe's POST of an object it fetched before (the
//!   store's page cache warm, its model store empty): the fastest it can
//!   do from that state;
//! - re-pull: archive and unpacked copy in the store, the model
//!   unregistered through TorchServe only vs TorchServe registering the
//!   same archive from its own model store (`url=<file>.mar`);
//! - register_as mar, cold: TorchServe unpacks the archive we hand it.
//!
//! Each key is deleted from the store (and its disk freed) once its run
//! is done: a full run uploads ~40 GiB, more than the S3 server's disk
//! held before (it answered `InternalError` to the 34th upload).

use std::path::Path;

use dragonfly_endpoint_testbed::{Mar, Origin};
use serde_json::json;

use crate::fixtures::{progress, write_config, Keys};
use crate::forms::settle;
use crate::pairs::{measure, timed, Sample};
use crate::serving::{post_url_path, Serving};
use crate::stats::Row;
use crate::Args;

const POST_BASELINE: &str = "TorchServe POST /models?url=presigned, fresh key";

struct Bench<'a> {
    origin: &'a Origin,
    serving: &'a Serving,
    mar: &'a Mar,
    pids: [u32; 3],
}

impl Bench<'_> {
    /// A timed call from a settled page cache and a collected JVM heap,
    /// then the answer checked. Both variants run in the same TorchServe
    /// JVM, and TorchServe's POST (its Java download and unzip of 1 GiB)
    /// leaves garbage whose collection would otherwise land in whichever
    /// run comes next.
    fn timed(&self, name: &str, method: &str, path: &str) -> Sample {
        settle();
        let gc = std::process::Command::new("jcmd")
            .args([&self.pids[0].to_string(), "GC.run"])
            .output();
        if !gc.is_ok_and(|out| out.status.success()) {
            progress("  (jcmd GC.run failed; the run starts with the heap as it is)");
        }
        let sample = timed(&self.pids, || {
            self.serving.timed(method, path);
        });
        self.serving.check_answer(name, self.mar);
        progress(&format!("  {method} {name}: {:.2} s", sample.wall));
        sample
    }

    /// TorchServe's own POST of a presigned URL (`initial_workers=1`,
    /// synchronous), untimed with `time: false`.
    fn post_url(&self, name: &str, key: &str, time: bool) -> Option<Sample> {
        let path = post_url_path(self.origin, key, name);
        if time {
            return Some(self.timed(name, "POST", &path));
        }
        self.serving.timed("POST", &path);
        None
    }

    /// Unregistered through TorchServe's own API; its files stay.
    fn unregister(&self, name: &str) {
        self.serving.call("DELETE", &format!("/models/{name}"));
    }

    /// TorchServe's unregister and the archive its POST downloaded.
    fn forget(&self, name: &str) {
        self.unregister(name);
        self.serving.remove_store_files(name);
    }
}

pub fn run(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    let cfg = work.join("cfg-register");
    let (origin, _config, serving) = Serving::start_with_origin(&cfg);
    let mar_config = write_config(
        &cfg,
        "mar.json",
        &origin.s3,
        &origin.dragonfly.proxy(1),
        json!({"register_as": "mar"}),
    );
    let bench = Bench {
        origin: &origin,
        serving: &serving,
        mar,
        pids: [
            serving.ts.pid(),
            origin.dragonfly.peer_pid(1),
            origin.s3.pid(),
        ],
    };
    let b = &bench;
    let fresh = |prefix: &str, run: usize| {
        let name = format!("{prefix}{run}");
        let key = origin.fresh(mar, &format!("{name}.mar"));
        (name, key)
    };

    progress("register: cold");
    let cold = measure(
        args.pairs,
        |run| {
            let (name, key) = fresh("cold", run);
            let sample = b.timed(&name, "PUT", &format!("/dragonfly?model={key}"));
            serving.call("DELETE", &format!("/dragonfly?model={name}"));
            origin.discard(&key, mar.bytes);
            sample
        },
        |run| {
            let (name, key) = fresh("coldbase", run);
            let sample = b.post_url(&name, &key, true);
            b.forget(&name);
            origin.discard(&key, mar.bytes);
            sample.expect("timed")
        },
    );
    rows.push(Row::paired(
        "register end to end",
        "PUT, cold (unpacked while streaming)".into(),
        POST_BASELINE.into(),
        &cold,
        Some(0.45),
    ));

    progress("register: warm");
    let warm = measure(
        args.pairs,
        |run| {
            let (name, key) = fresh("warm", run);
            b.serving.timed("PUT", &format!("/dragonfly?model={key}"));
            // Store emptied by the plugin; the peer keeps the task.
            serving.call("DELETE", &format!("/dragonfly?model={name}"));
            let sample = b.timed(&name, "PUT", &format!("/dragonfly?model={key}"));
            serving.call("DELETE", &format!("/dragonfly?model={name}"));
            origin.discard(&key, mar.bytes);
            sample
        },
        |run| {
            let (name, key) = fresh("warmbase", run);
            b.post_url(&name, &key, false);
            b.forget(&name);
            let sample = b.post_url(&name, &key, true);
            b.forget(&name);
            origin.discard(&key, mar.bytes);
            sample.expect("timed")
        },
    );
    rows.push(Row::paired(
        "register end to end",
        "PUT, warm (peer has the task, store empty: hard link, unpack from file)".into(),
        "TorchServe POST of an object it fetched before, store empty".into(),
        &warm,
        Some(0.25),
    ));

    progress("register: re-pull");
    let repull = measure(
        args.pairs,
        |run| {
            let (name, key) = fresh("repull", run);
            b.serving.timed("PUT", &format!("/dragonfly?model={key}"));
            b.unregister(&name);
            let sample = b.timed(&name, "PUT", &format!("/dragonfly?model={key}"));
            serving.call("DELETE", &format!("/dragonfly?model={name}"));
            origin.discard(&key, mar.bytes);
            sample
        },
        |run| {
            let name = format!("repullbase{run}");
            // The same archive in TorchServe's own model store (its
            // unregister removes an archive its POST downloaded).
            let archive = serving.ts.model_store().join(format!("{name}.mar"));
            std::fs::copy(&mar.path, &archive).expect("copy the archive into the store");
            let sample = b.timed(
                &name,
                "POST",
                &format!(
                    "/models?url={name}.mar&model_name={name}&initial_workers=1&synchronous=true"
                ),
            );
            b.forget(&name);
            sample
        },
    );
    rows.push(Row::paired(
        "register end to end",
        "PUT, re-pull (unchanged: archive and unpacked copy in the store)".into(),
        "TorchServe POST url=<the archive in its model store>".into(),
        &repull,
        Some(0.25),
    ));

    progress("register: register_as mar");
    let as_mar = measure(
        args.pairs,
        |run| {
            let (name, key) = fresh("regmar", run);
            let sample = b.timed(
                &name,
                "PUT",
                &format!("/dragonfly?model={key}&config={}", mar_config.display()),
            );
            serving.call("DELETE", &format!("/dragonfly?model={name}"));
            origin.discard(&key, mar.bytes);
            sample
        },
        |run| {
            let (name, key) = fresh("regmarbase", run);
            let sample = b.post_url(&name, &key, true);
            b.forget(&name);
            origin.discard(&key, mar.bytes);
            sample.expect("timed")
        },
    );
    rows.push(Row::paired(
        "register end to end",
        "PUT, cold, register_as mar (TorchServe unzips)".into(),
        POST_BASELINE.into(),
        &as_mar,
        None,
    ));
}
