//! Names in the model store: what a file taken from a request or an object
//! key may be called, and the model name an archive registers under.

use super::staging::MARKERS;
use crate::error::{CoreError, Result};

/// Longest file name most filesystems accept.
const MAX_NAME_BYTES: usize = 255;

/// Checks a model store file name taken from a request or an object key.
pub fn validate_file_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is a relative path")
    } else if name.contains('/') || name.contains('\\') {
        Some("contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.starts_with('.') {
        Some("starts with '.' (hidden names are reserved)")
    } else if name.len() > MAX_NAME_BYTES {
        Some("is longer than 255 bytes")
    } else if MARKERS.iter().any(|marker| name.contains(marker)) {
        Some("contains a name the plugin reserves for its temporary files (.dfpart-, .dfprev-, .dfrecord-)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CoreError::invalid(
            "model",
            format!("file name {name:?} {reason}"),
        )),
        None => Ok(()),
    }
}

/// The model store file name for an object key: its last segment.
pub fn file_name_for_key(key: &str) -> Result<String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    validate_file_name(name)?;
    Ok(name.to_string())
}

/// The model name TorchServe registers an archive under by default: the file
/// name without its ending (`a.mar`, `a.tar.gz` and `a.tgz` are `a`; the
/// endings of `format::Form`, which this stage cannot import; a test in
/// `pull::plan` checks they agree).
pub fn default_model_name(file_name: &str) -> String {
    [".mar", ".tar.gz", ".tgz"]
        .iter()
        .find_map(|ending| file_name.strip_suffix(ending))
        .unwrap_or(file_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_escape_or_hide_are_refused() {
        let long = "a".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "a/b.mar",
            "a\\b",
            "a\0.mar",
            "a\n.mar",
            ".hidden.mar",
            "a.mar.dfpart-1-2",
            &long,
        ] {
            assert!(validate_file_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["resnet.mar", "my model.mar", "модель.mar", &"a".repeat(255)] {
            assert!(validate_file_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn file_name_is_last_key_segment() {
        assert_eq!(
            file_name_for_key("models/v1/resnet.mar").unwrap(),
            "resnet.mar"
        );
        assert_eq!(file_name_for_key("resnet.mar").unwrap(), "resnet.mar");
        assert!(file_name_for_key("models/..").is_err());
        assert!(file_name_for_key("models/").is_err());
        assert_eq!(default_model_name("resnet.mar"), "resnet");
    }
}
