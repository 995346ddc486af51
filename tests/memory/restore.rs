//! restore from a memory archive (filled by a real sync) to a folder: bytes, sidecars,
//! filters, corrupted blobs, resume, conflicts, dry run.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use sha2::Digest;
use trailvault::cli::exit::Verdict;
use trailvault::cloudtrail::TimeRange;
use trailvault::failover::restore::{RestoreJob, RestoreReport, Selection};
use trailvault::records::RunStatus;
use trailvault::storage::folder::FolderSink;

use super::*;
use support::ctgen::GenFile;
use support::files_under;

const ORG_ACCOUNT: &str = "777788889999";

const ORG_PREFIX: &str = "corp/AWSLogs/trails";

/// A memory archive synced from a bucket holding the sample trail (2 accounts x 2
/// regions x 2 days), source `m`, and an organization trail under a prefix that itself
/// contains `AWSLogs`, source `p` over the same bucket.
async fn synced() -> (Vec<GenFile>, Arc<MemoryBlobStore>, Arc<MemoryBlobStore>) {
    let src = Arc::new(MemorySource::new("b"));
    let mut files = seed(&src);
    let mut org = support::ctgen::Trail::sample("b", 9);
    org.prefix = ORG_PREFIX.into();
    org.org = Some("o-abcdefghij".into());
    org.accounts = vec![ORG_ACCOUNT.into()];
    for f in org.generate() {
        src.put(&f.key, f.body.clone().into(), f.metadata.clone(), Utc::now());
        files.push(f);
    }
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let mut j = job(src.clone(), archive.clone(), state.clone());
    j.sources.push(SourceHandle {
        name: "p".into(),
        prefix: ORG_PREFIX.into(),
        source: src,
        credentials_error: None,
    });
    let r = j.run().await.unwrap();
    let copied: u64 = r.sources.iter().map(|s| s.files_copied).sum();
    assert_eq!(copied, files.len() as u64, "{r:?}");
    (files, archive, state)
}

fn restore_job(
    archive: &Arc<MemoryBlobStore>,
    state: &Arc<MemoryBlobStore>,
    dir: &Path,
    selection: Selection,
    dry_run: bool,
) -> RestoreJob {
    RestoreJob {
        archive: archive.clone().into(),
        state: Some(state.clone().into()),
        sink: Arc::new(FolderSink::new(dir)),
        selection: Selection {
            sources: vec!["m".into(), "p".into()],
            ..selection
        },
        concurrency: 4,
        in_flight_bytes: 1 << 20,
        dry_run,
        progress: Arc::new(trailvault::progress::NoProgress),
        retry: trailvault::storage::retry::RetryPolicy::none(),
        cancel: Default::default(),
    }
}

fn everything() -> Selection {
    Selection {
        digests: true,
        ..Default::default()
    }
}

/// A filter case: its name, the selection, and which generated files it must restore.
type Case<'a> = (&'a str, Selection, Box<dyn Fn(&GenFile) -> bool>);

fn is_digest(f: &GenFile) -> bool {
    f.key.contains("/CloudTrail-Digest/")
}

fn restored_cloudtrail_files(dir: &Path) -> BTreeSet<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.ends_with(".json.gz"))
        .collect()
}

