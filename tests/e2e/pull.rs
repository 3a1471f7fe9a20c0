//! The core's pulls outside TorchServe, through the CLI and the library:
//! listing, skip-when-unchanged, P2P sharing between peers, atomicity.

use std::path::PathBuf;
use std::process::Command;

use dragonfly_endpoint_core::config::Config;
use dragonfly_endpoint_core::source::s3::S3Source;
use dragonfly_endpoint_core::source::ObjectSource;
use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

use crate::front::CuttingFront;

#[test]
fn cli_pulls_all_with_progress_and_registers_over_http() {
    let stack = Stack::builder()
        .without_plugin()
        .ts_config("enable_model_api=true\n")
        .start_with_torchserve();
    let Stack {
        work,
        origin,
        config,
        ts,
        ..
    } = stack;
    let mars: Vec<_> = (1..=2)
        .map(|i| {
            let mar = make_mar(&format!("cli{i}"), 1.0, &work.path().join("mars"), i);
            origin.upload(&format!("{PREFIX}sub dir/cli{i}.mar"), &mar.path);
            mar
        })
        .collect();
    let store = ts.model_store();

    // stderr is not a terminal here: progress comes as one line per archive
    // and phase, and stdout stays pure JSON.
    let (code, report, stderr) = pull_with_cli(
        &config,
        &store,
        &[
            "--model",
            "all",
            "--management",
            ts.management(),
            "--token",
            ts.management_token(),
        ],
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["models"].as_array().unwrap().len(), 2);
    for (i, mar) in mars.iter().enumerate() {
        assert_close(infer(&ts, &format!("cli{}", i + 1)).unwrap(), mar.expected);
        // Each archive's progress ends with every byte counted.
        let done = format!("cli{}.mar: done {1}/{1} bytes", i + 1, mar.bytes);
        assert!(
            stderr.lines().any(|l| l == done),
            "no {done:?} in:\n{stderr}"
        );
    }
    // Unchanged archives are not downloaded again.
    let (code, report, _) = pull_with_cli(
        &config,
        &store,
        &["--model", "sub dir/cli1.mar", "--no-progress"],
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["models"][0]["download"]["action"], "unchanged");
    // Credentials left out of the file come from the standard AWS chain.
    let mut keyless: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let storage = keyless["object_storage"].as_object_mut().unwrap();
    storage.remove("access_key");
    storage.remove("secret_key");
    let keyless_path = work.path().join("cfg/keyless.json");
    std::fs::write(&keyless_path, keyless.to_string()).unwrap();
    let env_store = work.path().join("env-store");
    let output = Command::new(cli())
        .args([
            "pull",
            "--no-progress",
            "--model",
            "sub dir/cli2.mar",
            "--config",
        ])
        .arg(&keyless_path)
        .arg("--model-store")
        .arg(&env_store)
        .env("AWS_ACCESS_KEY_ID", origin.s3.access_key())
        .env("AWS_SECRET_ACCESS_KEY", origin.s3.secret_key())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(
        std::fs::read(env_store.join("cli2.mar")).unwrap(),
        std::fs::read(&mars[1].path).unwrap()
    );
    // Without any credentials the store refuses: 403, nothing written.
    let output = Command::new(cli())
        .args([
            "pull",
            "--no-progress",
            "--model",
            "sub dir/cli1.mar",
            "--config",
        ])
        .arg(&keyless_path)
        .arg("--model-store")
        .arg(&env_store)
        .env("AWS_ACCESS_KEY_ID", "AKIDWRONG")
        .env("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    assert_eq!(report["models"][0]["status"], 403, "{report:#}");
    assert!(!env_store.join("cli1.mar").exists());

    // A missing object: exit 1, a 404 in the report, nothing written.
    let before = store_entries(&store);
    let (code, report, _) =
        pull_with_cli(&config, &store, &["--model", "nope.mar", "--no-progress"]);
    assert_eq!(code, 1);
    assert_eq!(report["code"], 404, "{report:#}");
    assert_eq!(store_entries(&store), before);
}

#[test]
fn listing_follows_pagination_past_1000_objects() {
    let stack = Stack::builder().config_dir("").start();
    let Stack {
        origin,
        config: config_path,
        ..
    } = stack;
    let config = Config::load(&config_path).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = S3Source::connect(&config.object_storage, BUCKET, None)
            .await
            .unwrap();
        let client = s3_client(&origin).await;
        let uploads = (0..1005)
            .map(|i| format!("{PREFIX}many/m{i:04}.mar"))
            .chain((0..7).map(|i| format!("{PREFIX}many/other{i}.txt")))
            .map(|key| {
                let client = client.clone();
                async move {
                    client
                        .put_object()
                        .bucket(BUCKET)
                        .key(key)
                        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
                        .send()
                        .await
                        .unwrap();
                }
            });
        futures_util::stream::iter(uploads)
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        // Every object, across pages; the pull picks the archives.
        let objects = store.list(&format!("{PREFIX}many/")).await.unwrap();
        assert_eq!(objects.len(), 1012);
        let archives: Vec<_> = objects
            .iter()
            .filter(|o| dragonfly_endpoint_core::source::is_archive_key(&o.key))
            .collect();
        assert_eq!(archives.len(), 1005);
        assert!(archives.iter().all(|a| a.size == 1));
    });
}

