//! `dragonfly-endpoint`: the plugin's pull outside TorchServe, for init
//! containers, CI and benchmarks. Same config, same options (as flags), same
//! atomic writes; registers over TorchServe's management API when asked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use dragonfly_endpoint_core::api::query::{parse_pull, Query};
use dragonfly_endpoint_core::config::{Config, ConfigLocation};
use dragonfly_endpoint_core::model_store::ModelStore;
use dragonfly_endpoint_core::pull::{pull, PullHost};
use dragonfly_endpoint_core::register::http::ManagementApi;
use dragonfly_endpoint_core::register::ModelRegistry;

mod preheat;
mod progress;
use progress::Reporter;

const USAGE: &str = "\
Pull TorchServe model archives from object storage through a Dragonfly peer.

usage: dragonfly-endpoint pull --model-store DIR [options]
       dragonfly-endpoint preheat [options]   (--help for its options)

options:
  --config FILE          config file (default: $DRAGONFLY_ENDPOINT_CONFIG,
                         else /etc/dragonfly-endpoint/config.json)
  --model-store DIR      where archives are written (required)
  --model all|A.mar[,B.mar]
                         archives to pull (default: load_model of the config)
  --bucket NAME          override object_storage.bucket_name
  --prefix PREFIX        override object_storage.prefix
  --management URL       register each archive with this TorchServe
                         management API (its model API must be enabled)
  --token TOKEN          management token (default: $TS_MANAGEMENT_TOKEN)
  --model-name, --initial-workers, --batch-size, --max-batch-delay,
  --response-timeout, --startup-timeout, --handler, --runtime,
  --synchronous          register options, as the REST API's
  --no-progress          no progress on stderr (bars on a terminal, else
                         one line per model and phase)

Prints the JSON report on stdout. Exit status: 0 all models ready,
1 a model or the request failed (store, peer, registration), 2 bad usage,
parameters or config.";

/// Flags that are REST query parameters under another spelling.
const QUERY_FLAGS: &[&str] = &[
    "model",
    "bucket",
    "prefix",
    "model-name",
    "initial-workers",
    "batch-size",
    "max-batch-delay",
    "response-timeout",
    "startup-timeout",
    "handler",
    "runtime",
    "synchronous",
];

struct Cli {
    config: Option<String>,
    model_store: PathBuf,
    management: Option<String>,
    token: Option<String>,
    progress: bool,
    query: Query,
}

/// A command of the CLI.
enum Command {
    Pull(Cli),
    Preheat(preheat::PreheatCli),
}

fn parse_command(args: &[String]) -> Result<Command> {
    match args.first().map(String::as_str) {
        Some("preheat") => {
            let (flags, _) = parse_flags(&args[1..], preheat::USAGE)?;
            Ok(Command::Preheat(preheat::parse_args(flags)?))
        }
        _ => parse_args(args).map(Command::Pull),
    }
}

/// `--name value` and `--name=value` pairs, each once; `--no-progress`
/// counted apart.
fn parse_flags(args: &[String], usage: &str) -> Result<(BTreeMap<String, String>, bool)> {
    let mut args = args.iter();
    let mut flags: BTreeMap<String, String> = BTreeMap::new();
    let mut progress = true;
    while let Some(arg) = args.next() {
        let Some(name) = arg.strip_prefix("--") else {
            bail!("unexpected argument {arg:?}\n\n{usage}");
        };
        if name == "no-progress" {
            progress = false;
            continue;
        }
        if name == "help" {
            bail!("{usage}");
        }
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                let value = args
                    .next()
                    .with_context(|| format!("--{name} needs a value"))?;
                (name.to_string(), value.clone())
            }
        };
        if flags.insert(name.clone(), value).is_some() {
            bail!("--{name} given twice");
        }
    }
    Ok((flags, progress))
}

