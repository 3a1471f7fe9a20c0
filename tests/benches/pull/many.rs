//! many models: `model=all` over 8 archives of an eighth of the size,
//! against one archive of the full size.

use std::path::Path;

use dragonfly_endpoint_testbed::{config_json, write_config_file, Mar, Origin};
use serde_json::json;

use crate::fixtures::{cli_pull, fresh_dir, progress, Keys};
use crate::stats::{median, Row};
use crate::Args;

/// many: `model=all` over 8 archives of size/8 vs one of size.
pub fn run(args: &Args, mar: &Mar, parts: &[Mar], work: &Path, rows: &mut Vec<Row>) {
    let origin = Origin::start(1);
    let dragonfly = &origin.dragonfly;
    let (mut many, mut one) = (vec![], vec![]);
    for run in 0..args.runs {
        progress(&format!("many run {}/{}", run + 1, args.runs));
        for (i, part) in parts.iter().enumerate() {
            origin.fresh(part, &format!("many{run}/part{i}.mar"));
        }
        origin.fresh(mar, &format!("one{run}/whole.mar"));
        let cfg = work.join("cfg-many");
        // Each config lists only the keys under its own prefix.
        let write = |name: &str, prefix: &str| {
            let content = config_json(
                &origin.s3,
                prefix,
                &dragonfly.proxy(1),
                json!({"register_as": "mar"}),
            );
            write_config_file(&cfg, name, &content)
        };
        let many_config = write("many.json", &format!("many{run}/"));
        let one_config = write("one.json", &format!("one{run}/"));
        let (wall, report) = cli_pull(&many_config, &fresh_dir(work, "store"), "all");
        assert_eq!(report["models"].as_array().map(Vec::len), Some(parts.len()));
        many.push(wall);
        one.push(cli_pull(&one_config, &fresh_dir(work, "store"), "all").0);
    }
    let ratio = median(&many) / median(&one);
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "many models",
        variant: format!(
            "model=all, {} x {} MiB",
            parts.len(),
            args.size_mb / parts.len() as u64
        ),
        unit: "s",
        values: many,
        baseline: Some((format!("1 x {} MiB", args.size_mb), one)),
        goal: "ratio <= 1.2".into(),
        met: Some(ratio <= 1.2),
    });
}
