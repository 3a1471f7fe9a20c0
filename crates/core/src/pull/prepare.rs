//! Turns the archive in the store into what TorchServe is given to
//! register: the archive itself (`register_as: mar`), or its unpacked
//! directory, finished from the stream, unpacked from the file, or found
//! from an earlier pull of the same version. The archive's form (zip or
//! tar.gz) comes from its file name.

use std::path::PathBuf;
use std::time::Instant;

use super::plan::Planned;
use super::report::{ModelReport, UnpackReport};
use super::PullContext;
use crate::error::{CoreError, Result};
use crate::format::{self, count_files, Form, StreamUnpacker, UnpackError, UnpackedFrom};
use crate::model_store::Replace;
use crate::source::ObjectInfo;

/// What TorchServe is asked to register.
pub struct Prepared {
    /// A file name of the model store, or an absolute directory path.
    pub url: String,
    /// The unpacked directory in use, new or cached.
    pub dir: Option<PathBuf>,
}

impl Prepared {
    pub fn archive(item: &Planned) -> Self {
        Prepared {
            url: item.file_name.clone(),
            dir: None,
        }
    }

    /// The directory at `dir` (an absolute path of the model store), as
    /// TorchServe is given it.
    pub fn directory(dir: PathBuf) -> Result<Self> {
        let url = dir
            .to_str()
            .ok_or_else(|| CoreError::Internal(format!("{} is not UTF-8", dir.display())))?
            .to_string();
        Ok(Prepared {
            url,
            dir: Some(dir),
        })
    }
}

/// Finishes (or finds) the unpacked directory of this archive version. A
/// directory this pull creates is announced to `tx` first, so a later
/// failure (or a crash) removes it.
pub async fn directory(
    context: &PullContext,
    item: &Planned,
    info: &ObjectInfo,
    unchanged: bool,
    unpacker: Option<StreamUnpacker>,
    tx: &mut Replace,
    report: &mut ModelReport,
) -> Result<Prepared> {
    let store = tx.store().clone();
    let target = store.unpacked_path(&item.file_name, info.size, info.etag.as_deref());
    if unchanged && target.is_dir() {
        drop(unpacker);
        let stats = count_files(&target);
        report.unpacked = Some(UnpackReport {
            from: UnpackedFrom::Cache,
            files: stats.files,
            bytes: stats.bytes,
            seconds: 0.0,
        });
        return Prepared::directory(target);
    }

    let started = Instant::now();
    let archive = store.archive_path(&item.file_name);
    // Without a stream, unpack the file into a directory made here, where a
    // full disk is still a 507.
    let fresh_dir = match unpacker {
        Some(_) => None,
        None => Some(tx.temp_dir()?),
    };
    let committed_at = target.clone();
    let form = form_of(item)?;
    let limits = context.unpack;
    tx.will_commit_unpacked(&target)?;
    let outcome = tokio::task::spawn_blocking(move || {
        let (dir, stats, from) = match (unpacker, fresh_dir) {
            (Some(stream), _) => stream.finish(&archive)?,
            (None, Some(dir)) => {
                let stats = format::unpack_file(form, &archive, &dir, limits)?;
                (dir, stats, UnpackedFrom::File)
            }
            (None, None) => return Err(UnpackError::Invalid("no unpacking directory".into())),
        };
        dir.commit(&committed_at)?;
        Ok::<_, UnpackError>((stats, from))
    })
    .await
    .map_err(|e| CoreError::Internal(format!("unpack task: {e}")))?;

    match outcome {
        Ok((stats, from)) => {
            report.unpacked = Some(UnpackReport {
                from,
                files: stats.files,
                bytes: stats.bytes,
                seconds: started.elapsed().as_secs_f64(),
            });
            Prepared::directory(target)
        }
        Err(UnpackError::WrongForm(form)) => {
            tracing::info!(
                "{} is not a {form} archive; TorchServe gets the file as it is",
                item.file_name
            );
            Ok(Prepared::archive(item))
        }
        Err(UnpackError::Invalid(reason)) => Err(CoreError::InvalidArchive {
            object: context.source.object_url(&item.key),
            reason,
        }),
        Err(UnpackError::Io(e)) => Err(store.write_error(&item.file_name, e)),
    }
}

/// Starts unpacking the download as it streams in, into a staged directory.
pub fn stream_unpacker(
    context: &PullContext,
    tx: &Replace,
    item: &Planned,
) -> Result<(StreamUnpacker, Box<dyn crate::transfer::writer::BlockTap>)> {
    let dir = tx.temp_dir()?;
    let (stream, feed) = format::stream_unpacker(form_of(item)?, dir, context.unpack)
        .map_err(|e| CoreError::io("starting the unpacking thread", e))?;
    Ok((stream, Box::new(feed)))
}

/// The plan only admits names of a known form.
fn form_of(item: &Planned) -> Result<Form> {
    Form::of(&item.file_name)
        .ok_or_else(|| CoreError::Internal(format!("{} has no archive form", item.file_name)))
}
