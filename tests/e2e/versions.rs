//! The same jar in each TorchServe version of
//! `DRAGONFLY_ENDPOINT_TORCHSERVE_VERSIONS` (comma or space separated;
//! default [`SUITE_VERSIONS`], what the default suite runs; `scripts/test
//! --torchserve-matrix` passes every version). One origin (S3, a Dragonfly
//! peer) serves them all; each version gets a fresh TorchServe with only the
//! test jar, started with that version's defaults (token auth on and the
//! model API off from 0.11.1; neither exists before). On a supported
//! version the smoke must pass: `PUT model=all` registers real TorchScript
//! models (unpacked directories) that answer inference, GET and DELETE
//! work, a model registers again from its `.mar`, bad input gets its 4xx
//! and changes nothing. A version outside the supported lines must refuse
//! every pull and DELETE with a 500 naming the version. Prints the outcome and wall
//! time per version (`--nocapture` shows them on success too).

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Instant;

use dragonfly_endpoint_testbed::*;
use serde_json::{json, Value};

/// The versions of the default suite: the main venv's and the oldest
/// supported (scripts/lib/common.sh, `DFE_TORCHSERVE_SUITE`).
const SUITE_VERSIONS: &str = "0.12.0 0.9.0";

fn versions() -> Vec<String> {
    let list = std::env::var("DRAGONFLY_ENDPOINT_TORCHSERVE_VERSIONS")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| SUITE_VERSIONS.to_string());
    list.split([',', ' '])
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// `(major, minor, patch)` of "0.11.1".
fn parse(version: &str) -> (u32, u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// The lines the plugin supports (docs/compatibility.md).
fn supported(version: &str) -> bool {
    matches!(parse(version), (0, 9..=12, _))
}

struct Fixture<'a> {
    config: &'a Path,
    mar_config: &'a Path,
    alpha: &'a Mar,
    beta: &'a Mar,
}

#[test]
fn the_same_jar_works_on_each_torchserve_version() {
    let stack = Stack::builder().start();
    let Stack {
        work,
        origin,
        config,
        ..
    } = stack;
    let mars = work.path().join("mars");
    let alpha = make_mar("alpha", 1.0, &mars, 71);
    let beta = make_mar("beta", 1.0, &mars, 72);
    origin.upload(&format!("{PREFIX}alpha.mar"), &alpha.path);
    origin.upload(&format!("{PREFIX}beta.mar"), &beta.path);
    let mar_config = write_config_file(
        config.parent().expect("config dir"),
        "mar.json",
        &config_json(
            &origin.s3,
            PREFIX,
            &origin.dragonfly.proxy(1),
            json!({"register_as": "mar"}),
        ),
    );
    let fixture = Fixture {
        config: &config,
        mar_config: &mar_config,
        alpha: &alpha,
        beta: &beta,
    };

    let mut results = Vec::new();
    for version in versions() {
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if supported(&version) {
                smoke(&version, &fixture)
            } else {
                refused(&version, &fixture)
            }
        }));
        let seconds = started.elapsed().as_secs_f64();
        let what = match (supported(&version), outcome.is_ok()) {
            (true, true) => "pass",
            (false, true) => "refused as unsupported (pass)",
            (_, false) => "FAIL",
        };
        eprintln!("torchserve {version}: {what} in {seconds:.1} s");
        results.push((version, outcome.is_ok(), seconds));
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(v, _, _)| v.as_str())
        .collect();
    assert!(failed.is_empty(), "failed on TorchServe {failed:?}");
}

fn log_of(ts: &TorchServe) -> String {
    std::fs::read_to_string(ts.log_dir().join("ts_log.log")).unwrap_or_default()
}

/// TorchServe's own view: `GET /models/<name>`, the model's URL when
/// registered, else the status.
fn model_url(ts: &TorchServe, name: &str) -> Result<String, u16> {
    match call(ts, "GET", &format!("/models/{name}")) {
        (200, Value::Array(models)) => Ok(models[0]["modelUrl"].as_str().unwrap_or("").into()),
        (status, _) => Err(status),
    }
}

