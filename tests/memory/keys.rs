//! keys: importing DER and PEM public keys (PKCS#1 and SubjectPublicKeyInfo) into a
//! memory archive, and fetching them through a fake `ListPublicKeys` that verify then uses.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::EncodePublicKey;
use trailvault::cloudtrail::digest::KeyEncoding;
use trailvault::cloudtrail_api::{PublicKeySource, PublishedKey};
use trailvault::fault::{Classify, Fault};
use trailvault::integrity::keys::{self, KeyError, KeyRing};
use trailvault::integrity::verify::ProblemKind;
use trailvault::storage::{ErrorKind, StorageError};

use super::*;

const PREFIX: &str = "_trailvault/public-keys/";

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}

fn pkcs1(key: &rsa::RsaPrivateKey) -> Vec<u8> {
    key.to_public_key().to_pkcs1_der().unwrap().as_bytes().to_vec()
}

fn spki(key: &rsa::RsaPrivateKey) -> Vec<u8> {
    key.to_public_key().to_public_key_der().unwrap().as_bytes().to_vec()
}

async fn archived_keys(archive: &MemoryBlobStore) -> Vec<String> {
    archive
        .list_all(PREFIX)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect()
}

#[tokio::test]
async fn keys_import_der_and_pem_in_both_encodings_idempotently() {
    let key = support::ctgen::test_key(21);
    let (pkcs1_der, spki_der) = (pkcs1(&key), spki(&key));
    assert_ne!(pkcs1_der, spki_der);
    let dir = tempfile::tempdir().unwrap();
    let pem = |label: &str, der: &[u8]| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
    };
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let files = [
        (write("k1.der", &pkcs1_der), KeyEncoding::Pkcs1, &pkcs1_der),
        (
            write("k1.pem", pem("RSA PUBLIC KEY", &pkcs1_der).as_bytes()),
            KeyEncoding::Pkcs1,
            &pkcs1_der,
        ),
        (write("k2.der", &spki_der), KeyEncoding::Spki, &spki_der),
        (
            write("k2.pem", pem("PUBLIC KEY", &spki_der).as_bytes()),
            KeyEncoding::Spki,
            &spki_der,
        ),
    ];
    let archive = MemoryBlobStore::new();
    for (i, (path, encoding, der)) in files.iter().enumerate() {
        let bytes = read_key_file(path).unwrap();
        assert_eq!(&bytes, *der, "{} reads as the DER it holds", path.display());
        let got = keys::import(&archive, "eu-west-1", &path.display().to_string(), bytes)
            .await
            .unwrap();
        assert_eq!(got.encoding, *encoding);
        assert_eq!(got.fingerprint, md5_hex(der));
        assert_eq!(got.region, "eu-west-1");
        assert_eq!(got.blob, format!("{PREFIX}eu-west-1/{}.der", md5_hex(der)));
        // DER first, then the same key as PEM: already archived.
        assert_eq!(got.new, i % 2 == 0, "{}: new = {}", path.display(), got.new);
        let (stored, info) = trailvault::storage::read_all(&archive, &got.blob)
            .await
            .unwrap()
            .expect("the key blob");
        assert_eq!(stored.to_vec(), **der);
        assert_eq!(info.metadata["origin"], "import");
        assert_eq!(
            info.metadata["encoding"],
            if *encoding == KeyEncoding::Pkcs1 {
                "pkcs1"
            } else {
                "spki"
            }
        );
    }
    let names = archived_keys(&archive).await;
    assert_eq!(names.len(), 2, "one blob per encoding: {names:?}");
    // A re-import does not rewrite the blob.
    let blob = format!("{PREFIX}eu-west-1/{}.der", md5_hex(&pkcs1_der));
    assert!(names.contains(&blob), "{names:?}");
    let before = archive.head(&blob).await.unwrap().unwrap().etag;
    let again = keys::import(&archive, "eu-west-1", "again", pkcs1_der.clone())
        .await
        .unwrap();
    assert!(!again.new);
    assert_eq!(archive.head(&blob).await.unwrap().unwrap().etag, before);
    // Another region is another blob.
    assert!(
        keys::import(&archive, "us-east-1", "k1", pkcs1_der.clone())
            .await
            .unwrap()
            .new
    );
    // The ring knows the key in its region under either encoding's fingerprint.
    let ring = KeyRing::load(&archive).await.unwrap();
    for fp in [md5_hex(&pkcs1_der), md5_hex(&spki_der).to_uppercase()] {
        assert_eq!(ring.get("eu-west-1", &fp), Some(&key.to_public_key()), "{fp}");
    }
    assert!(ring.get("ap-south-1", &md5_hex(&pkcs1_der)).is_none());
}

