//! restore: to a folder and to a bucket, filters, corrupted blobs, kill -9 mid-restore.

use super::*;

/// A world whose bucket holds a standard trail (2 accounts x 2 regions x 2 days) and
/// an organization trail under a prefix, synced to the archive.
pub(super) async fn synced(bucket: &str) -> Option<(World, Vec<support::ctgen::GenFile>, std::path::PathBuf)> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_to_a_folder_is_byte_identical_and_works_with_s3_down() {
    let Some((mut w, files, config)) = synced("restore-folder").await else {
        return;
    };
    w.moto.stop(); // AWS is gone: a folder restore needs only Azure.
    let dir = w.dir.path().join("restored");
    let run = w.restore_to(&config, &dir, &[]).await;
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
    let runs = w.state.list_all("runs/").await.unwrap();
    let rec = w.run_record(doc["run_id"].as_str().unwrap()).await;
    assert_eq!(rec[0]["RecordType"], "Restore");
    assert!(rec[0]["DurationSeconds"].as_f64().unwrap() > 0.0);
    assert_eq!(runs.len(), 2);

    // A rerun skips what is there and identical; a different file is reported, not overwritten.
    std::fs::write(dir.join(&files[0].key), b"someone else's bytes").unwrap();
    let run = w.restore_to(&config, &dir, &[]).await;
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
    let run = w.restore_to(&config, &dir, &[]).await;
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
    let run = w.restore_to(&slow, &dir, &[]).await;
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
