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

mod download;
mod location;
mod preheat;
mod redact;
mod storage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::register::RegisterOptions;
use crate::secret::{MaskedUrl, Secret};

pub use download::{DownloadConfig, Fallback, HardLink, HttpsViaPeer, UnpackConfig};
pub use location::{
    ConfigLocation, CONFIG_DIR_ENV, CONFIG_DIR_PROPERTY, CONFIG_ENV, CONFIG_PROPERTY,
    DEFAULT_CONFIG_PATH,
};
pub use preheat::{PreheatConfig, PreheatScope, MANAGER_TOKEN_ENV};
pub use storage::{ObjectStorageConfig, StoreKind};

pub const PROXY_USER_ENV: &str = "DRAGONFLY_PROXY_USER";
pub const PROXY_PASSWORD_ENV: &str = "DRAGONFLY_PROXY_PASSWORD";
/// Config files are small; a bigger one is a mistake (or an attack).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The config as read from the file, plus where it came from. Every
/// credential in it is a [`Secret`], so `{:?}` of a config shows none.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// The Dragonfly peer's HTTP proxy.
    #[serde(default = "default_addr")]
    pub addr: MaskedUrl,
    /// Extra headers sent to the proxy with every download; their values
    /// may be credentials (`Authorization`).
    #[serde(default)]
    pub header: BTreeMap<String, Secret<String>>,
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
    #[serde(default)]
    pub unpack: UnpackConfig,
    /// The Dragonfly manager, for preheat jobs.
    #[serde(default)]
    pub preheat: PreheatConfig,
    /// Keys no field took (serde cannot deny unknown fields beside a
    /// flattened one): refused by `validate`.
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_json::Value>,
    /// Where this config was read from (not a key of the file).
    #[serde(skip)]
    pub source: PathBuf,
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

fn default_addr() -> MaskedUrl {
    MaskedUrl::new("http://127.0.0.1:4001")
}
fn default_register_as() -> RegisterAs {
    RegisterAs::Directory
}

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
        config.object_storage.source = source.to_path_buf();
        config.validate().map_err(fail)?;
        Ok(config)
    }

    /// Reads the file, then fills what comes from the environment. Only a
    /// regular file is read, and at most [`MAX_CONFIG_BYTES`] of it: a FIFO,
    /// a device or a `/proc` file (whose size says 0) must not hang or
    /// exhaust the JVM.
    pub fn load(path: &Path) -> Result<Config> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let fail = |reason: String| CoreError::Config {
            path: path.to_path_buf(),
            reason,
        };
        // Non-blocking: opening a FIFO without a writer returns at once.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| fail(describe_io(&e)))?;
        let meta = file.metadata().map_err(|e| fail(describe_io(&e)))?;
        if meta.is_dir() {
            return Err(fail("is a directory, not a config file".into()));
        }
        if !meta.is_file() {
            return Err(fail("is not a regular file".into()));
        }
        let mut text = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|e| fail(describe_io(&e)))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(fail(format!("is larger than {MAX_CONFIG_BYTES} bytes")));
        }
        let mut config = Config::parse(&text, path)?;
        config.apply_env(|name| std::env::var(name).ok());
        Ok(config)
    }

    /// Takes the proxy's basic-auth credentials from the environment, so
    /// they need not sit in a file.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let (Some(user), Some(password)) = (var(PROXY_USER_ENV), var(PROXY_PASSWORD_ENV)) {
            self.download.proxy_basic_auth = Some(Secret::new((user, password)));
        }
        if self.preheat.token.is_none() {
            self.preheat.token = var(MANAGER_TOKEN_ENV).map(Secret::new);
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if let Some(key) = self.unknown.keys().next() {
            return Err(format!("key '{key}': unknown key"));
        }
        let addr = url::Url::parse(self.addr.expose())
            .map_err(|e| format!("key 'addr': not a URL: {e}"))?;
        if !matches!(addr.scheme(), "http" | "https") || addr.host_str().is_none() {
            return Err(format!(
                "key 'addr': {:?} must be an http:// or https:// URL of the Dragonfly peer's proxy",
                self.addr.shown()
            ));
        }
        let storage = &self.object_storage;
        storage.validate()?;
        let download = &self.download;
        for (key, value, range) in [
            (
                "object_storage.presign_expiry_secs",
                storage.presign_expiry_secs,
                1..=604_800,
            ),
            (
                "object_storage.operation_timeout_secs",
                storage.operation_timeout_secs,
                1..=3600,
            ),
            ("download.concurrency", download.concurrency as u64, 1..=64),
            (
                "download.file_concurrency",
                download.file_concurrency as u64,
                1..=64,
            ),
            ("download.retries", u64::from(download.retries), 0..=20),
            (
                "download.retry_backoff_ms",
                download.retry_backoff_ms,
                0..=60_000,
            ),
            (
                "download.connect_timeout_secs",
                download.connect_timeout_secs,
                1..=3600,
            ),
            (
                "download.read_timeout_secs",
                download.read_timeout_secs,
                1..=3600,
            ),
            (
                "download.lock_wait_secs",
                download.lock_wait_secs,
                1..=86_400,
            ),
            (
                "unpack.max_entries",
                self.unpack.max_entries,
                1..=10_000_000,
            ),
            ("unpack.max_bytes", self.unpack.max_bytes, 1..=u64::MAX),
            (
                "preheat.timeout_secs",
                self.preheat.timeout_secs,
                60..=86_400,
            ),
            (
                "preheat.count",
                self.preheat.count.map_or(1, u64::from),
                1..=200,
            ),
            (
                "preheat.percentage",
                self.preheat.percentage.map_or(1, u64::from),
                1..=100,
            ),
        ] {
            if !range.contains(&value) {
                return Err(format!(
                    "key '{key}': {value} is out of range {}..={}",
                    range.start(),
                    range.end()
                ));
            }
        }
        if let Some(total) = download.total_timeout_secs {
            if !(1..=604_800).contains(&total) {
                return Err(format!(
                    "key 'download.total_timeout_secs': {total} is out of range 1..=604800"
                ));
            }
        }
        if let Some(manager) = &self.preheat.manager {
            let url = url::Url::parse(manager.expose())
                .map_err(|e| format!("key 'preheat.manager': not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(
                    "key 'preheat.manager': must be the manager's http:// or https:// REST address"
                        .into(),
                );
            }
        }
        self.register.validate()?;
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
            HardLink::Auto => url::Url::parse(self.addr.expose())
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
