//! OSS, OBS and COS: no server of their protocols runs here, so these run
//! against the FAKE store of the test bed ([`FakeStore`]), which serves
//! their listing, HEAD and GET and IGNORES signatures. What this proves:
//! the plugin lists, stats and presigns through OpenDAL's real backends,
//! dfdaemon fetches the presigned URLs, and two peers whose URLs are signed
//! differently (other keys, other expiry) share one task, so the origin
//! sends each body once. The signers themselves are checked against the
//! vendors' published examples in crates/core/tests/signers.
//!
//! Their URLs put the bucket in the host name without a port
//! (`models.fake-cos.test`): the CLI (a test-hooks build) resolves those
//! names to the fake (`DRAGONFLY_ENDPOINT_TEST_RESOLVE`), and dfdaemon
//! fetches them from it through a proxy rule's `redirect`.

use std::path::Path;

use dragonfly_endpoint_testbed::*;
use serde_json::json;

const RESOLVE_ENV: &str = "DRAGONFLY_ENDPOINT_TEST_RESOLVE";

#[test]
fn oss_obs_and_cos_models_are_pulled_by_two_peers_and_sent_once() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("bucket");
    // One folder per type: each type's URLs are their own tasks.
    let kinds = ["oss", "obs", "cos"];
    let mut mars = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let mar = make_mar(
            "first",
            1.5,
            &work.path().join(format!("mars-{kind}")),
            80 + i as u32,
        );
        std::fs::create_dir_all(root.join(kind)).unwrap();
        std::fs::copy(&mar.path, root.join(kind).join("first.mar")).unwrap();
        mars.push(mar);
    }
    let store = FakeStore::start(&root, FakeStyle::BucketInHost);
    let addr = store.addr().to_string();
    let dragonfly =
        DragonflyCluster::start_with(2, &["--proxy-redirect", r"fake-(oss|obs|cos)\.test", &addr]);
    let resolve =
        format!("models.fake-oss.test={addr},fake-obs.test={addr},models.fake-cos.test={addr}");

    for ((kind, mar), signature) in
        kinds
            .iter()
            .zip(&mars)
            .zip(["Signature", "Signature", "q-signature"])
    {
        // OSS with the Java endpoint's key names, the others with the
        // plugin's.
        let (id, secret) = match *kind {
            "oss" => ("access_key_id", "access_key_secret"),
            _ => ("access_key", "secret_key"),
        };
        let config = |peer: usize, key: &str, expiry: u64| {
            json!({
                "addr": dragonfly.proxy(peer),
                "object_storage": {
                    "type": kind,
                    "bucket_name": "models",
                    "endpoint": format!("http://fake-{kind}.test"),
                    id: key,
                    secret: format!("{key}-secret"),
                    "prefix": format!("{kind}/"),
                    "presign_expiry_secs": expiry,
                },
            })
        };
        let cfg = work.path().join(format!("cfg-{kind}"));
        let sent = store.sent_body_bytes();
        for (peer, key, expiry) in [(1, "AK-NODE-ONE", 3600), (2, "AK-NODE-TWO", 1800)] {
            let config = write_config_file(
                &cfg,
                &format!("peer{peer}.json"),
                &config(peer, key, expiry),
            );
            let dest = work.path().join(format!("store-{kind}-{peer}"));
            let mut command = cli_command(&config, &dest, &["--model", "all", "--no-progress"]);
            command.env(RESOLVE_ENV, &resolve);
            let (code, report, stderr) = cli_output(command);
            assert_eq!(code, 0, "{kind} peer {peer}: {report:#}\n{stderr}");
            assert_eq!(
                std::fs::read(dest.join("first.mar")).unwrap(),
                std::fs::read(&mar.path).unwrap(),
                "{kind} peer {peer}"
            );
            assert_eq!(
                report["models"][0]["download"]["served_from"], "dragonfly",
                "{report:#}"
            );
        }
        // The fake's own count: one body, plus each peer's one-byte probe.
        let sent = store.sent_body_bytes() - sent;
        assert!(
            sent >= mar.bytes && sent <= mar.bytes + 16,
            "{kind}: the fake store sent {sent} body bytes for one {}-byte archive pulled by two peers",
            mar.bytes
        );
        // dfdaemon's GETs carried the type's signature.
        let key_path = format!("/{kind}/first.mar");
        let signed = store
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == key_path)
            .all(|r| r.query_names.iter().any(|n| n == signature));
        assert!(signed, "{kind}: a GET of {key_path} carried no {signature}");
    }
}

/// What a user sees with a type whose endpoint cannot be reached: the store
/// named by type and URI, and nothing written.
#[test]
fn an_unreachable_oss_endpoint_is_a_store_error_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let dragonfly = DragonflyCluster::start(1);
    let config = write_config_file(
        &work.path().join("cfg"),
        "config.json",
        &json!({
            "addr": dragonfly.proxy(1),
            "object_storage": {"type": "oss", "bucket_name": "models", "endpoint": "http://127.0.0.1:9",
                               "access_key_id": "a", "access_key_secret": "b", "operation_timeout_secs": 5},
        }),
    );
    let dest = work.path().join("store");
    let (code, report, _) = pull_with_cli(&config, &dest, &["--model", "a.mar", "--no-progress"]);
    assert_eq!(code, 1, "{report:#}");
    let error = &report["models"][0]["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("oss://models/a.mar"),
        "{report:#}"
    );
    assert!(!Path::new(&dest.join("a.mar")).exists());
}
