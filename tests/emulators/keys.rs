//! Keys S3 allows round-trip exactly: a TAB, non-ASCII and `%` through moto, sync,
//! Azurite (shared key and SAS), and restore to a folder and to a bucket; a key that
//! cannot be held verbatim is a failure naming it, never renamed.

use super::*;

/// CloudTrail-shaped keys whose unique part holds what naive URL building breaks.
fn odd_keys() -> Vec<String> {
    let dir = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/24/111122223333_CloudTrail_us-east-1_20261124T01";
    vec![
        format!("{dir}05Z_tab\there.json.gz"),
        format!("{dir}05Z_tabhere.json.gz"),
        format!("{dir}10Z_caf\u{e9}-\u{65e5}\u{672c}-\u{1f600}.json.gz"),
        format!("{dir}15Z_pct%41%2F%zz+plus space.json.gz"),
        format!("{dir}20Z_q?hash#amp&eq=semi;.json.gz"),
    ]
}

pub(super) fn body_for(key: &str) -> Vec<u8> {
    gzip(format!("{{\"Records\":[],\"key\":{key:?}}}").as_bytes())
}

async fn round_trip(w: &World, config: &std::path::PathBuf, env: &[(&str, String)]) {
    let keys = odd_keys();
    for k in &keys {
        w.put(k, body_for(k), &BTreeMap::new()).await;
    }
    let mut cmd = w.command(config, &["sync", "--json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = support::output(&mut cmd).await;
    assert_eq!(run.code, 0, "{run:?}");
    // Archived under exactly these names, with exactly these bytes.
    let mut archived = w.archived().await.unwrap();
    archived.sort();
    let mut want: Vec<String> = keys.iter().map(|k| format!("{SOURCE}/{k}")).collect();
    want.sort();
    assert_eq!(archived, want);
    for k in &keys {
        assert_eq!(w.archived_bytes(k).await, body_for(k), "{k:?}");
        let info = w.archive.head(&format!("{SOURCE}/{k}")).await.unwrap().unwrap();
        assert_eq!(
            trailvault::archive::source_key_of(&info.metadata).as_deref(),
            Some(k.as_str())
        );
    }

    // To a folder, with S3 gone.
    let dir = w.dir.path().join(format!("restored-{}", rand::random::<u32>()));
    let mut cmd = w.command(config, &["restore", "--to", dir.to_str().unwrap(), "--json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = support::output(&mut cmd).await;
    assert_eq!(run.code, 0, "{run:?}");
    for k in &keys {
        assert_eq!(std::fs::read(dir.join(k)).unwrap(), body_for(k), "{k:?}");
    }
    let mut on_disk = files_under(&dir);
    on_disk.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(on_disk, want);

    // To a bucket.
    let bucket = format!("back-{}", rand::random::<u32>());
    w.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let mut cmd = w.command(config, &["restore", "--to", &format!("s3://{bucket}/r"), "--json"]);
    cmd.env("AWS_ENDPOINT_URL_S3", w.s3_url());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = support::output(&mut cmd).await;
    assert_eq!(run.code, 0, "{run:?}");
    for k in &keys {
        let got =
            w.s3.get_object()
                .bucket(&bucket)
                .key(format!("r/{k}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{k:?}: {e:?}"));
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(&body[..], &body_for(k)[..], "{k:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tab_non_ascii_and_percent_keys_round_trip_with_shared_key() {
    let w = world!("odd-keys-shared");
    let config = w.config(w.moto.port, "", "");
    round_trip(&w, &config, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tab_non_ascii_and_percent_keys_round_trip_with_sas() {
    let w = world!("odd-keys-sas");
    let sas = support::account_sas(
        support::emulators::AZURITE_ACCOUNT,
        support::emulators::AZURITE_KEY,
        "racwdl",
    );
    let config = w.config_with_target(w.moto.port, "", &w.blob_url(), "sas", "");
    round_trip(&w, &config, &[("TRAILVAULT_AZURE_SAS", sas)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_too_long_for_azure_is_a_failure_naming_it_never_renamed() {
    let w = world!("long-keys");
    let dir = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/24/111122223333_CloudTrail_us-east-1_20261124T0105Z_";
    // 1,024 characters of S3 key are allowed; with "main/" in front the blob name is not.
    let long = format!("{dir}{}.json.gz", "x".repeat(1024 - dir.len() - ".json.gz".len()));
    assert_eq!(long.len(), 1024);
    let fine = format!("{dir}short.json.gz");
    w.put(&long, body_for(&long), &BTreeMap::new()).await;
    w.put(&fine, body_for(&fine), &BTreeMap::new()).await;
    let config = w.config(w.moto.port, "", "");
    let run = w.sync(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    let failures = doc["sources"][0]["failures"].to_string();
    assert!(failures.contains(&long), "{failures}");
    assert_eq!(w.archived().await.unwrap(), vec![format!("{SOURCE}/{fine}")]);
}
