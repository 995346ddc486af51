//! Per account-region watermarks: `watermarks/{source}/{account}/{region}.json`.
//!
//! A stream's mark is the time up to which every listed file is archived. The next
//! run lists from the mark's day minus `sync.lookback`. A failed file pulls the mark
//! back to just before it, so it is listed again until it is copied.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use futures::TryStreamExt;

use crate::cloudtrail::FileKind;
use crate::storage::{BlobStore, BlobStoreExt, Condition, ErrorKind, StorageResult};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WatermarkDoc {
    /// Keyed by the stream's S3 key prefix (`[p/]AWSLogs/[org/]acct/Kind/region/`).
    pub streams: BTreeMap<String, StreamMark>,
    /// Digest coverage of the account-region's archived logs, as of the last run.
    #[serde(default)]
    pub coverage: Option<Coverage>,
}

/// Whether digests already vouch for the archived logs: a log delivered after the
/// newest archived digest is not listed by any digest yet.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Coverage {
    pub newest_digest_time: Option<DateTime<Utc>>,
    pub logs_not_covered_by_digest: u64,
}

/// Coverage from this run's listings (the lookback window); an older newest digest is kept.
pub fn coverage(old: Option<&Coverage>, logs: &[Settled], digests: &[Settled]) -> Coverage {
    let mut fold = CoverageFold::new(old);
    let mut tally = fold.tally(FileKind::Digest);
    digests.iter().for_each(|d| tally.push(d));
    fold.add(tally);
    let mut tally = fold.tally(FileKind::Log);
    logs.iter().for_each(|l| tally.push(l));
    fold.add(tally);
    fold.coverage()
}

/// [`coverage`] and the newest archived file of an account-region, one settled file at a
/// time. A log is judged against the newest digest known when it is counted, so every
/// Digest stream of the account-region is added before its first Log stream is tallied.
#[derive(Debug, Clone, Default)]
pub struct CoverageFold {
    old_digest_time: Option<DateTime<Utc>>,
    listed_digest_time: Option<DateTime<Utc>>,
    logs_not_covered: u64,
    newest_done: Option<DateTime<Utc>>,
    logs_added: bool,
}

impl CoverageFold {
    pub fn new(old: Option<&Coverage>) -> Self {
        CoverageFold {
            old_digest_time: old.and_then(|o| o.newest_digest_time),
            ..Default::default()
        }
    }

    /// The coverage the document holds, again: repairing a future-dated one drops it
    /// before the first stream is tallied.
    pub fn keep_old(&mut self, old: Option<&Coverage>) {
        self.old_digest_time = old.and_then(|o| o.newest_digest_time);
    }

    fn newest_digest_time(&self) -> Option<DateTime<Utc>> {
        self.listed_digest_time.max(self.old_digest_time)
    }

    /// An empty tally for one stream of `kind`, judged against the digests added so far.
    pub fn tally(&self, kind: FileKind) -> StreamTally {
        StreamTally {
            kind,
            digest_time: self.newest_digest_time(),
            newest_done: None,
            logs_not_covered: 0,
        }
    }

    /// A stream's tally, once its listing is whole (a stream that could not be listed
    /// adds nothing, as its files were never known).
    pub fn add(&mut self, tally: StreamTally) {
        debug_assert!(
            !(tally.kind == FileKind::Digest && self.logs_added),
            "digests must be added before logs are counted"
        );
        match tally.kind {
            FileKind::Digest => self.listed_digest_time = self.listed_digest_time.max(tally.newest_done),
            FileKind::Log => {
                self.logs_not_covered += tally.logs_not_covered;
                self.logs_added = true;
            }
            FileKind::Insight => return,
        }
        self.newest_done = self.newest_done.max(tally.newest_done);
    }

    /// The newest archived log or digest of the streams added.
    pub fn newest_file_time(&self) -> Option<DateTime<Utc>> {
        self.newest_done
    }

    pub fn coverage(&self) -> Coverage {
        Coverage {
            newest_digest_time: self.newest_digest_time(),
            logs_not_covered_by_digest: self.logs_not_covered,
        }
    }
}

