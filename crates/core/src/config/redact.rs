//! The config as `GET /dragonfly` shows it: every credential masked.

use std::collections::BTreeMap;

use super::Config;
use crate::secret::MaskedUrl;

/// Headers whose values carry no credential and are shown as they are;
/// every other header value is masked.
const SHOWN_HEADERS: &[&str] = &[
    "x-dragonfly-tag",
    "x-dragonfly-application",
    "x-dragonfly-use-p2p",
    "x-dragonfly-piece-length",
    "x-dragonfly-priority",
    "x-dragonfly-scheduling-policy",
    "x-dragonfly-filtered-query-params",
    "x-dragonfly-content-for-calculating-task-id",
];

impl Config {
    /// The config as `GET /dragonfly` shows it: secrets masked.
    pub fn redacted(&self) -> serde_json::Value {
        let mask = |v: &Option<crate::secret::Secret<String>>| v.as_ref().map(|_| "***");
        let storage = &self.object_storage;
        let headers: BTreeMap<&String, &str> = self
            .header
            .iter()
            .map(|(k, v)| {
                let shown = SHOWN_HEADERS.contains(&k.to_ascii_lowercase().as_str());
                (k, if shown { v.expose().as_str() } else { "***" })
            })
            .collect();
        serde_json::json!({
            "source": self.source,
            "addr": self.addr.shown(),
            "header": headers,
            "filter": self.filter,
            "object_storage": {
                "type": storage.kind.name(),
                "bucket_name": storage.bucket_name,
                "prefix": storage.prefix,
                "region": storage.region,
                "endpoint": storage.endpoint.as_ref().map(MaskedUrl::shown),
                "force_path_style": storage.path_style(),
                "access_key": mask(&storage.access_key),
                "secret_key": mask(&storage.secret_key),
                "session_token": mask(&storage.session_token),
                "project_id": storage.project_id,
                "service_account_path": storage.service_account_path,
                "token": mask(&storage.token),
                "account_name": storage.account_name,
                "account_key": mask(&storage.account_key),
                "sas_token": mask(&storage.sas_token),
                "connection_string": mask(&storage.connection_string),
                "credentials": credential_source(storage),
                "presign_expiry_secs": storage.presign_expiry_secs,
                "operation_timeout_secs": storage.operation_timeout_secs,
                "allowed_buckets": storage.allowed_buckets(),
                "allowed_prefixes": storage.allowed_prefixes(),
            },
            "load_model": self.load_model,
            "register": self.register,
            "register_as": self.register_as,
            "unpack": self.unpack,
            "preheat": {
                "manager": self.preheat.manager.as_ref().map(MaskedUrl::shown),
                "token": mask(&self.preheat.token),
                "scope": self.preheat.scope,
                "count": self.preheat.count,
                "percentage": self.preheat.percentage,
                "ips": self.preheat.ips,
                "scheduler_cluster_ids": self.preheat.scheduler_cluster_ids,
                "timeout_secs": self.preheat.timeout_secs,
            },
            "download": {
                "fallback": self.download.fallback,
                "concurrency": self.download.concurrency,
                "retries": self.download.retries,
                "retry_backoff_ms": self.download.retry_backoff_ms,
                "connect_timeout_secs": self.download.connect_timeout_secs,
                "read_timeout_secs": self.download.read_timeout_secs,
                "verify_checksum": self.download.verify_checksum,
                "hard_link": self.download.hard_link,
                "hard_link_active": self.hard_link_active(),
                "tls_verify": self.download.tls_verify,
                "ca_cert": self.download.ca_cert,
                "total_timeout_secs": self.download.total_timeout_secs,
                "lock_wait_secs": self.download.lock_wait_secs,
                "file_concurrency": self.download.file_concurrency,
                "proxy_basic_auth": self.download.proxy_basic_auth.as_ref().map(|_| "*** (from environment)"),
            },
        })
    }
}

/// Where the store's credentials come from, in words (never the values).
fn credential_source(storage: &crate::config::ObjectStorageConfig) -> &'static str {
    use crate::config::StoreKind;
    let in_file = storage.access_key.is_some()
        || storage.service_account_path.is_some()
        || storage.token.is_some()
        || storage.account_key.is_some()
        || storage.sas_token.is_some()
        || storage.connection_string.is_some();
    match (in_file, storage.kind) {
        (true, _) => "config file",
        (false, StoreKind::S3) => "AWS credential chain",
        (false, StoreKind::Gcs) => "GOOGLE_APPLICATION_CREDENTIALS or the gcloud ADC file",
        (false, StoreKind::Abs) => "AZURE_STORAGE_* environment",
        (false, StoreKind::Oss) => "ALIBABA_CLOUD_* / OSS_* environment",
        (false, StoreKind::Obs) => "HUAWEI_CLOUD_* / OBS_* environment",
        (false, StoreKind::Cos) => "TENCENTCLOUD_* environment",
    }
}
