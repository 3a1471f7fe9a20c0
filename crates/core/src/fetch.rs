//! Downloads one object through the Dragonfly peer's HTTP proxy into a
//! temporary file of the model store.
//!
//! The network side receives chunks and batches them into 1 MiB blocks; a
//! blocking writer thread appends them to the file and computes the MD5, so
//! hashing and disk writes never stall the socket and memory stays bounded
//! (a few MiB per pull, whatever the archive size). A broken transfer is
//! retried with backoff and resumed with a `Range` request when the peer
//! honours it; the length and, when the store gave one, the MD5 are checked
//! before the caller may commit the file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use md5::{Digest, Md5};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use tokio::sync::mpsc;

use crate::config::{Config, Fallback};
use crate::error::{describe_http_error, CoreError, Result};
use crate::progress::Progress;
use crate::store::{ModelStore, TempArchive};
use crate::unpack::StreamFeed;

/// Dragonfly's proxy headers (dragonfly-client `src/proxy/header.rs`).
pub mod header {
    pub const FILTERED_QUERY_PARAMS: &str = "X-Dragonfly-Filtered-Query-Params";
    pub const TASK_ID: &str = "X-Dragonfly-Task-ID";
    pub const TAG: &str = "X-Dragonfly-Tag";
    pub const TASK_DOWNLOAD_FINISHED: &str = "X-Dragonfly-Task-Download-Finished";
    pub const ERROR_TYPE: &str = "X-Dragonfly-Error-Type";
    pub const USE_P2P: &str = "X-Dragonfly-Use-P2P";
    pub const OUTPUT_PATH: &str = "X-Dragonfly-Output-Path";
    pub const FORCE_HARD_LINK: &str = "X-Dragonfly-Force-Hard-Link";
}

/// Query parameters of a presigned S3 URL that differ between signers of the
/// same object. Dragonfly drops them from the task ID so every peer's URL
/// maps to one task. The header replaces Dragonfly's default list, so the
/// list must be complete.
pub const PRESIGN_QUERY_PARAMS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "x-id",
];

/// Size of the blocks handed to the writer thread.
const BLOCK_SIZE: usize = 1 << 20;
/// Blocks in flight between the socket and the writer.
const BLOCKS_IN_FLIGHT: usize = 8;
/// The writer flushes the file to disk every this many bytes. The kernel
/// starts writing back only past its dirty thresholds (GiBs on a big
/// machine), so without this the whole archive would be written out by the
/// final fsync, after the last byte arrived; this way most of it is on disk
/// by then and the commit waits for the last few MiB only.
pub(crate) const SYNC_EVERY_BYTES: u64 = 64 << 20;

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

/// One object to download.
#[derive(Debug, Clone)]
pub struct FetchTarget {
    /// `s3://bucket/key`, for messages (never the presigned URL).
    pub object: String,
    pub url: String,
    pub size: u64,
    /// Hex MD5 of the content when the store's ETag is one.
    pub md5: Option<String>,
    /// The object's ETag. Dragonfly names a task by URL and tag, not by
    /// content: without the ETag in the tag, a new version uploaded under
    /// the same key would be served from the old version's task.
    pub version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: u64,
    pub served_from: ServedFrom,
    pub task_id: Option<String>,
    pub attempts: u32,
    /// The peer hard-linked its finished task into the store: no bytes
    /// went through a socket.
    pub hard_linked: bool,
}

/// The header value that makes differently signed URLs one Dragonfly task.
pub fn filtered_query_params(extra: &[String]) -> String {
    let mut params: Vec<&str> = PRESIGN_QUERY_PARAMS.to_vec();
    for name in extra {
        if !params.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            params.push(name);
        }
    }
    params.join(",")
}

pub struct Fetcher {
    via_peer: reqwest::Client,
    direct: Option<reqwest::Client>,
    peer_addr: String,
    headers: HeaderMap,
    retries: u32,
    retry_backoff: Duration,
    idle_timeout: Duration,
    verify_checksum: bool,
    hard_link: bool,
}

