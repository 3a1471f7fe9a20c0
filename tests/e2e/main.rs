//! The end-to-end suite: real S3 server, real Dragonfly cluster, real
//! TorchServe 0.12 with the built plugin jar (and, in `versions.rs`, the
//! older TorchServe versions of the suite or the matrix). Needs `scripts/setup`, the
//! test build of the jar (`gradle build -PtestHooks`) and of the CLI
//! (`cargo build --release -p dragonfly-endpoint-cli --features test-hooks`);
//! `scripts/test` does all of it.

mod bad_input;
mod bridge;
mod crash;
mod deadlines;
mod directories;
mod docs;
mod fake_clouds;
mod faults;
mod fleet;
mod formats;
mod front;
mod identity;
mod jobs;
mod load;
mod locks;
mod plugin;
mod preheat;
mod pull;
mod reliability;
mod retries;
mod smoke;
mod soak;
mod stores;
mod tls;
mod unpack;
mod versions;
