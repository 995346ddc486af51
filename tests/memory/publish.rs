//! Log Analytics publishing through the real Logs Ingestion client (a local endpoint),
//! with the state container in memory.

use std::collections::BTreeMap;

use trailvault::failover::publish::publish;
use trailvault::records::{Record, RecordType, RunStatus};
use trailvault::state::write_run_records;
use trailvault::storage::memory::MemoryBlobStore;
use trailvault::storage::BlobStoreExt;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support;

/// The real client, sending to `server`, without retries (the tests count every request).
fn client(server: &MockServer) -> trailvault::monitor::LogsIngestion {
    let options = azure_core::http::ClientOptions {
        retry: azure_core::http::RetryOptions::none(),
        ..Default::default()
    };
    support::logs_ingestion(server.address().port(), options)
}

#[tokio::test]
async fn a_run_cut_short_by_a_failed_batch_resumes_without_sending_a_row_twice() {
    let state = MemoryBlobStore::new();
    let run = "20261126T000000Z-aaaaaaaa";
    // Seven records of 300 kB: three calls of at most 1 MB.
    let records: Vec<Record> = (0..7)
        .map(|i| Record {
            message: "x".repeat(300_000),
            ..Record::of(RecordType::SyncRun, run, &format!("part{i}"), RunStatus::Succeeded)
        })
        .collect();
    write_run_records(&state, run, &records).await.unwrap();

    // The first call is taken, the second meets a 503, every later one is taken.
    let server = MockServer::start().await;
    for status in [204, 503] {
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status))
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let client = client(&server);

    let out = publish(&state, &client, run).await;
    assert!(out.sent.is_empty() && out.error.is_some(), "{out:?}");
    assert_eq!(state.count("spool/").await.unwrap(), 1);
    let out = publish(&state, &client, run).await;
    assert_eq!(out.sent, [run], "{out:?}");
    assert_eq!(state.count("spool/").await.unwrap(), 0);

    // Every row that reached the endpoint with a 2xx, counted by RecordId.
    let requests = server.received_requests().await.unwrap();
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in requests.iter().enumerate() {
        assert!(r.body.len() <= trailvault::monitor::ingest::MAX_BODY_BYTES);
        if i == 1 {
            continue; // the call answered 503
        }
        let batch: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
        for row in batch {
            *rows.entry(row["RecordId"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert!(rows.values().all(|n| *n == 1), "rows sent twice: {rows:?}");
}
