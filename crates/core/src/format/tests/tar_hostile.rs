//! Hostile or broken tar.gz archives: every one is refused on both paths
//! as `UnpackError::Invalid` (a 400), and nothing is left behind, neither
//! in the store nor beside it.

use ::tar::EntryType;

use super::*;

fn manifest() -> RawTar {
    RawTar::default().file("m/MAR-INF/MANIFEST.json", b"{}")
}

#[test]
fn names_outside_the_directory_are_refused() {
    for (name, needle) in [
        ("/etc/escaped", "absolute"),
        ("../escaped", "outside"),
        ("m/../../escaped", "outside"),
        ("m/a/../../../escaped", "outside"),
    ] {
        let bed = Bed::new("m.tgz", &manifest().file(name, b"x").tgz());
        assert_refused(&bed, needle);
    }
}

#[test]
fn links_out_of_the_directory_are_refused() {
    for (kind, link, needle) in [
        (EntryType::Symlink, "../../escaped", "outside"),
        (EntryType::Symlink, "/etc/passwd", "outside"),
        (EntryType::Symlink, "..", "outside"),
        (EntryType::Link, "../etc/passwd", "outside"),
        (EntryType::Link, "/etc/passwd", "absolute"),
        // Not a file of the archive (yet): a hard link names an earlier one.
        (EntryType::Link, "m/later", "earlier"),
        (EntryType::Symlink, "missing", "does not point to a file"),
    ] {
        let bytes = manifest()
            .entry("m/link", kind, link, b"")
            .file("m/later", b"x")
            .tgz();
        let bed = Bed::new("m.tgz", &bytes);
        assert_refused(&bed, needle);
    }
}

#[test]
fn nothing_is_written_through_a_symbolic_link() {
    // A link to a directory, then a file "inside" it: no symbolic link is
    // ever made, so the file lands in a real directory and the link, which
    // would point at a directory, is refused.
    let bytes = manifest()
        .entry("m/sub/", EntryType::Directory, "", b"")
        .entry("m/d", EntryType::Symlink, "sub", b"")
        .file("m/d/x", b"x")
        .tgz();
    assert_refused(&Bed::new("m.tgz", &bytes), "\"d\"");
    // A link chain that loops.
    let bytes = manifest()
        .entry("m/a", EntryType::Symlink, "b", b"")
        .entry("m/b", EntryType::Symlink, "a", b"")
        .tgz();
    assert_refused(&Bed::new("m.tgz", &bytes), "does not point to a file");
}

#[test]
fn devices_fifos_and_unknown_kinds_are_refused() {
    for kind in [
        EntryType::Char,
        EntryType::Block,
        EntryType::Fifo,
        EntryType::new(b'V'),
    ] {
        let bytes = manifest().entry("m/dev", kind, "", b"").tgz();
        assert_refused(
            &Bed::new("m.tgz", &bytes),
            "only files, directories and links",
        );
    }
}

#[test]
fn truncated_or_corrupt_streams_are_refused() {
    let good = manifest().file("m/w.pt", &noise(200_000, 2)).tgz();
    let cut = &good[..good.len() * 3 / 5];
    assert_refused(&Bed::new("m.tgz", cut), "");

    // The gzip trailer: CRC-32 of the data, then its length.
    let mut bad_crc = good.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0x01;
    assert_refused(&Bed::new("m.tgz", &bad_crc), "corrupt");
    let mut bad_len = good.clone();
    let at = bad_len.len() - 1;
    bad_len[at] ^= 0x01;
    assert_refused(&Bed::new("m.tgz", &bad_len), "corrupt");

    // Compressed noise: a flipped byte in the middle.
    let mut flipped = good.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    assert_refused(&Bed::new("m.tgz", &flipped), "");
}

#[test]
fn a_tar_cut_at_an_entry_boundary_is_refused() {
    // A valid gzip around a tar missing its end-of-archive marker.
    let tar = manifest().file("m/w.pt", b"weights").0;
    assert_refused(&Bed::new("m.tgz", &gzip(&tar)), "end-of-archive");
    let mut one_block = tar.clone();
    one_block.resize(tar.len() + 512, 0);
    assert_refused(&Bed::new("m.tgz", &gzip(&one_block)), "end-of-archive");
    let mut trailing = tar.clone();
    trailing.resize(tar.len() + 1024, 0);
    trailing.extend_from_slice(b"more");
    assert_refused(&Bed::new("m.tgz", &gzip(&trailing)), "after its end");
}

#[test]
fn oversized_headers_are_refused_without_holding_them() {
    // A PAX record of 2 MiB before the entry it describes: the reader
    // would hold all of it in memory.
    let value = "a".repeat(2 << 20);
    let record = format!("{} comment={value}\n", value.len() + 11 + 7);
    let bytes = RawTar::default()
        .entry(
            "m/PaxHeaders/w.pt",
            EntryType::XHeader,
            "",
            record.as_bytes(),
        )
        .file("m/w.pt", b"x")
        .tgz();
    assert_refused(&Bed::new("m.tgz", &bytes), "tar headers");
}
