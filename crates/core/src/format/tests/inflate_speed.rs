//! How fast the file path inflates the benchmark's 1 GiB entry (a real
//! TorchScript model as torch-model-archiver deflates it) out of the
//! finished archive: the zip reader's streaming inflate (zlib-rs; the file
//! path before) against libdeflate's whole-entry inflate into the mapped
//! output (`format/inflate.rs`, the file path now). docs/architecture.md
//! gives the figures. Ignored by default; needs the benchmark's fixture
//! (`scripts/bench` builds it) or DRAGONFLY_ENDPOINT_INFLATE_ARCHIVE:
//!
//! ```text
//! cargo test --release -p dragonfly-endpoint-core inflate_speed -- --ignored --nocapture
//! ```
//!
//! Each run ends with the output's fsync; the archive is warm in the page
//! cache, as right after its download. 5 rounds, the methods alternating
//! which goes first; median wall time with its range (a best-of-3 once
//! hid that the file path was bimodal) and the median CPU.

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use super::stored_speed::{cpu_seconds, zip_reader_copy};
use crate::format::inflate::{allocate, inflate_into, map_archive};

/// A method under test (it writes the entry into the file given), with
/// its wall and CPU seconds per round.
type Method<'a> = (
    &'static str,
    Box<dyn Fn(&mut File) + 'a>,
    Vec<f64>,
    Vec<f64>,
);

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn fixture() -> PathBuf {
    if let Some(path) = std::env::var_os("DRAGONFLY_ENDPOINT_INFLATE_ARCHIVE") {
        return path.into();
    }
    let cache = std::env::var_os("DRAGONFLY_ENDPOINT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/dragonfly-endpoint")
        });
    cache.join("fixtures/big-1024mb-seed41/big.mar")
}

#[test]
#[ignore = "needs the benchmark's 1 GiB archive; run by hand on a release build"]
fn inflate_speed() {
    let archive = fixture();
    assert!(
        archive.is_file(),
        "{} is missing: run `scripts/bench --cases cold --runs 1 --pairs 1` once, or set DRAGONFLY_ENDPOINT_INFLATE_ARCHIVE",
        archive.display()
    );
    let mut zip = zip::ZipArchive::new(File::open(&archive).unwrap()).unwrap();
    let index = (0..zip.len())
        .max_by_key(|&i| zip.by_index_raw(i).unwrap().size())
        .unwrap();
    let (start, compressed, size, crc32) = {
        let raw = zip.by_index_raw(index).unwrap();
        assert_eq!(raw.compression(), zip::CompressionMethod::Deflated);
        let start = raw.data_start().unwrap() as usize;
        (
            start,
            raw.compressed_size() as usize,
            raw.size(),
            raw.crc32(),
        )
    };
    let work = tempfile::tempdir().unwrap();
    let out_path = work.path().join("out");

    let streaming = |out: &mut File| zip_reader_copy(&archive, index, out);
    // Mapping the archive is timed too, as the file path does it per pull.
    let whole = |out: &mut File| {
        let source = File::open(&archive).unwrap();
        // SAFETY: the fixture is not written while the test runs.
        let mapped = unsafe { map_archive(&source) }.unwrap();
        assert!(allocate(out, size).unwrap());
        inflate_into(
            &mapped[start..start + compressed],
            out,
            size,
            crc32,
            "entry",
        )
        .unwrap();
    };
    let mut methods: Vec<Method> = vec![
        (
            "zip reader, streaming (zlib-rs)",
            Box::new(streaming),
            vec![],
            vec![],
        ),
        (
            "libdeflate, whole entry, mapped",
            Box::new(whole),
            vec![],
            vec![],
        ),
    ];
    for round in 0..5 {
        for turn in 0..methods.len() {
            let k = if round % 2 == 0 {
                turn
            } else {
                methods.len() - 1 - turn
            };
            let (_, method, walls, cpus) = &mut methods[k];
            let _ = std::fs::remove_file(&out_path);
            let mut out = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&out_path)
                .unwrap();
            let (started, cpu_started) = (Instant::now(), cpu_seconds());
            method(&mut out);
            out.sync_all().unwrap();
            walls.push(started.elapsed().as_secs_f64());
            cpus.push(cpu_seconds() - cpu_started);
            assert_eq!(out.metadata().unwrap().len(), size);
        }
    }
    println!(
        "entry of {size} bytes ({compressed} deflated) from {}",
        archive.display()
    );
    println!(
        "{:<34} {:>8} {:>13} {:>6} {:>8}",
        "method", "wall", "(range)", "MB/s", "cpu"
    );
    for (name, _, walls, cpus) in &methods {
        let wall = median(walls);
        let (lo, hi) = walls
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &w| (lo.min(w), hi.max(w)));
        let rate = size as f64 / wall / 1e6;
        let cpu = median(cpus);
        println!("{name:<34} {wall:6.2} s ({lo:.2}-{hi:.2}) {rate:6.0} {cpu:6.2} s");
    }
}
