//! [`CountingRelay`]: a TCP relay on 127.0.0.1 in front of an origin that
//! counts the bytes the origin sends towards clients. Azurite and
//! fake-gcs-server keep no traffic metrics of their own; reached only
//! through the relay, the relay's counter is "the body bytes the store
//! sent" (plus the response headers), as SeaweedFS's own metric is for S3.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the relay waits for the origin to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// origin -> clients
    sent: AtomicU64,
    /// clients -> origin
    received: AtomicU64,
    connections: AtomicU64,
    /// Live connections (client side, origin side), shut down on drop.
    live: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A byte-for-byte TCP relay on `127.0.0.1:<free port>` in front of
/// `origin`, both directions copied by plain threads. Dropping it closes
/// every connection and joins every thread.
pub struct CountingRelay {
    addr: SocketAddr,
    origin: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl CountingRelay {
    /// Starts relaying connections on a free loopback port to `origin`.
    pub fn start(origin: SocketAddr) -> CountingRelay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("relay: binding 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().expect("relay: local address");
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("relay-{}", addr.port()))
                .spawn(move || accept_loop(listener, origin, shared))
                .expect("relay: spawning the accept thread")
        };
        CountingRelay {
            addr,
            origin,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:<port>` clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn origin(&self) -> SocketAddr {
        self.origin
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `url` with the origin's `host:port` replaced by the relay's: an
    /// endpoint or a signed URL of the store, reached through the relay
    /// (Shared Key, SAS and V4 signatures do not cover the port).
    pub fn via(&self, url: &str) -> String {
        let origin = self.origin.to_string();
        assert!(
            url.contains(&origin),
            "relay: {url} does not name the origin {origin}"
        );
        url.replacen(&origin, &self.addr.to_string(), 1)
    }

    /// Bytes sent from the origin towards clients so far.
    pub fn sent_bytes(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// Bytes sent from clients towards the origin so far.
    pub fn received_bytes(&self) -> u64 {
        self.shared.received.load(Ordering::SeqCst)
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it sees `stop` and returns.
        let _ = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // No new connection from here on: close the live ones, which ends
        // their copy threads.
        for (client, origin) in lock(&self.shared.live).values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = origin.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept_loop(listener: TcpListener, origin: SocketAddr, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let client = match client {
            Ok(client) => client,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("relay: accept: {e}");
                continue;
            }
        };
        // The origin refusing: the client sees its connection closed.
        let Ok(upstream) = TcpStream::connect_timeout(&origin, CONNECT_TIMEOUT) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (Ok(client_copy), Ok(upstream_copy)) = (client.try_clone(), upstream.try_clone())
        else {
            continue;
        };
        let id = next_id;
        next_id += 1;
        shared.connections.fetch_add(1, Ordering::SeqCst);
        lock(&shared.live).insert(id, (client_copy, upstream_copy));
        let conn_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("relay-conn-{id}"))
            .spawn(move || serve(id, client, upstream, conn_shared));
        let mut threads = lock(&shared.threads);
        threads.retain(|t| !t.is_finished());
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                eprintln!("relay: spawning a connection thread: {e}");
                if let Some((c, o)) = lock(&shared.live).remove(&id) {
                    let _ = c.shutdown(Shutdown::Both);
                    let _ = o.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// Copies both ways until both directions ended, then forgets the connection.
fn serve(id: u64, client: TcpStream, upstream: TcpStream, shared: Arc<Shared>) {
    let down = match (upstream.try_clone(), client.try_clone()) {
        (Ok(from), Ok(to)) => {
            let counter = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("relay-down-{id}"))
                .spawn(move || copy(from, to, &counter.sent))
                .ok()
        }
        _ => None,
    };
    if down.is_some() {
        copy(client, upstream, &shared.received);
    } else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
    }
    if let Some(down) = down {
        let _ = down.join();
    }
    lock(&shared.live).remove(&id);
}

/// Copies `from` to `to`, counting what was written. At the end of `from`
/// it half-closes `to` (the peer sees the end too); on an error it closes
/// both, which ends the opposite direction as well.
fn copy(mut from: TcpStream, mut to: TcpStream, counter: &AtomicU64) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                counter.fetch_add(n as u64, Ordering::SeqCst);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