async fn run_record(state: &MemoryBlobStore, report: &RestoreReport) -> serde_json::Value {
    let (bytes, _) = trailvault::storage::read_all(state, &format!("runs/{}.json", report.run_id))
        .await
        .unwrap()
        .expect("a Restore run record");
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn restore_to_a_folder_is_byte_identical_with_digest_sidecars_then_skips() {
    let (files, archive, state) = synced().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("restored");
    let r = restore_job(&archive, &state, &dir, everything(), false)
        .run()
        .await
        .unwrap();
    assert_eq!(r.files, files.len() as u64, "{r:?}");
    assert_eq!(r.bytes, files.iter().map(|f| f.body.len() as u64).sum::<u64>());
    assert_eq!(r.planned_files, files.len() as u64);
    assert_eq!(r.plan.iter().map(|p| p.files).sum::<u64>(), files.len() as u64);
    assert!(
        r.corrupted.is_empty() && r.conflicts.is_empty() && r.failed == 0,
        "{r:?}"
    );
    assert_eq!(r.status(), RunStatus::Succeeded);
    assert_eq!(r.exit_code(), 0);
    for f in &files {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body, "{}", f.key);
        let side = dir.join(format!("{}.metadata.json", f.key));
        if is_digest(f) {
            let side: serde_json::Value = serde_json::from_slice(&std::fs::read(&side).unwrap()).unwrap();
            assert_eq!(side["metadata"]["signature"], f.metadata["signature"], "{}", f.key);
            assert_eq!(side["metadata"]["signature-algorithm"], "SHA256withRSA");
            assert_eq!(side["sha256"], hex::encode(sha2::Sha256::digest(&f.body)));
            assert_eq!(side["source_bucket"], "b");
            assert_eq!(side["source_key"], f.key.as_str());
        } else {
            assert!(!side.exists(), "a log file has no sidecar: {}", side.display());
        }
    }
    let want: BTreeSet<String> = files.iter().map(|f| f.key.clone()).collect();
    assert_eq!(restored_cloudtrail_files(&dir), want, "nothing more, nothing less");
    let digests = files.iter().filter(|f| is_digest(f)).count();
    assert_eq!(
        files_under(&dir).len(),
        files.len() + digests,
        "files and sidecars only"
    );
    let rec = run_record(&state, &r).await;
    assert_eq!(rec[0]["RecordType"], "Restore");
    assert_eq!(rec[0]["Status"], "Succeeded");
    assert_eq!(rec[0]["FilesCopied"], files.len() as u64);

    let again = restore_job(&archive, &state, &dir, everything(), false)
        .run()
        .await
        .unwrap();
    assert_eq!((again.files, again.skipped), (0, files.len() as u64), "{again:?}");
    assert_eq!(again.status(), RunStatus::Succeeded);
    assert_eq!(again.exit_code(), 0);
}

#[tokio::test]
async fn restore_filters_select_exactly_the_expected_files() {
    let (files, archive, state) = synced().await;
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let (since, until) = (t("2026-11-24T00:30:00Z"), t("2026-11-25T00:10:00Z"));
    fn set<T: std::str::FromStr + Ord>(v: &[&str]) -> BTreeSet<T>
    where
        T::Err: std::fmt::Debug,
    {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }
    let cases: Vec<Case> = vec![
        (
            "account",
            Selection {
                accounts: set(&["444455556666"]),
                ..everything()
            },
            Box::new(|f| f.key.starts_with("AWSLogs/444455556666/")),
        ),
        (
            "organization account",
            Selection {
                accounts: set(&[ORG_ACCOUNT]),
                ..everything()
            },
            Box::new(|f| {
                f.key
                    .starts_with(&format!("{ORG_PREFIX}/AWSLogs/o-abcdefghij/{ORG_ACCOUNT}/"))
            }),
        ),
        (
            "region",
            Selection {
                regions: set(&["eu-west-1"]),
                ..everything()
            },
            Box::new(|f| f.key.contains("/eu-west-1/")),
        ),
        (
            "no digests",
            Selection {
                digests: false,
                ..Default::default()
            },
            Box::new(|f| !is_digest(f)),
        ),
        (
            // Since inclusive, until exclusive; digests up to an hour past until.
            "time",
            Selection {
                range: TimeRange::new(Some(since), Some(until)).unwrap(),
                ..everything()
            },
            Box::new(move |f| {
                let until = if is_digest(f) {
                    until + chrono::Duration::hours(1)
                } else {
                    until
                };
                f.time >= since && f.time < until
            }),
        ),
        (
            "all at once",
            Selection {
                accounts: set(&["111122223333"]),
                regions: set(&["us-east-1"]),
                range: TimeRange::new(Some(since), Some(until)).unwrap(),
                digests: false,
                ..Default::default()
            },
            Box::new(move |f| {
                f.key.starts_with("AWSLogs/111122223333/CloudTrail/us-east-1/") && f.time >= since && f.time < until
            }),
        ),
    ];
    // With the state container the streams come from the watermarks; without it
    // (restore works without it) the whole source is listed and filtered by key.
    for (name, selection, wanted) in cases {
        let want: BTreeSet<String> = files.iter().filter(|f| wanted(f)).map(|f| f.key.clone()).collect();
        assert!(
            !want.is_empty() && want.len() < files.len(),
            "{name}: a filter that selects something"
        );
        for with_state in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let mut job = restore_job(&archive, &state, tmp.path(), selection.clone(), false);
            if !with_state {
                job.state = None;
            }
            let r = job.run().await.unwrap();
            assert_eq!(
                restored_cloudtrail_files(tmp.path()),
                want,
                "{name}, state: {with_state}"
            );
            assert_eq!(
                (r.files, r.planned_files),
                (want.len() as u64, want.len() as u64),
                "{name}, state: {with_state}"
            );
            assert_eq!(r.exit_code(), 0, "{name}, state: {with_state}");
        }
    }
}

