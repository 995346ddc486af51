//! Sync against real emulators: Azurite for Blob, moto for S3, rclone as the
//! independent checker, a fault-injecting proxy for corruption and truncation.
//! One binary so the slow tests share a build; each test has its own emulators.

mod support;

#[path = "emulators/aws.rs"]
mod aws;

use std::collections::BTreeMap;

use support::ctgen::{gzip, Trail};
use support::proxy::{Fault, Proxy};
use support::{World, SOURCE};

macro_rules! world {
    ($bucket:expr) => {
        match World::new($bucket).await {
            Some(w) => w,
            None => return,
        }
    };
}

fn sample_trail(bucket: &str) -> Trail {
    Trail::sample(bucket, 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_copy_is_byte_identical_and_a_second_run_downloads_nothing() {
    let w = world!("org-trail-logs");
    let mut trail = sample_trail(&w.bucket);
    trail.prefix = "corp/trails".into();
    let mut org = trail.clone();
    org.org = Some("o-abcdefghij".into());
    org.accounts = vec!["777788889999".into()];
    org.seed = 8;
    let files: Vec<_> = trail.generate().into_iter().chain(org.generate()).collect();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    let config = w.config(proxy.port, "corp/trails", "");

    let run = w.sync(&config).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "Succeeded");
    let src = &doc["sources"][0];
    assert_eq!(src["name"], SOURCE);
    assert_eq!(src["files_copied"], files.len() as u64, "{doc}");
    assert_eq!(src["files_failed"], 0);
    assert_eq!(proxy.get_objects(), files.len());
    let (ok, out) = w.rclone_check("");
    assert!(ok, "rclone check found differences:\n{out}");
    assert!(out.contains("0 differences found"), "{out}");

    // Metadata as the contract gives it, written in the upload.
    let digest = files.iter().find(|f| f.key.contains("CloudTrail-Digest")).unwrap();
    let info = w
        .archive
        .head(&format!("{SOURCE}/{}", digest.key))
        .await
        .unwrap()
        .unwrap();
    let m = &info.metadata;
    assert_eq!(m["ct_signature"], digest.metadata["signature"]);
    assert_eq!(m["ct_signature_algorithm"], "SHA256withRSA");
    assert_eq!(m["source_bucket"], w.bucket);
    assert_eq!(m["source_key"], digest.key);
    assert_eq!(m["source_size"], digest.body.len().to_string());
    assert_eq!(m["source_content_encoding"], "gzip");
    use sha2::Digest;
    assert_eq!(m["sha256"], hex::encode(sha2::Sha256::digest(&digest.body)));
    assert_eq!(m["source_etag"], hex::encode(md5::Md5::digest(&digest.body)));
    assert!(m["source_last_modified"].ends_with('Z'));
    assert_eq!(info.content_md5, Some(md5::Md5::digest(&digest.body).into()));
    assert_eq!(info.content_type.as_deref(), Some("application/json"));

    // Watermarks, run record and health state exist.
    let state = w.state.list("").await.unwrap();
    let names: Vec<&str> = state.iter().map(|b| b.name.as_str()).collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("watermarks/main/111122223333/us-east-1")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| *n == format!("runs/{}.json", doc["run_id"].as_str().unwrap())),
        "{names:?}"
    );
    assert!(names.contains(&"health/main.json"), "{names:?}");

    // Every account-region reported; digests in the sample follow each day's last log.
    let accounts = src["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 6, "{doc}");
    assert!(accounts.iter().all(|a| a["files_not_covered_by_digest"] == 0), "{doc}");

    let gets_before = proxy.get_objects();
    let again = w.sync(&config).await;
    assert_eq!(again.code, 0, "{again:?}");
    let doc2 = again.json();
    assert_eq!(doc2["sources"][0]["files_copied"], 0);
    assert_eq!(doc2["sources"][0]["files_skipped"], files.len() as u64);
    assert_eq!(proxy.get_objects(), gets_before, "the second run downloaded objects");
    assert!(doc2["sources"][0]["backup_gap_seconds"].as_i64().unwrap() < 60);
}