impl Fetcher {
    pub fn new(config: &Config) -> Result<Self> {
        let dragonfly = &config.download;
        let mut proxy = reqwest::Proxy::all(&config.addr).map_err(|e| CoreError::Config {
            path: config.source.clone(),
            reason: format!("key 'addr': {}", describe_http_error(e)),
        })?;
        if let Some((user, password)) = &dragonfly.proxy_basic_auth {
            proxy = proxy.basic_auth(user, password);
        }
        let ca_cert = match config.ca_cert_pem()? {
            Some(pem) => {
                Some(
                    reqwest::Certificate::from_pem(&pem).map_err(|e| CoreError::Config {
                        path: config.source.clone(),
                        reason: format!(
                            "key 'download.ca_cert': not a usable PEM certificate: {}",
                            describe_http_error(e)
                        ),
                    })?,
                )
            }
            None => None,
        };
        let builder = || {
            let builder = reqwest::Client::builder();
            let builder = match &ca_cert {
                Some(cert) => builder.add_root_certificate(cert.clone()),
                None => builder,
            };
            builder
                .connect_timeout(Duration::from_secs(dragonfly.connect_timeout_secs))
                .danger_accept_invalid_certs(!dragonfly.tls_verify)
                .no_gzip()
                .no_brotli()
                .no_deflate()
                .no_zstd()
        };
        let via_peer = builder()
            .proxy(proxy)
            .build()
            .map_err(|e| CoreError::Internal(describe_http_error(e)))?;
        let direct = match dragonfly.fallback {
            Fallback::None => None,
            Fallback::Source => Some(
                builder()
                    .no_proxy()
                    .build()
                    .map_err(|e| CoreError::Internal(describe_http_error(e)))?,
            ),
        };

        let mut headers = HeaderMap::new();
        for (name, value) in &config.header {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| CoreError::Config {
                path: config.source.clone(),
                reason: format!("key 'header': {name:?} is not a valid header name"),
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| CoreError::Config {
                path: config.source.clone(),
                reason: format!("key 'header.{name}': value is not a valid header value"),
            })?;
            headers.insert(name, value);
        }
        let filter = filtered_query_params(&config.filter);
        headers.insert(
            header::FILTERED_QUERY_PARAMS,
            HeaderValue::from_str(&filter).map_err(|_| CoreError::Config {
                path: config.source.clone(),
                reason: "key 'filter': a name is not valid in a header".into(),
            })?,
        );
        if !headers.contains_key(header::USE_P2P) {
            // Without it the peer only goes P2P for URLs its rules match.
            headers.insert(header::USE_P2P, HeaderValue::from_static("true"));
        }

        Ok(Fetcher {
            via_peer,
            direct,
            peer_addr: config.addr.clone(),
            headers,
            retries: dragonfly.retries,
            retry_backoff: Duration::from_millis(dragonfly.retry_backoff_ms),
            idle_timeout: Duration::from_secs(dragonfly.read_timeout_secs),
            verify_checksum: dragonfly.verify_checksum,
            hard_link: config.hard_link_active(),
        })
    }

    /// Downloads `target` into a new temporary file of `store`. On success
    /// the file holds exactly the object; the caller commits it. `feed`, if
    /// given, receives every block written, in order (streaming unpack).
    pub async fn fetch(
        &self,
        target: &FetchTarget,
        store: &ModelStore,
        file_name: &str,
        progress: &Progress,
        feed: Option<StreamFeed>,
    ) -> Result<(TempArchive, Fetched)> {
        // The first attempt through the peer asks it to hard-link the task
        // into this hidden name; kept only if the task was already finished.
        let link = self.hard_link.then(|| store.reserve_temp(file_name));
        let temp = store.create_temp(file_name)?;
        let expected_md5 = target.md5.as_ref().filter(|_| self.verify_checksum);
        let (sink, writer) = spawn_writer(
            temp,
            store.clone(),
            file_name.to_string(),
            feed,
            expected_md5.is_some(),
        );
        let result = self
            .transfer(
                target,
                link.as_ref().map(TempArchive::path),
                &sink,
                progress,
            )
            .await;
        drop(sink);
        let written = writer
            .await
            .map_err(|e| CoreError::Internal(format!("writer thread: {e}")))?;
        // A writer failure (a full disk) is the cause of whatever the
        // network side then reported ("writer stopped").
        let written = match (written, result) {
            (Err(writer_err), _) => return Err(writer_err),
            (Ok(_), Err(transfer_err)) => return Err(transfer_err),
            (Ok(written), Ok(fetched)) => (written, fetched),
        };
        let ((temp, bytes, md5), mut fetched) = written;
        if fetched.hard_linked {
            if let Some(link) = link {
                return Ok((link, fetched));
            }
        }
        fetched.bytes = bytes;
        if bytes != target.size {
            return Err(CoreError::LengthMismatch {
                object: target.object.clone(),
                expected: target.size,
                actual: bytes,
            });
        }
        if let (Some(expected), Some(md5)) = (expected_md5, md5) {
            if !expected.eq_ignore_ascii_case(&md5) {
                return Err(CoreError::ChecksumMismatch {
                    object: target.object.clone(),
                    algorithm: "MD5",
                    expected: expected.clone(),
                    actual: md5,
                });
            }
        }
        Ok((temp, fetched))
    }

