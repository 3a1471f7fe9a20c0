//! The JSON config file: parsed on every request (an edited file takes
//! effect at once), validated, with every error naming the key and the file.
//!
//! The pure-Java Dragonfly endpoint's format (`addr`, `header`, `filter`,
//! `object_storage`) is read as is; everything else is optional. Each field
//! has one `default_*` function used by serde and by `Default` alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

pub const CONFIG_ENV: &str = "DRAGONFLY_ENDPOINT_CONFIG";
pub const CONFIG_DIR_ENV: &str = "DRAGONFLY_ENDPOINT_CONFIG_DIR";
pub const CONFIG_PROPERTY: &str = "dragonfly_endpoint_config";
pub const CONFIG_DIR_PROPERTY: &str = "dragonfly_endpoint_config_dir";
pub const DEFAULT_CONFIG_PATH: &str = "/etc/dragonfly-endpoint/config.json";
pub const PROXY_USER_ENV: &str = "DRAGONFLY_PROXY_USER";
pub const PROXY_PASSWORD_ENV: &str = "DRAGONFLY_PROXY_PASSWORD";
/// Config files are small; a bigger one is a mistake (or an attack).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The config as read from the file, plus where it came from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Dragonfly peer's HTTP proxy.
    #[serde(default = "default_addr")]
    pub addr: String,
    /// Extra headers sent to the proxy with every download.
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    /// Extra query parameters Dragonfly leaves out of the task ID.
    #[serde(default)]
    pub filter: Vec<String>,
    pub object_storage: ObjectStorageConfig,
    /// Which archives a request without `model` pulls: `all`, a name, or a
    /// comma-separated list.
    #[serde(default)]
    pub load_model: Option<String>,
    #[serde(default = "default_min_worker")]
    pub min_worker: u32,
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    #[serde(default = "default_max_batch_delay")]
    pub max_batch_delay: u32,
    #[serde(default = "default_response_timeout")]
    pub response_timeout: u32,
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout: u32,
    #[serde(default)]
    pub handler: Option<String>,
    #[serde(default)]
    pub runtime: Option<String>,
    #[serde(default = "default_true")]
    pub synchronous: bool,
    /// What TorchServe is given to register: the archive unpacked into a
    /// directory (no unzip on TorchServe's side) or the `.mar` itself.
    #[serde(default = "default_register_as")]
    pub register_as: RegisterAs,
    #[serde(default)]
    pub download: DownloadConfig,
    /// Where this config was read from (not a key of the file).
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStorageConfig {
    #[serde(rename = "type", default = "default_storage_type")]
    pub kind: String,
    #[serde(default)]
    pub bucket_name: Option<String>,
    /// Key prefix that `model` names are relative to.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store; unset for AWS S3.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style URLs; defaults to true when `endpoint` is set.
    #[serde(default)]
    pub force_path_style: Option<bool>,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub secret_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
    #[serde(default = "default_presign_expiry_secs")]
    pub presign_expiry_secs: u64,
}

impl ObjectStorageConfig {
    pub fn path_style(&self) -> bool {
        self.force_path_style.unwrap_or(self.endpoint.is_some())
    }
}

/// Register options used when the request does not give them (top-level
/// keys of the file, as the Java endpoint had `min_worker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisterDefaults {
    pub min_worker: u32,
    pub batch_size: u32,
    pub max_batch_delay: u32,
    pub response_timeout: u32,
    pub startup_timeout: u32,
    pub handler: Option<String>,
    pub runtime: Option<String>,
    pub synchronous: bool,
}

