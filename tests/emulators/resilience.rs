//! Resilience: one run of each command finishes through a storm of 503/500/429 answers
//! (with Retry-After) and reset connections on both clouds, plus first attempts that are
//! cut short or flipped; SIGTERM stops a daemon's sync at a safe point and releases its
//! lease; verify and saml audit stay within a memory bound over a 200 MB archive.

use super::*;
use support::proxy::{Cloud, Storm};

const STORM_S3: Storm = Storm {
    cloud: Cloud::S3,
    errors: 0.30,
    resets: 0.05,
    only: None,
};
const STORM_AZURE: Storm = Storm {
    cloud: Cloud::Azure,
    errors: 0.30,
    resets: 0.05,
    only: None,
};

/// Retries enough for a 35% storm (each file and each request), with short waits.
const STORMY: &str = "[sync]\nconcurrency = 8\nretries = 10\nretry_max_delay = \"2s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_verify_and_restore_each_complete_through_a_storm_on_both_clouds() {
    let w = world!("storm-bucket");
    let key = support::ctgen::test_key(42);
    let mut trail = sample_trail(&w.bucket);
    trail.logs_per_day = 6;
    trail.signer = Some(std::sync::Arc::new(key.clone()));
    let mut files = trail.generate();
    // Two objects whose first attempts are damaged on the way.
    for (marker, minute) in [("TV-CUT-FIRST", 41), ("TV-FLIP-FIRST", 42)] {
        let (k, body) = marked_object(&trail, marker, minute);
        files.push(support::ctgen::GenFile {
            key: k,
            body,
            metadata: BTreeMap::new(),
            time: chrono::Utc::now(),
        });
    }
    w.seed(&files).await;
    w.archive.ensure_container().await.unwrap();
    w.state.ensure_container().await.unwrap();
    let s3 = Proxy::start(w.moto.port).await;
    let azure = Proxy::start(w.azurite.port).await;
    let config = w.config_with_target(s3.port, "", &support::blob_url(azure.port), "shared-key", STORMY);

    // sync: storms on both sides; the first GET of one object is cut short, the first
    // upload of another has a byte flipped (Azure's MD5 check refuses it).
    s3.set_once(Fault::TruncateResponse(b"TV-CUT-FIRST".to_vec()), 1);
    azure.set_once(Fault::FlipRequest(b"TV-FLIP-FIRST".to_vec()), 1);
    s3.storm(Some(STORM_S3));
    azure.storm(Some(STORM_AZURE));
    let run = w.run(&config, &["sync", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "Succeeded", "{doc}");
    assert_eq!(doc["sources"][0]["files_failed"], 0);
    assert_eq!(doc["sources"][0]["files_copied"], files.len() as u64);
    assert!(doc["retries"].as_u64().unwrap() > 0, "{doc}");
    assert_eq!(s3.faults_applied(), 1, "the cut did not happen");
    assert_eq!(azure.faults_applied(), 1, "the flip did not happen");
    for p in [&s3, &azure] {
        assert!(
            p.storm_errors() > 0 && p.storm_resets() > 0,
            "no storm: {} requests",
            p.requests()
        );
    }
    s3.storm(None);
    azure.storm(None);
    let (ok, out) = w.rclone_check("");
    assert!(ok, "rclone check found differences:\n{out}");

    // verify through the Azure storm, with S3 gone.
    let (der, _) = support::ctgen::public_der(&key);
    let key_file = w.dir.path().join("key.der");
    std::fs::write(&key_file, &der).unwrap();
    for region in ["us-east-1", "eu-west-1"] {
        let run = w
            .run(
                &config,
                &["keys", "import", "--region", region, key_file.to_str().unwrap()],
            )
            .await;
        assert_eq!(run.code, 0, "{run:?}");
    }
    azure.storm(Some(STORM_AZURE));
    let before = azure.storm_errors();
    let run = w.run(&config, &["verify", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["ok"], true, "{doc}");
    assert!(doc["checked"]["logs"].as_u64().unwrap() > 0);
    assert!(doc["retries"].as_u64().unwrap() > 0, "{doc}");
    assert!(azure.storm_errors() > before);

    // restore to a folder through the Azure storm: every byte as the source had it.
    let dir = w.dir.path().join("restored");
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["files"], files.len() as u64, "{doc}");
    assert_eq!(doc["failed"], 0);
    assert!(doc["retries"].as_u64().unwrap() > 0, "{doc}");
    for f in &files {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body, "{}", f.key);
    }

    // restore to a second bucket through storms on both clouds.
    let target = "storm-restored";
    w.s3.create_bucket().bucket(target).send().await.unwrap();
    s3.storm(Some(STORM_S3));
    let mut cmd = w.command(
        &config,
        &[
            "restore",
            "--to",
            &format!("s3://{target}"),
            "--endpoint",
            &format!("http://127.0.0.1:{}", s3.port),
            "--json",
        ],
    );
    let run = support::output(&mut cmd).await;
    assert_eq!(run.code, 0, "{run:?}");
    s3.storm(None);
    azure.storm(None);
    for f in &files {
        let got = w.s3.get_object().bucket(target).key(&f.key).send().await.unwrap();
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(body.as_ref(), f.body.as_slice(), "{}", f.key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_daemon_sync_at_a_file_boundary_and_releases_the_lease() {
    let w = world!("sigterm-bucket");
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    // Slow S3 answers keep the sync going long enough to be stopped in the middle.
    proxy.set(Fault::SlowResponses(std::time::Duration::from_millis(40)));
    let config = w.config(
        proxy.port,
        "",
        "[sync]\nconcurrency = 2\n\n[schedule]\ncron = \"*/1 * * * * *\"\nverify_cron = \"0 0 0 1 1 *\"\n",
    );
    let port = free_port();
    let mut daemon = w
        .command(
            &config,
            &[
                "daemon",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--shutdown-grace",
                "20s",
            ],
        )
        .spawn()
        .unwrap();
    wait_until_mid_sync(&w, files.len()).await;
    let _ = wait_for_metrics(port, |_| true).await;
    let stop_at = std::time::Instant::now();
    kill(daemon.id().unwrap(), "TERM");
    let status = daemon.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(stop_at.elapsed() < std::time::Duration::from_secs(20));

    assert_stopped_then_resumed(&w, &proxy, &config, files.len()).await;
}

/// The Functions host sends SIGTERM when it scales in or redeploys: the invocation in
/// flight stops at a file boundary and still answers, the run is recorded Partial, the
/// lease is released, the handler exits 0, and the next sync completes the archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_functions_sync_invocation_and_releases_the_lease() {
    let w = world!("fn-sigterm-bucket");
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    proxy.set(Fault::SlowResponses(std::time::Duration::from_millis(40)));
    let config = w.config(proxy.port, "", "[sync]\nconcurrency = 2\n");
    let (mut child, port) = start_functions(&w, &config).await;
    let timer = r#"{"Data":{"timer":{"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"sync"}}}"#;
    let invocation = tokio::spawn(async move { http_post(port, "/sync", timer).await });
    wait_until_mid_sync(&w, files.len()).await;
    kill(child.id().unwrap(), "TERM");
    let (code, body) = tokio::time::timeout(std::time::Duration::from_secs(30), invocation)
        .await
        .expect("the invocation in flight never answered")
        .unwrap();
    // Stopped, not finished: the host sees a failed invocation, and the log says why.
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("Partial"), "{body}");
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("the handler did not exit after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(w.archived_so_far().await < files.len(), "the run was not stopped");

    assert_stopped_then_resumed(&w, &proxy, &config, files.len()).await;
}

/// `sync.max_requests = 1` against the real SDKs: every copy holds its S3 read open while
/// it writes Azure, planning lists many archive folders at once, and restore reads blobs
/// whole; none of it may wait on a permit it already holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_at_a_time_to_each_service_still_syncs_and_restores() {
    let w = world!("one-request-bucket");
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let config = w.config(w.moto.port, "", "[sync]\nconcurrency = 8\nmax_requests = 1\n");
    let limit = std::time::Duration::from_secs(120);
    let run = tokio::time::timeout(limit, w.run(&config, &["sync", "--json"]))
        .await
        .expect("a sync limited to one request a service hung");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.archived().await.unwrap().len(), files.len());
    let (ok, out) = w.rclone_check("");
    assert!(ok, "rclone check found differences:\n{out}");

    let dir = w.dir.path().join("restored");
    let args = ["restore", "--to", dir.to_str().unwrap(), "--json"];
    let run = tokio::time::timeout(limit, w.run(&config, &args))
        .await
        .expect("a restore limited to one request a service hung");
    assert_eq!(run.code, 0, "{run:?}");
    for f in &files {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body, "{}", f.key);
    }
}

