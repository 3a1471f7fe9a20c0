//! Object stores behind one trait: list the model archives under a prefix,
//! stat one, and presign the GET that the Dragonfly peer fetches (the same
//! URL fetched without the peer is the direct fallback). S3 is read through
//! aws-sdk-s3 ([`s3`]); GCS, Azure Blob, OSS, OBS and COS through OpenDAL
//! ([`cloud`], each type's operator and signing parameters in [`stores`],
//! Azure's own SAS in [`azure`]).
//!
//! May import: `error`, `config`, `digest`, `secret`, `hooks`.

pub mod azure;
pub mod cloud;
pub mod s3;
pub mod stores;

use crate::config::{ObjectStorageConfig, StoreKind};
use crate::digest::Digest;
use crate::error::Result;
use crate::BoxFuture;

pub use crate::secret::PresignedUrl;

/// What the pull needs to know of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// The store's version tag of the content (an S3 ETag, unquoted).
    pub etag: Option<String>,
    /// A digest of the whole content, when the store gives one that really
    /// is one (`stat` only; a listing does not say).
    pub digest: Option<Digest>,
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

    /// Every object under `prefix`, across all pages (folder markers, keys
    /// ending in `/`, left out): the pull picks archives and model
    /// directories from them.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectInfo>>>;

    /// Size, version and, where the store has one, the content's digest.
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
    Ok(match cfg.kind {
        StoreKind::S3 => Box::new(s3::S3Source::connect(cfg, bucket, ca_pem).await?),
        _ => Box::new(cloud::CloudSource::connect(cfg, bucket, ca_pem)?),
    })
}

/// The endings of model archive keys (`format::Form::ENDINGS`, which this
/// stage cannot import, names the same; a test in `pull::plan` checks).
const ARCHIVE_ENDINGS: [&str; 3] = [".mar", ".tar.gz", ".tgz"];

/// Whether an object key names a model archive TorchServe can load.
pub fn is_archive_key(key: &str) -> bool {
    ARCHIVE_ENDINGS.iter().any(|ending| key.ends_with(ending))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_archive_objects_are_archives() {
        assert!(is_archive_key("models/a.mar"));
        assert!(is_archive_key("models/a.tar.gz"));
        assert!(is_archive_key("models/a.tgz"));
        assert!(!is_archive_key("models/readme.txt"));
        assert!(!is_archive_key("models/a.mar/"));
        assert!(!is_archive_key("models/a.tar"));
    }
}
