//! Every curl example of docs/api.md, run in order against the test bed:
//! each must answer the status its `# expect: N` line documents.

use std::process::Command;

use dragonfly_endpoint_testbed::*;

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

    let stack = Stack::builder().start_with_torchserve();
    let Stack {
        work, origin, ts, ..
    } = stack;
    for (i, name) in ["squeezenet", "resnet"].iter().enumerate() {
        let mar = make_mar(name, 1.0, &work.path().join("mars"), i as u32 + 20);
        origin.upload(&format!("{PREFIX}{name}.mar"), &mar.path);
    }
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
