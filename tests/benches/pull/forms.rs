//! forms (issue 15): a model directory of 8 shards against one zip-store
//! archive of the same model, pulled cold with the CLI; a zip-store
//! archive registered through the plugin against TorchServe's own
//! registration of the same archive; the CLI's peak RSS pulling a 6 GiB
//! zip64 archive. Paired runs (`pairs::measure`), each from the same page
//! cache state, CPU seconds of the working processes beside wall time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dragonfly_endpoint_testbed::{
    cache_dir, cached_model, python, repo_root, ArchiveFormat, Mar, Origin,
};
use serde_json::json;

use crate::fixtures::{cli_pull, fresh_dir, progress, pull_command, write_config, Keys};
use crate::memory::peak_rss;
use crate::pairs::{measure, timed};
use crate::serving::{post_url_path, Serving};
use crate::stats::{median, Row};
use crate::Args;

pub fn run(args: &Args, work: &Path, rows: &mut Vec<Row>) {
    let size = args.size_mb as f64;
    let directory = cached_model("shards", size, 51, ArchiveFormat::NoArchive, 8);
    let stored = cached_model("shards", size, 51, ArchiveFormat::ZipStore, 8);
    directory_vs_archive(args, &directory, &stored, work, rows);
    stored_register(args, &stored, work, rows);
    zip64_memory(args, work, rows);
}

/// Written-back and dropped page cache, so every run starts alike: the
/// store reads from disk, nothing of the last run is still being written.
pub fn settle() {
    // SAFETY: sync(2) has no memory effects.
    unsafe { libc::sync() };
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
}

fn directory_vs_archive(args: &Args, dir: &Mar, stored: &Mar, work: &Path, rows: &mut Vec<Row>) {
    progress("forms: model directory vs zip-store archive (CLI, cold)");
    let origin = Origin::start(1);
    let config = write_config(
        &work.join("cfg-forms"),
        "config.json",
        &origin.s3,
        &origin.dragonfly.proxy(1),
        json!({}),
    );
    let pids = [origin.dragonfly.peer_pid(1), origin.s3.pid()];
    let pull = |model: &str| {
        let store = fresh_dir(work, "store");
        settle();
        let sample = timed(&pids, || {
            cli_pull(&config, &store, model);
        });
        progress(&format!("  {model}: {:.2} s", sample.wall));
        sample
    };
    let pairs = measure(
        args.pairs,
        |run| {
            let prefix = format!("dir{run}/");
            origin.upload_dir(&prefix, &dir.path);
            pull(&prefix)
        },
        |run| pull(&origin.fresh(stored, &format!("stored{run}.mar"))),
    );
    rows.push(Row::paired(
        "forms",
        format!(
            "model directory, 8 shards, {:.0} MiB: CLI pull, cold",
            dir.bytes as f64 / crate::MIB
        ),
        "one zip-store archive of the same model".into(),
        &pairs,
        Some(1.1),
    ));
}

fn stored_register(args: &Args, stored: &Mar, work: &Path, rows: &mut Vec<Row>) {
    progress("forms: zip-store register, plugin vs TorchServe's POST");
    let (origin, _config, serving) = Serving::start_with_origin(&work.join("cfg-forms-reg"));
    let pids = [
        serving.ts.pid(),
        origin.dragonfly.peer_pid(1),
        origin.s3.pid(),
    ];
    let register = |name: &str, method: &str, path: &str| {
        settle();
        let sample = timed(&pids, || {
            serving.timed(method, path);
        });
        serving.check_answer(name, stored);
        progress(&format!("  {method} {name}: {:.2} s", sample.wall));
        sample
    };
    let pairs = measure(
        args.pairs,
        |run| {
            let name = format!("fput{run}");
            let key = origin.fresh(stored, &format!("{name}.mar"));
            let sample = register(&name, "PUT", &format!("/dragonfly?model={key}"));
            serving.call("DELETE", &format!("/dragonfly?model={name}"));
            sample
        },
        |run| {
            let name = format!("fpost{run}");
            let key = origin.fresh(stored, &format!("{name}.mar"));
            let path = post_url_path(&origin, &key, &name);
            let sample = register(&name, "POST", &path);
            serving.call("DELETE", &format!("/models/{name}"));
            serving.remove_store_files(&name);
            sample
        },
    );
    rows.push(Row::paired(
        "forms",
        "zip-store archive: PUT /dragonfly until registered, cold".into(),
        "TorchServe POST /models?url=presigned, same archive".into(),
        &pairs,
        Some(0.8),
    ));
}

/// A 6 GiB zip64 archive, built once into the cache.
fn zip64_archive() -> (PathBuf, u64) {
    let dir = cache_dir().join("fixtures/zip64-6gib");
    let path = dir.join("big64.mar");
    let want = 6 * 1024 * 1024 * 1024u64;
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.len() > want {
            return (path, meta.len());
        }
    }
    std::fs::create_dir_all(&dir).expect("fixture dir");
    progress("forms: building the 6 GiB zip64 archive");
    let status = Command::new(python())
        .arg(repo_root().join("tests/support/big_zip64.py"))
        .arg(&path)
        .arg((6 * 1024).to_string())
        .stdout(Stdio::null())
        .status()
        .expect("run big_zip64.py");
    assert!(status.success(), "big_zip64.py failed");
    let bytes = std::fs::metadata(&path).expect("zip64 archive").len();
    (path, bytes)
}

fn zip64_memory(args: &Args, work: &Path, rows: &mut Vec<Row>) {
    let (archive, bytes) = zip64_archive();
    let origin = Origin::start(1);
    let config = write_config(
        &work.join("cfg-forms-zip64"),
        "config.json",
        &origin.s3,
        &origin.dragonfly.proxy(1),
        json!({}),
    );
    let mar = Mar {
        path: archive,
        bytes,
        expected: 0.0,
    };
    let mut peaks = Vec::new();
    // Each run uploads and pulls 6 GiB: two are enough for a peak.
    for run in 0..args.runs.min(2) {
        progress(&format!("forms: 6 GiB zip64 pull {}/2", run + 1));
        let key = origin.fresh(&mar, &format!("big64-{run}.mar"));
        let store = fresh_dir(work, "store");
        settle();
        let mut child = pull_command(&config, &store, &key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the CLI");
        peaks.push(peak_rss(&mut child));
        let _ = std::fs::remove_dir_all(&store);
        origin.discard(&key, mar.bytes);
    }
    rows.push(Row {
        case: "forms",
        variant: format!(
            "CLI peak RSS (VmHWM), cold {:.1} GiB zip64 pull + unpack",
            bytes as f64 / (1024.0 * crate::MIB)
        ),
        unit: "MiB",
        met: Some(median(&peaks) <= 64.0),
        values: peaks,
        baseline: None,
        goal: "<= 64 MiB".into(),
        ratios: None,
        cpu: None,
    });
}
