//! `spool/{run_id}`: runs whose records Log Analytics has not accepted yet. The entry
//! is an empty marker; the records stay in `runs/{run_id}.json`.

use futures::TryStreamExt;

use crate::storage::{BlobStore, BlobStoreExt, Condition, ErrorKind, PutOptions, StorageResult};

pub const SPOOL_PREFIX: &str = "spool/";

pub fn spool_name(run_id: &str) -> String {
    format!("{SPOOL_PREFIX}{run_id}")
}

/// The spooled run ids, oldest first (run ids sort by time).
pub async fn spooled_runs(state: &dyn BlobStore) -> StorageResult<Vec<String>> {
    let mut runs: Vec<String> = state
        .list(SPOOL_PREFIX)
        .try_filter_map(|b| async move { Ok(b.name.strip_prefix(SPOOL_PREFIX).map(str::to_string)) })
        .try_collect()
        .await?;
    runs.sort();
    Ok(runs)
}

pub async fn backlog(state: &dyn BlobStore) -> StorageResult<u64> {
    state.count(SPOOL_PREFIX).await
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

/// `spool-dead/{run_id}.json`: a run whose records Log Analytics refused for good (or
/// that cannot be read), with the reason. It never blocks the runs after it; the
/// records stay in `runs/` for a person to look at and resend.
pub const DEAD_PREFIX: &str = "spool-dead/";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct DeadLetter {
    pub run_id: String,
    pub reason: String,
    /// What to do about it.
    pub message: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

pub fn dead_name(run_id: &str) -> String {
    format!("{DEAD_PREFIX}{run_id}.json")
}

/// Moves a run from the spool to `spool-dead/`.
pub async fn bury(state: &dyn BlobStore, letter: &DeadLetter) -> StorageResult<()> {
    super::put_json(state, &dead_name(&letter.run_id), letter, Condition::None, None).await?;
    unspool(state, &letter.run_id).await
}

pub async fn dead_letters(state: &dyn BlobStore) -> StorageResult<u64> {
    state.count(DEAD_PREFIX).await
}