impl Default for RegisterDefaults {
    fn default() -> Self {
        RegisterDefaults {
            min_worker: default_min_worker(),
            batch_size: default_batch_size(),
            max_batch_delay: default_max_batch_delay(),
            response_timeout: default_response_timeout(),
            startup_timeout: default_startup_timeout(),
            handler: None,
            runtime: None,
            synchronous: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// A pull fails when the peer cannot be reached.
    None,
    /// A pull goes straight to the object store when the peer cannot be
    /// reached.
    Source,
}

/// The form in which a pulled archive is registered with TorchServe. The
/// `.mar` stays in the model store either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterAs {
    /// Unpacked while it downloads, into a hidden directory of the model
    /// store kept per archive version; TorchServe loads it as it is.
    Directory,
    /// The `.mar`: TorchServe unzips it (on one core) at registration.
    Mar,
}

/// Whether a pull may ask the peer to hard-link a finished task into the
/// model store (`X-Dragonfly-Output-Path`) instead of streaming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HardLink {
    /// On when `addr` is a loopback address: the peer then shares this
    /// host's filesystem, so the path it is given means the same file.
    Auto,
    /// On: the peer sees the model store at the same path (a shared volume).
    On,
    Off,
}

/// How downloads run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadConfig {
    #[serde(default = "default_fallback")]
    pub fallback: Fallback,
    /// Archives pulled at once by one request.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Retries of a broken transfer (resumed with a Range request).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First retry delay; doubled on each further retry.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// A transfer that receives nothing for this long is broken.
    #[serde(default = "default_read_timeout_secs")]
    pub read_timeout_secs: u64,
    /// Check the MD5 against the object's ETag when it is one.
    #[serde(default = "default_true")]
    pub verify_checksum: bool,
    /// Take an archive the local peer already has by hard link.
    #[serde(default = "default_hard_link")]
    pub hard_link: HardLink,
    /// Verify TLS certificates of the proxy and object store.
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    /// A PEM file of extra CA certificates to trust, typically the CA that
    /// dfdaemon's proxy signs intercepted HTTPS with (`proxy.server.caCert`).
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Proxy basic auth, filled from the environment only.
    #[serde(skip)]
    pub proxy_basic_auth: Option<(String, String)>,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            fallback: default_fallback(),
            concurrency: default_concurrency(),
            retries: default_retries(),
            retry_backoff_ms: default_retry_backoff_ms(),
            connect_timeout_secs: default_connect_timeout_secs(),
            read_timeout_secs: default_read_timeout_secs(),
            verify_checksum: true,
            hard_link: default_hard_link(),
            tls_verify: true,
            ca_cert: None,
            proxy_basic_auth: None,
        }
    }
}

fn default_addr() -> String {
    "http://127.0.0.1:4001".into()
}
fn default_storage_type() -> String {
    "s3".into()
}
fn default_presign_expiry_secs() -> u64 {
    3600
}
fn default_min_worker() -> u32 {
    1
}
fn default_batch_size() -> u32 {
    1
}
fn default_max_batch_delay() -> u32 {
    100
}
fn default_response_timeout() -> u32 {
    120
}
fn default_startup_timeout() -> u32 {
    120
}
fn default_true() -> bool {
    true
}
fn default_register_as() -> RegisterAs {
    RegisterAs::Directory
}
fn default_hard_link() -> HardLink {
    HardLink::Auto
}
fn default_fallback() -> Fallback {
    Fallback::None
}
fn default_concurrency() -> usize {
    4
}
fn default_retries() -> u32 {
    3
}
fn default_retry_backoff_ms() -> u64 {
    500
}
fn default_connect_timeout_secs() -> u64 {
    10
}
fn default_read_timeout_secs() -> u64 {
    60
}

/// Storage types this build can read from.
const STORAGE_TYPES: &[&str] = &["s3"];

