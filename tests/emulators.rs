//! Sync against real emulators: Azurite for Blob, moto for S3, rclone as the
//! independent checker, a fault-injecting proxy for corruption and truncation.
//! One binary so the slow tests share a build; each test has its own emulators.

mod support;

use support::ctgen::{gzip, Trail};
use support::proxy::{Fault, Proxy};
use support::{World, SOURCE};
use trailvault::storage::BlobStore;

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
    let info = w.archive.head(&format!("{SOURCE}/{}", digest.key)).await.unwrap().unwrap();
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
    assert!(names.iter().any(|n| n.starts_with("watermarks/main/111122223333/us-east-1")), "{names:?}");
    assert!(names.iter().any(|n| *n == format!("runs/{}.json", doc["run_id"].as_str().unwrap())), "{names:?}");
    assert!(names.contains(&"health/main.json"), "{names:?}");

    let gets_before = proxy.get_objects();
    let again = w.sync(&config).await;
    assert_eq!(again.code, 0, "{again:?}");
    let doc2 = again.json();
    assert_eq!(doc2["sources"][0]["files_copied"], 0);
    assert_eq!(doc2["sources"][0]["files_skipped"], files.len() as u64);
    assert_eq!(proxy.get_objects(), gets_before, "the second run downloaded objects");
    assert!(doc2["sources"][0]["backup_gap_seconds"].as_i64().unwrap() < 60);
}
