//! Object-store emulators of the test bed, started through their shell
//! fixtures like the S3 server: [`Azurite`] (Microsoft's Azure Storage
//! emulator, blob service; it checks Shared Key and SAS signatures) and
//! [`FakeGcs`] (fake-gcs-server: JSON and XML APIs, no credentials, no
//! signature checks). Neither keeps traffic metrics: put a
//! [`CountingRelay`](crate::CountingRelay) in front to count what they send.
//! Both are stopped when dropped, also when a test panics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::servers::Server;

fn socket_addr(server: &Server, host: &str, port: &str) -> SocketAddr {
    let text = format!("{}:{}", server.env(host), server.env(port));
    text.parse()
        .unwrap_or_else(|e| panic!("{host}:{port} = {text} is not an address: {e}"))
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// Azurite's blob service on 127.0.0.1 (`scripts/testbed/azurite`), blobs
/// on disk in its temp dir, the well-known account `devstoreaccount1`.
pub struct Azurite(pub Server);

impl Azurite {
    pub fn start() -> Azurite {
        Azurite(Server::start("azurite", &[]))
    }
    /// `http://127.0.0.1:<port>/devstoreaccount1` (path-style account).
    pub fn endpoint(&self) -> &str {
        self.0.env("AZURITE_ENDPOINT")
    }
    /// `127.0.0.1:<port>`, e.g. the origin of a relay.
    pub fn addr(&self) -> SocketAddr {
        socket_addr(&self.0, "AZURITE_HOST", "AZURITE_PORT")
    }
    pub fn account(&self) -> &str {
        self.0.env("AZURITE_ACCOUNT")
    }
    /// The account key, base64 (Azurite's published development key).
    pub fn key(&self) -> &str {
        self.0.env("AZURITE_KEY")
    }
    pub fn create_container(&self, name: &str) {
        self.0.command(&["mb", name]);
    }
    pub fn put(&self, container: &str, blob: &str, file: &Path) {
        self.0.command(&["put", container, blob, &path_arg(file)]);
    }
    /// Uploads every file under `dir` as `prefix` (ending in `/`) plus its
    /// path relative to `dir`.
    pub fn put_dir(&self, container: &str, prefix: &str, dir: &Path) {
        self.0
            .command(&["put-dir", container, prefix, &path_arg(dir)]);
    }
    /// A read-only blob SAS URL made by Microsoft's Python SDK, valid for
    /// `expires_secs`.
    pub fn sas_url(&self, container: &str, blob: &str, expires_secs: u64) -> String {
        self.0
            .command(&["sas", container, blob, &expires_secs.to_string()])
            .trim()
            .to_string()
    }
    pub fn pid(&self) -> u32 {
        self.0.env("AZURITE_PID").parse().expect("AZURITE_PID")
    }
    pub fn log(&self) -> PathBuf {
        PathBuf::from(self.0.env("AZURITE_LOG"))
    }
}

/// fake-gcs-server on 127.0.0.1 (`scripts/testbed/gcs`), objects in memory.
/// The XML API (`GET <endpoint>/BUCKET/KEY`) answers on any port of
/// 127.0.0.1, so also through a relay.
pub struct FakeGcs(pub Server);

impl FakeGcs {
    pub fn start() -> FakeGcs {
        FakeGcs(Server::start("gcs", &[]))
    }
    /// `http://127.0.0.1:<port>`: JSON API under `/storage/v1`, XML API at
    /// `/BUCKET/KEY`.
    pub fn endpoint(&self) -> &str {
        self.0.env("GCS_ENDPOINT")
    }
    /// `127.0.0.1:<port>`, e.g. the origin of a relay.
    pub fn addr(&self) -> SocketAddr {
        socket_addr(&self.0, "GCS_HOST", "GCS_PORT")
    }
    pub fn create_bucket(&self, name: &str) {
        self.0.command(&["mb", name]);
    }
    pub fn put(&self, bucket: &str, key: &str, file: &Path) {
        self.0.command(&["put", bucket, key, &path_arg(file)]);
    }
    /// Uploads every file under `dir` as `prefix` (ending in `/`) plus its
    /// path relative to `dir`.
    pub fn put_dir(&self, bucket: &str, prefix: &str, dir: &Path) {
        self.0.command(&["put-dir", bucket, prefix, &path_arg(dir)]);
    }
    /// `<endpoint>/BUCKET/KEY`, the key percent-encoded (XML API, no auth).
    pub fn object_url(&self, bucket: &str, key: &str) -> String {
        self.0.command(&["url", bucket, key]).trim().to_string()
    }
    pub fn pid(&self) -> u32 {
        self.0.env("GCS_PID").parse().expect("GCS_PID")
    }
    pub fn log(&self) -> PathBuf {
        PathBuf::from(self.0.env("GCS_LOG"))
    }
}
