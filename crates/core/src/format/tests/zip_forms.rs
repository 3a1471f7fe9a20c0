//! The zip forms beyond a small deflated `.mar`, built by Python's zipfile
//! as torch-model-archiver builds them: `zip-store` (stored entries,
//! copied without an inflater, CRC-32 checked), zip64 entries (forced,
//! as for an entry over 4 GiB) and zip64 archives of more than 65535
//! entries; streamed and from the file.

use super::*;

/// Writes `argv[1]`: `w.pt` from `argv[2]`, a handler and a manifest,
/// with the compression `argv[3]` (`stored` / `deflated`); `argv[4]`
/// `zip64` forces zip64 headers on `w.pt`.
const ARCHIVE: &str = r#"
import sys, zipfile
method = zipfile.ZIP_STORED if sys.argv[3] == "stored" else zipfile.ZIP_DEFLATED
with zipfile.ZipFile(sys.argv[1], "w", method) as z:
    with open(sys.argv[2], "rb") as src, z.open("w.pt", "w", force_zip64=sys.argv[4] == "zip64") as dst:
        dst.write(src.read())
    z.writestr("code/h.py", "def handle(data, ctx):\n    return data\n")
    z.writestr("MAR-INF/MANIFEST.json", '{"model": {}}')
"#;

fn archive(compression: &str, zip64: &str) -> (Bed, Vec<(String, Vec<u8>)>) {
    let work = tempfile::tempdir().unwrap();
    let weights = noise(5 << 20, 3);
    let (w, out) = (work.path().join("w"), work.path().join("m.mar"));
    fs::write(&w, &weights).unwrap();
    python(
        ARCHIVE,
        &[&out, &w, Path::new(compression), Path::new(zip64)],
    );
    let expected = vec![
        (
            "MAR-INF/MANIFEST.json".to_string(),
            br#"{"model": {}}"#.to_vec(),
        ),
        (
            "code/h.py".to_string(),
            b"def handle(data, ctx):\n    return data\n".to_vec(),
        ),
        ("w.pt".to_string(), weights),
    ];
    (Bed::new("m.mar", &fs::read(out).unwrap()), expected)
}

/// The zip64 extended information extra field (id 0x0001, then its size)
/// of a local header holding both sizes.
fn has_zip64_local_header(bytes: &[u8]) -> bool {
    bytes
        .windows(4)
        .any(|w| w == [0x01, 0x00, 0x10, 0x00] || w == [0x01, 0x00, 0x18, 0x00])
}

#[test]
fn zip_store_streams_and_copies_from_the_file() {
    let (bed, expected) = archive("stored", "no");
    let (dir, stats, from) = bed.stream(1 << 20).unwrap();
    assert_eq!(from, UnpackedFrom::Stream);
    assert_eq!(stats.files, 3);
    assert_eq!(tree(dir.path()), expected);
    let (dir, stats) = bed.unpack_file().unwrap();
    assert_eq!(stats.files, 3);
    assert_eq!(tree(dir.path()), expected);
}

#[test]
fn a_flipped_byte_in_a_stored_entry_is_refused() {
    let (bed, _) = archive("stored", "no");
    let mut bytes = fs::read(&bed.archive).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    fs::write(&bed.archive, &bytes).unwrap();
    match bed.unpack_file() {
        Err(UnpackError::Invalid(m)) => assert!(m.contains("\"w.pt\": Invalid checksum"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_refused(&bed, "w.pt");
}

#[test]
fn forced_zip64_entries_stream_and_unpack_from_the_file() {
    for compression in ["stored", "deflated"] {
        let (bed, expected) = archive(compression, "zip64");
        assert!(has_zip64_local_header(&fs::read(&bed.archive).unwrap()));
        let (dir, _, from) = bed.stream(1 << 20).unwrap();
        assert_eq!(from, UnpackedFrom::Stream, "{compression}");
        assert_eq!(tree(dir.path()), expected, "{compression}");
        let (dir, _) = bed.unpack_file().unwrap();
        assert_eq!(tree(dir.path()), expected, "{compression}");
    }
}

#[test]
fn more_than_65535_entries_stream_and_unpack_from_the_file() {
    const ENTRIES: usize = 65_537;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("many.mar");
    python(
        &format!(
            r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z:
    z.writestr("MAR-INF/MANIFEST.json", "{{}}")
    for i in range({}):
        z.writestr(f"shards/{{i // 1000:02}}/{{i:05}}", str(i))
"#,
            ENTRIES - 1
        ),
        &[&out],
    );
    let bytes = fs::read(&out).unwrap();
    // The zip64 end of central directory record: the count needs it.
    assert!(bytes.windows(4).any(|w| w == b"PK\x06\x06"));
    let bed = Bed::in_memory("many.mar", &bytes);
    let check = |dir: &Path| {
        assert_eq!(fs::read(dir.join("shards/65/65535")).unwrap(), b"65535");
        assert_eq!(fs::read(dir.join("shards/00/00000")).unwrap(), b"0");
    };
    let (dir, stats, from) = bed.stream(1 << 20).unwrap();
    assert_eq!(from, UnpackedFrom::Stream);
    assert_eq!(stats.files, ENTRIES);
    check(dir.path());
    drop(dir);
    let (dir, stats) = bed.unpack_file().unwrap();
    assert_eq!(stats.files, ENTRIES);
    check(dir.path());
}
