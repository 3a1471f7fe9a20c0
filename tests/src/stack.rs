//! The usual stack of an end-to-end test: [`Origin`] (the S3 server with
//! the bucket, and a Dragonfly cluster) and TorchServe with only the plugin
//! jar, reading a given config as its default plugin config.

use std::path::Path;

use crate::config::BUCKET;
use crate::servers::{plugins_dir, DragonflyCluster, S3Server, TorchServe};

/// S3, one Dragonfly peer (or more) and nothing else yet.
pub struct Origin {
    pub s3: S3Server,
    pub dragonfly: DragonflyCluster,
}

impl Origin {
    pub fn start(peers: usize) -> Origin {
        let s3 = S3Server::start();
        s3.mb(BUCKET);
        Origin {
            s3,
            dragonfly: DragonflyCluster::start(peers),
        }
    }

    pub fn upload(&self, key: &str, file: &Path) {
        self.s3.put(BUCKET, key, file);
    }
}

/// TorchServe with only the plugin jar in its plugins path and `config` as
/// its default plugin config (`dragonfly_endpoint_config`). Keep the
/// returned directory alive as long as the server.
pub fn torchserve_with_plugin(config: &Path) -> (tempfile::TempDir, TorchServe) {
    let plugins = plugins_dir();
    let ts = TorchServe::start(
        plugins.path(),
        &format!("dragonfly_endpoint_config={}\n", config.display()),
    );
    (plugins, ts)
}
