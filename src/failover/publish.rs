//! Sending run records to Log Analytics. `runs/{run_id}.json` stays the source of
//! truth; a run whose records could not be sent is remembered as `spool/{run_id}` and
//! sent, oldest first, before the next run's. A failed send never fails the run:
//! `status` shows the backlog.

use crate::monitor::RecordSink;
use crate::records::Record;
use crate::state::runs::read_run_records;
use crate::state::spool::{bury, spool, spooled_runs, unspool, DeadLetter};
use crate::storage::BlobStore;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Runs whose records reached Log Analytics now, in order.
    pub sent: Vec<String>,
    /// Runs still waiting in the spool.
    pub spooled: Vec<String>,
    /// Runs refused for good (or unreadable), moved to `spool-dead/`.
    pub dead: Vec<String>,
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
        // Spooled before it is sent: a process killed in the middle of the send leaves
        // the run waiting, not lost.
        if let Err(e) = spool(state, run_id).await {
            tracing::warn!(run_id, error = %e, "could not spool the run's records before sending them");
        }
        queue.push(run_id.to_string());
    }
    for (i, run) in queue.iter().enumerate() {
        let records: Vec<Record> = match read_run_records(state, run).await {
            Ok(Some(Ok(records))) => records.into_iter().map(Record::bounded).collect(),
            // Sending nothing and calling it sent would lose the run's records.
            Ok(Some(Err(e))) => {
                dead_letter(state, run, format!("runs/{run}.json is not readable: {e}"), &mut out).await;
                continue;
            }
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
            Err(e) if e.is_permanent() => {
                dead_letter(state, run, e.to_string(), &mut out).await;
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

/// A run that will never be accepted as it is: set aside so later runs still go out.
async fn dead_letter(state: &dyn BlobStore, run: &str, reason: String, out: &mut Published) {
    let letter = DeadLetter {
        run_id: run.to_string(),
        message: format!(
            "Log Analytics will not take runs/{run}.json as it is: fix the table or DCR (or the record), then resend it by hand"
        ),
        reason,
        at: chrono::Utc::now(),
    };
    tracing::error!(
        run_id = run,
        reason = letter.reason,
        "records refused for good; moved to spool-dead/"
    );
    match bury(state, &letter).await {
        Ok(()) => out.dead.push(run.to_string()),
        Err(e) => {
            tracing::error!(run_id = run, error = %e, "could not move the run to spool-dead/");
            out.error = Some(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::monitor::MonitorError;
    use crate::records::{RecordType, RunStatus};
    use crate::state::runs::run_record_name;
    use crate::state::spool::{dead_name, SPOOL_PREFIX};
    use crate::state::write_run_records;
    use crate::storage::memory::MemoryBlobStore;
    use crate::storage::{Condition, PutOptions};

    /// Log Analytics as a test plays it: refuses runs by their record's message.
    #[derive(Default)]
    struct Ingestion {
        received: Mutex<Vec<String>>,
        down: Mutex<bool>,
    }

    #[async_trait::async_trait]
    impl RecordSink for Ingestion {
        async fn send(&self, records: &[Record]) -> Result<(), MonitorError> {
            if *self.down.lock().unwrap() {
                return Err(MonitorError::Unreachable("connection refused".into()));
            }
            if records.iter().any(|r| r.message == "poison") {
                return Err(MonitorError::Rejected {
                    status: 400,
                    detail: "InvalidStream: column type mismatch".into(),
                    hint: "",
                });
            }
            self.received
                .lock()
                .unwrap()
                .extend(records.iter().map(|r| r.run_id.clone()));
            Ok(())
        }
    }

    async fn run(state: &MemoryBlobStore, id: &str, message: &str) {
        let record = Record {
            message: message.into(),
            ..Record::of(RecordType::SyncRun, id, "s", RunStatus::Succeeded)
        };
        write_run_records(state, id, &[record]).await.unwrap();
    }

    async fn spooled(state: &MemoryBlobStore) -> Vec<String> {
        crate::storage::BlobStoreExt::list_all(state, SPOOL_PREFIX)
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect()
    }

    #[tokio::test]
    async fn a_refused_run_goes_to_spool_dead_and_never_blocks_later_runs() {
        let state = MemoryBlobStore::new();
        let sink = Ingestion::default();
        *sink.down.lock().unwrap() = true;
        run(&state, "r1", "ok").await;
        run(&state, "r2", "poison").await;
        run(&state, "r3", "ok").await;
        for r in ["r1", "r2", "r3"] {
            let out = publish(&state, &sink, r).await;
            assert!(out.sent.is_empty() && out.error.is_some());
        }
        assert_eq!(spooled(&state).await.len(), 3);

        *sink.down.lock().unwrap() = false;
        run(&state, "r4", "ok").await;
        let out = publish(&state, &sink, "r4").await;
        assert_eq!(out.sent, ["r1", "r3", "r4"]);
        assert_eq!(out.dead, ["r2"]);
        assert!(spooled(&state).await.is_empty());
        assert_eq!(*sink.received.lock().unwrap(), ["r1", "r3", "r4"]);
        let letter = crate::state::get_json::<DeadLetter>(&state, &dead_name("r2"))
            .await
            .unwrap()
            .unwrap()
            .value
            .unwrap();
        assert!(
            letter.reason.contains("400") && letter.reason.contains("InvalidStream"),
            "{letter:?}"
        );
        assert!(letter.message.contains("resend"));
        // The records themselves stay where they were.
        assert!(state.head(&run_record_name("r2")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_unreadable_run_is_set_aside_not_sent_empty_and_deleted() {
        let state = MemoryBlobStore::new();
        let sink = Ingestion::default();
        state
            .put(
                &run_record_name("r1"),
                bytes::Bytes::from_static(b"{not json"),
                PutOptions {
                    condition: Condition::IfNoneMatch,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        crate::state::spool::spool(&state, "r1").await.unwrap();
        run(&state, "r2", "ok").await;
        let out = publish(&state, &sink, "r2").await;
        assert_eq!(out.dead, ["r1"]);
        assert_eq!(out.sent, ["r2"]);
        assert!(state.head(&dead_name("r1")).await.unwrap().is_some());
        assert!(state.head(&run_record_name("r1")).await.unwrap().is_some());
    }
}
