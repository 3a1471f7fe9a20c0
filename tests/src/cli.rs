//! The `dragonfly-endpoint` CLI as the tests run it: found next to the
//! running test or bench binary, under target/<profile>/.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The CLI binary in the target dir of the running binary (its `deps/`
/// folder's parent, target/<profile>/); `hint` ends the message when it is
/// missing.
pub fn cli_in_target(hint: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let cli = dir.join("dragonfly-endpoint");
    assert!(cli.exists(), "{} missing: {hint}", cli.display());
    cli
}

/// The CLI binary next to this test binary (target/<profile>/).
pub fn cli() -> PathBuf {
    cli_in_target("build the CLI first")
}

/// `dragonfly-endpoint pull --config CONFIG --model-store STORE EXTRA...`,
/// not started yet (for an environment of its own, or to run it in the
/// background).
pub fn cli_command(config: &Path, store: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(cli());
    command
        .args(["pull", "--config"])
        .arg(config)
        .arg("--model-store")
        .arg(store)
        .args(extra);
    command
}

/// Runs `dragonfly-endpoint pull`: exit code, the JSON report, stderr.
pub fn pull_with_cli(config: &Path, store: &Path, extra: &[&str]) -> (i32, Value, String) {
    cli_output(cli_command(config, store, extra))
}

/// Runs a CLI command to its end: exit code (-1 when killed by a signal),
/// the JSON report, stderr.
pub fn cli_output(mut command: Command) -> (i32, Value, String) {
    let output = command.output().unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (
        output.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
