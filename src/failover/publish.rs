//! Sending run records to Log Analytics. `runs/{run_id}.json` stays the source of
//! truth; a run whose records could not be sent is remembered as `spool/{run_id}` and
//! sent, oldest first, before the next run's. A failed send never fails the run:
//! `status` shows the backlog. A run goes out in batches of at most 1 MB; when a later
//! batch fails, the spool entry keeps the `RecordId`s already accepted, so the retry
//! sends only the rest (ingestion is paid per GB, and raw queries count every row).

use std::collections::BTreeSet;

use crate::monitor::ingest::batches;
use crate::monitor::{MonitorError, RecordSink};
use crate::records::Record;
use crate::state::runs::read_run_records;
use crate::state::spool::{bury, record_accepted, spool, spool_entry, spooled_runs, unspool, DeadLetter};
use crate::storage::StateBlobStore;

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

/// How long one publish may spend sending, every wait a server asks for included (the
/// contract's publishing budget); what is not sent by then stays in the spool.
pub const PUBLISH_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn publish(state: &dyn StateBlobStore, sink: &dyn RecordSink, run_id: &str) -> Published {
    publish_within(state, sink, run_id, PUBLISH_BUDGET).await
}

/// [`publish`] with its own budget.
pub async fn publish_within(
    state: &dyn StateBlobStore,
    sink: &dyn RecordSink,
    run_id: &str,
    budget: std::time::Duration,
) -> Published {
    let deadline = tokio::time::Instant::now() + budget;
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
        let accepted = match spool_entry(state, run).await {
            Ok(Some((entry, _))) => entry.accepted,
            // Listed a moment ago and gone now: another process sent it (or set it aside).
            Ok(None) if run != run_id => continue,
            // This run's own entry could not be written: send it all.
            Ok(None) => BTreeSet::new(),
            Err(e) => {
                out.error = Some(e.to_string());
                out.spooled.extend(queue[i..].iter().cloned());
                break;
            }
        };
        let records: Vec<Record> = match read_run_records(state, run).await {
            Ok(Some(Ok(records))) => records.into_iter().map(Record::bounded).collect(),
            // Sending nothing and calling it sent would lose the run's records.
            Ok(Some(Err(e))) => {
                let reason = format!("runs/{run}.json is not readable: {e}");
                dead_letter(state, run, reason, accepted.clone(), &mut out).await;
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
        let pending: Vec<Record> = records
            .into_iter()
            .filter(|r| !accepted.contains(&r.record_id))
            .collect();
        match send(state, sink, run, &pending, deadline).await {
            Ok(()) => out.sent.push(run.clone()),
            Err((e, now_accepted)) if e.is_permanent() => {
                let all = accepted.union(&now_accepted).cloned().collect();
                dead_letter(state, run, e.to_string(), all, &mut out).await;
            }
            Err((e, _)) => {
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

/// Sends `pending` batch by batch and unspools the run once all went through. After each
/// accepted batch with more to come, the spool entry records it, so neither a failure of
/// a later batch nor a kill resends it. On failure, returns the `RecordId`s accepted here.
async fn send(
    state: &dyn StateBlobStore,
    sink: &dyn RecordSink,
    run: &str,
    pending: &[Record],
    deadline: tokio::time::Instant,
) -> Result<(), (MonitorError, BTreeSet<String>)> {
    let cut = batches(pending).map_err(|e| (e, BTreeSet::new()))?;
    let mut accepted = BTreeSet::new();
    // Accepted but not yet in the spool entry (its write failed, or this is the last batch).
    let mut unsaved = BTreeSet::new();
    for (n, batch) in cut.iter().enumerate() {
        let sent = match tokio::time::timeout_at(deadline, sink.send_batch(batch)).await {
            Ok(sent) => sent,
            Err(_) => Err(MonitorError::Unreachable(
                "not done within the publishing budget; the rest stays in the spool".into(),
            )),
        };
        if let Err(e) = sent {
            save_progress(state, run, &mut unsaved).await;
            return Err((e, accepted));
        }
        for r in batch.iter() {
            accepted.insert(r.record_id.clone());
            unsaved.insert(r.record_id.clone());
        }
        if n + 1 < cut.len() {
            save_progress(state, run, &mut unsaved).await;
        }
    }
    if let Err(e) = unspool(state, run).await {
        // Still spooled: the next publish finds every record accepted and sends none.
        tracing::warn!(run_id = run, error = %e, "sent, but could not remove the run from the spool");
        save_progress(state, run, &mut unsaved).await;
    }
    Ok(())
}

/// Adds `ids` to the run's spool entry; emptied once saved. A failed save is only
/// logged: the worst it costs is those rows sent again.
async fn save_progress(state: &dyn StateBlobStore, run: &str, ids: &mut BTreeSet<String>) {
    if ids.is_empty() {
        return;
    }
    match record_accepted(state, run, ids).await {
        Ok(()) => ids.clear(),
        Err(e) => tracing::warn!(
            run_id = run,
            error = %e,
            "could not record which records Log Analytics accepted; a retry may send them again"
        ),
    }
}

/// A run that will never be accepted as it is: set aside so later runs still go out.
async fn dead_letter(
    state: &dyn StateBlobStore,
    run: &str,
    reason: String,
    accepted: BTreeSet<String>,
    out: &mut Published,
) {
    let letter = DeadLetter {
        run_id: run.to_string(),
        message: if accepted.is_empty() {
            format!(
                "Log Analytics will not take runs/{run}.json as it is: fix the table or DCR (or the record), then resend it by hand"
            )
        } else {
            format!(
                "Log Analytics will not take runs/{run}.json as it is: fix the table or DCR (or the record), then resend by hand the records not listed in accepted (those are in Log Analytics already)"
            )
        },
        reason,
        at: chrono::Utc::now(),
        accepted,
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
    use crate::records::{RecordType, RunStatus};
    use crate::state::runs::run_record_name;
    use crate::state::spool::{dead_name, SPOOL_PREFIX};
    use crate::state::write_run_records;
    use crate::storage::memory::MemoryBlobStore;
    use crate::storage::BlobStore;
    use crate::storage::{Condition, PutOptions};

    /// Log Analytics as a test plays it: refuses runs by their record's message.
    #[derive(Default)]
    struct Ingestion {
        received: Mutex<Vec<String>>,
        down: Mutex<bool>,
    }

    #[async_trait::async_trait]
    impl RecordSink for Ingestion {
        async fn send_batch(&self, records: &[Record]) -> Result<(), MonitorError> {
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

    /// Log Analytics answering 429 with a huge Retry-After, as azure_core would wait it out.
    struct NeverAnswers;

    #[async_trait::async_trait]
    impl RecordSink for NeverAnswers {
        async fn send_batch(&self, _: &[Record]) -> Result<(), MonitorError> {
            futures::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_send_that_never_ends_stops_at_the_budget_and_the_run_stays_spooled() {
        let state = MemoryBlobStore::new();
        run(&state, "r1", "ok").await;
        let start = std::time::Instant::now();
        let out = publish_within(&state, &NeverAnswers, "r1", std::time::Duration::from_millis(200)).await;
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(out.sent.is_empty());
        assert_eq!(out.spooled, ["r1"]);
        assert!(out.error.unwrap_or_default().contains("budget"));
        assert_eq!(spooled(&state).await, ["spool/r1"]);
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

    /// Log Analytics that takes the first batch, fails the second call (transiently, or for
    /// good with a 400), then takes everything: the rows it kept, by RecordId.
    #[derive(Default)]
    struct Flaky {
        calls: Mutex<usize>,
        rows: Mutex<Vec<String>>,
        refuse: bool,
    }

    #[async_trait::async_trait]
    impl RecordSink for Flaky {
        async fn send_batch(&self, batch: &[Record]) -> Result<(), MonitorError> {
            let call = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls
            };
            if call == 2 && self.refuse {
                return Err(MonitorError::Rejected {
                    status: 400,
                    detail: "InvalidStream".into(),
                    hint: "",
                });
            }
            if call == 2 {
                return Err(MonitorError::Unreachable("connection reset".into()));
            }
            // What the service would parse from the body: the batch must fit one call.
            let body = crate::monitor::ingest::body(batch)?;
            let rows: Vec<Record> = serde_json::from_slice(&body).unwrap();
            self.rows.lock().unwrap().extend(rows.into_iter().map(|r| r.record_id));
            Ok(())
        }
    }

    /// A run of five records of 300 kB: more than one call of at most 1 MB.
    async fn big_run(state: &MemoryBlobStore, id: &str) {
        let big: Vec<Record> = (0..5)
            .map(|i| Record {
                message: "x".repeat(300_000),
                ..Record::of(RecordType::SyncRun, id, &format!("part{i}"), RunStatus::Succeeded)
            })
            .collect();
        write_run_records(state, id, &big).await.unwrap();
    }

    #[tokio::test]
    async fn batches_accepted_before_a_failure_are_not_sent_again() {
        let state = MemoryBlobStore::new();
        let sink = Flaky::default();
        big_run(&state, "r1").await;
        let out = publish(&state, &sink, "r1").await;
        assert!(out.sent.is_empty() && out.error.is_some(), "{out:?}");
        assert_eq!(out.spooled, ["r1"]);
        let first: BTreeSet<String> = sink.rows.lock().unwrap().iter().cloned().collect();
        assert!(
            !first.is_empty() && first.len() < 5,
            "the first call took {} of 5",
            first.len()
        );
        let (entry, _) = spool_entry(&state, "r1").await.unwrap().unwrap();
        assert_eq!(entry.accepted, first);

        run(&state, "r2", "ok").await;
        let out = publish(&state, &sink, "r2").await;
        assert_eq!(out.sent, ["r1", "r2"]);
        assert!(spooled(&state).await.is_empty());
        let mut rows = sink.rows.lock().unwrap().clone();
        let all = rows.len();
        rows.sort();
        rows.dedup();
        assert_eq!(all, rows.len(), "rows sent twice: {all} rows, {} distinct", rows.len());
        assert_eq!(rows.len(), 6);
    }

    #[tokio::test]
    async fn a_run_refused_part_way_is_set_aside_naming_what_was_accepted() {
        let state = MemoryBlobStore::new();
        let sink = Flaky {
            refuse: true,
            ..Default::default()
        };
        big_run(&state, "r1").await;
        let out = publish(&state, &sink, "r1").await;
        assert_eq!(out.dead, ["r1"]);
        assert!(spooled(&state).await.is_empty());
        let letter = crate::state::get_json::<DeadLetter>(&state, &dead_name("r1"))
            .await
            .unwrap()
            .unwrap()
            .value
            .unwrap();
        let first: BTreeSet<String> = sink.rows.lock().unwrap().iter().cloned().collect();
        assert!(!first.is_empty());
        assert_eq!(letter.accepted, first);
        assert!(letter.message.contains("not listed in accepted"), "{}", letter.message);
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