impl Config {
    /// Parses and validates config text; `source` is named in errors.
    pub fn parse(text: &[u8], source: &Path) -> Result<Config> {
        let fail = |reason: String| CoreError::Config {
            path: source.to_path_buf(),
            reason,
        };
        let mut de = serde_json::Deserializer::from_slice(text);
        let mut config: Config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            if key == "." || key.is_empty() {
                fail(inner.to_string())
            } else {
                fail(format!("key '{key}': {inner}"))
            }
        })?;
        config.source = source.to_path_buf();
        config.validate().map_err(fail)?;
        Ok(config)
    }

    pub fn register_defaults(&self) -> RegisterDefaults {
        RegisterDefaults {
            min_worker: self.min_worker,
            batch_size: self.batch_size,
            max_batch_delay: self.max_batch_delay,
            response_timeout: self.response_timeout,
            startup_timeout: self.startup_timeout,
            handler: self.handler.clone(),
            runtime: self.runtime.clone(),
            synchronous: self.synchronous,
        }
    }

    /// Reads the file, then fills what comes from the environment.
    pub fn load(path: &Path) -> Result<Config> {
        let fail = |reason: String| CoreError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| fail(describe_io(&e)))?;
        if meta.is_dir() {
            return Err(fail("is a directory, not a config file".into()));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(fail(format!("is larger than {MAX_CONFIG_BYTES} bytes")));
        }
        let text = std::fs::read(path).map_err(|e| fail(describe_io(&e)))?;
        let mut config = Config::parse(&text, path)?;
        config.apply_env(|name| std::env::var(name).ok());
        Ok(config)
    }

    /// Takes the proxy's basic-auth credentials from the environment, so
    /// they need not sit in a file.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let (Some(user), Some(password)) = (var(PROXY_USER_ENV), var(PROXY_PASSWORD_ENV)) {
            self.download.proxy_basic_auth = Some((user, password));
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let addr = url::Url::parse(&self.addr)
            .map_err(|e| format!("key 'addr': {:?} is not a URL: {e}", self.addr))?;
        if !matches!(addr.scheme(), "http" | "https") || addr.host_str().is_none() {
            return Err(format!(
                "key 'addr': {:?} must be an http:// or https:// URL of the Dragonfly peer's proxy",
                self.addr
            ));
        }
        let kind = &self.object_storage.kind;
        if !STORAGE_TYPES.contains(&kind.as_str()) {
            return Err(format!(
                "key 'object_storage.type': unknown storage type {kind:?}; supported: {}",
                STORAGE_TYPES.join(", ")
            ));
        }
        if let Some(endpoint) = &self.object_storage.endpoint {
            url::Url::parse(endpoint).map_err(|e| {
                format!("key 'object_storage.endpoint': {endpoint:?} is not a URL: {e}")
            })?;
        }
        if self.object_storage.access_key.is_some() != self.object_storage.secret_key.is_some() {
            return Err(
                "keys 'object_storage.access_key' and 'object_storage.secret_key' must be given together (or both left out to use the AWS credential chain)"
                    .into(),
            );
        }
        if !(1..=7 * 24 * 3600).contains(&self.object_storage.presign_expiry_secs) {
            return Err("key 'object_storage.presign_expiry_secs': must be 1..=604800".into());
        }
        if self.batch_size == 0 {
            return Err("key 'batch_size': must be at least 1".into());
        }
        if !(1..=64).contains(&self.download.concurrency) {
            return Err("key 'download.concurrency': must be 1..=64".into());
        }
        if self.download.retries > 20 {
            return Err("key 'download.retries': must be at most 20".into());
        }
        if self.download.connect_timeout_secs == 0 || self.download.read_timeout_secs == 0 {
            return Err("keys 'download.*_timeout_secs': must be at least 1".into());
        }
        for name in self.header.keys() {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("key 'header': {name:?} is not a valid header name"))?;
        }
        Ok(())
    }

    /// Whether pulls ask the peer to hard-link finished tasks into place.
    pub fn hard_link_active(&self) -> bool {
        match self.download.hard_link {
            HardLink::On => true,
            HardLink::Off => false,
            HardLink::Auto => url::Url::parse(&self.addr)
                .ok()
                .and_then(|addr| match addr.host()? {
                    url::Host::Domain(name) => Some(name.eq_ignore_ascii_case("localhost")),
                    url::Host::Ipv4(ip) => Some(ip.is_loopback()),
                    url::Host::Ipv6(ip) => Some(ip.is_loopback()),
                })
                .unwrap_or(false),
        }
    }

    /// The PEM of `download.ca_cert`, trusted in addition to the system
    /// roots by every TLS connection of a pull (proxy, objects, S3 API).
    pub fn ca_cert_pem(&self) -> Result<Option<Vec<u8>>> {
        let Some(path) = &self.download.ca_cert else {
            return Ok(None);
        };
        let fail = |reason: String| CoreError::Config {
            path: self.source.clone(),
            reason: format!("key 'download.ca_cert': {}: {reason}", path.display()),
        };
        let pem = std::fs::read(path).map_err(|e| fail(describe_io(&e)))?;
        if !pem
            .windows(b"-----BEGIN CERTIFICATE-----".len())
            .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        {
            return Err(fail("holds no PEM certificate".into()));
        }
        Ok(Some(pem))
    }

    /// The config as `GET /dragonfly` shows it: secrets masked.
    pub fn redacted(&self) -> serde_json::Value {
        let mask = |v: &Option<String>| v.as_ref().map(|_| "***");
        let storage = &self.object_storage;
        let headers: BTreeMap<&String, &str> = self
            .header
            .iter()
            .map(|(k, v)| {
                let secret = k.eq_ignore_ascii_case("authorization")
                    || k.to_ascii_lowercase().contains("token")
                    || k.eq_ignore_ascii_case("proxy-authorization");
                (k, if secret { "***" } else { v.as_str() })
            })
            .collect();
        serde_json::json!({
            "source": self.source,
            "addr": self.addr,
            "header": headers,
            "filter": self.filter,
            "object_storage": {
                "type": storage.kind,
                "bucket_name": storage.bucket_name,
                "prefix": storage.prefix,
                "region": storage.region,
                "endpoint": storage.endpoint,
                "force_path_style": storage.path_style(),
                "access_key": mask(&storage.access_key),
                "secret_key": mask(&storage.secret_key),
                "session_token": mask(&storage.session_token),
                "credentials": if storage.access_key.is_some() { "config file" } else { "AWS credential chain" },
                "presign_expiry_secs": storage.presign_expiry_secs,
            },
            "load_model": self.load_model,
            "register": self.register_defaults(),
            "register_as": self.register_as,
            "download": {
                "fallback": self.download.fallback,
                "concurrency": self.download.concurrency,
                "retries": self.download.retries,
                "retry_backoff_ms": self.download.retry_backoff_ms,
                "connect_timeout_secs": self.download.connect_timeout_secs,
                "read_timeout_secs": self.download.read_timeout_secs,
                "verify_checksum": self.download.verify_checksum,
                "hard_link": self.download.hard_link,
                "hard_link_active": self.hard_link_active(),
                "tls_verify": self.download.tls_verify,
                "ca_cert": self.download.ca_cert,
                "proxy_basic_auth": self.download.proxy_basic_auth.as_ref().map(|_| "*** (from environment)"),
            },
        })
    }
}

