//! Azure Blob specifics OpenDAL does not give: where the account's
//! credentials come from (config, connection string, `AZURE_STORAGE_*`) and
//! a read-only Service SAS for one blob.
//!
//! Why a hand-written SAS: OpenDAL 0.55 presigns Azure reads only by
//! appending a configured SAS token, and reqsign's key-based query signing
//! makes an *account* SAS with read, write and delete rights on every
//! container. A URL that passes through the peer's proxy must grant no more
//! than reading that one blob until it expires. Checked against Azurite,
//! which verifies SAS signatures (tests/e2e/stores.rs).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

use crate::config::ObjectStorageConfig;
use crate::error::{CoreError, Result};
use crate::secret::Secret;

/// Query parameters of any Azure SAS (service, account, user delegation):
/// every node signs its own, so Dragonfly must leave them out of the task
/// ID. dfdaemon's default list has none of them.
pub const SIGNING_PARAMS: &[&str] = &[
    "sv", "ss", "srt", "sp", "se", "st", "spr", "sip", "sr", "si", "sig", "sdd", "ses", "skoid",
    "sktid", "skt", "ske", "sks", "skv", "skdutid", "saoid", "suoid", "scid", "sduoid",
];

/// The SAS version signed; its string-to-sign layout is the one below.
const SAS_VERSION: &str = "2020-12-06";
/// The start is set back this much: a node's clock may run ahead of Azure's.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Characters of a blob path left as they are (`/` separates segments).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How an Azure account is reached and read.
pub struct AzureAccount {
    /// `https://{account}.blob.core.windows.net`, or the configured one.
    pub endpoint: String,
    pub account: String,
    pub credential: AzureCredential,
}

/// What the account is read with; the key wins when both are given.
pub enum AzureCredential {
    /// The account key (base64): Shared Key for listing, and a Service SAS
    /// per blob signed here.
    Key(Secret<String>),
    /// A SAS token (without `?`) with read and list rights, used as it is.
    SasToken(Secret<String>),
}

impl AzureAccount {
    /// From the config first, then the connection string, then the
    /// environment names the Azure CLI and SDKs use.
    pub fn from_config(cfg: &ObjectStorageConfig) -> Result<AzureAccount> {
        Self::resolve(cfg, |name| std::env::var(name).ok())
    }

    fn resolve(cfg: &ObjectStorageConfig, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let fail = |reason: String| CoreError::Config {
            path: cfg.source.clone(),
            reason,
        };
        let connection = cfg
            .connection_string
            .as_ref()
            .map(|c| c.expose().clone())
            .or_else(|| env("AZURE_STORAGE_CONNECTION_STRING"))
            .map(|text| parse_connection_string(&text))
            .unwrap_or_default();
        let field = |name: &str| {
            connection
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let account = cfg
            .account_name
            .clone()
            .or_else(|| field("AccountName"))
            .or_else(|| env("AZURE_STORAGE_ACCOUNT"))
            .ok_or_else(|| {
                fail("key 'object_storage.account_name': missing (or set connection_string, or AZURE_STORAGE_ACCOUNT)".into())
            })?;
        let key = cfg
            .account_key
            .as_ref()
            .map(|k| k.expose().clone())
            .or_else(|| field("AccountKey"))
            .or_else(|| env("AZURE_STORAGE_KEY"))
            .map(Secret::new);
        if let Some(key) = &key {
            base64::engine::general_purpose::STANDARD
                .decode(key.expose().trim())
                .map_err(|_| fail("key 'object_storage.account_key': not base64".into()))?;
        }
        let sas_token = cfg
            .sas_token
            .as_ref()
            .map(|t| t.expose().clone())
            .or_else(|| field("SharedAccessSignature"))
            .or_else(|| env("AZURE_STORAGE_SAS_TOKEN"))
            .map(|t| Secret::new(t.trim_start_matches('?').to_string()));
        let credential = match (key, sas_token) {
            (Some(key), _) => AzureCredential::Key(key),
            (None, Some(token)) => AzureCredential::SasToken(token),
            (None, None) => return Err(fail(
                "type abs needs 'object_storage.account_key' or 'sas_token' (or a connection string, or AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN)".into(),
            )),
        };
        let endpoint = match (&cfg.endpoint, field("BlobEndpoint")) {
            (Some(endpoint), _) => endpoint.expose().to_string(),
            (None, Some(endpoint)) => endpoint,
            (None, None) => {
                let suffix = field("EndpointSuffix").unwrap_or_else(|| "core.windows.net".into());
                let scheme = field("DefaultEndpointsProtocol").unwrap_or_else(|| "https".into());
                format!("{scheme}://{account}.blob.{suffix}")
            }
        };
        Ok(AzureAccount {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            account,
            credential,
        })
    }

    /// A URL that reads one blob until `expiry` from now: a Service SAS
    /// when the account key is known, else the configured SAS token.
    pub fn presign(&self, container: &str, blob: &str, expiry: Duration) -> Result<Secret<String>> {
        let url = format!(
            "{}/{}/{}",
            self.endpoint,
            container,
            utf8_percent_encode(blob, PATH)
        );
        let query = match &self.credential {
            AzureCredential::Key(key) => {
                let now = SystemTime::now();
                service_sas(
                    &self.account,
                    key.expose(),
                    container,
                    blob,
                    now - CLOCK_SKEW,
                    now + expiry,
                )?
            }
            AzureCredential::SasToken(token) => token.expose().clone(),
        };
        Ok(Secret::new(format!("{url}?{query}")))
    }
}

/// The query of a read-only Service SAS for one blob (`sr=b`, `sp=r`).
/// Layout: learn.microsoft.com/rest/api/storageservices/create-service-sas,
/// version 2020-12-06 and later.
fn service_sas(
    account: &str,
    key_base64: &str,
    container: &str,
    blob: &str,
    start: SystemTime,
    expiry: SystemTime,
) -> Result<String> {
    let (st, se) = (utc_second(start), utc_second(expiry));
    let resource = format!("/blob/{account}/{container}/{blob}");
    // sp, st, se, resource, si, sip, spr, sv, sr, snapshot, ses, then the
    // five response-header overrides (rscc, rscd, rsce, rscl, rsct).
    let to_sign = format!("r\n{st}\n{se}\n{resource}\n\n\n\n{SAS_VERSION}\nb\n\n\n\n\n\n\n");
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_base64.trim())
        .map_err(|_| CoreError::Internal("the Azure account key is not base64".into()))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key).map_err(|_| CoreError::Internal("HMAC key".into()))?;
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let q = |v: &str| utf8_percent_encode(v, QUERY).to_string();
    Ok(format!(
        "sv={SAS_VERSION}&st={}&se={}&sr=b&sp=r&sig={}",
        q(&st),
        q(&se),
        q(&sig)
    ))
}

