//! Object stores beside S3, against servers that speak their protocol:
//! Azure Blob on Azurite (Microsoft's emulator; it checks Shared Key and
//! SAS signatures) and GCS on fake-gcs-server (JSON and XML APIs; it checks
//! no signature, so the GCS V4 signer is checked by Google's conformance
//! vectors in crates/core/tests/signers). Neither counts what it sends, so
//! each is reached only through a [`CountingRelay`]: "sent once" is counted
//! at the origin, not taken from dfdaemon.
//!
//! Every pair of peers signs its URLs differently (another
//! `presign_expiry_secs`, another second): only the type's signing
//! parameter list makes them one Dragonfly task.

use std::path::{Path, PathBuf};
use std::process::Command;

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

const CONTAINER: &str = "models";

/// Two archives under `torchserve/`, uploaded by `put`.
fn two_models(work: &Path, seed: u32, put: impl Fn(&str, &Path)) -> (Vec<Mar>, u64) {
    let mars: Vec<Mar> = ["first", "second"]
        .iter()
        .enumerate()
        .map(|(i, name)| make_mar(name, 1.5, &work.join("mars"), seed + i as u32))
        .collect();
    for (mar, name) in mars.iter().zip(["first", "second"]) {
        put(&format!("{PREFIX}{name}.mar"), &mar.path);
    }
    let total = mars.iter().map(|m| m.bytes).sum();
    (mars, total)
}

fn write(dir: &Path, name: &str, config: &Value) -> PathBuf {
    write_config_file(dir, name, config)
}

/// The relay's count over `total` body bytes: at least one copy, at most
/// one copy plus the listings, HEADs and each peer's one-byte probes.
fn assert_sent_once(sent: u64, total: u64, what: &str) {
    assert!(
        sent >= total && sent <= total + total / 20 + 64 * 1024,
        "{what}: the origin sent {sent} bytes for {total} bytes of archives pulled by two peers"
    );
}

