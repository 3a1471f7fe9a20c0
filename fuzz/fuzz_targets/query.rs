//! The REST API's query parameters, as an attacker controls them: the input
//! is a raw URL query string, decoded the way TorchServe hands parameters to
//! the plugin (name -> list of values), then run through every pure parser
//! of the core: the pull parameters (PUT/POST) and their model selection,
//! the GET and DELETE parameters, and the name validators on every value.
//!
//! `api::handle` itself is not called: every route reads the config file or
//! the model store (and PUT talks to the network) right after parsing. The
//! GET and DELETE steps below mirror its parsing, in the same order.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use dragonfly_endpoint_core::api::query::{
    parse_pull, Params, Query, COMPAT_PARAMS, MAX_QUERY_BYTES, PULL_PARAMS,
};
use dragonfly_endpoint_core::config::{Config, ConfigLocation};
use dragonfly_endpoint_core::model_store::{default_model_name, file_name_for_key};
use dragonfly_endpoint_core::pull::plan::{self, parse_selection, validate_model_key, Selection};
use dragonfly_endpoint_core::register::{validate_model_name, RegisterOptions};
use dragonfly_endpoint_core::{CoreError, Result};
use libfuzzer_sys::fuzz_target;


/// A config without `load_model` and one with it, parsed once.
fn configs() -> &'static (Config, Config) {
    static CONFIGS: OnceLock<(Config, Config)> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let path = Path::new("/fuzz/config.json");
        let plain = Config::parse(
            br#"{"object_storage": {"bucket_name": "models", "prefix": "torchserve/"}}"#,
            path,
        )
        .expect("the fixed config is valid");
        let with_load_model = Config::parse(
            br#"{"object_storage": {"bucket_name": "models", "prefix": "torchserve/"},
                 "load_model": "a.mar,dir/b.mar"}"#,
            path,
        )
        .expect("the fixed config is valid");
        (plain, with_load_model)
    })
}

/// What TorchServe gives the plugin: each name with all its values, in order.
fn decode(data: &[u8]) -> Query {
    let mut query = Query::new();
    for (name, value) in url::form_urlencoded::parse(data) {
        query
            .entry(name.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    query
}

/// A refused request is the caller's fault: 400 with a message that says why.
fn check_error(err: &CoreError, what: &str, query: &Query) {
    let status = err.status();
    assert!(
        (400..=599).contains(&status),
        "{what}: status {status} out of range for {err:?} (query {query:?})"
    );
    assert_eq!(
        status, 400,
        "{what}: a bad query must be a 400, got {status} for {err:?} (query {query:?})"
    );
    assert!(
        matches!(err, CoreError::InvalidParameter { .. }),
        "{what}: {err:?} is not an InvalidParameter error (query {query:?})"
    );
    let message = err.to_string();
    assert!(
        !message.trim().is_empty(),
        "{what}: empty message for {err:?}"
    );
    let body = err.body();
    assert_eq!(body.code, status);
    assert!(!body.kind.is_empty() && body.message == message);
}

fn ok_or_check<T>(result: Result<T>, what: &str, query: &Query) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            check_error(&err, what, query);
            None
        }
    }
}

/// An accepted model key: relative, no '.'/'..' segment, no control
/// character, and a last segment that is a safe `.mar` file name.
fn check_key(key: &str, what: &str) {
    assert!(
        validate_model_key(key).is_ok(),
        "{what}: accepted key {key:?} fails validate_model_key"
    );
    assert!(!key.is_empty(), "{what}: empty key accepted");
    assert!(
        !key.split('/').any(|s| s == ".." || s == "."),
        "{what}: key {key:?} has a '.' or '..' segment"
    );
    assert!(!key.contains('\0'), "{what}: key {key:?} contains NUL");
    assert!(
        !key.chars().any(char::is_control),
        "{what}: key {key:?} contains a control character"
    );
    assert!(!key.starts_with('/'), "{what}: key {key:?} is absolute");
    assert!(key.len() <= 1024, "{what}: key {key:?} is over 1024 bytes");
    let file_name = key.rsplit('/').next().unwrap_or(key);
    assert!(
        file_name.len() <= 255,
        "{what}: file name of {key:?} is over 255 bytes"
    );
    assert!(
        file_name.ends_with(".mar")
            && !file_name.starts_with('.')
            && !file_name.contains('\\'),
        "{what}: key {key:?} has a bad file name {file_name:?}"
    );
    let stored = file_name_for_key(key)
        .unwrap_or_else(|e| panic!("{what}: accepted key {key:?} has no file name: {e}"));
    assert_eq!(stored, file_name);
    assert!(
        !default_model_name(&stored).is_empty(),
        "{what}: key {key:?} gives an empty model name"
    );
}

/// A selection from `parse_selection`: `all`, or a non-empty list of
/// distinct, trimmed, valid keys.
fn check_selection(selection: &Selection, raw: &str, what: &str) {
    match selection {
        Selection::All => assert!(
            raw.trim().eq_ignore_ascii_case("all"),
            "{what}: {raw:?} parsed as all"
        ),
        Selection::Keys(keys) => {
            assert!(!keys.is_empty(), "{what}: {raw:?} gave no keys");
            for (i, key) in keys.iter().enumerate() {
                check_key(key, what);
                assert_eq!(key, key.trim(), "{what}: key {key:?} is not trimmed");
                assert!(!key.contains(','), "{what}: key {key:?} holds a comma");
                assert!(
                    !keys[..i].contains(key),
                    "{what}: key {key:?} listed twice in {raw:?}"
                );
            }
        }
    }
}

