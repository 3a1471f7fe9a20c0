//! The fake store's HTTP/1.1: request heads in, answers out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::format::{http_date, xml_escape};
use super::{Shared, IDLE, MAX_HEAD};

pub(super) struct Head {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub keep_alive: bool,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The bytes of one request head (through the blank line), or `None` at
/// EOF, on stop, after [`IDLE`] without a request, or past [`MAX_HEAD`].
pub(super) fn read_head(reader: &mut BufReader<TcpStream>, stop: &AtomicBool) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let started = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) || head.len() > MAX_HEAD {
            return None;
        }
        let buf = match reader.fill_buf() {
            Ok([]) => return None,
            Ok(buf) => buf,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                if started.elapsed() > IDLE {
                    return None;
                }
                continue;
            }
            Err(_) => return None,
        };
        let mut used = 0;
        let mut done = false;
        for &b in buf {
            head.push(b);
            used += 1;
            if head.ends_with(b"\r\n\r\n") {
                done = true;
                break;
            }
        }
        reader.consume(used);
        if done {
            return Some(head);
        }
    }
}

pub(super) fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let connection = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("connection"))
        .map(|(_, v)| v.to_ascii_lowercase());
    let keep_alive = match version {
        "HTTP/1.1" => connection.as_deref() != Some("close"),
        "HTTP/1.0" => connection.as_deref() == Some("keep-alive"),
        _ => return None,
    };
    Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        keep_alive,
    })
}

pub(super) enum Body {
    Bytes(Vec<u8>),
    /// (file, first byte, length)
    File(PathBuf, u64, u64),
}

pub(super) struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

pub(super) fn error(status: u16, code: &str, message: &str, resource: &str) -> Answer {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message><Resource>{}</Resource>\
         <RequestId>fake-store</RequestId></Error>",
        xml_escape(resource)
    );
    Answer {
        status,
        headers: vec![("Content-Type", "application/xml".into())],
        body: Body::Bytes(xml.into_bytes()),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Unknown",
    }
}

pub(super) fn write_answer(
    out: &mut TcpStream,
    head: &Head,
    a: Answer,
    shared: &Shared,
) -> std::io::Result<()> {
    let length = match &a.body {
        Body::Bytes(b) => b.len() as u64,
        Body::File(_, _, n) => *n,
    };
    let mut text = format!("HTTP/1.1 {} {}\r\n", a.status, reason(a.status));
    for (k, v) in &a.headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str(&format!(
        "Content-Length: {length}\r\nDate: {}\r\nServer: dfe-fake-store\r\n",
        http_date(std::time::SystemTime::now())
    ));
    if !head.keep_alive {
        text.push_str("Connection: close\r\n");
    }
    text.push_str("\r\n");
    out.write_all(text.as_bytes())?;
    if head.method == "HEAD" {
        return out.flush();
    }
    match a.body {
        Body::Bytes(b) => out.write_all(&b)?,
        Body::File(path, first, n) => {
            let mut file = std::fs::File::open(path)?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(first))?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut left = n;
            while left > 0 {
                let want = buf.len().min(left as usize);
                let got = file.read(&mut buf[..want])?;
                if got == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                out.write_all(&buf[..got])?;
                shared.sent.fetch_add(got as u64, Ordering::Relaxed);
                left -= got as u64;
            }
        }
    }
    out.flush()
}
