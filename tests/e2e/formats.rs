//! The archive forms `torch-model-archiver --archive-format` writes besides
//! the deflated `.mar`, through real TorchServe with the plugin: a tgz
//! (as `.tar.gz` and as `.tgz`, weights split over several files) and a
//! zip-store `.mar` of the real model are found by `model=all`, unpacked
//! while they stream in, registered from their directory and answer
//! inference; with `register_as: mar` TorchServe gets the `.tar.gz` itself.

use std::path::{Path, PathBuf};

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

/// The unpacked directory of `file_name` in the store.
fn unpacked_dir(store: &Path, file_name: &str) -> PathBuf {
    let root = store.join(".dragonfly-endpoint/unpacked");
    let prefix = format!("{file_name}-");
    std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no unpacked directory of {file_name} in {}", root.display()))
}

fn model<'a>(report: &'a Value, file_name: &str) -> &'a Value {
    report["models"]
        .as_array()
        .and_then(|models| models.iter().find(|m| m["file_name"] == file_name))
        .unwrap_or_else(|| panic!("{file_name} not in {report:#}"))
}

#[test]
fn tgz_and_zip_store_archives_register_and_answer() {
    let stack = Stack::builder().start_with_torchserve();
    let Stack {
        work,
        origin,
        ts,
        config,
        ..
    } = stack;
    let built = work.path().join("models");
    let tgz = make_model("tgzmodel", 12.0, &built, 31, ArchiveFormat::Tgz, 3);
    let stored = make_model("stored", 12.0, &built, 32, ArchiveFormat::ZipStore, 1);
    assert!(tgz.path.to_string_lossy().ends_with("tgzmodel.tar.gz"));
    origin.upload(&format!("{PREFIX}tgzmodel.tar.gz"), &tgz.path);
    origin.upload(&format!("{PREFIX}short.tgz"), &tgz.path);
    origin.upload(&format!("{PREFIX}stored.mar"), &stored.path);
    let store = ts.model_store();

    let (status, report) = call(&ts, "PUT", "/dragonfly?model=all");
    assert_eq!(status, 200, "{report:#}");
    // The tgz: handler, module, manifest and two weight shards.
    for (file_name, name, expected, files) in [
        ("tgzmodel.tar.gz", "tgzmodel", tgz.expected, 5),
        ("short.tgz", "short", tgz.expected, 5),
        ("stored.mar", "stored", stored.expected, 3),
    ] {
        let pulled = model(&report, file_name);
        assert_eq!(pulled["model_name"], name, "{pulled:#}");
        assert_eq!(pulled["registration"], "registered", "{pulled:#}");
        assert_eq!(pulled["unpacked"]["from"], "stream", "{pulled:#}");
        assert_eq!(pulled["unpacked"]["files"], files, "{pulled:#}");
        assert_close(infer(&ts, name).unwrap(), expected);
        // What TorchServe would have made of the archive: the model's
        // folder dropped, the manifest at the root.
        let dir = unpacked_dir(&store, file_name);
        assert!(dir.join("MAR-INF/MANIFEST.json").is_file(), "{dir:?}");
        assert!(
            !dir.join(name).exists(),
            "{dir:?} kept the archive's folder"
        );
    }
    let tgz_dir = unpacked_dir(&store, "tgzmodel.tar.gz");
    for shard in ["shard-001-of-003.pt", "shard-002-of-003.pt"] {
        assert!(tgz_dir.join("weights").join(shard).is_file(), "{shard}");
    }
    assert!(store.join("tgzmodel.tar.gz").is_file());

    // register_as mar: no unpacking, TorchServe unpacks the .tar.gz.
    let mar_mode = write_config(
        &config.parent().unwrap().join("mar"),
        &origin.s3,
        &origin.dragonfly.proxy(1),
        json!({"register_as": "mar"}),
    );
    origin.upload(&format!("{PREFIX}plain.tar.gz"), &tgz.path);
    let (status, report) = call(
        &ts,
        "PUT",
        &format!(
            "/dragonfly?model=plain.tar.gz&config={}",
            mar_mode.display()
        ),
    );
    assert_eq!(status, 200, "{report:#}");
    let pulled = model(&report, "plain.tar.gz");
    assert!(pulled.get("unpacked").is_none(), "{pulled:#}");
    assert_eq!(pulled["model_name"], "plain", "{pulled:#}");
    assert_close(infer(&ts, "plain").unwrap(), tgz.expected);
    assert_no_partial_files(&store);
}

/// Zips the model directory `src` into `out` with tests/support/rezip.py.
fn rezip(src: &Path, out: &Path, args: &[&str]) -> u64 {
    let output = std::process::Command::new(python())
        .arg(repo_root().join("tests/support/rezip.py"))
        .args([src, out])
        .args(args)
        .output()
        .expect("run rezip.py");
    assert!(
        output.status.success(),
        "rezip.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("entry count")
}

#[test]
fn zip64_archives_register_and_answer() {
    let stack = Stack::builder().start_with_torchserve();
    let Stack {
        work, origin, ts, ..
    } = stack;
    let built = work.path().join("models");
    let model_dir = make_model("zsrc", 4.0, &built, 33, ArchiveFormat::NoArchive, 2);
    // Every entry with zip64 headers, as an entry over 4 GiB has them; and
    // more than 65535 entries, which makes the archive itself zip64.
    let forced = built.join("forced.mar");
    let many = built.join("many.mar");
    let files = rezip(&model_dir.path, &forced, &["--force-zip64"]);
    let entries = rezip(&model_dir.path, &many, &["--extra-entries", "65600"]);
    assert!(entries > 65535, "{entries}");
    origin.upload(&format!("{PREFIX}forced.mar"), &forced);
    origin.upload(&format!("{PREFIX}many.mar"), &many);

    let (status, report) = call(&ts, "PUT", "/dragonfly?model=forced.mar,many.mar");
    assert_eq!(status, 200, "{report:#}");
    for (file_name, name, count) in [
        ("forced.mar", "forced", files),
        ("many.mar", "many", entries),
    ] {
        let pulled = model(&report, file_name);
        assert_eq!(pulled["registration"], "registered", "{pulled:#}");
        assert_eq!(pulled["unpacked"]["files"], count, "{pulled:#}");
        assert_close(infer(&ts, name).unwrap(), model_dir.expected);
    }
    let extra = unpacked_dir(&ts.model_store(), "many.mar").join("extra");
    assert_eq!(std::fs::read_dir(extra).unwrap().count(), 65600);
    assert_no_partial_files(&ts.model_store());
}
