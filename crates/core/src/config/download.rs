//! How downloads run (`download`) and what an archive may unpack to
//! (`unpack`): the keys, their defaults, and the modes they choose between.
//! Bounds are checked with every other number in `Config::validate`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// A pull fails when the peer cannot be reached.
    None,
    /// A pull goes straight to the object store when the peer cannot be
    /// reached.
    Source,
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

/// How a presigned `https://` URL reaches the store through the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpsViaPeer {
    /// Asked as `http://` of the same host and port; dfdaemon's proxy rule
    /// with `useTLS: true` for the store's host fetches it over TLS. One
    /// dfdaemon rule, no CA anywhere, one TLS leg.
    TlsRule,
    /// `CONNECT` through the proxy, which intercepts it with its own CA
    /// (`proxy.server.caCert`, trusted through `ca_cert`).
    Tunnel,
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
    /// Files of one directory model fetched at once (each its own task).
    #[serde(default = "default_concurrency")]
    pub file_concurrency: usize,
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
    /// How `https://` stores are reached through the peer.
    #[serde(default = "default_https_via_peer")]
    pub https_via_peer: HttpsViaPeer,
    /// A whole model's pull (stat, download, unpack, registration) that
    /// takes longer fails with 504; unset: no limit.
    #[serde(default)]
    pub total_timeout_secs: Option<u64>,
    /// A pull that waits this long for another pull of the same file (in
    /// this or another process) gives up with 409.
    #[serde(default = "default_lock_wait_secs")]
    pub lock_wait_secs: u64,
    /// Proxy basic auth, filled from the environment only.
    #[serde(skip)]
    pub proxy_basic_auth: Option<Secret<(String, String)>>,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            fallback: default_fallback(),
            concurrency: default_concurrency(),
            file_concurrency: default_concurrency(),
            retries: default_retries(),
            retry_backoff_ms: default_retry_backoff_ms(),
            connect_timeout_secs: default_connect_timeout_secs(),
            read_timeout_secs: default_read_timeout_secs(),
            verify_checksum: default_true(),
            hard_link: default_hard_link(),
            tls_verify: default_true(),
            ca_cert: None,
            https_via_peer: default_https_via_peer(),
            total_timeout_secs: None,
            lock_wait_secs: default_lock_wait_secs(),
            proxy_basic_auth: None,
        }
    }
}

fn default_https_via_peer() -> HttpsViaPeer {
    HttpsViaPeer::TlsRule
}

/// What an archive may unpack to: a deflate bomb or a million tiny entries
/// must not fill the disk TorchServe shares.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnpackConfig {
    /// Total bytes of all entries of one archive.
    #[serde(default = "default_max_unpacked_bytes")]
    pub max_bytes: u64,
    /// Entries of one archive.
    #[serde(default = "default_max_entries")]
    pub max_entries: u64,
}

impl Default for UnpackConfig {
    fn default() -> Self {
        UnpackConfig {
            max_bytes: default_max_unpacked_bytes(),
            max_entries: default_max_entries(),
        }
    }
}

fn default_lock_wait_secs() -> u64 {
    600
}
fn default_max_unpacked_bytes() -> u64 {
    256 << 30
}
fn default_max_entries() -> u64 {
    200_000
}
fn default_true() -> bool {
    true
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