/// A log or a digest whose archived bytes changed is never written, and a digest gets no
/// sidecar either: one beside nothing would vouch for a file that is not there.
#[tokio::test]
async fn a_tampered_archive_blob_is_reported_corrupted_and_not_written() {
    let (files, _, _) = synced().await;
    let log = files.iter().find(|f| !is_digest(f)).unwrap();
    let digest = files.iter().find(|f| is_digest(f)).unwrap();
    for victim in [log, digest] {
        let (_, archive, state) = synced().await;
        let mut bad = victim.body.clone();
        bad[20] ^= 0x01;
        assert!(archive.tamper(&format!("m/{}", victim.key), bad.into()));
        let tmp = tempfile::tempdir().unwrap();
        let r = restore_job(&archive, &state, tmp.path(), everything(), false)
            .run()
            .await
            .unwrap();
        assert_eq!(r.corrupted, vec![victim.key.clone()], "{r:?}");
        assert!(
            !tmp.path().join(&victim.key).exists(),
            "a corrupted blob is never written: {}",
            victim.key
        );
        let sidecar = tmp.path().join(format!("{}.metadata.json", victim.key));
        assert!(!sidecar.exists(), "{}", sidecar.display());
        assert_eq!(r.files, files.len() as u64 - 1, "the rest is restored");
        assert_eq!(r.status(), RunStatus::Partial);
        assert_eq!(r.exit_code(), trailvault::cli::EXIT_CHECK_FAILED);
        let rec = run_record(&state, &r).await;
        assert_eq!(rec[0]["Details"]["corrupted"], serde_json::json!([victim.key]));
    }
}

#[tokio::test]
async fn a_different_file_at_the_target_is_a_conflict_and_left_alone() {
    let (files, archive, state) = synced().await;
    let tmp = tempfile::tempdir().unwrap();
    let theirs = &files[2].key;
    let path = tmp.path().join(theirs);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"someone else's bytes").unwrap();
    let r = restore_job(&archive, &state, tmp.path(), everything(), false)
        .run()
        .await
        .unwrap();
    assert_eq!(r.conflicts, vec![theirs.clone()]);
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's bytes");
    assert_eq!(r.files, files.len() as u64 - 1);
    assert!(r.corrupted.is_empty());
    assert_eq!(r.status(), RunStatus::Partial);
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_FAILED);
}

