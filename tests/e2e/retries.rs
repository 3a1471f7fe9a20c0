//! Retries that do what they say, and digests that are digests, each with
//! a fault put between the real components: a peer restarting mid-pull, a
//! stream that breaks after its last byte, a 206 that starts elsewhere, a
//! presigned URL that expires between attempts, an SSE-KMS object whose
//! ETag is not its MD5, and a store checksum that catches corruption.

use std::time::Duration;

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

use crate::front::CuttingFront;

fn download(report: &Value) -> &Value {
    &report["models"][0]["download"]
}

/// The `name=` query value of a request line (a presigned URL's part).
fn query_value(head: &str, name: &str) -> Option<String> {
    let target = head.split_whitespace().nth(1)?;
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

#[test]
fn retries_resume_refuse_bad_ranges_and_sign_again() {
    let stack = Stack::builder().start();
    let Stack {
        work,
        origin,
        config,
        ..
    } = stack;
    let mars = work.path().join("mars");
    let peer = origin.dragonfly.proxy(1);
    let pull = |config: &std::path::Path, store: &str, key: &str| {
        let store = work.path().join(store);
        let (code, report, stderr) =
            pull_with_cli(config, &store, &["--model", key, "--no-progress"]);
        (code, report, stderr, store)
    };
    let same_bytes = |store: &std::path::Path, file: &str, mar: &Mar| {
        assert_eq!(
            std::fs::read(store.join(file)).unwrap(),
            std::fs::read(&mar.path).unwrap(),
            "{file} differs from the object"
        );
        assert_no_partial_files(store);
    };

    // A peer that answered, then refuses connections for 2 s (restarting):
    // retried with backoff, resumed from the bytes already on disk.
    let restart = make_mar("restart", 24.0, &mars, 71);
    origin.upload(&format!("{PREFIX}restart.mar"), &restart.path);
    let front = HttpFront::start(
        &peer,
        FrontPlan {
            faults: vec![Fault::CutAfter(6 << 20)],
            down_after_first: Some(Duration::from_secs(2)),
            ..FrontPlan::default()
        },
    );
    let through = config_variant(&config, "restart.json", |c| {
        c["addr"] = front.addr.clone().into();
        c["download"] = json!({"retries": 8, "retry_backoff_ms": 300, "read_timeout_secs": 20});
    });
    let (code, report, stderr, store) = pull(&through, "s-restart", "restart.mar");
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let attempts = download(&report)["attempts"].as_u64().unwrap();
    assert!(
        attempts >= 3,
        "no attempt met the refused connections: {report:#}"
    );
    same_bytes(&store, "restart.mar", &restart);
    let last = front.request_heads().last().cloned().unwrap_or_default();
    let range = header_value(&last, "range").unwrap_or_default();
    assert!(
        range.starts_with("bytes=") && !range.starts_with("bytes=0-"),
        "the retry after the restart did not resume: {last}"
    );
    assert!(
        front.body_bytes() < restart.bytes + (64 << 10),
        "{} body bytes for a {}-byte archive: the retry started over",
        front.body_bytes(),
        restart.bytes
    );

    // Every byte arrives, then the stream breaks: done, with no retry (a
    // retry from the end is an empty range, which the peer answers with
    // 500, not 416).
    let whole = make_mar("whole", 4.0, &mars, 72);
    origin.upload(&format!("{PREFIX}whole.mar"), &whole.path);
    let front = HttpFront::start(
        &peer,
        FrontPlan {
            faults: vec![Fault::Overstate],
            ..FrontPlan::default()
        },
    );
    let through = config_variant(&config, "whole.json", |c| {
        c["addr"] = front.addr.clone().into();
        c["download"] = json!({"retries": 2, "retry_backoff_ms": 100});
    });
    let (code, report, stderr, store) = pull(&through, "s-whole", "whole.mar");
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(front.faults(), 1, "the front did not break the stream");
    assert_eq!(download(&report)["attempts"], 1, "{report:#}");
    same_bytes(&store, "whole.mar", &whole);

    // A 206 that does not start where it was asked to: refused, never
    // written at byte 0; the next attempt resumes properly.
    let ranged = make_mar("ranged", 24.0, &mars, 73);
    origin.upload(&format!("{PREFIX}ranged.mar"), &ranged.path);
    let front = HttpFront::start(
        &peer,
        FrontPlan {
            faults: vec![Fault::CutAfter(6 << 20), Fault::WrongRange],
            ..FrontPlan::default()
        },
    );
    let through = config_variant(&config, "ranged.json", |c| {
        c["addr"] = front.addr.clone().into();
        c["download"] = json!({"retries": 3, "retry_backoff_ms": 100, "read_timeout_secs": 20});
    });
    let (code, report, stderr, store) = pull(&through, "s-ranged", "ranged.mar");
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(front.faults(), 2, "cut and wrong range not both applied");
    assert_eq!(download(&report)["attempts"], 3, "{report:#}");
    same_bytes(&store, "ranged.mar", &ranged);

    // Straight from the store (the peer is down, fallback on), a URL valid
    // for 2 s, a backoff of 3 s: the retry signs again, and resumes.
    let resigned = make_mar("resigned", 8.0, &mars, 74);
    origin.upload(&format!("{PREFIX}resigned.mar"), &resigned.path);
    let front = HttpFront::start(
        origin.s3.endpoint(),
        FrontPlan {
            faults: vec![Fault::CutAfter(1 << 20)],
            ..FrontPlan::default()
        },
    );
    let direct = config_variant(&config, "resigned.json", |c| {
        // Port 1 on loopback: nothing listens, the connect is refused.
        c["addr"] = "http://127.0.0.1:1".into();
        c["object_storage"]["endpoint"] = front.addr.clone().into();
        c["object_storage"]["presign_expiry_secs"] = 2.into();
        c["download"] = json!({"fallback": "source", "retries": 2, "retry_backoff_ms": 3000});
    });
    let (code, report, stderr, store) = pull(&direct, "s-resigned", "resigned.mar");
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(download(&report)["served_from"], "source", "{report:#}");
    same_bytes(&store, "resigned.mar", &resigned);
    let gets: Vec<String> = front
        .request_heads()
        .into_iter()
        .filter(|h| h.starts_with("GET ") && h.contains("X-Amz-Signature="))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert_ne!(
        query_value(&gets[0], "X-Amz-Signature"),
        query_value(&gets[1], "X-Amz-Signature"),
        "the retry reused the first (expired) URL"
    );
    assert!(header_value(&gets[1], "range").is_some(), "{}", gets[1]);
}

#[test]
fn digests_are_the_stores_own_and_never_a_guessed_etag() {
    let stack = Stack::builder().start();
    let Stack {
        work,
        origin,
        config,
        ..
    } = stack;
    let mars = work.path().join("mars");

    // A single-part object is an MD5 check by default.
    let plain = make_mar("plain", 1.0, &mars, 81);
    origin.upload(&format!("{PREFIX}plain.mar"), &plain.path);
    let (code, report, stderr) = pull_with_cli(
        &config,
        &work.path().join("s-plain"),
        &["--model", "plain.mar", "--no-progress"],
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(download(&report)["verified"], "MD5", "{report:#}");

    // The same kind of object as AWS S3 answers for it under SSE-KMS: its
    // ETag is not the MD5, so only the length is checked (before, every
    // such object failed with a digest mismatch).
    let kms = HttpFront::start(
        origin.s3.endpoint(),
        FrontPlan {
            sse_kms: true,
            ..FrontPlan::default()
        },
    );
    let kms_config = config_variant(&config, "kms.json", |c| {
        c["object_storage"]["endpoint"] = kms.addr.clone().into();
    });
    let (code, report, stderr) = pull_with_cli(
        &kms_config,
        &work.path().join("s-kms"),
        &["--model", "plain.mar", "--no-progress"],
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(download(&report)["verified"], "length", "{report:#}");

    // A checksum the store keeps (uploaded with SHA-256) is what is
    // checked, and it catches a byte flipped between the store and the
    // peer.
    let summed = make_mar("summed", 2.0, &mars, 82);
    origin.s3.put_with_checksum(
        BUCKET,
        &format!("{PREFIX}summed.mar"),
        &summed.path,
        "SHA256",
    );
    let (code, report, stderr) = pull_with_cli(
        &config,
        &work.path().join("s-summed"),
        &["--model", "summed.mar", "--no-progress"],
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(download(&report)["verified"], "SHA256", "{report:#}");
    let flipping = CuttingFront::corrupting(origin.s3.endpoint(), (1 << 20) + 7);
    let flipped = config_variant(&config, "flipped.json", |c| {
        c["object_storage"]["endpoint"] = flipping.addr.clone().into();
        c["download"] = json!({"retries": 0});
    });
    let store = work.path().join("s-flipped");
    let (code, report, _) = pull_with_cli(
        &flipped,
        &store,
        &["--model", "summed.mar", "--no-progress"],
    );
    assert_eq!(code, 1, "{report:#}");
    assert!(flipping.corrupted() > 0, "the front flipped nothing");
    let error = &report["models"][0]["error"];
    assert_eq!(error["type"], "DigestMismatchException", "{report:#}");
    assert!(
        error["message"].as_str().unwrap().contains("SHA256"),
        "{report:#}"
    );
    assert!(!store.join("summed.mar").exists());
    assert_no_partial_files(&store);
}
