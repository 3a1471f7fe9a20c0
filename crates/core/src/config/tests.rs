//! Unit tests of config parsing and validation.

use super::*;

fn parse(text: &str) -> Result<Config> {
    Config::parse(text.as_bytes(), Path::new("/etc/df/config.json"))
}

fn reason(text: &str) -> String {
    match parse(text) {
        Err(CoreError::Config { path, reason }) => {
            assert_eq!(path, Path::new("/etc/df/config.json"));
            reason
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn java_endpoint_format_is_read_as_is() {
    let config = parse(
        r#"{
          "addr": "http://127.0.0.1:65001",
          "header": {"X-Dragonfly-Tag": "models"},
          "filter": ["Expires", "Signature"],
          "object_storage": {
            "type": "s3",
            "bucket_name": "models",
            "region": "us-west-2",
            "endpoint": "http://127.0.0.1:9000",
            "access_key": "AK",
            "secret_key": "SK"
          }
        }"#,
    )
    .unwrap();
    assert_eq!(config.addr, "http://127.0.0.1:65001");
    assert_eq!(config.object_storage.bucket_name.as_deref(), Some("models"));
    assert!(config.object_storage.path_style());
    assert_eq!(config.filter, vec!["Expires", "Signature"]);
    assert_eq!(config.register, RegisterOptions::default());
    assert_eq!(config.download.concurrency, 4);
}

#[test]
fn extended_keys_are_read() {
    let config = parse(
        r#"{"object_storage": {"bucket_name": "b", "prefix": "p/"},
            "load_model": "a.mar,b.mar", "min_worker": 2, "batch_size": 4,
            "handler": "image_classifier", "synchronous": false,
            "download": {"fallback": "source", "concurrency": 8, "retries": 1}}"#,
    )
    .unwrap();
    assert_eq!(config.addr, "http://127.0.0.1:4001");
    assert_eq!(config.register.initial_workers, 2);
    assert_eq!(config.register.batch_size, 4);
    assert!(!config.register.synchronous);
    assert_eq!(config.download.fallback, Fallback::Source);
    assert_eq!(config.object_storage.prefix, "p/");
    assert!(!config.object_storage.path_style());
}

#[test]
fn errors_name_the_key() {
    assert!(reason(r#"{"object_storage": {}, "bogus": 1}"#).contains("bogus"));
    assert!(reason(r#"{"object_storage": {"bucket": "x"}}"#).contains("object_storage"));
    let wrong_type = reason(r#"{"object_storage": {}, "min_worker": "two"}"#);
    assert!(wrong_type.contains("min_worker"), "{wrong_type}");
    let nested = reason(r#"{"object_storage": {}, "download": {"retries": "x"}}"#);
    assert!(nested.contains("download.retries"), "{nested}");
    assert!(reason(r#"{"object_storage": {"type": "ftp"}}"#).contains("object_storage.type"));
    assert!(reason(r#"{"addr": "not a url", "object_storage": {}}"#).contains("'addr'"));
    assert!(reason(r#"{"object_storage": {"access_key": "a"}}"#).contains("secret_key"));
    assert!(
        reason(r#"{"object_storage": {}, "download": {"concurrency": 0}}"#).contains("concurrency")
    );
    assert!(reason("{not json").contains("key"));
    assert!(reason(r#"{}"#).contains("object_storage"));
}

#[test]
fn redacted_config_masks_secrets() {
    let mut config = parse(
        r#"{"header": {"Authorization": "Bearer xyz"},
            "object_storage": {"access_key": "AKIDSECRET", "secret_key": "SKSECRET", "session_token": "TOKSECRET"}}"#,
    )
    .unwrap();
    config.apply_env(|name| match name {
        PROXY_USER_ENV => Some("user".into()),
        PROXY_PASSWORD_ENV => Some("PWSECRET".into()),
        _ => None,
    });
    let text = config.redacted().to_string();
    for secret in ["AKIDSECRET", "SKSECRET", "TOKSECRET", "PWSECRET", "xyz"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(config.download.proxy_basic_auth.is_some());
}

#[test]
fn hard_link_is_automatic_only_for_a_local_peer() {
    let with = |addr: &str, mode: &str| {
        parse(&format!(
            r#"{{"addr": "{addr}", "object_storage": {{}}, "download": {{"hard_link": "{mode}"}}}}"#
        ))
        .unwrap()
        .hard_link_active()
    };
    assert!(with("http://127.0.0.1:4001", "auto"));
    assert!(with("http://localhost:4001", "auto"));
    assert!(with("http://[::1]:4001", "auto"));
    assert!(!with("http://10.0.0.7:4001", "auto"));
    assert!(!with("http://dfdaemon.svc:4001", "auto"));
    assert!(with("http://10.0.0.7:4001", "on"));
    assert!(!with("http://127.0.0.1:4001", "off"));
    assert!(
        reason(r#"{"object_storage": {}, "download": {"hard_link": "yes"}}"#)
            .contains("download.hard_link")
    );
}

#[test]
fn load_refuses_directories_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let err = Config::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
    let err = Config::load(&dir.path().join("none.json")).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
}
