//! The engine of the Dragonfly endpoint for TorchServe: finds model archives
//! in object storage, pulls them through a Dragonfly peer into TorchServe's
//! model store without ever exposing a partial file, and registers them.
//!
//! Hosts (the JNI bridge, the CLI) provide a [`registry::ModelRegistry`] and
//! call [`api::handle`] or [`pull::pull`].

pub mod api;
pub mod config;
pub mod error;
pub mod fetch;
pub mod progress;
pub mod pull;
pub mod registry;
pub mod request;
pub mod storage;
pub mod store;
pub mod unpack;

pub use error::{CoreError, Result};
