//! `events/{source}.json`: the newest CloudTrail log-file time events archived. With the
//! watermarks (what sync archived) it gives `status` the archive's age in two reads, not
//! a listing. Read-modify-write without a lease: two writers at once may leave the older
//! time, which the next drain or sync corrects; it never goes backwards by itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::storage::{BlobStore, Condition, StorageResult};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewestEvents {
    pub newest_log_time: DateTime<Utc>,
}

pub fn newest_name(source: &str) -> String {
    format!("events/{source}.json")
}

/// The newest log time events archived for `source`; `None` when none (or unreadable).
pub async fn load(state: &dyn BlobStore, source: &str) -> StorageResult<Option<DateTime<Utc>>> {
    Ok(super::get_json::<NewestEvents>(state, &newest_name(source))
        .await?
        .and_then(|d| d.value.ok())
        .map(|n| n.newest_log_time))
}

/// Moves the time forward to `time` (never back).
pub async fn advance(state: &dyn BlobStore, source: &str, time: DateTime<Utc>) -> StorageResult<()> {
    if load(state, source).await?.is_some_and(|t| t >= time) {
        return Ok(());
    }
    let doc = NewestEvents { newest_log_time: time };
    super::put_json(state, &newest_name(source), &doc, Condition::None, None)
        .await
        .map(|_| ())
}
