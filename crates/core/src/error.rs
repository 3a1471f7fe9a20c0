//! The one error type of the core, the one table that maps it to HTTP, and
//! the one place a JSON error body is built.
//!
//! Messages are shown to operators as they are: they name the key, file,
//! bucket or peer at fault, and never contain a credential or a presigned URL
//! (reqwest errors are stripped of their URL before they get here).
//!
//! May import: nothing of this crate.

use std::path::{Path, PathBuf};

use serde::Serialize;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A query parameter is missing, malformed or not allowed.
    #[error("invalid parameter '{name}': {reason}")]
    InvalidParameter { name: String, reason: String },

    /// The config file could not be read or does not hold a valid config.
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },

    /// The config path is outside the directory configs may be read from.
    #[error("config {path} is outside the allowed config directory {allowed}")]
    ConfigPathNotAllowed { path: PathBuf, allowed: PathBuf },

    /// The request names a bucket or prefix the config does not allow.
    #[error("{0}")]
    NotAllowed(String),

    /// No route of the plugin's REST API has this path.
    #[error("no such resource: {path}; see GET /dragonfly")]
    RouteNotFound { path: String },

    /// The route exists but not with this method.
    #[error("{method} is not supported on {route}; use {allowed}")]
    MethodNotAllowed {
        method: String,
        route: String,
        allowed: String,
    },

    /// The object store has no such bucket, object or archive.
    #[error("{0}")]
    NotFound(String),

    /// The object store refused our credentials or request.
    #[error("object storage refused the request ({status}): {message}")]
    StorageDenied { status: u16, message: String },

    /// The object store failed or could not be reached.
    #[error("object storage failed: {0}")]
    Storage(String),

    /// A model of that name is registered with a different archive.
    #[error("{0}")]
    Conflict(String),

    /// The Dragonfly peer could not be reached at all.
    #[error("Dragonfly peer {addr} unreachable: {reason}")]
    PeerUnreachable { addr: String, reason: String },

    /// The Dragonfly peer answered with an error; `error_type` is its
    /// `X-Dragonfly-Error-Type` (backend, proxy, dfdaemon) when it sent one.
    #[error("Dragonfly peer {addr} answered {status} (error type: {error_type}) for {object}")]
    Peer {
        addr: String,
        status: u16,
        error_type: String,
        object: String,
    },

    /// The transfer broke off and the retries ran out.
    #[error("transfer of {object} failed after {attempts} attempt(s): {reason}")]
    Transfer {
        object: String,
        attempts: u32,
        reason: String,
    },

    #[error("{object}: expected {expected} bytes, received {actual}")]
    LengthMismatch {
        object: String,
        expected: u64,
        actual: u64,
    },

    #[error("{object}: {algorithm} mismatch, expected {expected}, computed {actual}")]
    ChecksumMismatch {
        object: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },

    #[error("timed out: {0}")]
    Timeout(String),

    /// The Dragonfly manager refused or failed a job request (`status` 0:
    /// not reached).
    #[error("Dragonfly manager {addr} answered {status}: {message}")]
    Manager {
        addr: String,
        status: u16,
        message: String,
    },

    /// The archive cannot be unpacked safely (a bad CRC, an entry name
    /// escaping its directory, a truncated entry): TorchServe would refuse
    /// it too, so it is refused the way TorchServe does.
    #[error("{object} is not a usable model archive: {reason}")]
    InvalidArchive { object: String, reason: String },

    /// The model store's filesystem is full.
    #[error("no space left in {path} while writing {object}")]
    NoSpace { path: PathBuf, object: String },

    /// TorchServe refused to register (or unregister) a model; `status` is
    /// the status TorchServe gave.
    #[error("TorchServe refused model '{model}' ({status}): {message}")]
    Registration {
        model: String,
        status: u16,
        message: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// `Ok` when `ok`, else an invalid `name` for the reason given.
    pub fn require(ok: bool, name: &str, reason: impl FnOnce() -> String) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(CoreError::invalid(name, reason()))
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CoreError::Io {
            context: context.into(),
            source,
        }
    }

    /// A failed write of `what` into `dir`: 507 when the disk is full.
    pub fn write_failed(dir: &Path, what: &str, err: std::io::Error) -> Self {
        if is_no_space(&err) {
            CoreError::NoSpace {
                path: dir.to_path_buf(),
                object: what.to_string(),
            }
        } else {
            CoreError::io(format!("writing {what} into the model store"), err)
        }
    }

    /// The HTTP status an operator gets for this error. Exhaustive on
    /// purpose: a new variant must choose its status here.
    pub fn status(&self) -> u16 {
        match self {
            CoreError::InvalidParameter { .. }
            | CoreError::Config { .. }
            | CoreError::InvalidArchive { .. } => 400,
            CoreError::ConfigPathNotAllowed { .. } | CoreError::NotAllowed(_) => 403,
            CoreError::StorageDenied { status, .. } => match status {
                401 | 403 => 403,
                _ => 400,
            },
            CoreError::NotFound(_) | CoreError::RouteNotFound { .. } => 404,
            CoreError::MethodNotAllowed { .. } => 405,
            CoreError::Conflict(_) => 409,
            CoreError::PeerUnreachable { .. }
            | CoreError::Peer { .. }
            | CoreError::Storage(_)
            | CoreError::Transfer { .. }
            | CoreError::LengthMismatch { .. }
            | CoreError::ChecksumMismatch { .. }
            | CoreError::Manager { .. } => 502,
            CoreError::Timeout(_) => 504,
            CoreError::NoSpace { .. } => 507,
            CoreError::Registration { status, .. } => match status {
                400..=599 => *status,
                _ => 500,
            },
            CoreError::Io { .. } | CoreError::Internal(_) => 500,
        }
    }

    /// The `type` field of the JSON error body, named like TorchServe's own
    /// exception types so clients can treat both alike.
    pub fn kind(&self) -> &'static str {
        match self {
            CoreError::InvalidParameter { .. } => "InvalidParameterException",
            CoreError::Config { .. } => "ConfigException",
            CoreError::ConfigPathNotAllowed { .. } | CoreError::NotAllowed(_) => {
                "ForbiddenException"
            }
            CoreError::RouteNotFound { .. } => "ResourceNotFoundException",
            CoreError::MethodNotAllowed { .. } => "MethodNotAllowedException",
            CoreError::StorageDenied { .. } => "ObjectStorageDeniedException",
            CoreError::NotFound(_) => "NotFoundException",
            CoreError::Conflict(_) => "ConflictStatusException",
            CoreError::PeerUnreachable { .. } | CoreError::Peer { .. } => "DragonflyPeerException",
            CoreError::Storage(_) => "ObjectStorageException",
            CoreError::Manager { .. } => "DragonflyManagerException",
            CoreError::Transfer { .. } => "TransferException",
            CoreError::LengthMismatch { .. } => "ContentLengthMismatchException",
            CoreError::ChecksumMismatch { .. } => "DigestMismatchException",
            CoreError::Timeout(_) => "GatewayTimeoutException",
            CoreError::InvalidArchive { .. } => "InvalidModelException",
            CoreError::NoSpace { .. } => "InsufficientStorageException",
            CoreError::Registration { .. } => "RegistrationException",
            CoreError::Io { .. } => "IOException",
            CoreError::Internal(_) => "InternalServerException",
        }
    }

    /// Whether trying the same transfer again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CoreError::Transfer { .. } | CoreError::Timeout(_) | CoreError::Storage(_)
        ) || matches!(self, CoreError::Peer { status, .. } if *status >= 500 && *status != 507)
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.status(), self.kind(), self.to_string())
    }
}

