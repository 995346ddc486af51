//! sync over the memory stores: copy once, MD5 checks, conflicts.

use super::*;

#[tokio::test]
async fn sync_over_memory_copies_once_then_skips() {
    let src = Arc::new(MemorySource::new("b"));
    let files = seed(&src);
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let j = job(src.clone(), archive.clone(), state.clone());
    let r = j.run().await.unwrap();
    assert_eq!(r.sources[0].files_copied, files.len() as u64);
    assert!(r.sources[0].complete);
    let r2 = j.run().await.unwrap();
    assert_eq!(r2.sources[0].files_copied, 0);
    assert_eq!(r2.sources[0].files_skipped, files.len() as u64);
    for f in &files {
        let (bytes, _) = trailvault::storage::read_all(archive.as_ref(), &format!("m/{}", f.key))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bytes.to_vec(), f.body);
    }
}

/// A source whose ETags lie about one object's bytes, as a corrupting network or
/// S3 bug would: trailvault's own MD5 check (no SDK checksum here) must catch it.
struct LyingSource {
    inner: MemorySource,
    bad_key: String,
}

#[async_trait::async_trait]
impl Source for LyingSource {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<PageToken>,
    ) -> StorageResult<Page<SourceObject>> {
        self.inner.list_page(prefix, start_after, token).await
    }
    async fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        self.inner.list_folders(prefix).await
    }
    async fn get(&self, key: &str) -> StorageResult<SourceBody> {
        let mut got = self.inner.get(key).await?;
        if key == self.bad_key {
            use futures::TryStreamExt;
            let chunks: Vec<Bytes> = got.body.try_collect().await?;
            let mut bytes = chunks.concat();
            bytes[10] ^= 0x20;
            got.body = Box::pin(futures::stream::once(async move { Ok(Bytes::from(bytes)) }));
        }
        Ok(got)
    }
}

