//! HTTP as an operator sends it: a client that ignores proxy variables,
//! calls on TorchServe's management port with its token, inference with
//! the inference token (no token where the server has no token auth), and
//! the checks of TorchServe's answers.

use std::time::Duration;

use serde_json::Value;

use crate::servers::TorchServe;

/// A blocking client that ignores proxy variables, 600 s per request.
pub fn http() -> reqwest::blocking::Client {
    http_with_timeout(Duration::from_secs(600))
}

/// [`http`] with another per-request timeout.
pub fn http_with_timeout(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("http client")
}

/// `method path_and_query` on TorchServe's management port with the token,
/// through `client`: the status and the body as JSON (a JSON string when
/// it is not JSON), or the error of sending it.
pub fn send(
    client: &reqwest::blocking::Client,
    ts: &TorchServe,
    method: &str,
    path_and_query: &str,
) -> reqwest::Result<(u16, Value)> {
    let url = format!("{}{}", ts.management(), path_and_query);
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let response = with_token(client.request(method, &url), ts.management_token()).send()?;
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

/// The request with `Authorization: Bearer <token>`, or as it is when the
/// server has no token auth (before 0.11.1: the token is empty).
fn with_token(
    request: reqwest::blocking::RequestBuilder,
    token: &str,
) -> reqwest::blocking::RequestBuilder {
    if token.is_empty() {
        request
    } else {
        request.bearer_auth(token)
    }
}

/// A call to the plugin on TorchServe's management port, with the token.
pub fn call(ts: &TorchServe, method: &str, path_and_query: &str) -> (u16, Value) {
    send(&http(), ts, method, path_and_query)
        .unwrap_or_else(|e| panic!("{}{}: {e}", ts.management(), path_and_query))
}

/// Asserts TorchServe's error shape and returns the message.
pub fn assert_error(status: u16, body: &Value, expected: u16) -> String {
    assert_eq!(status, expected, "{body:#}");
    assert_eq!(body["code"], expected, "{body:#}");
    assert!(
        body["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{body:#}"
    );
    let message = body["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "{body:#}");
    message
}

/// `POST /predictions/<model>` with x = 1 and the inference token.
pub fn predict(
    client: &reqwest::blocking::Client,
    ts: &TorchServe,
    model: &str,
) -> reqwest::Result<reqwest::blocking::Response> {
    let request = client.post(format!("{}/predictions/{model}", ts.inference()));
    with_token(request, ts.inference_token()).body("1").send()
}

/// The model's answer for x = 1, or the HTTP status when it does not answer.
pub fn infer(ts: &TorchServe, model: &str) -> Result<f64, u16> {
    let response = predict(&http(), ts, model).expect("inference request");
    let status = response.status().as_u16();
    if status != 200 {
        return Err(status);
    }
    let body: Value = response.json().expect("inference JSON");
    body["y"].as_f64().ok_or(500)
}

pub fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= 1e-9 * expected.abs(),
        "{actual} != {expected}"
    );
}