/// Waits until a sync has archived some files but not all (`total`).
pub(super) async fn wait_until_mid_sync(w: &World, total: usize) {
    for _ in 0..400 {
        let n = w.archived_so_far().await;
        if n >= 3 {
            assert!(n < total, "the sync was not caught in the middle");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the sync never started archiving");
}

/// After a stop: the run is recorded Partial and the lease released; the next sync
/// starts at once (no lease to wait out) and completes the archive, every blob whole
/// (rclone compares it with S3).
pub(super) async fn assert_stopped_then_resumed(w: &World, proxy: &Proxy, config: &std::path::PathBuf, total: usize) {
    let runs = w.run_records().await;
    assert!(
        runs.iter().any(|r| r[0]["Status"] == "Partial"),
        "the stopped run was not recorded as Partial ({} runs)",
        runs.len()
    );
    let lock = w.state.head("locks/sync").await.unwrap().unwrap();
    assert!(!lock.leased, "the lease is still held");

    proxy.set(Fault::Pass);
    let run = w.sync(config).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.archived().await.unwrap().len(), total);
    let (ok, out) = w.rclone_check("");
    assert!(ok, "rclone check found differences:\n{out}");
}

/// Archives `n` CloudTrail-shaped logs of about 100 KB each (fewer, larger files keep
/// the test quick; `make bench` measures 20,000 of ~20 KB) straight into Azurite, with
/// the metadata sync writes (so verify checks their hashes).
async fn archive_many_logs(w: &World, n: usize) {
    use futures::StreamExt;
    use sha2::Digest;
    let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 20)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    w.archive.ensure_container().await.unwrap();
    futures::stream::iter(0..n)
        .map(|i| async move {
            let t = start + chrono::Duration::minutes(i as i64);
            let key = format!(
                "AWSLogs/111122223333/CloudTrail/us-east-1/{}/111122223333_CloudTrail_us-east-1_{}_{i:016}.json.gz",
                t.format("%Y/%m/%d"),
                t.format("%Y%m%dT%H%MZ")
            );
            // Random hex compresses to about half: 16 records of 10 KB of hex make ~100 KB of gzip.
            let noise = || (0..320).map(|_| format!("{:032x}", rand::random::<u128>())).collect::<String>();
            let records: Vec<_> = (0..16)
                .map(|j| serde_json::json!({"eventVersion": "1.09", "eventID": format!("{i}-{j}"), "eventTime": t.to_rfc3339(), "eventSource": "s3.amazonaws.com", "eventName": "GetObject", "requestParameters": {"noise": noise()}}))
                .collect();
            let body = gzip(&serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap());
            let sha = hex::encode(sha2::Sha256::digest(&body));
            let md5: [u8; 16] = md5::Md5::digest(&body).into();
            let opts = trailvault::storage::PutOptions {
                content_md5: Some(md5),
                metadata: BTreeMap::from([("sha256".to_string(), sha), ("source_key".to_string(), key.clone())]),
                condition: trailvault::storage::Condition::IfNoneMatch,
                ..Default::default()
            };
            w.archive
                .put(&format!("{SOURCE}/{key}"), body.into(), opts)
                .await
                .unwrap();
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_saml_audit_memory_stays_flat_over_a_large_archive() {
    const LOGS: usize = 2_000;
    const BOUND_MIB: u64 = 160;
    let mut w = world!("memory-bucket");
    w.moto.stop(); // both read Azure only
    archive_many_logs(&w, LOGS).await;
    std::fs::write(
        w.dir.path().join("roles.toml"),
        "[[grant]]\ngroup = \"0a0a0a0a-1111-2222-3333-444444444444\"\nname = \"a\"\nroles = [\"arn:aws:iam::111122223333:role/Admin\"]\n",
    )
    .unwrap();
    let config = w.config(
        w.moto.port,
        "",
        &format!(
            "[federation]\nidp_metadata = \"entra.xml\"\ntenant_id = \"{}\"\nrole_mapping = \"roles.toml\"\n",
            support::saml::TENANT
        ),
    );
    let stored: u64 = w
        .archive
        .list_all(&format!("{SOURCE}/"))
        .await
        .unwrap()
        .iter()
        .map(|b| b.size)
        .sum();
    assert!(
        stored > (BOUND_MIB + 16) << 20,
        "the archive is too small to show a leak: {stored} bytes"
    );

    let (out, peak_kib) = support::run_measured(w.command(&config, &["verify", "--json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["checked"]["blobs"], LOGS as u64, "{doc}");
    assert_eq!(doc["ok"], true);
    eprintln!("verify over {stored} bytes: peak RSS {} MiB", peak_kib / 1024);
    assert!(
        peak_kib > 0 && peak_kib < BOUND_MIB * 1024,
        "verify peak RSS {} MiB",
        peak_kib / 1024
    );

    let (out, peak_kib) = support::run_measured(w.command(&config, &["saml", "audit", "--json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["files_read"].as_u64().unwrap_or(0) >= LOGS as u64, "{doc}");
    eprintln!("saml audit over {stored} bytes: peak RSS {} MiB", peak_kib / 1024);
    assert!(
        peak_kib > 0 && peak_kib < BOUND_MIB * 1024,
        "audit peak RSS {} MiB",
        peak_kib / 1024
    );
}
