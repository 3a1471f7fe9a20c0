//! The plugin inside real TorchServe 0.12 (only the built jar in its
//! plugins path, token auth on, model API off), pulling from a real S3
//! server through a real Dragonfly peer.

use dragonfly_endpoint_testbed::*;

#[test]
fn plugin_pulls_registers_serves_and_removes_models() {
    let stack = Stack::builder()
        .config_dir("config")
        .start_with_torchserve();
    let Stack {
        work, origin, ts, ..
    } = stack;
    let mut expected = Vec::new();
    for (i, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let mar = make_mar(name, 2.0, &work.path().join("mars"), i as u32 + 1);
        origin.upload(&format!("{PREFIX}{name}.mar"), &mar.path);
        expected.push((name.to_string(), mar));
    }
    // Not an archive: `model=all` must skip it.
    std::fs::write(work.path().join("notes.txt"), "not a model").unwrap();
    origin.upload(
        &format!("{PREFIX}notes.txt"),
        &work.path().join("notes.txt"),
    );

    let config_dir = work.path().join("config");
    let store = ts.model_store();

    // PUT model=all: every archive pulled through Dragonfly and registered.
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=all");
    assert_eq!(status, 200, "{report:#}");
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 3, "{report:#}");
    for model in models {
        assert_eq!(model["status"], 200);
        assert_eq!(model["download"]["action"], "downloaded");
        assert_eq!(model["download"]["served_from"], "dragonfly", "{model:#}");
        assert!(model["download"]["task_id"]
            .as_str()
            .is_some_and(|t| !t.is_empty()));
        assert_eq!(model["registration"], "registered");
    }
    for (name, mar) in &expected {
        assert_close(infer(&ts, name).unwrap(), mar.expected);
        let on_disk = std::fs::metadata(store.join(format!("{name}.mar"))).unwrap();
        assert_eq!(on_disk.len(), mar.bytes);
    }
    assert!(!store.join("notes.txt").exists());

    // A second PUT works and downloads nothing.
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=all");
    assert_eq!(status, 200, "{report:#}");
    for model in report["models"].as_array().unwrap() {
        assert_eq!(model["download"]["action"], "unchanged");
        assert_eq!(model["registration"], "already_registered");
    }

    // GET: the effective config with secrets masked, and the pulls.
    let (status, state) = call(&ts, "GET", "/dragonfly");
    assert_eq!(status, 200);
    assert_eq!(state["config"]["object_storage"]["secret_key"], "***");
    let pulls = state["pulls"].as_array().unwrap();
    assert!(pulls.iter().any(|p| p["model_name"] == "alpha"
        && p["phase"] == "done"
        && p["bytes"] == p["total"]
        && p["bytes"].as_u64().unwrap() > 0));
    let (status, one) = call(&ts, "GET", "/dragonfly?model=beta");
    assert_eq!(status, 200);
    assert_eq!(one["archive"]["pulled"]["key"], format!("{PREFIX}beta.mar"));
    let (status, body) = call(&ts, "GET", "/dragonfly?model=nothing");
    assert_error(status, &body, 404);

    // DELETE: unregistered, its archive gone, the others untouched.
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=beta");
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["archive_removed"], "beta.mar");
    assert_eq!(infer(&ts, "beta"), Err(404));
    assert!(!store.join("beta.mar").exists());
    assert_close(infer(&ts, "alpha").unwrap(), expected[0].1.expected);
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=beta");
    assert_error(status, &body, 404);

    // The pure-Java endpoint's call still works.
    let (status, body) = call(&ts, "POST", "/dragonfly/models?file_name=beta.mar");
    assert_eq!(status, 200, "{body:#}");
    assert_close(infer(&ts, "beta").unwrap(), expected[1].1.expected);

    // Errors: status and TorchServe-style JSON, nothing registered or written.
    let cases: &[(&str, &str, u16)] = &[
        ("PUT", "/dragonfly", 400),
        ("PUT", "/dragonfly?model=", 400),
        ("PUT", "/dragonfly?model=..%2Fescape.mar", 400),
        ("PUT", "/dragonfly?model=missing.mar", 404),
        ("PUT", "/dragonfly?model=alpha.mar&workers=2", 400),
        (
            "PUT",
            "/dragonfly?model=missing.mar&initial_workers=two",
            400,
        ),
        (
            "PUT",
            "/dragonfly?model=missing.mar&config=%2Fetc%2Fpasswd",
            403,
        ),
        ("PUT", "/dragonfly/models?file_name=a.mar", 405),
        ("GET", "/dragonfly/unknown", 404),
        // A bucket the config does not list is not even asked for.
        (
            "PUT",
            "/dragonfly?model=missing.mar&bucket=no-such-bucket",
            403,
        ),
    ];
    let before = store_entries(&store);
    for (method, path, expected_status) in cases {
        let (status, body) = call(&ts, method, path);
        let message = assert_error(status, &body, *expected_status);
        assert!(!message.contains("root:"), "{path}: {message}");
    }
    assert_eq!(store_entries(&store), before);
    assert_eq!(infer(&ts, "missing"), Err(404));
    assert_no_partial_files(&store);

    // A config that cannot be read names the file and the key.
    std::fs::write(
        config_dir.join("bad.json"),
        r#"{"object_storage": {}, "min_worker": "x"}"#,
    )
    .unwrap();
    let (status, body) = call(
        &ts,
        "PUT",
        &format!(
            "/dragonfly?model=alpha.mar&config={}",
            config_dir.join("bad.json").display()
        ),
    );
    let message = assert_error(status, &body, 400);
    assert!(
        message.contains("bad.json") && message.contains("min_worker"),
        "{message}"
    );

    // The core's log lines reach TorchServe's own log; no secret anywhere.
    let ts_log = std::fs::read_to_string(ts.log_dir().join("ts_log.log")).unwrap();
    assert!(
        ts_log.contains("org.dragonflyoss.torchserve"),
        "no plugin lines in ts_log.log"
    );
    assert!(ts_log.contains("ready as model \"alpha\""));
    let state_text = call(&ts, "GET", "/dragonfly").1.to_string();
    assert_no_secrets(
        &[&ts.log_dir()],
        &[
            origin.s3.secret_key(),
            origin.s3.access_key(),
            ts.management_token(),
        ],
        &[&state_text, &report.to_string()],
    );
}
