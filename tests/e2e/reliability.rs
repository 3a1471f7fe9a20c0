//! Transfers that break or go stale: a connection to the peer cut mid-way
//! resumes with a `Range` request; bytes corrupted in transit, a body longer
//! than the store announced and an expired presigned URL are refused with a
//! message that says so, leaving nothing behind.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dragonfly_endpoint_core::config::Config;
use dragonfly_endpoint_core::model_store::{ModelStore, TempFile};
use dragonfly_endpoint_core::secret::Secret;
use dragonfly_endpoint_core::source::s3::{S3Source, SIGNING_PARAMS};
use dragonfly_endpoint_core::source::{ObjectSource, PresignedUrl};
use dragonfly_endpoint_core::transfer::writer::WriteTarget;
use dragonfly_endpoint_core::transfer::{Destination, FetchTarget, Fetched, Fetcher, Presign};
use dragonfly_endpoint_core::CoreError;
use dragonfly_endpoint_testbed::*;
use serde_json::json;
use tokio::runtime::Runtime;

use crate::front::CuttingFront;

/// A signer that always hands out the same URL (the pull's presigns anew).
fn fixed(url: PresignedUrl) -> Presign {
    Arc::new(move || {
        let url = url.clone();
        Box::pin(async move { Ok(url) })
    })
}

/// One download into a temporary file of `store`, as a pull runs it.
fn fetch_into(
    runtime: &Runtime,
    fetcher: &Fetcher,
    store: &ModelStore,
    target: &FetchTarget,
) -> Result<(TempFile, Fetched), CoreError> {
    let mut temp = store.create_temp("fetched.mar")?;
    let file = temp.file().and_then(|f| f.try_clone()).unwrap();
    let dest = Destination {
        file: WriteTarget {
            file,
            dir: store.dir().to_path_buf(),
            name: "fetched.mar".into(),
        },
        link: None,
    };
    let received = AtomicU64::new(0);
    runtime
        .block_on(fetcher.fetch(target, dest, &received, None))
        .map(|fetched| (temp, fetched))
}

