//! The Dragonfly peer's proxy protocol, in one place: the headers a request
//! carries (P2P on, the query parameters left out of the task ID, the task
//! tag with the object's version, the hard-link request), what the peer's
//! answers mean, and how its errors and the origin's are told apart.

use std::time::SystemTime;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;

use super::FetchTarget;
use crate::config::Config;
use crate::error::{CoreError, Result};

/// Dragonfly's proxy headers (dragonfly-client `src/proxy/header.rs`).
pub mod header {
    pub const FILTERED_QUERY_PARAMS: &str = "X-Dragonfly-Filtered-Query-Params";
    pub const TASK_ID: &str = "X-Dragonfly-Task-ID";
    pub const TAG: &str = "X-Dragonfly-Tag";
    pub const APPLICATION: &str = "X-Dragonfly-Application";
    pub const PIECE_LENGTH: &str = "X-Dragonfly-Piece-Length";
    pub const TASK_DOWNLOAD_FINISHED: &str = "X-Dragonfly-Task-Download-Finished";
    pub const ERROR_TYPE: &str = "X-Dragonfly-Error-Type";
    pub const USE_P2P: &str = "X-Dragonfly-Use-P2P";
    pub const SCHEDULING_POLICY: &str = "X-Dragonfly-Scheduling-Policy";
    pub const OUTPUT_PATH: &str = "X-Dragonfly-Output-Path";
    pub const FORCE_HARD_LINK: &str = "X-Dragonfly-Force-Hard-Link";
}

/// Where the bytes of a pull came from, as far as the peer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServedFrom {
    /// The local peer already had the whole task.
    DragonflyCache,
    /// Through the peer: from other peers or, for the first one, the origin.
    Dragonfly,
    /// Straight from the object store (the configured fallback).
    Source,
}

/// The header value that makes differently signed URLs one Dragonfly task:
/// the store's signing parameters and the config's `filter`, each once.
pub fn filtered_query_params(signing: &[&str], extra: &[String]) -> String {
    let mut params: Vec<&str> = signing.to_vec();
    for name in extra {
        if !params.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            params.push(name);
        }
    }
    params.join(",")
}

/// The headers every request through the peer carries: the config's
/// `header` entries, the filtered query parameters and P2P on.
pub fn peer_headers(config: &Config, signing: &[&str]) -> Result<HeaderMap> {
    let fail = |reason: String| CoreError::Config {
        path: config.source.clone(),
        reason,
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &config.header {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| fail(format!("key 'header': {name:?} is not a valid header name")))?;
        let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
            fail(format!(
                "key 'header.{name}': value is not a valid header value"
            ))
        })?;
        // Kept out of reqwest's debug output of the request.
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let filter = filtered_query_params(signing, &config.filter);
    headers.insert(
        header::FILTERED_QUERY_PARAMS,
        HeaderValue::from_str(&filter)
            .map_err(|_| fail("key 'filter': a name is not valid in a header".into()))?,
    );
    if !headers.contains_key(header::USE_P2P) {
        // Without it the peer only goes P2P for URLs its rules match.
        headers.insert(header::USE_P2P, HeaderValue::from_static("true"));
    }
    if !headers.contains_key(header::SCHEDULING_POLICY) {
        // dfdaemon's `auto` fetches a task of one piece (4 MiB or less)
        // straight from the source on every node: the small files of a
        // model directory would hit the store once per node. `always`
        // shares every task through the scheduler.
        headers.insert(
            header::SCHEDULING_POLICY,
            HeaderValue::from_static("always"),
        );
    }
    Ok(headers)
}

/// `headers` with the object's version added to the task tag (after the
/// configured tag, if any). Dragonfly names a task by URL and tag, not by
/// content: without the version, a new object uploaded under the same key
/// would be served from the old version's task.
/// The URL to ask the proxy for under `download.https_via_peer: tls_rule`:
/// an `https://` URL as `http://` of the same host and port (443 stays
/// implicit, so the task ID is the one a preheat of the `https://` URL
/// makes). dfdaemon's `useTLS: true` rule turns it back into `https://`
/// and fetches it over TLS; signatures do not cover the scheme.
pub fn for_tls_rule(url: &str) -> String {
    match url.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => url.to_string(),
    }
}

pub fn with_version_tag(mut headers: HeaderMap, version: Option<&str>) -> HeaderMap {
    if let Some(version) = version {
        let tag = match headers.get(header::TAG).and_then(|v| v.to_str().ok()) {
            Some(tag) if !tag.is_empty() => format!("{tag};etag={version}"),
            _ => format!("etag={version}"),
        };
        if let Ok(value) = HeaderValue::from_str(&tag) {
            headers.insert(header::TAG, value);
        }
    }
    headers
}

/// Where the peer says the body comes from.
pub fn served_from(finished_header: Option<&str>) -> ServedFrom {
    match finished_header {
        Some("true") => ServedFrom::DragonflyCache,
        _ => ServedFrom::Dragonfly,
    }
}

