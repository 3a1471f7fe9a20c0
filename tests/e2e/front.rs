//! A TCP front placed between two real components to break their
//! connection on purpose: it relays bytes both ways and cuts a connection
//! after a given number of response bytes, or flips one response byte. It also keeps the head of every
//! request it relayed, so a test can check what the client asked for (a
//! `Range` header on a retry).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub struct CuttingFront {
    /// `http://127.0.0.1:port`
    pub addr: String,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    cuts: AtomicU64,
    corrupted: AtomicU64,
    connections: AtomicU64,
    response_bytes: AtomicU64,
    request_heads: Mutex<Vec<String>>,
}

impl CuttingFront {
    /// Cuts each of the first `cut_connections` connections after `limit`
    /// response bytes; later connections pass untouched.
    pub fn start(target: &str, limit: u64, cut_connections: u64) -> CuttingFront {
        Self::start_with(target, limit, cut_connections, None)
    }

    /// Relays every response whole but flips the byte at `offset` of each
    /// response stream long enough to have one: corruption in transit.
    pub fn corrupting(target: &str, offset: u64) -> CuttingFront {
        Self::start_with(target, u64::MAX, 0, Some(offset))
    }

    fn start_with(
        target: &str,
        limit: u64,
        cut_connections: u64,
        corrupt_at: Option<u64>,
    ) -> CuttingFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind front");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let n = stats2.connections.fetch_add(1, Ordering::Relaxed);
                        let limit = if n < cut_connections { limit } else { u64::MAX };
                        let _ = client.set_nonblocking(false);
                        if let Ok(upstream) = TcpStream::connect(&target) {
                            relay(client, upstream, limit, corrupt_at, stats2.clone());
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CuttingFront { addr, stop, stats }
    }

    pub fn cuts(&self) -> u64 {
        self.stats.cuts.load(Ordering::Relaxed)
    }

    /// Responses in which a byte was flipped.
    pub fn corrupted(&self) -> u64 {
        self.stats.corrupted.load(Ordering::Relaxed)
    }

    /// Response bytes relayed to clients over all connections.
    pub fn response_bytes(&self) -> u64 {
        self.stats.response_bytes.load(Ordering::Relaxed)
    }

    /// The first bytes (up to 8 KiB) each connection sent, lossily decoded.
    pub fn request_heads(&self) -> Vec<String> {
        self.stats
            .request_heads
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }
}

impl Drop for CuttingFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(
    client: TcpStream,
    upstream: TcpStream,
    limit: u64,
    corrupt_at: Option<u64>,
    stats: Arc<Stats>,
) {
    let (Ok(mut c_read), Ok(mut u_write)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let heads = stats.clone();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut head = Vec::new();
        let slot = heads
            .request_heads
            .lock()
            .map(|mut h| {
                h.push(String::new());
                h.len() - 1
            })
            .unwrap_or(0);
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if head.len() < 8192 {
                head.extend_from_slice(&buf[..n.min(8192 - head.len())]);
                if let Ok(mut h) = heads.request_heads.lock() {
                    h[slot] = String::from_utf8_lossy(&head).into_owned();
                }
            }
            if u_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = u_write.shutdown(Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (upstream, client);
    thread::spawn(move || {
        let mut sent = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match u_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let allowed = (limit - sent).min(n as u64) as usize;
            if let Some(at) = corrupt_at {
                if (sent..sent + allowed as u64).contains(&at) {
                    buf[(at - sent) as usize] ^= 0xff;
                    stats.corrupted.fetch_add(1, Ordering::Relaxed);
                }
            }
            if c_write.write_all(&buf[..allowed]).is_err() {
                break;
            }
            sent += allowed as u64;
            stats
                .response_bytes
                .fetch_add(allowed as u64, Ordering::Relaxed);
            if sent >= limit {
                stats.cuts.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        let _ = c_write.shutdown(Shutdown::Both);
        let _ = u_read.shutdown(Shutdown::Both);
    });
}