use futures_util::StreamExt;

async fn s3_client(origin: &Origin) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new(
        origin.s3.access_key(),
        origin.s3.secret_key(),
        None,
        None,
        "test",
    );
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(
            origin.s3.region().to_string(),
        ))
        .endpoint_url(origin.s3.endpoint())
        .force_path_style(true)
        .credentials_provider(creds)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[test]
fn second_peer_gets_the_archive_without_the_store_sending_it_again() {
    let stack = Stack::builder().peers(2).config_dir("a").start();
    let Stack {
        work,
        origin,
        config: config_a,
        ..
    } = stack;
    let mar = make_mar("shared", 24.0, &work.path().join("mars"), 7);
    origin.upload(&format!("{PREFIX}shared.mar"), &mar.path);
    let config_b = write_config(
        &work.path().join("b"),
        &origin.s3,
        &origin.dragonfly.proxy(2),
        json!({}),
    );
    let (store_a, store_b) = (work.path().join("store-a"), work.path().join("store-b"));

    let sent_before = origin.s3.sent_bytes();
    let (code, first, _) = pull_with_cli(
        &config_a,
        &store_a,
        &["--model", "shared.mar", "--no-progress"],
    );
    assert_eq!(code, 0, "{first:#}");
    let sent_first = origin.s3.sent_bytes() - sent_before;
    // Each pull presigns its own URL: the signatures differ, the task not.
    let (code, second, _) = pull_with_cli(
        &config_b,
        &store_b,
        &["--model", "shared.mar", "--no-progress"],
    );
    assert_eq!(code, 0, "{second:#}");
    let sent_second = origin.s3.sent_bytes() - sent_before - sent_first;

    let task = |r: &Value| {
        r["models"][0]["download"]["task_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(task(&first), task(&second));
    let a = std::fs::read(store_a.join("shared.mar")).unwrap();
    let b = std::fs::read(store_b.join("shared.mar")).unwrap();
    assert_eq!(a, std::fs::read(&mar.path).unwrap());
    assert_eq!(a, b);
    assert!(
        sent_first >= mar.bytes,
        "first pull: store sent {sent_first} of {}",
        mar.bytes
    );
    assert!(
        sent_second < mar.bytes / 100,
        "second peer: the store sent {sent_second} bytes of a {}-byte archive",
        mar.bytes
    );
}

#[test]
fn origin_closing_mid_transfer_leaves_no_file_and_previous_archive_intact() {
    let stack = Stack::builder().start();
    let Stack { work, origin, .. } = stack;
    let mar = make_mar("cut", 8.0, &work.path().join("mars"), 9);
    origin.upload(&format!("{PREFIX}cut.mar"), &mar.path);
    let front = CuttingFront::start(origin.s3.endpoint(), 1 << 20, u64::MAX);
    let mut config: Value = serde_json::from_slice(&std::fs::read(&stack.config).unwrap()).unwrap();
    config["object_storage"]["endpoint"] = front.addr.clone().into();
    config["download"] = json!({"retries": 1, "retry_backoff_ms": 100, "read_timeout_secs": 10});
    let config_path = work.path().join("cfg/cut.json");
    std::fs::write(&config_path, config.to_string()).unwrap();

    let store = work.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("cut.mar"), b"previous archive").unwrap();
    let (code, report, stderr) = pull_with_cli(
        &config_path,
        &store,
        &["--model", "cut.mar", "--no-progress"],
    );
    assert_ne!(code, 0, "{report:#}\n{stderr}");
    assert!(front.cuts() > 0, "the front never cut a transfer");
    // The origin broke off every transfer: the peer gave up on it.
    assert_eq!(report["models"][0]["status"], 502, "{report:#}");
    assert_eq!(
        report["models"][0]["error"]["type"], "DragonflyPeerException",
        "{report:#}"
    );
    assert_eq!(
        std::fs::read(store.join("cut.mar")).unwrap(),
        b"previous archive"
    );
    assert_eq!(store_entries(&store), vec!["cut.mar".to_string()]);
}

/// A small tmpfs as the model store: the disk (or its inodes) fills up.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `options`: tmpfs mount options, e.g. `size=4m,nr_inodes=64`.
    fn mount(dir: PathBuf, options: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_507_and_keeps_the_previous_archive() {
    let stack = Stack::builder().start();
    let Stack {
        work,
        origin,
        config,
        ..
    } = stack;
    let mar = make_mar("big", 6.0, &work.path().join("mars"), 11);
    origin.upload(&format!("{PREFIX}big.mar"), &mar.path);
    let store = Tmpfs::mount(work.path().join("store"), "size=4m");
    std::fs::write(store.0.join("big.mar"), vec![7u8; 1 << 20]).unwrap();

    let (code, report, stderr) =
        pull_with_cli(&config, &store.0, &["--model", "big.mar", "--no-progress"]);
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(report["code"], 507, "{report:#}");
    assert_eq!(
        report["models"][0]["error"]["type"],
        "InsufficientStorageException"
    );
    assert_eq!(
        std::fs::read(store.0.join("big.mar")).unwrap(),
        vec![7u8; 1 << 20]
    );
    assert_eq!(store_entries(&store.0), vec!["big.mar".to_string()]);
}

#[test]
fn no_inode_left_to_unpack_the_archive_is_507_not_a_bad_archive() {
    let stack = Stack::builder().start();
    let Stack {
        work,
        origin,
        config,
        ..
    } = stack;
    let mar = make_mar("inodes", 1.0, &work.path().join("mars"), 12);
    origin.upload(&format!("{PREFIX}inodes.mar"), &mar.path);
    let store = Tmpfs::mount(work.path().join("store"), "size=64m,nr_inodes=64");
    let pull = || {
        pull_with_cli(
            &config,
            &store.0,
            &["--model", "inodes.mar", "--no-progress"],
        )
    };
    let (code, report, stderr) = pull();
    assert_eq!(code, 0, "{report:#}\n{stderr}");

    // The archive stays and is unchanged, so the next pull unpacks it from
    // the file; its unpacked copy is gone and no inode is left for it.
    let unpacked = store.0.join(".dragonfly-endpoint/unpacked");
    std::fs::remove_dir_all(&unpacked).unwrap();
    let mut fillers = 0;
    while fillers < 64 && std::fs::write(store.0.join(format!("filler-{fillers}")), b"").is_ok() {
        fillers += 1;
    }
    assert!(fillers < 64, "the tmpfs never ran out of inodes");
    let before = entries(&store.0);

    let (code, report, stderr) = pull();
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(report["code"], 507, "{report:#}");
    assert_eq!(
        report["models"][0]["error"]["type"], "InsufficientStorageException",
        "{report:#}"
    );
    assert_eq!(entries(&store.0), before);
    assert_eq!(
        std::fs::read(store.0.join("inodes.mar")).unwrap(),
        std::fs::read(&mar.path).unwrap()
    );
}

#[test]
fn a_warm_archive_is_hard_linked_from_the_peer_cache() {
    use std::os::unix::fs::MetadataExt;
    let origin = Origin::start(1);
    let work = tempfile::tempdir().unwrap();
    let mar = make_mar("warm", 16.0, &work.path().join("mars"), 13);
    origin.upload(&format!("{PREFIX}warm.mar"), &mar.path);
    let archive = std::fs::read(&mar.path).unwrap();
    let pull_into = |store: &str, download: Value| {
        let dir = work.path().join(store);
        let config = write_config(
            &dir.join("cfg"),
            &origin.s3,
            &origin.dragonfly.proxy(1),
            json!({ "download": download }),
        );
        let store = dir.join("store");
        let (code, report, stderr) =
            pull_with_cli(&config, &store, &["--model", "warm.mar", "--no-progress"]);
        assert_eq!(code, 0, "{report:#}\n{stderr}");
        assert_eq!(std::fs::read(store.join("warm.mar")).unwrap(), archive);
        assert_no_partial_files(&store);
        (report["models"][0]["download"].clone(), store)
    };

    // Cold: streamed through the proxy (the end of the body is the sign
    // the task is complete) but not written a second time: the store keeps
    // the peer's own file, checked against what was streamed.
    let (cold, store) = pull_into("a", json!({}));
    assert_eq!(cold["served_from"], "dragonfly", "{cold:#}");
    assert_eq!(cold["hard_linked"], true, "{cold:#}");
    assert!(
        std::fs::metadata(store.join("warm.mar")).unwrap().nlink() >= 2,
        "the cold pull wrote a copy of its own"
    );

    // Warm, into an empty store: the peer links its finished task.
    let (warm, store) = pull_into("b", json!({}));
    assert_eq!(warm["hard_linked"], true, "{warm:#}");
    assert_eq!(warm["served_from"], "dragonfly_cache", "{warm:#}");
    assert_eq!(warm["bytes"], mar.bytes);
    let linked = std::fs::metadata(store.join("warm.mar")).unwrap();
    assert!(linked.nlink() >= 2, "not a hard link of the peer's file");
    println!(
        "warm pull of {} MiB by hard link: {:.1} ms",
        mar.bytes >> 20,
        warm["seconds"].as_f64().unwrap() * 1e3
    );

    // Switched off: streamed from the peer's cache.
    let (streamed, store) = pull_into("c", json!({"hard_link": "off"}));
    assert!(streamed.get("hard_linked").is_none(), "{streamed:#}");
    assert_eq!(streamed["served_from"], "dragonfly_cache", "{streamed:#}");
    assert_eq!(
        std::fs::metadata(store.join("warm.mar")).unwrap().nlink(),
        1
    );
}
