//! Sending run records to Log Analytics. `runs/{run_id}.json` stays the source of
//! truth; a run whose records could not be sent is remembered as `spool/{run_id}` and
//! sent, oldest first, before the next run's. A failed send never fails the run:
//! `status` shows the backlog.

use crate::failover::Record;
use crate::monitor::LogsIngestion;
use crate::storage::{read_all, BlobStore, Condition, ErrorKind, PutOptions};

pub const SPOOL_PREFIX: &str = "spool/";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Runs whose records reached Log Analytics now, in order.
    pub sent: Vec<String>,
    /// Runs still waiting in the spool.
    pub spooled: Vec<String>,
    pub error: Option<String>,
}

pub async fn publish(state: &dyn BlobStore, ingestion: &LogsIngestion, run_id: &str) -> Published {
    let mut out = Published::default();
    let mut queue: Vec<String> = match state.list(SPOOL_PREFIX).await {
        Ok(items) => items
            .into_iter()
            .filter_map(|b| b.name.strip_prefix(SPOOL_PREFIX).map(str::to_string))
            .collect(),
        Err(e) => {
            out.error = Some(format!("reading the spool: {e}"));
            Vec::new()
        }
    };
    queue.sort();
    if !queue.iter().any(|r| r == run_id) {
        queue.push(run_id.to_string());
    }
    for (i, run) in queue.iter().enumerate() {
        let records: Vec<Record> = match read_all(state, &crate::failover::record::run_record_name(run)).await {
            Ok(Some((bytes, _))) => serde_json::from_slice(&bytes).unwrap_or_default(),
            // No record to send (deleted by hand): nothing to wait for.
            Ok(None) => {
                let _ = state.delete(&format!("{SPOOL_PREFIX}{run}")).await;
                continue;
            }
            Err(e) => {
                out.error = Some(e.to_string());
                out.spooled.extend(queue[i..].iter().cloned());
                break;
            }
        };
        match ingestion.send(&records).await {
            Ok(()) => {
                let _ = state.delete(&format!("{SPOOL_PREFIX}{run}")).await;
                out.sent.push(run.clone());
            }
            Err(e) => {
                tracing::warn!(run_id = run, error = %e, "records not accepted by Log Analytics; kept in the spool");
                out.error = Some(e.to_string());
                out.spooled.extend(queue[i..].iter().cloned());
                break;
            }
        }
    }
    for run in &out.spooled {
        let put = state
            .put(
                &format!("{SPOOL_PREFIX}{run}"),
                bytes::Bytes::new(),
                PutOptions {
                    condition: Condition::IfNoneMatch,
                    ..Default::default()
                },
            )
            .await;
        if let Err(e) = put.map(|_| ()).or_else(|e| {
            if e.kind == ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        }) {
            tracing::error!(run_id = run, error = %e, "could not spool the run's records");
        }
    }
    out
}
