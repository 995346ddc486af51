//! Restore safety (issue 9): what comes back is exactly what was archived, or a clear
//! failure. Full disk, forged names, missing sha256, memory, symlinks, sidecars,
//! concurrent restores, bad targets, containers, trail prefixes holding `AWSLogs`,
//! files that are not CloudTrail-shaped.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use trailvault::storage::{BlobStore, Condition, PutOptions};

use super::*;

const DAY_DIR: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/24";

fn log_key(unique: &str) -> String {
    format!("{DAY_DIR}/111122223333_CloudTrail_us-east-1_20261124T0105Z_{unique}.json.gz")
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut v = vec![0u8; n];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Files at their final names (the partial folder left out).
fn final_files(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| !f.starts_with(".trailvault-partial"))
        .collect()
}

fn partial_files(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    files_under(dir)
        .into_iter()
        .filter(|f| f.starts_with(".trailvault-partial"))
        .collect()
}

/// A world whose bucket holds the sample trail, synced.
async fn synced_world(bucket: &str) -> Option<(World, Vec<support::ctgen::GenFile>, PathBuf)> {
    let w = World::new(bucket).await?;
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let config = w.config(w.moto.port, "", "");
    let run = w.sync(&config).await;
    assert_eq!(run.code, 0, "{run:?}");
    Some((w, files, config))
}

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(Tmpfs(dir))
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_files_leaves_nothing_at_final_names_and_a_rerun_completes() {
    let w = world!("full-disk");
    // 1.2 MiB of incompressible logs for a 1 MiB filesystem.
    let big: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (log_key(&format!("big{i}")), noise(400 << 10, i)))
        .collect();
    for (k, b) in &big {
        w.put(k, b.clone(), &BTreeMap::new()).await;
    }
    let config = w.config(w.moto.port, "", "");
    assert_eq!(w.sync(&config).await.code, 0);
    let Some(fs) = Tmpfs::mount(w.dir.path().join("small"), "1m") else {
        eprintln!("cannot mount a tmpfs here (not root?); the failing-sink memory test covers this");
        return;
    };
    let dir = fs.0.join("restored");
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert!(doc["failed"].as_u64().unwrap() >= 1, "{doc}");
    assert!(
        doc["failures"].to_string().contains("No space left") || doc["failures"].to_string().contains("space"),
        "{doc}"
    );
    // Whatever is at a final name is whole and right.
    for f in final_files(&dir) {
        let (_, body) = big.iter().find(|(k, _)| *k == f).expect("only restored keys");
        assert_eq!(&std::fs::read(dir.join(&f)).unwrap(), body, "{f}");
    }
    assert_eq!(partial_files(&dir), Vec::<String>::new(), "temporary files left behind");

    // Space is back: the rerun completes, and what the first run wrote is skipped.
    fs.resize("8m");
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["conflicts"], serde_json::json!([]), "{doc}");
    for (k, b) in &big {
        assert_eq!(&std::fs::read(dir.join(k)).unwrap(), b, "{k}");
    }
    assert_eq!(partial_files(&dir), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_non_canonical_names_are_conflicts_and_the_genuine_log_is_restored() {
    let Some((w, files, config)) = synced_world("forged-names").await else {
        return;
    };
    let real = files.iter().find(|f| !f.key.contains("Digest")).unwrap();
    let forged_body = gzip(b"{\"Records\":[{\"eventName\":\"Forged\"}]}");
    let sha = sha256_hex(&forged_body);
    // Added beside the genuine blob (not over it: works on an immutable container).
    let (dir_part, file_part) = real.key.rsplit_once('/').unwrap();
    let forged = [
        format!("{SOURCE}//{}", real.key),
        format!("{SOURCE}/{dir_part}//{file_part}"),
        format!("{SOURCE}/{dir_part}/./{file_part}"),
    ];
    for name in &forged {
        w.archive
            .put(
                name,
                forged_body.clone().into(),
                PutOptions {
                    metadata: BTreeMap::from([("sha256".to_string(), sha.clone())]),
                    condition: Condition::IfNoneMatch,
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let listed = w.archived().await.unwrap();
    for name in &forged {
        assert!(listed.contains(name), "Azurite kept {name:?} as {listed:?}");
    }
    let dir = w.dir.path().join("restored");
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(
        std::fs::read(dir.join(&real.key)).unwrap(),
        real.body,
        "the genuine log"
    );
    let conflicts: Vec<String> = serde_json::from_value(doc["conflicts"].clone()).unwrap();
    assert_eq!(conflicts.len(), forged.len(), "{doc}");
    for name in &forged {
        let key = name.strip_prefix(&format!("{SOURCE}/")).unwrap();
        assert!(conflicts.iter().any(|c| c == key), "{key} not reported: {doc}");
    }
    assert_eq!(doc["unrecognized"], 0, "{doc}");
    for f in &files {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body, "{}", f.key);
    }
    // verify does not call them unrecognized either, and does not pass over them: each is
    // a log no digest covers.
    let run = w.run(&config, &["verify", "--json"]).await;
    assert_eq!(run.json()["unrecognized"], 0, "{run:?}");
    for name in &forged {
        let key = name.strip_prefix(&format!("{SOURCE}/")).unwrap();
        assert!(
            run.stdout.contains(&serde_json::to_string(key).unwrap()),
            "verify passed over {key}: {run:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_without_sha256_with_replaced_bytes_is_corrupted_exit_3_and_not_written() {
    let Some((w, files, config)) = synced_world("no-sha").await else {
        return;
    };
    let victim = files.iter().find(|f| !f.key.contains("Digest")).unwrap();
    let name = format!("{SOURCE}/{}", victim.key);
    let info = w.archive.head(&name).await.unwrap().unwrap();
    let mut metadata = info.metadata.clone();
    metadata.remove("sha256");
    let replaced = gzip(b"{\"Records\":[]}");
    use md5::Digest;
    w.archive
        .put(
            &name,
            replaced.clone().into(),
            PutOptions {
                metadata,
                content_type: info.content_type.clone(),
                content_md5: Some(md5::Md5::digest(&replaced).into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let dir = w.dir.path().join("restored");
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 3, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["corrupted"], serde_json::json!([victim.key]), "{doc}");
    assert!(!dir.join(&victim.key).exists(), "an unverifiable blob was written");

    w.s3.create_bucket().bucket("no-sha-back").send().await.unwrap();
    let out = w
        .command(&config, &["restore", "--to", "s3://no-sha-back", "--json"])
        .env("AWS_ENDPOINT_URL_S3", w.s3_url())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let got = w.s3.head_object().bucket("no-sha-back").key(&victim.key).send().await;
    assert!(got.is_err(), "an unverifiable blob was written to S3");
}

/// Puts a blob of `size` random bytes into the archive under a log key, in blocks.
async fn archive_big(w: &World, key: &str, size: usize) -> String {
    use md5::Digest;
    let name = format!("{SOURCE}/{key}");
    let block = 4 << 20;
    let (mut sha, mut md5) = (sha2::Sha256::new(), md5::Md5::new());
    let mut ids = Vec::new();
    let mut i = 0u64;
    let mut done = 0;
    while done < size {
        let n = block.min(size - done);
        let data = noise(n, 1000 + i);
        sha2::Digest::update(&mut sha, &data);
        md5.update(&data);
        let id = format!("{i:08}").into_bytes();
        w.archive
            .stage_block(&name, &id, data.clone().into(), md5::Md5::digest(&data).into())
            .await
            .unwrap();
        ids.push(id);
        done += n;
        i += 1;
    }
    let sha = hex::encode(sha.finalize());
    w.archive
        .commit_blocks(
            &name,
            ids,
            PutOptions {
                content_type: Some("application/json".into()),
                content_md5: Some(md5.finalize().into()),
                metadata: BTreeMap::from([
                    ("sha256".to_string(), sha.clone()),
                    ("source_key".to_string(), key.to_string()),
                ]),
                condition: Condition::IfNoneMatch,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    sha
}

fn file_sha256(path: &Path) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_200_mb_object_stays_under_128_mib_of_memory() {
    let w = world!("big-restore");
    w.archive.ensure_container().await.unwrap();
    w.state.ensure_container().await.unwrap();
    let key = log_key("huge");
    let sha = archive_big(&w, &key, 200_000_000).await;
    let config = w.config(w.moto.port, "", "");
    let dir = w.dir.path().join("restored");
    let cmd = w.command(&config, &["restore", "--to", dir.to_str().unwrap(), "--json"]);
    let (out, peak_kib) = support::run_measured(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(file_sha256(&dir.join(&key)), sha);
    assert!(peak_kib < 128 * 1024, "peak RSS {peak_kib} KiB for a 200 MB restore");

    // To S3 too (multipart, each part checked), still create-only.
    w.s3.create_bucket().bucket("big-back").send().await.unwrap();
    let mut cmd = w.command(&config, &["restore", "--to", "s3://big-back", "--json"]);
    cmd.env("AWS_ENDPOINT_URL_S3", w.s3_url());
    let (out, peak_kib) = support::run_measured(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        peak_kib < 128 * 1024,
        "peak RSS {peak_kib} KiB for a 200 MB restore to S3"
    );
    let got = w.s3.get_object().bucket("big-back").key(&key).send().await.unwrap();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(sha256_hex(&body), sha);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_inside_the_target_is_never_followed() {
    let Some((w, files, config)) = synced_world("symlinks").await else {
        return;
    };
    let dir = w.dir.path().join("restored");
    let outside = w.dir.path().join("outside");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // The whole AWSLogs folder, and one file name, point out of the target.
    std::os::unix::fs::symlink(&outside, dir.join("AWSLogs")).unwrap();
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["failed"], files.len() as u64, "{doc}");
    assert!(doc["failures"].to_string().contains("symlink"), "{doc}");
    assert_eq!(files_under(&outside), Vec::<String>::new(), "written through a symlink");

    std::fs::remove_file(dir.join("AWSLogs")).unwrap();
    let victim = &files[0];
    let parent = dir.join(&victim.key).parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&parent).unwrap();
    std::os::unix::fs::symlink(outside.join("stolen"), dir.join(&victim.key)).unwrap();
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!outside.join("stolen").exists(), "written through a symlink");
    for f in &files[1..] {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body, "{}", f.key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_are_never_replaced_and_a_lost_one_is_recreated() {
    let Some((w, files, config)) = synced_world("sidecars").await else {
        return;
    };
    let dir = w.dir.path().join("restored");
    assert_eq!(w.restore_to(&config, &dir, &[]).await.code, 0);
    let digests: Vec<_> = files.iter().filter(|f| f.key.contains("CloudTrail-Digest")).collect();
    let side = |k: &str| dir.join(format!("{k}.metadata.json"));
    let original = std::fs::read(side(&digests[0].key)).unwrap();

    // Lost to a crash: given back by the rerun.
    std::fs::remove_file(side(&digests[0].key)).unwrap();
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(std::fs::read(side(&digests[0].key)).unwrap(), original);

    // A different one: reported, left alone.
    std::fs::write(side(&digests[1].key), b"{\"someone\": \"else\"}").unwrap();
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(
        doc["conflicts"],
        serde_json::json!([format!("{}.metadata.json", digests[1].key)]),
        "{doc}"
    );
    assert_eq!(
        std::fs::read(side(&digests[1].key)).unwrap(),
        b"{\"someone\": \"else\"}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_restores_into_one_folder_do_not_break_each_other() {
    let Some((w, files, config)) = synced_world("concurrent-restores").await else {
        return;
    };
    let dir = w.dir.path().join("restored");
    // A user's file inside the partial folder is never deleted.
    std::fs::create_dir_all(dir.join(".trailvault-partial")).unwrap();
    std::fs::write(dir.join(".trailvault-partial/notes.txt"), b"mine").unwrap();
    let args = ["restore", "--to", dir.to_str().unwrap(), "--json"];
    let (a, b) = tokio::join!(w.run(&config, &args), w.run(&config, &args));
    assert_eq!(a.code, 0, "{a:?}");
    assert_eq!(b.code, 0, "{b:?}");
    let (da, db) = (a.json(), b.json());
    let total = |d: &serde_json::Value| d["files"].as_u64().unwrap() + d["skipped"].as_u64().unwrap();
    assert_eq!(total(&da), files.len() as u64, "{da}");
    assert_eq!(total(&db), files.len() as u64, "{db}");
    for f in &files {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body, "{}", f.key);
    }
    assert_eq!(
        std::fs::read(dir.join(".trailvault-partial/notes.txt")).unwrap(),
        b"mine"
    );
    assert_eq!(partial_files(&dir), vec![".trailvault-partial/notes.txt".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_scheme_like_targets_are_usage_errors() {
    let w = world!("bad-targets");
    let config = w.config(w.moto.port, "", "");
    let cwd = w.dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    for to in ["", "s3:/bkt", "s3:bkt", "S3://bkt", "az://x", "file:x"] {
        let out = w
            .command(&config, &["restore", "--to", to, "--json"])
            .current_dir(&cwd)
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "--to {to:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_dir(&cwd).unwrap().count(),
            0,
            "--to {to:?} wrote into the working directory"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_creates_no_container_unless_asked_and_names_a_missing_one() {
    let w = world!("containers");
    w.seed(&sample_trail(&w.bucket).generate()).await;
    let with_flag = std::fs::read_to_string(w.config(w.moto.port, "", "")).unwrap();
    let without = with_flag.replace("create_containers = true\n", "");
    assert_ne!(with_flag, without);
    let path = w.dir.path().join("no-create.toml");
    std::fs::write(&path, &without).unwrap();
    let run = w.sync(&path).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(support::STATE) || run.stdout.contains("state_container"),
        "{run:?}"
    );
    assert!(w.state.list_all("").await.is_err(), "the state container was created");
    assert!(
        w.archive.list_all("").await.is_err(),
        "the archive container was created"
    );

    // Both exist: sync runs without the flag.
    w.state.ensure_container().await.unwrap();
    w.archive.ensure_container().await.unwrap();
    assert_eq!(w.sync(&path).await.code, 0);

    // A misspelt archive container: exit 1 naming it, nothing created.
    let typo = without.replace(
        "container = \"cloudtrail-archive\"",
        "container = \"cloudtrial-archive\"",
    );
    let path = w.dir.path().join("typo.toml");
    std::fs::write(&path, &typo).unwrap();
    let run = w.sync(&path).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("cloudtrial-archive"), "{run:?}");
    let url = url::Url::parse(&w.blob_url()).unwrap();
    let typo_store: Arc<dyn BlobStore> = Arc::new(
        trailvault::storage::blob::AzureBlobStore::open(
            &url,
            "cloudtrial-archive",
            &support::shared_key(),
            std::time::Duration::from_secs(30),
        )
        .unwrap(),
    );
    assert!(
        typo_store.list_all("").await.is_err(),
        "the misspelt container was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trail_prefix_holding_awslogs_is_restored_and_verified() {
    let mut w = world!("awslogs-prefix");
    let mut trail = sample_trail(&w.bucket);
    trail.prefix = "x/AWSLogs/y".into();
    let files = trail.generate();
    w.seed(&files).await;
    let config = w.config(w.moto.port, "x/AWSLogs/y", "");
    assert_eq!(w.sync(&config).await.code, 0);
    w.moto.stop();
    let dir = w.dir.path().join("restored");
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["files"], files.len() as u64, "{}", run.stdout);
    for f in &files {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body, "{}", f.key);
    }
    // With a time range (the state-narrowed listing) too.
    let dir = w.dir.path().join("ranged");
    let run = w
        .restore_to(&config, &dir, &["--since", "2026-11-24", "--until", "2026-11-25"])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let want = files.iter().filter(|f| f.key.contains("/2026/11/24/")).count() as u64;
    assert!(run.json()["files"].as_u64().unwrap() >= want, "{}", run.stdout);
    let run = w.run(&config, &["verify", "--json"]).await;
    let doc = run.json();
    assert!(doc["checked"]["blobs"].as_u64().unwrap() >= files.len() as u64, "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_not_cloudtrail_shaped_are_counted_by_verify_and_restored() {
    let Some((mut w, files, config)) = synced_world("unrecognized").await else {
        return;
    };
    let odd = [
        (format!("{DAY_DIR}/notes.txt"), b"not a log".to_vec()),
        (
            format!("{DAY_DIR}/111122223333_CloudTrail_us-east-1_garbled.json.gz"),
            gzip(b"{}"),
        ),
    ];
    for (k, b) in &odd {
        w.put(k, b.clone(), &BTreeMap::new()).await;
    }
    assert_eq!(w.sync(&config).await.code, 0);
    w.moto.stop();
    let run = w.run(&config, &["verify", "--json"]).await;
    let doc = run.json();
    assert_eq!(doc["unrecognized"], 2, "{doc}");
    let keys: Vec<String> = serde_json::from_value(doc["unrecognized_keys"].clone()).unwrap();
    for (k, _) in &odd {
        assert!(keys.contains(k), "{k} not in {keys:?}");
    }
    let dir = w.dir.path().join("restored");
    let run = w.restore_to(&config, &dir, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["files"], (files.len() + odd.len()) as u64, "{}", run.stdout);
    for (k, b) in &odd {
        assert_eq!(&std::fs::read(dir.join(k)).unwrap(), b, "{k}");
    }
    for f in &files {
        assert_eq!(std::fs::read(dir.join(&f.key)).unwrap(), f.body, "{}", f.key);
    }
}