fn smoke(version: &str, fixture: &Fixture) {
    let (_plugins, ts) =
        torchserve_version_with_plugin(version, Jar::TestHooks, fixture.config, "");
    assert_eq!(ts.version(), version);
    let store = ts.model_store();
    let form = if parse(version) >= (0, 12, 0) { 12 } else { 11 };
    let loaded = format!(
        "dragonfly endpoint: TorchServe {version}, registering through ApiUtils.handleRegister ({form} parameters)"
    );
    assert!(log_of(&ts).contains(&loaded), "no {loaded:?} in ts_log.log");

    // The server's own defaults: token auth and the model API switch exist
    // from 0.11.1 (on and off); before, the plugin is called without a token.
    let newer = parse(version) >= (0, 11, 1);
    assert_eq!(ts.token_auth(), newer, "token auth on {version}");
    if newer {
        let untokened = http()
            .get(format!("{}/dragonfly", ts.management()))
            .send()
            .unwrap();
        assert_eq!(untokened.status().as_u16(), 400, "a call without the token");
        assert_eq!(call(&ts, "POST", "/models?url=alpha.mar").0, 405);
    }

    // PUT model=all: both archives pulled, unpacked and registered.
    let (status, report) = call(&ts, "PUT", "/dragonfly?model=all");
    assert_eq!(status, 200, "{report:#}");
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "{report:#}");
    for model in models {
        assert_eq!(model["status"], 200, "{model:#}");
        assert_eq!(model["registration"], "registered", "{model:#}");
    }
    assert_close(infer(&ts, "alpha").unwrap(), fixture.alpha.expected);
    assert_close(infer(&ts, "beta").unwrap(), fixture.beta.expected);
    let url = model_url(&ts, "alpha").unwrap();
    assert!(url.contains(".dragonfly-endpoint/unpacked/"), "{url}");

    // GET: the config and the pulls; one model's archive.
    let (status, state) = call(&ts, "GET", "/dragonfly");
    assert_eq!(status, 200, "{state:#}");
    assert_eq!(state["config"]["object_storage"]["secret_key"], "***");
    assert!(
        state["pulls"].as_array().is_some_and(|p| p.len() == 2),
        "{state:#}"
    );
    let (status, one) = call(&ts, "GET", "/dragonfly?model=alpha");
    assert_eq!(status, 200, "{one:#}");
    assert_eq!(
        one["archive"]["pulled"]["key"],
        format!("{PREFIX}alpha.mar")
    );

    // DELETE: unregistered in TorchServe, its archive gone; twice is a 404.
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=beta");
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(infer(&ts, "beta"), Err(404));
    assert_eq!(model_url(&ts, "beta"), Err(404));
    assert!(!store.join("beta.mar").exists());
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=beta");
    assert_error(status, &body, 404);

    // Registered again from the .mar itself (TorchServe unzips it).
    let path = format!(
        "/dragonfly?model=beta.mar&config={}",
        fixture.mar_config.display()
    );
    let (status, report) = call(&ts, "PUT", &path);
    assert_eq!(status, 200, "{report:#}");
    assert_close(infer(&ts, "beta").unwrap(), fixture.beta.expected);
    assert_eq!(model_url(&ts, "beta").unwrap(), "beta.mar");

    // Bad input: its 4xx with TorchServe's error JSON, nothing changed. The
    // unknown runtime is refused by TorchServe's registry itself, after the
    // download: the archive goes again.
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=alpha");
    assert_eq!(status, 200, "{body:#}");
    let before = entries(&store);
    let cases: &[(&str, &str, u16)] = &[
        ("PUT", "/dragonfly", 400),
        ("PUT", "/dragonfly?model=..%2Fescape.mar", 400),
        ("PUT", "/dragonfly?model=missing.mar", 404),
        ("PUT", "/dragonfly?model=alpha.mar&initial_workers=two", 400),
        ("GET", "/dragonfly/unknown", 404),
        ("PUT", "/dragonfly?model=alpha.mar&runtime=nope", 400),
    ];
    for (method, path, expected) in cases {
        let (status, body) = call(&ts, method, path);
        let message = assert_error(status, &body, *expected);
        assert!(!message.is_empty(), "{method} {path}");
    }
    assert_eq!(entries(&store), before);
    assert_no_partial_files(&store);
    assert_eq!(model_url(&ts, "alpha"), Err(404));
    assert_eq!(infer(&ts, "alpha"), Err(404));
}

fn refused(version: &str, fixture: &Fixture) {
    let (_plugins, ts) =
        torchserve_version_with_plugin(version, Jar::TestHooks, fixture.config, "");
    let refusal = format!("TorchServe {version} is not supported");
    assert!(
        log_of(&ts).contains(&refusal),
        "no {refusal:?} in ts_log.log"
    );
    let store = ts.model_store();
    // The plugin's own state directory (where the archive's lock lives)
    // may appear; no model file, temp file or journal may.
    let before = store_entries(&store);
    let (status, body) = call(&ts, "PUT", "/dragonfly?model=alpha.mar");
    let message = assert_error(status, &body, 500);
    assert!(
        message.contains(&refusal) && message.contains("0.9, 0.10, 0.11, 0.12"),
        "{message}"
    );
    eprintln!("torchserve {version}: PUT answered {status}: {body}");
    let (status, body) = call(&ts, "DELETE", "/dragonfly?model=alpha");
    let message = assert_error(status, &body, 500);
    assert!(message.contains(&refusal), "{message}");
    assert_eq!(
        store_entries(&store),
        before,
        "a refused pull wrote into the store"
    );
    assert_no_partial_files(&store);
    assert_eq!(call(&ts, "GET", "/dragonfly").0, 200);
}
