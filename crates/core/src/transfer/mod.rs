//! Downloads one object through the Dragonfly peer's HTTP proxy into a file
//! the caller staged: the retrying transfer ([`Fetcher`]), the peer protocol
//! ([`dragonfly`]), the clients ([`client`]) and the block writer with its
//! tap ([`writer`]).
//!
//! A broken transfer is retried with backoff and resumed with a `Range`
//! request when the peer honours it; the length and, when the store gave
//! one, the MD5 are checked before the caller may commit the file. The
//! caller owns the file and its place in the store: nothing here creates or
//! renames files.
//!
//! May import: `error`, `config`.

pub mod client;
pub mod dragonfly;
pub mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, CONTENT_RANGE, RANGE};
use reqwest::StatusCode;

use crate::config::Config;
use crate::digest::{hex, Algorithm, Digest};
use crate::error::{describe_http_error, CoreError, Result};
use crate::secret::PresignedUrl;
use crate::BoxFuture;
use client::Clients;
use dragonfly::{header, ServedFrom};
use writer::{spawn_writer, BlockTap, WriteTarget, WriterSink, BLOCK_SIZE};

/// The longest wait between two attempts, whatever the backoff doubled to.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Signs the object's GET, again for every attempt: a URL that expired
/// during a long transfer or a backoff is not a dead end.
pub type Presign = Arc<dyn Fn() -> BoxFuture<'static, Result<PresignedUrl>> + Send + Sync>;

/// One object to download.
#[derive(Clone)]
pub struct FetchTarget {
    /// `s3://bucket/key`, for messages (never the presigned URL).
    pub object: String,
    pub presign: Presign,
    pub size: u64,
    /// A digest of the content, when the store gave one.
    pub digest: Option<Digest>,
    /// The object's version (ETag), part of the Dragonfly task tag.
    pub version: Option<String>,
}

impl std::fmt::Debug for FetchTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchTarget")
            .field("object", &self.object)
            .field("size", &self.size)
            .field("digest", &self.digest)
            .field("version", &self.version)
            .finish()
    }
}

/// Where the download goes: a staged file, and a name the peer may
/// hard-link its finished task to instead of streaming it.
pub struct Destination<'a> {
    pub file: WriteTarget,
    pub link: Option<&'a Path>,
}

#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: u64,
    pub served_from: ServedFrom,
    pub task_id: Option<String>,
    pub attempts: u32,
    /// The peer hard-linked its finished task to the link name: the file
    /// there is the object, and nothing went through a socket.
    pub hard_linked: bool,
    /// The digest the bytes were checked against besides their length
    /// (None: the length only).
    pub verified: Option<Algorithm>,
}

pub struct Fetcher {
    clients: Clients,
    peer_addr: String,
    headers: HeaderMap,
    retries: u32,
    retry_backoff: Duration,
    idle_timeout: Duration,
    verify_checksum: bool,
    hard_link: bool,
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

impl Fetcher {
    /// `signing`: the store's signing query parameters, left out of the
    /// Dragonfly task ID.
    pub fn new(config: &Config, signing: &[&str]) -> Result<Self> {
        let download = &config.download;
        Ok(Fetcher {
            clients: Clients::new(config)?,
            peer_addr: config.addr.shown(),
            headers: dragonfly::peer_headers(config, signing)?,
            retries: download.retries,
            retry_backoff: Duration::from_millis(download.retry_backoff_ms),
            idle_timeout: Duration::from_secs(download.read_timeout_secs),
            verify_checksum: download.verify_checksum,
            hard_link: config.hard_link_active(),
        })
    }

    /// Whether the first request may ask the peer for a hard link.
    pub fn wants_link(&self) -> bool {
        self.hard_link
    }

