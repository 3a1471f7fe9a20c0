//! Tencent Cloud COS query signing (`reqsign::TencentCosSigner`, what
//! OpenDAL's cos `presign_*` use) against the COS documentation.
//!
//! Documented examples with expected values: COS API "Request Signature"
//! (https://www.tencentcloud.com/document/product/436/7778, Chinese
//! original https://cloud.tencent.com/document/product/436/7778), section
//! "Use Case": SecretId `AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q`, SecretKey
//! `BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz`,
//!
//! - "Uploading an Object": `PUT /exampleobject(腾讯云)` with seven headers,
//!   KeyTime `1557989151;1557996351`, SignKey
//!   `eb2519b498b02ac213cb1f3d1a3d27a3b3c9bc5f`, Signature
//!   `3b8851a11a569213c17ba8fa7dcf2abec6935172`;
//! - "Downloading an Object": `GET /exampleobject(腾讯云)?response-content-type=
//!   application%2Foctet-stream&response-cache-control=max-age%3D600` with
//!   `Date` and `Host`, KeyTime `1557989753;1557996953`, SignKey
//!   `937914bf490e9e8c189836aad2052e4feeb35eaf`, Signature
//!   `01681b8c9d798a678e43b685a9f1bba0f6c0e012`.
//!
//! (The English page prints the HttpString path as `/exampleobject(tencentcloud)`,
//! a translation of the Chinese characters; the signature is the Chinese one's.)
//!
//! [`documented`] implements the document's steps and must reproduce both
//! examples. reqsign 0.16.5's `TencentCosSigner::with_time` is
//! `#[cfg(test)]`, so reqsign signs the same requests at the current time
//! and its `q-key-time` is read back; its signature must equal the
//! documented steps at that KeyTime, and its header and parameter lists
//! must equal the document's.

use dragonfly_endpoint_core::config::StoreKind;
use std::time::Duration;

use reqsign::{TencentCosCredential, TencentCosSigner};

use crate::common::{added_params, hex, hmac_sha1, raw_param, request, sha1_hex, url_encode};

const SECRET_ID: &str = "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q";
const SECRET_KEY: &str = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz";
const HOST: &str = "examplebucket-1250000000.cos.ap-beijing.myqcloud.com";
const PATH: &str = "/exampleobject(%E8%85%BE%E8%AE%AF%E4%BA%91)";

/// The document's steps 1-7: (HeaderList, UrlParamList, Signature).
fn documented(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
    key_time: &str,
) -> (String, String, String) {
    let sign_key = hex(&hmac_sha1(SECRET_KEY.as_bytes(), key_time.as_bytes()));
    // Keys lower-cased and UrlEncoded, values UrlEncoded, sorted by key.
    let canon = |pairs: &[(&str, &str)]| {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, val)| (url_encode(&k.to_lowercase()), url_encode(val)))
            .collect();
        v.sort();
        let list: Vec<&str> = v.iter().map(|(k, _)| k.as_str()).collect();
        let joined: Vec<String> = v.iter().map(|(k, val)| format!("{k}={val}")).collect();
        (list.join(";"), joined.join("&"))
    };
    let (param_list, http_parameters) = canon(params);
    let (header_list, http_headers) = canon(headers);
    let path = crate::common::url_decode(path);
    let http_string = format!(
        "{}\n{path}\n{http_parameters}\n{http_headers}\n",
        method.to_lowercase()
    );
    let string_to_sign = format!("sha1\n{key_time}\n{}\n", sha1_hex(http_string.as_bytes()));
    let signature = hex(&hmac_sha1(sign_key.as_bytes(), string_to_sign.as_bytes()));
    (header_list, param_list, signature)
}

const PUT_HEADERS: [(&str, &str); 7] = [
    ("Date", "Thu, 16 May 2019 06:45:51 GMT"),
    ("Host", HOST),
    ("Content-Type", "text/plain"),
    ("Content-Length", "13"),
    ("Content-MD5", "mQ/fVh815F3k6TAUm8m0eg=="),
    ("x-cos-acl", "private"),
    ("x-cos-grant-read", "uin=\"100000000011\""),
];
const GET_HEADERS: [(&str, &str); 2] = [("Date", "Thu, 16 May 2019 06:55:53 GMT"), ("Host", HOST)];
const GET_PARAMS: [(&str, &str); 2] = [
    ("response-content-type", "application/octet-stream"),
    ("response-cache-control", "max-age=600"),
];

