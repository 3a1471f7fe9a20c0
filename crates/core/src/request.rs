//! Query parameters of the REST API, parsed and checked before anything is
//! read or written. Every parameter is known by name: an unknown or repeated
//! one is an error, so a typo never silently falls back to a default.

use std::collections::BTreeMap;

use crate::config::{Config, RegisterDefaults};
use crate::error::{CoreError, Result};
use crate::store::validate_file_name;

/// Query parameters as TorchServe hands them over: name to values.
pub type Query = BTreeMap<String, Vec<String>>;

/// TorchServe refuses longer request lines; other callers get the same rule.
pub const MAX_QUERY_BYTES: usize = 4096;

/// Parameters of a pull (PUT, and POST for compatibility).
pub const PULL_PARAMS: &[&str] = &[
    "config",
    "model",
    "bucket",
    "prefix",
    "model_name",
    "initial_workers",
    "min_worker",
    "batch_size",
    "max_batch_delay",
    "response_timeout",
    "startup_timeout",
    "handler",
    "runtime",
    "synchronous",
];

/// `file_name` is the pure-Java endpoint's name for `model`.
pub const COMPAT_PARAMS: &[&str] = &["file_name"];

/// Which archives a pull wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every archive under the prefix.
    All,
    /// Keys relative to the prefix.
    Keys(Vec<String>),
}

/// Register options given in the query; unset ones come from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOverrides {
    pub model_name: Option<String>,
    pub initial_workers: Option<u32>,
    pub batch_size: Option<u32>,
    pub max_batch_delay: Option<u32>,
    pub response_timeout: Option<u32>,
    pub startup_timeout: Option<u32>,
    pub handler: Option<String>,
    pub runtime: Option<String>,
    pub synchronous: Option<bool>,
}

impl RegisterOverrides {
    pub fn apply(&self, defaults: &RegisterDefaults) -> RegisterDefaults {
        RegisterDefaults {
            min_worker: self.initial_workers.unwrap_or(defaults.min_worker),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            max_batch_delay: self.max_batch_delay.unwrap_or(defaults.max_batch_delay),
            response_timeout: self.response_timeout.unwrap_or(defaults.response_timeout),
            startup_timeout: self.startup_timeout.unwrap_or(defaults.startup_timeout),
            handler: self.handler.clone().or_else(|| defaults.handler.clone()),
            runtime: self.runtime.clone().or_else(|| defaults.runtime.clone()),
            synchronous: self.synchronous.unwrap_or(defaults.synchronous),
        }
    }
}

/// A checked pull request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullParams {
    pub config: Option<String>,
    /// None: take `load_model` from the config.
    pub model: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub register: RegisterOverrides,
}

impl PullParams {
    pub fn parse(query: &Query) -> Result<Self> {
        let q = Params::new(query, &[PULL_PARAMS, COMPAT_PARAMS])?;
        let model = match (q.text("model")?, q.text("file_name")?) {
            (Some(_), Some(_)) => {
                return Err(CoreError::invalid(
                    "file_name",
                    "give either 'model' or 'file_name', not both",
                ))
            }
            (model, file_name) => model.or(file_name),
        };
        let initial_workers = match (q.number("initial_workers")?, q.number("min_worker")?) {
            (Some(_), Some(_)) => {
                return Err(CoreError::invalid(
                    "min_worker",
                    "give either 'initial_workers' or 'min_worker', not both",
                ))
            }
            (a, b) => a.or(b),
        };
        let params = PullParams {
            config: q.text("config")?,
            model,
            bucket: q.text("bucket")?,
            prefix: q.text("prefix")?,
            register: RegisterOverrides {
                model_name: q.text("model_name")?,
                initial_workers,
                batch_size: q.number("batch_size")?,
                max_batch_delay: q.number("max_batch_delay")?,
                response_timeout: q.number("response_timeout")?,
                startup_timeout: q.number("startup_timeout")?,
                handler: q.text("handler")?,
                runtime: q.text("runtime")?,
                synchronous: q.flag("synchronous")?,
            },
        };
        // Check the names before anything is read, config included.
        if let Some(model) = &params.model {
            parse_selection(model)?;
        }
        if let Some(name) = &params.register.model_name {
            validate_model_name(name)?;
        }
        if matches!(params.register.batch_size, Some(0)) {
            return Err(CoreError::invalid("batch_size", "must be at least 1"));
        }
        if let Some(bucket) = &params.bucket {
            validate_bucket(bucket)?;
        }
        if let Some(prefix) = &params.prefix {
            validate_key_text("prefix", prefix)?;
        }
        Ok(params)
    }

    /// The archives to pull: the query's `model`, else the config's
    /// `load_model`.
    pub fn selection(&self, config: &Config) -> Result<Selection> {
        let raw = match (&self.model, &config.load_model) {
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
        if let (Selection::All | Selection::Keys(_), Some(_)) =
            (&selection, &self.register.model_name)
        {
            if !matches!(&selection, Selection::Keys(keys) if keys.len() == 1) {
                return Err(CoreError::invalid(
                    "model_name",
                    "can only be given when pulling a single model",
                ));
            }
        }
        Ok(selection)
    }
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
        validate_model_key(key)?;
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
    let file_name = key.rsplit('/').next().unwrap_or(key);
    validate_file_name(file_name)?;
    if !file_name.ends_with(".mar") {
        return Err(CoreError::invalid(
            "model",
            format!("{key:?} is not a model archive (the name must end with .mar)"),
        ));
    }
    Ok(())
}

fn validate_key_text(param: &str, text: &str) -> Result<()> {
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

/// TorchServe model names: letters, digits, `_`, `-`, `.`; as its own API.
pub fn validate_model_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "model_name",
            format!("{name:?} is not a valid model name (letters, digits, '_', '-', '.')"),
        ))
    }
}

