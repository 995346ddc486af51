//! AWS health: failed probes declare an outage and a good one ends it.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_probes_declare_an_outage_and_a_good_one_ends_it() {
    let w = world!("health-bucket");
    w.seed(&sample_trail(&w.bucket).generate()).await;
    let health = "[health]\nprobe_timeout = \"2s\"\ndegraded_after = 1\noutage_after = 2\n";
    let closed = free_port();
    let down = w.config(closed, "", health);
    let up = w.config(w.moto.port, "", health);
    let aws_health = |doc: &serde_json::Value| doc["sources"][0]["aws_health"].as_str().map(str::to_string);

    assert_eq!(w.sync(&up).await.code, 0);
    assert_eq!(
        aws_health(&w.run(&up, &["status", "--json"]).await.json()).as_deref(),
        Some("Healthy")
    );

    let first = w.sync(&down).await;
    assert_eq!(first.code, 1);
    assert_eq!(aws_health(&first.json()).as_deref(), Some("Degraded"));
    let second = w.sync(&down).await;
    let doc = second.json();
    assert_eq!(aws_health(&doc).as_deref(), Some("Outage"));
    assert!(
        doc["sources"][0]["failover_event"]
            .as_str()
            .unwrap()
            .contains("AWS outage declared"),
        "{doc}"
    );
    let status = w.run(&up, &["status", "--json"]).await.json();
    assert_eq!(aws_health(&status).as_deref(), Some("Outage"));
    // The transition is a Failover record beside the SyncRun.
    let rec = w.run_record(doc["run_id"].as_str().unwrap()).await;
    let types: Vec<&str> = rec
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["RecordType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SyncRun", "Failover"]);
    assert_eq!(rec[1]["AwsHealth"], "Outage");

    let back = w.sync(&up).await;
    assert_eq!(back.code, 0);
    let doc = back.json();
    assert_eq!(aws_health(&doc).as_deref(), Some("Healthy"));
    assert!(
        doc["sources"][0]["failover_event"]
            .as_str()
            .unwrap()
            .contains("reachable again"),
        "{doc}"
    );
}
