//! The engine of the Dragonfly endpoint for TorchServe: finds model archives
//! in object storage, pulls them through a Dragonfly peer into TorchServe's
//! model store without ever exposing a partial file, and registers them.
//!
//! The modules follow the stages of a pull; each says what it may import,
//! and imports only point down this list:
//!
//! | module        | owns                                                   |
//! |---------------|--------------------------------------------------------|
//! | `api`         | the REST surface: routes, query parsing, GET, DELETE   |
//! | `preheat`     | jobs in the Dragonfly manager for the pulls' tasks     |
//! | `pull`        | orchestration: plan, per-model steps, progress, report |
//! | `register`    | TorchServe registration: trait, options, outcomes      |
//! | `format`      | archive forms and how each is unpacked                 |
//! | `transfer`    | the Dragonfly protocol, the retrying download, writer  |
//! | `source`      | object stores behind one trait (S3 today)              |
//! | `model_store` | names, staging, the replace transaction, lock, ledger  |
//! | `config`      | the config file, its location rules, its redacted view |
//! | `error`       | the error type, its status table, the JSON error body  |
//! | `secret`      | credentials as types that cannot be printed            |
//! | `digest`      | whole-object digests a store gives, and computing them |
//! | `hooks`       | fault points only test builds can trigger              |
//!
//! Hosts (the JNI bridge, the CLI) provide a [`register::ModelRegistry`] and
//! call [`api::handle`] or [`pull::pull`].

pub mod api;
pub mod config;
pub mod digest;
pub mod error;
pub mod format;
pub mod hooks;
pub mod model_store;
pub mod preheat;
pub mod pull;
pub mod register;
pub mod secret;
pub mod source;
pub mod transfer;

use std::future::Future;
use std::pin::Pin;

pub use error::{CoreError, Result};

/// The future a trait object's async method returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
