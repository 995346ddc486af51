//! status: the backup gap measured from recorded runs.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_measures_the_backup_gap_from_recorded_runs() {
    let w = world!("status-bucket");
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    let config = w.config(proxy.port, "", "[sync]\nmax_gap = \"8h\"\nconcurrency = 2\n");
    w.state.ensure_container().await.unwrap();

    // Never synced: no complete run, so not within target (exit 3), gap unknown.
    let run = w.run(&config, &["status", "--json"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.json()["sources"][0]["backup_gap_seconds"].is_null());

    // While a sync runs, status sees it.
    proxy.set(Fault::SlowResponses(std::time::Duration::from_millis(30)));
    let mut child = w.command(&config, &["sync", "--json"]).spawn().unwrap();
    let mut seen_running = false;
    for _ in 0..200 {
        let doc = w.run(&config, &["status", "--json"]).await.json();
        if doc["sources"][0]["run_in_progress"] == true {
            seen_running = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen_running, "status never saw the running sync");
    proxy.set(Fault::Pass);
    assert!(child.wait().await.unwrap().success());

    let run = w.run(&config, &["status", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let s = &doc["sources"][0];
    assert_eq!(s["within_target"], true);
    assert_eq!(s["run_in_progress"], false);
    assert_eq!(s["last_run_status"], "Succeeded");
    assert!(s["backup_gap_seconds"].as_i64().unwrap() < 120);
    assert_eq!(doc["max_gap_seconds"], 8 * 3600);
    assert_eq!(s["accounts"].as_array().unwrap().len(), 4, "{doc}");
    assert!(s["accounts"][0]["newest_file_time"].is_string());

    // The same state judged against a one-second target two seconds later: over target.
    // `status` takes its clock, so no test sleeps for time to pass.
    let later = chrono::Utc::now() + chrono::Duration::seconds(2);
    let strict = trailvault::failover::status::status(
        w.state.as_ref(),
        &[SOURCE.to_string()],
        chrono::Duration::seconds(1),
        later,
    )
    .await
    .expect("status from the state container");
    assert!(!strict.ok);
    assert!(!strict.sources[0].within_target);
    assert!(strict.sources[0].backup_gap_seconds.unwrap() >= 2);
}
