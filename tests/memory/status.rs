//! status: from the state container (lock, health, watermarks) and from Log Analytics.

use chrono::{DateTime, Duration, Utc};
use trailvault::cli::exit::Verdict;
use trailvault::failover::status::{status, StatusReport};
use trailvault::state::{LockHolder, SyncLock};

use super::*;

const MAX_GAP: i64 = 8 * 3600;

async fn status_at(state: &MemoryBlobStore, now: DateTime<Utc>) -> StatusReport {
    status(state, &["m".to_string()], Duration::seconds(MAX_GAP), now)
        .await
        .unwrap()
}

/// A memory sync of the sample trail; returns the files, the state, and the wall-clock
/// window the run started in.
async fn synced() -> (
    Vec<support::ctgen::GenFile>,
    Arc<MemoryBlobStore>,
    DateTime<Utc>,
    DateTime<Utc>,
) {
    let src = Arc::new(MemorySource::new("b"));
    let files = seed(&src);
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let before = Utc::now();
    let r = job(src, archive, state.clone()).run().await.unwrap();
    let after = Utc::now();
    assert!(r.sources[0].complete, "{r:?}");
    (files, state, before, after)
}

#[tokio::test]
async fn status_before_any_sync_is_not_ok_and_has_no_gap() {
    let state = MemoryBlobStore::new();
    let r = status_at(&state, Utc::now()).await;
    let s = &r.sources[0];
    assert_eq!(s.name, "m");
    assert!(s.last_success_started_at.is_none() && s.backup_gap_seconds.is_none());
    assert!(!s.within_target && !s.run_in_progress);
    assert!(s.accounts.is_empty() && s.last_run_status.is_none());
    assert!(!r.ok);
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_CHECK_FAILED);
    let doc = serde_json::to_value(&r).unwrap();
    assert!(doc["sources"][0]["backup_gap_seconds"].is_null(), "{doc}");
}

#[tokio::test]
async fn status_after_a_memory_sync_follows_the_injected_clock() {
    let (files, state, before, after) = synced().await;
    let last = status_at(&state, after).await.sources[0]
        .last_success_started_at
        .expect("a complete run was recorded");
    assert!(before <= last && last <= after, "{before} <= {last} <= {after}");

    let r = status_at(&state, last + Duration::hours(1)).await;
    let s = &r.sources[0];
    assert_eq!(s.backup_gap_seconds, Some(3600));
    assert!(s.within_target && r.ok && !s.run_in_progress);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.max_gap_seconds, MAX_GAP);
    assert_eq!(s.last_run_status, Some(trailvault::records::RunStatus::Succeeded));
    assert_eq!(s.consecutive_failed_runs, 0);
    // Every account-region, with its newest file as the trail wrote it.
    let mut want: BTreeMap<(String, String), DateTime<Utc>> = BTreeMap::new();
    for f in &files {
        let parts: Vec<&str> = f.key.split('/').collect();
        let e = want
            .entry((parts[1].to_string(), parts[3].to_string()))
            .or_insert(f.time);
        *e = (*e).max(f.time);
    }
    let got: BTreeMap<(String, String), DateTime<Utc>> = s
        .accounts
        .iter()
        .map(|a| ((a.account.clone(), a.region.clone()), a.newest_file_time.unwrap()))
        .collect();
    assert_eq!(got, want);
    assert!(
        s.accounts.iter().all(|a| a.files_not_covered_by_digest == 0),
        "{:?}",
        s.accounts
    );

    // The boundary is inclusive; one second past it is over target.
    assert!(status_at(&state, last + Duration::seconds(MAX_GAP)).await.ok);
    let r = status_at(&state, last + Duration::seconds(MAX_GAP + 1)).await;
    assert!(!r.sources[0].within_target && !r.ok);
    assert_eq!(r.sources[0].backup_gap_seconds, Some(MAX_GAP + 1));
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_CHECK_FAILED);
}

#[tokio::test]
async fn status_with_a_held_lock_applies_the_running_sync_rule() {
    let (_, state, _, after) = synced().await;
    let last = status_at(&state, after).await.sources[0]
        .last_success_started_at
        .unwrap();
    let holder = |started_at| LockHolder {
        run_id: "run-under-way".into(),
        host: "test".into(),
        pid: 1,
        started_at,
    };
    // The next run started 7 h after the last complete one and is still going at 9 h.
    let lock = SyncLock::acquire(state.clone().into(), &holder(last + Duration::hours(7)))
        .await
        .unwrap();
    let r = status_at(&state, last + Duration::hours(9)).await;
    let s = &r.sources[0];
    assert!(s.run_in_progress);
    assert_eq!(s.backup_gap_seconds, Some(9 * 3600));
    assert!(
        s.within_target && r.ok,
        "a run that started within max_gap is still going"
    );
    lock.release().await;
    assert!(
        !status_at(&state, last + Duration::hours(9)).await.ok,
        "released: the gap counts"
    );

    // A run that started 9 h after the last complete one does not excuse the gap.
    let lock = SyncLock::acquire(state.clone().into(), &holder(last + Duration::hours(9)))
        .await
        .unwrap();
    let r = status_at(&state, last + Duration::minutes(9 * 60 + 30)).await;
    assert!(r.sources[0].run_in_progress);
    assert!(!r.sources[0].within_target && !r.ok);
    lock.release().await;
}

#[tokio::test]
async fn status_leaves_out_an_unreadable_watermark_and_reports_the_rest() {
    let (_, state, _, after) = synced().await;
    let broken = "watermarks/m/111122223333/us-east-1.json";
    assert!(state.tamper(broken, Bytes::from_static(b"{ not json")));
    let r = status_at(&state, after).await;
    let s = &r.sources[0];
    let got: Vec<(&str, &str)> = s
        .accounts
        .iter()
        .map(|a| (a.account.as_str(), a.region.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("111122223333", "eu-west-1"),
            ("444455556666", "eu-west-1"),
            ("444455556666", "us-east-1"),
        ]
    );
    assert!(s.within_target && r.ok, "the gap comes from health, which is intact");
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
