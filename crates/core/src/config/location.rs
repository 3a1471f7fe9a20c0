//! Where the config file comes from, and the one directory a request's
//! `config` parameter may point into.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{CoreError, Result};

pub const CONFIG_ENV: &str = "DRAGONFLY_ENDPOINT_CONFIG";
pub const CONFIG_DIR_ENV: &str = "DRAGONFLY_ENDPOINT_CONFIG_DIR";
pub const CONFIG_PROPERTY: &str = "dragonfly_endpoint_config";
pub const CONFIG_DIR_PROPERTY: &str = "dragonfly_endpoint_config_dir";
pub const DEFAULT_CONFIG_PATH: &str = "/etc/dragonfly-endpoint/config.json";

/// Where the config path and the allowed config directory come from.
#[derive(Debug, Clone, Default)]
pub struct ConfigLocation {
    /// `DRAGONFLY_ENDPOINT_CONFIG`.
    pub env_path: Option<String>,
    /// `DRAGONFLY_ENDPOINT_CONFIG_DIR`.
    pub env_dir: Option<String>,
    /// `dragonfly_endpoint_config` in TorchServe's config.properties.
    pub property_path: Option<String>,
    /// `dragonfly_endpoint_config_dir` in TorchServe's config.properties.
    pub property_dir: Option<String>,
}

impl ConfigLocation {
    pub fn from_env(properties: &BTreeMap<String, String>) -> Self {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        ConfigLocation {
            env_path: non_empty(std::env::var(CONFIG_ENV).ok()),
            env_dir: non_empty(std::env::var(CONFIG_DIR_ENV).ok()),
            property_path: non_empty(properties.get(CONFIG_PROPERTY).cloned()),
            property_dir: non_empty(properties.get(CONFIG_DIR_PROPERTY).cloned()),
        }
    }

    /// The config used when a request names none: environment, then
    /// config.properties, then the built-in path.
    pub fn default_path(&self) -> PathBuf {
        self.env_path
            .as_deref()
            .or(self.property_path.as_deref())
            .unwrap_or(DEFAULT_CONFIG_PATH)
            .into()
    }

    /// The directory a request's `config` parameter must point into: set
    /// explicitly, else the directory of the default config (never `/`:
    /// `resolve` refuses every request config then).
    pub fn allowed_dir(&self) -> PathBuf {
        match self.env_dir.as_deref().or(self.property_dir.as_deref()) {
            Some(dir) => dir.into(),
            None => self
                .default_path()
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/")),
        }
    }

    /// Resolves the config path of a request. A path from the request must
    /// resolve (symlinks included) inside the allowed directory: a request
    /// must not make the plugin read arbitrary files.
    pub fn resolve(&self, requested: Option<&str>) -> Result<PathBuf> {
        let Some(requested) = requested else {
            return Ok(self.default_path());
        };
        if requested.is_empty() || requested.contains('\0') {
            return Err(CoreError::invalid("config", "must be a file path"));
        }
        let requested = PathBuf::from(requested);
        if !requested.is_absolute() {
            return Err(CoreError::invalid(
                "config",
                format!("{} is not an absolute path", requested.display()),
            ));
        }
        let allowed = self.allowed_dir();
        let allowed_real = allowed
            .canonicalize()
            .ok()
            // The root would allow every file: it is never the allowed
            // directory, whatever the default config path.
            .filter(|real| real.parent().is_some())
            .ok_or_else(|| CoreError::ConfigPathNotAllowed {
                path: requested.clone(),
                allowed: allowed.clone(),
            })?;
        match requested.canonicalize() {
            Ok(real) if real.starts_with(&allowed_real) => Ok(real),
            Ok(_) => Err(CoreError::ConfigPathNotAllowed {
                path: requested,
                allowed,
            }),
            // A missing file inside the allowed directory is the user's typo;
            // outside it, say nothing about what exists there.
            Err(_) => match requested.parent().and_then(|p| p.canonicalize().ok()) {
                Some(parent) if parent.starts_with(&allowed_real) => Err(CoreError::Config {
                    path: requested,
                    reason: "no such file".into(),
                }),
                _ => Err(CoreError::ConfigPathNotAllowed {
                    path: requested,
                    allowed,
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_path_must_stay_in_allowed_dir() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let inside = allowed.path().join("c.json");
        std::fs::write(&inside, "{}").unwrap();
        let secret = outside.path().join("secret.json");
        std::fs::write(&secret, "{}").unwrap();
        let link = allowed.path().join("link.json");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let location = ConfigLocation {
            env_path: Some(allowed.path().join("default.json").display().to_string()),
            ..Default::default()
        };
        let status = |p: &Path| {
            location
                .resolve(Some(p.to_str().unwrap()))
                .map_err(|e| e.status())
        };
        assert!(status(&inside).is_ok());
        assert_eq!(status(&secret), Err(403));
        assert_eq!(status(&link), Err(403));
        assert_eq!(status(&allowed.path().join("../x/../etc")), Err(403));
        assert_eq!(status(&allowed.path().join("missing.json")), Err(400));
        assert_eq!(
            location
                .resolve(Some("relative.json"))
                .map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(
            location.resolve(None).unwrap(),
            allowed.path().join("default.json")
        );
        // A default config at the root does not make `/` the allowed dir.
        let at_root = ConfigLocation {
            env_path: Some("/config.json".into()),
            ..Default::default()
        };
        assert_eq!(
            at_root
                .resolve(Some("/etc/hostname"))
                .map_err(|e| e.status()),
            Err(403)
        );
        let explicit_root = ConfigLocation {
            env_dir: Some("/".into()),
            ..Default::default()
        };
        assert_eq!(
            explicit_root
                .resolve(Some("/etc/hostname"))
                .map_err(|e| e.status()),
            Err(403)
        );
    }
}
