//! The JSON config file: parsed on every request (an edited file takes
//! effect at once), validated, with every error naming the key and the file.
//! Where the file may come from is [`location`]; what `GET /dragonfly`
//! shows of it is [`redact`].
//!
//! The pure-Java Dragonfly endpoint's format (`addr`, `header`, `filter`,
//! `object_storage`, `min_worker`) is read as is; everything else is
//! optional. Each field has one `default_*` function used by serde and by
//! `Default` alike.
//!
//! May import: `error`, `register::options`.

mod location;
mod redact;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::register::RegisterOptions;

pub use location::{
    ConfigLocation, CONFIG_DIR_ENV, CONFIG_DIR_PROPERTY, CONFIG_ENV, CONFIG_PROPERTY,
    DEFAULT_CONFIG_PATH,
};

pub const PROXY_USER_ENV: &str = "DRAGONFLY_PROXY_USER";
pub const PROXY_PASSWORD_ENV: &str = "DRAGONFLY_PROXY_PASSWORD";
/// Config files are small; a bigger one is a mistake (or an attack).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The config as read from the file, plus where it came from.
#[derive(Debug, Clone, Deserialize)]
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
    /// Register options used when the request does not give them (top-level
    /// keys of the file, as the Java endpoint had `min_worker`).
    #[serde(flatten)]
    pub register: RegisterOptions,
    /// What TorchServe is given to register: the archive unpacked into a
    /// directory (no unzip on TorchServe's side) or the `.mar` itself.
    #[serde(default = "default_register_as")]
    pub register_as: RegisterAs,
    #[serde(default)]
    pub download: DownloadConfig,
    /// Keys no field took (serde cannot deny unknown fields beside a
    /// flattened one): refused by `validate`.
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_json::Value>,
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
            verify_checksum: default_true(),
            hard_link: default_hard_link(),
            tls_verify: default_true(),
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
                match flattened_key_at_fault(text) {
                    Some(key) => fail(format!("key '{key}': {inner}")),
                    None => fail(inner.to_string()),
                }
            } else {
                fail(format!("key '{key}': {inner}"))
            }
        })?;
        config.source = source.to_path_buf();
        config.validate().map_err(fail)?;
        Ok(config)
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
        if let Some(key) = self.unknown.keys().next() {
            return Err(format!("key '{key}': unknown key"));
        }
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
        self.register.validate()?;
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
}

/// A flattened field's error carries no key: find the top-level key whose
/// value alone fails to deserialize as the register options.
fn flattened_key_at_fault(text: &[u8]) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(text).ok()?;
    map.into_iter().find_map(|(key, value)| {
        let alone = serde_json::Value::Object([(key.clone(), value)].into_iter().collect());
        serde_json::from_value::<RegisterOptions>(alone)
            .is_err()
            .then_some(key)
    })
}

fn describe_io(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests;
