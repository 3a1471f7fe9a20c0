//! Query parameters of the REST API, parsed and checked before anything is
//! read or written. Every parameter is known by name: an unknown or repeated
//! one is an error, so a typo never silently falls back to a default.

use std::collections::BTreeMap;

use crate::error::{CoreError, Result};
use crate::pull::plan::{parse_selection, validate_key_text};
use crate::pull::PullRequest;
use crate::register::{validate_model_name, OptionValue, Overrides, RegisterOptions};

/// Query parameters as TorchServe hands them over: name to values.
pub type Query = BTreeMap<String, Vec<String>>;

/// TorchServe refuses longer request lines; other callers get the same rule.
pub const MAX_QUERY_BYTES: usize = 4096;

/// Parameters of a pull (PUT, and POST for compatibility), besides the
/// register options ([`RegisterOptions::QUERY_NAMES`]).
pub const PULL_PARAMS: &[&str] = &["config", "model", "bucket", "prefix", "model_name"];

/// `file_name` is the pure-Java endpoint's name for `model`.
pub const COMPAT_PARAMS: &[&str] = &["file_name"];

/// A checked pull request and the config it names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullQuery {
    pub config: Option<String>,
    pub request: PullRequest,
}

/// Parses the query of a PUT or POST.
pub fn parse_pull(query: &Query) -> Result<PullQuery> {
    let q = Params::new(
        query,
        &[PULL_PARAMS, RegisterOptions::QUERY_NAMES, COMPAT_PARAMS],
    )?;
    let model = match (q.text("model")?, q.text("file_name")?) {
        (Some(_), Some(_)) => {
            return Err(CoreError::invalid(
                "file_name",
                "give either 'model' or 'file_name', not both",
            ))
        }
        (model, file_name) => model.or(file_name),
    };
    if q.has("initial_workers") && q.has("min_worker") {
        return Err(CoreError::invalid(
            "min_worker",
            "give either 'initial_workers' or 'min_worker', not both",
        ));
    }
    let mut register = Overrides::default();
    for name in RegisterOptions::QUERY_NAMES {
        let value = match RegisterOptions::value_type(name) {
            Some("number") => q.number(name)?.map(OptionValue::Number),
            Some("flag") => q.flag(name)?.map(OptionValue::Flag),
            _ => q.text(name)?.map(OptionValue::Text),
        };
        if let Some(value) = value {
            register.push(name, value)?;
        }
    }
    let parsed = PullQuery {
        config: q.text("config")?,
        request: PullRequest {
            model,
            bucket: q.text("bucket")?,
            prefix: q.text("prefix")?,
            model_name: q.text("model_name")?,
            register,
        },
    };
    // Check the names before anything is read, config included.
    let request = &parsed.request;
    if let Some(model) = &request.model {
        parse_selection(model)?;
    }
    if let Some(name) = &request.model_name {
        validate_model_name(name)?;
    }
    if let Some(bucket) = &request.bucket {
        validate_bucket(bucket)?;
    }
    if let Some(prefix) = &request.prefix {
        validate_key_text("prefix", prefix)?;
    }
    Ok(parsed)
}

/// The characters every supported store allows in a bucket (or Azure
/// container) name; `_` for GCS.
fn validate_bucket(bucket: &str) -> Result<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'));
    CoreError::require(ok, "bucket", || {
        format!("{bucket:?} is not a valid bucket name")
    })
}

/// Typed access to the query, enforcing known names and single values.
pub struct Params<'a> {
    query: &'a Query,
}

impl<'a> Params<'a> {
    pub fn has(&self, name: &str) -> bool {
        self.query.contains_key(name)
    }

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

    fn parse(pairs: &[(&str, &str)]) -> Result<PullRequest> {
        parse_pull(&query(pairs)).map(|p| p.request)
    }

    #[test]
    fn register_options_parse_and_override_config() {
        let request = parse(&[
            ("model", "a.mar"),
            ("initial_workers", "3"),
            ("batch_size", "8"),
            ("handler", "image_classifier"),
            ("synchronous", "false"),
        ])
        .unwrap();
        let merged = request.register.apply(&RegisterOptions::default()).unwrap();
        assert_eq!(merged.initial_workers, 3);
        assert_eq!(merged.batch_size, 8);
        assert_eq!(merged.handler.as_deref(), Some("image_classifier"));
        assert!(!merged.synchronous);
        assert_eq!(
            merged.max_batch_delay,
            RegisterOptions::default().max_batch_delay
        );
        let compat = parse(&[("file_name", "a.mar"), ("min_worker", "2")]).unwrap();
        assert_eq!(compat.model.as_deref(), Some("a.mar"));
        let merged = compat.register.apply(&RegisterOptions::default()).unwrap();
        assert_eq!(merged.initial_workers, 2);
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
            (
                &[
                    ("model", "a.mar"),
                    ("initial_workers", "1"),
                    ("min_worker", "2"),
                ],
                "not both",
            ),
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
}
