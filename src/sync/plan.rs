//! What one stream needs: list S3 from the watermark minus the lookback, list the
//! archive for the same date folders, and compare. Nothing is downloaded here. The
//! listing is planned a chunk at a time, so a first run over years of history holds a
//! chunk, not the history.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::Datelike;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::{BoxFuture, FutureExt};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::watermark::StreamMark;
use crate::archive::{blob_prefix, ArchiveName, META_SOURCE_ETAG};
use crate::cloudtrail::{CtKey, StreamPrefix};
use crate::storage::{BlobInfo, BlobStore, BlobStoreExt, Source, SourceExt, SourceObject, StorageResult};

const ARCHIVE_LIST_CONCURRENCY: usize = 8;
/// Listed keys planned at once: one S3 page. What a stream holds is a few of these and
/// the archive listings of their day folders, whatever the length of its history.
pub const PLAN_CHUNK: usize = 1_000;

#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub object: SourceObject,
    pub time: Option<DateTime<Utc>>,
    /// The archived blob of the same key, when its source ETag or size differs: the
    /// bytes are compared, never overwritten.
    pub existing: Option<BlobInfo>,
}

/// The plan of one chunk of a stream's listing.
#[derive(Debug, Default)]
pub struct StreamPlan {
    pub to_copy: Vec<PlannedFile>,
    /// Already archived with the same ETag and size: no download.
    pub already_archived: Vec<(String, Option<DateTime<Utc>>)>,
    /// Keys named for a time after the run may trust (its start plus
    /// [`FUTURE_TOLERANCE`]): not copied, and never allowed to move a watermark, or one
    /// planted key dated 2099 would hide every later delivery of its stream.
    pub future: Vec<String>,
    /// The day folder of the chunk's last CloudTrail key: every key listed after it is in
    /// this folder or a later one.
    pub last_day: Option<NaiveDate>,
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

/// Compares chunks of one stream's listing with the archive.
pub struct ChunkPlanner<'a> {
    pub archive: &'a dyn BlobStore,
    pub source_name: &'a str,
    pub stream: &'a StreamPrefix,
    pub trusted_until: DateTime<Utc>,
    /// The archive listing of the previous chunk's last folder: a day folder split across
    /// two chunks is listed once.
    last_folder: Option<FolderListing>,
    /// The last key planned, to check that the listing comes in key order; once it has
    /// not, no chunk vouches for where the keys after it sort (`last_day` stays unset).
    last_key: Option<String>,
    out_of_order: bool,
}

/// A day folder of the listing and the archive's blobs in it.
type FolderListing = (String, Vec<BlobInfo>);

/// Where a stream's listing starts: the watermark's day minus the lookback, or the start.
pub fn start_after(stream: &StreamPrefix, mark: Option<&StreamMark>, lookback: Duration) -> Option<String> {
    mark.and_then(|m| rescan_from(m.time, lookback))
        .map(|day| stream.start_after_for_day(day))
}

/// The plans of a stream's listing, a chunk of [`PLAN_CHUNK`] keys at a time, each made
/// only when asked for.
pub fn plan_chunks<'a>(
    src: &'a dyn Source,
    planner: ChunkPlanner<'a>,
    key_prefix: &'a str,
    start_after: Option<&'a str>,
) -> BoxStream<'a, StorageResult<StreamPlan>> {
    let chunks = src
        .list(key_prefix, start_after)
        .try_chunks(PLAN_CHUNK)
        .map_err(|e| e.1);
    futures::stream::try_unfold((chunks, planner), |(mut chunks, mut planner)| async move {
        let Some(objects) = chunks.try_next().await? else {
            return Ok(None);
        };
        let plan = planner.plan(objects).await?;
        Ok(Some((plan, (chunks, planner))))
    })
    .boxed()
}

impl<'a> ChunkPlanner<'a> {
    /// The day folder a key vouches for as the listing's position: only a key whose
    /// folder is the canonical `YYYY/MM/DD/` of its parsed day (chrono also reads `+2026`,
    /// ` 1` or `1`, which sort elsewhere), not named for a later time than the run trusts,
    /// in a listing that has come in key order. A planted key cannot then make the fold
    /// forget files it still needs.
    fn vouched_day(&self, key: &str, parsed: Option<&CtKey>) -> Option<NaiveDate> {
        let k = parsed?;
        // Four-digit years only: their folders sort as their dates do.
        let canonical = (1..=9999).contains(&k.day.year()) && key.starts_with(&self.stream.day_prefix(k.day));
        (canonical && !self.out_of_order && k.time <= self.trusted_until).then_some(k.day)
    }

    pub fn new(
        archive: &'a dyn BlobStore,
        source_name: &'a str,
        stream: &'a StreamPrefix,
        trusted_until: DateTime<Utc>,
    ) -> Self {
        ChunkPlanner {
            archive,
            source_name,
            stream,
            trusted_until,
            last_folder: None,
            last_key: None,
            out_of_order: false,
        }
    }

