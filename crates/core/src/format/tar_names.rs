//! Where a tar entry lands in the model directory, and whether it may.
//!
//! TorchServe unpacks a `.tar.gz` by dropping everything up to the first
//! `/` of each name (`torch-model-archiver --archive-format tgz` puts every
//! file under one folder named after the model), so the directory this
//! plugin registers is laid out the same way. Names are refused when they
//! are absolute, hold a `..` component anywhere, or are not UTF-8; link
//! targets must stay inside the directory. A top-level folder entry
//! without a slash (`m` rather than `m/`) is that folder, not a folder
//! inside it.

use std::path::{Component, Path, PathBuf};

use super::UnpackError;

/// Symbolic links followed in a row before a chain counts as a loop.
pub(super) const MAX_LINK_HOPS: usize = 16;

/// The entry's path inside the model directory; `None` for the
/// directory itself (the archive's top-level folder).
pub(super) fn entry_path(raw: &[u8], is_dir: bool) -> Result<Option<PathBuf>, UnpackError> {
    let name = checked_name(raw)?;
    let trimmed = name.trim_end_matches('/');
    if is_dir && !trimmed.contains('/') {
        return Ok(None);
    }
    // As TorchServe: a name without any `/` stays as it is.
    let inner = name.split_once('/').map_or(name, |(_, rest)| rest);
    let path: PathBuf = inner
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    Ok((!path.as_os_str().is_empty()).then_some(path))
}

/// Where a symbolic link at `link` (a path inside the directory) with
/// this target points, inside the directory; a target that climbs out of
/// it, or is absolute, is refused.
pub(super) fn symlink_target(link: &Path, raw_target: &[u8]) -> Result<PathBuf, UnpackError> {
    let target = std::str::from_utf8(raw_target).map_err(|_| {
        UnpackError::Invalid(format!(
            "symbolic link {:?}: its target is not UTF-8",
            link.display()
        ))
    })?;
    let leaves = || {
        UnpackError::Invalid(format!(
            "symbolic link {:?} -> {target:?} points outside the model directory",
            link.display()
        ))
    };
    if target.starts_with('/') {
        return Err(leaves());
    }
    let mut resolved: Vec<&str> = link
        .parent()
        .into_iter()
        .flat_map(Path::components)
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                resolved.pop().ok_or_else(leaves)?;
            }
            other => resolved.push(other),
        }
    }
    if resolved.is_empty() {
        return Err(UnpackError::Invalid(format!(
            "symbolic link {:?} points at the model directory itself",
            link.display()
        )));
    }
    Ok(resolved.iter().collect())
}

fn checked_name(raw: &[u8]) -> Result<&str, UnpackError> {
    let name = std::str::from_utf8(raw).map_err(|_| {
        UnpackError::Invalid(format!(
            "entry name {:?} is not UTF-8",
            String::from_utf8_lossy(raw)
        ))
    })?;
    if name.starts_with('/') {
        return Err(UnpackError::Invalid(format!(
            "entry {name:?} has an absolute name"
        )));
    }
    if name.split('/').any(|c| c == "..") {
        return Err(UnpackError::Invalid(format!(
            "entry {name:?} would be written outside the model directory"
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(name: &str, is_dir: bool) -> Option<String> {
        entry_path(name.as_bytes(), is_dir)
            .unwrap()
            .map(|p| p.to_string_lossy().into_owned())
    }

    #[test]
    fn the_first_component_is_the_archive_folder() {
        assert_eq!(
            placed("m/MAR-INF/MANIFEST.json", false).as_deref(),
            Some("MAR-INF/MANIFEST.json")
        );
        assert_eq!(placed("./MAR-INF/x", false).as_deref(), Some("MAR-INF/x"));
        assert_eq!(placed("m//a/./b", false).as_deref(), Some("a/b"));
        assert_eq!(placed("m/", true), None);
        assert_eq!(placed("m", true), None);
        assert_eq!(placed("./", true), None);
        assert_eq!(placed("m/code/", true).as_deref(), Some("code"));
        // A file at the top stays at the top, as in TorchServe.
        assert_eq!(placed("README", false).as_deref(), Some("README"));
    }

    #[test]
    fn names_leaving_the_directory_are_refused() {
        for bad in ["/etc/passwd", "../x", "m/../../x", "m/a/..", "m/.."] {
            assert!(
                matches!(
                    entry_path(bad.as_bytes(), false),
                    Err(UnpackError::Invalid(_))
                ),
                "{bad:?} accepted"
            );
        }
        assert!(entry_path(b"m/\xff", false).is_err());
    }

    #[test]
    fn link_targets_resolve_inside_or_are_refused() {
        let at = |link: &str, target: &str| {
            symlink_target(Path::new(link), target.as_bytes())
                .map(|p| p.to_string_lossy().into_owned())
        };
        assert_eq!(at("a/b/link", "../c").unwrap(), "a/c");
        assert_eq!(at("link", "./x/y").unwrap(), "x/y");
        assert_eq!(at("a/link", "../../a/x").ok(), None);
        assert!(at("link", "/etc/passwd").is_err());
        assert!(at("link", "..").is_err());
        assert!(at("a/link", "..").is_err());
    }
}