#[tokio::test]
async fn a_dry_run_plans_and_writes_nothing() {
    let (files, archive, state) = synced().await;
    let runs_before = state.list_all("runs/").await.unwrap().len();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("restored");
    let r = restore_job(&archive, &state, &dir, everything(), true)
        .run()
        .await
        .unwrap();
    assert!(r.dry_run);
    assert_eq!(r.planned_files, files.len() as u64);
    assert_eq!(r.planned_bytes, files.iter().map(|f| f.body.len() as u64).sum::<u64>());
    // One plan row per source, account, region and day: (2 + 1) accounts x 2 regions x 2 days.
    assert_eq!(r.plan.len(), 12, "{:?}", r.plan);
    assert_eq!((r.files, r.skipped), (0, 0));
    assert!(files_under(tmp.path()).is_empty() && !dir.exists(), "nothing written");
    assert_eq!(
        state.list_all("runs/").await.unwrap().len(),
        runs_before,
        "no run record"
    );
}

/// A folder on a disk that fills up: every write beyond `room` bytes fails as ENOSPC would.
struct FullDisk {
    inner: FolderSink,
    room: std::sync::atomic::AtomicI64,
}

struct FullDiskUpload<'a> {
    inner: Box<dyn trailvault::storage::Upload + 'a>,
    room: &'a std::sync::atomic::AtomicI64,
}

#[async_trait::async_trait]
impl trailvault::storage::Upload for FullDiskUpload<'_> {
    async fn write(&mut self, chunk: Bytes) -> StorageResult<()> {
        let left = self
            .room
            .fetch_sub(chunk.len() as i64, std::sync::atomic::Ordering::SeqCst);
        if left < chunk.len() as i64 {
            return Err(trailvault::storage::StorageError::new(
                trailvault::storage::ErrorKind::Other,
                "write",
                "fake",
                "No space left on device (os error 28)",
            ));
        }
        self.inner.write(chunk).await
    }
    async fn commit(self: Box<Self>, meta: &trailvault::storage::RestoreMeta) -> StorageResult<()> {
        self.inner.commit(meta).await
    }
    async fn abort(self: Box<Self>) {
        self.inner.abort().await
    }
}

#[async_trait::async_trait]
impl trailvault::storage::Sink for FullDisk {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn cannot_hold(&self, key: &str) -> Option<String> {
        self.inner.cannot_hold(key)
    }
    async fn existing(&self, key: &str) -> StorageResult<Option<trailvault::storage::Existing>> {
        self.inner.existing(key).await
    }
    async fn existing_sha256(&self, key: &str) -> StorageResult<Option<String>> {
        self.inner.existing_sha256(key).await
    }
    async fn begin(
        &self,
        key: &str,
        size: u64,
        meta: &trailvault::storage::RestoreMeta,
    ) -> StorageResult<Box<dyn trailvault::storage::Upload + '_>> {
        Ok(Box::new(FullDiskUpload {
            inner: self.inner.begin(key, size, meta).await?,
            room: &self.room,
        }))
    }
    async fn put_sidecar(
        &self,
        key: &str,
        sidecar: &serde_json::Value,
    ) -> StorageResult<trailvault::storage::SidecarOutcome> {
        self.inner.put_sidecar(key, sidecar).await
    }
}

