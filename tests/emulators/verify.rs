//! verify and keys: a clean archive, each kind of tampering, keys fetched from a local ListPublicKeys endpoint.

use super::*;

/// A world with a signed trail (2 accounts x 2 regions x 2 days, empty-hour digests),
/// synced, its public key archived with `keys import`, and S3 stopped.
pub(super) async fn verified_world(
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

pub(super) async fn verify_json(w: &World, config: &std::path::PathBuf) -> (i32, serde_json::Value) {
    let run = w.run(config, &["verify", "--json"]).await;
    (run.code, run.json())
}

pub(super) fn kinds_for(doc: &serde_json::Value, key: &str) -> Vec<String> {
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
pub(super) async fn tamper(
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

pub(super) async fn untamper(w: &World, key: &str, old: (Vec<u8>, BTreeMap<String, String>)) {
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

pub(super) fn sha_hex(b: &[u8]) -> String {
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
    let record = w.state.list_all("runs/").await.unwrap();
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
pub(super) async fn expect_kind(w: &World, config: &std::path::PathBuf, key: &str, kind: &str) -> serde_json::Value {
    let (code, doc) = verify_json(w, config).await;
    assert_eq!(code, 3, "{doc}");
    assert!(
        kinds_for(&doc, key).contains(&kind.to_string()),
        "{kind} for {key}: {doc}"
    );
    doc
}

/// New bytes with a `sha256` rewritten to match: only the digests can tell.
pub(super) async fn forge_bytes(w: &World, key: &str, bytes: Vec<u8>) -> (Vec<u8>, BTreeMap<String, String>) {
    let sha = sha_hex(&bytes);
    tamper(w, key, bytes, |m| {
        m.insert("sha256".into(), sha);
    })
    .await
}

/// A digest replaced by `doc`, re-signed when the attacker has a `signer`.
pub(super) async fn forge_digest(
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
pub(super) async fn take_away(w: &World, key: &str) -> (Vec<u8>, BTreeMap<String, String>) {
    let name = format!("{SOURCE}/{key}");
    let (bytes, info) = trailvault::storage::read_all(w.archive.as_ref(), &name)
        .await
        .unwrap()
        .unwrap();
    delete_blob(w, &name).await;
    (bytes.to_vec(), info.metadata)
}

pub(super) async fn delete_blob(w: &World, name: &str) {
    use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
    use trailvault::storage::azure_auth::{client_auth, ClientAuth};
    let mut options = BlobContainerClientOptions::default();
    if let ClientAuth::Policy(p) = client_auth(&support::shared_key(), std::time::Duration::from_secs(30)).unwrap() {
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
    let stored = w.archive.list_all("_trailvault/public-keys/").await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0].metadata["aws_fingerprint"], digest_fp);
    assert!(stored[0].metadata.contains_key("validity_end"));
    api.verify().await;

    let run = w.run(&config, &["verify", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.json()["checked"]["digests"].as_u64().unwrap() > 0);
}
