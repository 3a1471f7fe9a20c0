//! Bad input, table-driven, through real TorchServe: each case answers its
//! 4xx with TorchServe's JSON and a message naming what is wrong, and
//! leaves no file and no registration behind.

use dragonfly_endpoint_testbed::*;
use serde_json::json;

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let stack = Stack::builder()
        .config_dir("configs")
        .start_with_torchserve();
    let Stack {
        work,
        origin,
        config,
        ts,
        ..
    } = stack;
    let mar = make_mar("ok", 1.0, &work.path().join("mars"), 41);
    origin.upload(&format!("{PREFIX}ok.mar"), &mar.path);

    let configs = work.path().join("configs");
    let write = |name: &str, text: &str| {
        let path = configs.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let invalid_json = write("invalid.json", "{\"object_storage\": ");
    let wrong_type = write(
        "wrong-type.json",
        r#"{"object_storage": {}, "batch_size": "big"}"#,
    );
    let unknown_key = write(
        "unknown-key.json",
        r#"{"object_storage": {}, "colour": "red"}"#,
    );
    let unknown_type = write(
        "unknown-type.json",
        r#"{"object_storage": {"type": "ftp"}}"#,
    );
    let mut wrong_creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    wrong_creds["object_storage"]["secret_key"] = "not-the-secret".into();
    let wrong_creds = write("wrong-creds.json", &wrong_creds.to_string());
    // A config that lets requests name another bucket: a missing one is 404.
    let mut other_buckets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    other_buckets["object_storage"]["allowed_buckets"] = json!([BUCKET, "no-such-bucket"]);
    let other_buckets = write("other-buckets.json", &other_buckets.to_string());
    let outside = work.path().join("outside.json");
    std::fs::copy(&config, &outside).unwrap();
    let link = configs.join("link.json");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let sub_dir = configs.join("a-directory");
    std::fs::create_dir(&sub_dir).unwrap();
    // A FIFO nobody writes to, named as the config: a read would block.
    let fifo = configs.join("fifo.json");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    // Credentials in the proxy's URL, and a peer that is down.
    let mut userinfo: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    userinfo["addr"] = "http://peeruser:PEERSECRET@127.0.0.1:1".into();
    userinfo["header"] = json!({"X-Custom-Auth": "HEADERSECRET"});
    let userinfo = write("userinfo.json", &userinfo.to_string());

    let store = ts.model_store();
    let long_name = format!("{}.mar", "a".repeat(300));
    let long_query = "x".repeat(5000);
    let c = |path: &str| format!("model=ok.mar&config={}", encode(path));
    let cases: Vec<(String, u16, &str)> = vec![
        (String::new(), 400, "model"),
        ("model=".into(), 400, "model"),
        ("model=%2C".into(), 400, "empty"),
        ("model=ok.mar,ok.mar".into(), 400, "twice"),
        ("model=..%2Fok.mar".into(), 400, ".."),
        ("model=%2Fok.mar".into(), 400, "'/'"),
        ("model=ok%00.mar".into(), 400, "NUL"),
        ("model=ok%07.mar".into(), 400, "control"),
        (format!("model={long_name}"), 400, "255"),
        ("model=dir%2F..".into(), 400, ".."),
        ("model=ok.txt".into(), 400, ".mar"),
        (c(&outside.display().to_string()), 403, "outside"),
        (c(&link.display().to_string()), 403, "outside"),
        (c(&sub_dir.display().to_string()), 400, "directory"),
        (c(&fifo.display().to_string()), 400, "not a regular file"),
        (c(&userinfo), 502, "***@127.0.0.1:1"),
        (
            c(&configs.join("missing.json").display().to_string()),
            400,
            "no such file",
        ),
        (c(&invalid_json), 400, "invalid.json"),
        (c(&wrong_type), 400, "batch_size"),
        (c(&unknown_key), 400, "colour"),
        (c(&unknown_type), 400, "object_storage.type"),
        (
            format!(
                "model=ok.mar&bucket=no-such-bucket&config={}",
                encode(&other_buckets)
            ),
            404,
            "no-such-bucket",
        ),
        // Buckets and prefixes the config does not list are refused first.
        (
            "model=ok.mar&bucket=no-such-bucket".into(),
            403,
            "allowed_buckets",
        ),
        (
            "model=ok.mar&prefix=elsewhere%2F".into(),
            403,
            "allowed_prefixes",
        ),
        (c(&wrong_creds), 403, "credentials"),
        ("model=ok.mar&colour=red".into(), 400, "unknown parameter"),
        (
            "model=ok.mar&initial_workers=many".into(),
            400,
            "initial_workers",
        ),
        ("model=ok.mar&batch_size=-2".into(), 400, "batch_size"),
        (
            "model=ok.mar&synchronous=perhaps".into(),
            400,
            "synchronous",
        ),
        // Past 4 KB the request line never reaches the plugin: TorchServe
        // itself refuses it (still with its JSON error body).
        (
            format!("model=ok.mar&handler={long_query}"),
            400,
            "Invalid HTTP message",
        ),
    ];
    for (query, expected, needle) in &cases {
        let (status, body) = call(&ts, "PUT", &format!("/dragonfly?{query}"));
        let message = assert_error(status, &body, *expected);
        assert!(
            message.contains(needle),
            "PUT ?{query}: {message:?} does not mention {needle:?}"
        );
        for secret in [
            origin.s3.secret_key(),
            origin.s3.access_key(),
            "PEERSECRET",
            "HEADERSECRET",
        ] {
            assert!(
                !body.to_string().contains(secret),
                "secret in answer to {query}"
            );
        }
    }
    // The status call shows that config with its credentials masked.
    let (status, state) = call(
        &ts,
        "GET",
        &format!("/dragonfly?config={}", encode(&userinfo)),
    );
    assert_eq!(status, 200, "{state:#}");
    assert_eq!(
        state["config"]["addr"], "http://***@127.0.0.1:1/",
        "{state:#}"
    );
    assert_eq!(
        state["config"]["header"]["X-Custom-Auth"], "***",
        "{state:#}"
    );
    assert_no_secrets(
        &[&ts.log_dir()],
        &["PEERSECRET", "HEADERSECRET", origin.s3.secret_key()],
        &[&state.to_string()],
    );
    assert!(store_entries(&store).is_empty(), "{:?}", entries(&store));
    assert_eq!(infer(&ts, "ok"), Err(404));
}
