//! The `unpack` bounds: an archive that would unpack to more bytes or
//! entries than allowed, or lies about an entry's size, is refused on both paths (streamed and from the file) with nothing
//! left behind; one just within the bounds unpacks.

use super::*;

/// 64 MiB of zeros deflates to ~64 KiB: a small bomb.
const BOMB_BYTES: usize = 64 << 20;

fn limits(max_bytes: u64, max_entries: u64) -> Limits {
    Limits {
        max_bytes,
        max_entries,
    }
}

/// A zip built by Python's zipfile from `argv[2..]` pairs of (name, size of
/// zeros), written to `argv[1]`; zipfile warns about, but writes, a name
/// given twice.
const ZEROS_ZIP: &str = r#"
import sys, zipfile, warnings
warnings.simplefilter("ignore")
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    args = sys.argv[2:]
    for name, size in zip(args[::2], args[1::2]):
        z.writestr(name, b"\0" * int(size))
"#;

fn zeros_zip(entries: &[(&str, usize)]) -> Vec<u8> {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("m.mar");
    let mut args: Vec<PathBuf> = vec![out.clone()];
    for (name, size) in entries {
        args.push(PathBuf::from(name));
        args.push(PathBuf::from(size.to_string()));
    }
    let refs: Vec<&Path> = args.iter().map(PathBuf::as_path).collect();
    python(ZEROS_ZIP, &refs);
    fs::read(out).unwrap()
}

#[test]
fn a_deflate_bomb_is_refused_at_max_bytes() {
    let zip = zeros_zip(&[("MAR-INF/MANIFEST.json", 2), ("w.pt", BOMB_BYTES)]);
    assert!(zip.len() < 1 << 20, "the bomb is small: {}", zip.len());
    let bed = Bed::new("m.mar", &zip).with_limits(limits(1 << 20, 100));
    assert_refused(&bed, "unpack.max_bytes");

    let tgz = RawTar::default()
        .file("m/MAR-INF/MANIFEST.json", b"{}")
        .file("m/w.pt", &vec![0u8; BOMB_BYTES])
        .tgz();
    let bed = Bed::new("m.tgz", &tgz).with_limits(limits(1 << 20, 100));
    assert_refused(&bed, "unpack.max_bytes");
}

#[test]
fn within_the_bounds_it_unpacks() {
    let zip = zeros_zip(&[("MAR-INF/MANIFEST.json", 2), ("w.pt", 1000)]);
    // 1002 bytes and 2 entries: exactly the bounds.
    let bed = Bed::new("m.mar", &zip).with_limits(limits(1002, 2));
    let (dir, stats, _) = bed.stream(1000).unwrap();
    assert_eq!((stats.files, stats.bytes), (2, 1002));
    drop(dir);
    let (_, stats) = bed.unpack_file().unwrap();
    assert_eq!((stats.files, stats.bytes), (2, 1002));
}

#[test]
fn too_many_entries_are_refused_at_max_entries() {
    let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    let mut entries: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    entries.push(("MAR-INF/MANIFEST.json", 2));
    let bed = Bed::new("m.mar", &zeros_zip(&entries)).with_limits(limits(1 << 20, 10));
    assert_refused(&bed, "unpack.max_entries");

    let mut tar = RawTar::default().file("m/MAR-INF/MANIFEST.json", b"{}");
    for name in &names {
        tar = tar.file(&format!("m/{name}"), b"x");
    }
    let bed = Bed::new("m.tgz", &tar.tgz()).with_limits(limits(1 << 20, 10));
    assert_refused(&bed, "unpack.max_entries");
}

#[test]
fn a_name_given_twice_gives_one_file_whichever_path_unpacks_it() {
    // zipfile writes both; the central directory (what the file path and
    // the check of the streamed entries read) indexes the name once, so
    // the stream falls back to the file and both paths agree.
    let zip = zeros_zip(&[("MAR-INF/MANIFEST.json", 2), ("w.pt", 10), ("w.pt", 20)]);
    let bed = Bed::new("m.mar", &zip);
    let (streamed, _, from) = bed.stream(1000).unwrap();
    assert_eq!(from, UnpackedFrom::File);
    let (unpacked, _) = bed.unpack_file().unwrap();
    let tree_of = |dir: &TempDir| tree(dir.path());
    assert_eq!(tree_of(&streamed), tree_of(&unpacked));
    assert_eq!(tree_of(&unpacked).len(), 2);
}

#[test]
fn a_zip_entry_larger_than_it_declares_is_refused() {
    // Patch the sizes of `w.pt` in its local header and in the central
    // directory to 1: a lie the bound must not trust.
    let mut zip = zeros_zip(&[("MAR-INF/MANIFEST.json", 2), ("w.pt", 1 << 20)]);
    let size = (1u32 << 20).to_le_bytes();
    let mut patched = 0;
    for at in 0..zip.len() - 4 {
        if zip[at..at + 4] == size {
            zip[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "the local header and the central directory");
    assert_refused(&Bed::new("m.mar", &zip), "declared");
}