#[tokio::test]
async fn a_full_disk_fails_files_leaves_nothing_at_final_names_and_the_rerun_completes() {
    let (files, archive, state) = synced().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("restored");
    let total: u64 = files.iter().map(|f| f.body.len() as u64).sum();
    let mut job = restore_job(&archive, &state, &dir, everything(), false);
    job.concurrency = 1;
    job.sink = Arc::new(FullDisk {
        inner: FolderSink::new(&dir),
        room: std::sync::atomic::AtomicI64::new(total as i64 / 2),
    });
    let r = job.run().await.unwrap();
    drop(job); // the sink's lock on its run folder goes with it
    assert!(r.failed > 0, "{r:?}");
    assert!(r.files > 0, "{r:?}");
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_FAILED);
    assert!(r.failures.iter().all(|f| f.error.contains("No space left")), "{r:?}");
    // Whatever has a final name is whole; nothing half-written is left anywhere.
    for f in &files {
        if let Ok(on_disk) = std::fs::read(dir.join(&f.key)) {
            assert_eq!(on_disk, f.body, "{}", f.key);
        }
    }
    assert!(
        files_under(&dir).iter().all(|f| !f.starts_with(".trailvault-partial")),
        "{:?}",
        files_under(&dir)
    );
    // Space is back: the rerun writes the rest and calls nothing a conflict.
    let again = restore_job(&archive, &state, &dir, everything(), false)
        .run()
        .await
        .unwrap();
    assert!(again.conflicts.is_empty() && again.failed == 0, "{again:?}");
    assert_eq!(again.files + again.skipped, files.len() as u64);
    for f in &files {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body, "{}", f.key);
    }
}

