//! One drain of the sources' queues: receive batches, archive each announced key of the
//! source, delete a message once every key of it is settled. A key that failed leaves its
//! message to come back after the queue's visibility timeout.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::message::{self, Announced};
use super::report::{events_records, EventsReport, Lag, SourceEvents};
use super::select::{select, NotOurs, FUTURE_TOLERANCE};
use crate::archive::{ArchiveName, CopyOutcome, META_SOURCE_ETAG};
use crate::cloudtrail::{CtKey, FileKind};
use crate::queue::{Message, Queue};
use crate::state::conflicts::{record_conflict, ConflictNote};
use crate::state::write_run_records;
use crate::storage::{ArchiveStore, BlobInfo, ErrorKind, Source, SourceObject, StateStore, StorageError};

/// The copy `sync` uses, handed in by the runtime so both archive by one code path.
#[async_trait]
pub trait CopyFile: Send + Sync {
    async fn copy(
        &self,
        source: &EventSource,
        object: &SourceObject,
        existing: Option<&BlobInfo>,
    ) -> Result<CopyOutcome, StorageError>;
}

/// A configured source that has a queue.
pub struct EventSource {
    pub name: String,
    pub prefix: String,
    pub source: Arc<dyn Source>,
    pub queue: Arc<dyn Queue>,
}

pub struct DrainJob {
    pub run_id: String,
    pub sources: Vec<EventSource>,
    pub archive: ArchiveStore,
    pub state: StateStore,
    pub copier: Arc<dyn CopyFile>,
    /// Long-poll wait per receive (the daemon 20 s; `drain` shorter, to end promptly).
    pub wait: Duration,
    /// No receive starts after this; `None`: until a receive returns nothing.
    pub deadline: Option<tokio::time::Instant>,
    /// End at the first empty receive (`drain`); the daemon keeps polling.
    pub until_empty: bool,
    /// Files being archived at once, per source.
    pub files_in_flight: usize,
    /// Visibility assumed when the queue's own cannot be read; work in progress is extended
    /// every half of the visibility timeout, back to the full timeout.
    pub default_visibility: Duration,
    /// Cancelled on a signal: no new receive, work in flight finishes.
    pub cancel: CancellationToken,
}

/// How long a receive cut by a signal may still answer, so its messages go back at once.
const LATE_RECEIVE_WAIT: Duration = Duration::from_secs(5);

/// How one key ended.
enum KeyEnd {
    Settled,
    Failed,
}

impl DrainJob {
    pub async fn run(&self) -> EventsReport {
        let started = std::time::Instant::now();
        let sources = futures::future::join_all(self.sources.iter().map(|s| self.drain_source(s))).await;
        let report = EventsReport {
            run_id: self.run_id.clone(),
            sources,
            stopped: self.cancel.is_cancelled().then_some("signal"),
            duration_seconds: started.elapsed().as_secs_f64(),
        };
        let records = events_records(&report);
        if let Err(e) = write_run_records(self.state.as_ref(), &self.run_id, &records).await {
            // The files are archived whatever happens to the record; say it was not kept.
            tracing::error!(run_id = self.run_id, error = %e, "could not write the Events records");
        }
        report
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
    }