    /// Downloads `target` into `dest`, counting bytes in `received`. On
    /// success the staged file (or the link) holds exactly the object. `tap`
    /// sees every block written, in order.
    pub async fn fetch(
        &self,
        target: &FetchTarget,
        dest: Destination<'_>,
        received: &AtomicU64,
        tap: Option<Box<dyn BlockTap>>,
    ) -> Result<Fetched> {
        let expected = target.digest.as_ref().filter(|_| self.verify_checksum);
        let (sink, writer) = spawn_writer(dest.file, tap, expected.map(|d| d.algorithm));
        let result = self.transfer(target, dest.link, &sink, received).await;
        drop(sink);
        let written = writer
            .await
            .map_err(|e| CoreError::Internal(format!("writer thread: {e}")))?;
        // A writer failure (a full disk) is the cause of whatever the
        // network side then reported ("writer stopped").
        let ((bytes, digest), mut fetched) = match (written, result) {
            (Err(writer_err), _) => return Err(writer_err),
            (Ok(_), Err(transfer_err)) => return Err(transfer_err),
            (Ok(written), Ok(fetched)) => (written, fetched),
        };
        if fetched.hard_linked && fetched.served_from == ServedFrom::DragonflyCache {
            // Warm: the peer's finished task, not read through the socket.
            return Ok(fetched);
        }
        // Streamed (written, or only hashed when the cold task was linked).
        fetched.bytes = bytes;
        if bytes != target.size {
            return Err(CoreError::LengthMismatch {
                object: target.object.clone(),
                expected: target.size,
                actual: bytes,
            });
        }
        if let (Some(expected), Some(actual)) = (expected, digest) {
            if expected.value != actual {
                return Err(CoreError::ChecksumMismatch {
                    object: target.object.clone(),
                    algorithm: expected.algorithm.name(),
                    expected: expected.hex(),
                    actual: hex(&actual),
                });
            }
            fetched.verified = Some(expected.algorithm);
        }
        Ok(fetched)
    }

