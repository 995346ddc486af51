//! sync: full copy, incremental re-runs, late files, deletions, conflicts, corruption and truncation, staged blocks, kill -9, concurrency, bad config, SAS hygiene, dry run, and the storage contract over Azurite and moto.

use super::*;

pub(super) fn sample_trail(bucket: &str) -> Trail {
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
    // The run's own request count agrees with what the proxy saw.
    assert_eq!(doc["requests"]["s3.get"], files.len() as u64, "{doc}");
    assert!(doc["requests"]["archive.put"].as_u64().unwrap() >= files.len() as u64);
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
    let state = w.state.list_all("").await.unwrap();
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
    assert!(doc2["requests"].get("s3.get").is_none(), "{doc2}");
    assert!(doc2["requests"].get("archive.get").is_none(), "{doc2}");
    assert!(doc2["requests"].get("archive.put").is_none(), "{doc2}");
    assert!(doc2["sources"][0]["backup_gap_seconds"].as_i64().unwrap() < 60);
}

/// A non-gzip object whose bytes carry `marker`, under a CloudTrail log key.
pub(super) fn marked_object(trail: &Trail, marker: &str, minute: u32) -> (String, Vec<u8>) {
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
    assert!(w
        .archived()
        .await
        .expect("listing the archive")
        .contains(&format!("{SOURCE}/{late_key}")));
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
        !w.archived()
            .await
            .expect("listing the archive")
            .contains(&format!("{SOURCE}/{flip_key}")),
        "a corrupted copy was committed"
    );

    w.put(&cut_key, cut_body.clone(), &BTreeMap::new()).await;
    proxy.set(Fault::TruncateResponse(b"TV-CUT-MARKER".to_vec()));
    let run = w.sync(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    let archived = w.archived().await.expect("listing the archive");
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
    assert!(!w
        .archived()
        .await
        .expect("listing the archive")
        .contains(&format!("{SOURCE}/{key}")));
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

pub(super) fn many_files_trail(bucket: &str) -> Trail {
    let mut t = Trail::sample(bucket, 11);
    t.logs_per_day = 20;
    t.days.push(chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
    t
}

/// Runs sync until it is not refused for the lock (a killed holder's lease expires in 15 s).
pub(super) async fn sync_after_lock_expiry(w: &World, config: &std::path::PathBuf) -> support::Run {
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
        let n = w.archived_so_far().await;
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
    let partial = w.archived().await.expect("listing the archive").len();
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
        w.archived().await.expect("listing the archive").len(),
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
    let runs = w.state.list_all("runs/").await.unwrap();
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
        w.state.list_all("").await.is_err(),
        "a bad config created the state container"
    );
    assert!(
        w.archive.list_all("").await.is_err(),
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
    assert!(w.archived().await.expect("listing the archive").is_empty());
    assert!(w.state.list_all("").await.unwrap().is_empty(), "dry run wrote state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_blob_store_meets_the_storage_contract() {
    let w = world!("contract-bucket");
    // Pages of two blobs, so the suite walks Azurite's real NextMarker continuations.
    let url = url::Url::parse(&support::blob_url(w.azurite.port)).unwrap();
    let paged = trailvault::storage::blob::AzureBlobStore::open(
        &url,
        support::ARCHIVE,
        &support::shared_key(),
        std::time::Duration::from_secs(30),
    )
    .unwrap()
    .with_page_size(2);
    let counter = trailvault::storage::decorate::RequestCounter::default();
    let counted =
        trailvault::storage::decorate::CountingStore::new(std::sync::Arc::new(paged), counter.clone(), "azure");
    support::store_suite::blob_store_contract(&counted, "contract").await;
    // Seven blobs under one prefix at two a page: four requests, each from Azurite's NextMarker.
    let before = counter.snapshot()["azure.list"];
    assert_eq!(counted.list_all("contract/pages/").await.unwrap().len(), 7);
    assert_eq!(counter.snapshot()["azure.list"] - before, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_source_meets_the_storage_contract() {
    let w = world!("contract-source");
    // In-process client: the SDK's default chain reads these (subprocess tests set their own).
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    // Pages of two keys, so the suite walks moto's real continuation tokens.
    let src = trailvault::storage::s3::S3Source::connect_to(&w.bucket, "us-east-1", Some(&w.s3_url()))
        .await
        .with_page_size(2);
    let counter = trailvault::storage::decorate::RequestCounter::default();
    let counted = trailvault::storage::decorate::CountingSource::new(std::sync::Arc::new(src), counter.clone());
    support::store_suite::source_contract(&counted, &w).await;
    // Four keys under `p/` at two a page: two requests, the second from moto's token.
    let before = counter.snapshot()["s3.list"];
    let keys: Vec<_> = counted.list("p/", None).try_collect().await.unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(counter.snapshot()["s3.list"] - before, 2);
}
