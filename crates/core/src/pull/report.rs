//! What a pull answers: every model's outcome, and the overall status and
//! body built from them.

use serde::Serialize;

use crate::digest::Algorithm;
use crate::error::ErrorBody;
use crate::format::UnpackedFrom;
use crate::transfer::dragonfly::ServedFrom;
use crate::transfer::Fetched;

#[derive(Debug, Clone, Serialize)]
pub struct DownloadReport {
    /// `downloaded`, or `unchanged` when the same archive (size and ETag)
    /// was already in the store.
    pub action: &'static str,
    pub bytes: u64,
    pub seconds: f64,
    pub bytes_per_second: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_from: Option<ServedFrom>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    pub attempts: u32,
    /// Taken from the local peer's cache by hard link, not streamed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hard_linked: bool,
    /// What the bytes were checked with: a digest the store gave
    /// (`CRC32C`, `SHA256`, `MD5`, ...) or only their `length`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<&'static str>,
    /// A directory model: how many files were fetched, each its own task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<usize>,
}

impl DownloadReport {
    /// The same archive (size and ETag) was already in the store.
    pub fn unchanged(bytes: u64) -> Self {
        DownloadReport {
            action: "unchanged",
            bytes,
            seconds: 0.0,
            bytes_per_second: 0,
            served_from: None,
            task_id: None,
            attempts: 0,
            hard_linked: false,
            verified: None,
            files: None,
        }
    }

    pub fn downloaded(fetched: &Fetched, seconds: f64) -> Self {
        DownloadReport {
            action: "downloaded",
            bytes: fetched.bytes,
            seconds,
            bytes_per_second: (fetched.bytes as f64 / seconds.max(1e-9)) as u64,
            served_from: Some(fetched.served_from),
            task_id: fetched.task_id.clone(),
            attempts: fetched.attempts,
            hard_linked: fetched.hard_linked,
            verified: Some(fetched.verified.map(Algorithm::name).unwrap_or("length")),
            files: None,
        }
    }
}

/// How the archive was unpacked for TorchServe (`register_as: directory`).
#[derive(Debug, Clone, Serialize)]
pub struct UnpackReport {
    pub from: UnpackedFrom,
    pub files: usize,
    pub bytes: u64,
    /// Time spent after the download: the whole unpack from a file, or
    /// only the final check when it streamed alongside the download.
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub model_name: String,
    pub file_name: String,
    pub object: String,
    pub status: u16,
    /// The whole pull of this model: waiting for its lock, stat, presign,
    /// download, unpacking, registration and the ledger.
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpacked: Option<UnpackReport>,
    /// `registered` or `already_registered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl ModelReport {
    /// A model not yet pulled: 200 until a step fails.
    pub fn new(model_name: &str, file_name: &str, object: &str) -> Self {
        ModelReport {
            model_name: model_name.to_string(),
            file_name: file_name.to_string(),
            object: object.to_string(),
            status: 200,
            seconds: 0.0,
            download: None,
            unpacked: None,
            registration: None,
            registration_message: None,
            registration_seconds: None,
            error: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub bucket: String,
    pub prefix: String,
    pub models: Vec<ModelReport>,
}

impl PullReport {
    /// 200 when every model succeeded, else the most severe status (the
    /// highest: 5xx outranks 4xx).
    pub fn status(&self) -> u16 {
        self.models
            .iter()
            .map(|m| m.status)
            .filter(|s| *s >= 300)
            .max()
            .unwrap_or(200)
    }

    /// The response body: TorchServe's error fields when something failed,
    /// and always every model's outcome.
    pub fn body(&self) -> serde_json::Value {
        let status = self.status();
        let failed: Vec<&ModelReport> = self.models.iter().filter(|m| m.status >= 300).collect();
        let mut body = if failed.is_empty() {
            serde_json::json!({
                "status": format!("{} model(s) ready", self.models.len()),
            })
        } else {
            let worst = failed
                .iter()
                .find(|m| m.status == status)
                .and_then(|m| m.error.as_ref());
            let summary: Vec<String> = failed
                .iter()
                .map(|m| match &m.error {
                    Some(e) => format!("{}: {}", m.file_name, e.message),
                    None => m.file_name.clone(),
                })
                .collect();
            ErrorBody::new(
                status,
                worst.map(|e| e.kind.as_str()).unwrap_or("PullException"),
                format!(
                    "{} of {} model(s) failed: {}",
                    failed.len(),
                    self.models.len(),
                    summary.join("; ")
                ),
            )
            .json()
        };
        body["bucket"] = self.bucket.clone().into();
        body["prefix"] = self.prefix.clone().into();
        body["models"] = serde_json::to_value(&self.models).unwrap_or_default();
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(statuses: &[u16]) -> PullReport {
        PullReport {
            bucket: "b".into(),
            prefix: String::new(),
            models: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| ModelReport {
                    status: *s,
                    error: (*s >= 300).then(|| ErrorBody::new(*s, "X", "failed".into())),
                    ..ModelReport::new(
                        &format!("m{i}"),
                        &format!("m{i}.mar"),
                        &format!("s3://b/m{i}.mar"),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn overall_status_is_the_most_severe() {
        assert_eq!(report(&[200, 200]).status(), 200);
        assert_eq!(report(&[200, 404]).status(), 404);
        assert_eq!(report(&[404, 502, 200]).status(), 502);
        let body = report(&[200, 502]).body();
        assert_eq!(body["code"], 502);
        assert!(body["message"].as_str().unwrap().contains("1 of 2"));
        assert_eq!(body["models"].as_array().unwrap().len(), 2);
        assert!(report(&[200]).body().get("code").is_none());
    }
}
