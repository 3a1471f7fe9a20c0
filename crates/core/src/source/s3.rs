//! S3 and any S3-compatible store, through aws-sdk-s3: listing, HEAD and
//! presigned GETs. Credentials come from the config file when it has them,
//! else from the standard AWS chain (environment, profiles, web identity,
//! instance metadata).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;

use aws_sdk_s3::types::{ChecksumMode, ChecksumType, ServerSideEncryption};

use super::{ObjectInfo, ObjectSource, PresignedUrl};
use crate::config::ObjectStorageConfig;
use crate::digest::{Algorithm, Digest};
use crate::error::{CoreError, Result};
use crate::secret::Secret;
use crate::BoxFuture;

/// Query parameters of a presigned S3 URL that differ between signers of the
/// same object (SigV4 query authentication, plus the SDK's `x-id`).
pub const SIGNING_PARAMS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "x-id",
];

pub struct S3Source {
    client: aws_sdk_s3::Client,
    bucket: String,
    presign_expiry: Duration,
    /// The store as messages name it (its endpoint, or AWS S3).
    store: String,
    /// The config file, named in configuration errors.
    config_path: std::path::PathBuf,
    operation_timeout: Duration,
}

impl S3Source {
    /// `ca_pem`: extra CA certificates to trust (`download.ca_cert`), for
    /// stores whose certificate a private CA signed.
    pub async fn connect(
        cfg: &ObjectStorageConfig,
        bucket: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(pem) = ca_pem {
            loader = loader.http_client(http_client_trusting(pem)?);
        }
        if let (Some(access_key), Some(secret_key)) = (&cfg.access_key, &cfg.secret_key) {
            loader = loader.credentials_provider(Credentials::new(
                access_key.expose().clone(),
                secret_key.expose().clone(),
                cfg.session_token.as_ref().map(|t| t.expose().clone()),
                None,
                "dragonfly-endpoint-config",
            ));
        }
        // An explicit region also keeps the SDK from asking the instance
        // metadata service on every request (slow and noisy off EC2).
        let region = cfg
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "us-east-1".to_string());
        loader = loader.region(aws_config::Region::new(region.clone()));
        // Every call has a deadline: a store that accepts the connection and
        // never answers is a 504, not a hang.
        let operation_timeout = Duration::from_secs(cfg.operation_timeout_secs);
        loader = loader.timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(operation_timeout.min(Duration::from_secs(10)))
                .operation_attempt_timeout(operation_timeout)
                .operation_timeout(operation_timeout)
                .build(),
        );
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            // S3-compatible stores do not all speak the newer checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .force_path_style(cfg.path_style());
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint_url(endpoint.expose());
        }
        let store = match &cfg.endpoint {
            Some(endpoint) => format!("S3 store {}", endpoint.shown()),
            None => format!("AWS S3 ({region})"),
        };
        Ok(S3Source {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: bucket.to_string(),
            presign_expiry: Duration::from_secs(cfg.presign_expiry_secs),
            store,
            config_path: cfg.source.clone(),
            operation_timeout,
        })
    }

    /// Every model archive under `prefix`, following continuation tokens.
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut found = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.sdk_error(e, "ListObjectsV2", prefix))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                if key.ends_with('/') {
                    continue;
                }
                found.push(ObjectInfo {
                    key: key.to_string(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    etag: object.e_tag().map(unquote),
                    // A listing says nothing of encryption: no digest here.
                    digest: None,
                });
            }
        }
        Ok(found)
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| self.sdk_error(e, "HeadObject", key))?;
        let etag = head.e_tag().map(unquote);
        let checksums = [
            (Algorithm::Crc64Nvme, head.checksum_crc64_nvme()),
            (Algorithm::Crc32c, head.checksum_crc32_c()),
            (Algorithm::Crc32, head.checksum_crc32()),
            (Algorithm::Sha1, head.checksum_sha1()),
            (Algorithm::Sha256, head.checksum_sha256()),
        ];
        // A composite (multipart) checksum is a checksum of part checksums.
        let whole = !matches!(head.checksum_type(), Some(ChecksumType::Composite));
        let checksum = checksums
            .into_iter()
            .filter(|_| whole)
            .find_map(|(algorithm, value)| Digest::from_base64(algorithm, value?));
        let encrypted = matches!(
            head.server_side_encryption(),
            Some(ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)
        ) || head.sse_customer_algorithm().is_some();
        Ok(ObjectInfo {
            key: key.to_string(),
            size: head.content_length().unwrap_or(0).max(0) as u64,
            digest: checksum.or_else(|| etag_md5(etag.as_deref(), encrypted)),
            etag,
        })
    }

    /// A presigned GET URL. It carries the access key id and a signature:
    /// never log or return it.
    async fn presign_get(&self, key: &str) -> Result<PresignedUrl> {
        let expires_at = SystemTime::now() + self.presign_expiry;
        let config = PresigningConfig::expires_in(self.presign_expiry)
            .map_err(|e| CoreError::Internal(format!("presign expiry: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| self.sdk_error(e, "GetObject (presign)", key))?;
        Ok(PresignedUrl {
            url: Secret::new(request.uri().to_string()),
            expires_at: Some(expires_at),
        })
    }

    fn sdk_error<E, R>(&self, err: SdkError<E, R>, operation: &str, key: &str) -> CoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HttpStatus,
    {
        let object = format!("s3://{}/{}", self.bucket, key.trim_start_matches('/'));
        let timed_out = || {
            CoreError::Timeout(format!(
                "{} did not answer {operation} for {object} within {} s (object_storage.operation_timeout_secs)",
                self.store,
                self.operation_timeout.as_secs()
            ))
        };
        match &err {
            SdkError::ServiceError(service) => {
                let status = service.raw().status_code();
                let code = service.err().code().unwrap_or("");
                let message = service.err().message().unwrap_or("");
                classify(&self.bucket, &object, status, code, message)
            }
            SdkError::TimeoutError(_) => timed_out(),
            SdkError::DispatchFailure(failure) if failure.is_timeout() => timed_out(),
            SdkError::DispatchFailure(failure) => {
                // The cause chain names TLS failures; it holds no secrets
                // (listing and HEAD URLs are not presigned).
                let detail = aws_sdk_s3::error::DisplayErrorContext(&err).to_string();
                let reason = if detail.to_ascii_lowercase().contains("certificate") {
                    format!(
                        "its TLS certificate is not trusted ({}); if a private CA signed it, set download.ca_cert",
                        certificate_cause(&detail)
                    )
                } else if failure.is_io() {
                    "connection failed".to_string()
                } else {
                    "request could not be sent".to_string()
                };
                CoreError::Storage(format!(
                    "could not reach {} for {operation} of {object}: {reason}",
                    self.store
                ))
            }
            SdkError::ResponseError(_) => CoreError::Storage(format!(
                "object storage sent an unreadable answer for {object}"
            )),
            SdkError::ConstructionFailure(_) => CoreError::Config {
                path: self.config_path.clone(),
                reason: format!(
                    "request for {object} could not be built (are credentials and region set?): {}",
                    aws_sdk_s3::error::DisplayErrorContext(&err)
                ),
            },
            _ => CoreError::Storage(format!("request for {object} failed")),
        }
    }
}

impl ObjectSource for S3Source {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn object_url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }

    fn signing_params(&self) -> &'static [&'static str] {
        SIGNING_PARAMS
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectInfo>>> {
        Box::pin(self.list_objects(prefix))
    }

    fn stat<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<ObjectInfo>> {
        Box::pin(self.head(key))
    }

    fn presign<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<PresignedUrl>> {
        Box::pin(self.presign_get(key))
    }
}

/// An HTTPS client for the S3 API that trusts `ca_pem` besides the system
/// roots.
fn http_client_trusting(ca_pem: &[u8]) -> Result<aws_sdk_s3::config::SharedHttpClient> {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::default().with_pem_certificate(ca_pem.to_vec()))
        .build()
        .map_err(|e| CoreError::Internal(format!("TLS setup of the S3 client: {e}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

/// The part of an SDK error chain that says what was wrong with the
/// certificate (`invalid peer certificate: UnknownIssuer`).
fn certificate_cause(detail: &str) -> &str {
    detail
        .split(": ")
        .find(|part| part.to_ascii_lowercase().contains("certificate"))
        .map(str::trim)
        .unwrap_or("certificate rejected")
}

/// The HTTP status of a raw SDK response, for HEAD errors without a body.
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Maps an S3 error code (or bare status, for HEAD) to our error.
fn classify(bucket: &str, object: &str, status: u16, code: &str, message: &str) -> CoreError {
    match (code, status) {
        ("NoSuchBucket", _) => CoreError::NotFound(format!("bucket {bucket:?} does not exist")),
        ("NoSuchKey" | "NotFound", _) | (_, 404) => {
            CoreError::NotFound(format!("object {object} not found"))
        }
        (
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "AllAccessDisabled",
            _,
        )
        | (_, 401 | 403) => CoreError::StorageDenied {
            status: 403,
            message: format!(
                "{} for {object}{} (check the credentials and the bucket's permissions)",
                if code.is_empty() {
                    "access denied"
                } else {
                    code
                },
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            ),
        },
        (_, 400..=499) => CoreError::StorageDenied {
            status,
            message: format!("{code} for {object}: {message}"),
        },
        _ => CoreError::Storage(format!("{object}: {status} {code} {message}")),
    }
}

/// An S3 ETag is the MD5 of the content only for a single-part upload
/// (multipart ETags end in `-N`) that is not encrypted with SSE-KMS or SSE-C.
fn etag_md5(etag: Option<&str>, encrypted: bool) -> Option<Digest> {
    if encrypted {
        return None;
    }
    Digest::from_hex(Algorithm::Md5, etag?)
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_codes_map_to_statuses() {
        let c = |code: &str, status: u16| classify("b", "s3://b/k", status, code, "").status();
        assert_eq!(c("NoSuchBucket", 404), 404);
        assert_eq!(c("", 404), 404);
        assert_eq!(c("InvalidAccessKeyId", 403), 403);
        assert_eq!(c("SignatureDoesNotMatch", 403), 403);
        assert_eq!(c("InternalError", 500), 502);
        assert_eq!(unquote("\"abc\""), "abc");
    }

    #[test]
    fn an_etag_is_an_md5_only_when_s3_says_so() {
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        assert!(etag_md5(Some(md5), false).is_some());
        assert!(
            etag_md5(Some(md5), true).is_none(),
            "SSE-KMS/SSE-C ETags are not MD5s"
        );
        assert!(etag_md5(Some("9e107d9d372bb6826bd81d3542a419d6-3"), false).is_none());
        assert!(etag_md5(None, false).is_none());
    }
}
