//! TLS is verified by default, towards the Dragonfly proxy and the object
//! store; a private CA is trusted through `download.ca_cert`; turning
//! verification off takes `download.tls_verify: false` and logs a warning.
//!
//! The TLS endpoints are real TLS (tests/support/tls_front.py terminates it
//! in front of the real dfdaemon proxy and the real S3 server) with
//! certificates from a throwaway CA made by `openssl`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

/// TLS in front of a plain TCP server.
struct TlsFront {
    child: Child,
    /// `https://127.0.0.1:port`
    url: String,
}

impl TlsFront {
    fn start(target_url: &str, pki: &Pki) -> TlsFront {
        let target = target_url
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/support/tls_front.py"))
            .arg("--cert")
            .arg(&pki.leaf_cert)
            .arg("--key")
            .arg(&pki.leaf_key)
            .args(["--target", target])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tls_front.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("tls_front.py prints its port");
        let port: u16 = line.trim().parse().expect("a port");
        TlsFront {
            child,
            url: format!("https://127.0.0.1:{port}"),
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config with the given proxy, store endpoint and download options.
fn config(dir: &Path, s3: &S3Server, proxy: &str, endpoint: &str, download: Value) -> PathBuf {
    let path = write_config(dir, s3, proxy, json!({ "download": download }));
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["object_storage"]["endpoint"] = endpoint.into();
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

#[test]
fn tls_is_verified_by_default_and_a_private_ca_can_be_trusted() {
    let work = tempfile::tempdir().unwrap();
    let pki = make_pki(&work.path().join("pki"));
    // The peers intercept HTTPS with certificates our CA signs.
    let Origin { s3, dragonfly } = Origin::start_with(
        1,
        &[
            "--proxy-ca",
            pki.ca_cert.to_str().unwrap(),
            pki.ca_key.to_str().unwrap(),
        ],
    );
    let mar = make_mar("tls", 2.0, &work.path().join("mars"), 51);
    s3.put(BUCKET, &format!("{PREFIX}tls.mar"), &mar.path);
    let tls_proxy = TlsFront::start(&dragonfly.proxy(1), &pki);
    let tls_store = TlsFront::start(s3.endpoint(), &pki);
    let ca = pki.ca_cert.display().to_string();
    let archive = std::fs::read(&mar.path).unwrap();

    let mut case = 0;
    let mut pull = |proxy: &str, endpoint: &str, download: Value| {
        case += 1;
        let dir = work.path().join(format!("case{case}"));
        let config = config(&dir.join("cfg"), &s3, proxy, endpoint, download);
        let store = dir.join("store");
        let (code, report, stderr) =
            pull_with_cli(&config, &store, &["--model", "tls.mar", "--no-progress"]);
        (code, report, stderr, store)
    };
    let failed = |code: i32, report: &Value, store: &Path, kind: &str| -> String {
        assert_eq!(code, 1, "{report:#}");
        assert_eq!(report["code"], 502, "{report:#}");
        let error = &report["models"][0]["error"];
        let error = if error.is_null() { report } else { error };
        assert_eq!(error["type"], kind, "{report:#}");
        assert!(!store.join("tls.mar").exists());
        assert_no_partial_files(store);
        error["message"].as_str().unwrap_or_default().to_string()
    };

    // 1. A proxy whose certificate nobody trusts: refused, 502 naming it.
    let (code, report, _, store) = pull(&tls_proxy.url, s3.endpoint(), json!({}));
    let message = failed(code, &report, &store, "DragonflyPeerException");
    assert!(
        message.contains(&tls_proxy.url) && message.contains("certificate"),
        "{message}"
    );

    // 2. The same proxy with its CA trusted: the pull works.
    let (code, report, stderr, store) = pull(&tls_proxy.url, s3.endpoint(), json!({"ca_cert": ca}));
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(std::fs::read(store.join("tls.mar")).unwrap(), archive);
    assert!(!stderr.contains("verification is OFF"), "{stderr}");

    // 3. Verification off takes an explicit key, and says so in the log.
    let (code, report, stderr, store) =
        pull(&tls_proxy.url, s3.endpoint(), json!({"tls_verify": false}));
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(std::fs::read(store.join("tls.mar")).unwrap(), archive);
    assert!(
        stderr.contains("WARN") && stderr.contains("TLS certificate verification is OFF"),
        "{stderr}"
    );

    // 4. An object store whose certificate nobody trusts: refused, 502.
    let (code, report, _, store) = pull(&dragonfly.proxy(1), &tls_store.url, json!({}));
    let message = failed(code, &report, &store, "ObjectStorageException");
    assert!(
        message.contains("certificate") && message.contains("download.ca_cert"),
        "{message}"
    );

    // 5. The store's CA trusted: listed over TLS, and the object fetched
    //    through the peer, which intercepts HTTPS with the same CA (the
    //    `tunnel` route; the default is tested below).
    let (code, report, stderr, store) = pull(
        &dragonfly.proxy(1),
        &tls_store.url,
        json!({"ca_cert": ca, "https_via_peer": "tunnel"}),
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(std::fs::read(store.join("tls.mar")).unwrap(), archive);
    assert_eq!(
        report["models"][0]["download"]["served_from"], "dragonfly",
        "{report:#}"
    );

    // 6. The default route without the peer's `useTLS` rule: the peer
    //    speaks plain HTTP to the TLS port and fails; the pull says what
    //    is missing, and the store is as it was.
    let (code, report, _, store) = pull(
        &dragonfly.proxy(1),
        &tls_store.url,
        json!({"ca_cert": ca, "retries": 0}),
    );
    let message = failed(code, &report, &store, "TransferException");
    assert!(message.contains("useTLS"), "{message}");
}

/// The default route to an `https://` store: the plugin asks the proxy for
/// `http://` of the same host, and dfdaemon's `useTLS: true` rule fetches it
/// over TLS. No CA is given to dfdaemon, and no CONNECT is made. Two peers,
/// one through TorchServe and one through the CLI: the model registers and
/// answers, and the store sends its body once.
#[test]
fn an_https_store_is_reached_through_the_tls_rule_and_shared_between_peers() {
    let work = tempfile::tempdir().unwrap();
    let pki = make_pki(&work.path().join("pki"));
    let s3 = S3Server::start();
    s3.mb(BUCKET);
    let tls_store = TlsFront::start(s3.endpoint(), &pki);
    let authority = tls_store.url.trim_start_matches("https://");
    let rule = authority.replace('.', "\\.");
    let dragonfly = DragonflyCluster::start_with(2, &["--proxy-tls-rule", &rule]);
    let mar = make_mar("https", 2.0, &work.path().join("mars"), 52);
    s3.put(BUCKET, &format!("{PREFIX}https.mar"), &mar.path);

    // The plugin's own listing and HEAD verify the store's certificate
    // (a private CA here, a public one on a cloud).
    let ca = pki.ca_cert.display().to_string();
    let download = json!({"ca_cert": ca, "fallback": "none"});
    let first = config(
        &work.path().join("cfg"),
        &s3,
        &dragonfly.proxy(1),
        &tls_store.url,
        download.clone(),
    );
    let second = config(
        &work.path().join("cfg2"),
        &s3,
        &dragonfly.proxy(2),
        &tls_store.url,
        download,
    );

    let sent = s3.sent_bytes();
    let (_plugins, ts) = torchserve_with_plugin(Jar::TestHooks, &first, "");
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=https.mar");
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(
        report["models"][0]["download"]["served_from"], "dragonfly",
        "{report:#}"
    );
    assert_close(infer(&ts, "https").expect("inference"), mar.expected);

    let store = work.path().join("store-2");
    let (code, report, stderr) =
        pull_with_cli(&second, &store, &["--model", "https.mar", "--no-progress"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(
        std::fs::read(store.join("https.mar")).unwrap(),
        std::fs::read(&mar.path).unwrap()
    );

    // The store's own count: one body, plus each peer's one-byte probe
    // and the small listing/HEAD answers.
    let sent = s3.sent_bytes() - sent;
    assert!(
        sent >= mar.bytes && sent <= mar.bytes + mar.bytes / 20,
        "the store sent {sent} bytes for one {}-byte archive pulled by two peers over https",
        mar.bytes
    );
}
