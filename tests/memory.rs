//! The same storage contract, and the sync logic, over the in-memory stores: fast,
//! and no emulator needed.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use trailvault::config::SyncSettings;
use trailvault::storage::memory::{MemoryBlobStore, MemorySource};
use trailvault::storage::{BlobStore, Source, SourceBody, SourceObject, StorageResult};
use trailvault::sync::{SourceHandle, SyncJob};

#[async_trait::async_trait]
impl support::store_suite::Bucket for MemorySource {
    async fn put_object(&self, key: &str, body: Vec<u8>, metadata: BTreeMap<String, String>) {
        self.put(key, body.into(), metadata, chrono::Utc::now());
    }
}

#[tokio::test]
async fn memory_blob_store_meets_the_storage_contract() {
    support::store_suite::blob_store_contract(&MemoryBlobStore::new(), "contract").await;
}

#[tokio::test]
async fn memory_source_meets_the_storage_contract() {
    let src = MemorySource::new("b");
    support::store_suite::source_contract(&src, &src).await;
}

fn settings() -> SyncSettings {
    SyncSettings {
        concurrency: 4,
        in_flight_bytes: 8 << 20,
        lookback: std::time::Duration::from_secs(72 * 3600),
        max_gap: std::time::Duration::from_secs(8 * 3600),
    }
}

fn job(src: Arc<dyn Source>, archive: Arc<MemoryBlobStore>, state: Arc<MemoryBlobStore>) -> SyncJob {
    SyncJob {
        sources: vec![SourceHandle {
            name: "m".into(),
            prefix: String::new(),
            source: src,
        }],
        archive,
        state,
        settings: settings(),
        dry_run: false,
        progress: Arc::new(trailvault::progress::NoProgress),
        health: trailvault::config::HealthConfig {
            probe_timeout: std::time::Duration::from_secs(5),
            degraded_after: 1,
            outage_after: 3,
        },
        deadline: None,
    }
}

fn seed(src: &MemorySource) -> Vec<support::ctgen::GenFile> {
    let files = support::ctgen::Trail::sample("b", 3).generate();
    for f in &files {
        src.put(&f.key, f.body.clone().into(), f.metadata.clone(), chrono::Utc::now());
    }
    files
}

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
    async fn list(&self, prefix: &str, start_after: Option<&str>) -> StorageResult<Vec<SourceObject>> {
        self.inner.list(prefix, start_after).await
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

#[tokio::test]
async fn verify_over_memory_accepts_restarts_backfill_and_empty_digests() {
    use trailvault::integrity::verify::VerifyJob;
    use trailvault::state::select::Selection;
    let key = support::ctgen::test_key(5);
    let mut trail = support::ctgen::Trail::sample("b", 4);
    trail.days.push(chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
    trail.signer = Some(Arc::new(key.clone()));
    trail.restart_on_day = Some(2);
    trail.backfill = true;
    let files = trail.generate();
    let src = Arc::new(MemorySource::new("b"));
    for f in &files {
        src.put(&f.key, f.body.clone().into(), f.metadata.clone(), chrono::Utc::now());
    }
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let r = job(src, archive.clone(), state.clone()).run().await.unwrap();
    assert_eq!(r.sources[0].files_copied, files.len() as u64);
    let (der, _) = support::ctgen::public_der(&key);
    for region in ["us-east-1", "eu-west-1"] {
        trailvault::integrity::keys::import(archive.as_ref(), region, "test", der.clone())
            .await
            .unwrap();
    }
    let report = VerifyJob {
        archive: archive.clone(),
        state: Some(state.clone()),
        selection: Selection {
            sources: vec!["m".into()],
            digests: true,
            ..Default::default()
        },
        concurrency: 4,
    }
    .run()
    .await
    .unwrap();
    assert!(report.ok, "{:?}", report.problems);
    // Per account-region: the first chain, the restart, and the backfill chain.
    assert_eq!(report.chain_starts, 4 * 3);
    let backfilled = files.iter().filter(|f| f.key.contains("BACKFILLEDLATE01")).count() as u64;
    let logs = files.iter().filter(|f| f.key.contains("/CloudTrail/")).count() as u64;
    assert_eq!(backfilled, 4);
    assert_eq!(report.checked.logs, logs, "the backfilled logs are vouched for too");
    assert_eq!(report.logs_awaiting_digest, 0);
}

#[tokio::test]
async fn replay_store_over_memory() {
    support::store_suite::replay_store_contract(&MemoryBlobStore::new()).await;
}

#[tokio::test]
async fn status_from_log_analytics_applies_the_gap_rule_to_the_records() {
    use wiremock::matchers::{body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let now: chrono::DateTime<chrono::Utc> = "2026-11-26T09:00:00Z".parse().unwrap();
    Mock::given(method("POST"))
        .and(path("/v1/workspaces/00000000-0000-0000-0000-000000000001/query"))
        .and(header("authorization", "Bearer test-token"))
        .and(body_partial_json(serde_json::json!({"query": trailvault::failover::status::STATUS_KQL, "timespan": "P31D"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"tables": [{
            "name": "PrimaryResult",
            "columns": [{"name": "Source", "type": "string"}, {"name": "LastSuccessStart", "type": "datetime"}, {"name": "TimeGenerated", "type": "datetime"}, {"name": "Status", "type": "string"}],
            "rows": [
                ["fresh", "2026-11-26T08:00:00Z", "2026-11-26T08:05:00Z", "Succeeded"],
                ["stale", "2026-11-25T16:00:00Z", "2026-11-26T08:05:00Z", "Failed"],
            ]
        }]})))
        .mount(&server)
        .await;
    let options = azure_core::http::ClientOptions {
        retry: azure_core::http::RetryOptions::none(),
        transport: Some(azure_core::http::Transport::new(Arc::new(support::ToLoopback {
            port: server.address().port(),
            inner: azure_core::http::new_http_client(None),
        }))),
        ..Default::default()
    };
    let query = trailvault::monitor::LogsQuery::new(
        "00000000-0000-0000-0000-000000000001",
        Arc::new(support::FixedToken),
        options,
    )
    .unwrap();
    let sources = vec!["fresh".to_string(), "stale".to_string(), "never".to_string()];
    let r = trailvault::failover::status::status_from_log_analytics(&query, &sources, chrono::Duration::hours(8), now)
        .await
        .unwrap();
    let by = |n: &str| r.sources.iter().find(|s| s.name == n).unwrap();
    assert!(by("fresh").within_target);
    assert_eq!(by("fresh").backup_gap_seconds, Some(3600));
    assert!(!by("stale").within_target, "17 h since the last complete run");
    assert_eq!(
        by("stale").last_run_status,
        Some(trailvault::records::RunStatus::Failed)
    );
    assert!(!by("never").within_target && by("never").backup_gap_seconds.is_none());
    assert!(!r.ok);
}
