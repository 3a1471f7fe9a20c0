//! The fake store through plain HTTP (reqwest, blocking).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use md5::Digest as _;
use reqwest::blocking::Client;
use reqwest::StatusCode;

use super::format::{parse_range, Crc64};
use super::{FakeStore, FakeStyle};

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (key, body) in [
        ("models/a.mar", "0123456789"),
        ("models/b.mar", "bbbb"),
        ("models/sub/c.mar", "cc"),
        ("models/sub/d.mar", "d"),
        ("other/e.txt", "eeeee"),
    ] {
        let path = dir.path().join(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    }
    dir
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn text_of(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string()))
        .collect()
}

/// Follows the pages of a listing: (keys, common prefixes, pages).
fn list_all(base: &str, v2: bool, extra: &str) -> (Vec<String>, Vec<String>, usize) {
    let (mut keys, mut prefixes, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut token = String::new();
    loop {
        let mut url = format!("{base}?{}{extra}", if v2 { "list-type=2&" } else { "" });
        if !token.is_empty() {
            let name = if v2 { "continuation-token" } else { "marker" };
            url.push_str(&format!("&{name}={token}"));
        }
        let xml = client()
            .get(&url)
            .send()
            .expect("list")
            .text()
            .expect("body");
        pages += 1;
        let contents: Vec<String> = text_of(&xml, "Contents");
        keys.extend(contents.iter().flat_map(|c| text_of(c, "Key")));
        prefixes.extend(
            text_of(&xml, "CommonPrefixes")
                .iter()
                .flat_map(|c| text_of(c, "Prefix")),
        );
        let next = text_of(
            &xml,
            if v2 {
                "NextContinuationToken"
            } else {
                "NextMarker"
            },
        );
        let truncated = text_of(&xml, "IsTruncated") == ["true"];
        assert_eq!(truncated, !next.is_empty(), "{xml}");
        match next.first() {
            Some(n) => token = n.clone(),
            None => return (keys, prefixes, pages),
        }
        assert!(pages < 100);
    }
}

#[test]
fn lists_in_both_forms_with_pages() {
    let dir = tree();
    let store = FakeStore::start(dir.path(), FakeStyle::PathStyle { bucket: "b".into() });
    store.set_page_size(2);
    let base = format!("{}/b", store.endpoint());
    let all = [
        "models/a.mar",
        "models/b.mar",
        "models/sub/c.mar",
        "models/sub/d.mar",
    ];
    let (keys, prefixes, pages) = list_all(&base, true, "&prefix=models%2F");
    assert_eq!(
        (keys, prefixes.len(), pages),
        (all.map(String::from).to_vec(), 0, 2)
    );
    let (keys, _, pages) = list_all(&base, false, "&prefix=models/&max-keys=1");
    assert_eq!((keys, pages), (all.map(String::from).to_vec(), 4));
    let (keys, prefixes, _) = list_all(&base, false, "&delimiter=/");
    assert!(keys.is_empty());
    assert_eq!(prefixes, ["models/", "other/"]);
    let (keys, prefixes, _) = list_all(&base, true, "&prefix=models/&delimiter=/");
    assert_eq!(
        (keys, prefixes),
        (
            vec!["models/a.mar".to_string(), "models/b.mar".into()],
            vec!["models/sub/".to_string()]
        )
    );
    let xml = client()
        .get(format!("{base}?list-type=2&start-after=models/sub/c.mar"))
        .send()
        .and_then(|r| r.text())
        .expect("list");
    assert_eq!(text_of(&xml, "Key"), ["models/sub/d.mar", "other/e.txt"]);
    assert_eq!(text_of(&xml, "Size"), ["1", "5"]);
    assert!(text_of(&xml, "LastModified")[0].ends_with(".000Z"), "{xml}");
}

#[test]
fn stat_and_reads() {
    let dir = tree();
    let store = FakeStore::start(dir.path(), FakeStyle::BucketInHost);
    let url = format!("{}/models/a.mar", store.endpoint());
    let head = client().head(&url).send().expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    let h = |name: &str| head.headers()[name].to_str().expect("ascii").to_string();
    assert_eq!(h("content-length"), "10");
    assert_eq!(
        h("etag"),
        format!("\"{:x}\"", md5::Md5::digest(b"0123456789"))
    );
    assert!(h("last-modified").ends_with(" GMT"));
    assert_eq!(h("content-type"), "application/zip");
    let mut crc = Crc64::new();
    crc.update(b"0123456789");
    assert_eq!(h("x-cos-hash-crc64ecma"), crc.finish().to_string());

    let get = |range: Option<&str>| {
        let mut req = client().get(&url);
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        let resp = req.send().expect("get");
        let status = resp.status();
        let content_range = resp
            .headers()
            .get("content-range")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        (status, content_range, resp.text().expect("body"))
    };
    assert_eq!(get(None), (StatusCode::OK, None, "0123456789".into()));
    assert_eq!(
        get(Some("bytes=2-5")),
        (
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 2-5/10".into()),
            "2345".into()
        )
    );
    assert_eq!(get(Some("bytes=7-")).2, "789");
    assert_eq!(get(Some("bytes=-2")).2, "89");
    assert_eq!(get(Some("bytes=8-100")).1.as_deref(), Some("bytes 8-9/10"));
    let (status, content_range, _) = get(Some("bytes=10-12"));
    assert_eq!(
        (status, content_range.as_deref()),
        (StatusCode::RANGE_NOT_SATISFIABLE, Some("bytes */10"))
    );
    assert_eq!(store.gets("models/a.mar"), 5);
    assert_eq!(store.sent_body_bytes(), 10 + 4 + 3 + 2 + 2);
}

#[test]
fn missing_keys_and_buckets_are_404() {
    let dir = tree();
    let store = FakeStore::start(dir.path(), FakeStyle::PathStyle { bucket: "b".into() });
    let c = client();
    for (method, path, code) in [
        ("GET", "/b/models/none.mar", "NoSuchKey"),
        ("HEAD", "/b/models/none.mar", ""),
        ("GET", "/b/models", "NoSuchKey"),
        ("GET", "/other/models/a.mar", "NoSuchBucket"),
    ] {
        let url = format!("{}{path}", store.endpoint());
        let resp = c
            .request(method.parse().expect("method"), &url)
            .send()
            .expect("send");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body = resp.text().expect("body");
        assert!(body.contains(code), "{method} {path}: {body}");
    }
    assert_eq!(store.gets("models/none.mar"), 0);
    // No way out of the directory, whatever the client does not normalise.
    let mut raw = TcpStream::connect(store.addr()).expect("connect");
    raw.write_all(
        b"GET /b/models/%2e%2e/other/e.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut answer = String::new();
    raw.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

#[test]
fn records_query_names_and_keeps_connections() {
    let dir = tree();
    let store = FakeStore::start(dir.path(), FakeStyle::BucketInHost);
    let c = client();
    let url = format!(
        "{}/other/e.txt?q-sign-algorithm=sha1&q-ak=AK&q-signature=abc",
        store.endpoint()
    );
    for _ in 0..5 {
        let resp = c.get(&url).header("Authorization", "OSS ak:sig").send();
        assert_eq!(resp.expect("get").text().expect("body"), "eeeee");
    }
    assert_eq!(store.connections(), 1, "keep-alive");
    let requests = store.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(
        requests[0].query_names,
        ["q-sign-algorithm", "q-ak", "q-signature"]
    );
    assert_eq!(requests[0].path, "/other/e.txt");
    assert_eq!(
        requests[0].query,
        "q-sign-algorithm=sha1&q-ak=AK&q-signature=abc"
    );
    assert_eq!(requests[0].authorization.as_deref(), Some("OSS"));
    assert_eq!(requests[0].status, 200);
    assert!(requests[0].host.is_some());
}

#[test]
fn stops_on_drop() {
    let dir = tree();
    let store = FakeStore::start(dir.path(), FakeStyle::BucketInHost);
    let addr = store.addr();
    let c = client();
    c.get(format!("{}/other/e.txt", store.endpoint()))
        .send()
        .expect("get");
    drop(store);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn crc64_and_ranges() {
    let mut crc = Crc64::new();
    crc.update(b"123456789");
    // The CRC-64/XZ check value.
    assert_eq!(crc.finish(), 0x995D_C9BB_DF19_39FA);
    assert_eq!(parse_range(Some("bytes=0-0"), 3), Ok(Some((0, 0))));
    assert_eq!(parse_range(Some("bytes=-5"), 3), Ok(Some((0, 2))));
    assert_eq!(parse_range(Some("bytes=3-"), 3), Err(()));
    assert_eq!(parse_range(Some("bytes=0-1,2-3"), 3), Ok(None));
    assert_eq!(parse_range(None, 3), Ok(None));
}
