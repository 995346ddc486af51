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
