//! Directory models (`torch-model-archiver --archive-format no-archive`,
//! uploaded as a folder): found by `model=all` beside archives and named
//! with `model=<folder>/`, every file its own Dragonfly task, registered
//! from the directory they land in, answering inference; unchanged ones
//! are not fetched again, DELETE removes them, a failed pull leaves the
//! store as it was, and two peers make the store send each file once.

use std::path::{Path, PathBuf};

use dragonfly_endpoint_testbed::*;
use serde_json::Value;

/// The version directories of the model stored as `file_name`.
fn versions(store: &Path, file_name: &str) -> Vec<PathBuf> {
    let root = store.join(".dragonfly-endpoint/unpacked");
    let prefix = format!("{file_name}-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn model<'a>(report: &'a Value, file_name: &str) -> &'a Value {
    report["models"]
        .as_array()
        .and_then(|models| models.iter().find(|m| m["file_name"] == file_name))
        .unwrap_or_else(|| panic!("{file_name} not in {report:#}"))
}

/// Every file under `dir`, relative, with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p.strip_prefix(dir).unwrap().to_path_buf(), bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_model_directory_registers_answers_and_is_pulled_once() {
    let stack = Stack::builder().start_with_torchserve();
    let Stack {
        work, origin, ts, ..
    } = stack;
    let built = work.path().join("models");
    let dir = make_model("dirmodel", 12.0, &built, 41, ArchiveFormat::NoArchive, 3);
    let beside = make_mar("beside", 2.0, &built, 42);
    origin.upload_dir(&format!("{PREFIX}dirmodel/"), &dir.path);
    origin.upload(&format!("{PREFIX}beside.mar"), &beside.path);
    let local = tree(&dir.path);
    let store = ts.model_store();

    // model=all finds the directory beside the archive.
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=all");
    assert_eq!(status, 200, "{report:#}");
    let pulled = model(&report, "dirmodel");
    assert_eq!(pulled["model_name"], "dirmodel", "{pulled:#}");
    assert_eq!(pulled["registration"], "registered", "{pulled:#}");
    assert_eq!(pulled["download"]["files"], local.len(), "{pulled:#}");
    assert_eq!(pulled["download"]["bytes"], dir.bytes, "{pulled:#}");
    assert_eq!(model(&report, "beside.mar")["registration"], "registered");
    assert_close(infer(&ts, "dirmodel").unwrap(), dir.expected);
    assert_close(infer(&ts, "beside").unwrap(), beside.expected);
    // Every file in its place, byte for byte; no archive in the store.
    let placed = versions(&store, "dirmodel");
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(tree(&placed[0]), local);
    assert_eq!(store_entries(&store), vec!["beside.mar".to_string()]);
    // GET shows the files and the bytes done.
    let (status, state) = call(&ts, "GET", "/dragonfly?model=dirmodel");
    assert_eq!(status, 200, "{state:#}");
    let last = state["pulls"].as_array().and_then(|p| p.last()).cloned();
    let last = last.unwrap_or_else(|| panic!("no pull in {state:#}"));
    assert_eq!(last["files"], local.len(), "{last:#}");
    assert_eq!(last["files_done"], local.len(), "{last:#}");
    assert_eq!(last["bytes"], dir.bytes, "{last:#}");

    // Unchanged: not fetched again, already registered.
    let sent = origin.s3.sent_bytes();
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=dirmodel/");
    assert_eq!(status, 200, "{report:#}");
    let again = model(&report, "dirmodel");
    assert_eq!(again["download"]["action"], "unchanged", "{again:#}");
    assert_eq!(again["registration"], "already_registered", "{again:#}");
    assert_eq!(
        origin.s3.sent_bytes(),
        sent,
        "an unchanged directory was fetched"
    );

    // One more file is a new version: refused while the model serves.
    let extra = work.path().join("README.txt");
    std::fs::write(&extra, b"weights are CC-BY").unwrap();
    origin.upload(&format!("{PREFIX}dirmodel/docs/README.txt"), &extra);
    let (status, body) = call(&ts, "PUT", "/dragonfly?model=dirmodel/");
    let message = assert_error(status, &body, 409);
    assert!(message.contains("unregister"), "{message}");
    assert_eq!(tree(&versions(&store, "dirmodel")[0]), local);

    // DELETE unregisters and removes its files; the next pull is the new one.
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=dirmodel");
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(infer(&ts, "dirmodel"), Err(404));
    wait_until("the version directory is removed", || {
        versions(&store, "dirmodel").is_empty()
    });
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=dirmodel/");
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(
        model(&report, "dirmodel")["download"]["files"],
        local.len() + 1
    );
    assert_close(infer(&ts, "dirmodel").unwrap(), dir.expected);
    let placed = versions(&store, "dirmodel");
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(
        std::fs::read(placed[0].join("docs/README.txt")).unwrap(),
        b"weights are CC-BY"
    );

    // A folder without the manifest is no model: 404, nothing written.
    origin.upload(&format!("{PREFIX}loose/weights.bin"), &extra);
    let (status, body) = call(&ts, "PUT", "/dragonfly?model=loose/");
    let message = assert_error(status, &body, 404);
    assert!(message.contains("MAR-INF/MANIFEST.json"), "{message}");
    assert!(versions(&store, "loose").is_empty());

    // TorchServe refusing the directory: the store is as it was.
    let broken = work.path().join("broken");
    std::fs::create_dir_all(broken.join("MAR-INF")).unwrap();
    std::fs::write(broken.join("MAR-INF/MANIFEST.json"), b"{not json").unwrap();
    std::fs::write(broken.join("weights.bin"), vec![7u8; 4096]).unwrap();
    origin.upload_dir(&format!("{PREFIX}broken/"), &broken);
    let (status, body) = call(&ts, "PUT", "/dragonfly?model=broken/");
    // TorchServe's own refusal, passed on with its status and words.
    assert_eq!(status, 400, "{body:#}");
    let error = &model(&body, "broken")["error"];
    assert_eq!(error["type"], "RegistrationException", "{body:#}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or("")
            .contains("TorchServe refused"),
        "{body:#}"
    );
    assert_eq!(infer(&ts, "broken"), Err(404));
    wait_until("the refused directory is removed", || {
        versions(&store, "broken").is_empty()
    });
    assert!(!store.join(".dragonfly-endpoint/broken.json").exists());
    assert_no_partial_files(&store);
    assert_eq!(store_entries(&store), vec!["beside.mar".to_string()]);
}

