//! Directory models: a folder of the store holding `MAR-INF/MANIFEST.json`
//! (what `torch-model-archiver --archive-format no-archive` writes, uploaded
//! as it is). Every file under the folder is its own Dragonfly task, fetched
//! with bounded concurrency (`download.file_concurrency`) and verified like
//! an archive (length, and the store's digest when it has one), into one
//! staged directory that is committed whole as the model's version
//! directory, where TorchServe registers it as it would an unpacked archive.
//!
//! A directory's version is all of its files' names, sizes and ETags: one
//! changed, added or removed file is a new version; an unchanged directory
//! is not fetched again.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use md5::{Digest as _, Md5};

use super::object;
use super::plan::Planned;
use super::prepare::Prepared;
use super::progress::{Phase, Progress};
use super::report::{DownloadReport, ModelReport};
use super::PullContext;
use crate::error::{CoreError, Result};
use crate::format::Limits;
use crate::model_store::{Replace, TempDir};
use crate::source::ObjectInfo;
use crate::transfer::dragonfly::ServedFrom;
use crate::transfer::Fetched;

/// The file that makes a folder a model, relative to the folder.
pub const MANIFEST: &str = "MAR-INF/MANIFEST.json";

/// One directory model as listed: its folder and every file under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryModel {
    /// The folder's whole key, ending in `/`.
    pub folder: String,
    /// Every file, sorted by key; folder markers (keys ending in `/`) left out.
    pub files: Vec<ObjectInfo>,
}

impl DirectoryModel {
    /// The model under `folder` among `objects` (a listing of at least the
    /// folder). Refused: a folder without the manifest, a file name that
    /// would land outside the directory, more files or bytes than an
    /// archive may unpack to.
    pub fn from_listing(folder: &str, objects: &[ObjectInfo], limits: Limits) -> Result<Self> {
        let mut files: Vec<ObjectInfo> = objects
            .iter()
            .filter(|o| o.key.starts_with(folder) && !o.key.ends_with('/'))
            .cloned()
            .collect();
        files.sort_by(|a, b| a.key.cmp(&b.key));
        let model = DirectoryModel {
            folder: folder.to_string(),
            files,
        };
        if !model.files.iter().any(|f| model.relative(f) == MANIFEST) {
            return Err(CoreError::NotFound(format!(
                "{folder} holds no {MANIFEST}: a directory model is a folder torch-model-archiver --archive-format no-archive wrote"
            )));
        }
        for file in &model.files {
            relative_path(model.relative(file))?;
        }
        let count = model.files.len() as u64;
        if count > limits.max_entries {
            return Err(CoreError::invalid(
                "model",
                format!(
                    "{folder} holds {count} files, more than {} (unpack.max_entries)",
                    limits.max_entries
                ),
            ));
        }
        if model.size() > limits.max_bytes {
            return Err(CoreError::invalid(
                "model",
                format!(
                    "{folder} holds {} bytes, more than {} (unpack.max_bytes)",
                    model.size(),
                    limits.max_bytes
                ),
            ));
        }
        Ok(model)
    }

    /// All files' bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The whole directory as one object: its folder, all files' bytes and
    /// its [`DirectoryModel::version`].
    pub fn info(&self) -> ObjectInfo {
        ObjectInfo {
            key: self.folder.clone(),
            size: self.size(),
            etag: Some(self.version()),
            digest: None,
        }
    }

    /// One tag for this version of the whole directory: every file's name,
    /// size and ETag (the ledger's `etag` of a directory model).
    pub fn version(&self) -> String {
        let mut hasher = Md5::new();
        for file in &self.files {
            hasher.update(self.relative(file).as_bytes());
            hasher.update([0]);
            hasher.update(file.size.to_le_bytes());
            hasher.update(file.etag.as_deref().unwrap_or("").as_bytes());
            hasher.update([0]);
        }
        let digest: String = hasher.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("dir-{digest}")
    }

    fn relative<'a>(&self, file: &'a ObjectInfo) -> &'a str {
        file.key.strip_prefix(&self.folder).unwrap_or(&file.key)
    }
}

/// A file's place under the model directory: plain segments only (no
/// `..`, `.`, empty segments or absolute paths). Object keys are free text,
/// so `a/../../x` is a key like any other and must not be followed.
fn relative_path(relative: &str) -> Result<PathBuf> {
    let path = Path::new(relative);
    let plain = !relative.is_empty()
        && !relative.contains("//")
        && !relative.contains('\\')
        && path.components().all(|c| matches!(c, Component::Normal(_)))
        && !relative.split('/').any(|s| s == "." || s.is_empty());
    if !plain {
        return Err(CoreError::invalid(
            "model",
            format!("the directory model's file {relative:?} would not land inside its directory"),
        ));
    }
    Ok(path.to_path_buf())
}