#[tokio::test]
async fn md5_mismatch_against_the_etag_fails_the_file_and_holds_the_watermark() {
    let inner = MemorySource::new("b");
    let files = seed(&inner);
    let bad = files
        .iter()
        .find(|f| f.key.contains("/CloudTrail/"))
        .unwrap()
        .key
        .clone();
    let src = Arc::new(LyingSource {
        inner,
        bad_key: bad.clone(),
    });
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let r = job(src.clone(), archive.clone(), state.clone()).run().await.unwrap();
    let s = &r.sources[0];
    assert_eq!(s.files_failed, 1);
    assert!(s.failures[0].error.contains("MD5"), "{:?}", s.failures);
    assert!(!s.complete);
    assert!(archive.head(&format!("m/{bad}")).await.unwrap().is_none());
    // The stream's watermark stays before the failed file.
    let stream_prefix = bad.rsplitn(5, '/').last().unwrap().to_string() + "/";
    let wm_name = format!("watermarks/m/{}/{}.json", "111122223333", "us-east-1");
    let (doc, _) = trailvault::storage::read_all(state.as_ref(), &wm_name)
        .await
        .unwrap()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    let bad_time = trailvault::cloudtrail::CtKey::parse("", &bad).unwrap().time;
    let mark: chrono::DateTime<chrono::Utc> = doc["streams"][&stream_prefix]["time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(mark < bad_time, "watermark {mark} passed the failed file at {bad_time}");
    // Health: not a complete run, so the backup gap is not reset.
    let (h, _) = trailvault::storage::read_all(state.as_ref(), "health/m.json")
        .await
        .unwrap()
        .unwrap();
    let h: serde_json::Value = serde_json::from_slice(&h).unwrap();
    assert!(h["last_success_started_at"].is_null(), "{h}");
}

#[tokio::test]
async fn tampered_archive_copy_is_reported_as_conflict_not_overwritten() {
    let src = Arc::new(MemorySource::new("b"));
    let files = seed(&src);
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let j = job(src.clone(), archive.clone(), state.clone());
    j.run().await.unwrap();
    let key = &files[1].key;
    src.put(
        key,
        Bytes::from_static(b"rewritten"),
        BTreeMap::new(),
        chrono::Utc::now(),
    );
    let r = j.run().await.unwrap();
    assert_eq!(r.sources[0].conflicts, vec![key.clone()]);
    let (bytes, _) = trailvault::storage::read_all(archive.as_ref(), &format!("m/{key}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes.to_vec(), files[1].body);
}

/// One request at a time to each store, eight files in flight: every copy holds its S3
/// read open while it writes the archive, and planning lists many folders at once, so a
/// path that held one store's permit while asking the same store again would hang here.
#[tokio::test]
async fn a_sync_with_one_request_at_a_time_to_each_store_completes() {
    use trailvault::storage::limit::{LimitedSource, LimitedStore};
    let src = Arc::new(MemorySource::new("b"));
    let files = seed(&src);
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let mut j = job(
        Arc::new(LimitedSource::new(src.clone(), 1)),
        archive.clone(),
        state.clone(),
    );
    j.archive = Arc::new(LimitedStore::new(archive.clone(), 1)).into();
    j.state = Arc::new(LimitedStore::new(state.clone(), 1)).into();
    j.settings.concurrency = 8;
    let run = tokio::time::timeout(std::time::Duration::from_secs(60), j.run());
    let r = run.await.expect("a sync limited to one request a store hung").unwrap();
    assert_eq!(r.sources[0].files_copied, files.len() as u64);
    assert!(r.sources[0].complete);
    assert_eq!(archive.list_all("m/").await.unwrap().len(), files.len());
}

const FUTURE_KEY: &str =
    "AWSLogs/111122223333/CloudTrail/us-east-1/2099/01/01/111122223333_CloudTrail_us-east-1_20990101T0000Z_planted.json.gz";

fn watermark_times(state: &MemoryBlobStore) -> Vec<chrono::DateTime<chrono::Utc>> {
    let doc = futures::executor::block_on(trailvault::storage::read_all(
        state,
        "watermarks/m/111122223333/us-east-1.json",
    ))
    .unwrap()
    .unwrap()
    .0;
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    doc["streams"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m["time"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// A log named for 2099 (planted, or a clock gone wrong) is not archived, is reported,
/// and never moves the watermark: a real delivery after it is still copied.
#[tokio::test]
async fn a_future_dated_key_is_reported_and_never_moves_the_watermark() {
    let src = Arc::new(MemorySource::new("b"));
    let files = seed(&src);
    src.put(
        FUTURE_KEY,
        Bytes::from_static(b"{}"),
        BTreeMap::new(),
        chrono::Utc::now(),
    );
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let j = job(src.clone(), archive.clone(), state.clone());
    let r = j.run().await.unwrap();
    let s = &r.sources[0];
    assert_eq!(s.files_copied, files.len() as u64);
    assert_eq!(s.future_keys.count, 1);
    assert_eq!(s.future_keys.keys, vec![FUTURE_KEY.to_string()]);
    assert_eq!(s.status(), trailvault::records::RunStatus::Partial);
    assert_eq!(trailvault::cli::exit::Verdict::exit_code(&r), 1);
    assert!(archive.head(&format!("m/{FUTURE_KEY}")).await.unwrap().is_none());
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        watermark_times(&state).iter().all(|t| *t < later),
        "{:?}",
        watermark_times(&state)
    );

    // A delivery after the planted key is still archived by the next run.
    let now = chrono::Utc::now();
    let fresh = format!(
        "AWSLogs/111122223333/CloudTrail/us-east-1/{}/111122223333_CloudTrail_us-east-1_{}_fresh.json.gz",
        now.format("%Y/%m/%d"),
        now.format("%Y%m%dT%H%MZ")
    );
    src.put(&fresh, Bytes::from_static(b"{}"), BTreeMap::new(), now);
    let r = j.run().await.unwrap();
    assert_eq!(r.sources[0].files_copied, 1);
    assert!(archive.head(&format!("m/{fresh}")).await.unwrap().is_some());
    assert_eq!(r.sources[0].future_keys.count, 1, "still reported, still not archived");
}

/// A watermark an earlier version moved to 2099 is repaired: the stream is listed from the
/// start, a delivery the bad mark hid is copied, and the mark comes back to the present.
#[tokio::test]
async fn a_watermark_already_in_the_future_is_repaired() {
    let src = Arc::new(MemorySource::new("b"));
    let files = seed(&src);
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let j = job(src.clone(), archive.clone(), state.clone());
    j.run().await.unwrap();
    let name = "watermarks/m/111122223333/us-east-1.json";
    let (doc, _) = trailvault::storage::read_all(state.as_ref(), name)
        .await
        .unwrap()
        .unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    for mark in doc["streams"].as_object_mut().unwrap().values_mut() {
        mark["time"] = "2099-01-01T00:00:00Z".into();
    }
    state
        .put(name, Bytes::from(serde_json::to_vec(&doc).unwrap()), Default::default())
        .await
        .unwrap();
    let hidden = files.iter().find(|f| f.key.contains("/CloudTrail/")).unwrap();
    // Deleted behind trailvault's back: its own archive type has no delete.
    trailvault::storage::StateBlobStore::delete(archive.as_ref(), &format!("m/{}", hidden.key))
        .await
        .unwrap();
    let r = j.run().await.unwrap();
    assert_eq!(r.sources[0].files_copied, 1, "{:?}", r.sources[0]);
    assert!(archive.head(&format!("m/{}", hidden.key)).await.unwrap().is_some());
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(watermark_times(&state).iter().all(|t| *t < later));
}

/// A source that lists a key outside the prefix it was asked for (another account's).
struct StrayListing {
    inner: MemorySource,
}

#[async_trait::async_trait]
impl Source for StrayListing {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<PageToken>,
    ) -> StorageResult<Page<SourceObject>> {
        let mut page = self.inner.list_page(prefix, start_after, token).await?;
        if let Some(first) = page.items.first().cloned() {
            page.items.push(SourceObject {
                key: "AWSLogs/999999999999/CloudTrail/us-east-1/2026/11/20/999999999999_CloudTrail_us-east-1_20261120T0000Z_x.json.gz".into(),
                ..first
            });
        }
        Ok(page)
    }
    async fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        self.inner.list_folders(prefix).await
    }
    async fn get(&self, key: &str) -> StorageResult<SourceBody> {
        self.inner.get(key).await
    }
}

#[tokio::test]
async fn a_listing_entry_outside_the_requested_prefix_is_a_listing_error() {
    let inner = MemorySource::new("b");
    seed(&inner);
    let src = Arc::new(StrayListing { inner });
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let r = job(src, archive.clone(), state.clone()).run().await.unwrap();
    let s = &r.sources[0];
    assert!(!s.complete);
    assert!(
        s.errors.iter().any(|e| e.contains("outside the prefix")),
        "{:?}",
        s.errors
    );
    assert_eq!(trailvault::cli::exit::Verdict::exit_code(&r), 1);
    assert!(archive.list_all("m/AWSLogs/999999999999/").await.unwrap().is_empty());
    assert!(state
        .head("watermarks/m/999999999999/us-east-1.json")
        .await
        .unwrap()
        .is_none());
}

/// One account-region that stops delivering while its siblings go on is named in the run
/// and in `status`, not hidden behind the source's backup gap.
#[tokio::test]
async fn a_stream_left_behind_by_its_siblings_is_reported_stale() {
    let src = Arc::new(MemorySource::new("b"));
    seed(&src);
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let j = job(src.clone(), archive.clone(), state.clone());
    let r = j.run().await.unwrap();
    assert!(
        r.sources[0].stale_streams.is_empty(),
        "{:?}",
        r.sources[0].stale_streams
    );
    let now = chrono::Utc::now();
    let fresh = format!(
        "AWSLogs/111122223333/CloudTrail/us-east-1/{}/111122223333_CloudTrail_us-east-1_{}_fresh.json.gz",
        now.format("%Y/%m/%d"),
        now.format("%Y%m%dT%H%MZ")
    );
    src.put(&fresh, Bytes::from_static(b"{}"), BTreeMap::new(), now);
    let r = j.run().await.unwrap();
    let stale = &r.sources[0].stale_streams;
    assert!(
        stale.contains(&"AWSLogs/111122223333/CloudTrail/eu-west-1/".to_string()),
        "{stale:?}"
    );
    assert!(!stale
        .iter()
        .any(|s| s.contains("/CloudTrail/us-east-1/") && s.contains("111122223333")));
    assert!(r.sources[0].complete, "stale is reported, not a failed run");
    let status = trailvault::failover::status::status(state.as_ref(), &["m".into()], chrono::Duration::hours(8), now)
        .await
        .unwrap();
    assert_eq!(&status.sources[0].stale_streams, stale);
}

/// A bucket that counts how many keys its listing has served ahead of the reads of
/// their bodies, and fails the reads of `fail`.
struct Watched {
    inner: MemorySource,
    fail: Vec<String>,
    listed: std::sync::atomic::AtomicUsize,
    read: std::sync::atomic::AtomicUsize,
    most_ahead: std::sync::atomic::AtomicUsize,
}

impl Watched {
    fn new(inner: MemorySource, fail: Vec<String>) -> Self {
        Watched {
            inner,
            fail,
            listed: Default::default(),
            read: Default::default(),
            most_ahead: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl Source for Watched {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<PageToken>,
    ) -> StorageResult<Page<SourceObject>> {
        use std::sync::atomic::Ordering::SeqCst;
        let page = self.inner.list_page(prefix, start_after, token).await?;
        self.listed.fetch_add(page.items.len(), SeqCst);
        Ok(page)
    }
    async fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        self.inner.list_folders(prefix).await
    }
    async fn get(&self, key: &str) -> StorageResult<SourceBody> {
        use std::sync::atomic::Ordering::SeqCst;
        let read = self.read.fetch_add(1, SeqCst) + 1;
        let ahead = self.listed.load(SeqCst).saturating_sub(read);
        self.most_ahead.fetch_max(ahead, SeqCst);
        if self.fail.iter().any(|f| f == key) {
            return Err(trailvault::storage::StorageError::new(
                trailvault::storage::ErrorKind::Other,
                "get",
                key,
                "refused by the test",
            ));
        }
        self.inner.get(key).await
    }
}

/// One log stream of `days` days, a file every five minutes from `start`: keys in
/// listing order with their times.
fn log_stream(start: &str, days: i64) -> Vec<(String, chrono::DateTime<chrono::Utc>)> {
    let start: chrono::DateTime<chrono::Utc> = start.parse().unwrap();
    (0..days * 288)
        .map(|i| {
            let t = start + chrono::Duration::minutes(5 * i);
            (log_key(t, t, "x"), t)
        })
        .collect()
}

/// A log key in `day`'s folder named for `time` (CloudTrail names it for its own day).
fn log_key(day: chrono::DateTime<chrono::Utc>, time: chrono::DateTime<chrono::Utc>, unique: &str) -> String {
    format!(
        "AWSLogs/111122223333/CloudTrail/us-east-1/{}/111122223333_CloudTrail_us-east-1_{}_{unique}.json.gz",
        day.format("%Y/%m/%d"),
        time.format("%Y%m%dT%H%MZ")
    )
}

fn big_source(keys: &[(String, chrono::DateTime<chrono::Utc>)]) -> MemorySource {
    let src = MemorySource::new("b").with_page_size(1000);
    for (k, _) in keys {
        src.put(k, Bytes::from_static(b"{}"), BTreeMap::new(), chrono::Utc::now());
    }
    src
}

fn stream_mark(state: &MemoryBlobStore) -> (chrono::DateTime<chrono::Utc>, String) {
    let doc = futures::executor::block_on(trailvault::storage::read_all(
        state,
        "watermarks/m/111122223333/us-east-1.json",
    ))
    .unwrap()
    .unwrap()
    .0;
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    let mark = &doc["streams"]["AWSLogs/111122223333/CloudTrail/us-east-1/"];
    (
        mark["time"].as_str().unwrap().parse().unwrap(),
        mark["key"].as_str().unwrap().to_string(),
    )
}

/// A first run over a long history holds a few chunks of its listing, not the history:
/// the listing is never read more than a few chunks ahead of the copies.
#[tokio::test]
async fn a_long_history_is_listed_only_a_few_chunks_ahead_of_the_copies() {
    use std::sync::atomic::Ordering::SeqCst;
    use trailvault::sync::plan::PLAN_CHUNK;
    let keys = log_stream("2024-10-01T00:00:00Z", 700); // 201,600 files, all in the past
    let src = Arc::new(Watched::new(big_source(&keys), Vec::new()));
    let archive = Arc::new(MemoryBlobStore::new().with_page_size(1000));
    let state = Arc::new(MemoryBlobStore::new());
    let mut j = job(src.clone(), archive.clone(), state.clone());
    j.settings.concurrency = 16;
    let r = j.run().await.unwrap();
    let s = &r.sources[0];
    assert_eq!(s.files_copied, keys.len() as u64, "{:?}", s.errors);
    assert!(s.complete);
    let ahead = src.most_ahead.load(SeqCst);
    assert!(
        ahead <= 6 * PLAN_CHUNK,
        "the listing ran {ahead} keys ahead of the copies"
    );
    let last = keys.last().unwrap();
    assert_eq!(stream_mark(&state), (last.1, last.0.clone()));
}

/// A copy failing chunks into the listing stops the mark just before it, whatever the
/// chunks settled around it.
#[tokio::test]
async fn a_failure_in_a_later_chunk_stops_the_mark_just_before_it() {
    let keys = log_stream("2026-10-01T00:00:00Z", 20);
    let bad = keys[3 * 1000 + 500].clone();
    let src = Arc::new(Watched::new(big_source(&keys), vec![bad.0.clone()]));
    let (archive, state) = (
        Arc::new(MemoryBlobStore::new().with_page_size(1000)),
        Arc::new(MemoryBlobStore::new()),
    );
    let r = job(src, archive, state.clone()).run().await.unwrap();
    assert_eq!(r.sources[0].files_failed, 1);
    assert_eq!(r.sources[0].files_copied, keys.len() as u64 - 1);
    let before = &keys[3 * 1000 + 499];
    assert_eq!(
        stream_mark(&state),
        (bad.1 - chrono::Duration::seconds(1), before.0.clone())
    );
}

/// A failed file listed early but named for a later time than files of later chunks:
/// the mark is just before its time, its key the newest archived file at or before it,
/// from a later chunk.
#[tokio::test]
async fn a_failure_listed_early_but_dated_late_is_placed_by_its_time() {
    let mut keys = log_stream("2026-10-01T00:00:00Z", 20);
    let first_day = keys[0].1;
    let late: chrono::DateTime<chrono::Utc> = "2026-10-10T00:00:00Z".parse().unwrap();
    let bad = log_key(first_day, late, "late");
    keys.push((bad.clone(), late));
    let src = Arc::new(Watched::new(big_source(&keys), vec![bad.clone()]));
    let (archive, state) = (
        Arc::new(MemoryBlobStore::new().with_page_size(1000)),
        Arc::new(MemoryBlobStore::new()),
    );
    let r = job(src, archive, state.clone()).run().await.unwrap();
    assert_eq!(r.sources[0].files_failed, 1);
    let before = late - chrono::Duration::seconds(1);
    let newest_before = keys
        .iter()
        .filter(|(k, t)| *k != bad && *t <= before)
        .map(|(k, _)| k.clone())
        .max()
        .unwrap();
    assert!(newest_before.contains("/2026/10/09/"), "{newest_before}");
    assert_eq!(stream_mark(&state), (before, newest_before));
}

/// A bucket whose listing stops answering after `pages` pages.
struct StallingListing {
    inner: MemorySource,
    pages: std::sync::atomic::AtomicUsize,
    stall_after: usize,
}

#[async_trait::async_trait]
impl Source for StallingListing {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<PageToken>,
    ) -> StorageResult<Page<SourceObject>> {
        if token.is_some() && self.pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= self.stall_after {
            std::future::pending::<()>().await;
        }
        self.inner.list_page(prefix, start_after, token).await
    }
    async fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        self.inner.list_folders(prefix).await
    }
    async fn get(&self, key: &str) -> StorageResult<SourceBody> {
        self.inner.get(key).await
    }
}

/// A listing still running at the deadline is cut there: what was copied stays archived
/// (the next run skips it without a download), but the mark does not move, since the
/// keys after the cut were never seen; the next run completes the stream.
#[tokio::test]
async fn a_listing_cut_by_the_deadline_keeps_the_mark_and_the_next_run_completes() {
    let keys = log_stream("2026-10-01T00:00:00Z", 20);
    let src = Arc::new(StallingListing {
        inner: big_source(&keys),
        pages: Default::default(),
        stall_after: 3,
    });
    let (archive, state) = (
        Arc::new(MemoryBlobStore::new().with_page_size(1000)),
        Arc::new(MemoryBlobStore::new()),
    );
    let mut j = job(src, archive.clone(), state.clone());
    j.deadline = Some(tokio::time::Instant::now() + std::time::Duration::from_secs(2));
    let r = j.run().await.unwrap();
    let s = &r.sources[0];
    assert!(s.deadline_reached && !s.complete, "{s:?}");
    assert_eq!(s.files_failed, 0);
    assert_eq!(s.files_copied, 3000, "three pages listed, all copied: {s:?}");
    let doc = futures::executor::block_on(trailvault::storage::read_all(
        state.as_ref(),
        "watermarks/m/111122223333/us-east-1.json",
    ))
    .unwrap();
    if let Some((doc, _)) = doc {
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert!(
            doc["streams"]["AWSLogs/111122223333/CloudTrail/us-east-1/"].is_null(),
            "a cut listing moved the mark: {doc}"
        );
    }

    let again = job(Arc::new(big_source(&keys)), archive, state.clone())
        .run()
        .await
        .unwrap();
    let s = &again.sources[0];
    assert!(s.complete, "{s:?}");
    assert_eq!(
        (s.files_skipped, s.files_copied),
        (3000, keys.len() as u64 - 3000),
        "{s:?}"
    );
    assert_eq!(
        stream_mark(&state),
        (keys.last().unwrap().1, keys.last().unwrap().0.clone())
    );
}

/// Planted keys in a folder chrono reads as a date but which sorts before the real ones
/// (`+2026`), and keys named for 2099, a chunk and more of each: a failure among the real
/// files still stops the mark exactly before it, with the newest archived key before it.
/// (That such keys cannot make the fold hold every file is `MarkFold`'s and
/// `ChunkPlanner::vouched_day`'s unit tests.)
#[tokio::test]
async fn planted_folder_names_do_not_move_what_the_mark_remembers() {
    let mut keys = log_stream("2026-10-01T00:00:00Z", 10);
    let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let prefix = "AWSLogs/111122223333/CloudTrail/us-east-1/";
    let name = |time: chrono::DateTime<chrono::Utc>, u: usize| {
        format!(
            "111122223333_CloudTrail_us-east-1_{}_p{u}.json.gz",
            time.format("%Y%m%dT%H%MZ")
        )
    };
    // Sorts before every real folder, read as 2026-10-09.
    for u in 0..1500 {
        let planted = t("2026-10-09T00:00:00Z");
        keys.push((format!("{prefix}+2026/10/09/{}", name(planted, u)), planted));
    }
    for u in 0..1500 {
        let future = t("2099-01-01T00:00:00Z");
        keys.push((format!("{prefix}2099/01/01/{}", name(future, u)), future));
    }
    keys.sort();
    let real: Vec<_> = keys
        .iter()
        .filter(|(k, _)| !k.contains("/+2026/") && !k.contains("/2099/"))
        .cloned()
        .collect();
    let bad = real[2 * 288 + 10].clone();
    let src = Arc::new(Watched::new(big_source(&keys), vec![bad.0.clone()]));
    let (archive, state) = (
        Arc::new(MemoryBlobStore::new().with_page_size(1000)),
        Arc::new(MemoryBlobStore::new()),
    );
    let r = job(src, archive, state.clone()).run().await.unwrap();
    let s = &r.sources[0];
    assert_eq!(s.files_failed, 1, "{s:?}");
    assert_eq!(s.future_keys.count, 1500, "{s:?}");
    let before = &real[2 * 288 + 9];
    assert_eq!(
        stream_mark(&state),
        (bad.1 - chrono::Duration::seconds(1), before.0.clone())
    );
}
