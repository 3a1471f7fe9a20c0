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

mod attempt;
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

use crate::config::{Config, HttpsViaPeer};
use crate::digest::{hex, Algorithm, Digest};
use crate::error::{describe_http_error, CoreError, Result};
use crate::secret::PresignedUrl;
use crate::BoxFuture;
use attempt::{Attempt, Request};
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
    https_via_peer: HttpsViaPeer,
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
            https_via_peer: download.https_via_peer,
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
