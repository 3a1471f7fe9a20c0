//! `PUT /dragonfly/preheat?model=...`: a preheat job in the Dragonfly
//! manager for each object the selection names (the same `model`,
//! `bucket`, `prefix` and `config` as a pull, plus `scope`, `count`,
//! `percentage`, `ips`), answered 202 with the job ids;
//! `GET /dragonfly/preheat?job=ID`: that job's state.

use serde_json::json;

use super::query::{Params, Query};
use super::{load_config, ApiResponse, HostContext};
use crate::config::PreheatScope;
use crate::error::{CoreError, Result};
use crate::preheat::{self, PreheatRequest};
use crate::pull::plan::{parse_selection, validate_key_text};

/// The query parameters of a preheat; all but `config` are also the
/// CLI's flags.
pub const PARAMS: &[&str] = &[
    "config",
    "model",
    "bucket",
    "prefix",
    "scope",
    "count",
    "percentage",
    "ips",
];

/// The preheat query, checked before anything is asked of the manager.
pub fn parse(query: &Query) -> Result<(Option<String>, PreheatRequest)> {
    let q = Params::new(query, &[PARAMS])?;
    let model = q.text("model")?;
    if let Some(model) = &model {
        parse_selection(model)?;
    }
    for name in ["bucket", "prefix"] {
        if let Some(text) = q.text(name)? {
            validate_key_text(name, &text)?;
        }
    }
    let scope = match q.text("scope")?.as_deref() {
        None => None,
        Some("all_peers") => Some(PreheatScope::AllPeers),
        Some("all_seed_peers") => Some(PreheatScope::AllSeedPeers),
        Some("single_seed_peer") => Some(PreheatScope::SingleSeedPeer),
        Some(other) => {
            return Err(CoreError::invalid(
                "scope",
                format!("{other:?}: one of all_peers, all_seed_peers, single_seed_peer"),
            ))
        }
    };
    let count = q.number("count")?;
    if count.is_some_and(|c| !(1..=200).contains(&c)) {
        return Err(CoreError::invalid("count", "must be 1..=200"));
    }
    let percentage = q.number("percentage")?;
    if percentage.is_some_and(|p| !(1..=100).contains(&p)) {
        return Err(CoreError::invalid("percentage", "must be 1..=100"));
    }
    let ips = match q.text("ips")? {
        None => None,
        Some(list) => {
            let ips: Vec<String> = list.split(',').map(|ip| ip.trim().to_string()).collect();
            if let Some(bad) = ips
                .iter()
                .find(|ip| ip.parse::<std::net::IpAddr>().is_err())
            {
                return Err(CoreError::invalid(
                    "ips",
                    format!("{bad:?} is not an IP address"),
                ));
            }
            Some(ips)
        }
    };
    let request = PreheatRequest {
        model,
        bucket: q.text("bucket")?,
        prefix: q.text("prefix")?,
        scope,
        count,
        percentage,
        ips,
    };
    Ok((q.text("config")?, request))
}

pub(super) async fn create(query: &Query, host: &HostContext) -> Result<ApiResponse> {
    let (config, request) = parse(query)?;
    let config = load_config(config.as_deref(), host)?;
    let report = preheat::preheat(&config, &request).await?;
    let mut body = json!(report);
    body["status"] = json!(format!(
        "{} preheat job(s) created in the Dragonfly manager",
        report.jobs.len()
    ));
    Ok(ApiResponse::json(202, body))
}

pub(super) async fn state(query: &Query, host: &HostContext) -> Result<ApiResponse> {
    let q = Params::new(query, &[&["job", "config"]])?;
    let job = q
        .text("job")?
        .ok_or_else(|| CoreError::invalid("job", "missing: GET /dragonfly/preheat?job=ID"))?;
    let id: u64 = job.parse().map_err(|_| {
        CoreError::invalid("job", format!("{job:?} is not a preheat job id (a number)"))
    })?;
    let config = load_config(q.text("config")?.as_deref(), host)?;
    Ok(ApiResponse::ok(preheat::job_state(&config, id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect()
    }

    #[test]
    fn preheat_queries_are_checked_before_the_manager_is_asked() {
        let (_, ok) = parse(&query(&[
            ("model", "a.mar,bert/"),
            ("scope", "all_peers"),
            ("count", "3"),
            ("ips", "10.0.0.1, 10.0.0.2"),
        ]))
        .unwrap();
        assert_eq!(ok.scope, Some(PreheatScope::AllPeers));
        assert_eq!(
            ok.ips.as_deref(),
            Some(&["10.0.0.1".to_string(), "10.0.0.2".into()][..])
        );
        for (bad, needle) in [
            (("scope", "everyone"), "scope"),
            (("count", "0"), "count"),
            (("percentage", "101"), "percentage"),
            (("ips", "node-1"), "ips"),
            (("model", "../a.mar"), "model"),
            (("model_name", "x"), "unknown"),
        ] {
            let err = parse(&query(&[bad])).unwrap_err();
            assert_eq!(err.status(), 400, "{bad:?}");
            assert!(err.to_string().contains(needle), "{bad:?}: {err}");
        }
    }
}
