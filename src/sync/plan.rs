//! What one stream needs: list S3 from the watermark minus the lookback, list the
//! archive for the same date folders, and compare. Nothing is downloaded here.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use super::watermark::StreamMark;
use crate::archive::{blob_prefix, ArchiveName, META_SOURCE_ETAG};
use crate::cloudtrail::{CtKey, StreamPrefix};
use crate::storage::{BlobInfo, BlobStore, BlobStoreExt, Source, SourceExt, SourceObject, StorageResult};

const ARCHIVE_LIST_CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub object: SourceObject,
    pub time: Option<DateTime<Utc>>,
    /// The archived blob of the same key, when its source ETag or size differs: the
    /// bytes are compared, never overwritten.
    pub existing: Option<BlobInfo>,
}

#[derive(Debug, Default)]
pub struct StreamPlan {
    pub to_copy: Vec<PlannedFile>,
    /// Already archived with the same ETag and size: no download.
    pub already_archived: Vec<(String, Option<DateTime<Utc>>)>,
    /// Keys named for a time after the run may trust (its start plus
    /// [`FUTURE_TOLERANCE`]): not copied, and never allowed to move a watermark, or one
    /// planted key dated 2099 would hide every later delivery of its stream.
    pub future: Vec<String>,
}

pub use crate::cloudtrail::key::FUTURE_TOLERANCE;

impl StreamPlan {
    pub fn bytes_to_copy(&self) -> u64 {
        self.to_copy
            .iter()
            .filter(|f| f.existing.is_none())
            .map(|f| f.object.size)
            .sum()
    }
}

pub async fn plan_stream(
    src: &dyn Source,
    archive: &dyn BlobStore,
    source_name: &str,
    stream: &StreamPrefix,
    mark: Option<&StreamMark>,
    lookback: Duration,
    trusted_until: DateTime<Utc>,
) -> StorageResult<StreamPlan> {
    let start_after = mark
        .and_then(|m| rescan_from(m.time, lookback))
        .map(|day| stream.start_after_for_day(day));
    let key_prefix = stream.key_prefix();
    // Held whole: the plan is the window's keys, bounded by the lookback, not the bucket.
    let objects: Vec<SourceObject> = src.list(&key_prefix, start_after.as_deref()).try_collect().await?;

    // Archive listings per folder of the listed keys: bounded by the window, not the archive.
    let mut folders: BTreeMap<String, Vec<SourceObject>> = BTreeMap::new();
    for o in objects {
        let folder = o.key.rsplit_once('/').map(|(f, _)| format!("{f}/")).unwrap_or_default();
        folders.entry(folder).or_default().push(o);
    }
    let archived: HashMap<String, BlobInfo> = futures::stream::iter(folders.keys().cloned())
        .map(|folder| async move { archive.list_all(&blob_prefix(source_name, &folder)).await })
        .buffer_unordered(ARCHIVE_LIST_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .map(|b| (b.name.clone(), b))
        .collect();

    let mut plan = StreamPlan::default();
    for object in folders.into_values().flatten() {
        let time = CtKey::parse(&stream.trail_prefix, &object.key).ok().map(|k| k.time);
        if time.is_some_and(|t| t > trusted_until) {
            plan.future.push(object.key);
            continue;
        }
        // A key the archive cannot hold is planned as a copy, which fails it, named.
        let name = ArchiveName::new(source_name, &object.key).ok();
        match name.and_then(|n| archived.get(n.as_str())) {
            Some(b) if unchanged(b, &object) => plan.already_archived.push((object.key, time)),
            Some(b) => plan.to_copy.push(PlannedFile {
                object,
                time,
                existing: Some(b.clone()),
            }),
            None => plan.to_copy.push(PlannedFile {
                object,
                time,
                existing: None,
            }),
        }
    }
    Ok(plan)
}

/// The first day to list again: the watermark minus the lookback. A lookback that reaches
/// past the earliest representable date (a mistake config check refuses) lists from the
/// start rather than overflowing.
pub fn rescan_from(mark: DateTime<Utc>, lookback: Duration) -> Option<chrono::NaiveDate> {
    let lookback = chrono::Duration::from_std(lookback).ok()?;
    mark.checked_sub_signed(lookback).map(|t| t.date_naive())
}

fn unchanged(blob: &BlobInfo, object: &SourceObject) -> bool {
    blob.size == object.size && blob.metadata.get(META_SOURCE_ETAG).is_some_and(|e| *e == object.etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_lookback_lists_from_the_start_instead_of_overflowing() {
        let mark: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        assert_eq!(
            rescan_from(mark, Duration::from_secs(72 * 3600)),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 22)
        );
        // 300000 years fits a std Duration and a chrono Duration but not a date.
        let years = Duration::from_secs(300_000 * 31_557_600);
        assert_eq!(rescan_from(mark, years), None);
        assert_eq!(rescan_from(mark, Duration::MAX), None);
        assert_eq!(rescan_from(DateTime::<Utc>::MIN_UTC, Duration::from_secs(1)), None);
    }
}