    async fn drain_source(&self, s: &EventSource) -> SourceEvents {
        let mut r = SourceEvents {
            name: s.name.clone(),
            ..SourceEvents::default()
        };
        let slots = Semaphore::new(self.files_in_flight.max(1));
        let visibility = s
            .queue
            .visibility_timeout()
            .await
            .unwrap_or(self.default_visibility)
            .max(Duration::from_secs(2));
        while !self.cancel.is_cancelled() && !self.past_deadline() {
            let wait = match self.deadline {
                Some(d) => self.wait.min(d.saturating_duration_since(tokio::time::Instant::now())),
                None => self.wait,
            };
            let receive = s.queue.receive(10, wait);
            tokio::pin!(receive);
            let received = tokio::select! {
                got = &mut receive => got,
                _ = self.cancel.cancelled() => {
                    self.hand_back_late_receive(s, receive).await;
                    break;
                }
            };
            let batch = match received {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(source = s.name, error = %e, "could not receive from the queue");
                    r.queue_errors += 1;
                    if self.until_empty {
                        break;
                    }
                    // The daemon keeps going: a pause, not a hot loop on a failing queue.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        _ = self.cancel.cancelled() => break,
                    }
                }
            };
            if batch.is_empty() {
                if self.until_empty {
                    break;
                }
                continue;
            }
            r.messages += batch.len() as u64;
            super::metrics::received(&s.name, batch.len() as u64);
            let parts: Vec<SourceEvents> = futures::stream::iter(batch)
                .map(|m| self.handle(s, m, &slots, visibility))
                .buffer_unordered(10)
                .collect()
                .await;
            for p in parts {
                add(&mut r, p);
            }
        }
        r.lag_seconds = Lag::of(&r.lags);
        if let Some(t) = r.newest_log_time {
            if let Err(e) = crate::state::newest::advance(self.state.as_ref(), &s.name, t).await {
                tracing::warn!(source = s.name, error = %e, "could not record the newest archived log time");
            }
        }
        r
    }

    /// A receive the queue answered as the signal came has already hidden its messages for
    /// the visibility timeout; dropping it would leave them unseen by the next drain for that
    /// long. A moment is given for the answer, and what came is handed back at once.
    async fn hand_back_late_receive(
        &self,
        s: &EventSource,
        receive: impl std::future::Future<Output = Result<Vec<Message>, crate::queue::QueueError>>,
    ) {
        let Ok(Ok(batch)) = tokio::time::timeout(LATE_RECEIVE_WAIT, receive).await else {
            // Nothing came in time: anything the queue hid comes back after its timeout.
            return;
        };
        for m in batch {
            if let Err(e) = s.queue.extend(&m.receipt, Duration::ZERO).await {
                tracing::warn!(source = s.name, message_id = m.id, error = %e, "could not hand a message back; it comes back after the visibility timeout");
            }
        }
    }

    /// One message, its visibility extended while it is worked on.
    async fn handle(&self, s: &EventSource, m: Message, slots: &Semaphore, visibility: Duration) -> SourceEvents {
        let work = self.work(s, &m, slots);
        tokio::pin!(work);
        let every = visibility / 2;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let (mut part, delete) = loop {
            tokio::select! {
                done = &mut work => break done,
                _ = tick.tick() => {
                    if let Err(e) = s.queue.extend(&m.receipt, visibility).await {
                        tracing::warn!(source = s.name, message_id = m.id, error = %e, "could not extend the message's visibility");
                    }
                }
            }
        };
        if delete {
            if let Err(e) = s.queue.delete(&m.receipt).await {
                // It comes back and is settled again, cheaply (already archived).
                tracing::warn!(source = s.name, message_id = m.id, error = %e, "could not delete a settled message");
                part.queue_errors += 1;
            }
        }
        part
    }

    /// The message's keys; `true` when it may be deleted.
    async fn work(&self, s: &EventSource, m: &Message, slots: &Semaphore) -> (SourceEvents, bool) {
        let mut r = SourceEvents::default();
        let notice = match message::parse(&m.body) {
            Ok(n) => n,
            Err(e) => {
                // The scheduled sync lists everything: nothing is lost by dropping it.
                tracing::warn!(source = s.name, message_id = m.id, error = %e, "unreadable message deleted");
                r.events_unreadable += 1;
                return (r, true);
            }
        };
        r.events_ignored += notice.other_events as u64;
        let trusted_until = Utc::now() + FUTURE_TOLERANCE;
        let ends: Vec<(KeyEnd, SourceEvents)> = futures::stream::iter(notice.files)
            .map(|a| async move {
                let _slot = slots.acquire().await;
                self.key(s, &a, m.sent, trusted_until).await
            })
            .buffer_unordered(10)
            .collect()
            .await;
        let mut delete = true;
        for (end, part) in ends {
            delete &= matches!(end, KeyEnd::Settled);
            add(&mut r, part);
        }
        (r, delete)
    }

    async fn key(
        &self,
        s: &EventSource,
        a: &Announced,
        sent: Option<DateTime<Utc>>,
        trusted_until: DateTime<Utc>,
    ) -> (KeyEnd, SourceEvents) {
        let mut r = SourceEvents::default();
        match select(s.source.bucket(), &s.prefix, &a.bucket, &a.key, trusted_until) {
            Ok(_) => {}
            Err(why) => {
                if why == NotOurs::Future {
                    tracing::warn!(
                        source = s.name,
                        key = a.key,
                        "key named for a time in the future; not archived"
                    );
                }
                r.events_ignored += 1;
                super::metrics::file(&s.name, "ignored");
                return (KeyEnd::Settled, r);
            }
        }
        let outcome = self.archive_key(s, &a.key).await;
        if matches!(
            outcome,
            Ok(Some(CopyOutcome::Copied { .. } | CopyOutcome::AlreadyArchived))
        ) {
            r.newest_log_time = CtKey::parse(&s.prefix, &a.key)
                .ok()
                .filter(|k| k.stream.kind == FileKind::Log)
                .map(|k| k.time);
        }
        let end = match outcome {
            Ok(Some(CopyOutcome::Copied { bytes })) => {
                r.files_copied += 1;
                r.bytes_copied += bytes;
                if let Some(from) = a.time.or(sent) {
                    let lag = (Utc::now() - from).num_milliseconds() as f64 / 1000.0;
                    r.lags.push(lag.max(0.0));
                    super::metrics::lag(lag.max(0.0));
                }
                super::metrics::file(&s.name, "copied");
                KeyEnd::Settled
            }
            Ok(Some(CopyOutcome::AlreadyArchived)) => {
                r.files_already_archived += 1;
                super::metrics::file(&s.name, "already_archived");
                KeyEnd::Settled
            }
            Ok(Some(CopyOutcome::Conflict { .. })) => {
                r.files_conflicting += 1;
                super::metrics::file(&s.name, "conflict");
                KeyEnd::Settled
            }
            Ok(None) => {
                tracing::warn!(source = s.name, key = a.key, "announced file is no longer in S3");
                r.files_missing += 1;
                super::metrics::file(&s.name, "missing");
                KeyEnd::Settled
            }
            Err(e) => {
                tracing::warn!(source = s.name, key = a.key, error = %e, "file not archived; its message comes back");
                r.files_failed += 1;
                super::metrics::file(&s.name, "failed");
                KeyEnd::Failed
            }
        };
        (end, r)
    }

    /// `None` when S3 no longer has the key.
    async fn archive_key(&self, s: &EventSource, key: &str) -> Result<Option<CopyOutcome>, StorageError> {
        // A listing of the key itself is S3's HEAD here: size and ETag, or nothing.
        let page = s.source.list_page(key, None, None).await?;
        let Some(object) = page.items.into_iter().find(|o| o.key == key) else {
            return Ok(None);
        };
        let name =
            ArchiveName::new(&s.name, key).map_err(|why| StorageError::new(ErrorKind::Other, "archive", key, why))?;
        let existing = self.archive.head(name.as_str()).await?;
        if let Some(b) = &existing {
            if b.size == object.size && b.metadata.get(META_SOURCE_ETAG).is_some_and(|e| *e == object.etag) {
                return Ok(Some(CopyOutcome::AlreadyArchived));
            }
        }
        match self.copier.copy(s, &object, existing.as_ref()).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Ok(CopyOutcome::Conflict {
                archived_sha256,
                source_sha256,
            }) => {
                tracing::warn!(
                    source = s.name,
                    key,
                    "S3 object differs from its archived copy; archived copy kept"
                );
                let note = ConflictNote {
                    source: s.name.clone(),
                    key: key.to_string(),
                    blob: name.to_string(),
                    archived_sha256: archived_sha256.clone(),
                    source_sha256: source_sha256.clone(),
                    source_etag: object.etag.clone(),
                    source_last_modified: object.last_modified,
                    detected_at: Utc::now(),
                    run_id: self.run_id.clone(),
                };
                // Recorded, or the message comes back and tries again.
                record_conflict(self.state.as_ref(), &note).await?;
                Ok(Some(CopyOutcome::Conflict {
                    archived_sha256,
                    source_sha256,
                }))
            }
            other => other.map(Some),
        }
    }
}

fn add(into: &mut SourceEvents, part: SourceEvents) {
    into.messages += part.messages;
    into.files_copied += part.files_copied;
    into.bytes_copied += part.bytes_copied;
    into.files_already_archived += part.files_already_archived;
    into.files_conflicting += part.files_conflicting;
    into.events_ignored += part.events_ignored;
    into.events_unreadable += part.events_unreadable;
    into.files_missing += part.files_missing;
    into.files_failed += part.files_failed;
    into.queue_errors += part.queue_errors;
    into.lags.extend(part.lags);
    into.newest_log_time = into.newest_log_time.max(part.newest_log_time);
}
