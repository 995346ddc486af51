//! Events: `drain` archives what the queue announces (moto delivers S3 notifications to
//! SQS in the same server), in every message shape, by sync's verified copy; what is not
//! ours, unreadable or gone is settled and counted; a failed copy keeps its message for a
//! later drain; what events missed, the next sync archives.

use super::*;

use aws_sdk_sqs::types::QueueAttributeName;

pub(super) struct Queue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
    pub arn: String,
}

fn sqs_client(port: u16) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::new()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// A queue with a short visibility timeout, so a kept message comes back within a test.
pub(super) async fn queue(w: &World, name: &str, visibility_seconds: u32) -> Queue {
    let client = sqs_client(w.moto.port);
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_seconds.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let attrs = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attrs.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    Queue { client, url, arn }
}

impl Queue {
    async fn send(&self, body: &str) {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Messages still in the queue, visible or not.
    async fn left(&self) -> u64 {
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let a = attrs.attributes().unwrap();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|n| a[n].parse::<u64>().unwrap())
        .sum()
    }
}

/// The bucket announces every new object to the queue.
pub(super) async fn notify(w: &World, q: &Queue) {
    use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
    w.s3.put_bucket_notification_configuration()
        .bucket(&w.bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .queue_arn(&q.arn)
                        .events(Event::S3ObjectCreated)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// A config whose source has `q` as its queue.
pub(super) fn with_queue(config: std::path::PathBuf, q: &Queue) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("[[source]]\n", &format!("[[source]]\nqueue_url = \"{}\"\n", q.url), 1);
    std::fs::write(&config, text).unwrap();
    config
}

fn source(doc: &serde_json::Value) -> &serde_json::Value {
    &doc["sources"][0]
}

fn s3_event(bucket: &str, name: &str, key: &str) -> String {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
        "eventTime": chrono::Utc::now().to_rfc3339(),
        "s3": {"bucket": {"name": bucket}, "object": {"key": key}}
    }]})
    .to_string()
}

