//! One-shot commands stop on SIGTERM and SIGINT at a safe point, also as PID 1 of a PID
//! namespace (a container's entry point), where the kernel delivers only the signals a
//! process has a handler for: the run is recorded Partial with `stopped = "signal"`, the
//! lease is released, the exit code is 143 or 130, and the next sync completes.

use super::*;
use crate::resilience::{assert_stopped_then_resumed, wait_until_mid_sync};

/// The PID (in this namespace) of the process `unshare --fork` started.
fn forked_child(unshare_pid: u32) -> u32 {
    for _ in 0..200 {
        let children =
            std::fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children")).unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("unshare started no child");
}

async fn stop_sync_as_pid_1(bucket: &str, signal: &str, expected_code: i32) {
    let w = world!(bucket);
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    proxy.set(Fault::SlowResponses(std::time::Duration::from_millis(40)));
    let config = w.config(proxy.port, "", "[sync]\nconcurrency = 2\n");
    let mut child = w
        .command_under(&["unshare", "--pid", "--fork"], &config, &["sync", "--json"])
        .spawn()
        .unwrap();
    let pid_1 = forked_child(child.id().unwrap());
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid_1}/status"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            .unwrap(),
        "1",
        "the sync is not PID 1 of its namespace"
    );
    wait_until_mid_sync(&w, files.len()).await;
    let stop_at = std::time::Instant::now();
    kill(pid_1, signal);
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let status = child.wait().await.unwrap();
        let mut stdout = String::new();
        if let Some(mut s) = child.stdout.take() {
            use tokio::io::AsyncReadExt;
            s.read_to_string(&mut stdout).await.unwrap();
        }
        (status, stdout)
    })
    .await
    .expect("the sync did not stop after the signal");
    let (status, stdout) = out;
    assert_eq!(status.code(), Some(expected_code), "{stdout}");
    assert!(
        stop_at.elapsed() < std::time::Duration::from_secs(25),
        "it waited out the grace"
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document on stdout");
    assert_eq!(doc["status"], "Partial", "{doc}");
    assert_eq!(doc["cancelled"], true, "{doc}");
    let stopped = w
        .run_records()
        .await
        .iter()
        .any(|r| r[0]["Details"]["stopped"] == "signal");
    assert!(stopped, "no run record says it was stopped by a signal");
    assert!(w.archived_so_far().await < files.len(), "the run was not stopped");
    assert_stopped_then_resumed(&w, &proxy, &config, files.len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_one_shot_sync_running_as_pid_1_with_143() {
    stop_sync_as_pid_1("pid1-term-bucket", "TERM", 143).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_a_one_shot_sync_running_as_pid_1_with_130() {
    stop_sync_as_pid_1("pid1-int-bucket", "INT", 130).await;
}

/// A second signal ends the process at once, without waiting for work in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_a_one_shot_sync_at_once() {
    let w = world!("second-signal-bucket");
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    proxy.set(Fault::SlowResponses(std::time::Duration::from_millis(40)));
    let config = w.config(proxy.port, "", "[sync]\nconcurrency = 2\n");
    let mut child = w
        .command(&config, &["sync", "--shutdown-grace", "60s", "--json"])
        .spawn()
        .unwrap();
    wait_until_mid_sync(&w, files.len()).await;
    // Copies in flight now stall, so the first signal alone would wait for them.
    proxy.set(Fault::SlowResponses(std::time::Duration::from_secs(30)));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let first = std::time::Instant::now();
    kill(child.id().unwrap(), "TERM");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal did not wait for work in flight"
    );
    kill(child.id().unwrap(), "TERM");
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("a second SIGTERM did not end the sync")
        .unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(
        first.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        first.elapsed()
    );
    proxy.set(Fault::Pass);
    let run = super::sync::sync_after_lock_expiry(&w, &config).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.archived().await.unwrap().len(), files.len());
}
