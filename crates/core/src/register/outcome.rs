//! What TorchServe answered, and the one mapping from that answer to our
//! result, shared by the registry inside the JVM and the one over HTTP.
//!
//! Inside the JVM, TorchServe answers with a status (`StatusResponse`) or
//! throws; the Java side hands over the exception's class name and message
//! as they are, and this table gives each its status. Over HTTP, TorchServe
//! has already turned its exception into a status and a `type`.

use crate::error::{CoreError, Result};

/// TorchServe's answer to one registry call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status TorchServe gave, when it gave one.
    pub status: Option<u16>,
    /// The simple name of the exception TorchServe threw, if it threw.
    pub exception: Option<String>,
    pub message: String,
}

impl Answer {
    /// The status this answer stands for.
    pub fn status(&self) -> u16 {
        match (self.status, self.exception.as_deref()) {
            (Some(status), _) => status,
            (None, Some(exception)) => exception_status(exception),
            (None, None) => 500,
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status())
    }

    /// Whether TorchServe may have left the model half-registered (workers
    /// that failed to start): the caller then unregisters it. Refusals of
    /// the request itself (conflict, bad archive) registered nothing.
    pub fn may_leave_model_behind(&self) -> bool {
        !self.is_success() && (self.exception.is_none() || self.status() >= 500)
    }
}

/// TorchServe's exceptions and the statuses its own HTTP API gives them.
fn exception_status(exception: &str) -> u16 {
    match exception {
        "ConflictStatusException" => 409,
        "ModelNotFoundException" | "ModelVersionNotFoundException" => 404,
        "InvalidModelException"
        | "DownloadArchiveException"
        | "IllegalArgumentException"
        | "BadRequestException"
        | "ModelException" => 400,
        // WorkerInitializationException, InterruptedException, anything else.
        _ => 500,
    }
}

/// A register call: 2xx is the model registered.
pub fn registered(model: &str, answer: Answer) -> Result<String> {
    if answer.is_success() {
        return Ok(answer.message);
    }
    Err(CoreError::Registration {
        model: model.to_string(),
        status: answer.status(),
        message: answer.message,
    })
}

/// An unregister call: 404 means the model is not registered.
pub fn unregistered(model: &str, answer: Answer) -> Result<String> {
    match answer.status() {
        200..=299 => Ok(answer.message),
        404 => Err(CoreError::NotFound(format!(
            "model {model:?} is not registered"
        ))),
        status => Err(CoreError::Registration {
            model: model.to_string(),
            status,
            message: answer.message,
        }),
    }
}

/// A lookup: 2xx registered, 404 not.
pub fn is_registered(model: &str, answer: Answer) -> Result<bool> {
    match answer.status() {
        200..=299 => Ok(true),
        404 => Ok(false),
        status => Err(CoreError::Registration {
            model: model.to_string(),
            status,
            message: answer.message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thrown(exception: &str) -> Answer {
        Answer {
            status: None,
            exception: Some(exception.into()),
            message: "m".into(),
        }
    }

    fn status(code: u16) -> Answer {
        Answer {
            status: Some(code),
            exception: None,
            message: "m".into(),
        }
    }

    #[test]
    fn exceptions_get_torchserve_statuses() {
        let code = |e: &str| registered("a", thrown(e)).unwrap_err().status();
        assert_eq!(code("ConflictStatusException"), 409);
        assert_eq!(code("InvalidModelException"), 400);
        assert_eq!(code("DownloadArchiveException"), 400);
        assert_eq!(code("WorkerInitializationException"), 500);
        assert_eq!(code("NullPointerException"), 500);
        // Register and unregister read a 404 alike in both registries.
        assert_eq!(code("ModelNotFoundException"), 404);
        assert!(matches!(
            registered("a", status(404)),
            Err(CoreError::Registration { status: 404, .. })
        ));
        assert!(matches!(
            unregistered("a", thrown("ModelNotFoundException")),
            Err(CoreError::NotFound(_))
        ));
        assert!(matches!(
            unregistered("a", status(404)),
            Err(CoreError::NotFound(_))
        ));
    }

    #[test]
    fn only_failures_past_the_request_check_need_a_cleanup() {
        assert!(thrown("WorkerInitializationException").may_leave_model_behind());
        assert!(status(500).may_leave_model_behind());
        assert!(!thrown("ConflictStatusException").may_leave_model_behind());
        assert!(!thrown("InvalidModelException").may_leave_model_behind());
        assert!(!status(200).may_leave_model_behind());
        assert!(!is_registered("a", status(404)).unwrap());
        assert!(is_registered("a", status(200)).unwrap());
    }
}
