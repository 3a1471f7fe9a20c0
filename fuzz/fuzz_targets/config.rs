//! The JSON config file: `Config::parse` on arbitrary bytes. An accepted
//! config must satisfy what `validate` promises, and its redacted form (what
//! `GET /dragonfly` shows) must not depend on, or contain, the credentials.
//! A refused one must be a 4xx/5xx error that names the file.

#![no_main]

use std::path::Path;

use dragonfly_endpoint_core::config::Config;
use dragonfly_endpoint_core::CoreError;
use libfuzzer_sys::fuzz_target;

const SOURCE: &str = "/fuzz/config.json";

/// How `text` appears inside JSON output (quotes, backslashes and control
/// characters escaped), without the surrounding quotes.
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

fn check_accepted(config: &Config) {
    assert_eq!(config.source, Path::new(SOURCE));
    let addr = url::Url::parse(&config.addr).expect("accepted addr is a URL");
    assert!(matches!(addr.scheme(), "http" | "https") && addr.host_str().is_some());
    let storage = &config.object_storage;
    assert_eq!(storage.kind, "s3");
    assert_eq!(storage.access_key.is_some(), storage.secret_key.is_some());
    assert!((1..=604_800).contains(&storage.presign_expiry_secs));
    assert!(config.register.batch_size >= 1);
    assert!((1..=64).contains(&config.download.concurrency));
    assert!(config.download.retries <= 20);
    assert!(config.download.connect_timeout_secs >= 1 && config.download.read_timeout_secs >= 1);
    assert!(config.download.proxy_basic_auth.is_none());
    let _ = config.hard_link_active();
    let _ = config.register.pairs();

    let redacted = config.redacted();
    let text = redacted.to_string();

    // The same config with other credentials: redaction must not depend on
    // their values, only on whether they are set.
    let mut other = config.clone();
    for secret in [
        &mut other.object_storage.access_key,
        &mut other.object_storage.secret_key,
        &mut other.object_storage.session_token,
    ] {
        if secret.is_some() {
            *secret = Some("fuzz-sentinel-credential".into());
        }
    }
    let other_text = other.redacted().to_string();

    for (key, value) in [
        ("access_key", &storage.access_key),
        ("secret_key", &storage.secret_key),
        ("session_token", &storage.session_token),
    ] {
        let shown = &redacted["object_storage"][key];
        match value {
            Some(_) => assert_eq!(shown, "***", "{key} not masked: {text}"),
            None => assert!(shown.is_null(), "{key} unset but shown: {text}"),
        }
        let Some(value) = value else { continue };
        if value.chars().count() < 4 {
            continue;
        }
        // A value that also appears elsewhere without being the secret (an
        // access key "http" and the addr "http://...") is a coincidence, not
        // a leak; the equality below covers those.
        for needle in [value.clone(), json_escaped(value)] {
            if !other_text.contains(&needle) {
                assert!(
                    !text.contains(&needle),
                    "{key} value {value:?} leaked into the redacted config: {text}"
                );
            }
        }
    }
    assert_eq!(
        text, other_text,
        "the redacted config depends on the credentials' values"
    );

    for (name, value) in &config.header {
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" || lower == "proxy-authorization" || lower.contains("token") {
            assert_eq!(
                redacted["header"][name.as_str()],
                "***",
                "header {name:?} = {value:?} not masked: {text}"
            );
        }
    }
}

fn check_refused(err: &CoreError) {
    let status = err.status();
    assert!(
        (400..=599).contains(&status),
        "status {status} for {err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(SOURCE),
        "the message does not name the file: {message}"
    );
    match err {
        CoreError::Config { path, reason } => {
            assert_eq!(path, Path::new(SOURCE));
            assert!(!reason.trim().is_empty(), "empty reason: {err:?}");
        }
        other => panic!("not a config error: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    match Config::parse(data, Path::new(SOURCE)) {
        Ok(config) => check_accepted(&config),
        Err(err) => check_refused(&err),
    }
});
