//! `register_as: directory` (the default) in real TorchServe: the archive
//! is unpacked while it downloads and TorchServe loads the directory
//! without unzipping; the model serves, scales and unregisters like any
//! other, a re-pull reuses the unpacked copy, and a bad archive leaves
//! nothing behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

/// Unpacked archive versions in the model store.
fn unpacked(store: &Path) -> Vec<PathBuf> {
    let root = store.join(".dragonfly-endpoint/unpacked");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// A call to TorchServe's own management API.
fn management(ts: &TorchServe, method: &str, path: &str) -> (u16, Value) {
    call(ts, method, path)
}

#[test]
fn unpacked_models_serve_scale_repull_from_cache_and_unregister() {
    // The model API on, to act on the model with TorchServe's own calls.
    let stack = Stack::builder()
        .ts_config("enable_model_api=true\n")
        .start_with_torchserve();
    let Stack {
        work, origin, ts, ..
    } = stack;
    let mar = make_mar("unpacked", 24.0, &work.path().join("mars"), 21);
    origin.upload(&format!("{PREFIX}unpacked.mar"), &mar.path);
    let store = ts.model_store();

    // Cold: unpacked from the stream, registered from the directory.
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=unpacked.mar");
    assert_eq!(status, 200, "{report:#}");
    let model = &report["models"][0];
    assert_eq!(model["unpacked"]["from"], "stream", "{model:#}");
    assert_eq!(model["unpacked"]["files"], 3, "{model:#}");
    assert_close(infer(&ts, "unpacked").unwrap(), mar.expected);
    let dirs = unpacked(&store);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(dirs[0].join("MAR-INF/MANIFEST.json").is_file());
    // The .mar stays in the store for operators and `--models all`.
    assert_eq!(
        std::fs::metadata(store.join("unpacked.mar")).unwrap().len(),
        mar.bytes
    );
    let (status, described) = management(&ts, "GET", "/models/unpacked");
    assert_eq!(status, 200, "{described:#}");
    assert_eq!(
        described[0]["modelUrl"].as_str().map(PathBuf::from),
        Some(dirs[0].clone()),
        "{described:#}"
    );

    // Scaling works as for any model.
    let (status, scaled) = management(
        &ts,
        "PUT",
        "/models/unpacked?min_worker=2&max_worker=2&synchronous=true",
    );
    assert_eq!(status, 200, "{scaled:#}");
    let (_, described) = management(&ts, "GET", "/models/unpacked");
    assert_eq!(
        described[0]["workers"].as_array().map(Vec::len),
        Some(2),
        "{described:#}"
    );
    assert_close(infer(&ts, "unpacked").unwrap(), mar.expected);

    // Unregistered by TorchServe's own API: the unpacked copy stays, and
    // the next pull registers it again without downloading or unpacking.
    let (status, removed) = management(&ts, "DELETE", "/models/unpacked");
    assert_eq!(status, 200, "{removed:#}");
    assert_eq!(infer(&ts, "unpacked"), Err(404));
    assert_eq!(
        unpacked(&store),
        dirs,
        "TorchServe removed the unpacked directory"
    );
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=unpacked.mar");
    assert_eq!(status, 200, "{report:#}");
    let model = &report["models"][0];
    assert_eq!(model["download"]["action"], "unchanged", "{model:#}");
    assert_eq!(model["unpacked"]["from"], "cache", "{model:#}");
    assert_eq!(model["registration"], "registered", "{model:#}");
    assert_close(infer(&ts, "unpacked").unwrap(), mar.expected);

    // The plugin's DELETE removes the archive and every unpacked copy.
    let (status, removed) = call(&ts, "DELETE", "/dragonfly?model=unpacked");
    assert_eq!(status, 200, "{removed:#}");
    assert!(unpacked(&store).is_empty(), "{:?}", unpacked(&store));
    assert!(!store.join("unpacked.mar").exists());
    assert_eq!(infer(&ts, "unpacked"), Err(404));

    // A new version of the object replaces the unpacked copy.
    let v2 = make_mar("unpacked", 24.0, &work.path().join("mars-v2"), 22);
    origin.upload(&format!("{PREFIX}unpacked.mar"), &v2.path);
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=unpacked.mar");
    assert_eq!(status, 200, "{report:#}");
    assert_close(infer(&ts, "unpacked").unwrap(), v2.expected);
    let v2_dirs = unpacked(&store);
    assert_eq!(v2_dirs.len(), 1, "{v2_dirs:?}");
    assert_ne!(v2_dirs, dirs, "the new version reused the old directory");
    assert_no_partial_files(&store);
    assert_no_partial_files(&store.join(".dragonfly-endpoint/unpacked"));
}

#[test]
fn warm_archives_unpack_from_the_file_and_mar_mode_skips_unpacking() {
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::start(1);
    let mar = make_mar("twice", 8.0, &work.path().join("mars"), 23);
    origin.upload(&format!("{PREFIX}twice.mar"), &mar.path);
    let pull_into = |name: &str, extra: Value| {
        let dir = work.path().join(name);
        let config = write_config(
            &dir.join("cfg"),
            &origin.s3,
            &origin.dragonfly.proxy(1),
            extra,
        );
        let store = dir.join("store");
        let (code, report, stderr) =
            pull_with_cli(&config, &store, &["--model", "twice.mar", "--no-progress"]);
        assert_eq!(code, 0, "{report:#}\n{stderr}");
        (report["models"][0].clone(), store)
    };

    let (cold, _) = pull_into("cold", json!({}));
    assert_eq!(cold["unpacked"]["from"], "stream", "{cold:#}");
    // Hard-linked from the peer's cache: nothing streamed, so the file is
    // unpacked; the result is the same directory content.
    let (warm, store) = pull_into("warm", json!({}));
    assert_eq!(warm["download"]["hard_linked"], true, "{warm:#}");
    assert_eq!(warm["unpacked"]["from"], "file", "{warm:#}");
    let dirs = unpacked(&store);
    assert_eq!(dirs.len(), 1);
    let archive = std::fs::read(store.join("twice.mar")).unwrap();
    let listed = zip_names(&archive);
    for name in &listed {
        assert!(dirs[0].join(name).exists(), "{name} missing");
    }

    // register_as mar: the archive only.
    let (plain, store) = pull_into("mar", json!({"register_as": "mar"}));
    assert!(plain.get("unpacked").is_none(), "{plain:#}");
    assert!(unpacked(&store).is_empty());
}

/// Names of the files in a zip, from its central directory (python).
fn zip_names(archive: &[u8]) -> Vec<String> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(archive).unwrap();
    let output = std::process::Command::new(dragonfly_endpoint_testbed::python())
        .args([
            "-c",
            "import sys, zipfile; print('\\n'.join(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if not n.endswith('/')))",
        ])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Writes `argv[1]`, a `.mar` whose one entry inflates to 64 MiB of
/// zeros, and `argv[2]`, a tgz of 300 one-byte files.
const BOMB_AND_FLOOD: &str = r#"
import io, sys, tarfile, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("MAR-INF/MANIFEST.json", "{}")
    z.writestr("w.pt", bytes(64 << 20))
with tarfile.open(sys.argv[2], "w:gz") as t:
    for i in range(300):
        info = tarfile.TarInfo(f"m/f{i}")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
"#;

#[test]
fn archives_that_cannot_be_unpacked_safely_are_refused_and_leave_nothing() {
    let stack = Stack::builder().start_with_torchserve();
    let Stack {
        work,
        origin,
        ts,
        config,
        ..
    } = stack;
    let good = make_mar("fine", 1.0, &work.path().join("mars"), 24);
    origin.upload(&format!("{PREFIX}fine.mar"), &good.path);

    // A byte flipped inside the model's data: the object store's MD5 is of
    // the flipped bytes, so only the entry's CRC-32 can tell.
    let mut bytes = std::fs::read(&good.path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let flipped = work.path().join("flipped.mar");
    std::fs::write(&flipped, &bytes).unwrap();
    origin.upload(&format!("{PREFIX}flipped.mar"), &flipped);

    // An entry whose name climbs out of the model directory.
    let escaping = work.path().join("escaping.mar");
    let made = std::process::Command::new(dragonfly_endpoint_testbed::python())
        .args([
            "-c",
            "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n    z.writestr('MAR-INF/MANIFEST.json', '{}')\n    z.writestr('../../escaped.py', 'print(1)')",
        ])
        .arg(&escaping)
        .status()
        .unwrap();
    assert!(made.success());
    origin.upload(&format!("{PREFIX}escaping.mar"), &escaping);

    // A deflate bomb (64 MiB of zeros in a few hundred KiB) and a tgz of
    // 300 tiny entries, pulled under `unpack` bounds they break.
    let bomb = work.path().join("bomb.mar");
    let flood = work.path().join("flood.tgz");
    let made = std::process::Command::new(dragonfly_endpoint_testbed::python())
        .args(["-c", BOMB_AND_FLOOD])
        .arg(&bomb)
        .arg(&flood)
        .status()
        .unwrap();
    assert!(made.success());
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    origin.upload(&format!("{PREFIX}bomb.mar"), &bomb);
    origin.upload(&format!("{PREFIX}flood.tgz"), &flood);
    let bounded = config_variant(&config, "bounded.json", |c| {
        c["unpack"] = json!({"max_bytes": 16 << 20, "max_entries": 100});
    });

    let store = ts.model_store();
    let before = store_entries(&store);

    for (name, needle) in [
        ("bomb.mar", "unpack.max_bytes"),
        ("flood.tgz", "unpack.max_entries"),
    ] {
        let path = format!("/dragonfly?config={}&model={name}", bounded.display());
        let (status, report) = call(&ts, "PUT", &path);
        let message = assert_error(status, &report, 400);
        assert_eq!(report["type"], "InvalidModelException", "{report:#}");
        assert!(message.contains(needle), "{message}");
        assert!(!store.join(name).exists(), "{name} left in the store");
        assert!(unpacked(&store).is_empty(), "{:?}", unpacked(&store));
    }

    for (name, needle) in [("flipped.mar", "flipped.mar"), ("escaping.mar", "outside")] {
        let (status, report) = call(&ts, "PUT", &format!("/dragonfly?model={name}"));
        let message = assert_error(status, &report, 400);
        assert_eq!(report["type"], "InvalidModelException", "{report:#}");
        assert!(message.contains(needle), "{message}");
        assert!(!store.join(name).exists(), "{name} left in the store");
        assert!(unpacked(&store).is_empty(), "{:?}", unpacked(&store));
        assert_eq!(infer(&ts, name.trim_end_matches(".mar")), Err(404));
    }
    assert!(!store.join("escaped.py").exists());
    assert!(!store.parent().unwrap().join("escaped.py").exists());
    assert_no_partial_files(&store);
    // Only the ledger directory may have appeared.
    assert_eq!(store_entries(&store), before);

    // The good archive of the same request still works.
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=flipped.mar,fine.mar");
    assert_eq!(status, 400, "{report:#}");
    let fine = report["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["file_name"] == "fine.mar")
        .unwrap();
    assert_eq!(fine["status"], 200, "{report:#}");
    assert_close(infer(&ts, "fine").unwrap(), good.expected);
}