#[tokio::test]
async fn a_blob_without_sha256_is_corrupted_and_not_written() {
    let (files, archive, state) = synced().await;
    let victim = files.iter().find(|f| !is_digest(f)).unwrap();
    let name = format!("m/{}", victim.key);
    let info = archive.head(&name).await.unwrap().unwrap();
    let mut metadata = info.metadata.clone();
    metadata.remove("sha256");
    let replaced = support::ctgen::gzip(b"{\"Records\":[]}");
    archive
        .put(
            &name,
            replaced.into(),
            trailvault::storage::PutOptions {
                metadata,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let r = restore_job(&archive, &state, tmp.path(), everything(), false)
        .run()
        .await
        .unwrap();
    assert_eq!(r.corrupted, vec![victim.key.clone()]);
    assert!(!tmp.path().join(&victim.key).exists());
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_CHECK_FAILED);
}

/// A genuine log of the trail at the bucket's root, and its folder and file name.
fn a_log(files: &[GenFile]) -> (&GenFile, &str, &str) {
    let real = files
        .iter()
        .find(|f| !is_digest(f) && f.key.starts_with("AWSLogs/"))
        .unwrap();
    let (dir_part, file_part) = real.key.rsplit_once('/').unwrap();
    (real, dir_part, file_part)
}

/// Archives a forged log as source `m`'s `key`, create-only: beside a genuine blob, never
/// over it, as an immutable container still allows.
async fn archive_forged(archive: &MemoryBlobStore, key: &str) {
    use trailvault::storage::{Condition, PutOptions};
    let body = support::ctgen::gzip(b"{\"Records\":[{\"eventName\":\"Forged\"}]}");
    let opts = PutOptions {
        metadata: BTreeMap::from([("sha256".to_string(), hex::encode(sha2::Sha256::digest(&body)))]),
        condition: Condition::IfNoneMatch,
        ..Default::default()
    };
    archive.put(&format!("m/{key}"), body.into(), opts).await.unwrap();
}

/// A ranged run lists only the selected days' folders: what it finds there that is not a
/// plain CloudTrail file must be reported, not passed over. A forged name that imitates a
/// genuine log (`//`) is a conflict for restore and a problem or an uncovered log for
/// verify; a foreign file is `unrecognized` for both. The genuine log is restored.
#[tokio::test]
async fn ranged_runs_report_forged_names_and_foreign_files_in_their_days() {
    use trailvault::integrity::verify::VerifyJob;
    let (files, archive, state) = synced().await;
    let (real, dir_part, file_part) = a_log(&files);
    let forged = format!("{dir_part}//{file_part}");
    let foreign = format!("{dir_part}/notes.txt");
    for key in [&forged, &foreign] {
        archive_forged(&archive, key).await;
    }
    let minute = chrono::Duration::minutes(1);
    let selection = || Selection {
        range: TimeRange::new(Some(real.time - minute), Some(real.time + minute)).unwrap(),
        ..everything()
    };

    let tmp = tempfile::tempdir().unwrap();
    let r = restore_job(&archive, &state, tmp.path(), selection(), false)
        .run()
        .await
        .unwrap();
    assert_eq!(r.conflicts, vec![forged.clone()], "{r:?}");
    assert_eq!(r.unrecognized_keys, vec![foreign.clone()], "{r:?}");
    assert_eq!(std::fs::read(tmp.path().join(&real.key)).unwrap(), real.body);
    assert!(!tmp.path().join(&foreign).exists());

    let v = VerifyJob {
        archive: archive.clone().into(),
        state: Some(state.clone().into()),
        selection: Selection {
            sources: vec!["m".into()],
            ..selection()
        },
        concurrency: 2,
        retry: trailvault::storage::retry::RetryPolicy::none(),
        cancel: Default::default(),
    }
    .run()
    .await
    .unwrap();
    assert_eq!(v.unrecognized_keys, vec![foreign], "{v:?}");
    let doc = serde_json::to_string(&v).unwrap();
    assert!(doc.contains(&forged), "verify passed over the forged name: {doc}");
}

/// With an account or region filter a foreign file has neither to match: it is left
/// out, and said to be, not passed over in silence.
#[tokio::test]
async fn a_filtered_restore_reports_the_foreign_files_it_leaves_out() {
    use trailvault::storage::PutOptions;
    let (files, archive, state) = synced().await;
    let foreign = "AWSLogs/111122223333/CloudTrail/us-east-1/notes.txt";
    archive
        .put(&format!("m/{foreign}"), Bytes::from_static(b"x"), PutOptions::default())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let selection = Selection {
        accounts: ["111122223333".parse().unwrap()].into(),
        ..everything()
    };
    let r = restore_job(&archive, &state, tmp.path(), selection, false)
        .run()
        .await
        .unwrap();
    assert_eq!(r.unrecognized_keys, vec![foreign.to_string()], "{r:?}");
    assert!(!tmp.path().join(foreign).exists());
    let wanted = files
        .iter()
        .filter(|f| f.key.starts_with("AWSLogs/111122223333/"))
        .count();
    assert_eq!(r.files, wanted as u64);
}

/// A stream whose watermark was never written (a first run killed, a state write that
/// failed) is still archived: ranged and filtered restores and verifies find it from the
/// archive's own folders, and say which streams had no watermark.
#[tokio::test]
async fn archived_streams_without_a_watermark_are_restored_and_verified() {
    let (files, archive, state) = synced().await;
    for wm in state.list_all("watermarks/").await.unwrap() {
        trailvault::storage::StateBlobStore::delete(state.as_ref(), &wm.name)
            .await
            .unwrap();
    }
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let range = TimeRange::new(Some(t("2026-11-20T00:00:00Z")), Some(t("2026-12-01T00:00:00Z"))).unwrap();
    let ranged = Selection { range, ..everything() };
    let want: BTreeSet<String> = files.iter().map(|f| f.key.clone()).collect();
    let tmp = tempfile::tempdir().unwrap();
    let r = restore_job(&archive, &state, tmp.path(), ranged.clone(), false)
        .run()
        .await
        .unwrap();
    assert_eq!(restored_cloudtrail_files(tmp.path()), want);
    assert_eq!(r.exit_code(), 0, "{r:?}");
    assert!(
        r.streams_without_watermark
            .iter()
            .any(|s| s == "m/AWSLogs/111122223333/CloudTrail/us-east-1/"),
        "{:?}",
        r.streams_without_watermark
    );
    assert!(r
        .streams_without_watermark
        .iter()
        .any(|s| s.starts_with(&format!("p/{ORG_PREFIX}/AWSLogs/o-abcdefghij/{ORG_ACCOUNT}/"))));

    let by_account = Selection {
        accounts: ["444455556666".parse().unwrap()].into_iter().collect(),
        ..ranged.clone()
    };
    let tmp = tempfile::tempdir().unwrap();
    restore_job(&archive, &state, tmp.path(), by_account, false)
        .run()
        .await
        .unwrap();
    let want: BTreeSet<String> = want
        .into_iter()
        .filter(|k| k.starts_with("AWSLogs/444455556666/"))
        .collect();
    assert_eq!(restored_cloudtrail_files(tmp.path()), want);

    let v = trailvault::integrity::verify::VerifyJob {
        archive: archive.clone().into(),
        state: Some(state.clone().into()),
        selection: Selection {
            sources: vec!["m".into(), "p".into()],
            ..ranged
        },
        concurrency: 2,
        retry: trailvault::storage::retry::RetryPolicy::none(),
        cancel: Default::default(),
    }
    .run()
    .await
    .unwrap();
    // Every archived file was read and hashed (no keys are imported here, so digests
    // cannot be trusted and logs are not checked against them).
    assert_eq!(v.checked.blobs, files.len() as u64, "{v:?}");
    assert!(!v.streams_without_watermark.is_empty());
}

/// Names that differ from a genuine log's only by `//` or `/./` would land on its path in
/// a folder: each is a conflict, never written, and the genuine log is what is restored.
#[tokio::test]
async fn forged_non_canonical_names_are_conflicts_and_the_genuine_log_is_restored() {
    let (files, archive, state) = synced().await;
    let (real, dir_part, file_part) = a_log(&files);
    let forged = [
        format!("/{}", real.key),
        format!("{dir_part}//{file_part}"),
        format!("{dir_part}/./{file_part}"),
    ];
    for key in &forged {
        archive_forged(&archive, key).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let r = restore_job(&archive, &state, tmp.path(), everything(), false)
        .run()
        .await
        .unwrap();
    let mut want = forged.to_vec();
    want.sort();
    let mut conflicts = r.conflicts.clone();
    conflicts.sort();
    assert_eq!(conflicts, want, "{r:?}");
    assert_eq!(r.unrecognized, 0, "{r:?}");
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_FAILED);
    for f in &files {
        assert_eq!(std::fs::read(tmp.path().join(&f.key)).unwrap(), f.body, "{}", f.key);
    }
    // Nor does verify call them unrecognized or pass over them: each is a log no digest covers.
    let v = super::verify::verify(&archive, &state).await;
    assert_eq!(v.unrecognized, 0, "{v:?}");
    let doc = serde_json::to_string(&v).unwrap();
    for key in &forged {
        let quoted = serde_json::to_string(key).unwrap();
        assert!(doc.contains(&quoted), "verify passed over {key}: {doc}");
    }
}

/// A sidecar holds a digest's signature: a rerun gives back one that was lost, and leaves
/// a different one alone, reported, rather than overwrite what someone else put there.
#[tokio::test]
async fn sidecars_are_never_replaced_and_a_lost_one_is_recreated() {
    let (files, archive, state) = synced().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("restored");
    let restore = || async {
        restore_job(&archive, &state, &dir, everything(), false)
            .run()
            .await
            .unwrap()
    };
    assert_eq!(restore().await.exit_code(), 0);
    let digests: Vec<_> = files.iter().filter(|f| is_digest(f)).collect();
    let side = |f: &GenFile| dir.join(format!("{}.metadata.json", f.key));
    let original = std::fs::read(side(digests[0])).unwrap();

    std::fs::remove_file(side(digests[0])).unwrap();
    let r = restore().await;
    assert_eq!(r.exit_code(), 0, "{r:?}");
    assert_eq!(std::fs::read(side(digests[0])).unwrap(), original);

    std::fs::write(side(digests[1]), b"{\"someone\": \"else\"}").unwrap();
    let r = restore().await;
    assert_eq!(r.conflicts, vec![format!("{}.metadata.json", digests[1].key)], "{r:?}");
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_FAILED);
    assert_eq!(std::fs::read(side(digests[1])).unwrap(), b"{\"someone\": \"else\"}");
}
