//! The plugin's config file as the tests write it: the bucket and key
//! prefix of the test bed, the S3 server's endpoint and keys, the Dragonfly
//! proxy, and extra top-level keys merged over them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::servers::S3Server;

/// The bucket [`crate::Origin`] creates.
pub const BUCKET: &str = "models";
/// The key prefix of the configs [`write_config`] writes.
pub const PREFIX: &str = "torchserve/";

/// A plugin config for `s3` under `prefix` through `proxy`; each top-level
/// key of `extra` replaces the one of the same name.
pub fn config_json(s3: &S3Server, prefix: &str, proxy: &str, extra: Value) -> Value {
    let mut config = serde_json::json!({
        "addr": proxy,
        "object_storage": {
            "type": "s3",
            "bucket_name": BUCKET,
            "prefix": prefix,
            "region": s3.region(),
            "endpoint": s3.endpoint(),
            "access_key": s3.access_key(),
            "secret_key": s3.secret_key(),
        },
    });
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    config
}

/// Writes `config` as `dir/name` (pretty JSON) and returns its path.
pub fn write_config_file(dir: &Path, name: &str, config: &Value) -> PathBuf {
    std::fs::create_dir_all(dir).expect("config dir");
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(config).expect("json")).expect("write");
    path
}

/// Writes a plugin config into `dir` and returns its path.
pub fn write_config(dir: &Path, s3: &S3Server, proxy: &str, extra: Value) -> PathBuf {
    write_config_file(dir, "config.json", &config_json(s3, PREFIX, proxy, extra))
}

/// A copy of the config at `path`, edited, written beside it as `name`.
pub fn config_variant(path: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(path).expect("read config")).expect("config JSON");
    edit(&mut config);
    write_config_file(path.parent().expect("config dir"), name, &config)
}