fn describe_io(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => err.to_string(),
    }
}

/// Where the config path and the allowed config directory come from.
#[derive(Debug, Clone, Default)]
pub struct ConfigLocation {
    /// `DRAGONFLY_ENDPOINT_CONFIG`.
    pub env_path: Option<String>,
    /// `DRAGONFLY_ENDPOINT_CONFIG_DIR`.
    pub env_dir: Option<String>,
    /// `dragonfly_endpoint_config` in TorchServe's config.properties.
    pub property_path: Option<String>,
    /// `dragonfly_endpoint_config_dir` in TorchServe's config.properties.
    pub property_dir: Option<String>,
}

impl ConfigLocation {
    pub fn from_env(properties: &BTreeMap<String, String>) -> Self {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        ConfigLocation {
            env_path: non_empty(std::env::var(CONFIG_ENV).ok()),
            env_dir: non_empty(std::env::var(CONFIG_DIR_ENV).ok()),
            property_path: non_empty(properties.get(CONFIG_PROPERTY).cloned()),
            property_dir: non_empty(properties.get(CONFIG_DIR_PROPERTY).cloned()),
        }
    }

    /// The config used when a request names none: environment, then
    /// config.properties, then the built-in path.
    pub fn default_path(&self) -> PathBuf {
        self.env_path
            .as_deref()
            .or(self.property_path.as_deref())
            .unwrap_or(DEFAULT_CONFIG_PATH)
            .into()
    }

