//! Which objects a pull fetches, and under which file and model names: the
//! request's `model` (or the config's `load_model`) resolved against the
//! store's listing or taken key by key. A key ending in `/` is a directory
//! model ([`DirectoryModel`]); `model=all` finds both archives and
//! directory models.

use std::collections::HashMap;

use super::directory::{self, DirectoryModel};
use super::PullRequest;
use crate::config::Config;
use crate::error::{CoreError, Result};
use crate::format::{Form, Limits};
use crate::model_store::{default_model_name, file_name_for_key, validate_file_name};
use crate::source::{is_archive_key, ObjectInfo, ObjectSource};

/// Which archives a pull wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every archive under the prefix.
    All,
    /// Keys relative to the prefix.
    Keys(Vec<String>),
}

/// One archive to pull, as resolved from the request.
pub struct Planned {
    pub key: String,
    pub file_name: String,
    pub model_name: String,
    /// Known from the listing; looked up with a stat otherwise. For a
    /// directory model: all its files' bytes and its version.
    pub info: Option<ObjectInfo>,
    /// A directory model's files; None for an archive.
    pub directory: Option<DirectoryModel>,
}

impl Planned {
    fn directory(model: DirectoryModel) -> Result<Self> {
        let file_name = file_name_for_key(model.folder.trim_end_matches('/'))?;
        Ok(Planned {
            key: model.folder.clone(),
            model_name: file_name.clone(),
            info: Some(model.info()),
            file_name,
            directory: Some(model),
        })
    }
}

/// The archives to pull: the request's `model`, else the config's
/// `load_model`.
pub fn selection(request: &PullRequest, config: &Config) -> Result<Selection> {
    let raw = match (&request.model, &config.load_model) {
        (Some(model), _) => model.clone(),
        (None, Some(load_model)) => load_model.clone(),
        (None, None) => {
            return Err(CoreError::invalid(
                "model",
                "missing: give model=all, model=a.mar or model=a.mar,b.mar (or set load_model in the config)",
            ))
        }
    };
    let selection = parse_selection(&raw)?;
    let single = matches!(&selection, Selection::Keys(keys) if keys.len() == 1);
    if request.model_name.is_some() && !single {
        return Err(CoreError::invalid(
            "model_name",
            "can only be given when pulling a single model",
        ));
    }
    Ok(selection)
}

/// A request may only name the buckets and prefixes the config allows
/// (`object_storage.allowed_buckets` / `allowed_prefixes`, by default the
/// configured bucket and prefix): the plugin's endpoint is not covered by
/// TorchServe's model API switch, so it must not read whatever a caller
/// names. `*` in `allowed_buckets` allows any bucket.
pub fn check_allowed(request: &PullRequest, config: &Config) -> Result<()> {
    let storage = &config.object_storage;
    if let Some(bucket) = &request.bucket {
        let allowed = storage.allowed_buckets();
        if !allowed.iter().any(|b| b == bucket || b == "*") {
            return Err(CoreError::NotAllowed(format!(
                "bucket {bucket:?} is not allowed by {} (object_storage.allowed_buckets: {allowed:?})",
                config.source.display()
            )));
        }
    }
    if let Some(prefix) = &request.prefix {
        let wanted = normalize_prefix(prefix);
        let allowed = storage.allowed_prefixes();
        if !allowed
            .iter()
            .any(|a| wanted.starts_with(&normalize_prefix(a)))
        {
            return Err(CoreError::NotAllowed(format!(
                "prefix {prefix:?} is not allowed by {} (object_storage.allowed_prefixes: {allowed:?})",
                config.source.display()
            )));
        }
    }
    Ok(())
}

/// The bucket and prefix a request reads from: its own, checked against
/// the config's allowlist ([`check_allowed`]), else the config's.
pub fn bucket_and_prefix(request: &PullRequest, config: &Config) -> Result<(String, String)> {
    check_allowed(request, config)?;
    let bucket = request
        .bucket
        .clone()
        .or_else(|| config.object_storage.bucket_name.clone())
        .ok_or_else(|| {
            CoreError::invalid(
                "bucket",
                "missing: set object_storage.bucket_name in the config or pass bucket=",
            )
        })?;
    let prefix = normalize_prefix(
        request
            .prefix
            .as_deref()
            .unwrap_or(&config.object_storage.prefix),
    );
    Ok((bucket, prefix))
}

/// Parses `all`, `a.mar` or `a.mar,b.mar`.
pub fn parse_selection(raw: &str) -> Result<Selection> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("all") {
        return Ok(Selection::All);
    }
    let keys: Vec<String> = raw.split(',').map(|k| k.trim().to_string()).collect();
    if keys.iter().all(String::is_empty) {
        return Err(CoreError::invalid("model", "the list of models is empty"));
    }
    for key in &keys {
        if super::uri::is_uri(key) {
            super::uri::split_uri(key)?;
        } else {
            validate_model_key(key)?;
        }
    }
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].contains(key) {
            return Err(CoreError::invalid(
                "model",
                format!("{key:?} is listed twice"),
            ));
        }
    }
    Ok(Selection::Keys(keys))
}