#[test]
fn a_transfer_cut_midway_resumes_with_a_range_request() {
    let origin = Origin::start(1);
    let work = tempfile::tempdir().unwrap();
    let mar = make_mar("resume", 24.0, &work.path().join("mars"), 21);
    origin.upload(&format!("{PREFIX}resume.mar"), &mar.path);
    // The first connection to the peer breaks after 6 MiB of the response.
    let cut_at = 6u64 << 20;
    let front = CuttingFront::start(&origin.dragonfly.proxy(1), cut_at, 1);
    let config = write_config(
        &work.path().join("cfg"),
        &origin.s3,
        &front.addr,
        json!({"download": {"retries": 2, "retry_backoff_ms": 200, "read_timeout_secs": 20}}),
    );
    let store = work.path().join("store");

    let (code, report, stderr) =
        pull_with_cli(&config, &store, &["--model", "resume.mar", "--no-progress"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(front.cuts(), 1, "the front did not cut the first transfer");
    let download = &report["models"][0]["download"];
    assert_eq!(download["attempts"], 2, "{report:#}");
    assert_eq!(
        std::fs::read(store.join("resume.mar")).unwrap(),
        std::fs::read(&mar.path).unwrap(),
        "the resumed archive differs from the object"
    );
    // The retry asked for the rest only, and only the rest was sent.
    let heads = front.request_heads();
    assert_eq!(heads.len(), 2, "{heads:#?}");
    let range = heads[1]
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("range")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("the retry sent no Range header:\n{}", heads[1]));
    let from: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected Range {range:?}"));
    assert!(
        from > 0 && from <= cut_at,
        "resumed from {from}, cut at {cut_at}"
    );
    let relayed = front.response_bytes();
    assert!(
        relayed < mar.bytes + (64 << 10),
        "{relayed} response bytes for a {}-byte archive: the retry started over",
        mar.bytes
    );
    assert_no_partial_files(&store);
}

#[test]
fn an_expired_presigned_url_is_refused_and_leaves_nothing() {
    let stack = Stack::builder()
        .config(json!({"download": {"retries": 0}}))
        .start();
    let Stack { work, origin, .. } = stack;
    let mar = make_mar("stale", 1.0, &work.path().join("mars"), 22);
    let key = format!("{PREFIX}stale.mar");
    origin.upload(&key, &mar.path);
    let mut config = Config::load(&stack.config).unwrap();
    let fetcher = Fetcher::new(&config, SIGNING_PARAMS).unwrap();
    std::fs::create_dir_all(work.path().join("store")).unwrap();
    let store = ModelStore::open(work.path().join("store")).unwrap();
    let runtime = Runtime::new().unwrap();
    let mut presigner = |expiry_secs: u64| {
        config.object_storage.presign_expiry_secs = expiry_secs;
        runtime
            .block_on(S3Source::connect(&config.object_storage, BUCKET, None))
            .unwrap()
    };
    let (short, long) = (presigner(1), presigner(300));
    let fetch = |presigned: PresignedUrl| {
        let target = FetchTarget {
            object: format!("s3://{BUCKET}/{key}"),
            presign: fixed(presigned),
            size: mar.bytes,
            digest: None,
            version: None,
        };
        fetch_into(&runtime, &fetcher, &store, &target)
    };
    let refusal = |presigned: PresignedUrl| {
        let err = match fetch(presigned) {
            Ok(_) => panic!("a refused URL was accepted"),
            Err(err) => err,
        };
        assert_eq!(err.status(), 403, "{err}");
        let body = err.body().json();
        assert_eq!(body["type"], "ObjectStorageDeniedException", "{body}");
        let message = body["message"].as_str().unwrap().to_string();
        assert!(message.contains("stale.mar"), "{message}");
        assert!(
            !message.contains("X-Amz-Signature"),
            "the presigned URL leaked: {message}"
        );
        assert!(
            entries(store.dir()).is_empty(),
            "{:?}",
            entries(store.dir())
        );
        message
    };

    // Signed for one second, used once the store's clock is past it.
    let expired = runtime.block_on(short.presign(&key)).unwrap();
    let deadline = expired.expires_at.unwrap() + Duration::from_secs(1);
    while SystemTime::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let message = refusal(expired);
    assert!(message.contains("expired"), "{message}");

    // A valid URL with a wrong signature is refused too, and not called
    // expired: the message tells the two apart.
    let mut tampered = runtime.block_on(long.presign(&key)).unwrap();
    let mut url = tampered.url.expose().clone();
    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if url[at..].starts_with('0') { "1" } else { "0" };
    url.replace_range(at..at + 1, flipped);
    tampered.url = Secret::new(url);
    let message = refusal(tampered);
    assert!(!message.contains("expired"), "{message}");
    assert!(message.contains("invalid signature"), "{message}");

    // The same object with a fresh signature downloads: it was the expiry.
    let (temp, fetched) = fetch(runtime.block_on(long.presign(&key)).unwrap()).unwrap();
    assert_eq!(fetched.bytes, mar.bytes);
    drop(temp);
    assert!(
        entries(store.dir()).is_empty(),
        "{:?}",
        entries(store.dir())
    );
}

#[test]
fn corrupted_or_overlong_bodies_are_refused_and_leave_the_store_as_it_was() {
    let stack = Stack::builder()
        .config(json!({"download": {"retries": 0}}))
        .start();
    let Stack {
        work,
        origin,
        config: config_path,
        ..
    } = stack;
    let mar = make_mar("flip", 4.0, &work.path().join("mars"), 23);
    let key = format!("{PREFIX}flip.mar");
    origin.upload(&key, &mar.path);

    // A byte flipped between the store and the peer: the MD5 (the ETag of
    // a single-part upload) no longer matches.
    let front = CuttingFront::corrupting(origin.s3.endpoint(), (1 << 20) + 7);
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["object_storage"]["endpoint"] = front.addr.clone().into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let store = work.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("flip.mar"), b"previous archive").unwrap();
    let (code, report, stderr) = pull_with_cli(
        &config_path,
        &store,
        &["--model", "flip.mar", "--no-progress"],
    );
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert!(front.corrupted() > 0, "the front corrupted nothing");
    assert_eq!(report["code"], 502, "{report:#}");
    let error = &report["models"][0]["error"];
    assert_eq!(error["type"], "DigestMismatchException", "{report:#}");
    assert!(
        error["message"].as_str().unwrap().contains("MD5"),
        "{report:#}"
    );
    assert_eq!(
        std::fs::read(store.join("flip.mar")).unwrap(),
        b"previous archive"
    );
    assert_no_partial_files(&store);

    // A body longer than the size the store announced (the object was
    // replaced between HEAD and GET): refused, nothing written.
    let config = Config::load(&write_config(
        &work.path().join("cfg2"),
        &origin.s3,
        &origin.dragonfly.proxy(1),
        json!({}),
    ))
    .unwrap();
    let fetcher = Fetcher::new(&config, SIGNING_PARAMS).unwrap();
    let clean = work.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    let clean = ModelStore::open(&clean).unwrap();
    let target = FetchTarget {
        object: format!("s3://{BUCKET}/{key}"),
        presign: fixed(PresignedUrl {
            url: Secret::new(origin.s3.presign(BUCKET, &key, 300)),
            expires_at: None,
        }),
        size: mar.bytes - 1,
        digest: None,
        version: None,
    };
    let runtime = Runtime::new().unwrap();
    let err = match fetch_into(&runtime, &fetcher, &clean, &target) {
        Ok(_) => panic!("an overlong body was accepted"),
        Err(err) => err,
    };
    assert_eq!(err.status(), 502, "{err}");
    assert_eq!(err.body().kind, "ContentLengthMismatchException", "{err}");
    assert!(
        entries(clean.dir()).is_empty(),
        "{:?}",
        entries(clean.dir())
    );
}