fn validate_bucket(bucket: &str) -> Result<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "bucket",
            format!("{bucket:?} is not a valid bucket name"),
        ))
    }
}

/// Typed access to the query, enforcing known names and single values.
pub struct Params<'a> {
    query: &'a Query,
}

impl<'a> Params<'a> {
    pub fn new(query: &'a Query, known: &[&[&str]]) -> Result<Self> {
        let length: usize = query
            .iter()
            .map(|(k, vs)| vs.iter().map(|v| k.len() + v.len() + 2).sum::<usize>())
            .sum();
        if length > MAX_QUERY_BYTES {
            return Err(CoreError::invalid(
                "query",
                format!("is longer than {MAX_QUERY_BYTES} bytes"),
            ));
        }
        for (name, values) in query {
            if !known.iter().any(|set| set.contains(&name.as_str())) {
                let mut all: Vec<&str> = known.iter().flat_map(|s| s.iter().copied()).collect();
                all.sort_unstable();
                return Err(CoreError::invalid(
                    name,
                    format!("unknown parameter; known: {}", all.join(", ")),
                ));
            }
            if values.len() > 1 {
                return Err(CoreError::invalid(name, "given more than once"));
            }
        }
        Ok(Params { query })
    }

    pub fn text(&self, name: &str) -> Result<Option<String>> {
        match self.query.get(name).and_then(|v| v.first()) {
            None => Ok(None),
            Some(value) if value.trim().is_empty() => Err(CoreError::invalid(name, "is empty")),
            Some(value) if value.contains('\0') => Err(CoreError::invalid(name, "contains NUL")),
            Some(value) => Ok(Some(value.trim().to_string())),
        }
    }

    pub fn number(&self, name: &str) -> Result<Option<u32>> {
        self.text(name)?
            .map(|v| {
                v.parse::<u32>().map_err(|_| {
                    CoreError::invalid(name, format!("{v:?} is not a non-negative integer"))
                })
            })
            .transpose()
    }

    pub fn flag(&self, name: &str) -> Result<Option<bool>> {
        self.text(name)?
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(CoreError::invalid(
                    name,
                    format!("{v:?} is not true or false"),
                )),
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Query {
        let mut q = Query::new();
        for (k, v) in pairs {
            q.entry(k.to_string()).or_default().push(v.to_string());
        }
        q
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<PullParams> {
        PullParams::parse(&query(pairs))
    }

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
            ("a.txt", "must end with .mar"),
            ("dir/..", "'..'"),
            ("dir/", "empty"),
            (long.as_str(), "255"),
        ];
        for (raw, needle) in cases {
            let err = parse_selection(raw).expect_err(raw);
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(needle), "{raw:?}: {err}");
        }
    }

    #[test]
    fn register_options_parse_and_override_config() {
        let params = parse(&[
            ("model", "a.mar"),
            ("initial_workers", "3"),
            ("batch_size", "8"),
            ("handler", "image_classifier"),
            ("synchronous", "false"),
        ])
        .unwrap();
        let merged = params.register.apply(&RegisterDefaults::default());
        assert_eq!(merged.min_worker, 3);
        assert_eq!(merged.batch_size, 8);
        assert_eq!(merged.handler.as_deref(), Some("image_classifier"));
        assert!(!merged.synchronous);
        assert_eq!(
            merged.max_batch_delay,
            RegisterDefaults::default().max_batch_delay
        );
        let compat = parse(&[("file_name", "a.mar"), ("min_worker", "2")]).unwrap();
        assert_eq!(compat.model.as_deref(), Some("a.mar"));
        assert_eq!(compat.register.initial_workers, Some(2));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("model", "a.mar"), ("workers", "2")], "unknown parameter"),
            (
                &[("model", "a.mar"), ("initial_workers", "two")],
                "initial_workers",
            ),
            (
                &[("model", "a.mar"), ("initial_workers", "-1")],
                "initial_workers",
            ),
            (&[("model", "a.mar"), ("batch_size", "0")], "batch_size"),
            (
                &[("model", "a.mar"), ("synchronous", "maybe")],
                "synchronous",
            ),
            (&[("model", "a.mar"), ("model", "b.mar")], "more than once"),
            (&[("model", "a.mar"), ("file_name", "b.mar")], "not both"),
            (&[("model", "a.mar"), ("model_name", "a/b")], "model_name"),
            (&[("model", "a.mar"), ("bucket", "Bad_Bucket")], "bucket"),
            (&[("model", "a.mar"), ("config", "")], "empty"),
        ];
        for (pairs, needle) in cases {
            let err = parse(pairs).expect_err(needle);
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(needle), "{pairs:?}: {err}");
        }
        let long = "x".repeat(MAX_QUERY_BYTES);
        assert!(parse(&[("model", &long)])
            .unwrap_err()
            .to_string()
            .contains("4096"));
    }

    #[test]
    fn model_name_needs_a_single_model() {
        let config = crate::config::Config::parse(
            br#"{"object_storage": {}}"#,
            std::path::Path::new("/c.json"),
        )
        .unwrap();
        let many = parse(&[("model", "a.mar,b.mar"), ("model_name", "x")]).unwrap();
        assert!(many.selection(&config).is_err());
        let all = parse(&[("model", "all"), ("model_name", "x")]).unwrap();
        assert!(all.selection(&config).is_err());
        let one = parse(&[("model", "a.mar"), ("model_name", "x")]).unwrap();
        assert!(one.selection(&config).is_ok());
        let none = parse(&[]).unwrap();
        assert!(none
            .selection(&config)
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }
}
