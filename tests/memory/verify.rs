//! verify over a synced memory archive: a clean one with restarts and backfill, and each
//! kind of tampering the emulator test names, found without an emulator.

use trailvault::integrity::verify::{ProblemKind, VerifyJob, VerifyReport};
use trailvault::storage::PutOptions;

use super::*;

#[tokio::test]
async fn verify_over_memory_accepts_restarts_backfill_and_empty_digests() {
    let key = support::ctgen::test_key(5);
    let mut trail = support::ctgen::Trail::sample("b", 4);
    trail.days.push(chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
    trail.signer = Some(Arc::new(key.clone()));
    trail.restart_on_day = Some(2);
    trail.backfill = true;
    let files = trail.generate();
    let src = Arc::new(MemorySource::new("b"));
    for f in &files {
        src.put(&f.key, f.body.clone().into(), f.metadata.clone(), chrono::Utc::now());
    }
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let r = job(src, archive.clone(), state.clone()).run().await.unwrap();
    assert_eq!(r.sources[0].files_copied, files.len() as u64);
    let (der, _) = support::ctgen::public_der(&key);
    for region in ["us-east-1", "eu-west-1"] {
        trailvault::integrity::keys::import(archive.as_ref(), region, "test", der.clone())
            .await
            .unwrap();
    }
    let report = verify(&archive, &state).await;
    assert!(report.ok, "{:?}", report.problems);
    // Per account-region: the first chain, the restart, and the backfill chain.
    assert_eq!(report.chain_starts, 4 * 3);
    let backfilled = files.iter().filter(|f| f.key.contains("BACKFILLEDLATE01")).count() as u64;
    let logs = files.iter().filter(|f| f.key.contains("/CloudTrail/")).count() as u64;
    assert_eq!(backfilled, 4);
    assert_eq!(report.checked.logs, logs, "the backfilled logs are vouched for too");
    assert_eq!(report.logs_awaiting_digest, 0);
}

/// A signed trail (2 accounts x 2 regions x 2 days, 5 logs a day, empty-hour digests) in a
/// bucket, and the key that signed its digests.
fn signed_trail() -> (Vec<support::ctgen::GenFile>, rsa::RsaPrivateKey) {
    let key = support::ctgen::test_key(42);
    let mut trail = support::ctgen::Trail::sample("b", 7);
    trail.logs_per_day = 5;
    trail.signer = Some(Arc::new(key.clone()));
    (trail.generate(), key)
}

/// A fresh archive synced from `files`, the signing key imported for both regions, as
/// `keys import` leaves it: each tampering row starts from its own clean copy, so one row
/// that fails cannot leave the next one a different archive.
async fn verified_archive(
    files: &[support::ctgen::GenFile],
    key: &rsa::RsaPrivateKey,
) -> (Arc<MemoryBlobStore>, Arc<MemoryBlobStore>) {
    let src = Arc::new(MemorySource::new("b"));
    for f in files {
        src.put(&f.key, f.body.clone().into(), f.metadata.clone(), chrono::Utc::now());
    }
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    let r = job(src, archive.clone(), state.clone()).run().await.unwrap();
    assert_eq!(r.sources[0].files_copied, files.len() as u64, "{r:?}");
    let (der, _) = support::ctgen::public_der(key);
    for region in ["us-east-1", "eu-west-1"] {
        trailvault::integrity::keys::import(archive.as_ref(), region, "test", der.clone())
            .await
            .unwrap();
    }
    (archive, state)
}

pub(super) async fn verify(archive: &Arc<MemoryBlobStore>, state: &Arc<MemoryBlobStore>) -> VerifyReport {
    VerifyJob {
        archive: archive.clone().into(),
        state: Some(state.clone().into()),
        selection: trailvault::state::select::Selection {
            sources: vec!["m".into()],
            digests: true,
            ..Default::default()
        },
        concurrency: 4,
        retry: trailvault::storage::retry::RetryPolicy::none(),
        cancel: Default::default(),
    }
    .run()
    .await
    .unwrap()
}

fn sha_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// What an attacker with write access to the storage account does to one archived file.
enum Attack {
    /// New bytes with `sha256` rewritten to match: only the digests can tell.
    Forge(Vec<u8>),
    /// New bytes, metadata untouched.
    Replace(Vec<u8>),
    Delete,
    /// The digest replaced by this document (`sha256` rewritten), re-signed when the
    /// attacker holds a key.
    Digest(serde_json::Value, Option<Arc<rsa::RsaPrivateKey>>),
}

async fn attack(archive: &MemoryBlobStore, key: &str, attack: &Attack) {
    let name = format!("m/{key}");
    let (_, info) = trailvault::storage::read_all(archive, &name).await.unwrap().unwrap();
    let mut metadata = info.metadata;
    let bytes = match attack {
        Attack::Delete => {
            return trailvault::storage::StateBlobStore::delete(archive, &name)
                .await
                .unwrap()
        }
        Attack::Replace(bytes) => bytes.clone(),
        Attack::Forge(bytes) => {
            metadata.insert("sha256".into(), sha_hex(bytes));
            bytes.clone()
        }
        Attack::Digest(doc, signer) => {
            let json = serde_json::to_vec(doc).unwrap();
            if let Some(k) = signer {
                metadata.insert("ct_signature".into(), support::ctgen::sign_digest(k, &json));
            }
            let bytes = support::ctgen::gzip(&json);
            metadata.insert("sha256".into(), sha_hex(&bytes));
            bytes
        }
    };
    let opts = PutOptions {
        metadata,
        ..Default::default()
    };
    archive.put(&name, bytes.into(), opts).await.unwrap();
}

/// A tampering case: its name, the file attacked, how, and every finding it must cause.
type Row<'a> = (&'a str, &'a String, Attack, Vec<(ProblemKind, String)>);

/// The findings as (kind, key), sorted: what a row expects, to the count.
fn findings(report: &VerifyReport) -> Vec<(ProblemKind, String)> {
    let mut out: Vec<_> = report.problems.iter().map(|p| (p.kind, p.key.clone())).collect();
    out.sort();
    out
}

#[tokio::test]
async fn verify_proves_a_clean_archive_and_names_every_kind_of_tampering() {
    let (files, key) = signed_trail();
    let digests: Vec<_> = files.iter().filter(|f| f.key.contains("CloudTrail-Digest")).collect();
    let logs = files.iter().filter(|f| f.key.contains("/CloudTrail/")).count() as u64;

    let (archive, state) = verified_archive(&files, &key).await;
    let clean = verify(&archive, &state).await;
    assert!(clean.ok, "{:?}", clean.problems);
    assert_eq!(clean.checked.digests, digests.len() as u64);
    assert_eq!(clean.checked.logs, logs);
    assert_eq!(clean.checked.blobs, files.len() as u64);
    assert_eq!(clean.chain_starts, 4, "one chain per account-region");

    // A digest in the middle of a chain (it has a successor) and a log it lists.
    let mut chain: Vec<_> = digests
        .iter()
        .filter(|d| d.key.starts_with("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/"))
        .collect();
    chain.sort_by_key(|d| d.time);
    let (middle, next) = (&chain[1].key, &chain[2].key);
    let middle_json: serde_json::Value = serde_json::from_slice(
        &trailvault::cloudtrail::digest::gunzip_first_member(&chain[1].body)
            .unwrap()
            .0,
    )
    .unwrap();
    let listed = middle_json["logFiles"][0]["s3Object"].as_str().unwrap().to_string();
    let log = files.iter().find(|f| f.key == listed).unwrap();
    let with = |field: &str, value: serde_json::Value| {
        let mut doc = middle_json.clone();
        doc[field] = value;
        doc
    };
    let mut flipped = log.body.clone();
    flipped[15] ^= 0x40;
    let mut appended = log.body.clone();
    appended.extend(support::ctgen::gzip(b"{\"Records\":[{\"eventName\":\"Smuggled\"}]}"));
    let mut rehashed = middle_json.clone();
    rehashed["logFiles"][0]["hashValue"] = serde_json::json!("00".repeat(32));
    let stranger = support::ctgen::test_key(7);

    // A digest that cannot be trusted vouches for none of the logs it lists: each becomes
    // a log without a digest.
    let uncovered: Vec<(ProblemKind, String)> = middle_json["logFiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (ProblemKind::MissingDigest, l["s3Object"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(uncovered.len(), 2, "the middle digest lists two logs");
    use ProblemKind::*;
    let on = |kind: ProblemKind, key: &String| (kind, key.clone());
    let rows: Vec<Row> = vec![
        (
            "new log content, metadata rewritten to match",
            &log.key,
            Attack::Forge(support::ctgen::gzip(
                b"{\"Records\":[{\"eventName\":\"NothingToSeeHere\"}]}",
            )),
            vec![on(TamperedLog, &log.key)],
        ),
        (
            "a flipped byte, metadata untouched",
            &log.key,
            Attack::Replace(flipped),
            vec![on(MetadataMismatch, &log.key), on(TamperedLog, &log.key)],
        ),
        (
            "a second gzip member appended (the first still hashes right)",
            &log.key,
            Attack::Forge(appended),
            vec![on(TrailingData, &log.key)],
        ),
        (
            "a listed log deleted",
            &log.key,
            Attack::Delete,
            vec![on(MissingLog, &log.key)],
        ),
        (
            "a digest with a successor deleted",
            middle,
            Attack::Delete,
            [vec![on(MissingDigest, middle)], uncovered.clone()].concat(),
        ),
        (
            // The successor's previousDigestHashValue no longer matches either.
            "a digest's content changed, its signature not",
            middle,
            Attack::Digest(rehashed, None),
            [vec![on(BadSignature, middle), on(BrokenChain, next)], uncovered.clone()].concat(),
        ),
        (
            // Re-signed, so its successor's previous signature and previous hash both differ.
            "correctly signed, but its previous signature is not its predecessor's",
            middle,
            Attack::Digest(
                with("previousDigestSignature", serde_json::json!("ab".repeat(256))),
                Some(Arc::new(key.clone())),
            ),
            vec![on(BrokenChain, middle), on(BrokenChain, next), on(BrokenChain, next)],
        ),
        (
            "correctly signed, but its predecessor said to live in another bucket",
            middle,
            Attack::Digest(
                with("previousDigestS3Bucket", serde_json::json!("attacker-bucket")),
                Some(Arc::new(key.clone())),
            ),
            vec![on(BrokenChain, middle), on(BrokenChain, next), on(BrokenChain, next)],
        ),
        (
            "signed by a key nobody archived",
            middle,
            Attack::Digest(
                with(
                    "digestPublicKeyFingerprint",
                    serde_json::json!(support::ctgen::public_der(&stranger).1),
                ),
                Some(Arc::new(stranger.clone())),
            ),
            [
                vec![on(UnknownKey, middle), on(BrokenChain, next), on(BrokenChain, next)],
                uncovered.clone(),
            ]
            .concat(),
        ),
        (
            "not a digest at all",
            middle,
            Attack::Forge(b"not gzip".to_vec()),
            [vec![on(Malformed, middle), on(BrokenChain, next)], uncovered.clone()].concat(),
        ),
    ];
    // Every row runs and every wrong one is reported, so one bad row hides no other.
    let mut failures = Vec::new();
    for (name, target, how, want) in rows {
        let (archive, state) = verified_archive(&files, &key).await;
        attack(&archive, target, &how).await;
        let report = verify(&archive, &state).await;
        let mut want = want;
        want.sort();
        let got = findings(&report);
        if report.ok || got != want {
            failures.push(format!("{name}: ok {}, want {want:?}, got {got:?}", report.ok));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
