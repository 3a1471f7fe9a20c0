//! Inflater candidates for the pull's unpack, on the largest deflated
//! entry of ARCHIVE (the benchmark's 1 GiB TorchScript model by default):
//!
//! - `zlib-rs`: flate2's streaming inflate, what the stream path runs;
//! - `isal`: ISA-L's streaming inflate (`isal-rs`, built from source);
//! - `rapidgzip`: `rapidgzip-core` on the raw deflate stream with 2
//!   threads (its marker/window parallel decode when its own admission
//!   screen finds it pays; here it decodes sequentially with zlib-rs);
//! - `libdeflate`: whole-entry inflate, what the file path runs.
//!
//! Two modes, each method 5 rounds in alternating order, median reported:
//! `decode` hands the output to a CRC-32 and drops it (the decoder alone);
//! `file` writes it to a file and ends with `fdatasync` (libdeflate into a
//! `fallocate`d mapping of the file, the others through a 1 MiB buffer), as a pull
//! does. CPU is the process's user + system seconds.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

const METHODS: [&str; 4] = ["zlib-rs", "isal", "rapidgzip", "libdeflate"];
const ROUNDS: usize = 5;

/// The largest entry, which must be deflated: its raw stream's place in
/// the archive, its size and CRC-32.
struct Entry {
    start: usize,
    compressed: usize,
    size: usize,
    crc32: u32,
}

fn largest_entry(archive: &Path) -> Entry {
    let mut zip = zip::ZipArchive::new(File::open(archive).expect("open")).expect("a zip");
    let index = (0..zip.len())
        .max_by_key(|&i| zip.by_index_raw(i).map(|e| e.size()).unwrap_or(0))
        .expect("an entry");
    let raw = zip.by_index_raw(index).expect("entry");
    assert_eq!(raw.compression(), zip::CompressionMethod::Deflated);
    Entry {
        start: raw.data_start().expect("data start") as usize,
        compressed: raw.compressed_size() as usize,
        size: raw.size() as usize,
        crc32: raw.crc32(),
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Output that keeps a CRC-32 of everything written to it.
struct Checked<W: Write> {
    inner: W,
    crc: flate2::Crc,
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.crc.update(&bytes[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Inflates `raw` with `method` into `out` (or only checks it, with
/// `out: None`) and returns the CRC-32 of what came out.
fn inflate(method: &str, raw: &[u8], size: usize, out: Option<&File>, spare: &mut [u8]) -> u32 {
    if method == "libdeflate" {
        let mut decompressor = libdeflater::Decompressor::new();
        let mut crc = flate2::Crc::new();
        match out {
            Some(file) => {
                // Reserved first, as the file path does: faults on a sparse
                // mapping allocate blocks one page at a time.
                // SAFETY: fallocate on a file descriptor we own.
                let reserved = unsafe {
                    libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(file), 0, 0, size as i64)
                };
                assert_eq!(reserved, 0, "fallocate");
                // Populated up front, as the file path maps it.
                // SAFETY: the file is ours and nobody else changes its length.
                let mut mapped = unsafe { memmap2::MmapOptions::new().populate().map_mut(file) }
                    .expect("map the output");
                let n = decompressor
                    .deflate_decompress(raw, &mut mapped)
                    .expect("inflate");
                crc.update(&mapped[..n]);
            }
            None => {
                let n = decompressor
                    .deflate_decompress(raw, spare)
                    .expect("inflate");
                crc.update(&spare[..n]);
            }
        }
        return crc.sum();
    }
    let sink: Box<dyn Write> = match out {
        Some(file) => Box::new(io::BufWriter::with_capacity(1 << 20, file)),
        None => Box::new(io::sink()),
    };
    let mut w = Checked {
        inner: sink,
        crc: flate2::Crc::new(),
    };
    match method {
        "zlib-rs" => {
            let mut d = flate2::read::DeflateDecoder::new_with_buf(raw, vec![0; 1 << 16]);
            io::copy(&mut d, &mut w).expect("inflate");
        }
        "isal" => {
            let mut d = isal::read::DeflateDecoder::new(raw);
            io::copy(&mut d, &mut w).expect("inflate");
        }
        "rapidgzip" => {
            let decoder = rapidgzip_core::Decoder::builder()
                .format(rapidgzip_core::Format::RawDeflate)
                .expected_uncompressed_size(Some(size as u64))
                .decoder_threads(2)
                .build()
                .expect("decoder");
            decoder.decode(raw, &mut w).expect("inflate");
        }
        other => panic!("unknown method {other}; known: {METHODS:?}"),
    }
    w.flush().expect("flush");
    w.crc.sum()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let archive = args.next().expect("usage: inflaters ARCHIVE [METHOD...]");
    let mut methods: Vec<String> = args.collect();
    if methods.is_empty() {
        methods = METHODS.iter().map(|m| m.to_string()).collect();
    }
    let entry = largest_entry(Path::new(&archive));
    let file = File::open(&archive).expect("open");
    // SAFETY: the archive is not written while this runs.
    let mapped =
        unsafe { memmap2::MmapOptions::new().populate().map(&file) }.expect("map the archive");
    let raw = &mapped[entry.start..entry.start + entry.compressed];
    println!(
        "entry: {} bytes deflated to {} ({:.3})",
        entry.size,
        entry.compressed,
        entry.compressed as f64 / entry.size as f64
    );
    let mut spare = vec![1u8; entry.size];
    let out_path = std::env::temp_dir().join(format!("inflaters-{}", std::process::id()));
    for mode in ["decode", "file"] {
        let mut times: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![], vec![]); methods.len()];
        for round in 0..ROUNDS {
            let order: Vec<usize> = if round % 2 == 0 {
                (0..methods.len()).collect()
            } else {
                (0..methods.len()).rev().collect()
            };
            for k in order {
                let out = (mode == "file").then(|| {
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&out_path)
                        .expect("output")
                });
                let (wall, cpu) = (Instant::now(), cpu_seconds());
                let crc = inflate(&methods[k], raw, entry.size, out.as_ref(), &mut spare);
                if let Some(out) = &out {
                    out.sync_data().expect("fdatasync");
                }
                let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
                assert_eq!(crc, entry.crc32, "{}: wrong output", methods[k]);
                times[k].0.push(wall);
                times[k].1.push(cpu);
            }
        }
        for (method, (walls, cpus)) in methods.iter().zip(times) {
            let (lo, hi) = walls
                .iter()
                .fold((f64::MAX, 0f64), |(l, h), &w| (l.min(w), h.max(w)));
            println!(
                "{mode:6} {method:10} wall {:.2} s ({lo:.2}-{hi:.2}), {:.0} MB/s, CPU {:.2} s",
                median(walls.clone()),
                entry.size as f64 / median(walls) / 1e6,
                median(cpus)
            );
        }
    }
    let _ = std::fs::remove_file(&out_path);
}
