//! Proof that each part of the test bed is the real thing.

use std::io::Read;
use std::time::Duration;

use dragonfly_endpoint_core::source::s3::SIGNING_PARAMS;
use dragonfly_endpoint_core::transfer::dragonfly::{filtered_query_params, header};
use dragonfly_endpoint_testbed::*;
use sha2::{Digest, Sha256};

/// SeaweedFS checks signatures: a tampered presigned URL is refused.
#[test]
fn s3_server_rejects_a_tampered_signature() {
    let s3 = dragonfly_endpoint_testbed::S3Server::start();
    s3.mb(BUCKET);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("object");
    std::fs::write(&file, b"signed content").unwrap();
    s3.put(BUCKET, "object", &file);
    let url = s3.presign(BUCKET, "object", 600);
    let ok = http().get(&url).send().unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.bytes().unwrap().as_ref(), b"signed content");

    let (head, signature) = url.split_once("X-Amz-Signature=").unwrap();
    let flipped: String = signature
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == '0' {
                    '1'
                } else {
                    '0'
                }
            } else {
                c
            }
        })
        .collect();
    let tampered = format!("{head}X-Amz-Signature={flipped}");
    assert_eq!(http().get(&tampered).send().unwrap().status().as_u16(), 403);
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Two real dfdaemon peers: the second one, asked with a differently signed
/// URL, gets the object from the first, not from the S3 server.
#[test]
fn second_peer_serves_a_64_mib_object_without_the_origin() {
    let origin = Origin::start(2);
    let work = tempfile::tempdir().unwrap();
    let mut content = vec![0u8; 64 << 20];
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    urandom.read_exact(&mut content).unwrap();
    let file = work.path().join("big");
    std::fs::write(&file, &content).unwrap();
    origin.upload("big.bin", &file);
    let expected = sha256(&content);

    let through = |proxy: &str, url: &str| -> Vec<u8> {
        let client = reqwest::blocking::Client::builder()
            .proxy(reqwest::Proxy::http(proxy).unwrap())
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap();
        let response = client
            .get(url)
            .header(
                header::FILTERED_QUERY_PARAMS,
                filtered_query_params(SIGNING_PARAMS, &[]),
            )
            .header(header::USE_P2P, "true")
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.bytes().unwrap().to_vec()
    };
    let before = origin.s3.sent_bytes();
    let url_a = origin.s3.presign(BUCKET, "big.bin", 600);
    assert_eq!(
        sha256(&through(&origin.dragonfly.proxy(1), &url_a)),
        expected
    );
    let after_a = origin.s3.sent_bytes();
    // A second signature (another expiry): another URL, the same object.
    let url_b = origin.s3.presign(BUCKET, "big.bin", 900);
    assert_ne!(url_a, url_b);
    assert_eq!(
        sha256(&through(&origin.dragonfly.proxy(2), &url_b)),
        expected
    );
    let after_b = origin.s3.sent_bytes();

    let size = content.len() as u64;
    assert!(
        after_a - before >= size,
        "peer A: origin sent {}",
        after_a - before
    );
    assert!(
        after_b - before <= size + size / 10,
        "origin sent {} bytes for two fetches of a {size}-byte object",
        after_b - before
    );
}

/// TorchServe 0.12 starts, answers /ping, and leaves no process behind.
#[test]
fn torchserve_starts_answers_ping_and_stops_cleanly() {
    let plugins = tempfile::tempdir().unwrap();
    let mut ts = TorchServe::start(plugins.path(), "");
    let pid = ts.pid();
    let pgid: u32 = ts.0.env("TS_PGID").parse().unwrap();
    let ping = http()
        .get(format!("{}/ping", ts.inference()))
        .bearer_auth(ts.inference_token())
        .send()
        .unwrap();
    assert_eq!(ping.status().as_u16(), 200);
    assert!(ping.text().unwrap().contains("Healthy"));
    assert!(alive(pid));
    ts.0.stop();
    assert!(!alive(pid), "TorchServe JVM {pid} still running");
    let leftovers = std::process::Command::new("pgrep")
        .args(["-g", &pgid.to_string()])
        .output()
        .unwrap();
    let running: Vec<&str> = std::str::from_utf8(&leftovers.stdout)
        .unwrap()
        .split_whitespace()
        .filter(|pid| pid.parse().is_ok_and(alive))
        .collect();
    assert!(
        running.is_empty(),
        "processes left in TorchServe's group: {running:?}"
    );
}
