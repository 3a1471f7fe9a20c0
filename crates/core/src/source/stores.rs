//! The OpenDAL operator for each store type from `object_storage`, and the
//! query parameters each type's signer writes. Credentials not in the file
//! come from each cloud's usual environment, read by OpenDAL's loaders
//! (`GOOGLE_APPLICATION_CREDENTIALS` and the gcloud ADC file,
//! `ALIBABA_CLOUD_*`, `HUAWEI_CLOUD_*`, `TENCENTCLOUD_*`) or by [`azure`].

use opendal::services::{Azblob, Cos, Gcs, Obs, Oss};
use opendal::Operator;

use super::azure::{self, AzureAccount, AzureCredential};
use crate::config::{ObjectStorageConfig, StoreKind};
use crate::error::{CoreError, Result};

/// GCS V4 query signing (the XML API URLs OpenDAL presigns).
const GCS_PARAMS: &[&str] = &[
    "X-Goog-Algorithm",
    "X-Goog-Credential",
    "X-Goog-Date",
    "X-Goog-Expires",
    "X-Goog-SignedHeaders",
    "X-Goog-Signature",
];
/// OSS V1, V2 and V4 query signing; V1's token is `security-token`
/// (dfdaemon's default list spells it `SecurityToken`, which matches no
/// URL).
const OSS_PARAMS: &[&str] = &[
    "OSSAccessKeyId",
    "Expires",
    "Signature",
    "security-token",
    "SecurityToken",
    "x-oss-signature-version",
    "x-oss-credential",
    "x-oss-date",
    "x-oss-expires",
    "x-oss-access-key-id",
    "x-oss-additional-headers",
    "x-oss-security-token",
    "x-oss-signature",
];
/// OBS query signing, every token spelling the signers use.
const OBS_PARAMS: &[&str] = &[
    "AccessKeyId",
    "Expires",
    "Signature",
    "x-obs-security-token",
    "X-Obs-Security-Token",
    "security-token",
    "X-Obs-Date",
];
/// COS query signing.
const COS_PARAMS: &[&str] = &[
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
    "x-cos-security-token",
];

/// The parameters Dragonfly must leave out of the task ID for `kind`.
pub fn signing_params(kind: StoreKind) -> &'static [&'static str] {
    match kind {
        StoreKind::S3 => super::s3::SIGNING_PARAMS,
        StoreKind::Gcs => GCS_PARAMS,
        StoreKind::Abs => azure::SIGNING_PARAMS,
        StoreKind::Oss => OSS_PARAMS,
        StoreKind::Obs => OBS_PARAMS,
        StoreKind::Cos => COS_PARAMS,
    }
}

/// The store's service URL: configured, or the cloud's for the region.
fn endpoint(cfg: &ObjectStorageConfig) -> Option<String> {
    if let Some(endpoint) = &cfg.endpoint {
        return Some(endpoint.expose().trim_end_matches('/').to_string());
    }
    let region = cfg.region.as_deref()?;
    match cfg.kind {
        StoreKind::Oss => Some(format!("https://oss-{region}.aliyuncs.com")),
        StoreKind::Obs => Some(format!("https://obs.{region}.myhuaweicloud.com")),
        StoreKind::Cos => Some(format!("https://cos.{region}.myqcloud.com")),
        _ => None,
    }
}

fn config_error(cfg: &ObjectStorageConfig, reason: String) -> CoreError {
    CoreError::Config {
        path: cfg.source.clone(),
        reason,
    }
}

/// A token OpenDAL 0.55 cannot take from the file for this type: say
/// where it does read one.
fn no_token_key(cfg: &ObjectStorageConfig, env: &str) -> Result<()> {
    match &cfg.session_token {
        Some(_) => Err(config_error(cfg, format!(
            "key 'object_storage.session_token': type {} reads its security token from {env}, not the file",
            cfg.kind.name()
        ))),
        None => Ok(()),
    }
}

