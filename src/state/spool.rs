//! `spool/{run_id}`: runs whose records Log Analytics has not accepted yet. The records
//! stay in `runs/{run_id}.json`; the entry says which of them a send that stopped part-way
//! got through ([`SpoolEntry`]), so a retry sends only the rest. An empty entry (as
//! written when the run is spooled, and by earlier versions) means none.

use std::collections::BTreeSet;

use futures::TryStreamExt;

use crate::storage::{
    read_all, BlobStore, BlobStoreExt, Condition, ErrorKind, PutOptions, StateBlobStore, StorageResult,
};

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

pub async fn unspool(state: &dyn StateBlobStore, run_id: &str) -> StorageResult<()> {
    state.delete(&spool_name(run_id)).await
}

/// What a spool entry holds beyond its name.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpoolEntry {
    /// `RecordId`s of the run that Log Analytics already accepted.
    #[serde(default)]
    pub accepted: BTreeSet<String>,
}

/// The entry of a spooled run, with its ETag; `None` when the run is not spooled.
pub async fn spool_entry(state: &dyn BlobStore, run_id: &str) -> StorageResult<Option<(SpoolEntry, String)>> {
    let name = spool_name(run_id);
    Ok(read_all(state, &name).await?.map(|(bytes, info)| {
        let entry = if bytes.is_empty() {
            SpoolEntry::default()
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                // Sending everything again duplicates rows; trusting a broken entry could lose them.
                tracing::warn!(entry = name, error = %e, "unreadable spool entry; the whole run will be sent");
                SpoolEntry::default()
            })
        };
        (entry, info.etag)
    }))
}

/// Adds `ids` to the records of `run_id` Log Analytics accepted. A read-modify-write under
/// If-Match: a publisher in another process that saved its own progress meanwhile is
/// merged with, never overwritten. No entry means another publisher finished the run and
/// removed it (or it was never spooled): writing one would bring a sent run back.
pub async fn record_accepted(state: &dyn BlobStore, run_id: &str, ids: &BTreeSet<String>) -> StorageResult<()> {
    const TRIES: usize = 5;
    let name = spool_name(run_id);
    let mut tries = 0;
    loop {
        tries += 1;
        let Some((mut entry, etag)) = spool_entry(state, run_id).await? else {
            return Ok(());
        };
        let condition = Condition::IfMatch(etag);
        entry.accepted.extend(ids.iter().cloned());
        match super::put_json(state, &name, &entry, condition, None).await {
            Ok(_) => return Ok(()),
            Err(e) if tries < TRIES && matches!(e.kind, ErrorKind::PreconditionFailed | ErrorKind::NotFound) => {
                continue
            }
            Err(e) => return Err(e),
        }
    }
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
    /// `RecordId`s Log Analytics accepted before it refused the rest: not to be resent.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub accepted: BTreeSet<String>,
}

pub fn dead_name(run_id: &str) -> String {
    format!("{DEAD_PREFIX}{run_id}.json")
}

/// Moves a run from the spool to `spool-dead/`.
pub async fn bury(state: &dyn StateBlobStore, letter: &DeadLetter) -> StorageResult<()> {
    super::put_json(state, &dead_name(&letter.run_id), letter, Condition::None, None).await?;
    unspool(state, &letter.run_id).await
}

pub async fn dead_letters(state: &dyn BlobStore) -> StorageResult<u64> {
    state.count(DEAD_PREFIX).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryBlobStore;

    fn ids(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn progress_accumulates_in_the_entry_and_an_empty_entry_means_none() {
        let state = MemoryBlobStore::new();
        assert!(spool_entry(&state, "r1").await.unwrap().is_none());
        spool(&state, "r1").await.unwrap();
        let (entry, _) = spool_entry(&state, "r1").await.unwrap().unwrap();
        assert!(entry.accepted.is_empty());

        record_accepted(&state, "r1", &ids(&["r1-a", "r1-b"])).await.unwrap();
        record_accepted(&state, "r1", &ids(&["r1-c"])).await.unwrap();
        let (entry, _) = spool_entry(&state, "r1").await.unwrap().unwrap();
        assert_eq!(entry.accepted, ids(&["r1-a", "r1-b", "r1-c"]));
        // Spooling again (the end of a failed publish) keeps the progress.
        spool(&state, "r1").await.unwrap();
        let (entry, _) = spool_entry(&state, "r1").await.unwrap().unwrap();
        assert_eq!(entry.accepted.len(), 3);
        assert_eq!(spooled_runs(&state).await.unwrap(), ["r1"]);
    }

    #[tokio::test]
    async fn progress_without_an_entry_does_not_bring_a_sent_run_back() {
        let state = MemoryBlobStore::new();
        record_accepted(&state, "r2", &ids(&["r2-a"])).await.unwrap();
        assert!(spool_entry(&state, "r2").await.unwrap().is_none());
        assert!(spooled_runs(&state).await.unwrap().is_empty());
    }

    /// Whoever can write the state container can garble an entry: the run is then sent
    /// whole (duplicates, which queries remove by RecordId), never dropped, and the next
    /// progress save writes a well-formed entry over it.
    #[tokio::test]
    async fn a_garbled_entry_means_send_everything_and_is_rewritten() {
        let state = MemoryBlobStore::new();
        for garbled in [&b"\xff\xfe not json"[..], b"{\"accepted\": 7}", b"[1,2,3]"] {
            state
                .put(
                    &spool_name("r3"),
                    bytes::Bytes::copy_from_slice(garbled),
                    PutOptions::default(),
                )
                .await
                .unwrap();
            let (entry, _) = spool_entry(&state, "r3").await.unwrap().unwrap();
            assert!(entry.accepted.is_empty());
            record_accepted(&state, "r3", &ids(&["r3-a"])).await.unwrap();
            let (entry, _) = spool_entry(&state, "r3").await.unwrap().unwrap();
            assert_eq!(entry.accepted, ids(&["r3-a"]));
        }
    }
}
