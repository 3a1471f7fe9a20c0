//! register end to end: the plugin's PUT until the model answers, cold,
//! warm, re-pulled and as a plain archive, against TorchServe's own
//! registration from a presigned URL on the same TorchServe.

use std::path::Path;

use dragonfly_endpoint_testbed::Mar;
use serde_json::json;

use crate::fixtures::{progress, write_config, Keys};
use crate::serving::Serving;
use crate::stats::{median, Row};
use crate::Args;

/// register: PUT /dragonfly until registered with 1 worker vs TorchServe's
/// own POST /models?url=<presigned URL>, cold, warm and re-pull, and the
/// same with `register_as: mar`.
pub fn run(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    let cfg = work.join("cfg-register");
    let (origin, _config, serving) = Serving::start_with_origin(&cfg);
    let mar_config = write_config(
        &cfg,
        "mar.json",
        &origin.s3,
        &origin.dragonfly.proxy(1),
        json!({"register_as": "mar"}),
    );
    let (mut cold, mut warm, mut repull, mut cold_mar, mut baseline) =
        (vec![], vec![], vec![], vec![], vec![]);
    for run in 0..args.runs {
        progress(&format!("register run {}/{}", run + 1, args.runs));
        // TorchServe's own registration from a presigned URL.
        let name = format!("base{run}");
        let key = origin.fresh(mar, &format!("{name}.mar"));
        let url: String =
            url::form_urlencoded::byte_serialize(origin.presign(&key).as_bytes()).collect();
        baseline.push(serving.timed(
            "POST",
            &format!("/models?url={url}&model_name={name}&initial_workers=1&synchronous=true"),
        ));
        serving.check_answer(&name, mar);
        serving.call("DELETE", &format!("/models/{name}"));
        serving.remove_store_files(&name);

        // The plugin, cold (a new key: nothing cached anywhere).
        let name = format!("reg{run}");
        let key = origin.fresh(mar, &format!("{name}.mar"));
        cold.push(serving.timed("PUT", &format!("/dragonfly?model={key}")));
        serving.check_answer(&name, mar);
        // Unregistered through TorchServe only: archive and unpacked copy
        // stay; the re-pull only registers.
        serving.call("DELETE", &format!("/models/{name}"));
        repull.push(serving.timed("PUT", &format!("/dragonfly?model={key}")));
        serving.check_answer(&name, mar);
        // Removed with the plugin (archive and copy gone); the peer still
        // has the task: warm.
        serving.call("DELETE", &format!("/dragonfly?model={name}"));
        warm.push(serving.timed("PUT", &format!("/dragonfly?model={key}")));
        serving.check_answer(&name, mar);
        serving.call("DELETE", &format!("/dragonfly?model={name}"));

        // register_as mar, cold: TorchServe unzips.
        let name = format!("regmar{run}");
        let key = origin.fresh(mar, &format!("{name}.mar"));
        cold_mar.push(serving.timed(
            "PUT",
            &format!("/dragonfly?model={key}&config={}", mar_config.display()),
        ));
        serving.check_answer(&name, mar);
        serving.call("DELETE", &format!("/dragonfly?model={name}"));
    }
    let base = || {
        (
            "TorchServe POST /models?url=presigned".to_string(),
            baseline.clone(),
        )
    };
    let ratio = |v: &[f64]| median(v) / median(&baseline);
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "register end to end",
        variant: "PUT, cold (unpacked while streaming)".into(),
        unit: "s",
        met: Some(ratio(&cold) <= 0.5),
        values: cold,
        baseline: Some(base()),
        goal: "ratio <= 0.5".into(),
    });
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "register end to end",
        variant: "PUT, warm (peer cache: hard link, unpack from file)".into(),
        unit: "s",
        met: Some(ratio(&warm) <= 0.2),
        values: warm,
        baseline: Some(base()),
        goal: "ratio <= 0.2".into(),
    });
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "register end to end",
        variant: "PUT, re-pull (unchanged, unpacked copy cached)".into(),
        unit: "s",
        met: None,
        values: repull,
        baseline: Some(base()),
        goal: "-".into(),
    });
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "register end to end",
        variant: "PUT, cold, register_as mar (TorchServe unzips)".into(),
        unit: "s",
        met: None,
        values: cold_mar,
        baseline: Some(base()),
        goal: "-".into(),
    });
}