#[tokio::test]
async fn keys_import_refuses_what_is_not_an_rsa_public_key() {
    let archive = MemoryBlobStore::new();
    let dir = tempfile::tempdir().unwrap();
    let key = support::ctgen::test_key(22);
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let private = key.to_pkcs1_der().unwrap().as_bytes().to_vec();
    let mut truncated = pkcs1(&key);
    truncated.truncate(100);
    for (name, bytes) in [
        ("garbage.der", b"this is not a key".to_vec()),
        ("truncated.der", truncated),
        ("private.der", private),
        ("empty.der", Vec::new()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let bytes = read_key_file(&p).unwrap();
        let err = keys::import(&archive, "us-east-1", name, bytes).await.unwrap_err();
        assert!(matches!(err, KeyError::BadKey { .. }), "{name}: {err:?}");
        assert_eq!(err.fault(), Fault::Usage, "{name}");
        assert!(err.to_string().starts_with(name), "{name}: {err}");
    }
    // A PEM whose body is not base64, and a file that is not there, fail on reading.
    let p = dir.path().join("bad.pem");
    std::fs::write(
        &p,
        "-----BEGIN PUBLIC KEY-----\n!!not base64!!\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let err = read_key_file(&p).unwrap_err();
    assert!(err.to_string().contains("not base64"), "{err}");
    assert_eq!(err.fault(), Fault::Usage);
    assert!(read_key_file(&dir.path().join("missing.der")).is_err());
    assert!(archived_keys(&archive).await.is_empty(), "nothing stored");
}

/// A recorded `ListPublicKeys` call: region, start, end.
type Call = (String, DateTime<Utc>, DateTime<Utc>);

/// `ListPublicKeys` as a provider boundary: fixed answers per region, calls recorded.
#[derive(Default)]
struct FakeCloudTrail {
    keys: BTreeMap<String, Vec<PublishedKey>>,
    fail: bool,
    calls: Mutex<Vec<Call>>,
}

#[async_trait::async_trait]
impl PublicKeySource for FakeCloudTrail {
    async fn list_public_keys(
        &self,
        region: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StorageResult<Vec<PublishedKey>> {
        self.calls.lock().unwrap().push((region.to_string(), start, end));
        if self.fail {
            return Err(StorageError::new(
                ErrorKind::Unreachable,
                "list public keys",
                region,
                "connection refused",
            ));
        }
        Ok(self.keys.get(region).cloned().unwrap_or_default())
    }
}

#[tokio::test]
async fn keys_fetch_archives_what_list_public_keys_returns_and_verify_uses_it() {
    let signer = support::ctgen::test_key(23);
    let other = support::ctgen::test_key(24);
    let mut trail = support::ctgen::Trail::sample("b", 7);
    trail.signer = Some(Arc::new(signer.clone()));
    let files = trail.generate();
    let src = Arc::new(MemorySource::new("b"));
    for f in &files {
        src.put(&f.key, f.body.clone().into(), f.metadata.clone(), Utc::now());
    }
    let (archive, state) = (Arc::new(MemoryBlobStore::new()), Arc::new(MemoryBlobStore::new()));
    job(src, archive.clone(), state.clone()).run().await.unwrap();
    let before = super::verify::verify(&archive, &state).await;
    assert!(!before.ok, "no keys yet: the digests cannot be verified");
    assert!(
        before.problems.iter().any(|p| p.kind == ProblemKind::UnknownKey),
        "{:?}",
        before.problems
    );

    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let published = |k: &rsa::RsaPrivateKey| PublishedKey {
        der: pkcs1(k),
        // AWS states it in upper case; digests name it in lower case.
        fingerprint: Some(md5_hex(&pkcs1(k)).to_uppercase()),
        validity_start: Some(t("2026-11-01T00:00:00Z")),
        validity_end: Some(t("2026-12-01T00:00:00Z")),
    };
    let mut api = FakeCloudTrail::default();
    api.keys
        .insert("us-east-1".into(), vec![published(&signer), published(&other)]);
    // In eu-west-1 the key comes as SubjectPublicKeyInfo, while the digests name the
    // PKCS#1 fingerprint (the one AWS states): verify must still find it.
    api.keys.insert(
        "eu-west-1".into(),
        vec![PublishedKey {
            der: spki(&signer),
            ..published(&signer)
        }],
    );
    let regions = vec!["us-east-1".to_string(), "eu-west-1".to_string()];
    let (start, end) = (t("2026-11-20T00:00:00Z"), t("2026-11-27T00:00:00Z"));
    let got = keys::fetch(archive.as_ref(), &api, &regions, start, end).await.unwrap();
    assert_eq!(
        *api.calls.lock().unwrap(),
        vec![
            ("us-east-1".to_string(), start, end),
            ("eu-west-1".to_string(), start, end)
        ]
    );
    let summary: Vec<(&str, &str, bool)> = got
        .iter()
        .map(|k| (k.region.as_str(), k.fingerprint.as_str(), k.new))
        .collect();
    let (fp_signer, fp_other) = (md5_hex(&pkcs1(&signer)), md5_hex(&pkcs1(&other)));
    let fp_signer_spki = md5_hex(&spki(&signer));
    assert_eq!(
        summary,
        vec![
            ("us-east-1", fp_signer.as_str(), true),
            ("us-east-1", fp_other.as_str(), true),
            ("eu-west-1", fp_signer_spki.as_str(), true),
        ]
    );
    let (_, info) = trailvault::storage::read_all(archive.as_ref(), &got[0].blob)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.metadata["origin"], "ListPublicKeys");
    assert_eq!(info.metadata["aws_fingerprint"], fp_signer);
    assert_eq!(info.metadata["validity_start"], "2026-11-01T00:00:00Z");
    assert_eq!(info.metadata["validity_end"], "2026-12-01T00:00:00Z");
    let (_, info) = trailvault::storage::read_all(archive.as_ref(), &got[2].blob)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            info.metadata["encoding"].as_str(),
            info.metadata["aws_fingerprint"].as_str()
        ),
        ("spki", fp_signer.as_str())
    );
    // Fetching again stores nothing new.
    let again = keys::fetch(archive.as_ref(), &api, &regions, start, end).await.unwrap();
    assert!(again.iter().all(|k| !k.new), "{again:?}");
    assert_eq!(archived_keys(&archive).await.len(), 3);

    let after = super::verify::verify(&archive, &state).await;
    assert!(after.ok, "{:?}", after.problems);
    let digests = files.iter().filter(|f| f.key.contains("/CloudTrail-Digest/")).count() as u64;
    assert_eq!(after.checked.digests, digests);
}

#[tokio::test]
async fn keys_fetch_surfaces_an_unreachable_api_and_refuses_a_bad_key() {
    let archive = MemoryBlobStore::new();
    let now = Utc::now();
    let down = FakeCloudTrail {
        fail: true,
        ..Default::default()
    };
    let err = keys::fetch(&archive, &down, &["us-east-1".to_string()], now, now)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KeyError::Storage(e) if e.kind == ErrorKind::Unreachable),
        "{err:?}"
    );
    assert_eq!(err.fault(), Fault::Failed);
    let mut bad = FakeCloudTrail::default();
    bad.keys.insert(
        "us-east-1".into(),
        vec![PublishedKey {
            der: b"not a key".to_vec(),
            fingerprint: None,
            validity_start: None,
            validity_end: None,
        }],
    );
    let err = keys::fetch(&archive, &bad, &["us-east-1".to_string()], now, now)
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::BadKey { .. }), "{err:?}");
    assert!(archived_keys(&archive).await.is_empty());
}

/// A key file as `keys import` reads it: through the files edge, then decoded.
fn read_key_file(path: &std::path::Path) -> Result<Vec<u8>, KeyError> {
    keys::key_file_der(&path.display().to_string(), trailvault::files::read_bytes(path))
}
