//! Faulty network pieces for the trust tests, on 127.0.0.1, each stopped
//! when its handle drops:
//!
//! - [`SilentServer`]: accepts connections, reads them, never answers (a
//!   hung peer or store);
//! - [`HttpFront`]: relays HTTP/1.1 between a client and a real server and
//!   injects one fault per connection (cut, an overstated length, a wrong
//!   `Content-Range`), can refuse connections for a while (a restarting
//!   peer), and can answer like AWS S3 does for SSE-KMS objects (an ETag
//!   that is not the MD5). That last one is a fake: the S3 server of the
//!   test bed (SeaweedFS) has no KMS; the front rewrites only the response
//!   headers AWS documents for such objects, the bytes stay the server's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Accepts and holds connections without ever answering.
pub struct SilentServer {
    /// `http://127.0.0.1:port`
    pub addr: String,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicU64>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind silent server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let (stop2, count) = (stop.clone(), connections.clone());
        thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        held.push(stream);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SilentServer {
            addr,
            stop,
            connections,
        }
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the front does to one object response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Relayed as it is.
    None,
    /// Cut after this many body bytes.
    CutAfter(u64),
    /// `Content-Length` one more than the body, closed after the body: the
    /// client has every byte, then the stream breaks.
    Overstate,
    /// A 206's `Content-Range` rewritten to start at byte 0.
    WrongRange,
}

pub struct HttpFront {
    /// `http://127.0.0.1:port`
    pub addr: String,
    stop: Arc<AtomicBool>,
    stats: Arc<FrontStats>,
}

#[derive(Default)]
struct FrontStats {
    connections: AtomicU64,
    object_responses: AtomicU64,
    faults: AtomicU64,
    body_bytes: AtomicU64,
    refused_until: Mutex<Option<Instant>>,
    request_heads: Mutex<Vec<String>>,
}

/// How the front behaves.
#[derive(Debug, Clone, Default)]
pub struct FrontPlan {
    /// Faults for the object responses (a GET answered 200 or 206) 0, 1,
    /// ...; later ones, and every other response, are relayed untouched.
    pub faults: Vec<Fault>,
    /// After the connection of the first object response ends, refuse
    /// connections for this long (a peer restarting).
    pub down_after_first: Option<Duration>,
    /// Every response says the object is SSE-KMS encrypted (fake, see the
    /// module comment).
    pub sse_kms: bool,
}