    /// The directory a request's `config` parameter must point into: set
    /// explicitly, else the directory of the default config.
    pub fn allowed_dir(&self) -> PathBuf {
        match self.env_dir.as_deref().or(self.property_dir.as_deref()) {
            Some(dir) => dir.into(),
            None => self
                .default_path()
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/")),
        }
    }

    /// Resolves the config path of a request. A path from the request must
    /// resolve (symlinks included) inside the allowed directory: a request
    /// must not make the plugin read arbitrary files.
    pub fn resolve(&self, requested: Option<&str>) -> Result<PathBuf> {
        let Some(requested) = requested else {
            return Ok(self.default_path());
        };
        if requested.is_empty() || requested.contains('\0') {
            return Err(CoreError::invalid("config", "must be a file path"));
        }
        let requested = PathBuf::from(requested);
        if !requested.is_absolute() {
            return Err(CoreError::invalid(
                "config",
                format!("{} is not an absolute path", requested.display()),
            ));
        }
        let allowed = self.allowed_dir();
        let allowed_real = allowed
            .canonicalize()
            .map_err(|_| CoreError::ConfigPathNotAllowed {
                path: requested.clone(),
                allowed: allowed.clone(),
            })?;
        match requested.canonicalize() {
            Ok(real) if real.starts_with(&allowed_real) => Ok(real),
            Ok(_) => Err(CoreError::ConfigPathNotAllowed {
                path: requested,
                allowed,
            }),
            // A missing file inside the allowed directory is the user's typo;
            // outside it, say nothing about what exists there.
            Err(_) => match requested.parent().and_then(|p| p.canonicalize().ok()) {
                Some(parent) if parent.starts_with(&allowed_real) => Err(CoreError::Config {
                    path: requested,
                    reason: "no such file".into(),
                }),
                _ => Err(CoreError::ConfigPathNotAllowed {
                    path: requested,
                    allowed,
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(config.register_defaults(), RegisterDefaults::default());
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
        assert_eq!(config.register_defaults().min_worker, 2);
        assert_eq!(config.register_defaults().batch_size, 4);
        assert!(!config.register_defaults().synchronous);
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
            reason(r#"{"object_storage": {}, "download": {"concurrency": 0}}"#)
                .contains("concurrency")
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
    fn config_path_must_stay_in_allowed_dir() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let inside = allowed.path().join("c.json");
        std::fs::write(&inside, "{}").unwrap();
        let secret = outside.path().join("secret.json");
        std::fs::write(&secret, "{}").unwrap();
        let link = allowed.path().join("link.json");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let location = ConfigLocation {
            env_path: Some(allowed.path().join("default.json").display().to_string()),
            ..Default::default()
        };
        let status = |p: &Path| {
            location
                .resolve(Some(p.to_str().unwrap()))
                .map_err(|e| e.status())
        };
        assert!(status(&inside).is_ok());
        assert_eq!(status(&secret), Err(403));
        assert_eq!(status(&link), Err(403));
        assert_eq!(status(&allowed.path().join("../x/../etc")), Err(403));
        assert_eq!(status(&allowed.path().join("missing.json")), Err(400));
        assert_eq!(
            location
                .resolve(Some("relative.json"))
                .map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(
            location.resolve(None).unwrap(),
            allowed.path().join("default.json")
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
}
