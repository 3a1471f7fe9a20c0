//! `dragonfly-endpoint preheat`: the REST API's `PUT /dragonfly/preheat`
//! from the command line (before a rollout, from CI), and with `--wait`
//! until every job has ended.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use dragonfly_endpoint_core::api::preheat::{parse, PARAMS};
use dragonfly_endpoint_core::api::query::Query;
use dragonfly_endpoint_core::config::{Config, ConfigLocation};
use dragonfly_endpoint_core::preheat::{job_state, preheat};
use serde_json::{json, Value};

pub const USAGE: &str = "\
Have Dragonfly's peers download models before the nodes pull them.

usage: dragonfly-endpoint preheat [options]

options:
  --config FILE          config file (default: $DRAGONFLY_ENDPOINT_CONFIG,
                         else /etc/dragonfly-endpoint/config.json); its
                         preheat.manager and preheat.token (or
                         $DRAGONFLY_MANAGER_TOKEN) name the manager
  --model all|A.mar[,B/] what to preheat (default: load_model of the config)
  --bucket NAME, --prefix PREFIX
  --scope all_peers|all_seed_peers|single_seed_peer
  --count N, --percentage N, --ips IP[,IP]
                         which peers (default: the config's preheat keys)
  --wait SECONDS         poll the jobs until each has ended, at most this long

Prints the jobs as JSON on stdout (with --wait, each job's final state).
Exit status: 0 jobs created (with --wait: all SUCCESS), 1 a job failed or
the manager refused, 2 bad usage, parameters or config.";

pub struct PreheatCli {
    config: Option<String>,
    wait: Option<Duration>,
    query: Query,
}

pub fn parse_args(mut flags: BTreeMap<String, String>) -> Result<PreheatCli> {
    let wait = match flags.remove("wait") {
        Some(secs) => Some(Duration::from_secs(
            secs.parse().context("--wait takes whole seconds")?,
        )),
        None => None,
    };
    let config = flags.remove("config");
    let mut query = Query::new();
    for (name, value) in flags {
        if name == "config" || !PARAMS.contains(&name.as_str()) {
            bail!("unknown option --{name}\n\n{USAGE}");
        }
        query.insert(name, vec![value]);
    }
    Ok(PreheatCli {
        config,
        wait,
        query,
    })
}

/// Creates the jobs and, with `--wait`, polls them; the exit status.
pub async fn run(cli: PreheatCli) -> Result<u16> {
    let (_, request) = parse(&cli.query)?;
    let path = match &cli.config {
        Some(path) => path.into(),
        None => ConfigLocation::from_env(&BTreeMap::new()).default_path(),
    };
    let config = Config::load(&path)?;
    let report = preheat(&config, &request).await?;
    let Some(wait) = cli.wait else {
        println!("{:#}", json!(report));
        return Ok(200);
    };
    let deadline = Instant::now() + wait;
    let mut states: Vec<Value> = Vec::new();
    loop {
        states.clear();
        for job in &report.jobs {
            states.push(job_state(&config, job.job).await?);
        }
        let ended = states
            .iter()
            .all(|s| matches!(s["state"].as_str(), Some("SUCCESS" | "FAILURE")));
        if ended || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let all_done = states.iter().all(|s| s["state"] == "SUCCESS");
    println!("{:#}", json!({"jobs": report.jobs, "states": states}));
    Ok(if all_done { 200 } else { 502 })
}