/// A `model` entry: an object key relative to the prefix whose last segment
/// becomes the file name in the model store.
pub fn validate_model_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(CoreError::invalid(
            "model",
            "a model name in the list is empty",
        ));
    }
    validate_key_text("model", key)?;
    if key.starts_with('/') {
        return Err(CoreError::invalid(
            "model",
            format!("{key:?} starts with '/': names are relative to the prefix"),
        ));
    }
    if key
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return Err(CoreError::invalid(
            "model",
            format!("{key:?} contains a '.' or '..' segment"),
        ));
    }
    if let Some(folder) = key.strip_suffix('/') {
        // A directory model: its folder's name is its file name in the store.
        let name = folder.rsplit('/').next().unwrap_or(folder);
        validate_file_name(name)?;
        if Form::of(name).is_some() {
            return Err(CoreError::invalid(
                "model",
                format!("{key:?}: a model directory may not be named like an archive"),
            ));
        }
        return Ok(());
    }
    let file_name = key.rsplit('/').next().unwrap_or(key);
    validate_file_name(file_name)?;
    if Form::of(file_name).is_none() {
        return Err(CoreError::invalid(
            "model",
            format!(
                "{key:?} is not a model archive (the name must end with .mar, .tar.gz or .tgz) nor a model directory (ending in '/')"
            ),
        ));
    }
    Ok(())
}

/// Text that becomes part of an object key (`model`, `prefix`).
pub fn validate_key_text(param: &str, text: &str) -> Result<()> {
    if text.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            param,
            "contains a control character (or NUL)",
        ));
    }
    if text.len() > 1024 {
        return Err(CoreError::invalid(param, "is longer than 1024 bytes"));
    }
    Ok(())
}

