//! Good tar.gz archives: the layout `torch-model-archiver --archive-format
//! tgz` writes (PAX headers, one top-level folder), links that stay inside,
//! GNU long names, several gzip members; streamed and from the file.

use ::tar::EntryType;

use super::*;

/// As torch-model-archiver writes it: Python's tarfile, PAX format, every
/// name under the model's folder, no directory entries.
const ARCHIVER_TGZ: &str = r#"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    for name, path in [("m/w.pt", sys.argv[2]), ("m/h.py", sys.argv[3])]:
        t.add(path, arcname=name)
    for name, data in [("m/code/util.py", b"X = 1\n"), ("m/MAR-INF/MANIFEST.json", b'{"model": {}}')]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
"#;

fn archiver_tgz(work: &Path) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let weights = noise(3 << 20, 1);
    let handler = b"def handle(data, ctx):\n    return data\n".to_vec();
    let (w, h, out) = (work.join("w"), work.join("h"), work.join("m.tar.gz"));
    fs::write(&w, &weights).unwrap();
    fs::write(&h, &handler).unwrap();
    python(ARCHIVER_TGZ, &[&out, &w, &h]);
    let expected = vec![
        (
            "MAR-INF/MANIFEST.json".to_string(),
            br#"{"model": {}}"#.to_vec(),
        ),
        ("code/util.py".to_string(), b"X = 1\n".to_vec()),
        ("h.py".to_string(), handler),
        ("w.pt".to_string(), weights),
    ];
    (fs::read(out).unwrap(), expected)
}

#[test]
fn the_archivers_layout_streams_and_unpacks_from_the_file() {
    let work = tempfile::tempdir().unwrap();
    let (bytes, expected) = archiver_tgz(work.path());
    for file_name in ["m.tar.gz", "m.tgz"] {
        let bed = Bed::new(file_name, &bytes);
        let (dir, stats, from) = bed.stream(64 << 10).unwrap();
        assert_eq!(from, UnpackedFrom::Stream);
        assert_eq!(stats.files, 4);
        let total: usize = expected.iter().map(|(_, d)| d.len()).sum();
        assert_eq!(stats.bytes, total as u64);
        assert_eq!(tree(dir.path()), expected);

        let (dir, stats) = bed.unpack_file().unwrap();
        assert_eq!(stats.files, 4);
        assert_eq!(tree(dir.path()), expected);
    }
}

#[test]
fn a_restarted_or_unstreamed_download_unpacks_the_file() {
    let work = tempfile::tempdir().unwrap();
    let (bytes, expected) = archiver_tgz(work.path());
    let bed = Bed::new("m.tgz", &bytes);

    let (unpacker, mut feed) = stream_unpacker(Form::TarGz, bed.dir(), Limits::NONE).unwrap();
    feed.block(&Bytes::copy_from_slice(&bytes[..bytes.len() / 2]));
    feed.restart();
    feed.block(&Bytes::copy_from_slice(&bytes));
    drop(feed);
    let (dir, _, from) = unpacker.finish(&bed.archive).unwrap();
    assert_eq!(from, UnpackedFrom::File);
    assert_eq!(tree(dir.path()), expected);

    let (unpacker, feed) = stream_unpacker(Form::TarGz, bed.dir(), Limits::NONE).unwrap();
    drop(feed);
    let (dir, _, from) = unpacker.finish(&bed.archive).unwrap();
    assert_eq!(from, UnpackedFrom::File);
    assert_eq!(tree(dir.path()), expected);
}

#[test]
fn links_inside_the_directory_become_regular_files() {
    let bytes = RawTar::default()
        .entry("m/", EntryType::Directory, "", b"")
        .file("m/a.bin", b"weights")
        .entry("m/b.bin", EntryType::Link, "m/a.bin", b"")
        .entry("m/sub/c.bin", EntryType::Symlink, "../a.bin", b"")
        // A chain, and a target that comes later in the archive.
        .entry("m/d.bin", EntryType::Symlink, "sub/c.bin", b"")
        .entry("m/e.bin", EntryType::Symlink, "./late.bin", b"")
        .file("m/late.bin", b"late")
        .tgz();
    let bed = Bed::new("m.tgz", &bytes);
    let expected: Vec<(String, Vec<u8>)> = [
        ("a.bin", &b"weights"[..]),
        ("b.bin", b"weights"),
        ("d.bin", b"weights"),
        ("e.bin", b"late"),
        ("late.bin", b"late"),
        ("sub/c.bin", b"weights"),
    ]
    .iter()
    .map(|(n, d)| (n.to_string(), d.to_vec()))
    .collect();
    let (dir, stats, from) = bed.stream(100).unwrap();
    assert_eq!(from, UnpackedFrom::Stream);
    assert_eq!(stats.files, 6);
    assert_eq!(tree(dir.path()), expected);
    let (dir, _) = bed.unpack_file().unwrap();
    assert_eq!(tree(dir.path()), expected);
}

#[test]
fn a_later_entry_replaces_an_earlier_one_without_writing_through_a_link() {
    let bytes = RawTar::default()
        .file("m/a", b"one")
        .entry("m/b", EntryType::Link, "m/a", b"")
        .file("m/a", b"two")
        .tgz();
    let bed = Bed::new("m.tgz", &bytes);
    let (dir, _, _) = bed.stream(512).unwrap();
    assert_eq!(
        tree(dir.path()),
        vec![("a".into(), b"two".to_vec()), ("b".into(), b"one".to_vec())]
    );
}

#[test]
fn long_names_and_several_gzip_members() {
    let long = format!("m/{}/weights.bin", "deep".repeat(40));
    let mut builder = ::tar::Builder::new(Vec::new());
    let mut header = ::tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, &long, &b"hello"[..])
        .unwrap();
    builder.finish().unwrap();
    let plain = builder.into_inner().unwrap();
    // pigz and concatenated parts give one gzip member after another.
    let mut bytes = gzip(&plain[..700]);
    bytes.extend(gzip(&plain[700..]));
    let bed = Bed::new("m.tar.gz", &bytes);
    let (dir, _, from) = bed.stream(333).unwrap();
    assert_eq!(from, UnpackedFrom::Stream);
    let name = long.strip_prefix("m/").unwrap().to_string();
    assert_eq!(tree(dir.path()), vec![(name, b"hello".to_vec())]);
}

#[test]
fn not_gzip_is_left_to_torchserve() {
    let bed = Bed::new("m.tgz", b"an uncompressed tar, or anything else");
    assert!(matches!(
        bed.unpack_file(),
        Err(UnpackError::WrongForm(Form::TarGz))
    ));
    assert!(matches!(
        bed.stream(10),
        Err(UnpackError::WrongForm(Form::TarGz))
    ));
    bed.assert_nothing_left();
}