    /// Runs attempts until the whole object has been handed to the writer.
    /// `link`: where the first request through the peer asks it to
    /// hard-link the task (see [`Attempt::LinkRefused`]).
    async fn transfer(
        &self,
        target: &FetchTarget,
        mut link: Option<&Path>,
        sink: &WriterSink,
        received: &AtomicU64,
    ) -> Result<Fetched> {
        let mut attempts = 0;
        let mut use_direct = false;
        if !self.hard_link {
            link = None;
        }
        loop {
            attempts += 1;
            let offset = received.load(Ordering::Relaxed);
            let client = match (use_direct, &self.clients.direct) {
                (true, Some(direct)) => direct,
                _ => &self.clients.via_peer,
            };
            let ask_link = if use_direct || offset > 0 {
                None
            } else {
                link.take()
            };
            let outcome = match (target.presign)().await {
                Ok(url) => {
                    let request = Request {
                        client,
                        url,
                        via_peer: !use_direct,
                        offset,
                        link: ask_link,
                    };
                    self.attempt(request, target, sink, received).await
                }
                Err(err) => Err(err),
            };
            match outcome {
                Ok(Attempt::Done {
                    served_from,
                    task_id,
                    hard_linked,
                }) => {
                    return Ok(Fetched {
                        bytes: received.load(Ordering::Relaxed),
                        served_from: if use_direct {
                            ServedFrom::Source
                        } else {
                            served_from
                        },
                        task_id,
                        attempts,
                        hard_linked,
                        verified: None,
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
                    if !use_direct && self.clients.direct.is_some() =>
                {
                    tracing::warn!(
                        "{err}; falling back to the object store for {}",
                        target.object
                    );
                    use_direct = true;
                    attempts -= 1;
                }
                // A peer that answered before and now refuses connections
                // is restarting: retried like a broken transfer, and the
                // bytes on disk are kept for the Range resume. On the first
                // attempt it is a 502 at once.
                Err(err) if self.retryable(&err, attempts) => {
                    let delay = self.backoff(attempts);
                    tracing::warn!(
                        "{} attempt {attempts} failed: {err}; retrying in {delay:?} from byte {}",
                        target.object,
                        received.load(Ordering::Relaxed)
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

    fn retryable(&self, err: &CoreError, attempts: u32) -> bool {
        let peer_restarting = matches!(err, CoreError::PeerUnreachable { .. }) && attempts > 1;
        (err.is_transient() || peer_restarting) && attempts <= self.retries
    }

    /// `retry_backoff_ms` doubled per attempt, capped at [`MAX_BACKOFF`];
    /// saturating, so no retry count or delay can overflow.
    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        self.retry_backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }

    /// One GET, from `offset` on. With `link`, the peer is asked to
    /// hard-link its task file to that path; when the task was already
    /// finished (a local cache hit), the linked file is the whole archive
    /// and the body is not read. On a cold task the linked file would
    /// appear before its content, so the body is streamed as usual and the
    /// caller drops the link.
    async fn attempt(
        &self,
        request: Request<'_>,
        target: &FetchTarget,
        sink: &WriterSink,
        received: &AtomicU64,
    ) -> Result<Attempt> {
        let Request {
            client,
            url,
            via_peer,
            offset,
            link,
        } = request;
        let mut builder = client.get(url.url.expose());
        if via_peer {
            builder = builder.headers(dragonfly::with_version_tag(
                self.headers.clone(),
                target.version.as_deref(),
            ));
        }
        if let Some(path) = link.and_then(Path::to_str) {
            builder = builder
                .header(header::OUTPUT_PATH, path)
                .header(header::FORCE_HARD_LINK, "true");
        }
        if offset > 0 {
            builder = builder.header(RANGE, format!("bytes={offset}-"));
        }
        // The read timeout covers the wait for the response headers too: a
        // peer (or store) that accepts and never answers is a broken
        // transfer, not a hang.
        let response = match tokio::time::timeout(self.idle_timeout, builder.send()).await {
            Ok(sent) => sent.map_err(|e| self.send_error(e, target, via_peer, &url))?,
            Err(_) => {
                return Err(CoreError::Timeout(format!(
                    "{} sent no response headers for {} within {} s (download.read_timeout_secs)",
                    if via_peer {
                        format!("Dragonfly peer {}", self.peer_addr)
                    } else {
                        "the object store".to_string()
                    },
                    target.object,
                    self.idle_timeout.as_secs()
                )))
            }
        };

        let status = response.status();
        let headers = response.headers().clone();
        let header_text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let task_id = header_text(header::TASK_ID);
        let served_from =
            dragonfly::served_from(header_text(header::TASK_DOWNLOAD_FINISHED).as_deref());
        if status == StatusCode::RANGE_NOT_SATISFIABLE && offset > 0 && offset == target.size {
            // Every byte had arrived before the stream broke: done.
            return Ok(Attempt::Done {
                served_from,
                task_id,
                hard_linked: false,
            });
        }
        if !status.is_success() && link.is_some() {
            // Another filesystem or no permission; the retry without the
            // link reports the real error if there is one.
            return Ok(Attempt::LinkRefused(status));
        }
        if !status.is_success() {
            return Err(dragonfly::error_status(
                &self.peer_addr,
                target,
                url.expires_at,
                status,
                header_text(header::ERROR_TYPE),
                via_peer,
            ));
        }
        if status == StatusCode::PARTIAL_CONTENT {
            let resumed_at = header_text(CONTENT_RANGE.as_str())
                .and_then(|range| dragonfly::parse_content_range_start(&range));
            if offset == 0 || resumed_at != Some(offset) {
                // Never written at the wrong place: refuse, and let the
                // retry ask again.
                return Err(CoreError::Transfer {
                    object: target.object.clone(),
                    attempts: 1,
                    reason: format!(
                        "asked for bytes from {offset}, got a 206 with Content-Range {:?}",
                        header_text(CONTENT_RANGE.as_str())
                    ),
                });
            }
        } else if offset > 0 {
            // The range was ignored (a 200 with the whole body): start over.
            sink.truncate().await?;
            received.store(0, Ordering::Relaxed);
        }
        if let (Some(path), ServedFrom::DragonflyCache) = (link, served_from) {
            let linked = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if linked == target.size {
                received.store(target.size, Ordering::Relaxed);
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
        let Some(path) = link else {
            self.stream_body(response, target, sink, received, None)
                .await?;
            return Ok(Attempt::Done {
                served_from,
                task_id,
                hard_linked: false,
            });
        };
        // A cold task linked into the store: the peer writes its file as it
        // downloads. The body is still read (its end is the only sign that
        // the task is complete, and it feeds the digest and the unpacker)
        // but not written again: no second copy on the same disk. The
        // linked file must then hold exactly what was streamed.
        sink.discard().await?;
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
        let streamed = self
            .stream_body(response, target, sink, received, Some(&mut crc))
            .await;
        if let Err(err) = streamed {
            // Keep what arrived for the Range resume: the writer takes it
            // from the peer's file, checked against what was streamed.
            sink.adopt(path, received.load(Ordering::Relaxed), crc.finalize())
                .await?;
            return Err(err);
        }
        if let Err(err) = same_content(path, target, crc.finalize()).await {
            // Nothing was written: the next attempt starts over, writing.
            sink.truncate().await?;
            received.store(0, Ordering::Relaxed);
            return Err(err);
        }
        Ok(Attempt::Done {
            served_from,
            task_id,
            hard_linked: true,
        })
    }

    /// Reads the body into the writer in blocks; a gap longer than the read
    /// timeout, or a body that ends short, is a broken transfer.
    async fn stream_body(
        &self,
        response: reqwest::Response,
        target: &FetchTarget,
        sink: &WriterSink,
        received: &AtomicU64,
        mut crc: Option<&mut crc_fast::Digest>,
    ) -> Result<()> {
        let broken = |reason: String| CoreError::Transfer {
            object: target.object.clone(),
            attempts: 1,
            reason,
        };
        let mut stream = response.bytes_stream();
        let mut block = BytesMut::with_capacity(BLOCK_SIZE);
        let outcome = loop {
            let next = match tokio::time::timeout(self.idle_timeout, stream.next()).await {
                Ok(next) => next,
                Err(_) => break Err(format!("no data for {:?}", self.idle_timeout)),
            };
            match next {
                Some(Ok(chunk)) => {
                    received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if let Some(crc) = crc.as_mut() {
                        crc.update(&chunk);
                    }
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
        let got = received.load(Ordering::Relaxed);
        match outcome {
            // Every byte is here (the length and digest checks follow);
            // only the end of the stream broke: no retry needed, and a
            // retry would ask for an empty range the peer cannot serve.
            Err(reason) if got == target.size => tracing::info!(
                "{}: the stream broke after its last byte ({reason})",
                target.object
            ),
            Err(reason) => return Err(broken(reason)),
            Ok(()) => {}
        }
        if got < target.size {
            return Err(broken(format!(
                "connection closed after {got} of {} bytes",
                target.size
            )));
        }
        Ok(())
    }

    fn send_error(
        &self,
        e: reqwest::Error,
        target: &FetchTarget,
        via_peer: bool,
        url: &PresignedUrl,
    ) -> CoreError {
        if e.is_connect() && via_peer {
            let mut reason = describe_http_error(e);
            if url.url.expose().starts_with("https:")
                && reason.to_lowercase().contains("certificate")
            {
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
    }
}

/// Whether the file the peer linked at `path` holds `size` bytes whose
/// CRC-32C is `expected` (what was streamed); read on a blocking thread,
/// mostly from the page cache the peer just filled.
async fn same_content(path: &Path, target: &FetchTarget, expected: u64) -> Result<()> {
    let (path, size) = (path.to_path_buf(), target.size);
    let checked = tokio::task::spawn_blocking(move || -> std::io::Result<Option<String>> {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
        let mut buffer = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            crc.update(&buffer[..n]);
            total += n as u64;
        }
        Ok(match (total == size, crc.finalize() == expected) {
            (true, true) => None,
            (false, _) => Some(format!(
                "the peer's linked file has {total} bytes, not {size}"
            )),
            (true, false) => Some("the peer's linked file differs from what it streamed".into()),
        })
    })
    .await
    .map_err(|e| CoreError::Internal(format!("checking the linked file: {e}")))?;
    match checked {
        Ok(None) => Ok(()),
        Ok(Some(reason)) => Err(CoreError::Transfer {
            object: target.object.clone(),
            attempts: 1,
            reason,
        }),
        Err(e) => Err(CoreError::Transfer {
            object: target.object.clone(),
            attempts: 1,
            reason: format!("reading the peer's linked file: {e}"),
        }),
    }
}

/// How one attempt is sent.
struct Request<'a> {
    client: &'a reqwest::Client,
    url: PresignedUrl,
    via_peer: bool,
    offset: u64,
    link: Option<&'a Path>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped_without_overflow() {
        let config = Config::parse(
            br#"{"object_storage": {}, "download": {"retry_backoff_ms": 60000, "retries": 20}}"#,
            Path::new("/c.json"),
        )
        .unwrap();
        let fetcher = Fetcher::new(&config, &[]).unwrap();
        assert_eq!(fetcher.backoff(1), MAX_BACKOFF);
        assert_eq!(fetcher.backoff(u32::MAX), MAX_BACKOFF);
        let config = Config::parse(
            br#"{"object_storage": {}, "download": {"retry_backoff_ms": 100}}"#,
            Path::new("/c.json"),
        )
        .unwrap();
        let fetcher = Fetcher::new(&config, &[]).unwrap();
        assert_eq!(fetcher.backoff(1), Duration::from_millis(100));
        assert_eq!(fetcher.backoff(3), Duration::from_millis(400));
    }
}
