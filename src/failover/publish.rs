//! Sending run records to Log Analytics. `runs/{run_id}.json` stays the source of
//! truth; a run whose records could not be sent is remembered as `spool/{run_id}` and
//! sent, oldest first, before the next run's. A failed send never fails the run:
//! `status` shows the backlog.

use crate::monitor::RecordSink;
use crate::state::runs::read_run_records;
use crate::state::spool::{spool, spooled_runs, unspool};
use crate::storage::BlobStore;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Runs whose records reached Log Analytics now, in order.
    pub sent: Vec<String>,
    /// Runs still waiting in the spool.
    pub spooled: Vec<String>,
    pub error: Option<String>,
}

pub async fn publish(state: &dyn BlobStore, sink: &dyn RecordSink, run_id: &str) -> Published {
    let mut out = Published::default();
    let mut queue = match spooled_runs(state).await {
        Ok(runs) => runs,
        Err(e) => {
            out.error = Some(format!("reading the spool: {e}"));
            Vec::new()
        }
    };
    if !queue.iter().any(|r| r == run_id) {
        queue.push(run_id.to_string());
    }
    for (i, run) in queue.iter().enumerate() {
        let records = match read_run_records(state, run).await {
            Ok(Some(records)) => records.unwrap_or_default(),
            // No record to send (deleted by hand): nothing to wait for.
            Ok(None) => {
                let _ = unspool(state, run).await;
                continue;
            }
            Err(e) => {
                out.error = Some(e.to_string());
                out.spooled.extend(queue[i..].iter().cloned());
                break;
            }
        };
        match sink.send(&records).await {
            Ok(()) => {
                let _ = unspool(state, run).await;
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
        if let Err(e) = spool(state, run).await {
            tracing::error!(run_id = run, error = %e, "could not spool the run's records");
        }
    }
    out
}
