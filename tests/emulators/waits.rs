//! Issue 18, "every wait is bounded", against the real binary: Azure answering 503 with a
//! `Retry-After` of 999999999 (every header form) on an archive PUT, on the listing and on
//! the lease, through the fault proxy; the run ends within a bound with the right exit
//! code, and a clean run afterwards completes the archive (rclone).

use std::time::{Duration, Instant};

use super::support::proxy::Inject;
use super::*;

/// Short waits so a bound that holds is quick to see: `retry_max_delay` caps every wait,
/// ours and the SDKs'.
const SHORT_WAITS: &str = "[sync]\nretries = 3\nretry_max_delay = \"1s\"\n";

/// Every way Azure can ask for a wait: seconds, an HTTP date, and the two millisecond headers.
fn huge_asks() -> Vec<(&'static str, String)> {
    vec![
        ("Retry-After", "999999999".into()),
        ("x-ms-retry-after-ms", "999999999999".into()),
        ("retry-after-ms", "999999999999".into()),
        ("Retry-After", "Fri, 31 Dec 2100 23:59:59 GMT".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retry_after_on_archive_puts_costs_at_most_retry_max_delay() {
    let w = world!("waits-put-bucket");
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let azure = Proxy::start(w.azurite.port).await;
    let config = w.config_with_target(
        w.moto.port,
        "",
        &support::blob_url(azure.port),
        "shared-key",
        SHORT_WAITS,
    );
    // The first four archive PUTs are answered 503 ServerBusy, each asking in another form.
    let put = format!("PUT /devstoreaccount1/{}/", support::ARCHIVE);
    azure.inject(
        huge_asks()
            .into_iter()
            .map(|(h, v)| Inject::azure_busy(&[&put], h, &v, 1))
            .collect(),
    );
    let start = Instant::now();
    let run = tokio::time::timeout(Duration::from_secs(120), w.sync(&config))
        .await
        .expect("sync hung on a server's Retry-After");
    let took = start.elapsed();
    assert_eq!(azure.injected(), 4, "every form was met");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.json()["sources"][0]["files_copied"],
        files.len() as u64,
        "{}",
        run.stdout
    );
    // Four asks, each capped at 1 s (plus the SDK's own single retry): far from 999999999 s.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let (ok, out) = w.rclone_check("");
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_or_lease_that_always_asks_for_a_huge_wait_ends_the_run_then_a_clean_run_completes() {
    let w = world!("waits-list-bucket");
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let azure = Proxy::start(w.azurite.port).await;
    let config = w.config_with_target(
        w.moto.port,
        "",
        &support::blob_url(azure.port),
        "shared-key",
        SHORT_WAITS,
    );
    // A first run creates the containers (and the lock blob) through the proxy.
    let first = w.sync(&config).await;
    assert_eq!(first.code, 0, "{first:?}");
    // New files for the runs under test to find.
    let mut later = sample_trail(&w.bucket);
    later.seed = 99;
    later.days = vec![chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()];
    let more = later.generate();
    w.seed(&more).await;

    let archive = format!("GET /devstoreaccount1/{}?", support::ARCHIVE);
    let asks = huge_asks();
    for (what, matches, forms) in [
        (
            "archive listing",
            vec![archive.as_str(), "comp=list"],
            [&asks[1], &asks[3]],
        ),
        ("lease", vec!["comp=lease"], [&asks[0], &asks[2]]),
    ] {
        for (header, value) in forms {
            azure.inject(vec![Inject::azure_busy(&matches, header, value, usize::MAX)]);
            let start = Instant::now();
            let run = tokio::time::timeout(Duration::from_secs(150), w.sync(&config))
                .await
                .unwrap_or_else(|_| panic!("sync hung on the {what} asking `{header}: {value}`"));
            let took = start.elapsed();
            assert!(azure.injected() > 0, "{what}: nothing injected");
            assert_eq!(run.code, 1, "{what} with {header}: {run:?}");
            assert!(took < Duration::from_secs(90), "{what} with {header}: took {took:?}");
            let doc = run.json();
            let said = doc.to_string();
            assert!(
                said.contains("ServerBusy") || said.contains("503") || said.contains("lock"),
                "{what}: the document names the failure: {said}"
            );
        }
    }

    // Azure answers again: the next run completes the archive.
    azure.inject(Vec::new());
    let clean = sync_after_lock_expiry(&w, &config).await;
    assert_eq!(clean.code, 0, "{clean:?}");
    let (ok, out) = w.rclone_check("");
    assert!(ok, "{out}");
    assert_eq!(
        w.archived().await.expect("listing the archive").len(),
        files.len() + more.len()
    );
}
