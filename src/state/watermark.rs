//! Per account-region watermarks: `watermarks/{source}/{account}/{region}.json`.
//!
//! A stream's mark is the time up to which every listed file is archived. The next
//! run lists from the mark's day minus `sync.lookback`. A failed file pulls the mark
//! back to just before it, so it is listed again until it is copied.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use futures::TryStreamExt;

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
    use crate::cloudtrail::{FileKind, StreamPrefix};
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
    // A file left undone whose time is unknown could sit anywhere: hold the mark.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
