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
    assert_eq!(config.addr.expose(), "http://127.0.0.1:65001");
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
    assert_eq!(config.addr.expose(), "http://127.0.0.1:4001");
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
        r#"{"addr": "http://peeruser:ADDRSECRET@127.0.0.1:4001",
            "header": {"Authorization": "Bearer xyz", "X-Custom": "CUSTOMSECRET", "X-Dragonfly-Tag": "models"},
            "object_storage": {"access_key": "AKIDSECRET", "secret_key": "SKSECRET", "session_token": "TOKSECRET",
                               "endpoint": "http://s3user:ENDPOINTSECRET@127.0.0.1:8333"}}"#,
    )
    .unwrap();
    config.apply_env(|name| match name {
        PROXY_USER_ENV => Some("user".into()),
        PROXY_PASSWORD_ENV => Some("PWSECRET".into()),
        _ => None,
    });
    let secrets = [
        "AKIDSECRET",
        "SKSECRET",
        "TOKSECRET",
        "PWSECRET",
        "xyz",
        "CUSTOMSECRET",
        "ADDRSECRET",
        "ENDPOINTSECRET",
    ];
    let text = config.redacted().to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(
        text.contains("\"models\""),
        "a safe header was masked: {text}"
    );
    // By type: no debug print of the config shows a credential either.
    let debug = format!("{config:?}");
    for secret in secrets {
        assert!(!debug.contains(secret), "{secret} leaked by Debug: {debug}");
    }
    assert!(config.download.proxy_basic_auth.is_some());
}

#[test]
fn numeric_keys_have_bounds() {
    for (key, value) in [
        ("download\": {\"retry_backoff_ms", "18446744073709551615"),
        ("download\": {\"read_timeout_secs", "0"),
        ("download\": {\"connect_timeout_secs", "100000"),
        ("download\": {\"lock_wait_secs", "0"),
        ("download\": {\"total_timeout_secs", "0"),
        ("unpack\": {\"max_entries", "0"),
    ] {
        let text = format!(r#"{{"object_storage": {{}}, "{key}": {value}}}}}"#);
        let reason = reason(&text);
        let leaf = key.rsplit('"').next().unwrap();
        assert!(reason.contains(leaf), "{text}: {reason}");
    }
    let big = reason(r#"{"object_storage": {}, "initial_workers": 3000000000}"#);
    assert!(
        big.contains("initial_workers") && big.contains("Java int"),
        "{big}"
    );
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

#[test]
fn load_reads_only_regular_files_and_a_bounded_amount() {
    let dir = tempfile::tempdir().unwrap();
    // A FIFO nobody writes to: opening it must not block.
    let fifo = dir.path().join("fifo.json");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        let err = Config::load(path).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert_eq!(err.status(), 400);
    }
    // procfs says "regular file, 0 bytes": the read is bounded, and the
    // answer a 400 like any file that is not a config.
    let err = Config::load(Path::new("/proc/self/maps")).unwrap_err();
    assert_eq!(err.status(), 400, "{err}");
    let huge = dir.path().join("huge.json");
    std::fs::write(&huge, vec![b' '; (MAX_CONFIG_BYTES + 10) as usize]).unwrap();
    assert!(Config::load(&huge)
        .unwrap_err()
        .to_string()
        .contains("larger than"));
}

/// docs/migrating.md shows the Java endpoint's `gcs`, `oss` and `abs`
/// configs: each must be accepted as it is written there.
#[test]
fn the_java_endpoint_configs_in_the_migration_guide_are_accepted() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/migrating.md"),
    )
    .unwrap();
    let blocks: Vec<&str> = guide
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    let mut kinds = Vec::new();
    for block in &blocks {
        let config = Config::parse(
            block.as_bytes(),
            Path::new("/etc/dragonfly-endpoint/config.json"),
        )
        .unwrap_or_else(|e| panic!("{block}: {e}"));
        kinds.push(config.object_storage.kind.name());
    }
    for kind in ["gcs", "oss", "abs"] {
        assert!(
            kinds.contains(&kind),
            "no {kind} config in docs/migrating.md: {kinds:?}"
        );
    }
}