/// `2026-12-04T19:58:44Z`: the UTC form SAS times are written in.
fn utc_second(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `Key=Value;...` pairs of an Azure connection string.
fn parse_connection_string(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_seconds() {
        assert_eq!(utc_second(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_414_324);
        assert_eq!(utc_second(t), "2026-12-04T19:58:44Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_second(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn the_sas_grants_reading_one_blob() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_414_324);
        let sas = service_sas(
            "acct",
            "a2V5",
            "models",
            "a b.mar",
            t,
            t + Duration::from_secs(60),
        )
        .unwrap();
        assert!(sas.starts_with("sv=2020-12-06&st=2026-12-04T19%3A58%3A44Z&se=2026-12-04T19%3A59%3A44Z&sr=b&sp=r&sig="), "{sas}");
        // Another key, another signature; the same inputs, the same one.
        let other = service_sas(
            "acct",
            "a2V6",
            "models",
            "a b.mar",
            t,
            t + Duration::from_secs(60),
        )
        .unwrap();
        assert_ne!(sas, other);
        assert_eq!(
            sas,
            service_sas(
                "acct",
                "a2V5",
                "models",
                "a b.mar",
                t,
                t + Duration::from_secs(60)
            )
            .unwrap()
        );
    }

    #[test]
    fn account_comes_from_config_then_connection_string_then_env() {
        let cfg: ObjectStorageConfig = serde_json::from_str(
            r#"{"type": "abs", "connection_string": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"}"#,
        )
        .unwrap();
        let account = AzureAccount::resolve(&cfg, |_| None).unwrap();
        assert_eq!(account.account, "devstoreaccount1");
        assert_eq!(account.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        let env_only: ObjectStorageConfig = serde_json::from_str(r#"{"type": "abs"}"#).unwrap();
        let account = AzureAccount::resolve(&env_only, |name| match name {
            "AZURE_STORAGE_ACCOUNT" => Some("acct".into()),
            "AZURE_STORAGE_SAS_TOKEN" => Some("?sv=x&sig=y".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(account.endpoint, "https://acct.blob.core.windows.net");
        let url = account
            .presign("c", "k.mar", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            url.expose(),
            "https://acct.blob.core.windows.net/c/k.mar?sv=x&sig=y"
        );
        let err = AzureAccount::resolve(&env_only, |_| None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("account_name"), "{err}");
    }
}
