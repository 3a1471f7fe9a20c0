//! The HTTP clients of a pull: one through the peer's proxy, and one
//! straight to the store for the configured fallback. Both trust the
//! config's extra CA, never decompress (the bytes are the archive) and give
//! up connecting after `connect_timeout_secs`.

use std::time::Duration;

use crate::config::{Config, Fallback};
use crate::error::{describe_http_error, CoreError, Result};

pub struct Clients {
    pub via_peer: reqwest::Client,
    pub direct: Option<reqwest::Client>,
}

impl Clients {
    pub fn new(config: &Config) -> Result<Self> {
        let download = &config.download;
        let fail = |key: &str, reason: String| CoreError::Config {
            path: config.source.clone(),
            reason: format!("key '{key}': {reason}"),
        };
        let mut proxy = reqwest::Proxy::all(config.addr.expose())
            .map_err(|e| fail("addr", describe_http_error(e)))?;
        if let Some(auth) = &download.proxy_basic_auth {
            let (user, password) = auth.expose();
            proxy = proxy.basic_auth(user, password);
        }
        let ca_cert = match config.ca_cert_pem()? {
            Some(pem) => Some(reqwest::Certificate::from_pem(&pem).map_err(|e| {
                fail(
                    "download.ca_cert",
                    format!("not a usable PEM certificate: {}", describe_http_error(e)),
                )
            })?),
            None => None,
        };
        let builder = || {
            let builder = reqwest::Client::builder();
            let builder = match &ca_cert {
                Some(cert) => builder.add_root_certificate(cert.clone()),
                None => builder,
            };
            builder
                .connect_timeout(Duration::from_secs(download.connect_timeout_secs))
                .danger_accept_invalid_certs(!download.tls_verify)
                .no_gzip()
                .no_brotli()
                .no_deflate()
                .no_zstd()
        };
        let build = |builder: reqwest::ClientBuilder| {
            builder
                .build()
                .map_err(|e| CoreError::Internal(describe_http_error(e)))
        };
        Ok(Clients {
            via_peer: build(builder().proxy(proxy))?,
            direct: match download.fallback {
                Fallback::None => None,
                Fallback::Source => Some(build(builder().no_proxy())?),
            },
        })
    }
}
