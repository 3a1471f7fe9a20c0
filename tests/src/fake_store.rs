//! A FAKE object store for the `oss`, `obs` and `cos` backends of OpenDAL
//! 0.55.0. No server of those protocols runs here (no emulator exists in
//! the registries), so this is a stand-in written from what OpenDAL sends
//! and parses (opendal-0.55.0 src/services/{oss,obs,cos}/{core,lister}.rs),
//! not from the vendors' servers. It proves requests reach a store and what
//! they carry; it proves nothing about signatures, which it IGNORES (the
//! signers are checked against published values in
//! crates/core/tests/signers). It records the query parameter names of
//! every request, so a test can assert that a signature was present.
//!
//! A std-thread HTTP/1.1 server on `127.0.0.1:<free port>` (keep-alive, at
//! most [`MAX_CONNECTIONS`] at once, stopped when dropped) serving the files
//! under a directory as the objects of one bucket, read-only:
//!
//! - list, `GET` at the bucket: `list-type=2` gets an OSS ListObjectsV2
//!   answer (`continuation-token`/`start-after`, `NextContinuationToken`),
//!   anything else the marker form OBS and COS parse (`marker`,
//!   `NextMarker` only while truncated); `prefix`, `delimiter` and
//!   `max-keys` work, pages are at most [`FakeStore::set_page_size`] long;
//! - stat, `HEAD` of a key: `Content-Length`, `Content-Type`, `ETag` (the
//!   MD5 in hex, as the stores give for single-part uploads),
//!   `Last-Modified`, and both `x-oss-hash-crc64ecma` and
//!   `x-cos-hash-crc64ecma` (CRC-64/XZ, decimal);
//! - read, `GET` of a key, whole or one `Range: bytes=a-b` / `a-` / `-n`
//!   (206 with `Content-Range`; 416 past the end);
//! - 404 with an XML `NoSuchKey` (or `NoSuchBucket`) body otherwise.
//!
//! Addressing ([`FakeStyle`]): `PathStyle` serves `/bucket/key` (OSS with
//! `addressing_style("path")`); `BucketInHost` serves `/key` (OBS with a
//! non-Huawei endpoint; COS, which always puts the bucket in the host
//! name). The `Host` header is recorded, never checked.
//!
//! OpenDAL 0.55.0's obs and cos backends keep only the host of the
//! endpoint and drop its port (`uri.host()` in their backend.rs), and cos
//! prefixes the bucket to it (`http://bucket.fake-cos.test/key`), so their
//! requests go to port 80 of a name that resolves nowhere. A client reaches
//! the fake by resolving that name to [`FakeStore::addr`] itself, e.g.
//! `reqwest::ClientBuilder::resolve("bucket.fake-cos.test", store.addr())`
//! given to OpenDAL with `Operator::update_http_client` (deprecated in
//! 0.55.0 for `HttpClientLayer`, still working); the address's port is
//! used because the URL has none. Not `bucket.127.0.0.1`: the URL
//! parser rejects a host whose last label is a number. A process we do not
//! configure (dfdaemon) has no such hook.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

mod format;
mod list;
#[cfg(test)]
mod tests;
mod wire;

use format::{content_type, digests, http_date, parse_range, percent_decode};
use wire::{error, parse_head, read_head, write_answer, Answer, Body, Head};

/// Connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// Requests kept by [`FakeStore::requests`]; later ones are not recorded.
pub const MAX_RECORDED: usize = 100_000;
pub(crate) const MAX_HEAD: usize = 64 * 1024;
const POLL: Duration = Duration::from_millis(100);
pub(crate) const IDLE: Duration = Duration::from_secs(60);

/// Where the bucket is in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeStyle {
    /// `/bucket/key`; other buckets are 404 `NoSuchBucket`.
    PathStyle { bucket: String },
    /// `/key`, the bucket implied by the host name.
    BucketInHost,
}

/// One request as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeRequest {
    pub method: String,
    /// The path, still percent-encoded, without the query.
    pub path: String,
    /// The query, still percent-encoded, without the `?`.
    pub query: String,
    /// The decoded names of the query parameters, in order.
    pub query_names: Vec<String>,
    /// The first word of an `Authorization` header (`OSS`, `OBS`,
    /// `q-sign-algorithm=sha1`): header-signed requests carry no signing
    /// query parameters. Never checked.
    pub authorization: Option<String>,
    pub host: Option<String>,
    pub range: Option<String>,
    pub status: u16,
}

