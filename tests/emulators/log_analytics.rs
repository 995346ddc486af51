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
        ..Default::default()
    };
    let client = support::logs_ingestion(server.address().port(), options);

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

/// Issue 18: Log Analytics answering 429 with a huge wait, in every header form, through
/// the same client options the binary builds (`storage::azure_http::client_options`):
/// each send ends within the `retry_max_delay` ceiling, and a publish that cannot finish
/// stops at its budget with the run left in the spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_asking_for_a_huge_wait_neither_hangs_a_send_nor_a_publish() {
    use std::time::{Duration, Instant};
    use trailvault::failover::publish::publish_within;
    use trailvault::records::{Record, RecordType, RunStatus};
    use trailvault::state::write_run_records;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let w = world!("la-429-bucket");
    w.state.ensure_container().await.unwrap();
    let run = "20261126T000000Z-cccccccc";
    write_run_records(
        w.state.as_ref(),
        run,
        &[Record::of(RecordType::SyncRun, run, "main", RunStatus::Succeeded)],
    )
    .await
    .unwrap();
    for (header, value) in [
        ("Retry-After", "999999999".to_string()),
        ("retry-after-ms", "999999999999".to_string()),
        ("x-ms-retry-after-ms", "999999999999".to_string()),
        ("Retry-After", "Fri, 31 Dec 2100 23:59:59 GMT".to_string()),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429).insert_header(header, value.as_str()))
            .mount(&server)
            .await;
        let options = trailvault::storage::azure_http::client_options(Duration::from_millis(300));
        let client = support::logs_ingestion(server.address().port(), options);
        let start = Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            publish_within(w.state.as_ref(), &client, run, Duration::from_secs(20)),
        )
        .await
        .unwrap_or_else(|_| panic!("publishing hung on `{header}: {value}`"));
        let took = start.elapsed();
        // The SDK's retries (4 by default) each waited at most 300 ms, not the server's ask.
        assert!(took < Duration::from_secs(15), "`{header}: {value}` took {took:?}");
        assert!(server.received_requests().await.unwrap().len() > 1, "the SDK retried");
        assert!(out.sent.is_empty(), "{out:?}");
        assert_eq!(out.spooled, [run], "{out:?}");
    }
    assert_eq!(w.state.list_all("spool/").await.unwrap().len(), 1);
}
