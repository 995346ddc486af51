//! `runs/{run_id}.json`: the records each run produced, written once.

use crate::records::Record;
use crate::storage::{BlobStore, Condition, StorageResult};

pub const RUNS_PREFIX: &str = "runs/";

pub fn run_record_name(run_id: &str) -> String {
    format!("{RUNS_PREFIX}{run_id}.json")
}

/// Writes a run's records once (create-only: a run id is never reused), each with its
/// `Details` bounded as Log Analytics can hold them.
pub async fn write_run_records(state: &dyn BlobStore, run_id: &str, records: &[Record]) -> StorageResult<()> {
    let records: Vec<Record> = records.iter().cloned().map(Record::bounded).collect();
    super::put_json(state, &run_record_name(run_id), &records, Condition::IfNoneMatch, None)
        .await
        .map(|_| ())
}

/// A run's records; `None` when the run wrote none.
pub async fn read_run_records(
    state: &dyn BlobStore,
    run_id: &str,
) -> StorageResult<Option<Result<Vec<Record>, serde_json::Error>>> {
    Ok(super::get_json(state, &run_record_name(run_id)).await?.map(|d| d.value))
}