#[test]
fn azure_blob_models_register_in_torchserve_and_azurite_sends_them_once() {
    let work = tempfile::tempdir().unwrap();
    let azurite = Azurite::start();
    azurite.create_container(CONTAINER);
    let relay = CountingRelay::start(azurite.addr());
    let (mars, total) = two_models(work.path(), 60, |key, file| {
        azurite.put(CONTAINER, key, file)
    });
    let dragonfly = DragonflyCluster::start(2);

    // The Java endpoint's keys for abs, plus the emulator's endpoint.
    let config = |proxy: String, expiry: u64, key: &str| {
        json!({
            "addr": proxy,
            "object_storage": {
                "type": "abs",
                "account_name": azurite.account(),
                "account_key": key,
                "container_name": CONTAINER,
                "endpoint": relay.via(azurite.endpoint()),
                "prefix": PREFIX,
                "presign_expiry_secs": expiry,
            },
        })
    };
    let cfg = work.path().join("cfg");
    let first = write(
        &cfg,
        "config.json",
        &config(dragonfly.proxy(1), 3600, azurite.key()),
    );
    let second = write(
        &cfg,
        "second.json",
        &config(dragonfly.proxy(2), 1800, azurite.key()),
    );

    let sent = relay.sent_bytes();
    let (_plugins, ts) = torchserve_with_plugin(Jar::TestHooks, &first, "");
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=all");
    assert_eq!(status, 200, "{report:#}");
    for (mar, name) in mars.iter().zip(["first", "second"]) {
        assert_close(infer(&ts, name).expect("inference"), mar.expected);
    }
    let models = report["models"].as_array().unwrap();
    assert!(
        models
            .iter()
            .all(|m| m["download"]["served_from"] == "dragonfly"),
        "{report:#}"
    );

    let store = work.path().join("store-2");
    let (code, report, stderr) =
        pull_with_cli(&second, &store, &["--model", "all", "--no-progress"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    for (mar, name) in mars.iter().zip(["first", "second"]) {
        let pulled = std::fs::read(store.join(format!("{name}.mar"))).unwrap();
        assert_eq!(pulled, std::fs::read(&mar.path).unwrap(), "{name}");
    }
    assert_sent_once(relay.sent_bytes() - sent, total, "Azurite");

    // A wrong account key: Azurite refuses it, the pull says so by key
    // and status, and the store is as it was.
    let wrong = write(
        &cfg,
        "wrong.json",
        &config(dragonfly.proxy(2), 3600, "d3Jvbmcga2V5"),
    );
    let store = work.path().join("store-3");
    let (code, report, _) = pull_with_cli(&wrong, &store, &["--model", "all", "--no-progress"]);
    // Exit 2: the request failed as a whole (at the listing).
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["code"], 403, "{report:#}");
    assert!(!store.join("first.mar").exists());
    assert_no_partial_files(&store);
    let shown = report.to_string();
    assert!(
        !shown.contains(azurite.key()) && !shown.contains("d3Jvbmcga2V5"),
        "{shown}"
    );
}

/// The plugin's Service SAS against Azurite's SAS check: it reads the one
/// blob; a tampered signature, another blob, or a write are refused.
#[test]
fn the_plugins_azure_sas_reads_one_blob_and_nothing_else() {
    use dragonfly_endpoint_core::config::ObjectStorageConfig;
    use dragonfly_endpoint_core::source;

    let work = tempfile::tempdir().unwrap();
    let azurite = Azurite::start();
    azurite.create_container(CONTAINER);
    let body = work.path().join("a.bin");
    std::fs::write(&body, b"the one blob the SAS may read").unwrap();
    azurite.put(CONTAINER, "dir/a b.mar", &body);
    azurite.put(CONTAINER, "dir/other.mar", &body);
    let cfg: ObjectStorageConfig = serde_json::from_value(json!({
        "type": "abs", "account_name": azurite.account(), "account_key": azurite.key(),
        "endpoint": azurite.endpoint(),
    }))
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(async {
        let store = source::connect(&cfg, CONTAINER, None).await.unwrap();
        let info = store.stat("dir/a b.mar").await.unwrap();
        assert_eq!(info.size, 29);
        store
            .presign("dir/a b.mar")
            .await
            .unwrap()
            .url
            .expose()
            .clone()
    });
    let http = http();
    let get = |url: &str| http.get(url).send().unwrap();
    let ok = get(&url);
    assert_eq!(ok.status(), 200, "{}", ok.text().unwrap_or_default());
    assert_eq!(ok.bytes().unwrap().as_ref(), std::fs::read(&body).unwrap());

    let (head, sig) = url.split_once("sig=").unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{head}sig={flipped}{}", &sig[1..]);
    assert_eq!(
        get(&tampered).status(),
        403,
        "a tampered signature was accepted"
    );
    let other = url.replace("a%20b.mar", "other.mar");
    assert_eq!(get(&other).status(), 403, "the SAS read another blob");
    let write = http
        .put(&url)
        .header("x-ms-blob-type", "BlockBlob")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(write.status(), 403, "the SAS allowed a write");
}

/// A service-account key file as Google issues them, with a fresh RSA key
/// (the V4 signer needs one; fake-gcs-server checks no signature).
fn service_account(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let pem = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl");
    assert!(pem.status.success());
    let key = json!({
        "type": "service_account",
        "project_id": "dfe-test",
        "private_key_id": "0123456789abcdef",
        "private_key": String::from_utf8(pem.stdout).unwrap(),
        "client_email": "puller@dfe-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    let path = dir.join("sa.json");
    std::fs::write(&path, key.to_string()).unwrap();
    path
}

#[test]
fn gcs_models_are_listed_verified_and_fake_gcs_server_sends_them_once() {
    let work = tempfile::tempdir().unwrap();
    let gcs = FakeGcs::start();
    gcs.create_bucket(CONTAINER);
    let relay = CountingRelay::start(gcs.addr());
    let (mars, total) = two_models(work.path(), 70, |key, file| gcs.put(CONTAINER, key, file));
    let dragonfly = DragonflyCluster::start(2);
    let key = service_account(&work.path().join("sa"));

    // The Java endpoint's keys for gcs; `token` stands in for the OAuth2
    // exchange the emulator does not offer.
    let config = |proxy: String, expiry: u64| {
        json!({
            "addr": proxy,
            "object_storage": {
                "type": "gcs",
                "bucket_name": CONTAINER,
                "project_id": "dfe-test",
                "service_account_path": key,
                "token": "emulator",
                "endpoint": relay.url(),
                "prefix": PREFIX,
                "presign_expiry_secs": expiry,
            },
        })
    };
    let cfg = work.path().join("cfg");
    let first = write(&cfg, "config.json", &config(dragonfly.proxy(1), 3600));
    let second = write(&cfg, "second.json", &config(dragonfly.proxy(2), 1800));

    let sent = relay.sent_bytes();
    for (i, config) in [&first, &second].into_iter().enumerate() {
        let store = work.path().join(format!("store-{i}"));
        let (code, report, stderr) =
            pull_with_cli(config, &store, &["--model", "all", "--no-progress"]);
        assert_eq!(code, 0, "{report:#}\n{stderr}");
        for (mar, name) in mars.iter().zip(["first", "second"]) {
            let pulled = std::fs::read(store.join(format!("{name}.mar"))).unwrap();
            assert_eq!(pulled, std::fs::read(&mar.path).unwrap(), "{name}");
        }
        // GCS keeps an MD5 of each object (md5Hash): the bytes are checked
        // against it.
        for model in report["models"].as_array().unwrap() {
            assert_eq!(model["download"]["verified"], "MD5", "{model:#}");
        }
    }
    assert_sent_once(relay.sent_bytes() - sent, total, "fake-gcs-server");

    // A gs:// URI names bucket and key; another store type's is a 400.
    let store = work.path().join("store-uri");
    let uri = format!("gs://{CONTAINER}/{PREFIX}first.mar");
    let (code, report, stderr) = pull_with_cli(&first, &store, &["--model", &uri, "--no-progress"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert!(store.join("first.mar").exists());
    let uri = format!("s3://{CONTAINER}/{PREFIX}first.mar");
    let (code, report, _) = pull_with_cli(&first, &store, &["--model", &uri, "--no-progress"]);
    assert_eq!(
        (code, report["code"].as_u64()),
        (2, Some(400)),
        "{report:#}"
    );
}
