//! Helpers shared by the signer tests: the hashes the vendors document, and
//! the parts of a signed URL.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha1::{Digest as _, Sha1};

/// RFC 3986 unreserved characters stay, everything else is `%XX` (upper
/// case): the "UrlEncode" the COS document defines, and what OSS and OBS
/// mean by "urlencode" for the signature.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

pub fn url_decode(s: &str) -> String {
    percent_decode_str(s)
        .decode_utf8()
        .expect("query value is UTF-8")
        .into_owned()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

pub fn sha1_hex(msg: &[u8]) -> String {
    hex(&Sha1::digest(msg))
}

/// `Base64(HMAC-SHA1(secret, string_to_sign))`: the V1 signature of OSS and
/// the signature of OBS.
pub fn base64_hmac_sha1(secret: &str, string_to_sign: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha1(secret.as_bytes(), string_to_sign.as_bytes()))
}

/// The raw (still encoded) `name=value` pairs of a URL's query, in order.
pub fn raw_query(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

/// The raw value of the one query parameter `name`.
pub fn raw_param(uri: &http::Uri, name: &str) -> String {
    let values: Vec<String> = raw_query(uri)
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{name} once in {uri}");
    values.into_iter().next().unwrap_or_default()
}

/// The names of the query parameters the signer added to `unsigned`.
pub fn added_params(unsigned: &str, signed: &http::Uri) -> Vec<String> {
    let before: Vec<String> = unsigned
        .parse::<http::Uri>()
        .map(|u| raw_query(&u).into_iter().map(|(k, _)| k).collect())
        .unwrap_or_default();
    raw_query(signed)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !before.contains(k))
        .collect()
}

/// A request with these headers, ready for a reqsign signer.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("valid request")
}

#[test]
fn helpers_match_known_values() {
    // RFC 2202, HMAC-SHA1 test case 2.
    assert_eq!(
        hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    );
    assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(url_encode("a b/é~"), "a%20b%2F%C3%A9~");
}

/// Every parameter a signer wrote is in the list the plugin sends dfdaemon
/// for `kind` (`source::stores::signing_params`): one missing, and every
/// node's URL would be a Dragonfly task of its own.
pub fn assert_filtered(kind: dragonfly_endpoint_core::config::StoreKind, names: &[String]) {
    let filtered = dragonfly_endpoint_core::source::stores::signing_params(kind);
    for name in names {
        assert!(
            filtered.contains(&name.as_str()),
            "{name} is signed by {kind:?} but not in the plugin's filter list {filtered:?}"
        );
    }
}