/// The operator for a non-S3 store, reading `bucket`; the Azure account
/// too for `abs` (its presigning is ours, see [`azure`]).
pub fn operator(
    cfg: &ObjectStorageConfig,
    bucket: &str,
) -> Result<(Operator, Option<AzureAccount>)> {
    let built = |r: opendal::Result<Operator>| {
        r.map_err(|e| {
            config_error(
                cfg,
                format!(
                    "{} store: {}",
                    cfg.kind.name(),
                    super::cloud::message_of(&e)
                ),
            )
        })
    };
    let key = |s: &Option<crate::secret::Secret<String>>| s.as_ref().map(|v| v.expose().clone());
    let endpoint = endpoint(cfg);
    match cfg.kind {
        StoreKind::S3 => Err(CoreError::Internal("S3 is read through aws-sdk-s3".into())),
        StoreKind::Gcs => {
            let mut b = Gcs::default().bucket(bucket);
            if let Some(endpoint) = &endpoint {
                b = b.endpoint(endpoint);
            }
            if let Some(path) = &cfg.service_account_path {
                std::fs::metadata(path).map_err(|e| {
                    config_error(
                        cfg,
                        format!(
                            "key 'object_storage.service_account_path': {}: {e}",
                            path.display()
                        ),
                    )
                })?;
                b = b.credential_path(&path.to_string_lossy());
            }
            if let Some(token) = key(&cfg.token) {
                b = b.token(token);
            }
            Ok((built(Operator::new(b).map(|o| o.finish()))?, None))
        }
        StoreKind::Abs => {
            let account = AzureAccount::from_config(cfg)?;
            let mut b = Azblob::default()
                .container(bucket)
                .endpoint(&account.endpoint)
                .account_name(&account.account);
            b = match &account.credential {
                AzureCredential::Key(key) => b.account_key(key.expose()),
                AzureCredential::SasToken(token) => b.sas_token(token.expose()),
            };
            Ok((built(Operator::new(b).map(|o| o.finish()))?, Some(account)))
        }
        StoreKind::Oss => {
            // Virtual-hosted only: reqsign 0.16.5 signs a path-style OSS
            // request with the bucket twice (`/bucket/bucket/key`).
            let mut b = Oss::default()
                .bucket(bucket)
                .endpoint(&endpoint.unwrap_or_default());
            if let (Some(ak), Some(sk)) = (key(&cfg.access_key), key(&cfg.secret_key)) {
                b = b.access_key_id(&ak).access_key_secret(&sk);
            }
            if let Some(token) = key(&cfg.session_token) {
                b = b.security_token(&token);
            }
            Ok((built(Operator::new(b).map(|o| o.finish()))?, None))
        }
        StoreKind::Obs => {
            no_token_key(cfg, "HUAWEI_CLOUD_SECURITY_TOKEN")?;
            let mut b = Obs::default()
                .bucket(bucket)
                .endpoint(&endpoint.unwrap_or_default());
            if let (Some(ak), Some(sk)) = (key(&cfg.access_key), key(&cfg.secret_key)) {
                b = b.access_key_id(&ak).secret_access_key(&sk);
            }
            Ok((built(Operator::new(b).map(|o| o.finish()))?, None))
        }
        StoreKind::Cos => {
            no_token_key(cfg, "TENCENTCLOUD_SECURITY_TOKEN")?;
            let mut b = Cos::default()
                .bucket(bucket)
                .endpoint(&endpoint.unwrap_or_default());
            if let (Some(ak), Some(sk)) = (key(&cfg.access_key), key(&cfg.secret_key)) {
                b = b.secret_id(&ak).secret_key(&sk);
            }
            Ok((built(Operator::new(b).map(|o| o.finish()))?, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_urls_map_to_one_task_and_each_type_has_its_list() {
        // The parameters a Service SAS carries that differ between nodes.
        for p in ["st", "se", "sig"] {
            assert!(signing_params(StoreKind::Abs).contains(&p));
        }
        assert!(signing_params(StoreKind::Oss).contains(&"security-token"));
        assert!(signing_params(StoreKind::Gcs).contains(&"X-Goog-Signature"));
        assert!(signing_params(StoreKind::Cos).contains(&"q-signature"));
        assert!(signing_params(StoreKind::Obs).contains(&"Signature"));
    }

    #[test]
    fn a_missing_key_file_is_named_with_the_config_file_and_key() {
        let text = r#"{"object_storage": {"type": "gcs", "service_account_path": "/nonexistent/sa.json"}}"#;
        let path = std::path::Path::new("/etc/df/config.json");
        let config = crate::config::Config::parse(text.as_bytes(), path).unwrap();
        let err = operator(&config.object_storage, "models")
            .err()
            .unwrap()
            .to_string();
        for part in [
            "/etc/df/config.json",
            "object_storage.service_account_path",
            "/nonexistent/sa.json",
        ] {
            assert!(err.contains(part), "{err}");
        }
    }

    #[test]
    fn region_gives_the_clouds_endpoint() {
        let cfg: ObjectStorageConfig =
            serde_json::from_str(r#"{"type": "cos", "region": "ap-singapore"}"#).unwrap();
        assert_eq!(
            endpoint(&cfg).as_deref(),
            Some("https://cos.ap-singapore.myqcloud.com")
        );
    }
}
