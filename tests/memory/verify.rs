//! verify over a synced memory archive.

use super::*;

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
        archive: archive.clone().into(),
        state: Some(state.clone().into()),
        selection: Selection {
            sources: vec!["m".into()],
            digests: true,
            ..Default::default()
        },
        concurrency: 4,
        retry: trailvault::storage::retry::RetryPolicy::none(),
        cancel: Default::default(),
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
