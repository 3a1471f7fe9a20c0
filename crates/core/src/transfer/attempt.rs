//! One GET of a transfer ([`Fetcher::attempt`]): the request through the
//! peer or straight to the store, the hard-link handshake, and the body
//! streamed into the writer under the read timeout.

use super::*;

/// How one GET ended.
pub(super) enum Attempt {
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
    /// One GET, from `offset` on. With `link`, the peer is asked to
    /// hard-link its task file to that path; when the task was already
    /// finished (a local cache hit), the linked file is the whole archive
    /// and the body is not read. On a cold task the linked file would
    /// appear before its content, so the body is streamed as usual and the
    /// caller drops the link.
    pub(super) async fn attempt(
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
        let mut builder = match (via_peer, self.https_via_peer) {
            (true, HttpsViaPeer::TlsRule) => client.get(dragonfly::for_tls_rule(url.url.expose())),
            _ => client.get(url.url.expose()),
        };
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
            let err = dragonfly::error_status(
                &self.peer_addr,
                target,
                url.expires_at,
                status,
                header_text(header::ERROR_TYPE),
                via_peer,
            );
            let tls_rule = via_peer
                && self.https_via_peer == HttpsViaPeer::TlsRule
                && url.url.expose().starts_with("https:");
            return Err(match err {
                // Without the rule the peer speaks plain HTTP to the TLS
                // port, and the store's answer is garbage: say what is
                // missing.
                CoreError::Transfer {
                    object,
                    attempts,
                    reason,
                } if tls_rule && status.is_server_error() => CoreError::Transfer {
                    object,
                    attempts,
                    reason: format!(
                        "{reason}; an https:// store through the peer needs a dfdaemon proxy rule with useTLS: true for its host (download.https_via_peer: tls_rule), or https_via_peer: tunnel"
                    ),
                },
                other => other,
            });
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
                    // Exactly BLOCK_SIZE per block, each allocated once:
                    // growing a block as chunks came reallocated it up to
                    // twice its size, and the queued blocks held that much.
                    let mut rest = &chunk[..];
                    while !rest.is_empty() {
                        let room = BLOCK_SIZE - block.len();
                        let (now, later) = rest.split_at(room.min(rest.len()));
                        block.extend_from_slice(now);
                        rest = later;
                        if block.len() == BLOCK_SIZE {
                            let full =
                                std::mem::replace(&mut block, BytesMut::with_capacity(BLOCK_SIZE));
                            sink.write(full.freeze()).await?;
                        }
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
                && self.https_via_peer == HttpsViaPeer::Tunnel
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
pub(super) struct Request<'a> {
    pub(super) client: &'a reqwest::Client,
    pub(super) url: PresignedUrl,
    pub(super) via_peer: bool,
    pub(super) offset: u64,
    pub(super) link: Option<&'a Path>,
}
