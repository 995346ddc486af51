//! daemon: scheduled syncs, health and metrics endpoints, SIGTERM.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_runs_scheduled_syncs_and_serves_health_and_metrics() {
    let w = world!("daemon-bucket");
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let config = w.config(
        w.moto.port,
        "",
        "[schedule]\ncron = \"*/2 * * * * *\"\nverify_cron = \"0 0 0 1 1 *\"\n",
    );
    let daemon = Daemon::start(&mut w.command(&config, &["daemon", "--listen", "127.0.0.1:0"])).await;
    let port = daemon.port;

    assert_eq!(http_get(port, "/healthz").await.0, 200);
    assert_eq!(http_get(port, "/readyz").await.0, 200);
    let succeeded = "trailvault_sync_runs_total{source=\"main\",status=\"Succeeded\"}";
    let metrics = wait_for_metrics(port, |m| m.contains(succeeded)).await;
    assert!(
        metrics.contains(&format!(
            "trailvault_objects_copied_total{{source=\"main\"}} {}",
            files.len()
        )),
        "{metrics}"
    );
    assert!(metrics.contains("trailvault_rpo_target_seconds 28800"), "{metrics}");
    let gap = metric(&metrics, "trailvault_backup_gap_seconds{source=\"main\"}").expect("gap gauge");
    assert!((0.0..60.0).contains(&gap), "{gap}");
    assert_eq!(w.archived().await.expect("listing the archive").len(), files.len());

    // SIGTERM: drains and exits 0.
    let (status, _) = daemon.stop().await;
    assert_eq!(status.code(), Some(0));
}

/// Starts the daemon with `ulimit -n 1024` (as the issue's slow-client attack had it) and
/// returns it with its port; its logs are drained.
async fn daemon_with_fd_limit(w: &World, config: &std::path::PathBuf) -> Daemon {
    let ulimit = ["sh", "-c", "ulimit -n 1024 && exec \"$@\"", "sh"];
    Daemon::start(&mut w.command_under(&ulimit, config, &["daemon", "--listen", "127.0.0.1:0"])).await
}

/// 1,100 connections that each send one header byte every 5 s and never finish a request
/// (a Python helper, which can raise its own descriptor limit), for `seconds`.
fn slow_clients(port: u16, n: usize, seconds: u64) -> tokio::process::Child {
    const SCRIPT: &str = r#"
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        s.send(b"G")
        socks.append(s)
    except OSError:
        s.close()
print("connected", len(socks), flush=True)
end = time.time() + secs
while time.time() < end:
    time.sleep(5)
    for s in list(socks):
        try:
            s.send(b"E")
        except OSError:
            socks.remove(s)
print("still open", len(socks), flush=True)
"#;
    tokio::process::Command::new("python3")
        .args(["-c", SCRIPT, &port.to_string(), &n.to_string(), &seconds.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3")
}

/// GET `path`, answered within `within` (status 0 when not).
async fn timed_get(port: u16, path: &str, within: std::time::Duration) -> (u16, std::time::Duration) {
    let start = std::time::Instant::now();
    let code = tokio::time::timeout(within, http_get(port, path))
        .await
        .map(|(c, _)| c)
        .unwrap_or(0);
    (code, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_answer_within_a_second_while_1100_slow_clients_hold_connections() {
    use tokio::io::AsyncBufReadExt;
    let w = world!("daemon-load-bucket");
    let config = w.config(
        w.moto.port,
        "",
        "[schedule]\ncron = \"0 0 0 1 1 *\"\nverify_cron = \"0 0 0 1 1 *\"\n",
    );
    let daemon = daemon_with_fd_limit(&w, &config).await;
    let port = daemon.port;
    let mut clients = slow_clients(port, 1100, 16);
    let mut out = tokio::io::BufReader::new(clients.stdout.take().unwrap()).lines();
    let connected = tokio::time::timeout(std::time::Duration::from_secs(60), out.next_line())
        .await
        .expect("the slow clients connect")
        .unwrap()
        .unwrap_or_default();
    assert!(connected.starts_with("connected"), "{connected}");
    // While they trickle their bytes (and beyond the 10 s request timeout), every probe
    // answers within 1 s.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(14);
    let mut probes = 0;
    while std::time::Instant::now() < until {
        for path in ["/healthz", "/livez", "/readyz"] {
            let (code, took) = timed_get(port, path, std::time::Duration::from_secs(1)).await;
            assert_eq!(
                code, 200,
                "{path} not answered within 1 s ({took:?}) under load ({connected})"
            );
            probes += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(probes >= 30);
    // Connections that never finished a request were closed by the daemon.
    let still = tokio::time::timeout(std::time::Duration::from_secs(30), out.next_line())
        .await
        .expect("the slow clients finish")
        .unwrap()
        .unwrap_or_default();
    let open: usize = still
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(open < 256, "{still}: slow connections were kept open");
    let _ = clients.wait().await;
    // The daemon is still itself: metrics answer, and SIGTERM stops it cleanly.
    assert_eq!(http_get(port, "/metrics").await.0, 200);
    let (status, _) = daemon.stop().await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_stuck_beyond_twice_the_interval_makes_livez_503_and_shows_in_the_gauge() {
    use support::proxy::Inject;
    let w = world!("daemon-stuck-bucket");
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    // S3 answers listings only after 25 s: the sync every 2 s is stuck well past 4 s.
    let s3 = Proxy::start(w.moto.port).await;
    s3.inject(vec![Inject {
        matches: vec!["list-type=2".into()],
        status: 503,
        headers: vec![("Content-Type".into(), "application/xml".into())],
        body: "<Error><Code>SlowDown</Code><Message>stuck</Message></Error>".into(),
        delay: std::time::Duration::from_secs(25),
        times: usize::MAX,
    }]);
    let config = w.config(
        s3.port,
        "",
        "[schedule]\ncron = \"*/2 * * * * *\"\nverify_cron = \"0 0 0 1 1 *\"\n[health]\nprobe_timeout = \"60s\"\n",
    );
    let mut daemon = daemon_with_fd_limit(&w, &config).await;
    let port = daemon.port;
    let mut stuck = false;
    for _ in 0..60 {
        if http_get(port, "/livez").await.0 == 503 {
            stuck = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(stuck, "/livez never said the run is stuck");
    let metrics = http_get(port, "/metrics").await.1;
    let running =
        metric(&metrics, "trailvault_run_in_progress_seconds").unwrap_or_else(|| panic!("no gauge: {metrics}"));
    assert!(running > 4.0, "{running}");
    // /healthz stays 200: the process answers; only liveness calls the work stuck.
    assert_eq!(http_get(port, "/healthz").await.0, 200);
    s3.inject(Vec::new());
    daemon.signal("TERM");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), daemon.child.wait()).await;
}