/// The folders under `prefix` that hold a model (the outermost, when one
/// model folder lies inside another; the prefix itself is not one).
pub fn model_folders(prefix: &str, objects: &[ObjectInfo]) -> Vec<String> {
    let suffix = format!("/{MANIFEST}");
    let mut folders: Vec<String> = objects
        .iter()
        .filter_map(|o| o.key.strip_suffix(suffix.as_str()))
        .map(|folder| format!("{folder}/"))
        .filter(|folder| folder.len() > prefix.len() && folder.starts_with(prefix))
        .collect();
    folders.sort();
    let mut outermost: Vec<String> = Vec::new();
    for folder in folders {
        if !outermost.iter().any(|o| folder.starts_with(o.as_str())) {
            outermost.push(folder);
        }
    }
    outermost
}

/// Finds the directory model's version directory (unchanged) or fetches
/// every file into a staged directory committed there whole. The
/// directory is announced to `tx` before it is committed, so a later
/// failure (or a crash) removes it.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    context: &PullContext,
    model: &DirectoryModel,
    item: &Planned,
    info: &ObjectInfo,
    unchanged: bool,
    progress: &Progress,
    tx: &mut Replace,
    report: &mut ModelReport,
) -> Result<Prepared> {
    let store = tx.store().clone();
    let target = store.unpacked_path(&item.file_name, info.size, info.etag.as_deref());
    progress.set_files(model.files.len());
    if unchanged {
        progress.set_bytes(info.size);
        let mut download = DownloadReport::unchanged(info.size);
        download.files = Some(model.files.len());
        report.download = Some(download);
        return Prepared::directory(target);
    }
    progress.set_phase(Phase::Downloading);
    let (dir, download) = fetch_all(context, model, &item.file_name, progress, tx).await?;
    report.download = Some(download);
    tx.will_commit_unpacked(&target)?;
    let committed_at = target.clone();
    tokio::task::spawn_blocking(move || dir.commit(&committed_at))
        .await
        .map_err(|e| CoreError::Internal(format!("commit task: {e}")))?
        .map_err(|e| store.write_error(&item.file_name, e))?;
    Prepared::directory(target)
}

/// Fetches every file of `model` into a staged directory of `tx`, at most
/// `download.file_concurrency` at a time. Any file failing fails the whole
/// directory (the staged directory is dropped with what it holds).
async fn fetch_all(
    context: &PullContext,
    model: &DirectoryModel,
    file_name: &str,
    progress: &Progress,
    tx: &Replace,
) -> Result<(TempDir, DownloadReport)> {
    let dir = tx.temp_dir()?;
    let mut parents = BTreeSet::new();
    for file in &model.files {
        let relative = relative_path(model.relative(file))?;
        if let Some(parent) = relative.parent() {
            parents.insert(parent.to_path_buf());
        }
    }
    for parent in parents {
        std::fs::create_dir_all(dir.path().join(parent))
            .map_err(|e| tx.store().write_error(file_name, e))?;
    }
    let started = Instant::now();
    // Futures made up front: a closure inside the stream would tie its
    // argument's lifetime in a way the spawned pull task cannot prove.
    let fetches: Vec<_> = model
        .files
        .iter()
        .map(|file| fetch_file(context, model, file, file_name, dir.path(), progress, tx))
        .collect();
    let fetched: Vec<Fetched> = stream::iter(fetches)
        .buffer_unordered(context.file_concurrency)
        .try_collect()
        .await?;
    let report = DownloadReport::directory(&fetched, started.elapsed().as_secs_f64());
    Ok((dir, report))
}

/// One file: stat (for its digest), staged beside the store's archives as
/// any download, then renamed into place under `dir`.
async fn fetch_file(
    context: &PullContext,
    model: &DirectoryModel,
    file: &ObjectInfo,
    file_name: &str,
    dir: &Path,
    progress: &Progress,
    tx: &Replace,
) -> Result<Fetched> {
    let relative = relative_path(model.relative(file))?;
    // A listing says nothing of checksums or encryption.
    let info = context.source.stat(&file.key).await?;
    if info.size != file.size || info.etag != file.etag {
        return Err(CoreError::Conflict(format!(
            "{} changed while the directory model was being pulled; pull it again",
            context.source.object_url(&file.key)
        )));
    }
    let received = progress.part();
    let (done, fetched) =
        object::fetch_staged(context, &file.key, &info, tx, file_name, &received, None).await?;
    received.store(info.size, Ordering::Relaxed);
    let place = dir.join(relative);
    let store = tx.store().clone();
    tokio::task::spawn_blocking(move || done.commit(&place))
        .await
        .map_err(|e| CoreError::Internal(format!("commit task: {e}")))?
        .map_err(|e| store.write_error(file_name, e))?;
    progress.file_done();
    Ok(fetched)
}

