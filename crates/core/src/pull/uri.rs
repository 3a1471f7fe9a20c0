//! Store URIs in `model=`: `s3://bucket/k.mar`, `gs://...`, `abs://`,
//! `oss://`, `obs://`, `cos://` name the bucket and the whole key. The
//! scheme must be the configured store's type (the config holds one
//! store's credentials), and the bucket and key must be inside what the
//! config allows, as for `bucket=` and `prefix=`.

use super::plan::{self, normalize_prefix, Selection};
use super::PullRequest;
use crate::config::{Config, StoreKind};
use crate::error::{CoreError, Result};

/// Where a request reads: bucket, prefix and the selection under it.
pub fn target(request: &PullRequest, config: &Config) -> Result<(String, String, Selection)> {
    let selection = plan::selection(request, config)?;
    let uris: Vec<&String> = match &selection {
        Selection::Keys(keys) => keys.iter().filter(|k| is_uri(k)).collect(),
        Selection::All => Vec::new(),
    };
    if uris.is_empty() {
        let (bucket, prefix) = plan::bucket_and_prefix(request, config)?;
        return Ok((bucket, prefix, selection));
    }
    let Selection::Keys(keys) = &selection else {
        unreachable!("URIs come from a list of keys")
    };
    if uris.len() != keys.len() {
        return Err(CoreError::invalid(
            "model",
            "give either store URIs or names under the prefix, not both",
        ));
    }
    if request.bucket.is_some() || request.prefix.is_some() {
        return Err(CoreError::invalid(
            "model",
            "a store URI names its bucket and key: leave out bucket= and prefix=",
        ));
    }
    let storage = &config.object_storage;
    let mut bucket: Option<String> = None;
    let mut absolute = Vec::new();
    for key in keys {
        let (kind, uri_bucket, object) = split_uri(key)?;
        if kind != storage.kind {
            return Err(CoreError::invalid(
                "model",
                format!(
                    "{key:?} is a {} URI, but {} reads object_storage.type {}",
                    kind.name(),
                    config.source.display(),
                    storage.kind.name()
                ),
            ));
        }
        match &bucket {
            Some(b) if b != uri_bucket => {
                return Err(CoreError::invalid(
                    "model",
                    "all store URIs of one request must name the same bucket",
                ))
            }
            _ => bucket = Some(uri_bucket.to_string()),
        }
        let allowed = storage.allowed_prefixes();
        if !allowed
            .iter()
            .any(|a| object.starts_with(&normalize_prefix(a)))
        {
            return Err(CoreError::NotAllowed(format!(
                "{key:?} is not under a prefix allowed by {} (object_storage.allowed_prefixes: {allowed:?})",
                config.source.display()
            )));
        }
        absolute.push(object.to_string());
    }
    let bucket = bucket.unwrap_or_default();
    let as_bucket = PullRequest {
        bucket: Some(bucket.clone()),
        ..PullRequest::default()
    };
    plan::check_allowed(&as_bucket, config)?;
    Ok((bucket, String::new(), Selection::Keys(absolute)))
}

pub fn is_uri(key: &str) -> bool {
    key.contains("://")
}

/// `gs://bucket/dir/a.mar` into its type, bucket and key; the key is
/// checked as a `model` entry is.
pub fn split_uri(uri: &str) -> Result<(StoreKind, &str, &str)> {
    let bad = |why: &str| CoreError::invalid("model", format!("{uri:?}: {why}"));
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| bad("not a store URI"))?;
    let kind = StoreKind::parse(scheme)
        .ok_or_else(|| bad("unknown scheme; use s3://, gs://, abs://, oss://, obs:// or cos://"))?;
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| bad("must be scheme://bucket/key"))?;
    plan::validate_model_key(key)?;
    Ok((kind, bucket, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(storage: &str) -> Config {
        let text = format!(r#"{{"object_storage": {storage}}}"#);
        Config::parse(text.as_bytes(), Path::new("/etc/df/config.json")).unwrap()
    }

    fn ask(model: &str) -> PullRequest {
        PullRequest {
            model: Some(model.into()),
            ..PullRequest::default()
        }
    }

    #[test]
    fn a_uri_names_bucket_and_whole_key() {
        let cfg = config(r#"{"type": "gcs", "bucket_name": "models", "prefix": "ts/"}"#);
        let (bucket, prefix, sel) =
            target(&ask("gs://models/ts/a.mar,gs://models/ts/b/"), &cfg).unwrap();
        assert_eq!((bucket.as_str(), prefix.as_str()), ("models", ""));
        assert_eq!(
            sel,
            Selection::Keys(vec!["ts/a.mar".into(), "ts/b/".into()])
        );
    }

    #[test]
    fn uris_outside_the_config_are_refused() {
        let cfg = config(r#"{"type": "gcs", "bucket_name": "models", "prefix": "ts/"}"#);
        let err = |m: &str| target(&ask(m), &cfg).err().unwrap().to_string();
        assert!(err("s3://models/ts/a.mar").contains("object_storage.type gcs"));
        assert!(err("gs://other/ts/a.mar").contains("allowed_buckets"));
        assert!(err("gs://models/elsewhere/a.mar").contains("allowed_prefixes"));
        assert!(err("gs://models/ts/a.mar,b.mar").contains("not both"));
        assert!(err("ftp://models/ts/a.mar").contains("unknown scheme"));
        assert!(err("gs://models/ts/../x/a.mar").contains(".."));
        assert!(err("gs://models/ts/a.mar,gs://staging/ts/b.mar").contains("same bucket"));
    }
}
