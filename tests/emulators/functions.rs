//! functions: the custom handler driven as the Azure Functions host drives it.

use super::*;

pub(super) async fn http_post(port: u16, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Azure-Functions-InvocationId: 6b1c\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (
        code,
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

/// Starts `trailvault functions` as the host does and waits for its answer to `GET /`.
pub(super) async fn start_functions(w: &World, config: &std::path::PathBuf) -> (tokio::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = w
        .command(config, &["functions"])
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if http_get(port, "/").await.0 == 200 {
            return (child, port);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the handler never answered GET / (the host would give up)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_custom_handler_serves_the_timer_and_http_functions() {
    let w = world!("functions-bucket");
    // Today's files, so the verify function (the last day) has something to check.
    let mut trail = sample_trail(&w.bucket);
    trail.days = vec![chrono::Utc::now().date_naive()];
    let files: Vec<_> = trail
        .generate()
        .into_iter()
        .filter(|f| f.time < chrono::Utc::now())
        .collect();
    w.seed(&files).await;
    let config = w.config(w.moto.port, "", "");
    let (mut child, port) = start_functions(&w, &config).await;

    let timer = r#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"sync","UtcNow":"2026-11-26T08:00:00Z","RandGuid":"x"}}}"#;
    let (code, body) = http_post(port, "/sync", timer).await;
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(doc["Logs"][0].as_str().unwrap().contains("Succeeded"), "{doc}");
    assert!(doc["ReturnValue"].is_null() && doc["Outputs"].is_object());
    assert_eq!(w.archived().await.expect("listing the archive").len(), files.len());

    let (code, body) = http_get(port, "/api/status").await;
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["sources"][0]["within_target"], true, "{status}");

    // No public keys archived: the verify finds unknown keys and the invocation fails.
    let (code, body) = http_post(port, "/verify", timer).await;
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("UnknownKey"), "{body}");

    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_handler_reports_a_bad_config_per_invocation() {
    let w = world!("functions-bad");
    let bad = w.config(
        w.moto.port,
        "",
        "[sync]
concurency = 1
",
    );
    // The host must see the handler start even with a bad config.
    let (mut child, port) = start_functions(&w, &bad).await;
    let (code, body) = http_post(port, "/sync", "{}").await;
    assert_eq!(code, 500);
    assert!(body.contains("concurency"), "{body}");
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