#[test]
fn two_peers_make_the_store_send_each_file_of_a_directory_once() {
    let stack = Stack::builder().peers(2).start();
    let Stack {
        work,
        origin,
        config,
        ..
    } = stack;
    // 20 files: the manifest and 19 distinct 256 KiB shards.
    let dir = work.path().join("twenty");
    std::fs::create_dir_all(dir.join("MAR-INF")).unwrap();
    std::fs::write(
        dir.join("MAR-INF/MANIFEST.json"),
        br#"{"model": {"modelName": "twenty", "handler": "h.py"}}"#,
    )
    .unwrap();
    for i in 0..19u32 {
        let bytes: Vec<u8> = (0..256 * 1024u32)
            .map(|j| (j.wrapping_mul(31).wrapping_add(i * 7919) >> 3) as u8)
            .collect();
        std::fs::write(dir.join(format!("shard-{i:02}.bin")), bytes).unwrap();
    }
    let local = tree(&dir);
    assert_eq!(local.len(), 20);
    let total: u64 = local.iter().map(|(_, b)| b.len() as u64).sum();
    origin.upload_dir(&format!("{PREFIX}twenty/"), &dir);
    let second = config_variant(&config, "peer2.json", |c| {
        c["addr"] = Value::String(origin.dragonfly.proxy(2));
    });

    let sent = origin.s3.sent_bytes();
    for (config, store) in [(&config, "store-1"), (&second, "store-2")] {
        let store = work.path().join(store);
        let (code, report, stderr) =
            pull_with_cli(config, &store, &["--model", "twenty/", "--no-progress"]);
        assert_eq!(code, 0, "{report:#}\n{stderr}");
        assert_eq!(report["models"][0]["download"]["files"], 20, "{report:#}");
        let placed = versions(&store, "twenty");
        assert_eq!(placed.len(), 1, "{placed:?}");
        assert_eq!(tree(&placed[0]), local);
        assert_no_partial_files(&store);
    }
    // The store's own count: one body per file, plus each peer's one-byte
    // `Range: bytes=0-0` probe per file.
    let sent = origin.s3.sent_bytes() - sent;
    assert!(
        sent >= total && sent <= total + 2 * 20,
        "the store sent {sent} bytes for {total} bytes in 20 files pulled by two peers"
    );
}