impl HttpFront {
    pub fn start(target: &str, plan: FrontPlan) -> HttpFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind front");
        let local = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = format!("http://{local}");
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(FrontStats::default());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let plan = Arc::new(plan);
        thread::spawn(move || {
            let mut listener = Some(listener);
            while !stop2.load(Ordering::Relaxed) {
                let refused = stats2
                    .refused_until
                    .lock()
                    .map(|u| u.is_some_and(|t| Instant::now() < t))
                    .unwrap_or(false);
                match (refused, listener.is_some()) {
                    // Closed listener: connections are refused.
                    (true, true) => listener = None,
                    (false, false) => {
                        listener = TcpListener::bind(local).ok();
                        if let Some(l) = &listener {
                            let _ = l.set_nonblocking(true);
                        }
                    }
                    _ => {}
                }
                let Some(l) = &listener else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                match l.accept() {
                    Ok((client, _)) => {
                        stats2.connections.fetch_add(1, Ordering::Relaxed);
                        let _ = client.set_nonblocking(false);
                        if let Ok(upstream) = TcpStream::connect(&target) {
                            relay(client, upstream, plan.clone(), stats2.clone());
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpFront { addr, stop, stats }
    }

    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }

    /// Responses a fault was applied to.
    pub fn faults(&self) -> u64 {
        self.stats.faults.load(Ordering::Relaxed)
    }

    /// Response body bytes relayed to clients.
    pub fn body_bytes(&self) -> u64 {
        self.stats.body_bytes.load(Ordering::Relaxed)
    }

    /// Every request head the front relayed, in order.
    pub fn request_heads(&self) -> Vec<String> {
        self.stats
            .request_heads
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }
}

impl Drop for HttpFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The value of a header in a head, case-insensitively.
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

fn relay(client: TcpStream, upstream: TcpStream, plan: Arc<FrontPlan>, stats: Arc<FrontStats>) {
    let (Ok(c_read), Ok(u_write)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let (methods_tx, methods_rx) = channel();
    let heads = stats.clone();
    thread::spawn(move || relay_requests(c_read, u_write, methods_tx, heads));
    thread::spawn(move || {
        let first = relay_responses(upstream, client, methods_rx, &plan, &stats);
        if let (true, Some(down)) = (first, plan.down_after_first) {
            if let Ok(mut until) = stats.refused_until.lock() {
                *until = Some(Instant::now() + down);
            }
        }
    });
}

/// Client to server: request heads recorded, their methods passed on so the
/// other direction knows which responses have no body.
fn relay_requests(
    client: TcpStream,
    mut upstream: TcpStream,
    methods: Sender<String>,
    stats: Arc<FrontStats>,
) {
    let mut reader = BufReader::new(client);
    while let Some(head) = read_head(&mut reader) {
        let method = head.split_whitespace().next().unwrap_or("").to_string();
        if let Ok(mut heads) = stats.request_heads.lock() {
            heads.push(head.clone());
        }
        let _ = methods.send(method);
        let length = header_value(&head, "content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if upstream.write_all(head.as_bytes()).is_err()
            || copy_n(&mut reader, &mut upstream, length).is_err()
        {
            break;
        }
    }
    let _ = upstream.shutdown(Shutdown::Write);
}

/// Server to client, one response at a time; whether the connection
/// carried the first object response.
fn relay_responses(
    upstream: TcpStream,
    mut client: TcpStream,
    methods: Receiver<String>,
    plan: &FrontPlan,
    stats: &FrontStats,
) -> bool {
    let mut reader = BufReader::new(upstream);
    let mut carried_first = false;
    while let Some(mut head) = read_head(&mut reader) {
        let method = methods
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_default();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let fault = if method == "GET" && (status == 200 || status == 206) {
            let n = stats.object_responses.fetch_add(1, Ordering::Relaxed) as usize;
            carried_first |= n == 0;
            plan.faults.get(n).copied().unwrap_or(Fault::None)
        } else {
            Fault::None
        };
        if plan.sse_kms {
            head = as_sse_kms(&head);
        }
        let chunked = header_value(&head, "transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length = if method == "HEAD" || status == 204 || status == 304 {
            Some(0)
        } else {
            header_value(&head, "content-length").and_then(|v| v.parse::<u64>().ok())
        };
        let mut limit = u64::MAX;
        let mut close_after = false;
        let mut omit_end = false;
        match fault {
            Fault::None => {}
            Fault::CutAfter(n) => {
                limit = n;
                close_after = true;
            }
            Fault::Overstate => {
                close_after = true;
                match length {
                    Some(n) => head = replace_header(&head, "Content-Length", &(n + 1).to_string()),
                    None => omit_end = true,
                }
            }
            Fault::WrongRange => {
                if let Some(range) = header_value(&head, "content-range") {
                    let total = range.rsplit('/').next().unwrap_or("*").to_string();
                    let end = range
                        .split_once('-')
                        .and_then(|(_, rest)| rest.split('/').next())
                        .unwrap_or("0")
                        .to_string();
                    head =
                        replace_header(&head, "Content-Range", &format!("bytes 0-{end}/{total}"));
                }
            }
        }
        let applies = match fault {
            Fault::None => false,
            Fault::WrongRange => status == 206,
            _ => true,
        };
        if applies {
            stats.faults.fetch_add(1, Ordering::Relaxed);
        }
        if client.write_all(head.as_bytes()).is_err() {
            break;
        }
        let sent = match (length, chunked) {
            (Some(n), _) => copy_counted(&mut reader, &mut client, n.min(limit), stats),
            (None, true) => copy_chunked(&mut reader, &mut client, limit, omit_end, stats),
            (None, false) => copy_counted(&mut reader, &mut client, limit, stats),
        };
        if sent.is_err() || close_after {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    carried_first
}

/// A head as AWS S3 sends it for an SSE-KMS object: `x-amz-server-side-
/// encryption: aws:kms`, and an ETag that is not the content's MD5.
fn as_sse_kms(head: &str) -> String {
    let head = match header_value(head, "etag") {
        Some(etag) => {
            let flipped: String = etag
                .chars()
                .map(|c| match c.to_digit(16) {
                    Some(d) => std::char::from_digit(15 - d, 16).unwrap_or(c),
                    None => c,
                })
                .collect();
            replace_header(head, "ETag", &flipped)
        }
        None => head.to_string(),
    };
    head.replacen(
        "\r\n\r\n",
        "\r\nx-amz-server-side-encryption: aws:kms\r\n\r\n",
        1,
    )
}

fn replace_header(head: &str, name: &str, value: &str) -> String {
    head.split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((key, _)) if key.trim().eq_ignore_ascii_case(name) => format!("{name}: {value}"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// One head (start line and headers, with the blank line), or None at EOF.
fn read_head(reader: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        head.push_str(&line);
        if line == "\r\n" && head.len() > 2 {
            return Some(head);
        }
        if head.len() > 64 * 1024 {
            return None;
        }
    }
}

fn copy_n(reader: &mut impl Read, writer: &mut impl Write, n: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut reader.take(n), writer)?;
    if copied < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn copy_counted(
    reader: &mut impl Read,
    writer: &mut impl Write,
    n: u64,
    stats: &FrontStats,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let want = buf.len().min(left.min(usize::MAX as u64) as usize);
        let got = reader.read(&mut buf[..want])?;
        if got == 0 {
            return if n == u64::MAX {
                Ok(())
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        writer.write_all(&buf[..got])?;
        stats.body_bytes.fetch_add(got as u64, Ordering::Relaxed);
        left -= got as u64;
    }
    Ok(())
}

/// A chunked body, relayed as it is, cut after `limit` payload bytes;
/// `omit_end`: without its final empty chunk (the body never ends).
fn copy_chunked(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    limit: u64,
    omit_end: bool,
    stats: &FrontStats,
) -> std::io::Result<()> {
    let mut payload = 0u64;
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        if size == 0 && omit_end {
            return Ok(());
        }
        writer.write_all(size_line.as_bytes())?;
        if size == 0 {
            let mut end = String::new();
            reader.read_line(&mut end)?;
            return writer.write_all(end.as_bytes());
        }
        let allowed = size.min(limit.saturating_sub(payload));
        copy_counted(reader, writer, allowed, stats)?;
        payload += allowed;
        if allowed < size {
            return Err(std::io::Error::other("cut"));
        }
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        writer.write_all(&crlf)?;
    }
}