/// The error an unsuccessful answer stands for: the peer's own fault, or
/// the origin's answer passed through (or given directly).
pub fn error_status(
    peer_addr: &str,
    target: &FetchTarget,
    expires_at: Option<SystemTime>,
    status: StatusCode,
    error_type: Option<String>,
    via_peer: bool,
) -> CoreError {
    let code = status.as_u16();
    if code == 507 {
        // The peer's own disk is full: a Dragonfly fault, not ours.
        return CoreError::Peer {
            addr: peer_addr.to_string(),
            status: code,
            error_type: error_type.unwrap_or_else(|| "dfdaemon".into()),
            object: target.object.clone(),
        };
    }
    match (via_peer, error_type) {
        // Errors the origin gave, passed through by the peer or direct.
        (_, Some(t)) if t == "backend" => {
            origin_error(target, expires_at, code, "through the peer")
        }
        (false, _) => origin_error(target, expires_at, code, "direct"),
        (true, Some(error_type)) => CoreError::Peer {
            addr: peer_addr.to_string(),
            status: code,
            error_type,
            object: target.object.clone(),
        },
        // No error type: a plain proxy in front, or the origin itself.
        (true, None) => origin_error(target, expires_at, code, "through the peer"),
    }
}

fn origin_error(
    target: &FetchTarget,
    expires_at: Option<SystemTime>,
    code: u16,
    how: &str,
) -> CoreError {
    match code {
        403 | 401 => CoreError::StorageDenied {
            status: code,
            message: format!(
                "GET {} {how} was refused: {}",
                target.object,
                refusal_reason(expires_at, SystemTime::now())
            ),
        },
        404 => CoreError::NotFound(format!("object {} not found", target.object)),
        _ if code >= 500 => CoreError::Transfer {
            object: target.object.clone(),
            attempts: 1,
            reason: format!("object store answered {code} {how}"),
        },
        _ => CoreError::Storage(format!("GET {} {how} answered {code}", target.object)),
    }
}

/// Through the peer the store's own explanation is lost (its error body is
/// not passed on), so say what can be known: whether the URL had expired.
fn refusal_reason(expires_at: Option<SystemTime>, now: SystemTime) -> String {
    match expires_at.map(|at| now.duration_since(at)) {
        Some(Ok(late)) => format!(
            "the presigned URL expired {} s before this request (raise object_storage.presign_expiry_secs if downloads outlast it)",
            late.as_secs()
        ),
        _ => "invalid signature or no permission (check the credentials and the bucket policy)"
            .into(),
    }
}

/// The first byte position of a `Content-Range: bytes a-b/n` header.
pub fn parse_content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    #[test]
    fn filter_header_covers_signing_params_and_extras_once() {
        let signing = &["X-Amz-Signature", "X-Amz-Date"];
        let value = filtered_query_params(signing, &["X-Amz-Signature".into(), "Expires".into()]);
        let names: Vec<&str> = value.split(',').collect();
        for p in signing {
            assert!(names.contains(p), "{p} missing");
        }
        assert!(names.contains(&"Expires"));
        assert_eq!(names.iter().filter(|n| **n == "X-Amz-Signature").count(), 1);
    }

    fn headers(config: &str) -> HeaderMap {
        let config = Config::parse(config.as_bytes(), Path::new("/c.json")).unwrap();
        peer_headers(&config, &[]).unwrap()
    }

    #[test]
    fn https_urls_go_to_the_tls_rule_as_http_of_the_same_authority() {
        assert_eq!(
            for_tls_rule("https://s.example/b/k?sig=x"),
            "http://s.example/b/k?sig=x"
        );
        assert_eq!(
            for_tls_rule("https://127.0.0.1:9443/b/k"),
            "http://127.0.0.1:9443/b/k"
        );
        assert_eq!(
            for_tls_rule("http://127.0.0.1:8333/b/k"),
            "http://127.0.0.1:8333/b/k"
        );
    }

    #[test]
    fn the_object_version_is_part_of_the_task_tag() {
        let plain = headers(r#"{"object_storage": {}}"#);
        let tag = |h: &HeaderMap, v| with_version_tag(h.clone(), v).get(header::TAG).cloned();
        assert_eq!(tag(&plain, Some("abc")).unwrap(), "etag=abc");
        assert_eq!(tag(&plain, None), None);
        let tagged = headers(r#"{"object_storage": {}, "header": {"X-Dragonfly-Tag": "models"}}"#);
        assert_eq!(tag(&tagged, Some("abc")).unwrap(), "models;etag=abc");
        assert_eq!(tag(&tagged, None).unwrap(), "models");
        let headers = with_version_tag(tagged, Some("abc"));
        assert_eq!(headers.get_all(header::TAG).iter().count(), 1);
        assert_eq!(headers.get(header::USE_P2P).unwrap(), "true");
    }

    #[test]
    fn a_refusal_says_expired_only_past_the_expiry() {
        let now = SystemTime::now();
        let past = now - Duration::from_secs(5);
        assert!(refusal_reason(Some(past), now).contains("expired 5 s"));
        let future = now + Duration::from_secs(60);
        assert!(!refusal_reason(Some(future), now).contains("expired"));
        assert!(!refusal_reason(None, now).contains("expired"));
    }

    #[test]
    fn content_range_start_is_parsed() {
        assert_eq!(parse_content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(parse_content_range_start("bytes */200"), None);
        assert_eq!(parse_content_range_start("items 1-2/3"), None);
    }
}
