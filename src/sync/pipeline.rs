//! One stream as a pipeline: its listing is planned a chunk at a time, a chunk or two
//! ahead of the copies, and the copies keep `concurrency` files in flight across chunk
//! boundaries. Files settle in listing order into folds of a few fields (the next mark,
//! the coverage tally), so nothing held grows with the stream's history.

use chrono::{DateTime, NaiveDate, Utc};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};

use super::plan::{self, PlannedFile, StreamPlan};
use super::{until_deadline, SourceRun};
use crate::archive::CopyOutcome;
use crate::cloudtrail::StreamPrefix;
use crate::state::watermark::{MarkFold, Settled, StreamMark, StreamTally};
use crate::storage::StorageError;
use crate::sync::report::SourceReport;

/// The channel's buffer between the stages (futures' mpsc adds a slot for its one sender,
/// so two planned chunks may wait, besides the one the copies take files from and the one
/// being planned): enough that the next chunk is ready when the copies reach a chunk's end.
const CHUNKS_AHEAD: usize = 1;

/// How a stream's listing ended.
enum Listed {
    Whole,
    Failed(String),
    Cancelled,
    Deadline,
}

/// What the copy stage is fed, in listing order.
enum Work {
    Copy(PlannedFile),
    Event(Event),
}

enum Event {
    /// A chunk's plan without its copies, which follow it; `files` and `bytes` are what
    /// a dry run would copy.
    Chunk {
        plan: StreamPlan,
        files: u64,
        bytes: u64,
    },
    /// Every key listed after this is in this day's folder or a later one.
    Passed(NaiveDate),
    End(Listed),
}

/// A copy's end (boxed: it dwarfs the events) or an event, in listing order.
enum Done {
    Copied(Box<(PlannedFile, Option<Result<CopyOutcome, StorageError>>)>),
    Event(Event),
}

/// A CloudTrail file is named for a time on its folder's day. A day of slack keeps the
/// mark's fold exact should a digest's name and folder straddle midnight. None for the
/// first day chrono can hold (no floor below it to fold).
fn floor_of(day: NaiveDate) -> Option<DateTime<Utc>> {
    day.checked_sub_days(chrono::Days::new(1))
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
}

