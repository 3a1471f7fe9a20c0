//! One object of the store downloaded through the fetcher into a staged
//! file of the model store's transaction: the presign closure (each
//! attempt signs again), the destination (and the name the peer may
//! hard-link its finished task to). Archives and the files of a directory
//! model both come this way; the caller commits the file where it belongs.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::PullContext;
use crate::error::Result;
use crate::hooks;
use crate::model_store::{Replace, TempFile};
use crate::source::ObjectInfo;
use crate::transfer::writer::{BlockTap, WriteTarget};
use crate::transfer::{Destination, FetchTarget, Fetched, Presign};

/// Downloads `key` (as `info` describes it) into a new staged file of `tx`,
/// counting bytes into `received` and handing each block to `tap`.
pub async fn fetch_staged(
    context: &PullContext,
    key: &str,
    info: &ObjectInfo,
    tx: &Replace,
    file_name: &str,
    received: &AtomicU64,
    tap: Option<Box<dyn BlockTap>>,
) -> Result<(TempFile, Fetched)> {
    let (source, owned_key) = (context.source.clone(), key.to_string());
    let presign: Presign = Arc::new(move || {
        let (source, key) = (source.clone(), owned_key.clone());
        Box::pin(async move { source.presign(&key).await })
    });
    let target = FetchTarget {
        object: context.source.object_url(key),
        presign,
        size: info.size,
        digest: info.digest.clone(),
        version: info.etag.clone(),
    };
    let store = tx.store().clone();
    let mut staged = tx.stage(context.fetcher.wants_link())?;
    hooks::point("pull.staged");
    let file = staged
        .file
        .file()
        .and_then(|f| f.try_clone())
        .map_err(|e| store.write_error(file_name, e))?;
    let dest = Destination {
        file: WriteTarget {
            file,
            dir: store.dir().to_path_buf(),
            name: file_name.to_string(),
        },
        link: staged.link.as_ref().map(TempFile::path),
    };
    let fetched = context.fetcher.fetch(&target, dest, received, tap).await?;
    Ok((staged.into_result(fetched.hard_linked), fetched))
}