fn check_model_name(name: &str, what: &str) {
    assert!(
        !name.is_empty()
            && name.len() <= 255
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
        "{what}: bad model name {name:?} accepted"
    );
}

fn check_text(value: &Option<String>, what: &str) {
    if let Some(value) = value {
        assert!(
            !value.is_empty() && value == value.trim() && !value.contains('\0'),
            "{what}: text value {value:?} is empty, untrimmed or holds NUL"
        );
    }
}

/// PUT and POST: `parse_pull`, then the selection against a config.
fn pull(query: &Query) {
    let Some(parsed) = ok_or_check(parse_pull(query), "pull", query) else {
        return;
    };
    let request = &parsed.request;
    let length: usize = query
        .iter()
        .map(|(k, vs)| vs.iter().map(|v| k.len() + v.len() + 2).sum::<usize>())
        .sum();
    assert!(length <= MAX_QUERY_BYTES, "pull: {length}-byte query accepted");
    for (name, values) in query {
        assert!(
            [PULL_PARAMS, RegisterOptions::QUERY_NAMES, COMPAT_PARAMS]
                .iter()
                .any(|known| known.contains(&name.as_str())),
            "pull: unknown parameter {name:?} accepted"
        );
        assert_eq!(values.len(), 1, "pull: {name:?} given {values:?}");
    }
    let defaults = RegisterOptions::default();
    let merged = request
        .register
        .apply(&defaults)
        .unwrap_or_else(|e| panic!("pull: accepted options do not apply: {e}"));
    for value in [
        &parsed.config,
        &request.model,
        &request.bucket,
        &request.prefix,
        &request.model_name,
        &merged.handler,
        &merged.runtime,
    ] {
        check_text(value, "pull");
    }
    let direct = request.model.as_deref().map(|model| {
        let selection = parse_selection(model)
            .unwrap_or_else(|e| panic!("pull: accepted model {model:?} fails parse_selection: {e}"));
        check_selection(&selection, model, "pull model");
        selection
    });
    if let Some(name) = &request.model_name {
        check_model_name(name, "pull model_name");
    }
    if let Some(bucket) = &request.bucket {
        assert!(
            (3..=63).contains(&bucket.len()),
            "pull: bucket {bucket:?} accepted"
        );
    }
    assert!(merged.batch_size >= 1, "pull: merged batch_size 0");
    let workers = query
        .get("initial_workers")
        .or_else(|| query.get("min_worker"))
        .and_then(|v| v.first())
        .map(|v| v.trim().parse::<u32>().expect("accepted as a number"));
    assert_eq!(
        merged.initial_workers,
        workers.unwrap_or(defaults.initial_workers)
    );

    let (plain, with_load_model) = configs();
    for (config, what) in [(plain, "selection"), (with_load_model, "selection/load_model")] {
        let Some(selection) = ok_or_check(plan::selection(request, config), what, query) else {
            continue;
        };
        let raw = request
            .model
            .as_deref()
            .or(config.load_model.as_deref())
            .unwrap_or_else(|| panic!("{what}: a selection without model or load_model"));
        check_selection(&selection, raw, what);
        if let (Some(direct), Some(_)) = (&direct, &request.model) {
            assert_eq!(&selection, direct, "{what}: differs from parse_selection");
        }
        if request.model_name.is_some() {
            assert!(
                matches!(&selection, Selection::Keys(keys) if keys.len() == 1),
                "{what}: model_name accepted for {selection:?}"
            );
        }
    }
}

/// GET: `config` and `model`, as `api::status` reads them before it loads
/// the config. A relative `config` is refused before any file is touched.
fn get(query: &Query) {
    let Some(q) = ok_or_check(Params::new(query, &[&["config", "model"]]), "get", query) else {
        return;
    };
    let config = ok_or_check(q.text("config"), "get config", query);
    let model = ok_or_check(q.text("model"), "get model", query);
    if let Some(config) = &config {
        check_text(config, "get config");
    }
    if let Some(model) = &model {
        check_text(model, "get model");
    }
    if let Some(Some(requested)) = &config {
        if !Path::new(requested).is_absolute() {
            let result = ConfigLocation::default().resolve(Some(requested));
            match result {
                Ok(path) => panic!("get: relative config {requested:?} resolved to {path:?}"),
                Err(err) => check_error(&err, "get resolve", query),
            }
        }
    }
}

/// DELETE: `model`, a model name or an archive's file name, as
/// `api::delete_model` checks it before it opens the model store.
fn delete(query: &Query) {
    let Some(q) = ok_or_check(Params::new(query, &[&["model"]]), "delete", query) else {
        return;
    };
    let Some(model) = ok_or_check(q.text("model"), "delete model", query) else {
        return;
    };
    let Some(model) = model else {
        return;
    };
    check_text(&Some(model.clone()), "delete model");
    let model_name = model.trim_end_matches(".mar");
    if ok_or_check(validate_model_name(model_name), "delete name", query).is_some() {
        check_model_name(model_name, "delete name");
    }
}

/// The validators on every value, whatever its name, so that the fuzzer
/// reaches them without first guessing parameter names.
fn validators(query: &Query) {
    for value in query.values().flatten() {
        if let Some(selection) = ok_or_check(parse_selection(value), "parse_selection", query) {
            check_selection(&selection, value, "parse_selection");
        }
        if ok_or_check(validate_model_key(value), "validate_model_key", query).is_some() {
            check_key(value, "validate_model_key");
        }
        if ok_or_check(validate_model_name(value), "validate_model_name", query).is_some() {
            check_model_name(value, "validate_model_name");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let query = decode(data);
    pull(&query);
    get(&query);
    delete(&query);
    validators(&query);
});
