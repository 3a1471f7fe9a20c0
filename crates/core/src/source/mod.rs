//! Object stores behind one trait: list the model archives under a prefix,
//! stat one, and presign the GET that the Dragonfly peer fetches (the same
//! URL fetched without the peer is the direct fallback). Every store is one
//! more file beside [`s3`], with the same shape: connect from its config,
//! the trait, its error responses mapped to `CoreError` in the same file.
//!
//! May import: `error`, `config`.

pub mod s3;

use std::time::SystemTime;

use crate::config::ObjectStorageConfig;
use crate::error::Result;
use crate::BoxFuture;

/// What the pull needs to know of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// The store's version tag of the content (an S3 ETag, unquoted).
    pub etag: Option<String>,
}

impl ObjectInfo {
    /// The content's MD5 when the ETag is one (single-part uploads without
    /// SSE-KMS); multipart ETags carry a `-N` suffix and are not digests.
    pub fn md5(&self) -> Option<String> {
        let etag = self.etag.as_deref()?;
        (etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| etag.to_ascii_lowercase())
    }
}

/// A presigned GET: it carries a credential and a signature, so it is never
/// logged or returned; `expires_at` lets a refusal say whether it expired.
#[derive(Clone)]
pub struct PresignedUrl {
    pub url: String,
    pub expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for PresignedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresignedUrl")
            .field("url", &"<presigned, not shown>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

pub trait ObjectSource: Send + Sync {
    /// The bucket (or container) objects are read from.
    fn bucket(&self) -> &str;

    /// `scheme://bucket/key`, for messages (never a presigned URL).
    fn object_url(&self, key: &str) -> String;

    /// Query parameters that differ between signers of the same object:
    /// Dragonfly leaves them out of the task ID, so every node's URL maps
    /// to one task. The header that carries them replaces dfdaemon's
    /// default list, so the list must be complete.
    fn signing_params(&self) -> &'static [&'static str];

    /// Every model archive under `prefix`, across all pages.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectInfo>>>;

    fn stat<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<ObjectInfo>>;

    fn presign<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<PresignedUrl>>;
}

/// Connects to the store the config names. `ca_pem`: extra CA certificates
/// to trust (`download.ca_cert`), for stores a private CA signed.
pub async fn connect(
    cfg: &ObjectStorageConfig,
    bucket: &str,
    ca_pem: Option<&[u8]>,
) -> Result<Box<dyn ObjectSource>> {
    // `Config::validate` admits only the types matched here.
    Ok(Box::new(s3::S3Source::connect(cfg, bucket, ca_pem).await?))
}

/// Whether an object key names a model archive TorchServe can load.
pub fn is_archive_key(key: &str) -> bool {
    key.ends_with(".mar") && !key.ends_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_only_from_single_part_etags() {
        let info = |etag: &str| ObjectInfo {
            key: "a.mar".into(),
            size: 1,
            etag: Some(etag.into()),
        };
        assert_eq!(
            info("9E107D9D372BB6826BD81D3542A419D6").md5().as_deref(),
            Some("9e107d9d372bb6826bd81d3542a419d6")
        );
        assert_eq!(info("9e107d9d372bb6826bd81d3542a419d6-3").md5(), None);
        assert_eq!(info("xyz").md5(), None);
    }

    #[test]
    fn only_mar_objects_are_archives() {
        assert!(is_archive_key("models/a.mar"));
        assert!(!is_archive_key("models/readme.txt"));
        assert!(!is_archive_key("models/a.mar/"));
    }

    #[test]
    fn presigned_urls_do_not_print() {
        let url = PresignedUrl {
            url: "http://s/b/k?X-Amz-Signature=SECRET".into(),
            expires_at: None,
        };
        assert!(!format!("{url:?}").contains("SECRET"));
    }
}