impl SourceRun<'_> {
    /// Plans and copies one stream; returns its next mark (None: leave it as it was) and
    /// `tally` fed with every listed file, when the listing was whole.
    pub(super) async fn stream(
        &self,
        stream: &StreamPrefix,
        old: Option<&StreamMark>,
        tally: StreamTally,
        r: &mut SourceReport,
    ) -> (Option<StreamMark>, Option<StreamTally>) {
        // Stopping: a stream not yet planned is left for the next run, its mark as it was.
        if self.job.cancel.is_cancelled() {
            r.stopped = true;
            r.complete = false;
            return (None, None);
        }
        let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
        let ((), out) = futures::join!(self.list(stream, old, tx), self.copy(stream, old, rx, tally, r));
        out
    }

    /// The listing stage: plans chunk after chunk while the copy stage takes them, and
    /// says how the listing ended. A chunk waits for an earlier one to be taken, so the
    /// listing is never more than a few chunks ahead of the copies.
    async fn list(&self, stream: &StreamPrefix, old: Option<&StreamMark>, mut tx: mpsc::Sender<Vec<Work>>) {
        let key_prefix = stream.key_prefix();
        let start_after = plan::start_after(stream, old, self.job.settings.lookback);
        let planner = plan::ChunkPlanner::new(self.job.archive.as_ref(), &self.handle.name, stream, self.trusted_until);
        let mut chunks = plan::plan_chunks(
            self.handle.source.as_ref(),
            planner,
            &key_prefix,
            start_after.as_deref(),
        );
        let end = loop {
            if self.job.cancel.is_cancelled() {
                break Listed::Cancelled;
            }
            // A listing still running at the deadline stops there.
            match until_deadline(self.job.deadline, chunks.next()).await {
                None => break Listed::Deadline,
                Some(None) => break Listed::Whole,
                Some(Some(Err(e))) => break Listed::Failed(format!("listing {key_prefix}: {e}")),
                Some(Some(Ok(plan))) => {
                    if tx.send(self.work_of(plan)).await.is_err() {
                        return;
                    }
                }
            }
        };
        let _ = tx.send(vec![Work::Event(Event::End(end))]).await;
    }

    fn work_of(&self, mut plan: StreamPlan) -> Vec<Work> {
        let (files, bytes) = (plan.to_copy.len() as u64, plan.bytes_to_copy());
        let copies = std::mem::take(&mut plan.to_copy);
        let last_day = plan.last_day;
        let mut work = vec![Work::Event(Event::Chunk { plan, files, bytes })];
        if !self.job.dry_run {
            self.job
                .progress
                .begin(files, copies.iter().map(|f| f.object.size).sum());
            work.extend(copies.into_iter().map(Work::Copy));
        }
        work.extend(last_day.map(|d| Work::Event(Event::Passed(d))));
        work
    }

    /// The copy stage: `concurrency` files in flight, settled in listing order (at most
    /// `concurrency` finished ones wait for an earlier one).
    async fn copy(
        &self,
        stream: &StreamPrefix,
        old: Option<&StreamMark>,
        rx: mpsc::Receiver<Vec<Work>>,
        mut tally: StreamTally,
        r: &mut SourceReport,
    ) -> (Option<StreamMark>, Option<StreamTally>) {
        let mut work = rx
            .flat_map(futures::stream::iter)
            .map(|w| async move {
                match w {
                    Work::Copy(f) => {
                        let _slot = self.files.acquire().await;
                        let result = self.copy_file(&f).await;
                        self.job.progress.advance(1, f.object.size);
                        Done::Copied(Box::new((f, result)))
                    }
                    Work::Event(e) => Done::Event(e),
                }
            })
            .buffered(self.job.settings.concurrency.max(1));
        let (mut fold, mut future) = (MarkFold::default(), FutureKeys::default());
        let mut listed = Listed::Cancelled;
        while let Some(done) = work.next().await {
            let settled = match done {
                Done::Copied(copied) => {
                    let (f, result) = *copied;
                    vec![self.settle(f, result, r).await]
                }
                Done::Event(Event::Chunk { plan, files, bytes }) => {
                    if self.job.dry_run {
                        r.files_planned += files;
                        r.bytes_planned += bytes;
                    }
                    future.note(&plan.future);
                    self.note_plan(plan, r)
                }
                Done::Event(Event::Passed(day)) => {
                    if let Some(floor) = floor_of(day) {
                        fold.floor(floor);
                    }
                    continue;
                }
                Done::Event(Event::End(end)) => {
                    listed = end;
                    continue;
                }
            };
            for s in &settled {
                fold.push(s);
                tally.push(s);
            }
        }
        future.warn(self, stream);
        match listed {
            Listed::Whole if self.job.dry_run => return (None, Some(tally)),
            Listed::Whole => return (self.mark(fold, old), Some(tally)),
            Listed::Failed(e) => {
                r.errors.push(e);
                r.complete = false;
                return (None, None);
            }
            // Cut short: the files copied stay archived (the next run skips them without
            // a download), but the mark stays where it was. Moving it to where the listing
            // stopped would trust that listing's order and its folder names for keys it
            // never saw; a planted key sorting before the real history would then hide them.
            Listed::Cancelled => {
                r.stopped = true;
                r.complete = false;
            }
            Listed::Deadline => self.stopped(r),
        }
        (None, None)
    }

    fn mark(&self, fold: MarkFold, old: Option<&StreamMark>) -> Option<StreamMark> {
        fold.finish(old).map(|(time, key)| StreamMark {
            time,
            key,
            updated_at: Utc::now(),
            run_id: self.run_id.to_string(),
        })
    }

    /// Reports what a chunk's plan settles without a copy (keys from the future, files
    /// already archived) and returns those already archived as settled.
    fn note_plan(&self, plan: StreamPlan, r: &mut SourceReport) -> Vec<Settled> {
        if !plan.future.is_empty() {
            r.complete = false;
            r.future_keys.extend(plan.future);
        }
        r.files_skipped += plan.already_archived.len() as u64;
        plan.already_archived
            .into_iter()
            .map(|(key, time)| {
                r.newest_file_time = r.newest_file_time.max(time);
                Settled { key, time, done: true }
            })
            .collect()
    }
}

/// A stream's future-dated keys, for one warning when it is done: a count and the first.
#[derive(Default)]
struct FutureKeys {
    count: u64,
    first: Option<String>,
}

impl FutureKeys {
    fn note(&mut self, keys: &[String]) {
        self.count += keys.len() as u64;
        if self.first.is_none() {
            self.first = keys.first().cloned();
        }
    }

    fn warn(&self, run: &SourceRun<'_>, stream: &StreamPrefix) {
        if self.count > 0 {
            tracing::warn!(
                source = run.handle.name,
                stream = stream.key_prefix(),
                count = self.count,
                first = self.first.as_deref().unwrap_or(""),
                "keys named for a time after this run may trust were not archived"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_day_chrono_holds_has_no_floor_below_it() {
        assert_eq!(floor_of(NaiveDate::MIN), None);
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(floor_of(day), Some("2026-02-28T00:00:00Z".parse().unwrap()));
    }
}