    /// Runs attempts until the whole object has been handed to the writer.
    /// `link`: where the first request through the peer asks it to
    /// hard-link the task (see [`Attempt::LinkRefused`]).
    async fn transfer(
        &self,
        target: &FetchTarget,
        mut link: Option<&Path>,
        sink: &WriterSink,
        progress: &Progress,
    ) -> Result<Fetched> {
        let mut attempts = 0;
        let mut use_direct = false;
        loop {
            attempts += 1;
            let offset = progress.bytes();
            let client = if use_direct {
                self.direct.as_ref().unwrap_or(&self.via_peer)
            } else {
                &self.via_peer
            };
            let ask_link = if use_direct || offset > 0 {
                None
            } else {
                link.take()
            };
            match self
                .attempt(
                    client,
                    !use_direct,
                    target,
                    offset,
                    ask_link,
                    sink,
                    progress,
                )
                .await
            {
                Ok(Attempt::Done {
                    served_from,
                    task_id,
                    hard_linked,
                }) => {
                    let served_from = if use_direct {
                        ServedFrom::Source
                    } else {
                        served_from
                    };
                    return Ok(Fetched {
                        bytes: progress.bytes(),
                        served_from,
                        task_id,
                        attempts,
                        hard_linked,
                    });
                }
                Ok(Attempt::LinkRefused(status)) => {
                    tracing::info!(
                        "peer refused to hard-link {} into the model store ({status}); streaming it",
                        target.object
                    );
                    attempts -= 1;
                }
                Err(err @ CoreError::PeerUnreachable { .. })
                    if !use_direct && self.direct.is_some() =>
                {
                    tracing::warn!(
                        "{err}; falling back to the object store for {}",
                        target.object
                    );
                    use_direct = true;
                    attempts -= 1;
                }
                Err(err) if err.is_transient() && attempts <= self.retries => {
                    let delay = self.retry_backoff * 2u32.saturating_pow(attempts - 1);
                    tracing::warn!(
                        "{} attempt {attempts} failed: {err}; retrying in {delay:?} from byte {}",
                        target.object,
                        progress.bytes()
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(CoreError::Transfer { reason, .. }) => {
                    return Err(CoreError::Transfer {
                        object: target.object.clone(),
                        attempts,
                        reason,
                    })
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// One GET, from `offset` on. With `link`, the peer is asked to
    /// hard-link its task file to that path; when the task was already
    /// finished (a local cache hit), the linked file is the whole archive
    /// and the body is not read. On a cold task the linked file would
    /// appear before its content, so the body is streamed as usual and the
    /// caller drops the link.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        client: &reqwest::Client,
        via_peer: bool,
        target: &FetchTarget,
        offset: u64,
        link: Option<&Path>,
        sink: &WriterSink,
        progress: &Progress,
    ) -> Result<Attempt> {
        let mut request = client.get(&target.url);
        if via_peer {
            request = request.headers(self.peer_headers(target));
        }
        if let Some(path) = link.and_then(Path::to_str) {
            request = request
                .header(header::OUTPUT_PATH, path)
                .header(header::FORCE_HARD_LINK, "true");
        }
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() && via_peer {
                let mut reason = describe_http_error(e);
                if target.url.starts_with("https:") && reason.to_lowercase().contains("certificate") {
                    // dfdaemon intercepts HTTPS with its own CA.
                    reason.push_str(
                        "; HTTPS through the peer needs its proxy CA: set download.ca_cert to dfdaemon's proxy.server.caCert",
                    );
                }
                CoreError::PeerUnreachable {
                    addr: self.peer_addr.clone(),
                    reason,
                }
            } else if e.is_timeout() {
                CoreError::Timeout(format!("connecting for {}", target.object))
            } else {
                CoreError::Transfer {
                    object: target.object.clone(),
                    attempts: 1,
                    reason: describe_http_error(e),
                }
            }
        })?;

        let status = response.status();
        let headers = response.headers().clone();
        let header_text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if !status.is_success() && link.is_some() {
            // Another filesystem or no permission; the retry without the
            // link reports the real error if there is one.
            return Ok(Attempt::LinkRefused(status));
        }
        if !status.is_success() {
            return Err(self.error_status(
                target,
                status,
                header_text(header::ERROR_TYPE),
                via_peer,
            ));
        }
        if offset > 0 {
            let resumed_at = header_text(CONTENT_RANGE.as_str())
                .and_then(|range| parse_content_range_start(&range));
            if status != StatusCode::PARTIAL_CONTENT || resumed_at != Some(offset) {
                // The range was ignored: start the file over.
                sink.truncate().await?;
                progress.set_bytes(0);
            }
        }
        let task_id = header_text(header::TASK_ID);
        let served_from = match header_text(header::TASK_DOWNLOAD_FINISHED).as_deref() {
            Some("true") => ServedFrom::DragonflyCache,
            _ => ServedFrom::Dragonfly,
        };
        if let (Some(path), ServedFrom::DragonflyCache) = (link, served_from) {
            let linked = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if linked == target.size {
                progress.set_bytes(target.size);
                return Ok(Attempt::Done {
                    served_from,
                    task_id,
                    hard_linked: true,
                });
            }
            tracing::warn!(
                "peer linked {} with {linked} bytes, expected {}; streaming it",
                target.object,
                target.size
            );
        }

        let mut stream = response.bytes_stream();
        let mut block = BytesMut::with_capacity(BLOCK_SIZE);
        let outcome = loop {
            let next = match tokio::time::timeout(self.idle_timeout, stream.next()).await {
                Ok(next) => next,
                Err(_) => break Err(format!("no data for {:?}", self.idle_timeout)),
            };
            match next {
                Some(Ok(chunk)) => {
                    progress.add_bytes(chunk.len() as u64);
                    block.extend_from_slice(&chunk);
                    if block.len() >= BLOCK_SIZE {
                        sink.write(block.split().freeze()).await?;
                    }
                }
                Some(Err(e)) => break Err(describe_http_error(e)),
                None => break Ok(()),
            }
        };
        // Hand over what arrived even on failure: a retry resumes after it.
        sink.write(block.freeze()).await?;
        outcome.map_err(|reason| CoreError::Transfer {
            object: target.object.clone(),
            attempts: 1,
            reason,
        })?;
        if progress.bytes() < target.size {
            return Err(CoreError::Transfer {
                object: target.object.clone(),
                attempts: 1,
                reason: format!(
                    "connection closed after {} of {} bytes",
                    progress.bytes(),
                    target.size
                ),
            });
        }
        Ok(Attempt::Done {
            served_from,
            task_id,
            hard_linked: false,
        })
    }

    /// The configured proxy headers, with the object's version added to
    /// the task tag (after the configured tag, if any).
    fn peer_headers(&self, target: &FetchTarget) -> HeaderMap {
        let mut headers = self.headers.clone();
        if let Some(version) = &target.version {
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

    fn error_status(
        &self,
        target: &FetchTarget,
        status: StatusCode,
        error_type: Option<String>,
        via_peer: bool,
    ) -> CoreError {
        let code = status.as_u16();
        if code == 507 {
            // The peer's own disk is full: a Dragonfly fault, not ours.
            return CoreError::Peer {
                addr: self.peer_addr.clone(),
                status: code,
                error_type: error_type.unwrap_or_else(|| "dfdaemon".into()),
                object: target.object.clone(),
            };
        }
        match (via_peer, error_type) {
            // Errors the origin gave, passed through by the peer or direct.
            (_, Some(t)) if t == "backend" => origin_error(target, code, "through the peer"),
            (false, _) => origin_error(target, code, "direct"),
            (true, Some(error_type)) => CoreError::Peer {
                addr: self.peer_addr.clone(),
                status: code,
                error_type,
                object: target.object.clone(),
            },
            // No error type: a plain proxy in front, or the origin itself.
            (true, None) => origin_error(target, code, "through the peer"),
        }
    }
}

fn origin_error(target: &FetchTarget, code: u16, how: &str) -> CoreError {
    match code {
        403 | 401 => CoreError::StorageDenied {
            status: code,
            message: format!(
                "GET {} {how} was refused (expired or invalid signature, or no permission)",
                target.object
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

/// The first byte position of a `Content-Range: bytes a-b/n` header.
pub fn parse_content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

enum Block {
    Data(Bytes),
    Truncate,
}

/// The network side's handle on the writer thread.
struct WriterSink {
    blocks: mpsc::Sender<Block>,
}

impl WriterSink {
    async fn write(&self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.send(Block::Data(data)).await
    }

    async fn truncate(&self) -> Result<()> {
        self.send(Block::Truncate).await
    }

    async fn send(&self, block: Block) -> Result<()> {
        // A closed channel means the writer failed; its error is reported
        // when the writer is joined.
        self.blocks
            .send(block)
            .await
            .map_err(|_| CoreError::Internal("model store writer stopped".into()))
    }
}

/// The file, its length and, when asked for, its hex MD5.
type WriterResult = Result<(TempArchive, u64, Option<String>)>;

fn spawn_writer(
    mut temp: TempArchive,
    store: ModelStore,
    file_name: String,
    mut feed: Option<StreamFeed>,
    hash: bool,
) -> (WriterSink, tokio::task::JoinHandle<WriterResult>) {
    let (tx, mut rx) = mpsc::channel::<Block>(BLOCKS_IN_FLIGHT);
    let handle = tokio::task::spawn_blocking(move || {
        use std::io::{Seek, Write};
        // Only when there is a digest to compare: MD5 costs a core at
        // ~600 MB/s, which a 2-core node running dfdaemon feels.
        let mut hasher = hash.then(Md5::new);
        let mut written = 0u64;
        let mut unsynced = 0u64;
        while let Some(block) = rx.blocking_recv() {
            let step = match block {
                Block::Data(data) => {
                    if let Some(hasher) = hasher.as_mut() {
                        hasher.update(&data);
                    }
                    written += data.len() as u64;
                    unsynced += data.len() as u64;
                    let mut step = temp.write_all(&data);
                    if step.is_ok() && unsynced >= SYNC_EVERY_BYTES {
                        unsynced = 0;
                        step = temp.file().and_then(|f| f.sync_data());
                    }
                    if let (Ok(()), Some(feed)) = (&step, feed.as_mut()) {
                        feed.push(&data);
                    }
                    step
                }
                Block::Truncate => {
                    if let Some(feed) = feed.as_mut() {
                        feed.restart();
                    }
                    hasher = hash.then(Md5::new);
                    written = 0;
                    unsynced = 0;
                    temp.file().and_then(|f| {
                        f.set_len(0)?;
                        f.rewind()
                    })
                }
            };
            step.map_err(|e| store.write_error(&file_name, e))?;
        }
        let hex = hasher.map(|hasher| {
            let digest = hasher.finalize();
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
        Ok((temp, written, hex))
    });
    (WriterSink { blocks: tx }, handle)
}

/// How one GET ended.
enum Attempt {
    Done {
        /// Where the peer says the bytes came from.
        served_from: ServedFrom,
        task_id: Option<String>,
        /// The peer's finished task was hard-linked; no body was read.
        hard_linked: bool,
    },
    /// The peer answered a request asking for a hard link with an error.
    LinkRefused(StatusCode),
}

/// Keeps the fetcher cheap to share between concurrent pulls.
pub type SharedFetcher = Arc<Fetcher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_header_covers_presign_params_and_extras_once() {
        let value = filtered_query_params(&["X-Amz-Signature".into(), "Expires".into()]);
        let names: Vec<&str> = value.split(',').collect();
        for p in PRESIGN_QUERY_PARAMS {
            assert!(names.contains(p), "{p} missing");
        }
        assert!(names.contains(&"Expires"));
        assert_eq!(names.iter().filter(|n| **n == "X-Amz-Signature").count(), 1);
    }

    fn fetcher(config: &str) -> Fetcher {
        let config = Config::parse(config.as_bytes(), Path::new("/c.json")).unwrap();
        Fetcher::new(&config).unwrap()
    }

    fn target(version: Option<&str>) -> FetchTarget {
        FetchTarget {
            object: "s3://b/a.mar".into(),
            url: "http://127.0.0.1:1/b/a.mar".into(),
            size: 1,
            md5: None,
            version: version.map(str::to_string),
        }
    }

    #[test]
    fn the_object_version_is_part_of_the_task_tag() {
        let plain = fetcher(r#"{"object_storage": {}}"#);
        let tag = |f: &Fetcher, v| f.peer_headers(&target(v)).get(header::TAG).cloned();
        assert_eq!(tag(&plain, Some("abc")).unwrap(), "etag=abc");
        assert_eq!(tag(&plain, None), None);
        let tagged = fetcher(r#"{"object_storage": {}, "header": {"X-Dragonfly-Tag": "models"}}"#);
        assert_eq!(tag(&tagged, Some("abc")).unwrap(), "models;etag=abc");
        assert_eq!(tag(&tagged, None).unwrap(), "models");
        let headers = tagged.peer_headers(&target(Some("abc")));
        assert_eq!(headers.get_all(header::TAG).iter().count(), 1);
    }

    #[test]
    fn content_range_start_is_parsed() {
        assert_eq!(parse_content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(parse_content_range_start("bytes */200"), None);
        assert_eq!(parse_content_range_start("items 1-2/3"), None);
    }
}