/// A non-gzip object whose bytes carry `marker`, under a CloudTrail log key.
fn marked_object(trail: &Trail, marker: &str, minute: u32) -> (String, Vec<u8>) {
    let t = chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
        .unwrap()
        .and_hms_opt(12, minute, 0)
        .unwrap()
        .and_utc();
    let key = trail.log_key("111122223333", "us-east-1", t, &format!("MARKED{minute:010}"));
    let mut body = b"{\"Records\":[{\"eventName\":\"".to_vec();
    body.extend_from_slice(marker.as_bytes());
    body.extend_from_slice(&vec![b'x'; 2000]);
    body.extend_from_slice(b"\"}]}");
    (key, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_files_are_picked_up_deletions_stay_archived_changes_are_conflicts() {
    let w = world!("late-bucket");
    let trail = sample_trail(&w.bucket);
    let files = trail.generate();
    w.seed(&files).await;
    let config = w.config(w.moto.port, "", "[sync]\nlookback = \"72h\"\n");
    assert_eq!(w.sync(&config).await.code, 0);

    // A log delivered late: its time is a day before the newest file, inside the lookback.
    let late_t = files.iter().map(|f| f.time).max().unwrap() - chrono::Duration::hours(20);
    let late_key = trail.log_key("444455556666", "eu-west-1", late_t, "LATEDELIVERY0001");
    w.put(&late_key, gzip(b"{\"Records\":[]}"), &BTreeMap::new()).await;
    // A log delivered after the newest digest: archived, and reported as not yet covered.
    let fresh_t = files.iter().map(|f| f.time).max().unwrap() + chrono::Duration::hours(1);
    let fresh_key = trail.log_key("111122223333", "us-east-1", fresh_t, "FRESHDELIVERY001");
    w.put(&fresh_key, gzip(b"{\"Records\":[]}"), &BTreeMap::new()).await;
    // A file deleted in S3.
    let deleted = &files[0];
    w.delete(&deleted.key).await;
    // A file whose S3 content changed after it was archived.
    let changed = files
        .iter()
        .find(|f| f.key.contains("/CloudTrail/") && f.key != deleted.key)
        .unwrap();
    w.put(
        &changed.key,
        gzip(b"{\"Records\":[{\"eventName\":\"Rewritten\"}]}"),
        &BTreeMap::new(),
    )
    .await;

    let run = w.sync(&config).await;
    assert_eq!(run.code, 1, "a conflict exits 1: {run:?}");
    let doc = run.json();
    let src = &doc["sources"][0];
    assert_eq!(src["files_copied"], 2, "{doc}");
    assert_eq!(src["conflicts"], serde_json::json!([changed.key]), "{doc}");
    let uncovered: Vec<(String, String, u64)> = src["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["files_not_covered_by_digest"].as_u64().unwrap() > 0)
        .map(|a| {
            (
                a["account"].as_str().unwrap().into(),
                a["region"].as_str().unwrap().into(),
                a["files_not_covered_by_digest"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        uncovered,
        [("111122223333".to_string(), "us-east-1".to_string(), 1)],
        "{doc}"
    );
    assert_eq!(src["files_failed"], 0);
    assert!(w.archived().await.contains(&format!("{SOURCE}/{late_key}")));
    assert_eq!(
        w.archived_bytes(&deleted.key).await,
        deleted.body,
        "a deletion in S3 reached the archive"
    );
    assert_eq!(
        w.archived_bytes(&changed.key).await,
        changed.body,
        "the archived copy was overwritten"
    );
    let conflict_doc = w
        .state
        .head(&format!("conflicts/{SOURCE}/{}.json", changed.key))
        .await
        .unwrap();
    assert!(
        conflict_doc.is_some(),
        "the conflict is recorded in the state container"
    );
    // A conflict does not count against completeness: the backup gap restarts.
    assert!(src["complete"].as_bool().unwrap(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_or_truncated_s3_responses_are_never_committed() {
    let w = world!("fault-bucket");
    let trail = sample_trail(&w.bucket);
    let (flip_key, flip_body) = marked_object(&trail, "TV-FLIP-MARKER", 1);
    let (cut_key, cut_body) = marked_object(&trail, "TV-CUT-MARKER", 2);
    w.put(&flip_key, flip_body.clone(), &BTreeMap::new()).await;
    let proxy = Proxy::start(w.moto.port).await;
    let config = w.config(proxy.port, "", "");

    proxy.set(Fault::FlipResponse(b"TV-FLIP-MARKER".to_vec()));
    let run = w.sync(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(proxy.faults_applied() > 0, "the proxy never saw the object");
    let doc = run.json();
    assert_eq!(doc["sources"][0]["files_failed"], 1, "{doc}");
    assert_eq!(doc["sources"][0]["failures"][0]["key"], flip_key);
    assert!(
        !w.archived().await.contains(&format!("{SOURCE}/{flip_key}")),
        "a corrupted copy was committed"
    );

    w.put(&cut_key, cut_body.clone(), &BTreeMap::new()).await;
    proxy.set(Fault::TruncateResponse(b"TV-CUT-MARKER".to_vec()));
    let run = w.sync(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    let archived = w.archived().await;
    assert!(
        !archived.contains(&format!("{SOURCE}/{cut_key}")),
        "a truncated copy was committed"
    );

    // With the network healed, the next run finishes the job: the watermark did not pass them.
    proxy.set(Fault::Pass);
    let run = w.sync(&config).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.archived_bytes(&flip_key).await, flip_body);
    assert_eq!(w.archived_bytes(&cut_key).await, cut_body);
    let (ok, out) = w.rclone_check("");
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_refuses_bytes_that_do_not_match_their_md5() {
    let w = world!("md5-bucket");
    // Straight at the service: a wrong Content-MD5 on Put Blob and on Put Block is refused.
    use trailvault::storage::{Condition, ErrorKind, PutOptions};
    w.archive.ensure_container().await.unwrap();
    let opts = PutOptions {
        content_md5: Some([0u8; 16]),
        condition: Condition::IfNoneMatch,
        ..Default::default()
    };
    let err = w
        .archive
        .put("probe/blob", bytes::Bytes::from_static(b"hello"), opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Integrity, "{err}");
    let err = w
        .archive
        .stage_block(
            "probe/blocks",
            b"000001",
            bytes::Bytes::from_static(b"hello"),
            [0u8; 16],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Integrity, "{err}");

    // Through trailvault, with a byte flipped on the way to Azure.
    let trail = sample_trail(&w.bucket);
    let (key, body) = marked_object(&trail, "TV-UPLOAD-MARKER", 3);
    w.put(&key, body.clone(), &BTreeMap::new()).await;
    let azure_proxy = Proxy::start(w.azurite.port).await;
    let via_proxy = support::blob_url(azure_proxy.port);
    let config = w.config_with_target(w.moto.port, "", &via_proxy, "shared-key", "");
    azure_proxy.set(Fault::FlipRequest(b"TV-UPLOAD-MARKER".to_vec()));
    let run = w.sync(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(azure_proxy.faults_applied() > 0);
    assert!(!w.archived().await.contains(&format!("{SOURCE}/{key}")));
    azure_proxy.set(Fault::Pass);
    assert_eq!(w.sync(&config).await.code, 0);
    assert_eq!(w.archived_bytes(&key).await, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_multipart_object_goes_up_as_staged_blocks() {
    let w = world!("big-bucket");
    let trail = sample_trail(&w.bucket);
    let t = chrono::Utc::now() - chrono::Duration::hours(1);
    let key = trail.log_key("111122223333", "us-east-1", t, "BIGMULTIPART0001");
    let body: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let etag = w.put_multipart(&key, &body, 5 * 1024 * 1024).await;
    assert!(etag.contains('-'), "moto gave a plain ETag {etag}");
    let config = w.config(w.moto.port, "", "[sync]\nconcurrency = 4\nin_flight_bytes = \"8MiB\"\n");

    let run = w.sync(&config).await;
    assert_eq!(run.code, 0, "{run:?}");
    let (ok, out) = w.rclone_check("");
    assert!(ok, "{out}");
    let info = w.archive.head(&format!("{SOURCE}/{key}")).await.unwrap().unwrap();
    use sha2::Digest;
    assert_eq!(info.metadata["sha256"], hex::encode(sha2::Sha256::digest(&body)));
    assert_eq!(info.metadata["source_etag"], etag);
    assert_eq!(info.content_md5, Some(md5::Md5::digest(&body).into()));
    assert_eq!(support::committed_blocks(&w, &format!("{SOURCE}/{key}")).await, 5);
}

fn many_files_trail(bucket: &str) -> Trail {
    let mut t = Trail::sample(bucket, 11);
    t.logs_per_day = 20;
    t.days.push(chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
    t
}

/// Runs sync until it is not refused for the lock (a killed holder's lease expires in 15 s).
async fn sync_after_lock_expiry(w: &World, config: &std::path::PathBuf) -> support::Run {
    for _ in 0..30 {
        let run = w.sync(config).await;
        if !run.stdout.contains("another sync holds the lock") {
            return run;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!("the lock of the killed run never expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_then_rerun_gives_a_complete_archive() {
    let w = world!("crash-bucket");
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    proxy.set(Fault::SlowResponses(std::time::Duration::from_millis(40)));
    let config = w.config(proxy.port, "", "[sync]\nconcurrency = 2\n");

    let mut child = w.command(&config, &["sync", "--json"]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let n = w.archived().await.len();
        if n >= 10 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // SIGKILL: no cleanup, no lease release, uploads cut wherever they are.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let partial = w.archived().await.len();
    assert!(partial < files.len(), "the run finished before the kill ({partial})");

    proxy.set(Fault::Pass);
    let run = sync_after_lock_expiry(&w, &config).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let src = &doc["sources"][0];
    assert_eq!(src["files_failed"], 0);
    assert_eq!(src["conflicts"], serde_json::json!([]));
    assert_eq!(
        src["files_copied"].as_u64().unwrap() + src["files_skipped"].as_u64().unwrap(),
        files.len() as u64,
        "{doc}"
    );
    assert_eq!(
        w.archived().await.len(),
        files.len(),
        "duplicates or gaps in the archive"
    );
    let (ok, out) = w.rclone_check("");
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_runs_never_both_write() {
    let w = world!("lock-bucket");
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    proxy.set(Fault::SlowResponses(std::time::Duration::from_millis(20)));
    let config = w.config(proxy.port, "", "[sync]\nconcurrency = 4\n");

    let a = w.command(&config, &["sync", "--json"]).output();
    let b = w.command(&config, &["sync", "--json"]).output();
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
    codes.sort();
    assert_eq!(codes, [0, 1], "exactly one run may write");
    let loser = if a.status.code() == Some(1) { &a } else { &b };
    let winner = if a.status.code() == Some(0) { &a } else { &b };
    let loser_out = String::from_utf8_lossy(&loser.stdout);
    assert!(loser_out.contains("another sync holds the lock"), "{loser_out}");
    let winner_doc: serde_json::Value = serde_json::from_slice(&winner.stdout).unwrap();
    let winner_run = winner_doc["run_id"].as_str().unwrap();
    assert!(
        loser_out.contains(winner_run),
        "the refusal names the holder's run: {loser_out}"
    );
    assert_eq!(winner_doc["sources"][0]["files_copied"], files.len() as u64);
    // The loser wrote no run record.
    let runs = w.state.list("runs/").await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_exits_2_before_touching_anything_and_unreachable_endpoints_exit_1() {
    let w = world!("config-bucket");
    w.seed(&sample_trail(&w.bucket).generate()).await;

    let bad = w.config(w.moto.port, "", "[sync]\nconcurency = 4\n");
    let run = w.sync(&bad).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.json()["error"].as_str().unwrap().contains("concurency"),
        "{}",
        run.stdout
    );
    assert!(
        w.state.list("").await.is_err(),
        "a bad config created the state container"
    );
    assert!(
        w.archive.list("").await.is_err(),
        "a bad config created the archive container"
    );

    let missing_secret = w.config(w.moto.port, "", "");
    let out = w
        .command(&missing_secret, &["sync"])
        .env_remove("TRAILVAULT_AZURE_ACCOUNT_KEY")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TRAILVAULT_AZURE_ACCOUNT_KEY"));

    let check = w
        .run(&w.config(w.moto.port, "", ""), &["config", "check", "--json"])
        .await;
    assert_eq!(check.code, 0, "{check:?}");
    assert_eq!(check.json()["ok"], true);

    // No AWS credentials anywhere in the default chain: a clear error, exit 1.
    let out = w
        .command(&w.config(w.moto.port, "", ""), &["sync", "--json"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = doc["sources"][0]["errors"][0].as_str().unwrap();
    assert!(err.contains("check the AWS credentials"), "{err}");

    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s3_down = w.config(closed_port, "", "");
    let run = w.sync(&s3_down).await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "Failed");
    let err = doc["sources"][0]["errors"][0].as_str().unwrap();
    assert!(err.contains("discovering") && err.contains("endpoint"), "{err}");

    let azure_down = w.config_with_target(w.moto.port, "", &support::blob_url(closed_port), "shared-key", "");
    let run = w.sync(&azure_down).await;
    assert_eq!(run.code, 1, "{run:?}");
    let err = run.json()["error"].as_str().unwrap().to_string();
    assert!(err.contains("account_url"), "the error says what to check: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sas_auth_works_and_no_secret_reaches_output() {
    let w = world!("sas-bucket");
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let sas = support::account_sas(
        support::emulators::AZURITE_ACCOUNT,
        support::emulators::AZURITE_KEY,
        "racwdl",
    );
    let sig = url::form_urlencoded::parse(sas.as_bytes())
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .to_string();
    let config = w.config_with_target(w.moto.port, "", &w.blob_url(), "sas", "");
    let out = w
        .command(&config, &["sync", "--json", "-vv"])
        .env("TRAILVAULT_AZURE_SAS", &sas)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let sig_encoded: String = url::form_urlencoded::byte_serialize(sig.as_bytes()).collect();
    assert!(
        !all.contains(&sig) && !all.contains(&sig_encoded),
        "the SAS signature leaked"
    );
    let (ok, report) = w.rclone_check("");
    assert!(ok, "{report}");

    // A SAS the service refuses: the error names the problem, not the token.
    let bad_sas = sas.replace(
        &url::form_urlencoded::byte_serialize(sig.as_bytes()).collect::<String>(),
        "AAAA%2BBBBSECRETSIG%3D",
    );
    let out = w
        .command(&config, &["sync", "--json", "-vv"])
        .env("TRAILVAULT_AZURE_SAS", &bad_sas)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("SECRETSIG"), "{all}");
    assert!(all.contains("target.auth"), "{all}");

    // Shared key: the account key never shows, even at trace level.
    let config = w.config(w.moto.port, "", "");
    let out = w.command(&config, &["sync", "--json", "-vv"]).output().await.unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(&support::emulators::AZURITE_KEY[..24]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_without_writing() {
    let w = world!("dry-bucket");
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let config = w.config(w.moto.port, "", "");
    w.archive.ensure_container().await.unwrap();
    w.state.ensure_container().await.unwrap();
    let run = w.run(&config, &["sync", "--dry-run", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["sources"][0]["files_planned"], files.len() as u64);
    let total: u64 = files.iter().map(|f| f.body.len() as u64).sum();
    assert_eq!(doc["sources"][0]["bytes_planned"], total);
    assert!(w.archived().await.is_empty());
    assert!(w.state.list("").await.unwrap().is_empty(), "dry run wrote state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_blob_store_meets_the_storage_contract() {
    let w = world!("contract-bucket");
    support::store_suite::blob_store_contract(w.archive.as_ref(), "contract").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_source_meets_the_storage_contract() {
    let w = world!("contract-source");
    // In-process client: the SDK's default chain reads these (subprocess tests set their own).
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    let src = trailvault::storage::s3::S3Source::connect_to(&w.bucket, "us-east-1", Some(&w.s3_url())).await;
    support::store_suite::source_contract(&src, &w).await;
}

// ---------------------------------------------------------------- restore

/// A world whose bucket holds a standard trail (2 accounts x 2 regions x 2 days) and
/// an organization trail under a prefix, synced to the archive.
async fn synced(bucket: &str) -> Option<(World, Vec<support::ctgen::GenFile>, std::path::PathBuf)> {
    let w = World::new(bucket).await?;
    let trail = sample_trail(&w.bucket);
    let mut org = trail.clone();
    org.org = Some("o-abcdefghij".into());
    org.accounts = vec!["777788889999".into()];
    org.seed = 9;
    let files: Vec<_> = trail.generate().into_iter().chain(org.generate()).collect();
    w.seed(&files).await;
    let config = w.config(w.moto.port, "", "");
    let run = w.sync(&config).await;
    assert_eq!(run.code, 0, "{run:?}");
    Some((w, files, config))
}

fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_to_a_folder_is_byte_identical_and_works_with_s3_down() {
    let Some((mut w, files, config)) = synced("restore-folder").await else {
        return;
    };
    w.moto.stop(); // AWS is gone: a folder restore needs only Azure.
    let dir = w.dir.path().join("restored");
    let run = w
        .run(&config, &["restore", "--to", dir.to_str().unwrap(), "--json"])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["files"], files.len() as u64, "{doc}");
    assert_eq!(doc["corrupted"], serde_json::json!([]));
    assert!(doc["seconds"].as_f64().unwrap() > 0.0);
    for f in &files {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body, "{}", f.key);
    }
    // Digest signatures travel in a sidecar, so integrity can be proven offline.
    let digest = files.iter().find(|f| f.key.contains("CloudTrail-Digest")).unwrap();
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{}.metadata.json", digest.key))).unwrap()).unwrap();
    assert_eq!(side["metadata"]["signature"], digest.metadata["signature"]);
    assert_eq!(side["metadata"]["signature-algorithm"], "SHA256withRSA");
    assert_eq!(side["source_bucket"], w.bucket);
    let restored: Vec<String> = files_under(&dir)
        .into_iter()
        .filter(|f| f.ends_with(".json.gz"))
        .collect();
    assert_eq!(restored.len(), files.len());
    let runs = w.state.list("runs/").await.unwrap();
    let rec = trailvault::storage::read_all(
        w.state.as_ref(),
        &format!("runs/{}.json", doc["run_id"].as_str().unwrap()),
    )
    .await
    .unwrap()
    .expect("a Restore record");
    let rec: serde_json::Value = serde_json::from_slice(&rec.0).unwrap();
    assert_eq!(rec[0]["RecordType"], "Restore");
    assert!(rec[0]["DurationSeconds"].as_f64().unwrap() > 0.0);
    assert_eq!(runs.len(), 2);

    // A rerun skips what is there and identical; a different file is reported, not overwritten.
    std::fs::write(dir.join(&files[0].key), b"someone else's bytes").unwrap();
    let run = w
        .run(&config, &["restore", "--to", dir.to_str().unwrap(), "--json"])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["skipped"], files.len() as u64 - 1);
    assert_eq!(doc["conflicts"], serde_json::json!([files[0].key]));
    assert_eq!(std::fs::read(dir.join(&files[0].key)).unwrap(), b"someone else's bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_to_another_bucket_keeps_bytes_and_cloudtrail_metadata() {
    let Some((w, files, config)) = synced("restore-s3").await else {
        return;
    };
    w.s3.create_bucket().bucket("recovered").send().await.unwrap();
    let run = w
        .command(&config, &["restore", "--to", "s3://recovered/after-outage", "--json"])
        .env("AWS_ENDPOINT_URL_S3", w.s3_url())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for f in &files {
        let got =
            w.s3.get_object()
                .bucket("recovered")
                .key(format!("after-outage/{}", f.key))
                .send()
                .await
                .unwrap();
        assert_eq!(got.content_encoding(), Some("gzip"));
        assert_eq!(got.content_type(), Some("application/json"));
        let meta = got.metadata().cloned().unwrap_or_default();
        for (k, v) in &f.metadata {
            assert_eq!(meta.get(k), Some(v), "{k} on {}", f.key);
        }
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(&body[..], &f.body[..], "{}", f.key);
    }
    // Independent check of the bytes.
    let conf = w.dir.path().join("rclone.conf");
    let _ = w.rclone_check(""); // writes the rclone config
    let out = std::process::Command::new("rclone")
        .env_remove("AWS_CA_BUNDLE")
        .arg("--config")
        .arg(&conf)
        .args([
            "check",
            &format!("s3:{}", w.bucket),
            "s3:recovered/after-outage",
            "--one-way",
            "--download",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Create-only: a second restore writes nothing and reports everything as skipped.
    let run = w
        .command(&config, &["restore", "--to", "s3://recovered/after-outage", "--json"])
        .env("AWS_ENDPOINT_URL_S3", w.s3_url())
        .output()
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(doc["files"], 0, "{doc}");
    assert_eq!(doc["skipped"], files.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_filters_select_exactly_the_right_files() {
    let Some((w, files, config)) = synced("restore-filter").await else {
        return;
    };
    use trailvault::cloudtrail::{parse_time, CtKey, FileKind, TimeRange};
    type Wanted = Box<dyn Fn(&CtKey) -> bool>;
    let cases: Vec<(Vec<&str>, Wanted)> = vec![
        (
            vec!["--account", "444455556666"],
            Box::new(|k| k.stream.account == "444455556666"),
        ),
        (
            vec!["--region", "eu-west-1", "--no-digests"],
            Box::new(|k| k.stream.region == "eu-west-1" && k.stream.kind != FileKind::Digest),
        ),
        (
            vec!["--account", "777788889999", "--region", "us-east-1"],
            Box::new(|k| k.stream.account == "777788889999" && k.stream.region == "us-east-1"),
        ),
        (
            vec!["--since", "2026-11-25", "--until", "2026-11-25T00:40:00Z"],
            Box::new(|k| {
                TimeRange::new(
                    Some(parse_time("2026-11-25").unwrap()),
                    Some(parse_time("2026-11-25T00:40:00Z").unwrap()),
                )
                .unwrap()
                .contains(k)
            }),
        ),
    ];
    for (i, (flags, want)) in cases.into_iter().enumerate() {
        let dir = w.dir.path().join(format!("filtered-{i}"));
        let mut args = vec!["restore", "--to", dir.to_str().unwrap(), "--json"];
        args.extend(flags.iter().copied());
        let run = w.run(&config, &args).await;
        assert_eq!(run.code, 0, "{flags:?}: {run:?}");
        let mut expected: Vec<String> = files
            .iter()
            .filter(|f| want(&CtKey::parse_any(&f.key).unwrap()))
            .map(|f| f.key.clone())
            .collect();
        expected.sort();
        assert!(!expected.is_empty(), "{flags:?} selects nothing; the case is useless");
        assert!(
            expected.len() < files.len(),
            "{flags:?} selects everything; the case is useless"
        );
        let got: Vec<String> = if dir.exists() {
            files_under(&dir)
                .into_iter()
                .filter(|f| f.ends_with(".json.gz"))
                .collect()
        } else {
            Vec::new()
        };
        assert_eq!(got, expected, "{flags:?}");
        // The dry run shows the same plan and writes nothing.
        let dry = w.dir.path().join(format!("dry-{i}"));
        let mut args = vec!["restore", "--to", dry.to_str().unwrap(), "--json", "--dry-run"];
        args.extend(flags.iter().copied());
        let plan = w.run(&config, &args).await.json();
        assert_eq!(plan["planned_files"], expected.len() as u64);
        assert!(!dry.exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_archived_blob_is_never_restored_and_exits_3() {
    let Some((w, files, config)) = synced("restore-corrupt").await else {
        return;
    };
    let victim = &files[2];
    let name = format!("{SOURCE}/{}", victim.key);
    let info = w.archive.head(&name).await.unwrap().unwrap();
    // Tamper in Azurite behind trailvault's back: same metadata, different bytes.
    let mut bytes = victim.body.clone();
    bytes[20] ^= 0xff;
    use trailvault::storage::PutOptions;
    w.archive
        .put(
            &name,
            bytes.into(),
            PutOptions {
                metadata: info.metadata.clone(),
                content_type: info.content_type.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let dir = w.dir.path().join("restored");
    let run = w
        .run(&config, &["restore", "--to", dir.to_str().unwrap(), "--json"])
        .await;
    assert_eq!(run.code, 3, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["corrupted"], serde_json::json!([victim.key]));
    assert_eq!(doc["files"], files.len() as u64 - 1);
    assert!(!dir.join(&victim.key).exists(), "a corrupted blob was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_restore_then_rerun_finishes() {
    let w = world!("restore-crash");
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let config = w.config(w.moto.port, "", "[sync]\nconcurrency = 2\n");
    assert_eq!(w.sync(&config).await.code, 0);
    // Slow Azure down so the restore can be caught in the middle.
    let azure_proxy = Proxy::start(w.azurite.port).await;
    azure_proxy.set(Fault::SlowResponses(std::time::Duration::from_millis(30)));
    let slow = w.config_with_target(
        w.moto.port,
        "",
        &support::blob_url(azure_proxy.port),
        "shared-key",
        "[sync]\nconcurrency = 2\n",
    );
    let dir = w.dir.path().join("restored");
    let mut child = w
        .command(&slow, &["restore", "--to", dir.to_str().unwrap(), "--json"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let restored = |dir: &std::path::Path| {
        files_under(dir)
            .into_iter()
            .filter(|f| f.ends_with(".json.gz") && !f.starts_with(".trailvault-partial"))
            .count()
    };
    while !dir.exists() || restored(&dir) < 10 {
        assert!(std::time::Instant::now() < deadline, "no progress");
        assert!(child.try_wait().unwrap().is_none(), "finished before the kill");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let partial = restored(&dir);
    assert!(partial < files.len());

    azure_proxy.set(Fault::Pass);
    let run = w
        .run(&slow, &["restore", "--to", dir.to_str().unwrap(), "--json"])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(
        doc["files"].as_u64().unwrap() + doc["skipped"].as_u64().unwrap(),
        files.len() as u64,
        "{doc}"
    );
    assert!(doc["skipped"].as_u64().unwrap() >= partial as u64, "{doc}");
    for f in &files {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body);
    }
    let leftovers = files_under(&dir)
        .into_iter()
        .filter(|f| f.starts_with(".trailvault-partial"))
        .count();
    assert_eq!(leftovers, 0, "temporary files left behind");
}

// ---------------------------------------------------------------- verify

/// A world with a signed trail (2 accounts x 2 regions x 2 days, empty-hour digests),
/// synced, its public key archived with `keys import`, and S3 stopped.
async fn verified_world(
    bucket: &str,
) -> Option<(
    World,
    Vec<support::ctgen::GenFile>,
    std::path::PathBuf,
    rsa::RsaPrivateKey,
)> {
    let mut w = World::new(bucket).await?;
    let key = support::ctgen::test_key(42);
    let mut trail = sample_trail(&w.bucket);
    trail.logs_per_day = 5;
    trail.signer = Some(std::sync::Arc::new(key.clone()));
    let files = trail.generate();
    w.seed(&files).await;
    let config = w.config(w.moto.port, "", "");
    assert_eq!(w.sync(&config).await.code, 0);
    let (der, fp) = support::ctgen::public_der(&key);
    let key_file = w.dir.path().join("cloudtrail-us-east-1.der");
    std::fs::write(&key_file, &der).unwrap();
    for region in ["us-east-1", "eu-west-1"] {
        let run = w
            .run(
                &config,
                &[
                    "keys",
                    "import",
                    "--region",
                    region,
                    key_file.to_str().unwrap(),
                    "--json",
                ],
            )
            .await;
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.json()["imported"][0]["fingerprint"], fp);
    }
    w.moto.stop(); // validation needs nothing from AWS
    Some((w, files, config, key))
}

async fn verify_json(w: &World, config: &std::path::PathBuf) -> (i32, serde_json::Value) {
    let run = w.run(config, &["verify", "--json"]).await;
    (run.code, run.json())
}

fn kinds_for(doc: &serde_json::Value, key: &str) -> Vec<String> {
    doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["key"] == key)
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Replaces a blob's bytes (and optionally its metadata) in Azurite, as an attacker with
/// write access to the storage account could; returns what was there to put back.
async fn tamper(
    w: &World,
    key: &str,
    bytes: Vec<u8>,
    edit: impl FnOnce(&mut BTreeMap<String, String>),
) -> (Vec<u8>, BTreeMap<String, String>) {
    let name = format!("{SOURCE}/{key}");
    let (old, info) = trailvault::storage::read_all(w.archive.as_ref(), &name)
        .await
        .unwrap()
        .unwrap();
    let mut meta = info.metadata.clone();
    edit(&mut meta);
    w.archive
        .put(
            &name,
            bytes.into(),
            trailvault::storage::PutOptions {
                metadata: meta,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (old.to_vec(), info.metadata)
}

async fn untamper(w: &World, key: &str, old: (Vec<u8>, BTreeMap<String, String>)) {
    w.archive
        .put(
            &format!("{SOURCE}/{key}"),
            old.0.into(),
            trailvault::storage::PutOptions {
                metadata: old.1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

fn sha_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_proves_a_clean_archive_and_names_every_kind_of_tampering() {
    let Some((w, files, config, key)) = verified_world("verify-bucket").await else {
        return;
    };
    let (code, doc) = verify_json(&w, &config).await;
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["ok"], true);
    let digests: Vec<_> = files.iter().filter(|f| f.key.contains("CloudTrail-Digest")).collect();
    let logs: Vec<_> = files.iter().filter(|f| f.key.contains("/CloudTrail/")).collect();
    assert_eq!(doc["checked"]["digests"], digests.len() as u64);
    assert_eq!(doc["checked"]["logs"], logs.len() as u64);
    assert_eq!(doc["checked"]["blobs"], files.len() as u64);
    assert_eq!(doc["chain_starts"], 4, "one chain per account-region: {doc}");
    let record = w.state.list("runs/").await.unwrap();
    assert!(!record.is_empty());

    // A digest in the middle of a chain (it has a successor) and a log it lists.
    let mut by_stream: BTreeMap<String, Vec<&support::ctgen::GenFile>> = BTreeMap::new();
    for d in &digests {
        by_stream
            .entry(d.key.rsplitn(5, '/').last().unwrap().to_string())
            .or_default()
            .push(d);
    }
    let chain = by_stream.values().next().unwrap();
    let middle = chain[1];
    let middle_json: serde_json::Value = serde_json::from_slice(
        &trailvault::cloudtrail::digest::gunzip_first_member(&middle.body)
            .unwrap()
            .0,
    )
    .unwrap();
    let listed_log = middle_json["logFiles"][0]["s3Object"].as_str().unwrap().to_string();
    let log = files.iter().find(|f| f.key == listed_log).unwrap();

    // tampered_log: new content, metadata rewritten to match, so only the digest can tell.
    let old = forge_bytes(
        &w,
        &log.key,
        gzip(b"{\"Records\":[{\"eventName\":\"NothingToSeeHere\"}]}"),
    )
    .await;
    let doc = expect_kind(&w, &config, &log.key, "tampered_log").await;
    assert_eq!(kinds_for(&doc, &log.key), ["tampered_log"], "{doc}");
    untamper(&w, &log.key, old).await;

    // metadata_mismatch: a flipped byte, metadata untouched.
    let mut flipped = log.body.clone();
    flipped[15] ^= 0x40;
    let old = tamper(&w, &log.key, flipped, |_| {}).await;
    expect_kind(&w, &config, &log.key, "metadata_mismatch").await;
    untamper(&w, &log.key, old).await;

    // trailing_data: a second gzip member appended (the first member still hashes right).
    let mut appended = log.body.clone();
    appended.extend(gzip(b"{\"Records\":[{\"eventName\":\"Smuggled\"}]}"));
    let old = forge_bytes(&w, &log.key, appended).await;
    let doc = expect_kind(&w, &config, &log.key, "trailing_data").await;
    assert_eq!(kinds_for(&doc, &log.key), ["trailing_data"], "{doc}");
    untamper(&w, &log.key, old).await;

    // missing_log: a listed log deleted from the archive (Azurite has no WORM).
    let old = take_away(&w, &log.key).await;
    let doc = expect_kind(&w, &config, &log.key, "missing_log").await;
    assert_eq!(kinds_for(&doc, &log.key), ["missing_log"], "{doc}");
    untamper(&w, &log.key, old).await;

    // missing_digest: a digest with a successor deleted.
    let old = take_away(&w, &middle.key).await;
    expect_kind(&w, &config, &middle.key, "missing_digest").await;
    untamper(&w, &middle.key, old).await;

    // bad_signature: the digest's content changed (metadata hash updated), signature not.
    let mut edited = middle_json.clone();
    edited["logFiles"][0]["hashValue"] = serde_json::json!("00".repeat(32));
    let old = forge_digest(&w, &middle.key, &edited, None).await;
    expect_kind(&w, &config, &middle.key, "bad_signature").await;
    // Its successor's previousDigestHashValue no longer matches: the chain is broken there too.
    expect_kind(&w, &config, &chain[2].key, "broken_chain").await;
    untamper(&w, &middle.key, old).await;

    // broken_chain: a correctly signed digest whose previous signature is not its predecessor's.
    let mut relinked = middle_json.clone();
    relinked["previousDigestSignature"] = serde_json::json!("ab".repeat(256));
    let old = forge_digest(&w, &middle.key, &relinked, Some(&key)).await;
    let doc = expect_kind(&w, &config, &middle.key, "broken_chain").await;
    assert!(
        !kinds_for(&doc, &middle.key).contains(&"bad_signature".to_string()),
        "{doc}"
    );
    untamper(&w, &middle.key, old).await;

    // broken_chain: correctly signed, but the previous digest is said to live in another bucket.
    let mut rebucketed = middle_json.clone();
    rebucketed["previousDigestS3Bucket"] = serde_json::json!("attacker-bucket");
    let old = forge_digest(&w, &middle.key, &rebucketed, Some(&key)).await;
    expect_kind(&w, &config, &middle.key, "broken_chain").await;
    untamper(&w, &middle.key, old).await;

    // unknown_key: signed by a key nobody archived.
    let stranger = support::ctgen::test_key(7);
    let mut resigned = middle_json.clone();
    resigned["digestPublicKeyFingerprint"] = serde_json::json!(support::ctgen::public_der(&stranger).1);
    let old = forge_digest(&w, &middle.key, &resigned, Some(&stranger)).await;
    expect_kind(&w, &config, &middle.key, "unknown_key").await;
    untamper(&w, &middle.key, old).await;

    // malformed: not a digest at all.
    let old = forge_bytes(&w, &middle.key, b"not gzip".to_vec()).await;
    expect_kind(&w, &config, &middle.key, "malformed").await;
    untamper(&w, &middle.key, old).await;

    // Every change undone: clean again.
    let (code, doc) = verify_json(&w, &config).await;
    assert_eq!(code, 0, "{doc}");
}

/// Verify must exit 3 and name `kind` for `key`; returns the report.
async fn expect_kind(w: &World, config: &std::path::PathBuf, key: &str, kind: &str) -> serde_json::Value {
    let (code, doc) = verify_json(w, config).await;
    assert_eq!(code, 3, "{doc}");
    assert!(
        kinds_for(&doc, key).contains(&kind.to_string()),
        "{kind} for {key}: {doc}"
    );
    doc
}

/// New bytes with a `sha256` rewritten to match: only the digests can tell.
async fn forge_bytes(w: &World, key: &str, bytes: Vec<u8>) -> (Vec<u8>, BTreeMap<String, String>) {
    let sha = sha_hex(&bytes);
    tamper(w, key, bytes, |m| {
        m.insert("sha256".into(), sha);
    })
    .await
}

/// A digest replaced by `doc`, re-signed when the attacker has a `signer`.
async fn forge_digest(
    w: &World,
    key: &str,
    doc: &serde_json::Value,
    signer: Option<&rsa::RsaPrivateKey>,
) -> (Vec<u8>, BTreeMap<String, String>) {
    let json = serde_json::to_vec(doc).unwrap();
    let signature = signer.map(|k| support::ctgen::sign_digest(k, &json));
    let bytes = gzip(&json);
    let sha = sha_hex(&bytes);
    tamper(w, key, bytes, |m| {
        m.insert("sha256".into(), sha);
        if let Some(sig) = signature {
            m.insert("ct_signature".into(), sig);
        }
    })
    .await
}

/// Deletes an archived file; returns it for `untamper`.
async fn take_away(w: &World, key: &str) -> (Vec<u8>, BTreeMap<String, String>) {
    let name = format!("{SOURCE}/{key}");
    let (bytes, info) = trailvault::storage::read_all(w.archive.as_ref(), &name)
        .await
        .unwrap()
        .unwrap();
    delete_blob(w, &name).await;
    (bytes.to_vec(), info.metadata)
}

async fn delete_blob(w: &World, name: &str) {
    use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
    use trailvault::storage::azure_auth::{client_auth, ClientAuth};
    let mut options = BlobContainerClientOptions::default();
    if let ClientAuth::Policy(p) = client_auth(&support::shared_key()).unwrap() {
        options.client_options.per_try_policies.push(p);
    }
    let url = url::Url::parse(&format!("{}/{}", w.blob_url(), support::ARCHIVE)).unwrap();
    let container = BlobContainerClient::new(url, None, Some(options)).unwrap();
    container.blob_client(name).delete(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_fetch_archives_list_public_keys_and_verify_uses_them() {
    use base64::Engine;
    use rsa::pkcs8::EncodePublicKey;
    use wiremock::matchers::{header, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let Some(mut w) = World::new("fetch-bucket").await else {
        return;
    };
    let key = support::ctgen::test_key(42);
    let mut trail = sample_trail(&w.bucket);
    trail.signer = Some(std::sync::Arc::new(key.clone()));
    let files = trail.generate();
    w.seed(&files).await;
    let config = w.config(w.moto.port, "", "");
    assert_eq!(w.sync(&config).await.code, 0);
    w.moto.stop();

    // CloudTrail's ListPublicKeys (awsJson 1.1) as AWS answers it: the signing key in its
    // SubjectPublicKeyInfo encoding, with the fingerprint the digests name.
    let (_, digest_fp) = support::ctgen::public_der(&key);
    let spki = key.to_public_key().to_public_key_der().unwrap().as_bytes().to_vec();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "CloudTrail_20131101.ListPublicKeys"))
        .respond_with(ResponseTemplate::new(200).insert_header("content-type", "application/x-amz-json-1.1").set_body_json(serde_json::json!({
            "PublicKeyList": [
                {"Value": b64(&spki), "ValidityStartTime": 1.7e9, "ValidityEndTime": 1.9e9, "Fingerprint": digest_fp},
            ]
        })))
        .expect(2) // us-east-1 and eu-west-1, the regions the archive holds
        .mount(&api)
        .await;
    let out = w
        .command(&config, &["keys", "fetch", "--json"])
        .env("AWS_ENDPOINT_URL_CLOUDTRAIL", api.uri())
        .env("AWS_REGION", "us-east-1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["regions"], serde_json::json!(["eu-west-1", "us-east-1"]));
    assert_eq!(doc["keys"][0]["encoding"], "spki");
    let stored = w.archive.list("_trailvault/public-keys/").await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0].metadata["aws_fingerprint"], digest_fp);
    assert!(stored[0].metadata.contains_key("validity_end"));
    api.verify().await;

    let run = w.run(&config, &["verify", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.json()["checked"]["digests"].as_u64().unwrap() > 0);
}

// ---------------------------------------------------------------- saml audit

fn audit_event(name: &str, t: &str, identity: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut e = serde_json::json!({
        "eventVersion": "1.09",
        "eventID": format!("{:032x}", rand::random::<u128>()),
        "eventTime": t,
        "eventSource": if name == "ConsoleLogin" { "signin.amazonaws.com" } else { "sts.amazonaws.com" },
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userIdentity": identity,
        "recipientAccountId": "111122223333",
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_audit_reports_subjects_and_findings_from_the_archive() {
    use trailvault::federation::audit::name_qualifier;
    let mut w = world!("audit-bucket");
    let tenant = support::saml::TENANT;
    let issuer = support::saml::issuer();
    let provider = "arn:aws:iam::111122223333:saml-provider/EntraID";
    let ours = name_qualifier(&issuer, "111122223333", "EntraID");
    let saml_user = |who: &str, q: &str| serde_json::json!({"type": "SAMLUser", "principalId": format!("{q}:{who}"), "userName": who, "identityProvider": q});
    let assume = |who: &str, role: &str, q: &str, t: &str, error: Option<&str>| {
        let mut extra = serde_json::json!({
            "requestParameters": {"sAMLAssertionID": "_x", "roleSessionName": who, "roleArn": role, "principalArn": provider, "durationSeconds": 3600},
            "responseElements": if error.is_some() { serde_json::Value::Null } else { serde_json::json!({"issuer": issuer, "subject": who, "nameQualifier": q, "audience": "https://signin.aws.amazon.com/saml"}) },
        });
        if let Some(code) = error {
            extra["errorCode"] = serde_json::json!(code);
        }
        audit_event("AssumeRoleWithSAML", t, saml_user(who, q), extra)
    };
    let admin = "arn:aws:iam::111122223333:role/Admin";
    let records = vec![
        assume("alice@example.com", admin, &ours, "2026-11-25T09:01:00Z", None),
        audit_event(
            "ConsoleLogin",
            "2026-11-25T09:01:05Z",
            serde_json::json!({"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com", "accountId": "111122223333"}),
            serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}, "additionalEventData": {"SamlProviderArn": provider, "MFAUsed": "No"}}),
        ),
        assume(
            "bob@example.com",
            "arn:aws:iam::111122223333:role/SuperAdmin",
            &ours,
            "2026-11-25T09:10:00Z",
            None,
        ),
        assume(
            "eve@example.com",
            admin,
            "Zm9yZWlnbmlkcHF1YWxpZmllcg==",
            "2026-11-25T09:20:00Z",
            None,
        ),
        audit_event(
            "ConsoleLogin",
            "2026-11-25T09:30:00Z",
            serde_json::json!({"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"}),
            serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}}),
        ),
        audit_event(
            "ConsoleLogin",
            "2026-11-25T09:31:00Z",
            serde_json::json!({"type": "IAMUser", "userName": "legacy-ops", "arn": "arn:aws:iam::111122223333:user/legacy-ops"}),
            serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}}),
        ),
        assume(
            "mallory@example.com",
            admin,
            &ours,
            "2026-11-25T09:40:00Z",
            Some("IDPRejectedClaim"),
        ),
        assume(
            "mallory@example.com",
            admin,
            &ours,
            "2026-11-25T09:41:00Z",
            Some("IDPRejectedClaim"),
        ),
        assume(
            "mallory@example.com",
            admin,
            &ours,
            "2026-11-25T09:42:00Z",
            Some("InvalidIdentityToken"),
        ),
        // Outside the audited window.
        assume(
            "zoe@example.com",
            "arn:aws:iam::111122223333:role/Ghost",
            &ours,
            "2026-11-24T09:00:00Z",
            None,
        ),
    ];
    let trail = sample_trail(&w.bucket);
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-25T09:45:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let key = trail.log_key("111122223333", "us-east-1", t, "AUDITEVENTS00001");
    let body = gzip(&serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap());
    w.put(&key, body, &BTreeMap::new()).await;
    let early = trail.log_key(
        "111122223333",
        "us-east-1",
        t - chrono::Duration::days(1),
        "AUDITEVENTS00000",
    );
    w.put(
        &early,
        gzip(&serde_json::to_vec(&serde_json::json!({ "Records": [records[9].clone()] })).unwrap()),
        &BTreeMap::new(),
    )
    .await;
    std::fs::write(
        w.dir.path().join("roles.toml"),
        "[[grant]]\ngroup = \"0a0a0a0a-1111-2222-3333-444444444444\"\nname = \"aws-admins\"\nroles = [\"arn:aws:iam::111122223333:role/Admin\"]\n",
    )
    .unwrap();
    let federation = format!(
        "[federation]\nidp_metadata = \"entra.xml\"\ntenant_id = \"{tenant}\"\nrole_mapping = \"roles.toml\"\n"
    );
    let config = w.config(w.moto.port, "", &federation);
    assert_eq!(w.sync(&config).await.code, 0);
    w.moto.stop(); // the audit reads Azure only

    let run = w
        .run(
            &config,
            &[
                "saml",
                "audit",
                "--since",
                "2026-11-25",
                "--until",
                "2026-11-26",
                "--json",
            ],
        )
        .await;
    assert_eq!(run.code, 3, "high findings exit 3: {run:?}");
    let doc = run.json();
    let findings: Vec<(String, String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().into(),
                f["kind"].as_str().unwrap().into(),
                f["subject"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = |s: &str, k: &str, who: &str| (s.to_string(), k.to_string(), who.to_string());
    assert_eq!(
        findings,
        vec![
            expect("high", "foreign_idp", "eve@example.com"),
            expect("high", "role_not_granted", "bob@example.com"),
            expect("high", "root_login", "root (111122223333)"),
            expect("medium", "iam_user_login", "legacy-ops"),
            expect("medium", "repeated_failures", "mallory@example.com"),
        ],
        "{doc}"
    );
    let alice = doc["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "alice@example.com")
        .unwrap();
    assert_eq!(alice["roles"], serde_json::json!([admin]));
    assert_eq!(alice["source_ips"], serde_json::json!(["198.51.100.7"]));
    assert_eq!(alice["first"], "2026-11-25T09:01:00Z");
    assert_eq!(alice["last"], "2026-11-25T09:01:05Z");
    let mallory = doc["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "mallory@example.com")
        .unwrap();
    assert_eq!(mallory["failures"], 3);
    assert!(
        doc["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["subject"] != "zoe@example.com"),
        "eventTime filter"
    );

    // A window with only the good sign-ins: exit 0.
    let run = w
        .run(
            &config,
            &[
                "saml",
                "audit",
                "--since",
                "2026-11-25T09:00:00Z",
                "--until",
                "2026-11-25T09:05:00Z",
                "--json",
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.json()["findings"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_store_over_azurite() {
    let w = world!("replay-bucket");
    w.state.ensure_container().await.unwrap();
    support::store_suite::replay_store_contract(w.state.as_ref()).await;
}

// ---------------------------------------------------------------- status

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_measures_the_backup_gap_from_recorded_runs() {
    let w = world!("status-bucket");
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    let config = w.config(proxy.port, "", "[sync]\nmax_gap = \"8h\"\nconcurrency = 2\n");
    w.state.ensure_container().await.unwrap();

    // Never synced: no complete run, so not within target (exit 3), gap unknown.
    let run = w.run(&config, &["status", "--json"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.json()["sources"][0]["backup_gap_seconds"].is_null());

    // While a sync runs, status sees it.
    proxy.set(Fault::SlowResponses(std::time::Duration::from_millis(30)));
    let mut child = w.command(&config, &["sync", "--json"]).spawn().unwrap();
    let mut seen_running = false;
    for _ in 0..200 {
        let doc = w.run(&config, &["status", "--json"]).await.json();
        if doc["sources"][0]["run_in_progress"] == true {
            seen_running = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen_running, "status never saw the running sync");
    proxy.set(Fault::Pass);
    assert!(child.wait().await.unwrap().success());

    let run = w.run(&config, &["status", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let s = &doc["sources"][0];
    assert_eq!(s["within_target"], true);
    assert_eq!(s["run_in_progress"], false);
    assert_eq!(s["last_run_status"], "Succeeded");
    assert!(s["backup_gap_seconds"].as_i64().unwrap() < 120);
    assert_eq!(doc["max_gap_seconds"], 8 * 3600);
    assert_eq!(s["accounts"].as_array().unwrap().len(), 4, "{doc}");
    assert!(s["accounts"][0]["newest_file_time"].is_string());

    // The same state judged against a one-second target once time has passed: over target.
    let strict = w.config(proxy.port, "", "[sync]\nmax_gap = \"1s\"\n");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let run = w.run(&strict, &["status", "--json"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.json()["sources"][0]["within_target"], false);
}

// ---------------------------------------------------------------- daemon

async fn http_get(port: u16, path: &str) -> (u16, String) {
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
    assert_eq!(w.archived().await.len(), files.len());

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

// ---------------------------------------------------------------- functions

async fn http_post(port: u16, path: &str, body: &str) -> (u16, String) {
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
async fn start_functions(w: &World, config: &std::path::PathBuf) -> (tokio::process::Child, u16) {
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
    assert_eq!(w.archived().await.len(), files.len());

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

// ---------------------------------------------------------------- Log Analytics

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
    assert_eq!(w.state.list("spool/").await.unwrap().len(), 1);
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
    assert!(w.state.list("spool/").await.unwrap().is_empty());
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

// ---------------------------------------------------------------- AWS health

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_probes_declare_an_outage_and_a_good_one_ends_it() {
    let w = world!("health-bucket");
    w.seed(&sample_trail(&w.bucket).generate()).await;
    let health = "[health]\nprobe_timeout = \"2s\"\ndegraded_after = 1\noutage_after = 2\n";
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    let run_id = doc["run_id"].as_str().unwrap();
    let (rec, _) = trailvault::storage::read_all(w.state.as_ref(), &format!("runs/{run_id}.json"))
        .await
        .unwrap()
        .unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&rec).unwrap();
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