/// TorchServe's error body: `{"code": N, "type": "...", "message": "..."}`.
/// Every error answer of the plugin is one of these, built here.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: u16,
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: u16, kind: &str, message: String) -> Self {
        ErrorBody {
            code,
            kind: kind.to_string(),
            message,
        }
    }

    /// A panic caught at the host boundary: a 500 like any internal error.
    pub fn panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into());
        ErrorBody::new(
            500,
            CoreError::Internal(String::new()).kind(),
            format!("dragonfly-endpoint panicked: {message}"),
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"code": self.code, "type": self.kind, "message": self.message})
    }
}

/// Whether an I/O error means the filesystem is full.
pub fn is_no_space(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::StorageFull || err.raw_os_error() == Some(28)
}

/// A reqwest error as text without its URL: presigned URLs carry the access
/// key id and a signature, which must not reach a response or a log.
pub fn describe_http_error(err: reqwest::Error) -> String {
    let timeout = err.is_timeout();
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    if timeout && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_documented_table() {
        let cases: Vec<(CoreError, u16)> = vec![
            (CoreError::invalid("model", "empty"), 400),
            (
                CoreError::Config {
                    path: "/c.json".into(),
                    reason: "x".into(),
                },
                400,
            ),
            (
                CoreError::ConfigPathNotAllowed {
                    path: "/a".into(),
                    allowed: "/b".into(),
                },
                403,
            ),
            (
                CoreError::StorageDenied {
                    status: 403,
                    message: "denied".into(),
                },
                403,
            ),
            (CoreError::NotFound("x".into()), 404),
            (
                CoreError::RouteNotFound {
                    path: "/dragonfly/x".into(),
                },
                404,
            ),
            (
                CoreError::MethodNotAllowed {
                    method: "PUT".into(),
                    route: "/dragonfly/models".into(),
                    allowed: "POST".into(),
                },
                405,
            ),
            (CoreError::Conflict("x".into()), 409),
            (
                CoreError::PeerUnreachable {
                    addr: "http://127.0.0.1:4001".into(),
                    reason: "refused".into(),
                },
                502,
            ),
            (
                CoreError::LengthMismatch {
                    object: "a".into(),
                    expected: 2,
                    actual: 1,
                },
                502,
            ),
            (CoreError::Timeout("x".into()), 504),
            (
                CoreError::NoSpace {
                    path: "/s".into(),
                    object: "a".into(),
                },
                507,
            ),
            (
                CoreError::Registration {
                    model: "m".into(),
                    status: 400,
                    message: "bad".into(),
                },
                400,
            ),
            (
                CoreError::Registration {
                    model: "m".into(),
                    status: 200,
                    message: "odd".into(),
                },
                500,
            ),
            (CoreError::Internal("x".into()), 500),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status, "{err}");
            assert_eq!(err.body().code, status);
        }
    }

    #[test]
    fn body_serialises_in_torchserve_shape() {
        let body = CoreError::NotFound("no object s3://b/k".into()).body();
        let expected = serde_json::json!({"code": 404, "type": "NotFoundException", "message": "no object s3://b/k"});
        assert_eq!(serde_json::to_value(&body).unwrap(), expected);
        assert_eq!(body.json(), expected);
    }

    #[test]
    fn a_panic_payload_becomes_a_500_body() {
        let body = ErrorBody::panic(&"boom");
        assert_eq!(body.code, 500);
        assert_eq!(body.kind, "InternalServerException");
        assert!(body.message.contains("boom"));
    }

    #[test]
    fn enospc_is_recognised() {
        assert!(is_no_space(&std::io::Error::from_raw_os_error(28)));
        assert!(!is_no_space(&std::io::Error::from_raw_os_error(2)));
        let full = CoreError::write_failed(
            Path::new("/s"),
            "a.mar",
            std::io::Error::from_raw_os_error(28),
        );
        assert_eq!(full.status(), 507);
        let other = CoreError::write_failed(
            Path::new("/s"),
            "a.mar",
            std::io::Error::from_raw_os_error(13),
        );
        assert_eq!(other.status(), 500);
    }
}
