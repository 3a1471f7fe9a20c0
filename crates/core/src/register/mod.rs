//! Registering models with TorchServe: the [`ModelRegistry`] a host
//! provides, the options a model registers with, and the one mapping from
//! TorchServe's answers to results ([`outcome`]).
//!
//! Inside the plugin the registry calls TorchServe in its own JVM (the `jni`
//! crate), which works with the model API off and token auth on. The CLI
//! uses [`http::ManagementApi`], TorchServe's management REST API.
//!
//! May import: `error`.

pub mod http;
pub mod options;
pub mod outcome;

use serde::Serialize;

use crate::error::{CoreError, Result};
use crate::BoxFuture;

pub use options::{OptionValue, Overrides, RegisterOptions};

/// One model to register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisterRequest {
    /// A file name of the model store, or an absolute directory path.
    pub url: String,
    pub model_name: String,
    pub options: RegisterOptions,
}

pub trait ModelRegistry: Send + Sync {
    /// Registers a model; `Err(CoreError::Registration)` carries TorchServe's
    /// status and message when it refuses.
    fn register<'a>(&'a self, request: &'a RegisterRequest) -> BoxFuture<'a, Result<String>>;
    fn unregister<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<String>>;
    fn is_registered<'a>(&'a self, model_name: &'a str) -> BoxFuture<'a, Result<bool>>;
}

/// TorchServe model names: letters, digits, `_`, `-`, `.`, never `..`
/// (TorchServe refuses it, and it would reach paths); as its own API.
pub fn validate_model_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.contains("..");
    CoreError::require(ok, "model_name", || {
        format!("{name:?} is not a valid model name (letters, digits, '_', '-', '.', no '..')")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_torchserve_names() {
        for good in ["resnet", "a.b", "x_1-2", "m.mar"] {
            assert!(validate_model_name(good).is_ok(), "{good}");
        }
        for bad in ["", "my model", ".hidden", "a..b", "a/b", "ä"] {
            assert!(validate_model_name(bad).is_err(), "{bad}");
        }
    }
}