    /// The archive's blobs in the folders of `folders` (in listing order), the last
    /// folder's kept for the next chunk.
    async fn archived(&mut self, folders: &[&String]) -> StorageResult<HashMap<String, BlobInfo>> {
        let cached = self.last_folder.take();
        let fresh = folders
            .iter()
            .filter(|f| cached.as_ref().is_none_or(|(c, _)| c != **f))
            .map(|f| (*f).clone());
        let (archive, source_name) = (self.archive, self.source_name);
        // Made before they are run: a closure inside the stream trips the compiler's
        // lifetime inference once the plan is boxed.
        let listings: Vec<BoxFuture<'a, StorageResult<FolderListing>>> = fresh
            .map(|folder| {
                async move {
                    let blobs = archive.list_all(&blob_prefix(source_name, &folder)).await?;
                    Ok((folder, blobs))
                }
                .boxed()
            })
            .collect();
        let mut listed: Vec<FolderListing> = futures::stream::iter(listings)
            .buffer_unordered(ARCHIVE_LIST_CONCURRENCY)
            .try_collect()
            .await?;
        listed.extend(cached.filter(|(c, _)| folders.contains(&c)));
        let last = folders.last().copied();
        let mut archived = HashMap::new();
        for (folder, blobs) in listed {
            archived.extend(blobs.iter().map(|b| (b.name.clone(), b.clone())));
            if Some(&folder) == last {
                self.last_folder = Some((folder, blobs));
            }
        }
        Ok(archived)
    }

    /// Checks the chunk's keys in the order the listing gave them (grouping by folder
    /// below would sort away a key that came back out of order).
    fn note_order(&mut self, objects: &[SourceObject]) {
        let previous = self.last_key.as_deref().into_iter();
        let keys: Vec<&str> = previous.chain(objects.iter().map(|o| o.key.as_str())).collect();
        self.out_of_order |= keys.windows(2).any(|w| w[0] >= w[1]);
        if let Some(last) = objects.last() {
            self.last_key = Some(last.key.clone());
        }
    }

    /// One chunk of the listing (in key order) against the archive.
    pub async fn plan(&mut self, objects: Vec<SourceObject>) -> StorageResult<StreamPlan> {
        self.note_order(&objects);
        let mut folders: BTreeMap<String, Vec<SourceObject>> = BTreeMap::new();
        for o in objects {
            let folder = o.key.rsplit_once('/').map(|(f, _)| format!("{f}/")).unwrap_or_default();
            folders.entry(folder).or_default().push(o);
        }
        let names: Vec<&String> = folders.keys().collect();
        let archived = self.archived(&names).await?;

        let mut plan = StreamPlan::default();
        for object in folders.into_values().flatten() {
            let parsed = CtKey::parse(&self.stream.trail_prefix, &object.key).ok();
            plan.last_day = self.vouched_day(&object.key, parsed.as_ref()).or(plan.last_day);
            let time = parsed.map(|k| k.time);
            if time.is_some_and(|t| t > self.trusted_until) {
                plan.future.push(object.key);
                continue;
            }
            // A key the archive cannot hold is planned as a copy, which fails it, named.
            let name = ArchiveName::new(self.source_name, &object.key).ok();
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

    #[tokio::test]
    async fn a_chunk_whose_keys_come_out_of_order_vouches_for_no_day() {
        let archive = crate::storage::memory::MemoryBlobStore::new();
        let stream = StreamPrefix::parse("AWSLogs/111122223333/CloudTrail/us-east-1/").unwrap();
        let trusted: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let object = |day: &str, stamp: &str| SourceObject {
            key: format!(
                "AWSLogs/111122223333/CloudTrail/us-east-1/{day}/111122223333_CloudTrail_us-east-1_{stamp}_x.json.gz"
            ),
            size: 1,
            etag: "e".into(),
            last_modified: trusted,
        };
        let in_order = vec![
            object("2026/11/01", "20261101T0100Z"),
            object("2026/11/03", "20261103T0100Z"),
        ];
        let mut planner = ChunkPlanner::new(&archive, "s", &stream, trusted);
        let plan = planner.plan(in_order).await.unwrap();
        assert_eq!(plan.last_day, NaiveDate::from_ymd_opt(2026, 11, 3));
        // The later folder first: grouped by folder the chunk would look sorted.
        let reversed = vec![
            object("2026/11/09", "20261109T0100Z"),
            object("2026/11/05", "20261105T0100Z"),
        ];
        let mut planner = ChunkPlanner::new(&archive, "s", &stream, trusted);
        assert_eq!(planner.plan(reversed).await.unwrap().last_day, None);
        // And once out of order, the listing vouches for nothing after, in order or not.
        let plan = planner
            .plan(vec![object("2026/11/10", "20261110T0100Z")])
            .await
            .unwrap();
        assert_eq!(plan.last_day, None);
    }

    #[test]
    fn only_canonical_past_keys_of_an_ordered_listing_vouch_for_their_day() {
        let archive = crate::storage::memory::MemoryBlobStore::new();
        let stream = StreamPrefix::parse("AWSLogs/111122223333/CloudTrail/us-east-1/").unwrap();
        let trusted: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let mut planner = ChunkPlanner::new(&archive, "s", &stream, trusted);
        let key = |folder: &str, stamp: &str| {
            format!("AWSLogs/111122223333/CloudTrail/us-east-1/{folder}/111122223333_CloudTrail_us-east-1_{stamp}_x.json.gz")
        };
        let day = |s: &str| Some(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
        let vouched = |p: &ChunkPlanner, k: &str| p.vouched_day(k, CtKey::parse("", k).ok().as_ref());
        assert_eq!(
            vouched(&planner, &key("2026/11/02", "20261102T0100Z")),
            day("2026-11-02")
        );
        // chrono reads these as dates, but they sort elsewhere than the dates do.
        assert_eq!(vouched(&planner, &key("+2026/11/02", "20261102T0100Z")), None);
        assert_eq!(vouched(&planner, &key("2026/11/2", "20261102T0100Z")), None);
        // Named for a time after the run trusts.
        assert_eq!(vouched(&planner, &key("2099/01/01", "20990101T0100Z")), None);
        // A listing that has gone back once vouches for nothing after.
        planner.out_of_order = true;
        assert_eq!(vouched(&planner, &key("2026/11/03", "20261103T0100Z")), None);
    }

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
