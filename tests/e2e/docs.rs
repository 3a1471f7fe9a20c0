//! Every curl example of docs/api.md, run in order against the test bed:
//! each must answer the status its `# expect: N` line documents.

use std::process::Command;

use dragonfly_endpoint_testbed::*;
use serde_json::json;

/// `(expected status, curl command line)` in document order.
fn examples(markdown: &str) -> Vec<(u16, String)> {
    let mut found = Vec::new();
    let mut expect = None;
    for line in markdown.lines() {
        let line = line.trim();
        if let Some(code) = line.strip_prefix("# expect:") {
            expect = code.trim().parse().ok();
        } else if line.starts_with("curl ") {
            if let Some(code) = expect.take() {
                found.push((code, line.to_string()));
            }
        }
    }
    found
}

#[test]
fn api_doc_curl_examples_give_their_documented_status() {
    let markdown = std::fs::read_to_string(repo_root().join("docs/api.md")).unwrap();
    let examples = examples(&markdown);
    assert!(
        examples.len() >= 10,
        "only {} examples found",
        examples.len()
    );

    let work = tempfile::tempdir().unwrap();
    let origin = Origin::start(1);
    for (i, name) in ["squeezenet", "resnet"].iter().enumerate() {
        let mar = make_mar(name, 1.0, &work.path().join("mars"), i as u32 + 20);
        origin.upload(&format!("{PREFIX}{name}.mar"), &mar.path);
    }
    let config = write_config(
        &work.path().join("cfg"),
        &origin.s3,
        &origin.dragonfly.proxy(1),
        json!({}),
    );
    let (_plugins, ts) = torchserve_with_plugin(&config);
    for (expected, curl) in examples {
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!("{curl} -o /dev/null -w '%{{http_code}}'"))
            .env("TS", ts.management())
            .env("TOKEN", ts.management_token())
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&output.stdout);
        assert_eq!(status.trim(), expected.to_string(), "{curl}");
    }
}