/// `models` and `models/` both mean the folder `models/`.
pub fn normalize_prefix(prefix: &str) -> String {
    let prefix = prefix.trim_start_matches('/');
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

/// Resolves the selection into archives and directory models, refusing two
/// that would land on the same file name.
pub async fn plan(
    source: &dyn ObjectSource,
    prefix: &str,
    selection: &Selection,
    model_name: Option<&str>,
    limits: Limits,
) -> Result<Vec<Planned>> {
    let mut planned = Vec::new();
    match selection {
        Selection::All => {
            let objects = source.list(prefix).await?;
            let folders = directory::model_folders(prefix, &objects);
            for folder in &folders {
                match DirectoryModel::from_listing(folder, &objects, limits)
                    .and_then(Planned::directory)
                {
                    Ok(item) => planned.push(item),
                    Err(e) => tracing::warn!("skipping model directory {folder:?}: {e}"),
                }
            }
            // Files inside a model directory belong to it, archives or not.
            let archives = objects.into_iter().filter(|o| {
                is_archive_key(&o.key) && !folders.iter().any(|f| o.key.starts_with(f))
            });
            for info in archives {
                let Ok(file_name) = file_name_for_key(&info.key) else {
                    tracing::warn!("skipping object {:?}: not a usable file name", info.key);
                    continue;
                };
                planned.push(Planned {
                    key: info.key.clone(),
                    model_name: default_model_name(&file_name),
                    file_name,
                    info: Some(info),
                    directory: None,
                });
            }
            if planned.is_empty() {
                return Err(CoreError::NotFound(format!(
                    "no model archives (*.mar, *.tar.gz, *.tgz) nor model directories (folders with {}) under {}",
                    directory::MANIFEST,
                    source.object_url(prefix)
                )));
            }
        }
        Selection::Keys(keys) => {
            for key in keys {
                let mut item = if key.ends_with('/') {
                    let folder = format!("{prefix}{key}");
                    let objects = source.list(&folder).await?;
                    Planned::directory(DirectoryModel::from_listing(&folder, &objects, limits)?)?
                } else {
                    let file_name = file_name_for_key(key)?;
                    Planned {
                        key: format!("{prefix}{key}"),
                        model_name: default_model_name(&file_name),
                        file_name,
                        info: None,
                        directory: None,
                    }
                };
                if let Some(name) = model_name {
                    item.model_name = name.to_string();
                }
                planned.push(item);
            }
        }
    }
    // Two keys in different folders may end in the same file name.
    let mut seen: HashMap<String, String> = HashMap::new();
    for item in &planned {
        if let Some(other) = seen.insert(item.file_name.clone(), item.key.clone()) {
            return Err(CoreError::Conflict(format!(
                "objects {other:?} and {:?} would both be stored as {:?}",
                item.key, item.file_name
            )));
        }
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_forms() {
        assert_eq!(parse_selection("all").unwrap(), Selection::All);
        assert_eq!(parse_selection("ALL").unwrap(), Selection::All);
        assert_eq!(
            parse_selection("a.mar").unwrap(),
            Selection::Keys(vec!["a.mar".into()])
        );
        assert_eq!(
            parse_selection("a.mar, dir/b c.mar").unwrap(),
            Selection::Keys(vec!["a.mar".into(), "dir/b c.mar".into()])
        );
        assert_eq!(
            parse_selection("модели/ä.mar").unwrap(),
            Selection::Keys(vec!["модели/ä.mar".into()])
        );
        assert_eq!(
            parse_selection("bert/,m/gpt/").unwrap(),
            Selection::Keys(vec!["bert/".into(), "m/gpt/".into()])
        );
        assert_eq!(
            parse_selection("a.tar.gz,b/c.tgz").unwrap(),
            Selection::Keys(vec!["a.tar.gz".into(), "b/c.tgz".into()])
        );
    }

    #[test]
    fn every_form_is_listed_and_named_without_its_ending() {
        for (ending, _) in Form::ENDINGS {
            let key = format!("models/a{ending}");
            assert!(crate::source::is_archive_key(&key), "{key} not listed");
            assert!(validate_model_key(&key).is_ok(), "{key} refused");
            assert_eq!(default_model_name(&format!("a{ending}")), "a");
        }
        for other in ["a.tar", "a.gz", "a.zip", "a.mar.bak"] {
            assert!(!crate::source::is_archive_key(other), "{other} listed");
            assert!(validate_model_key(other).is_err(), "{other} accepted");
        }
    }

    #[test]
    fn bad_model_lists_are_refused_with_reasons() {
        let long = format!("{}.mar", "a".repeat(252));
        let cases = [
            ("", "empty"),
            (",", "empty"),
            ("a.mar,,b.mar", "empty"),
            ("a.mar,a.mar", "twice"),
            ("../a.mar", "'..'"),
            ("x/../a.mar", "'..'"),
            ("/a.mar", "starts with '/'"),
            ("a\0.mar", "control"),
            ("a\n.mar", "control"),
            ("a.txt", "must end with .mar, .tar.gz or .tgz"),
            ("dir/..", "'..'"),
            ("dir//", "empty"),
            ("dir/../", "'..'"),
            ("a.mar/", "named like an archive"),
            (long.as_str(), "255"),
        ];
        for (raw, needle) in cases {
            let err = parse_selection(raw).expect_err(raw);
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(needle), "{raw:?}: {err}");
        }
    }

    #[test]
    fn prefixes_are_folders() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("models"), "models/");
        assert_eq!(normalize_prefix("/models/"), "models/");
    }

    #[test]
    fn model_name_needs_a_single_model() {
        let config = Config::parse(
            br#"{"object_storage": {}}"#,
            std::path::Path::new("/c.json"),
        )
        .unwrap();
        let request = |model: Option<&str>, name: Option<&str>| PullRequest {
            model: model.map(str::to_string),
            model_name: name.map(str::to_string),
            ..PullRequest::default()
        };
        assert!(selection(&request(Some("a.mar,b.mar"), Some("x")), &config).is_err());
        assert!(selection(&request(Some("all"), Some("x")), &config).is_err());
        assert!(selection(&request(Some("a.mar"), Some("x")), &config).is_ok());
        assert!(selection(&request(None, None), &config)
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }

    #[test]
    fn only_allowed_buckets_and_prefixes_may_be_named() {
        let config = |storage: &str| {
            Config::parse(
                format!(r#"{{"object_storage": {storage}}}"#).as_bytes(),
                std::path::Path::new("/c.json"),
            )
            .unwrap()
        };
        let ask = |bucket: Option<&str>, prefix: Option<&str>| PullRequest {
            bucket: bucket.map(str::to_string),
            prefix: prefix.map(str::to_string),
            ..PullRequest::default()
        };
        let plain = config(r#"{"bucket_name": "models", "prefix": "ts/"}"#);
        assert!(check_allowed(&ask(Some("models"), Some("ts/v2")), &plain).is_ok());
        assert!(check_allowed(&ask(None, None), &plain).is_ok());
        let other = check_allowed(&ask(Some("secrets"), None), &plain).unwrap_err();
        assert_eq!(other.status(), 403);
        assert!(other.to_string().contains("allowed_buckets"), "{other}");
        let outside = check_allowed(&ask(None, Some("private/")), &plain).unwrap_err();
        assert!(
            outside.to_string().contains("allowed_prefixes"),
            "{outside}"
        );
        let listed = config(
            r#"{"bucket_name": "models", "allowed_buckets": ["models", "staging"], "allowed_prefixes": [""]}"#,
        );
        assert!(check_allowed(&ask(Some("staging"), Some("any/")), &listed).is_ok());
        let any = config(r#"{"allowed_buckets": ["*"]}"#);
        assert!(check_allowed(&ask(Some("whatever"), None), &any).is_ok());
        let none = config("{}");
        assert_eq!(
            check_allowed(&ask(Some("models"), None), &none).map_err(|e| e.status()),
            Err(403)
        );
    }
}