/// One stream's part of a [`CoverageFold`]: a few numbers, whatever the listing's length.
#[derive(Debug, Clone)]
pub struct StreamTally {
    kind: FileKind,
    digest_time: Option<DateTime<Utc>>,
    newest_done: Option<DateTime<Utc>>,
    logs_not_covered: u64,
}

impl StreamTally {
    pub fn push(&mut self, s: &Settled) {
        if !s.done {
            return;
        }
        self.newest_done = self.newest_done.max(s.time);
        let covered = matches!((s.time, self.digest_time), (Some(t), Some(d)) if t <= d);
        if self.kind == FileKind::Log && !covered {
            self.logs_not_covered += 1;
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamMark {
    pub time: DateTime<Utc>,
    /// The last key at or before `time` that is archived (informational).
    pub key: String,
    pub updated_at: DateTime<Utc>,
    pub run_id: String,
}

/// Streams of one source whose newest archived file is more than `max_gap` older than the
/// newest of the same kind among its sibling streams: archiving of that account-region
/// has stopped while the rest goes on, which the source's own backup gap cannot show.
/// Insights streams are left out (CloudTrail writes them only when there is something
/// unusual to say).
pub fn stale_streams<'a>(
    marks: impl IntoIterator<Item = (&'a str, DateTime<Utc>)>,
    max_gap: chrono::Duration,
) -> Vec<String> {
    use crate::cloudtrail::StreamPrefix;
    let marks: Vec<(&str, FileKind, DateTime<Utc>)> = marks
        .into_iter()
        .filter_map(|(stream, time)| StreamPrefix::parse(stream).map(|p| (stream, p.kind, time)))
        .filter(|(_, kind, _)| *kind != FileKind::Insight)
        .collect();
    let mut stale: Vec<String> = marks
        .iter()
        .filter(|(_, kind, time)| {
            let newest = marks.iter().filter(|(_, k, _)| k == kind).map(|(_, _, t)| *t).max();
            newest.is_some_and(|n| n - *time > max_gap)
        })
        .map(|(stream, _, _)| stream.to_string())
        .collect();
    stale.sort();
    stale
}

pub fn watermark_name(source: &str, account: &str, region: &str) -> String {
    format!("watermarks/{source}/{account}/{region}.json")
}

/// The document and the ETag to write it back with (None: it does not exist yet).
pub async fn load(state: &dyn BlobStore, name: &str) -> StorageResult<(WatermarkDoc, Option<String>)> {
    match super::get_json::<WatermarkDoc>(state, name).await? {
        Some(doc) => match doc.value {
            Ok(value) => Ok((value, Some(doc.etag))),
            Err(e) => {
                // Unreadable state costs a longer listing, never a skipped file.
                tracing::warn!(name, error = %e, "watermark is unreadable; listing from the start");
                Ok((WatermarkDoc::default(), Some(doc.etag)))
            }
        },
        None => Ok((WatermarkDoc::default(), None)),
    }
}

/// Writes only over the version we read, so a second writer is detected.
pub async fn save(
    state: &dyn BlobStore,
    name: &str,
    doc: &WatermarkDoc,
    etag: Option<String>,
) -> StorageResult<String> {
    let condition = match etag {
        Some(e) => Condition::IfMatch(e),
        None => Condition::IfNoneMatch,
    };
    match super::put_json(state, name, doc, condition, None).await {
        // A write retried after its answer was lost finds its own version there: the
        // same document is ours, not another writer's.
        Err(e) if matches!(e.kind, ErrorKind::PreconditionFailed | ErrorKind::AlreadyExists) => {
            match super::get_json::<WatermarkDoc>(state, name).await {
                Ok(Some(current)) if current.value.as_ref().ok() == Some(doc) => Ok(current.etag),
                _ => Err(e),
            }
        }
        other => other,
    }
}

/// The watermark documents of one source, each with its account and region, parsed
/// or with the reason it does not parse (each caller decides what that costs).
pub async fn source_docs(state: &dyn BlobStore, source: &str) -> StorageResult<Vec<SourceDoc>> {
    let folder = format!("watermarks/{source}/");
    let mut out = Vec::new();
    let mut blobs = state.list(&folder);
    while let Some(blob) = blobs.try_next().await? {
        let Some(doc) = super::get_json::<WatermarkDoc>(state, &blob.name).await? else {
            continue;
        };
        // watermarks/{source}/{account}/{region}.json
        let rest = blob.name[folder.len()..].trim_end_matches(".json");
        let (account, region) = rest.split_once('/').unwrap_or((rest, ""));
        out.push(SourceDoc {
            account: account.to_string(),
            region: region.to_string(),
            doc: doc.value.map_err(|source| UnreadableWatermark {
                name: blob.name.clone(),
                source,
            }),
        });
    }
    Ok(out)
}

pub struct SourceDoc {
    pub account: String,
    pub region: String,
    pub doc: Result<WatermarkDoc, UnreadableWatermark>,
}

/// A watermark document that does not parse, named by its blob.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {source}")]
pub struct UnreadableWatermark {
    pub name: String,
    #[source]
    pub source: serde_json::Error,
}

/// One listed file's fate, for computing the next mark.
#[derive(Debug, Clone)]
pub struct Settled {
    pub key: String,
    pub time: Option<DateTime<Utc>>,
    pub done: bool,
}

/// The next mark: past everything listed when all is done; just before the first
/// failure otherwise (possibly earlier than the old mark). Keys without a CloudTrail
/// time do not move it.
pub fn next_mark(old: Option<&StreamMark>, settled: &[Settled]) -> Option<(DateTime<Utc>, String)> {
    let mut fold = MarkFold::default();
    settled.iter().for_each(|s| fold.push(s));
    fold.finish(old)
}

/// [`next_mark`] one settled file at a time, for a listing too long to hold.
///
/// The time is exact with a few fields. The key of the failure branch (the newest done
/// key dated at or before the first failure minus a second) is not: a failure listed
/// later may be dated earlier than files already seen, so the done files that could
/// still be the answer are kept, as a staircase (time and key both rising; a file with
/// an earlier-or-equal time and a greater-or-equal key beside it never is). Listed in
/// key order, CloudTrail keys rise with their times, so that staircase is every file
/// seen: [`MarkFold::floor`] is what bounds it, by the day folders of the listing
/// rather than by the trail's history.
/// The most done files [`MarkFold`] keeps as candidates for the mark's key.
const MAX_STAIRS: usize = 10_000;

/// One second before `t`: the mark just before a failed file. The first instant chrono
/// can hold has nothing before it; [`MarkFold::finish`] holds the mark then.
fn just_before(t: DateTime<Utc>) -> DateTime<Utc> {
    t.checked_sub_signed(chrono::Duration::seconds(1))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[derive(Debug, Default)]
pub struct MarkFold {
    untimed_undone: bool,
    first_failure: Option<DateTime<Utc>>,
    newest: Option<(DateTime<Utc>, String)>,
    /// Done files that may yet be the failure branch's key, at most one per time.
    stairs: BTreeMap<DateTime<Utc>, String>,
    /// The greatest key of the done files folded below the floor: every one of them is
    /// at or before any mark the failures still to come can give.
    below: Option<String>,
    floor: Option<DateTime<Utc>>,
}

impl MarkFold {
    pub fn push(&mut self, s: &Settled) {
        let Some(t) = s.time else {
            self.untimed_undone |= !s.done;
            return;
        };
        if self.newest.as_ref().is_none_or(|(nt, nk)| (t, &s.key) > (*nt, nk)) {
            self.newest = Some((t, s.key.clone()));
        }
        if s.done {
            self.push_done(t, &s.key);
        } else {
            self.push_failure(t);
        }
    }

    fn before(&self) -> Option<DateTime<Utc>> {
        self.first_failure.map(just_before)
    }

    fn push_done(&mut self, t: DateTime<Utc>, key: &str) {
        if self.before().is_some_and(|b| t > b) {
            return;
        }
        if self
            .stairs
            .range(..=t)
            .next_back()
            .is_some_and(|(_, k)| k.as_str() >= key)
        {
            return;
        }
        let beaten: Vec<DateTime<Utc>> = self
            .stairs
            .range(t..)
            .take_while(|(_, k)| k.as_str() <= key)
            .map(|(at, _)| *at)
            .collect();
        for at in beaten {
            self.stairs.remove(&at);
        }
        self.stairs.insert(t, key.to_string());
        // Keys that sort against their times (a hostile listing) keep every file a stair;
        // the mark's time never depends on the staircase, only its informational key,
        // which then may be an older archived key than the newest.
        while self.stairs.len() > MAX_STAIRS {
            self.stairs.pop_first();
        }
    }

    fn push_failure(&mut self, t: DateTime<Utc>) {
        if self.first_failure.is_some_and(|f| f <= t) {
            return;
        }
        self.first_failure = Some(t);
        if self.floor.is_some_and(|floor| t < floor) {
            // The promise behind `below` is broken (a file dated before its day folder):
            // what was folded may be after the mark now. Forgetting it keeps the key
            // one that is archived and at or before the mark, if not the newest such.
            self.below = None;
        }
        let before = just_before(t);
        let after = before
            .checked_add_signed(chrono::Duration::nanoseconds(1))
            .unwrap_or(before);
        let _late = self.stairs.split_off(&after);
    }

    /// Every file pushed after this is dated at or after `floor` (its listing has passed
    /// the day folders before it): the staircase below the floor is folded into one key,
    /// since any failure still to come leaves all of it at or before the mark.
    pub fn floor(&mut self, floor: DateTime<Utc>) {
        if self.floor.is_some_and(|f| f >= floor) {
            return;
        }
        self.floor = Some(floor);
        let kept = self.stairs.split_off(&just_before(floor));
        let folded = std::mem::replace(&mut self.stairs, kept);
        if let Some((_, key)) = folded.into_iter().next_back() {
            self.below = self.below.take().max(Some(key));
        }
    }

    /// How many done files the fold holds (what its memory grows with).
    pub fn held(&self) -> usize {
        self.stairs.len()
    }

    pub fn finish(self, old: Option<&StreamMark>) -> Option<(DateTime<Utc>, String)> {
        // A file left undone whose time is unknown could sit anywhere, and nothing is
        // before one named for the first instant chrono can hold: hold the mark.
        if self.untimed_undone || self.first_failure == Some(DateTime::<Utc>::MIN_UTC) {
            return old.map(|o| (o.time, o.key.clone()));
        }
        match self.before() {
            Some(before) => {
                let stair = self.stairs.range(..=before).next_back().map(|(_, k)| k.clone());
                Some((before, stair.max(self.below).unwrap_or_default()))
            }
            None => match (old, self.newest) {
                (Some(o), Some((t, k))) if t > o.time => Some((t, k)),
                (Some(o), _) => Some((o.time, o.key.clone())),
                (None, n) => n,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_named_for_the_first_instant_chrono_holds_keeps_the_mark() {
        let old = StreamMark {
            time: "2026-11-25T00:00:00Z".parse().unwrap(),
            key: "a".into(),
            updated_at: "2026-11-25T00:00:00Z".parse().unwrap(),
            run_id: "r".into(),
        };
        let mut fold = MarkFold::default();
        fold.floor(DateTime::<Utc>::MIN_UTC);
        fold.push(&Settled {
            key: "z".into(),
            time: Some(DateTime::<Utc>::MIN_UTC),
            done: false,
        });
        assert_eq!(fold.finish(Some(&old)), Some((old.time, "a".into())));
    }

    #[test]
    fn the_staircase_is_capped_and_the_mark_time_stays_exact() {
        // No floor ever comes (keys that vouch for no folder): every file is a stair.
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |i: i64| start + chrono::Duration::minutes(i);
        let mut fold = MarkFold::default();
        for i in 0..3 * MAX_STAIRS as i64 {
            fold.push(&Settled {
                key: format!("k{i:08}"),
                time: Some(at(i)),
                done: true,
            });
            assert!(fold.held() <= MAX_STAIRS);
        }
        let failed = 2 * MAX_STAIRS as i64 + 7;
        fold.push(&Settled {
            key: "late-failure".into(),
            time: Some(at(failed)),
            done: false,
        });
        let (time, key) = fold.finish(None).unwrap();
        assert_eq!(time, at(failed) - chrono::Duration::seconds(1));
        assert_eq!(key, format!("k{:08}", failed - 1));
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn an_undone_file_without_a_time_holds_the_mark() {
        let old = StreamMark {
            time: t("2026-11-25T00:00:00Z"),
            key: "a".into(),
            updated_at: t("2026-11-25T00:00:00Z"),
            run_id: "r".into(),
        };
        let settled = vec![
            s("b", "2026-11-25T01:00:00Z", true),
            Settled {
                key: "odd".into(),
                time: None,
                done: false,
            },
        ];
        assert_eq!(next_mark(Some(&old), &settled), Some((old.time, "a".into())));
        assert_eq!(next_mark(None, &settled), None);
    }

    #[tokio::test]
    async fn a_write_retried_after_a_lost_answer_is_not_another_writer() {
        let state = crate::storage::memory::MemoryBlobStore::new();
        let name = watermark_name("s", "111122223333", "us-east-1");
        let (mut doc, etag) = load(&state, &name).await.unwrap();
        doc.coverage = Some(Coverage::default());
        // The first attempt landed, its answer was lost; the retry meets our own version.
        save(&state, &name, &doc, etag.clone()).await.unwrap();
        assert!(save(&state, &name, &doc, etag.clone()).await.is_ok());
        // A different document over a stale version is still refused.
        let mut other = doc.clone();
        other.coverage = Some(Coverage {
            newest_digest_time: None,
            logs_not_covered_by_digest: 7,
        });
        assert!(save(&state, &name, &other, etag).await.is_err());
    }

    fn s(key: &str, time: &str, done: bool) -> Settled {
        Settled {
            key: key.into(),
            time: Some(t(time)),
            done,
        }
    }

    fn mark(time: &str) -> StreamMark {
        StreamMark {
            time: t(time),
            key: "old".into(),
            updated_at: t(time),
            run_id: "r".into(),
        }
    }

    #[test]
    fn advances_to_the_newest_when_all_done() {
        let settled = [
            s("a", "2026-01-01T00:00:00Z", true),
            s("b", "2026-01-01T01:00:00Z", true),
        ];
        assert_eq!(next_mark(None, &settled), Some((t("2026-01-01T01:00:00Z"), "b".into())));
    }

    #[test]
    fn never_moves_past_a_failed_file() {
        let settled = [
            s("a", "2026-01-01T00:00:00Z", true),
            s("b", "2026-01-01T01:00:00Z", false),
            s("c", "2026-01-01T02:00:00Z", true),
        ];
        let (time, key) = next_mark(None, &settled).unwrap();
        assert!(time < t("2026-01-01T01:00:00Z"));
        assert_eq!(key, "a");
    }

    #[test]
    fn a_late_failure_pulls_the_mark_back() {
        let old = mark("2026-01-03T00:00:00Z");
        let settled = [s("late", "2026-01-02T00:00:00Z", false)];
        let (time, _) = next_mark(Some(&old), &settled).unwrap();
        assert!(time < t("2026-01-02T00:00:00Z"));
    }

    #[test]
    fn logs_after_the_newest_digest_are_not_covered() {
        let logs = [
            s("l1", "2026-01-01T00:30:00Z", true),
            s("l2", "2026-01-01T01:30:00Z", true),
            s("l3", "2026-01-01T01:40:00Z", false),
        ];
        let digests = [s("d1", "2026-01-01T01:00:10Z", true)];
        let c = coverage(None, &logs, &digests);
        assert_eq!(c.logs_not_covered_by_digest, 1);
        assert_eq!(coverage(None, &logs, &[]).logs_not_covered_by_digest, 2);
        let kept = coverage(Some(&c), &logs, &[]);
        assert_eq!(kept.newest_digest_time, c.newest_digest_time);
    }

    #[test]
    fn an_empty_listing_keeps_the_old_mark() {
        let old = mark("2026-01-03T00:00:00Z");
        assert_eq!(next_mark(Some(&old), &[]).unwrap().0, old.time);
        assert_eq!(next_mark(None, &[]), None);
    }

    #[test]
    fn a_stream_left_behind_by_its_siblings_is_stale() {
        let gap = chrono::Duration::hours(8);
        let marks = [
            ("AWSLogs/111122223333/CloudTrail/us-east-1/", t("2026-12-01T12:00:00Z")),
            ("AWSLogs/111122223333/CloudTrail/eu-west-1/", t("2026-12-01T03:00:00Z")),
            ("AWSLogs/444455556666/CloudTrail/us-east-1/", t("2026-12-01T05:00:00Z")),
            (
                "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/",
                t("2026-12-01T12:00:00Z"),
            ),
            // Digests are judged against digests, Insights never.
            (
                "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/",
                t("2026-12-01T11:00:00Z"),
            ),
            (
                "AWSLogs/111122223333/CloudTrail-Insight/us-east-1/",
                t("2026-11-01T00:00:00Z"),
            ),
            ("not a stream", t("2000-01-01T00:00:00Z")),
        ];
        assert_eq!(
            stale_streams(marks.iter().map(|(s, t)| (*s, *t)), gap),
            vec!["AWSLogs/111122223333/CloudTrail/eu-west-1/"]
        );
        assert!(stale_streams(std::iter::empty(), gap).is_empty());
    }

    #[test]
    fn a_later_listed_failure_dated_earlier_finds_the_done_key_before_it() {
        // Settled in listing order; the failure is listed last but dated before "b".
        let settled = [
            s("a", "2026-01-01T00:00:00Z", true),
            s("b", "2026-01-01T02:00:00Z", true),
            s("c", "2026-01-01T03:00:00Z", true),
            s("d", "2026-01-01T01:00:00Z", false),
        ];
        assert_eq!(next_mark(None, &settled), Some((t("2026-01-01T00:59:59Z"), "a".into())));
    }

    #[test]
    fn the_floor_bounds_what_the_fold_holds_and_keeps_it_exact() {
        let start = t("2026-01-01T00:00:00Z");
        let mut fold = MarkFold::default();
        let mut all = Vec::new();
        for i in 0..10_000i64 {
            let at = start + chrono::Duration::minutes(5 * i);
            let item = Settled {
                key: format!("k{i:06}"),
                time: Some(at),
                done: i != 9_990,
            };
            fold.push(&item);
            all.push(item);
            // Listing passed this file's day: later files are dated from it on.
            fold.floor(at.date_naive().and_time(chrono::NaiveTime::MIN).and_utc());
            assert!(fold.held() <= 24 * 12 + 1, "{} held", fold.held());
        }
        assert_eq!(fold.finish(None), next_mark_whole(None, &all));
    }

    /// `next_mark` as it was before the folds: the reference the folds are held to.
    fn next_mark_whole(old: Option<&StreamMark>, settled: &[Settled]) -> Option<(DateTime<Utc>, String)> {
        if settled.iter().any(|s| !s.done && s.time.is_none()) {
            return old.map(|o| (o.time, o.key.clone()));
        }
        let first_failure = settled.iter().filter(|s| !s.done).filter_map(|s| s.time).min();
        match first_failure {
            Some(f) => {
                let before = f - chrono::Duration::seconds(1);
                let key = settled
                    .iter()
                    .filter(|s| s.done && s.time.is_some_and(|t| t <= before))
                    .map(|s| s.key.clone())
                    .max()
                    .unwrap_or_default();
                Some((before, key))
            }
            None => {
                let newest = settled.iter().filter_map(|s| s.time.map(|t| (t, s.key.clone()))).max();
                match (old, newest) {
                    (Some(o), Some((t, k))) if t > o.time => Some((t, k)),
                    (Some(o), _) => Some((o.time, o.key.clone())),
                    (None, n) => n,
                }
            }
        }
    }

    /// `coverage` as it was before the folds.
    fn coverage_whole(old: Option<&Coverage>, logs: &[Settled], digests: &[Settled]) -> Coverage {
        let listed = digests.iter().filter(|d| d.done).filter_map(|d| d.time).max();
        let newest_digest_time = listed.max(old.and_then(|o| o.newest_digest_time));
        let logs_not_covered_by_digest = logs
            .iter()
            .filter(|l| l.done)
            .filter(|l| match (l.time, newest_digest_time) {
                (Some(t), Some(d)) => t > d,
                _ => true,
            })
            .count() as u64;
        Coverage {
            newest_digest_time,
            logs_not_covered_by_digest,
        }
    }

    mod folds {
        //! Property tests: the folds, fed in chunks of any size, give what the whole-list
        //! computations gave.

        use super::*;
        use proptest::prelude::*;

        fn base() -> DateTime<Utc> {
            t("2026-01-01T00:00:00Z")
        }

        /// Files with few distinct keys and times (ties matter), some untimed, some undone.
        fn settled() -> impl Strategy<Value = Vec<Settled>> {
            prop::collection::vec(
                (
                    "[a-f]{1,3}",
                    prop::option::weighted(0.9, 0i64..400),
                    prop::bool::weighted(0.8),
                ),
                0..60,
            )
            .prop_map(|items| {
                items
                    .into_iter()
                    .map(|(key, secs, done)| Settled {
                        key,
                        time: secs.map(|s| base() + chrono::Duration::seconds(s)),
                        done,
                    })
                    .collect()
            })
        }

        fn old_mark() -> impl Strategy<Value = Option<StreamMark>> {
            prop::option::of(0i64..400).prop_map(|s| {
                s.map(|s| StreamMark {
                    time: base() + chrono::Duration::seconds(s),
                    key: "old".into(),
                    updated_at: base(),
                    run_id: "r".into(),
                })
            })
        }

        /// `items` cut into consecutive chunks at the `cuts` (indexes into it, any order).
        fn chunked(items: &[Settled], cuts: &[prop::sample::Index]) -> Vec<Vec<Settled>> {
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(items.len() + 1)).collect();
            at.push(0);
            at.push(items.len());
            at.sort();
            at.windows(2).map(|w| items[w[0]..w[1]].to_vec()).collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn folding_in_chunks_gives_next_mark(
                items in settled(), old in old_mark(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)
            ) {
                let mut fold = MarkFold::default();
                for chunk in chunked(&items, &cuts) {
                    chunk.iter().for_each(|s| fold.push(s));
                }
                prop_assert_eq!(fold.finish(old.as_ref()), next_mark_whole(old.as_ref(), &items));
            }

            /// Listed in key order, each chunk ending with a floor at the earliest time
            /// still to come (what the day folders give a sync): the fold holds less
            /// and still agrees.
            #[test]
            fn folding_with_floors_gives_next_mark(
                items in settled(), old in old_mark(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)
            ) {
                let mut items = items;
                items.sort_by_key(|s| s.time);
                let mut fold = MarkFold::default();
                let chunks = chunked(&items, &cuts);
                for (i, chunk) in chunks.iter().enumerate() {
                    chunk.iter().for_each(|s| fold.push(s));
                    let rest = chunks[i + 1..].iter().flatten().filter_map(|s| s.time).min();
                    if let Some(floor) = rest {
                        fold.floor(floor);
                    }
                }
                prop_assert_eq!(fold.finish(old.as_ref()), next_mark_whole(old.as_ref(), &items));
            }

            #[test]
            fn folding_streams_gives_coverage(
                logs in prop::collection::vec(settled(), 0..3),
                digests in prop::collection::vec(settled(), 0..3),
                old in prop::option::of(prop::option::of(0i64..400)),
            ) {
                let old = old.map(|d| Coverage {
                    newest_digest_time: d.map(|s| base() + chrono::Duration::seconds(s)),
                    logs_not_covered_by_digest: 3,
                });
                let mut fold = CoverageFold::new(old.as_ref());
                for (kind, streams) in [(FileKind::Digest, &digests), (FileKind::Log, &logs)] {
                    for stream in streams {
                        let mut tally = fold.tally(kind);
                        stream.iter().for_each(|s| tally.push(s));
                        fold.add(tally);
                    }
                }
                let (all_logs, all_digests) = (logs.concat(), digests.concat());
                prop_assert_eq!(fold.coverage(), coverage_whole(old.as_ref(), &all_logs, &all_digests));
                prop_assert_eq!(coverage(old.as_ref(), &all_logs, &all_digests), fold.coverage());
                let newest = all_logs.iter().chain(&all_digests).filter(|s| s.done).filter_map(|s| s.time).max();
                prop_assert_eq!(fold.newest_file_time(), newest);
            }
        }
    }
}