struct Shared {
    root: PathBuf,
    style: FakeStyle,
    stop: AtomicBool,
    page_size: AtomicUsize,
    sent: AtomicU64,
    connections: AtomicU64,
    gets: Mutex<HashMap<String, u64>>,
    log: Mutex<Vec<FakeRequest>>,
    /// key -> (length, modified, MD5 hex, CRC-64)
    digests: Mutex<HashMap<String, (u64, std::time::SystemTime, String, u64)>>,
    live: Mutex<HashMap<u64, TcpStream>>,
}

/// The fake store; stops (listener closed, connections shut) on drop.
pub struct FakeStore {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FakeStore {
    /// Serves the files under `root` (keys are their paths relative to it,
    /// with `/`) on a free port of 127.0.0.1.
    pub fn start(root: &Path, style: FakeStyle) -> FakeStore {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake store");
        let addr = listener.local_addr().expect("fake store addr");
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            style,
            stop: AtomicBool::new(false),
            page_size: AtomicUsize::new(1000),
            sent: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            gets: Mutex::default(),
            log: Mutex::default(),
            digests: Mutex::default(),
            live: Mutex::default(),
        });
        let s = shared.clone();
        let accept = thread::spawn(move || accept_loop(listener, s));
        FakeStore {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:port`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The longest page a listing returns (default 1000, at least 1).
    pub fn set_page_size(&self, n: usize) {
        self.shared.page_size.store(n.max(1), Ordering::Relaxed);
    }

    /// Object bytes sent in `GET` answers (200 and 206), not headers,
    /// listings or error bodies.
    pub fn sent_body_bytes(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// `GET`s of `key` answered 200 or 206.
    pub fn gets(&self, key: &str) -> u64 {
        lock(&self.shared.gets).get(key).copied().unwrap_or(0)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Every request so far (up to [`MAX_RECORDED`]), in order.
    pub fn requests(&self) -> Vec<FakeRequest> {
        lock(&self.shared.log).clone()
    }
}

impl Drop for FakeStore {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in lock(&self.shared.live).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !lock(&self.shared.live).is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = stream else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        {
            let mut live = lock(&shared.live);
            if live.len() >= MAX_CONNECTIONS {
                let _ = stream.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            next_id += 1;
            live.insert(next_id, clone);
        }
        let (id, s) = (next_id, shared.clone());
        thread::spawn(move || {
            serve(stream, &s);
            lock(&s.live).remove(&id);
        });
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Some(raw) = read_head(&mut reader, &shared.stop) {
        let Some(head) = parse_head(&raw) else {
            let _ = writer.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        let length: u64 = match head.header("content-length").map(str::parse) {
            None => 0,
            Some(Ok(n)) if n <= 1 << 20 => n,
            Some(_) => return,
        };
        if head.header("transfer-encoding").is_some()
            || std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink()).ok()
                != Some(length)
        {
            return;
        }
        if respond(&head, &mut writer, shared).is_err() || !head.keep_alive {
            return;
        }
    }
}

fn respond(head: &Head, out: &mut TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (path, raw_query) = head
        .target
        .split_once('?')
        .unwrap_or((head.target.as_str(), ""));
    let query: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| {
            let d = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_string());
            (d(k), d(v))
        })
        .collect();
    let answer = route(head, path, &query, shared);
    if head.method == "GET" && matches!(answer.status, 200 | 206) {
        if let Body::File(..) = answer.body {
            let key = object_key(path, &shared.style).unwrap_or_default();
            *lock(&shared.gets).entry(key).or_insert(0) += 1;
        }
    }
    {
        let mut log = lock(&shared.log);
        if log.len() < MAX_RECORDED {
            log.push(FakeRequest {
                method: head.method.clone(),
                path: path.to_string(),
                query: raw_query.to_string(),
                query_names: query.iter().map(|(k, _)| k.clone()).collect(),
                authorization: head
                    .header("authorization")
                    .and_then(|v| v.split([' ', '&']).next())
                    .map(String::from),
                host: head.header("host").map(String::from),
                range: head.header("range").map(String::from),
                status: answer.status,
            });
        }
    }
    write_answer(out, head, answer, shared)
}

/// The decoded key a path names (empty at the bucket), or `None` for a
/// path outside the bucket.
fn object_key(path: &str, style: &FakeStyle) -> Option<String> {
    let path = percent_decode(path)?;
    let rest = path.strip_prefix('/')?;
    match style {
        FakeStyle::BucketInHost => Some(rest.to_string()),
        FakeStyle::PathStyle { bucket } => {
            let (b, key) = rest.split_once('/').unwrap_or((rest, ""));
            (b == bucket).then(|| key.to_string())
        }
    }
}

fn route(head: &Head, path: &str, query: &[(String, String)], shared: &Shared) -> Answer {
    let Some(key) = object_key(path, &shared.style) else {
        return error(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist.",
            path,
        );
    };
    match (head.method.as_str(), key.is_empty()) {
        ("GET", true) => {
            let bucket = match &shared.style {
                FakeStyle::PathStyle { bucket } => bucket.clone(),
                // The first label of the host name, as COS puts it there.
                FakeStyle::BucketInHost => head
                    .header("host")
                    .and_then(|h| h.split_once('.'))
                    .map_or_else(|| "bucket".to_string(), |(b, _)| b.to_string()),
            };
            list::answer(shared, &bucket, query)
        }
        ("HEAD", true) => Answer {
            status: 200,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        },
        ("GET" | "HEAD", false) => object(head, &key, shared),
        _ => error(
            405,
            "MethodNotAllowed",
            "The fake store is read-only.",
            path,
        ),
    }
}

/// The file of a key, if the key is a plain relative path to a file.
fn file_of(root: &Path, key: &str) -> Option<PathBuf> {
    let clean = !key.contains('\\')
        && !key.contains('\0')
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    let path = root.join(key);
    (clean && path.is_file()).then_some(path)
}

fn object(head: &Head, key: &str, shared: &Shared) -> Answer {
    let not_found = || error(404, "NoSuchKey", "The specified key does not exist.", key);
    let Some(file) = file_of(&shared.root, key) else {
        return not_found();
    };
    let Ok(meta) = std::fs::metadata(&file) else {
        return not_found();
    };
    let (len, modified) = (meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
    let Some((md5, crc)) = cached_digests(shared, key, &file, len, modified) else {
        return not_found();
    };
    let mut headers = vec![
        ("Content-Type", content_type(key).to_string()),
        ("ETag", format!("\"{md5}\"")),
        ("Last-Modified", http_date(modified)),
        ("Accept-Ranges", "bytes".to_string()),
        ("x-oss-hash-crc64ecma", crc.to_string()),
        ("x-cos-hash-crc64ecma", crc.to_string()),
    ];
    let range = if head.method == "GET" {
        parse_range(head.header("range"), len)
    } else {
        Ok(None)
    };
    match range {
        Ok(None) => Answer {
            status: 200,
            headers,
            body: Body::File(file, 0, len),
        },
        Ok(Some((first, last))) => {
            headers.push(("Content-Range", format!("bytes {first}-{last}/{len}")));
            Answer {
                status: 206,
                headers,
                body: Body::File(file, first, last - first + 1),
            }
        }
        Err(()) => {
            let mut a = error(
                416,
                "InvalidRange",
                "The requested range is not satisfiable.",
                key,
            );
            a.headers.push(("Content-Range", format!("bytes */{len}")));
            a
        }
    }
}

fn cached_digests(
    shared: &Shared,
    key: &str,
    file: &Path,
    len: u64,
    modified: std::time::SystemTime,
) -> Option<(String, u64)> {
    if let Some((l, m, md5, crc)) = lock(&shared.digests).get(key) {
        if (*l, *m) == (len, modified) {
            return Some((md5.clone(), *crc));
        }
    }
    let (md5, crc) = digests(file).ok()?;
    lock(&shared.digests).insert(key.to_string(), (len, modified, md5.clone(), crc));
    Some((md5, crc))
}

/// Every key under `root`, sorted (files only; names that are not UTF-8
/// are skipped).
fn all_keys(root: &Path) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(path),
                Ok(t) if t.is_file() => {
                    let rel = path.strip_prefix(root).ok().and_then(|p| p.to_str());
                    if let Some(rel) = rel {
                        keys.insert(rel.replace(std::path::MAIN_SEPARATOR, "/"));
                    }
                }
                _ => {}
            }
        }
    }
    keys
}