impl DownloadReport {
    /// The files of one directory model, as one download: bytes summed,
    /// attempts summed, `served_from` the farthest any file came from,
    /// `verified` the weakest check any file had.
    pub fn directory(fetched: &[Fetched], seconds: f64) -> Self {
        let bytes: u64 = fetched.iter().map(|f| f.bytes).sum();
        let farthest = |f: &Fetched| match f.served_from {
            ServedFrom::DragonflyCache => 0,
            ServedFrom::Dragonfly => 1,
            ServedFrom::Source => 2,
        };
        let served_from = fetched
            .iter()
            .max_by_key(|f| farthest(f))
            .map(|f| f.served_from);
        let verified = match fetched.iter().all(|f| f.verified.is_some()) {
            true => fetched
                .first()
                .and_then(|f| f.verified)
                .filter(|first| fetched.iter().all(|f| f.verified == Some(*first)))
                .map(|a| a.name())
                .unwrap_or("digest"),
            false => "length",
        };
        DownloadReport {
            action: "downloaded",
            bytes,
            seconds,
            bytes_per_second: (bytes as f64 / seconds.max(1e-9)) as u64,
            served_from,
            task_id: None,
            attempts: fetched.iter().map(|f| f.attempts).sum(),
            hard_linked: !fetched.is_empty() && fetched.iter().all(|f| f.hard_linked),
            verified: Some(verified),
            files: Some(fetched.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, size: u64, etag: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size,
            etag: Some(etag.into()),
            digest: None,
        }
    }

    fn listing() -> Vec<ObjectInfo> {
        vec![
            object("m/bert/MAR-INF/MANIFEST.json", 10, "a"),
            object("m/bert/w-1.bin", 100, "b"),
            object("m/bert/", 0, "dir"),
            object("m/bert/code/h.py", 5, "c"),
            object("m/bertx/w.bin", 7, "d"),
        ]
    }

    #[test]
    fn a_folder_with_the_manifest_is_a_model_of_its_files_only() {
        let model = DirectoryModel::from_listing("m/bert/", &listing(), Limits::NONE).unwrap();
        let keys: Vec<&str> = model.files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "m/bert/MAR-INF/MANIFEST.json",
                "m/bert/code/h.py",
                "m/bert/w-1.bin"
            ]
        );
        assert_eq!(model.size(), 115);
        let err = DirectoryModel::from_listing("m/bertx/", &listing(), Limits::NONE).unwrap_err();
        assert_eq!(err.status(), 404, "{err}");
    }

    #[test]
    fn any_changed_added_or_removed_file_is_a_new_version() {
        let version = |objects: &[ObjectInfo]| {
            DirectoryModel::from_listing("m/bert/", objects, Limits::NONE)
                .unwrap()
                .version()
        };
        let base = version(&listing());
        assert_eq!(base, version(&listing()));
        let mut changed = listing();
        changed[1].etag = Some("b2".into());
        let mut grown = listing();
        grown[1].size = 101;
        let mut added = listing();
        added.push(object("m/bert/w-2.bin", 1, "e"));
        let mut removed = listing();
        removed.remove(3);
        let mut renamed = listing();
        renamed[1].key = "m/bert/w-9.bin".into();
        for other in [changed, grown, added, removed, renamed] {
            assert_ne!(base, version(&other));
        }
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        for bad in [
            "m/bert/../x",
            "m/bert/a/../../x",
            "m/bert/a//b",
            "m/bert/./a",
            "m/bert/a\\b",
        ] {
            let mut objects = listing();
            objects.push(object(bad, 1, "x"));
            let err = DirectoryModel::from_listing("m/bert/", &objects, Limits::NONE).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}: {err}");
        }
    }

    #[test]
    fn more_files_or_bytes_than_an_archive_may_unpack_to_are_refused() {
        let limits = |max_bytes, max_entries| Limits {
            max_bytes,
            max_entries,
        };
        assert!(DirectoryModel::from_listing("m/bert/", &listing(), limits(115, 3)).is_ok());
        for (bound, needle) in [
            (limits(114, 3), "max_bytes"),
            (limits(115, 2), "max_entries"),
        ] {
            let err = DirectoryModel::from_listing("m/bert/", &listing(), bound).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
