//! functions: the custom handler driven as the Azure Functions host drives it.

use super::*;

/// Starts `trailvault functions` as the host does and waits for its answer to `GET /`.
pub(super) async fn start_functions(w: &World, config: &std::path::PathBuf) -> (tokio::process::Child, u16) {
    let port = free_port();
    let child = w
        .command(config, &["functions"])
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .spawn()
        .unwrap();
    assert!(
        answers_get(port).await,
        "the handler never answered GET / (the host would give up)"
    );
    (child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_custom_handler_serves_the_timer_and_http_functions() {
    let w = world!("functions-bucket");
    // Yesterday's and today's files up to now, so the verify function (the last 24 hours)
    // has a digest to check whatever the time of day: the sample trail delivers between
    // 00:07 and 02:02, so before 01:00 UTC only yesterday's digests are in its range.
    let now = chrono::Utc::now();
    let mut trail = sample_trail(&w.bucket);
    trail.days = vec![(now - chrono::Duration::days(1)).date_naive(), now.date_naive()];
    let files: Vec<_> = trail.generate().into_iter().filter(|f| f.time < now).collect();
    assert!(
        files
            .iter()
            .any(|f| f.key.contains("CloudTrail-Digest") && f.time > now - chrono::Duration::hours(23)),
        "no digest in the verify function's range"
    );
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

    kill(child.id().unwrap(), "TERM");
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
