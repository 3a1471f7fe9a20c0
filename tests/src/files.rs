//! What a test finds on disk: the entries of a directory, every file under
//! one, and the checks that no partial file or secret was left behind.

use std::path::{Path, PathBuf};

/// Every entry of a directory, hidden ones included.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What a model store holds for TorchServe: its entries without the
/// plugin's own state directory (`.dragonfly-endpoint`: ledger, locks,
/// unpacked copies), which a pull creates even when it fails, since the
/// archive's lock lives there. A journal left in it (a transaction that was
/// neither finished nor undone) fails the check.
pub fn store_entries(store: &Path) -> Vec<String> {
    let journal = store.join(".dragonfly-endpoint/journal");
    assert!(
        entries(&journal).is_empty(),
        "interrupted transactions in {}: {:?}",
        journal.display(),
        entries(&journal)
    );
    entries(store)
        .into_iter()
        .filter(|n| n != ".dragonfly-endpoint")
        .collect()
}

/// Waits (at most 30 s) until `done` holds: files the plugin removes in
/// the background (discarded versions) go a moment after the answer.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "waited 30 s: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// No temp or backup file of the plugin in the model store.
pub fn assert_no_partial_files(store: &Path) {
    for name in entries(store) {
        assert!(
            !name.contains(".dfpart-")
                && !name.contains(".dfprev-")
                && !name.contains(".dfrecord-"),
            "partial file left in the model store: {name}"
        );
    }
}

/// Scans every file under `dirs` for the secrets.
pub fn assert_no_secrets(dirs: &[&Path], secrets: &[&str], extra_text: &[&str]) {
    for text in extra_text {
        for secret in secrets {
            assert!(!text.contains(secret), "secret leaked in a response");
        }
    }
    for dir in dirs {
        for entry in walk(dir) {
            let Ok(bytes) = std::fs::read(&entry) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "secret leaked in {}",
                    entry.display()
                );
            }
        }
    }
}

/// Every file under `dir`, recursively (directories themselves left out).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for entry in rd.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}
