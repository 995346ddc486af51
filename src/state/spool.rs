//! `spool/{run_id}`: runs whose records Log Analytics has not accepted yet. The entry
//! is an empty marker; the records stay in `runs/{run_id}.json`.

use crate::storage::{BlobStore, Condition, ErrorKind, PutOptions, StorageResult};

pub const SPOOL_PREFIX: &str = "spool/";

pub fn spool_name(run_id: &str) -> String {
    format!("{SPOOL_PREFIX}{run_id}")
}

/// The spooled run ids, oldest first (run ids sort by time).
pub async fn spooled_runs(state: &dyn BlobStore) -> StorageResult<Vec<String>> {
    let mut runs: Vec<String> = state
        .list(SPOOL_PREFIX)
        .await?
        .into_iter()
        .filter_map(|b| b.name.strip_prefix(SPOOL_PREFIX).map(str::to_string))
        .collect();
    runs.sort();
    Ok(runs)
}

pub async fn backlog(state: &dyn BlobStore) -> StorageResult<u64> {
    Ok(state.list(SPOOL_PREFIX).await?.len() as u64)
}

/// Remembers a run as waiting; already waiting is fine.
pub async fn spool(state: &dyn BlobStore, run_id: &str) -> StorageResult<()> {
    let put = state
        .put(
            &spool_name(run_id),
            bytes::Bytes::new(),
            PutOptions {
                condition: Condition::IfNoneMatch,
                ..Default::default()
            },
        )
        .await;
    match put {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn unspool(state: &dyn BlobStore, run_id: &str) -> StorageResult<()> {
    state.delete(&spool_name(run_id)).await
}
