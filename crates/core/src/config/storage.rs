//! `object_storage`: which store models live in and how to reach it. One
//! struct for every store type, so the pure-Java endpoint's keys are read
//! verbatim (`bucket_name`, `access_key_id`, `container_name`, ...); keys
//! that belong to another type are refused by name.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::secret::{MaskedUrl, Secret};

/// The store types, as `object_storage.type` and URIs in `model=` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// AWS S3 and S3-compatible stores.
    #[default]
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Abs,
    /// Alibaba Cloud OSS.
    Oss,
    /// Huawei Cloud OBS.
    Obs,
    /// Tencent Cloud COS.
    Cos,
}

impl StoreKind {
    pub const ALL: [StoreKind; 6] = [
        StoreKind::S3,
        StoreKind::Gcs,
        StoreKind::Abs,
        StoreKind::Oss,
        StoreKind::Obs,
        StoreKind::Cos,
    ];

    /// The name in `object_storage.type`.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::S3 => "s3",
            StoreKind::Gcs => "gcs",
            StoreKind::Abs => "abs",
            StoreKind::Oss => "oss",
            StoreKind::Obs => "obs",
            StoreKind::Cos => "cos",
        }
    }

    /// The URI scheme of its objects, as Dragonfly's `dfget` writes them.
    pub fn scheme(self) -> &'static str {
        match self {
            StoreKind::Gcs => "gs",
            other => other.name(),
        }
    }

    /// A type name or URI scheme, any case (the Java endpoint compared
    /// without case); the usual other spellings too.
    pub fn parse(name: &str) -> Option<StoreKind> {
        match name.to_ascii_lowercase().as_str() {
            "s3" => Some(StoreKind::S3),
            "gcs" | "gs" => Some(StoreKind::Gcs),
            "abs" | "azblob" | "azure" => Some(StoreKind::Abs),
            "oss" => Some(StoreKind::Oss),
            "obs" => Some(StoreKind::Obs),
            "cos" => Some(StoreKind::Cos),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for StoreKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        StoreKind::parse(&name).ok_or_else(|| {
            let known: Vec<&str> = StoreKind::ALL.iter().map(|k| k.name()).collect();
            serde::de::Error::custom(format!(
                "unknown storage type {name:?}; supported: {}",
                known.join(", ")
            ))
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStorageConfig {
    #[serde(rename = "type", default)]
    pub kind: StoreKind,
    /// The bucket (Azure: the container; `container_name` is the Java
    /// endpoint's name for it).
    #[serde(default, alias = "container_name")]
    pub bucket_name: Option<String>,
    /// Key prefix that `model` names are relative to.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub region: Option<String>,
    /// The store's service URL; unset: the cloud's public one (S3, GCS,
    /// Azure), or one made from `region` (OSS, OBS, COS).
    #[serde(default)]
    pub endpoint: Option<MaskedUrl>,
    /// S3: path-style URLs; defaults to true when `endpoint` is set.
    #[serde(default)]
    pub force_path_style: Option<bool>,
    /// S3, OSS, OBS, COS: the access key pair (OSS names them
    /// `access_key_id`/`access_key_secret`, COS `secret_id`/`secret_key`).
    #[serde(default, alias = "access_key_id", alias = "secret_id")]
    pub access_key: Option<Secret<String>>,
    #[serde(default, alias = "access_key_secret")]
    pub secret_key: Option<Secret<String>>,
    /// A temporary credential's token (S3 session token, OSS/OBS/COS
    /// security token).
    #[serde(default, alias = "security_token")]
    pub session_token: Option<Secret<String>>,
    /// GCS: accepted for the Java endpoint's configs; reads need none.
    #[serde(default)]
    pub project_id: Option<String>,
    /// GCS: a service-account key file (else `GOOGLE_APPLICATION_CREDENTIALS`,
    /// then the gcloud ADC file). Presigning needs a service-account key.
    #[serde(default)]
    pub service_account_path: Option<PathBuf>,
    /// GCS: a ready OAuth2 access token for listing and stat (short-lived;
    /// or any word for an emulator that checks none).
    #[serde(default)]
    pub token: Option<Secret<String>>,
    /// Azure: the storage account (else from the connection string or
    /// `AZURE_STORAGE_ACCOUNT`).
    #[serde(default)]
    pub account_name: Option<String>,
    /// Azure: the account key, base64 (else `AZURE_STORAGE_KEY`).
    #[serde(default)]
    pub account_key: Option<Secret<String>>,
    /// Azure: a SAS token with read and list rights (else
    /// `AZURE_STORAGE_SAS_TOKEN`).
    #[serde(default)]
    pub sas_token: Option<Secret<String>>,
    /// Azure: a connection string (else `AZURE_STORAGE_CONNECTION_STRING`).
    #[serde(default)]
    pub connection_string: Option<Secret<String>>,
    #[serde(default = "default_presign_expiry_secs")]
    pub presign_expiry_secs: u64,
    /// Deadline of each store API call (list, stat, presign).
    #[serde(default = "default_operation_timeout_secs")]
    pub operation_timeout_secs: u64,
    /// Buckets a request may name with `bucket=`; unset: `bucket_name` only.
    #[serde(default)]
    pub allowed_buckets: Option<Vec<String>>,
    /// Prefixes a request may name with `prefix=` (it must start with one);
    /// unset: `prefix` only.
    #[serde(default)]
    pub allowed_prefixes: Option<Vec<String>>,
    /// The config file this was read from, named in the stores' errors
    /// (not a key of the file).
    #[serde(skip)]
    pub source: PathBuf,
}

fn default_operation_timeout_secs() -> u64 {
    60
}
fn default_presign_expiry_secs() -> u64 {
    3600
}

impl ObjectStorageConfig {
    pub fn path_style(&self) -> bool {
        self.force_path_style.unwrap_or(self.endpoint.is_some())
    }

    /// The buckets a request may read: `allowed_buckets`, else the
    /// configured bucket.
    pub fn allowed_buckets(&self) -> Vec<String> {
        match &self.allowed_buckets {
            Some(buckets) => buckets.clone(),
            None => self.bucket_name.iter().cloned().collect(),
        }
    }

    /// The prefixes a request may read under: `allowed_prefixes`, else the
    /// configured prefix.
    pub fn allowed_prefixes(&self) -> Vec<String> {
        match &self.allowed_prefixes {
            Some(prefixes) => prefixes.clone(),
            None => vec![self.prefix.clone()],
        }
    }

    /// Keys that only some types read: given to another type, they would
    /// be silently ignored, so they are refused by name.
    fn keys_by_type(&self) -> [(&'static str, bool, &'static [StoreKind]); 10] {
        use StoreKind::*;
        [
            (
                "force_path_style",
                self.force_path_style.is_some(),
                &[S3, Oss],
            ),
            (
                "access_key",
                self.access_key.is_some(),
                &[S3, Oss, Obs, Cos],
            ),
            (
                "secret_key",
                self.secret_key.is_some(),
                &[S3, Oss, Obs, Cos],
            ),
            (
                "session_token",
                self.session_token.is_some(),
                &[S3, Oss, Obs, Cos],
            ),
            (
                "service_account_path",
                self.service_account_path.is_some(),
                &[Gcs],
            ),
            ("token", self.token.is_some(), &[Gcs]),
            ("account_name", self.account_name.is_some(), &[Abs]),
            ("account_key", self.account_key.is_some(), &[Abs]),
            ("sas_token", self.sas_token.is_some(), &[Abs]),
            (
                "connection_string",
                self.connection_string.is_some(),
                &[Abs],
            ),
        ]
    }

    pub(super) fn validate(&self) -> std::result::Result<(), String> {
        let kind = self.kind;
        for (key, given, kinds) in self.keys_by_type() {
            if given && !kinds.contains(&kind) {
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                return Err(format!(
                    "key 'object_storage.{key}': applies to type {}, not {}",
                    names.join(", "),
                    kind.name()
                ));
            }
        }
        if let Some(endpoint) = &self.endpoint {
            let url = url::Url::parse(endpoint.expose())
                .map_err(|e| format!("key 'object_storage.endpoint': not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(
                    "key 'object_storage.endpoint': must be an http:// or https:// URL".into(),
                );
            }
        }
        if self.access_key.is_some() != self.secret_key.is_some() {
            return Err(
                "keys 'object_storage.access_key' and 'object_storage.secret_key' must be given together (or both left out to use the store's credential chain)"
                    .into(),
            );
        }
        if matches!(kind, StoreKind::Oss | StoreKind::Obs | StoreKind::Cos)
            && self.endpoint.is_none()
            && self.region.is_none()
        {
            return Err(format!(
                "key 'object_storage.endpoint': type {} needs its endpoint (or 'region' to derive it)",
                kind.name()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> std::result::Result<ObjectStorageConfig, String> {
        let cfg: ObjectStorageConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        cfg.validate().map(|()| cfg)
    }

    #[test]
    fn the_java_endpoints_keys_are_read_verbatim() {
        let gcs = parse(r#"{"type": "gcs", "bucket_name": "m", "project_id": "p", "service_account_path": "/k.json"}"#).unwrap();
        assert_eq!(gcs.kind, StoreKind::Gcs);
        let oss = parse(r#"{"type": "OSS", "bucket_name": "m", "endpoint": "https://oss-cn-hangzhou.aliyuncs.com", "access_key_id": "a", "access_key_secret": "s"}"#).unwrap();
        assert_eq!(oss.kind, StoreKind::Oss);
        assert_eq!(oss.access_key.unwrap().expose(), "a");
        let abs = parse(r#"{"type": "abs", "account_name": "acct", "account_key": "a2V5", "container_name": "models"}"#).unwrap();
        assert_eq!(abs.bucket_name.as_deref(), Some("models"));
    }

    #[test]
    fn keys_of_another_type_and_unknown_types_are_refused_by_name() {
        let err = parse(r#"{"type": "s3", "account_key": "x"}"#).unwrap_err();
        assert!(
            err.contains("object_storage.account_key") && err.contains("abs"),
            "{err}"
        );
        let err = parse(r#"{"type": "gcs", "access_key": "a", "secret_key": "b"}"#).unwrap_err();
        assert!(err.contains("access_key"), "{err}");
        let err = parse(r#"{"type": "ftp"}"#).unwrap_err();
        assert!(
            err.contains("unknown storage type") && err.contains("cos"),
            "{err}"
        );
        let err = parse(r#"{"type": "cos", "bucket_name": "m-1250000000"}"#).unwrap_err();
        assert!(err.contains("endpoint"), "{err}");
    }

    #[test]
    fn uri_schemes_name_their_type() {
        for kind in StoreKind::ALL {
            assert_eq!(StoreKind::parse(kind.scheme()), Some(kind));
            assert_eq!(StoreKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(StoreKind::parse("AZBLOB"), Some(StoreKind::Abs));
        assert_eq!(StoreKind::parse("ftp"), None);
    }
}
