//! How fast a 1 GiB stored entry is copied out of the finished archive,
//! by each method considered (docs/architecture.md gives the figures).
//! Ignored by default; run it on a release build:
//!
//! ```text
//! cargo test --release -p dragonfly-endpoint-core stored_copy_speed -- --ignored --nocapture
//! ```
//!
//! Every method ends with the output file's fsync; the archive is warm
//! in the page cache, as right after its download. Best of 3, wall time
//! and the CPU time of the copying thread.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use super::*;

const ENTRY: usize = 1 << 30;

/// A copy method under test: writes the entry into the file given.
type Method<'a> = Box<dyn FnMut(&mut File) + 'a>;

fn copy_file_range(from: &File, offset: u64, len: u64, to: &File) {
    let (mut off_in, mut off_out) = (offset as i64, 0i64);
    let mut left = len as usize;
    while left > 0 {
        // SAFETY: both descriptors stay open; the offsets are ours.
        let n = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                &mut off_in,
                to.as_raw_fd(),
                &mut off_out,
                left.min(1 << 30),
                0,
            )
        };
        assert!(
            n > 0,
            "copy_file_range: {}",
            std::io::Error::last_os_error()
        );
        left -= n as usize;
    }
}

/// CPU seconds this thread has used (user + system).
pub(super) fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Entry `index` of `archive` through the zip reader (1 MiB reads) into
/// `out`: the unpack's copy, the baseline of both speed tests.
pub(super) fn zip_reader_copy(archive: &Path, index: usize, out: &mut File) {
    let file = BufReader::with_capacity(1 << 20, File::open(archive).unwrap());
    let mut zip = zip::ZipArchive::new(file).unwrap();
    let mut entry = zip.by_index(index).unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        out.write_all(&buffer[..n]).unwrap();
    }
}

/// Positioned reads of `buffer`'s size, CRC-32 on the way, then write.
fn pread_copy(from: &File, offset: u64, len: u64, out: &mut File, buffer: &mut [u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    let mut done = 0u64;
    while done < len {
        let n = buffer.len().min((len - done) as usize);
        from.read_exact_at(&mut buffer[..n], offset + done).unwrap();
        crc.update(&buffer[..n]);
        out.write_all(&buffer[..n]).unwrap();
        done += n as u64;
    }
    crc.finalize()
}

fn crc_by_pread(from: &File, offset: u64, len: u64, buffer: &mut [u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    let mut done = 0u64;
    while done < len {
        let n = buffer.len().min((len - done) as usize);
        from.read_exact_at(&mut buffer[..n], offset + done).unwrap();
        crc.update(&buffer[..n]);
        done += n as u64;
    }
    crc.finalize()
}

#[test]
#[ignore = "writes several GiB; run by hand on a release build"]
fn stored_copy_speed() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("big.mar");
    let data = noise(ENTRY, 9);
    let mut writer = zip::ZipWriter::new(File::create(&archive).unwrap());
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(true);
    writer.start_file("big.pt", options).unwrap();
    writer.write_all(&data).unwrap();
    writer.finish().unwrap();
    let crc32 = crc32fast::hash(&data);
    drop(data);

    let mut zip = zip::ZipArchive::new(File::open(&archive).unwrap()).unwrap();
    let offset = zip.by_index_raw(0).unwrap().data_start().unwrap();
    let source = File::open(&archive).unwrap();
    let out_path = work.path().join("out");
    let mut methods: Vec<(&str, Method)> = vec![
        (
            "zip reader, 1 MiB reads (chosen)",
            Box::new(|out: &mut File| zip_reader_copy(&archive, 0, out)),
        ),
        (
            "pread + crc32fast + write, 1 MiB",
            Box::new(|out: &mut File| {
                let mut buffer = vec![0u8; 1 << 20];
                let crc = pread_copy(&source, offset, ENTRY as u64, out, &mut buffer);
                assert_eq!(crc, crc32);
            }),
        ),
        (
            "pread + crc32fast + write, 8 MiB",
            Box::new(|out: &mut File| {
                let mut buffer = vec![0u8; 8 << 20];
                let crc = pread_copy(&source, offset, ENTRY as u64, out, &mut buffer);
                assert_eq!(crc, crc32);
            }),
        ),
        (
            "copy_file_range + pread crc32fast, 8 MiB",
            Box::new(|out: &mut File| {
                copy_file_range(&source, offset, ENTRY as u64, out);
                let mut buffer = vec![0u8; 8 << 20];
                assert_eq!(
                    crc_by_pread(&source, offset, ENTRY as u64, &mut buffer),
                    crc32
                );
            }),
        ),
        (
            "copy_file_range only (no CRC: the floor)",
            Box::new(|out: &mut File| copy_file_range(&source, offset, ENTRY as u64, out)),
        ),
    ];
    println!("{:<45} {:>8} {:>9} {:>8}", "method", "wall", "MB/s", "cpu");
    for (name, method) in methods.iter_mut() {
        let (mut best, mut cpu) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            let _ = fs::remove_file(&out_path);
            let mut out = File::create(&out_path).unwrap();
            let (started, cpu_started) = (Instant::now(), cpu_seconds());
            method(&mut out);
            out.sync_all().unwrap();
            best = best.min(started.elapsed().as_secs_f64());
            cpu = cpu.min(cpu_seconds() - cpu_started);
            assert_eq!(out.metadata().unwrap().len(), ENTRY as u64);
        }
        let rate = ENTRY as f64 / best / 1e6;
        println!("{name:<45} {best:6.2} s {rate:7.0} {cpu:6.2} s");
    }

    // The streaming path: 1 MiB blocks from memory through the feed, to
    // the synced directory (central directory check included).
    let blocks: Vec<Bytes> = fs::read(&archive)
        .unwrap()
        .chunks(1 << 20)
        .map(Bytes::copy_from_slice)
        .collect();
    let store = ModelStore::open(work.path()).unwrap();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let dir = store.create_temp_dir("big.mar").unwrap();
        let started = Instant::now();
        let (unpacker, mut feed) = stream_unpacker(Form::Zip, dir, Limits::NONE).unwrap();
        for block in &blocks {
            feed.block(block);
        }
        drop(feed);
        let (_dir, _, from) = unpacker.finish(&archive).unwrap();
        assert_eq!(from, UnpackedFrom::Stream);
        best = best.min(started.elapsed().as_secs_f64());
    }
    let rate = ENTRY as f64 / best / 1e6;
    println!(
        "{:<45} {best:6.2} s {rate:7.0}",
        "stream: zip reader over the feed"
    );
}
