//! Log Analytics: records sent, spooled when the endpoint fails, sent in order when it is back.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_to_log_analytics_and_wait_in_the_spool_when_it_fails() {
    use trailvault::failover::publish::publish;
    use trailvault::records::{Record, RecordType, RunStatus};
    use trailvault::state::write_run_records;
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let w = world!("la-bucket");
    w.state.ensure_container().await.unwrap();
    for run in ["20261126T000000Z-aaaaaaaa", "20261126T080000Z-bbbbbbbb"] {
        let mut r = Record::of(RecordType::SyncRun, run, "main", RunStatus::Succeeded);
        r.source = "main".into();
        write_run_records(w.state.as_ref(), run, &[r]).await.unwrap();
    }
    let server = MockServer::start().await;
    let options = azure_core::http::ClientOptions {
        retry: azure_core::http::RetryOptions::none(),
        transport: Some(azure_core::http::Transport::new(std::sync::Arc::new(
            support::ToLoopback {
                port: server.address().port(),
                inner: azure_core::http::new_http_client(None),
            },
        ))),
        ..Default::default()
    };
    let endpoint = url::Url::parse("https://trailvault-dce.westeurope-1.ingest.monitor.azure.com").unwrap();
    let client = trailvault::monitor::LogsIngestion::new(
        &endpoint,
        "dcr-0123",
        "Custom-TrailVault_CL",
        std::sync::Arc::new(support::FixedToken),
        options,
    )
    .unwrap();

    // Log Analytics down: the run waits in the spool.
    let down = Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount_as_scoped(&server)
        .await;
    let out = publish(w.state.as_ref(), &client, "20261126T000000Z-aaaaaaaa").await;
    assert!(out.sent.is_empty() && out.error.is_some(), "{out:?}");
    assert_eq!(out.spooled, ["20261126T000000Z-aaaaaaaa"]);
    assert_eq!(w.state.list_all("spool/").await.unwrap().len(), 1);
    drop(down);

    // Back: the spooled run goes first, then the new one; the spool empties.
    Mock::given(method("POST"))
        .and(path("/dataCollectionRules/dcr-0123/streams/Custom-TrailVault_CL"))
        .and(query_param("api-version", "2023-01-01"))
        .and(header("authorization", "Bearer test-token"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(204))
        .expect(2)
        .mount(&server)
        .await;
    let out = publish(w.state.as_ref(), &client, "20261126T080000Z-bbbbbbbb").await;
    assert_eq!(
        out.sent,
        ["20261126T000000Z-aaaaaaaa", "20261126T080000Z-bbbbbbbb"],
        "{out:?}"
    );
    assert!(out.spooled.is_empty() && out.error.is_none());
    assert!(w.state.list_all("spool/").await.unwrap().is_empty());
    let received = server.received_requests().await.unwrap();
    let bodies: Vec<serde_json::Value> = received
        .iter()
        .filter(|r| r.url.path().contains("streams"))
        .map(|r| r.body_json().unwrap())
        .collect();
    let runs: Vec<&str> = bodies.iter().skip(1).map(|b| b[0]["RunId"].as_str().unwrap()).collect();
    assert_eq!(runs, ["20261126T000000Z-aaaaaaaa", "20261126T080000Z-bbbbbbbb"]);
    assert_eq!(bodies[1][0]["RecordType"], "SyncRun");
    server.verify().await;
}
