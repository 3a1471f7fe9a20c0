//! GCS, Azure Blob, OSS, OBS and COS through Apache OpenDAL (the library
//! dfdaemon's own backends use): recursive listing, stat and presigned
//! reads, each under `object_storage.operation_timeout_secs`. The operator
//! per type is built in [`stores`](super::stores).

use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt;
use opendal::layers::HttpClientLayer;
use opendal::raw::HttpClient;
use opendal::{ErrorKind, Operator};

use super::azure::AzureAccount;
use super::{stores, ObjectInfo, ObjectSource, PresignedUrl};
use crate::config::{ObjectStorageConfig, StoreKind};
use crate::digest::{Algorithm, Digest};
use crate::error::{CoreError, Result};
use crate::secret::Secret;
use crate::BoxFuture;

pub struct CloudSource {
    op: Operator,
    kind: StoreKind,
    bucket: String,
    /// Azure presigns with its own SAS (see `azure`); the others through
    /// OpenDAL.
    azure: Option<AzureAccount>,
    presign_expiry: Duration,
    operation_timeout: Duration,
    /// The config file, named in configuration errors.
    config_path: std::path::PathBuf,
}

impl CloudSource {
    /// `ca_pem`: extra CA certificates to trust (`download.ca_cert`).
    pub fn connect(cfg: &ObjectStorageConfig, bucket: &str, ca_pem: Option<&[u8]>) -> Result<Self> {
        let (op, azure) = stores::operator(cfg, bucket)?;
        let operation_timeout = Duration::from_secs(cfg.operation_timeout_secs);
        // One HTTP stack for the whole plugin: our reqwest client, with the
        // extra CA and a connect deadline.
        let mut client = reqwest::Client::builder()
            .connect_timeout(operation_timeout.min(Duration::from_secs(10)))
            .timeout(operation_timeout);
        if let Some(pem) = ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| CoreError::Internal(format!("download.ca_cert: {e}")))?
            {
                client = client.add_root_certificate(cert);
            }
        }
        for (host, addr) in crate::hooks::resolve_overrides() {
            client = client.resolve(&host, addr);
        }
        let client = client
            .build()
            .map_err(|e| CoreError::Internal(format!("HTTP client for the store: {e}")))?;
        Ok(CloudSource {
            op: op.layer(HttpClientLayer::new(HttpClient::with(client))),
            kind: cfg.kind,
            bucket: bucket.to_string(),
            azure,
            presign_expiry: Duration::from_secs(cfg.presign_expiry_secs),
            operation_timeout,
            config_path: cfg.source.clone(),
        })
    }

    /// Runs one store call under the operation deadline, mapping its error.
    async fn call<T>(
        &self,
        operation: &str,
        key: &str,
        fut: impl std::future::Future<Output = opendal::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.operation_timeout, fut).await {
            Ok(result) => result.map_err(|e| self.error(e, operation, key)),
            Err(_) => Err(CoreError::Timeout(format!(
                "{} store did not answer {operation} for {} within {} s (object_storage.operation_timeout_secs)",
                self.kind.name(),
                self.object_url(key),
                self.operation_timeout.as_secs()
            ))),
        }
    }

    fn error(&self, err: opendal::Error, operation: &str, key: &str) -> CoreError {
        let object = self.object_url(key);
        let message = message_of(&err);
        match err.kind() {
            ErrorKind::NotFound => {
                CoreError::NotFound(format!("{object} not found (bucket {:?})", self.bucket))
            }
            ErrorKind::PermissionDenied => CoreError::StorageDenied {
                status: 403,
                message: format!("{operation} of {object}: {message}"),
            },
            ErrorKind::ConfigInvalid => CoreError::Config {
                path: self.config_path.clone(),
                reason: format!("{} store: {message}", self.kind.name()),
            },
            _ => CoreError::Storage(format!(
                "{operation} of {object} failed ({}): {message}",
                err.kind()
            )),
        }
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let entries = self
            .call("list", prefix, async {
                let lister = self.op.lister_with(prefix).recursive(true).await?;
                lister.try_collect::<Vec<_>>().await
            })
            .await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().is_file() && !e.path().ends_with('/'))
            .map(|e| {
                let meta = e.metadata();
                ObjectInfo {
                    key: e.path().trim_start_matches('/').to_string(),
                    size: meta.content_length(),
                    etag: meta.etag().map(unquote),
                    digest: None,
                }
            })
            .collect())
    }

    async fn stat_object(&self, key: &str) -> Result<ObjectInfo> {
        let meta = self.call("stat", key, self.op.stat(key)).await?;
        // A Content-MD5 (GCS md5Hash, Azure Content-MD5, OSS Content-MD5)
        // is the MD5 of the whole content when the store gives it.
        let digest = meta
            .content_md5()
            .and_then(|md5| Digest::from_base64(Algorithm::Md5, md5));
        Ok(ObjectInfo {
            key: key.to_string(),
            size: meta.content_length(),
            etag: meta.etag().map(unquote),
            digest,
        })
    }

    async fn presign_get(&self, key: &str) -> Result<PresignedUrl> {
        let expires_at = SystemTime::now() + self.presign_expiry;
        let url = match &self.azure {
            Some(account) => account.presign(&self.bucket, key, self.presign_expiry)?,
            None => {
                let request = self
                    .call(
                        "presign",
                        key,
                        self.op.presign_read(key, self.presign_expiry),
                    )
                    .await?;
                Secret::new(request.uri().to_string())
            }
        };
        Ok(PresignedUrl {
            url,
            expires_at: Some(expires_at),
        })
    }
}

impl ObjectSource for CloudSource {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn object_url(&self, key: &str) -> String {
        format!(
            "{}://{}/{}",
            self.kind.scheme(),
            self.bucket,
            key.trim_start_matches('/')
        )
    }

    fn signing_params(&self) -> &'static [&'static str] {
        stores::signing_params(self.kind)
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectInfo>>> {
        Box::pin(self.list_objects(prefix))
    }

    fn stat<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<ObjectInfo>> {
        Box::pin(self.stat_object(key))
    }

    fn presign<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<PresignedUrl>> {
        Box::pin(self.presign_get(key))
    }
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

/// What went wrong, without OpenDAL's context. The text may quote a
/// request URL; with a SAS token that URL carries a credential, so every
/// query string is cut off.
pub fn message_of(err: &opendal::Error) -> String {
    let text = err.to_string();
    let message = text.split_once(" => ").map_or(text.as_str(), |(_, m)| m);
    without_queries(message)
}

/// `text` with the query of every URL in it cut off.
fn without_queries(text: &str) -> String {
    text.split(' ')
        .map(|word| match (word.contains("://"), word.find('?')) {
            (true, Some(at)) => &word[..at],
            _ => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_store_errors_lose_their_query() {
        let text = "request to https://a.blob.core.windows.net/c/k?sv=1&sig=SECRET failed";
        let shown = without_queries(text);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            shown.contains("https://a.blob.core.windows.net/c/k failed"),
            "{shown}"
        );
    }
}
