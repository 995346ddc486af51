//! daemon: scheduled syncs, health and metrics endpoints, SIGTERM.

use super::*;

pub(super) async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new());
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_runs_scheduled_syncs_and_serves_health_and_metrics() {
    use tokio::io::AsyncBufReadExt;
    let w = world!("daemon-bucket");
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let config = w.config(
        w.moto.port,
        "",
        "[schedule]\ncron = \"*/2 * * * * *\"\nverify_cron = \"0 0 0 1 1 *\"\n",
    );
    let mut child = w
        .command(&config, &["daemon", "--listen", "127.0.0.1:0"])
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let port = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "listening" {
                return v["addr"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse::<u16>()
                    .unwrap();
            }
        }
        panic!("the daemon exited before listening");
    })
    .await
    .expect("the daemon did not report its address");
    // Keep draining its logs so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    assert_eq!(http_get(port, "/healthz").await.0, 200);
    assert_eq!(http_get(port, "/readyz").await.0, 200);
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = http_get(port, "/metrics").await.1;
        if metrics.contains("trailvault_sync_runs_total{source=\"main\",status=\"Succeeded\"}") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        metrics.contains("trailvault_sync_runs_total{source=\"main\",status=\"Succeeded\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "trailvault_objects_copied_total{{source=\"main\"}} {}",
            files.len()
        )),
        "{metrics}"
    );
    assert!(metrics.contains("trailvault_rpo_target_seconds 28800"), "{metrics}");
    let gap_line = metrics
        .lines()
        .find(|l| l.starts_with("trailvault_backup_gap_seconds{source=\"main\"}"))
        .expect("gap gauge");
    let gap: f64 = gap_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((0.0..60.0).contains(&gap), "{gap_line}");
    assert_eq!(w.archived().await.expect("listing the archive").len(), files.len());

    // SIGTERM: drains and exits 0.
    let pid = child.id().unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Starts the daemon with `ulimit -n 1024` (as the issue's slow-client attack had it) and
/// returns it with its port; its logs are drained.
async fn daemon_with_fd_limit(w: &World, config: &std::path::PathBuf) -> (tokio::process::Child, u16) {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", w.dir.path())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("TRAILVAULT_AZURE_ACCOUNT_KEY", support::emulators::AZURITE_KEY)
        .env("TRAILVAULT_AZURE_MAX_RETRIES", "1")
        .env("AWS_MAX_ATTEMPTS", "2")
        .arg("-c")
        .arg("ulimit -n 1024 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_trailvault"))
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json", "daemon", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let port = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "listening" {
                return v["addr"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse::<u16>()
                    .unwrap();
            }
        }
        panic!("the daemon exited before listening");
    })
    .await
    .expect("the daemon did not report its address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
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
    let (mut daemon, port) = daemon_with_fd_limit(&w, &config).await;
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
    let pid = daemon.id().unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), daemon.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
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
    let (mut daemon, port) = daemon_with_fd_limit(&w, &config).await;
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
    let running: f64 = metrics
        .lines()
        .find(|l| l.starts_with("trailvault_run_in_progress_seconds "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no gauge: {metrics}"));
    assert!(running > 4.0, "{running}");
    // /healthz stays 200: the process answers; only liveness calls the work stuck.
    assert_eq!(http_get(port, "/healthz").await.0, 200);
    s3.inject(Vec::new());
    let pid = daemon.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), daemon.wait()).await;
}