fn parse_args(args: &[String]) -> Result<Cli> {
    match args.first().map(String::as_str) {
        Some("pull") => {}
        Some("-h" | "--help") | None => bail!("{USAGE}"),
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
    let (mut flags, progress) = parse_flags(&args[1..], USAGE)?;
    let model_store = flags
        .remove("model-store")
        .map(PathBuf::from)
        .with_context(|| format!("--model-store is required\n\n{USAGE}"))?;
    let mut cli = Cli {
        config: flags.remove("config"),
        model_store,
        management: flags.remove("management"),
        token: flags
            .remove("token")
            .or_else(|| std::env::var("TS_MANAGEMENT_TOKEN").ok()),
        progress,
        query: Query::new(),
    };
    for (name, value) in flags {
        if !QUERY_FLAGS.contains(&name.as_str()) {
            bail!("unknown option --{name}\n\n{USAGE}");
        }
        cli.query.insert(name.replace('-', "_"), vec![value]);
    }
    Ok(cli)
}

async fn run(cli: Cli) -> Result<u16> {
    let request = parse_pull(&cli.query)?.request;
    let location = ConfigLocation::from_env(&BTreeMap::new());
    // The command line is trusted: any config path may be named.
    let config_path = match &cli.config {
        Some(path) => PathBuf::from(path),
        None => location.default_path(),
    };
    let config = Config::load(&config_path)?;
    std::fs::create_dir_all(&cli.model_store)
        .with_context(|| format!("creating {}", cli.model_store.display()))?;
    let registry: Option<Arc<dyn ModelRegistry>> = match &cli.management {
        Some(url) => Some(Arc::new(ManagementApi::new(url, cli.token.clone())?)),
        None => None,
    };
    let reporter = Reporter::new(cli.progress);
    let on_start = reporter.clone();
    let mut host = PullHost::new(ModelStore::open(&cli.model_store)?, registry);
    host.on_start = Some(Arc::new(move |p| on_start.add(p)));
    let ticking = reporter.clone();
    let ticker = tokio::spawn(async move {
        loop {
            ticking.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let report = pull(&host, &config, &request).await;
    ticker.abort();
    reporter.tick();
    let report = report?;
    println!("{:#}", report.body());
    Ok(report.status())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DRAGONFLY_ENDPOINT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_command(&args) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("{err:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cannot start runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async move {
        match command {
            Command::Pull(cli) => run(cli).await,
            Command::Preheat(cli) => preheat::run(cli).await,
        }
    });
    // A failed pull's removals run on threads of their own: let them end
    // before the process does, so the store is left as it was.
    if !dragonfly_endpoint_core::model_store::background::wait_for_cleanups(Duration::from_secs(60))
    {
        eprintln!("warning: cleanups still running after 60 s; the next pull sweeps what is left");
    }
    match outcome {
        Ok(200) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => match err.downcast_ref::<dragonfly_endpoint_core::CoreError>() {
            // Bad parameters or config: the caller's to fix.
            Some(core) if core.status() == 400 || core.status() == 403 => {
                println!("{:#}", serde_json::json!(core.body()));
                ExitCode::from(2)
            }
            // Request-level errors print in the same JSON shape as the API.
            Some(core) => {
                println!("{:#}", serde_json::json!(core.body()));
                ExitCode::from(1)
            }
            None => {
                eprintln!("error: {err:#}");
                ExitCode::from(2)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_become_query_parameters() {
        let cli = parse_args(&args(&[
            "pull",
            "--model-store",
            "/tmp/s",
            "--model=a.mar,b.mar",
            "--initial-workers",
            "2",
            "--no-progress",
        ]))
        .unwrap();
        assert_eq!(cli.model_store, PathBuf::from("/tmp/s"));
        assert!(!cli.progress);
        assert_eq!(cli.query["model"], vec!["a.mar,b.mar"]);
        assert_eq!(cli.query["initial_workers"], vec!["2"]);
        assert!(parse_pull(&cli.query).is_ok());
    }

    #[test]
    fn bad_usage_is_refused() {
        assert!(parse_args(&args(&["pull"])).is_err());
        assert!(parse_args(&args(&["push", "--model-store", "x"])).is_err());
        assert!(parse_args(&args(&["pull", "--model-store", "x", "--bogus", "1"])).is_err());
        assert!(parse_args(&args(&["pull", "--model-store", "x", "--model"])).is_err());
        assert!(parse_args(&args(&[
            "pull",
            "--model-store",
            "x",
            "--model",
            "a",
            "--model",
            "b"
        ]))
        .is_err());
    }
}