fn sns(inner: &str) -> String {
    serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": inner}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_archives_what_s3_notifications_announce() {
    let w = world!("events-bucket");
    let q = queue(&w, "trail-events", 30).await;
    notify(&w, &q).await;
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    let config = with_queue(w.config(proxy.port, "", ""), &q);

    let run = w.run(&config, &["drain", "--json", "--max-time", "60s"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let s = source(&doc);
    assert_eq!(s["name"], SOURCE);
    assert_eq!(s["files_copied"], files.len() as u64, "{doc}");
    assert_eq!(s["files_failed"], 0, "{doc}");
    assert!(s["messages"].as_u64().unwrap() >= files.len() as u64, "{doc}");
    assert!(s["lag_seconds"]["p99"].as_f64().is_some(), "{doc}");
    assert_eq!(proxy.get_objects(), files.len());
    assert_eq!(q.left().await, 0, "settled messages are deleted");
    let (ok, out) = w.rclone_check("");
    assert!(ok, "rclone check found differences:\n{out}");

    // The Events record of the drain, in runs/ like any run's.
    let records = w.run_record(doc["run_id"].as_str().unwrap()).await;
    assert_eq!(records[0]["RecordType"], "Events", "{records}");
    assert_eq!(records[0]["FilesCopied"], files.len() as u64, "{records}");
    assert!(records[0]["Details"]["lag_seconds"]["max"].is_number(), "{records}");

    // status knows how old the archive is from what events archived (no sync ran yet).
    let newest = files
        .iter()
        .filter_map(|f| trailvault::cloudtrail::CtKey::parse_any(&f.key).ok())
        .filter(|k| k.stream.kind == trailvault::cloudtrail::FileKind::Log)
        .map(|k| k.time)
        .max()
        .unwrap();
    let status = w.run(&config, &["status", "--json"]).await;
    let st = &status.json()["sources"][0];
    assert_eq!(
        st["newest_archived_file_time"]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok()),
        Some(newest),
        "{st}"
    );
    let age = st["archive_age_seconds"].as_i64().unwrap();
    assert!((age - (chrono::Utc::now() - newest).num_seconds()).abs() < 60, "{st}");

    // Sync agrees it is all there: the same copy wrote the same blobs.
    let sync = w.sync(&config).await;
    assert_eq!(sync.code, 0, "{sync:?}");
    assert_eq!(sync.json()["sources"][0]["files_copied"], 0, "{}", sync.stdout);

    // An empty queue: the drain ends at once and copies nothing.
    let again = w.run(&config, &["drain", "--json"]).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(source(&again.json())["messages"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_shape_is_read_and_what_is_not_ours_is_settled() {
    let w = world!("shapes-bucket");
    let q = queue(&w, "shapes", 30).await;
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    let config = with_queue(w.config(proxy.port, "", ""), &q);
    let b = w.bucket.as_str();
    let [k1, k2, k3, k4, k5] = [0, 1, 2, 3, 4].map(|i| files[i].key.clone());
    // S3 writes the key form-encoded; every CloudTrail key survives a round trip.
    let encoded = |k: &str| url::form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>();
    q.send(&s3_event(b, "ObjectCreated:Put", &encoded(&k1))).await;
    q.send(&sns(&s3_event(
        b,
        "ObjectCreated:CompleteMultipartUpload",
        &encoded(&k2),
    )))
    .await;
    let ct = |k: &str| serde_json::json!({"s3Bucket": b, "s3ObjectKey": [k]}).to_string();
    q.send(&ct(&k3)).await;
    q.send(&sns(&ct(&k4))).await;
    q.send(
        &serde_json::json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "time": chrono::Utc::now().to_rfc3339(),
            "detail": {"bucket": {"name": b}, "object": {"key": k5}}})
        .to_string(),
    )
    .await;
    // Not ours: another bucket, a key no stream holds, a removal (never propagated).
    q.send(&s3_event("someone-else", "ObjectCreated:Put", &encoded(&k1)))
        .await;
    q.send(&ct("AWSLogs/111122223333/Config/us-east-1/2026/01/01/x.json.gz"))
        .await;
    q.send(&s3_event(b, "ObjectRemoved:Delete", &encoded(&k2))).await;
    q.send(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-07T12:00:00Z","Bucket":"b"}"#)
        .await;
    q.send("this is not json").await;
    q.send(r#"{"Records": [{"eventName": "ObjectCreated:Put"}]}"#).await;
    // Announced, then gone from S3.
    let gone = files[5].key.replace(".json.gz", "-gone.json.gz");
    q.send(&ct(&gone)).await;

    let run = w.run(&config, &["drain", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let s = source(&doc);
    assert_eq!(s["messages"], 12, "{doc}");
    assert_eq!(s["files_copied"], 5, "{doc}");
    assert_eq!(s["files_already_archived"], 0, "{doc}");
    assert_eq!(s["events_ignored"], 3, "{doc}");
    assert_eq!(s["events_unreadable"], 2, "{doc}");
    assert_eq!(s["files_missing"], 1, "{doc}");
    assert_eq!(s["files_failed"], 0, "{doc}");
    assert!(run.stderr.contains(&gone), "the missing key is logged: {}", run.stderr);
    assert_eq!(proxy.get_objects(), 5);
    assert_eq!(q.left().await, 0);

    // Duplicates, as SQS's at-least-once delivery makes them: settled by a HEAD, no
    // second download, no second upload.
    q.send(&ct(&k1)).await;
    q.send(&sns(&s3_event(b, "ObjectCreated:Put", &encoded(&k2)))).await;
    let blob = w.archive.head(&format!("{SOURCE}/{k1}")).await.unwrap().unwrap();
    let run = w.run(&config, &["drain", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(source(&doc)["files_already_archived"], 2, "{doc}");
    assert_eq!(source(&doc)["files_copied"], 0, "{doc}");
    assert_eq!(proxy.get_objects(), 5, "an archived file was downloaded again");
    let after = w.archive.head(&format!("{SOURCE}/{k1}")).await.unwrap().unwrap();
    assert_eq!(after.etag, blob.etag, "the blob was written again");
    assert_eq!(q.left().await, 0);
    let archived = w.archived().await.unwrap();
    assert_eq!(archived.len(), 5, "{archived:?}");
    for f in &files[..5] {
        assert_eq!(w.archived_bytes(&f.key).await, f.body, "{}", f.key);
    }
    // rclone sees what the archive holds (the rest of the bucket, unannounced, is not).
    let (ok, out) = w.rclone_check("");
    assert!(
        !ok && out.contains(&format!("{} differences found", files.len() - 5)),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_failure_keeps_the_message_for_a_later_drain() {
    let w = world!("events-fault-bucket");
    let q = queue(&w, "faulty", 2).await;
    notify(&w, &q).await;
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    w.archive.ensure_container().await.unwrap();
    w.state.ensure_container().await.unwrap();
    let azure = Proxy::start(w.azurite.port).await;
    let config = with_queue(
        w.config_with_target(
            w.moto.port,
            "",
            &support::blob_url(azure.port),
            "shared-key",
            "[sync]\nretries = 1\nretry_max_delay = \"1s\"\n",
        ),
        &q,
    );
    azure.storm(Some(support::proxy::Storm {
        cloud: support::proxy::Cloud::Azure,
        errors: 1.0,
        resets: 0.0,
        only: None,
    }));
    let run = w.run(&config, &["drain", "--json", "--max-time", "20s"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let s = source(&run.json()).clone();
    assert!(s["files_failed"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["files_copied"], 0, "{s}");
    assert_eq!(q.left().await, files.len() as u64, "failed messages stay in the queue");

    azure.storm(None);
    // The kept messages come back after the queue's visibility timeout.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let run = w.run(&config, &["drain", "--json", "--max-time", "60s"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        source(&run.json())["files_copied"],
        files.len() as u64,
        "{}",
        run.stdout
    );
    assert_eq!(q.left().await, 0);
    let (ok, out) = w.rclone_check("");
    assert!(ok, "rclone check found differences:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_whose_events_were_lost_are_archived_by_the_next_sync() {
    let w = world!("events-lost-bucket");
    let q = queue(&w, "lossy", 30).await;
    let files = sample_trail(&w.bucket).generate();
    // Half announced, half delivered while the notification was not there (or purged).
    let (early, late) = files.split_at(files.len() / 2);
    w.seed(early).await;
    notify(&w, &q).await;
    w.seed(late).await;
    let config = with_queue(w.config(w.moto.port, "", ""), &q);
    let run = w.run(&config, &["drain", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(source(&run.json())["files_copied"], late.len() as u64, "{}", run.stdout);
    assert!(!w.rclone_check("").0, "the unannounced files are not archived yet");
    let sync = w.sync(&config).await;
    assert_eq!(sync.code, 0, "{sync:?}");
    assert_eq!(
        sync.json()["sources"][0]["files_copied"],
        early.len() as u64,
        "{}",
        sync.stdout
    );
    let (ok, out) = w.rclone_check("");
    assert!(ok, "rclone check found differences:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_drain_at_a_safe_point_and_the_next_drain_completes() {
    let w = world!("events-signal-bucket");
    let q = queue(&w, "signalled", 30).await;
    notify(&w, &q).await;
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    proxy.set(Fault::SlowResponses(std::time::Duration::from_millis(40)));
    let config = with_queue(w.config(proxy.port, "", "[sync]\nconcurrency = 2\n"), &q);
    let child = w
        .command(&config, &["drain", "--json", "--max-time", "120s"])
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    crate::resilience::wait_until_mid_sync(&w, files.len()).await;
    kill(pid, "TERM");
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the drain did not stop after SIGTERM")
        .unwrap();
    assert_eq!(out.status.code(), Some(143));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    assert_eq!(doc["stopped"], "signal", "{doc}");
    let copied = source(&doc)["files_copied"].as_u64().unwrap();
    assert!(copied < files.len() as u64, "the drain was not stopped: {doc}");
    let records = w.run_record(doc["run_id"].as_str().unwrap()).await;
    assert_eq!(records[0]["Status"], "Partial", "{records}");
    assert_eq!(records[0]["Details"]["stopped"], "signal", "{records}");

    // Messages in flight were finished and deleted; the rest were never received.
    proxy.set(Fault::Pass);
    // A bound no loaded machine reaches: a drain that ends at its max-time leaves the rest
    // queued, which is right for a drain and wrong for this test.
    let run = w.run(&config, &["drain", "--json", "--max-time", "900s"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let (ok, diff) = w.rclone_check("");
    assert!(ok, "rclone check found differences:\n{diff}");
    assert_eq!(
        q.left().await,
        0,
        "messages left after the second drain\nfirst drain: {doc}\n{}\nsecond drain: {run:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_archives_new_files_from_events_between_scheduled_syncs() {
    let w = world!("events-daemon-bucket");
    let q = queue(&w, "daemon-events", 30).await;
    notify(&w, &q).await;
    // No scheduled sync during the test: whatever is archived came by events.
    let config = with_queue(
        w.config(
            w.moto.port,
            "",
            "[schedule]\ncron = \"0 0 0 1 1 *\"\nverify_cron = \"0 0 0 1 1 *\"\n",
        ),
        &q,
    );
    let daemon = Daemon::start(&mut w.command(&config, &["daemon", "--listen", "127.0.0.1:0"])).await;

    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let mut archived = 0;
    for _ in 0..300 {
        archived = w.archived_so_far().await;
        if archived == files.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(archived, files.len(), "the daemon did not archive every announced file");
    let (ok, out) = w.rclone_check("");
    assert!(ok, "rclone check found differences:\n{out}");
    let metrics = http_get(daemon.port, "/metrics").await.1;
    for want in [
        "trailvault_event_files_total{source=\"main\",outcome=\"copied\"}",
        "trailvault_events_received_total{source=\"main\"}",
        "trailvault_event_lag_seconds_bucket",
    ] {
        assert!(metrics.contains(want), "{want} missing:\n{metrics}");
    }
    let (status, _) = daemon.stop().await;
    assert!(status.success(), "{status:?}");
}
