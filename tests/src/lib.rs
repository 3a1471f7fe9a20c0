//! Test-bed fixtures for Rust tests: real servers on 127.0.0.1, each in a
//! private temporary directory, started and stopped through the shell
//! fixtures in `scripts/testbed/` (one implementation for shell and Rust).
//! Every server is stopped when its handle is dropped, also when a test
//! panics.
//!
//! - [`servers`]: the S3 server, the Dragonfly cluster, TorchServe;
//! - [`emulators`]: Azurite (Azure Blob) and fake-gcs-server (GCS);
//! - [`relay`]: a TCP relay that counts what an origin sends;
//! - [`models`]: real model archives;
//! - [`stack`]: the usual stack of a test in one call ([`Stack::builder`]):
//!   [`Origin`] (S3 and Dragonfly), a config, TorchServe with the plugin;
//! - [`config`]: the plugin config files the tests write;
//! - [`client`]: HTTP calls as an operator makes them, and their checks;
//! - [`files`]: what is left on disk;
//! - [`cli`]: the `dragonfly-endpoint` CLI;
//! - [`faults`]: a silent server and a fault-injecting HTTP front;
//! - [`fake_store`]: a FAKE OSS/OBS/COS store (signatures ignored) serving
//!   a directory;
//! - [`fleet`]: nodes in network namespaces over shaped links;
//!   [`fleet_torchserve`]: TorchServe with the plugin on a node.
//!
//! Everything is re-exported here, so `use dragonfly_endpoint_testbed::*`
//! brings the whole test bed.

use std::path::{Path, PathBuf};

pub mod cli;
pub mod client;
pub mod config;
pub mod emulators;
pub mod fake_store;
pub mod faults;
pub mod files;
pub mod fleet;
pub mod fleet_torchserve;
pub mod models;
pub mod pki;
pub mod relay;
pub mod servers;
pub mod stack;

pub use cli::{cli, cli_command, cli_in_target, cli_output, pull_with_cli};
pub use client::{assert_close, assert_error, call, http, http_with_timeout, infer, predict, send};
pub use config::{config_json, config_variant, write_config, write_config_file, BUCKET, PREFIX};
pub use emulators::{Azurite, FakeGcs};
pub use fake_store::{FakeRequest, FakeStore, FakeStyle};
pub use faults::{header_value, Fault, FrontPlan, HttpFront, SilentServer};
pub use files::{
    assert_no_partial_files, assert_no_secrets, entries, store_entries, wait_until, walk,
};
pub use fleet::Fleet;
pub use fleet_torchserve::FleetTorchServe;
pub use models::{cached_mar, cached_model, make_mar, make_model, ArchiveFormat, Mar};
pub use pki::{make_pki, Pki};
pub use relay::CountingRelay;
pub use servers::{
    alive, plugin_jar, plugins_dir, DragonflyCluster, Jar, S3Server, Server, TorchServe,
};
pub use stack::{
    torchserve_version_with_plugin, torchserve_with_plugin, Origin, Stack, StackBuilder,
};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The venv's Python (created by scripts/setup).
pub fn python() -> PathBuf {
    cache_dir().join("venv/bin/python")
}

pub fn cache_dir() -> PathBuf {
    match std::env::var_os("DRAGONFLY_ENDPOINT_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/dragonfly-endpoint"),
    }
}
