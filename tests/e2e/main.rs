//! The end-to-end suite: real S3 server, real Dragonfly cluster, real
//! TorchServe 0.12 with the built plugin jar. Needs `scripts/setup`, the
//! jar (`gradle build`) and the CLI (`cargo build --release`); `scripts/test`
//! does all of it.

mod bad_input;
mod docs;
mod faults;
mod front;
mod load;
mod plugin;
mod pull;
mod reliability;
mod smoke;
mod tls;
mod unpack;
