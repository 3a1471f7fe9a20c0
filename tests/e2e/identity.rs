//! One model name, one version; one version, many names: through real
//! TorchServe, what "already registered", a conflict and a DELETE mean when
//! an archive serves several names, a new version arrives, or a model of
//! the same name was registered outside the plugin.

use dragonfly_endpoint_testbed::*;
use serde_json::Value;

fn unpacked_dirs(store: &std::path::Path) -> Vec<String> {
    entries(&store.join(".dragonfly-endpoint/unpacked"))
}

fn names_of(ts: &TorchServe, model: &str) -> Value {
    let (status, body) = call(ts, "GET", &format!("/dragonfly?model={model}"));
    assert_eq!(status, 200, "{body:#}");
    body["archive"]["pulled"]["model_names"].clone()
}

#[test]
fn one_version_serves_many_names_and_a_running_models_files_stay() {
    let stack = Stack::builder()
        .ts_config("enable_model_api=true\n")
        .start_with_torchserve();
    let Stack {
        work, origin, ts, ..
    } = stack;
    let store = ts.model_store();
    let mars = work.path().join("mars");
    let v1 = make_mar("a", 1.0, &mars.join("v1"), 91);
    origin.upload(&format!("{PREFIX}a.mar"), &v1.path);

    // The same version under a second name: both serve, one copy on disk.
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=a.mar");
    assert_eq!(status, 200, "{report:#}");
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=a.mar&model_name=a2");
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(report["models"][0]["registration"], "registered");
    assert_eq!(report["models"][0]["download"]["action"], "unchanged");
    assert_close(infer(&ts, "a").unwrap(), v1.expected);
    assert_close(infer(&ts, "a2").unwrap(), v1.expected);
    assert_eq!(names_of(&ts, "a2"), serde_json::json!(["a", "a2"]));
    let dirs = unpacked_dirs(&store);
    assert_eq!(dirs.len(), 1, "{dirs:?}");

    // DELETE one name: the other keeps serving from the same files.
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=a2");
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["archive_removed"], Value::Null, "{body:#}");
    assert_eq!(infer(&ts, "a2"), Err(404));
    assert_close(infer(&ts, "a").unwrap(), v1.expected);
    assert_eq!(
        std::fs::read(store.join("a.mar")).unwrap(),
        std::fs::read(&v1.path).unwrap()
    );
    assert_eq!(unpacked_dirs(&store), dirs);
    assert_eq!(names_of(&ts, "a"), serde_json::json!(["a"]));

    // A new version would replace the files `a` runs from: refused, under
    // another name and under its own, and nothing of `a` changes.
    let v2 = make_mar("a", 1.0, &mars.join("v2"), 92);
    origin.upload(&format!("{PREFIX}a.mar"), &v2.path);
    for query in ["model=a.mar&model_name=a3", "model=a.mar"] {
        let (status, body) = call(&ts, "PUT", &format!("/dragonfly?{query}"));
        let message = assert_error(status, &body, 409);
        assert!(message.contains("\"a\""), "{query}: {message}");
    }
    assert_eq!(infer(&ts, "a3"), Err(404));
    assert_close(infer(&ts, "a").unwrap(), v1.expected);
    assert_eq!(
        std::fs::read(store.join("a.mar")).unwrap(),
        std::fs::read(&v1.path).unwrap()
    );
    assert_eq!(unpacked_dirs(&store), dirs);

    // A model registered outside the plugin under the name a pull would
    // use is a conflict, not "already registered".
    let other = make_mar("b", 1.0, &mars.join("other"), 93);
    std::fs::copy(&other.path, store.join("other.mar")).unwrap();
    let response = http()
        .post(format!(
            "{}/models?url=other.mar&model_name=b&initial_workers=1&synchronous=true",
            ts.management()
        ))
        .bearer_auth(ts.management_token())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{:?}", response.text());
    let b = make_mar("b", 1.0, &mars.join("b"), 94);
    origin.upload(&format!("{PREFIX}b.mar"), &b.path);
    let (status, body) = call(&ts, "PUT", "/dragonfly?model=b.mar");
    assert_error(status, &body, 409);
    assert!(!store.join("b.mar").exists());
    assert_close(infer(&ts, "b").unwrap(), other.expected);

    // Names a pull makes: refused before any byte moves when TorchServe
    // would refuse them; `.mar` stripped once, and DELETE takes the file.
    let sent = origin.s3.sent_bytes();
    for (file, query) in [("my model.mar", "my%20model.mar"), ("a..b.mar", "a..b.mar")] {
        origin.upload(&format!("{PREFIX}{file}"), &v2.path);
        let (status, body) = call(&ts, "PUT", &format!("/dragonfly?model={query}"));
        let message = assert_error(status, &body, 400);
        assert!(message.contains("model_name"), "{message}");
        assert!(!store.join(file).exists());
    }
    assert_eq!(
        origin.s3.sent_bytes(),
        sent,
        "a refused name was downloaded"
    );
    origin.upload(&format!("{PREFIX}x.mar.mar"), &v2.path);
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=x.mar.mar");
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(report["models"][0]["model_name"], "x.mar");
    assert_close(infer(&ts, "x.mar").unwrap(), v2.expected);
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=x.mar.mar");
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["archive_removed"], "x.mar.mar");
    assert_eq!(infer(&ts, "x.mar"), Err(404));

    // The last name goes: so do its files.
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=a");
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["archive_removed"], "a.mar");
    assert!(!store.join("a.mar").exists());
    assert!(
        unpacked_dirs(&store).is_empty(),
        "{:?}",
        unpacked_dirs(&store)
    );
    // Only the history of its pulls is left.
    let (status, state) = call(&ts, "GET", "/dragonfly?model=a");
    assert_eq!(status, 200, "{state:#}");
    assert_eq!(state["archive"], Value::Null, "{state:#}");
    assert_no_partial_files(&store);
}
