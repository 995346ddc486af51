//! `conflicts/{source}/{key}.json`: an S3 object that changed after it was archived.
//! The archived copy stays the evidence; this note tells an investigator both hashes.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::storage::{BlobStore, Condition, StorageResult};

#[derive(Debug, Clone, Serialize)]
pub struct ConflictNote {
    pub source: String,
    pub key: String,
    pub blob: String,
    pub archived_sha256: String,
    pub source_sha256: String,
    pub source_etag: String,
    #[serde(serialize_with = "crate::records::serialize_rfc3339")]
    pub source_last_modified: DateTime<Utc>,
    #[serde(serialize_with = "crate::records::serialize_rfc3339")]
    pub detected_at: DateTime<Utc>,
    pub run_id: String,
}

pub fn conflict_name(source: &str, key: &str) -> String {
    format!("conflicts/{source}/{key}.json")
}

pub async fn record_conflict(state: &dyn BlobStore, note: &ConflictNote) -> StorageResult<()> {
    super::put_json(
        state,
        &conflict_name(&note.source, &note.key),
        note,
        Condition::None,
        None,
    )
    .await
    .map(|_| ())
}