#[test]
fn documented_examples() {
    let put = documented("PUT", PATH, &[], &PUT_HEADERS, "1557989151;1557996351");
    assert_eq!(
        put,
        (
            "content-length;content-md5;content-type;date;host;x-cos-acl;x-cos-grant-read".into(),
            String::new(),
            "3b8851a11a569213c17ba8fa7dcf2abec6935172".into()
        )
    );
    let get = documented(
        "GET",
        PATH,
        &GET_PARAMS,
        &GET_HEADERS,
        "1557989753;1557996953",
    );
    assert_eq!(
        get,
        (
            "date;host".into(),
            "response-cache-control;response-content-type".into(),
            "01681b8c9d798a678e43b685a9f1bba0f6c0e012".into()
        )
    );
    assert_eq!(
        hex(&hmac_sha1(SECRET_KEY.as_bytes(), b"1557989151;1557996351")),
        "eb2519b498b02ac213cb1f3d1a3d27a3b3c9bc5f"
    );
}

/// reqsign's pre-signed URL for `url`: its query as `name -> raw value`.
fn sign(method: &str, url: &str, headers: &[(&str, &str)], token: Option<&str>) -> http::Uri {
    let mut req = request(method, url, headers);
    let cred = TencentCosCredential {
        secret_id: SECRET_ID.into(),
        secret_key: SECRET_KEY.into(),
        security_token: token.map(String::from),
        expires_in: None,
    };
    TencentCosSigner::new()
        .sign_query(&mut req, Duration::from_secs(7200), &cred)
        .expect("reqsign signs");
    req.uri().clone()
}

/// Checks reqsign's URL against the documented steps at reqsign's KeyTime.
fn check(uri: &http::Uri, method: &str, params: &[(&str, &str)], headers: &[(&str, &str)]) {
    assert_eq!(raw_param(uri, "q-sign-algorithm"), "sha1");
    assert_eq!(raw_param(uri, "q-ak"), SECRET_ID);
    let key_time = raw_param(uri, "q-key-time");
    assert_eq!(raw_param(uri, "q-sign-time"), key_time);
    let (start, end) = key_time.split_once(';').expect("start;end");
    let (start, end): (u64, u64) = (start.parse().expect("start"), end.parse().expect("end"));
    assert_eq!(end - start, 7200, "KeyTime {key_time}");
    let (header_list, param_list, signature) = documented(method, PATH, params, headers, &key_time);
    assert_eq!(raw_param(uri, "q-header-list"), header_list);
    assert_eq!(raw_param(uri, "q-url-param-list"), param_list);
    assert_eq!(raw_param(uri, "q-signature"), signature);
}

#[test]
fn reqsign_signs_the_documented_download() {
    let url = format!(
        "http://{HOST}{PATH}?response-content-type=application%2Foctet-stream\
         &response-cache-control=max-age%3D600"
    );
    let uri = sign("GET", &url, &GET_HEADERS, None);
    check(&uri, "GET", &GET_PARAMS, &GET_HEADERS);
}

#[test]
fn reqsign_signs_the_documented_upload() {
    let uri = sign("PUT", &format!("http://{HOST}{PATH}"), &PUT_HEADERS, None);
    check(&uri, "PUT", &[], &PUT_HEADERS);
}

/// What OpenDAL's `presign_read` signs: a GET with no headers at all, so
/// nothing is in the header list (not even `host`).
#[test]
fn reqsign_signs_a_plain_get() {
    let uri = sign("GET", &format!("http://{HOST}{PATH}"), &[], None);
    check(&uri, "GET", &[], &[]);
    assert_eq!(raw_param(&uri, "q-header-list"), "");
}

/// The parameter names of a COS signed URL (for the
/// `X-Dragonfly-Filtered-Query-Params` list), with and without a token.
#[test]
fn signing_parameter_names() {
    let url = format!("http://{HOST}/a.mar");
    let names = [
        "q-sign-algorithm",
        "q-ak",
        "q-sign-time",
        "q-key-time",
        "q-header-list",
        "q-url-param-list",
        "q-signature",
    ];
    assert_eq!(added_params(&url, &sign("GET", &url, &[], None)), names);
    let with_token = added_params(&url, &sign("GET", &url, &[], Some("tok")));
    assert_eq!(with_token[..7], names);
    assert_eq!(with_token[7..], ["x-cos-security-token"]);
    crate::common::assert_filtered(StoreKind::Cos, &with_token);
}
