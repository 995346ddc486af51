//! One behavioural suite for every `BlobStore` and `Source`: the in-memory stores run
//! it in milliseconds, Azurite and moto run it for real, so the fakes cannot drift.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use md5::{Digest, Md5};
use trailvault::storage::{
    read_all, BlobStore, BlobStoreExt, Condition, ErrorKind, PutOptions, Source, SourceExt, StateBlobStore,
};

fn md5(b: &[u8]) -> [u8; 16] {
    Md5::digest(b).into()
}

pub async fn blob_store_contract(store: &dyn StateBlobStore, prefix: &str) {
    store.ensure_container().await.unwrap();
    store.ensure_container().await.expect("ensure_container is idempotent");
    let name = format!("{prefix}/a/b/file.json.gz");
    let mut meta = BTreeMap::new();
    meta.insert("sha256".to_string(), "ab".repeat(32));
    meta.insert("source_key".to_string(), "a/b/file.json.gz".to_string());
    let create = PutOptions {
        content_type: Some("application/json".into()),
        content_md5: Some(md5(b"hello")),
        metadata: meta.clone(),
        condition: Condition::IfNoneMatch,
        lease_id: None,
    };

    assert!(store.head(&name).await.unwrap().is_none());
    assert_eq!(store.get(&name).await.err().map(|e| e.kind), Some(ErrorKind::NotFound));
    let etag = store
        .put(&name, Bytes::from_static(b"hello"), create.clone())
        .await
        .unwrap();
    let second = PutOptions {
        content_md5: Some(md5(b"other")),
        ..create.clone()
    };
    let again = store
        .put(&name, Bytes::from_static(b"other"), second)
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::AlreadyExists, "{again}");
    let (bytes, info) = read_all(store, &name).await.unwrap().unwrap();
    assert_eq!(&bytes[..], b"hello", "create-only must not overwrite");
    assert_eq!(info.metadata, meta);
    assert_eq!(info.content_md5, Some(md5(b"hello")));
    let head = store.head(&name).await.unwrap().unwrap();
    assert_eq!(
        (head.size, head.etag.clone(), head.content_type.as_deref()),
        (5, etag.clone(), Some("application/json"))
    );

    let wrong = PutOptions {
        content_md5: Some(md5(b"not these bytes")),
        ..create.clone()
    };
    let err = store
        .put(&format!("{prefix}/wrong"), Bytes::from_static(b"hello"), wrong)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Integrity, "{err}");
    assert!(store.head(&format!("{prefix}/wrong")).await.unwrap().is_none());

    // If-Match: only over the version read.
    let state = format!("{prefix}/state.json");
    let v1 = store
        .put(
            &state,
            Bytes::from_static(b"1"),
            PutOptions {
                condition: Condition::IfNoneMatch,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v2 = store
        .put(
            &state,
            Bytes::from_static(b"2"),
            PutOptions {
                condition: Condition::IfMatch(v1.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stale = store
        .put(
            &state,
            Bytes::from_static(b"3"),
            PutOptions {
                condition: Condition::IfMatch(v1),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(stale.kind, ErrorKind::PreconditionFailed, "{stale}");
    assert_ne!(v2, "");

    // Staged blocks: each checked, then committed create-only with metadata.
    let big = format!("{prefix}/big");
    let (b1, b2) = (Bytes::from(vec![1u8; 1000]), Bytes::from(vec![2u8; 500]));
    let bad = store
        .stage_block(&big, b"n-000000", b1.clone(), md5(b"x"))
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::Integrity, "{bad}");
    store
        .stage_block(&big, b"n-000000", b1.clone(), md5(&b1))
        .await
        .unwrap();
    store
        .stage_block(&big, b"n-000001", b2.clone(), md5(&b2))
        .await
        .unwrap();
    let whole = [b1.to_vec(), b2.to_vec()].concat();
    let opts = PutOptions {
        content_md5: Some(md5(&whole)),
        metadata: meta.clone(),
        condition: Condition::IfNoneMatch,
        ..Default::default()
    };
    store
        .commit_blocks(&big, vec![b"n-000000".to_vec(), b"n-000001".to_vec()], opts.clone())
        .await
        .unwrap();
    let (bytes, info) = read_all(store, &big).await.unwrap().unwrap();
    assert_eq!(bytes.to_vec(), whole);
    assert_eq!(info.metadata, meta);
    store
        .stage_block(&big, b"m-000000", b2.clone(), md5(&b2))
        .await
        .unwrap();
    let over = store
        .commit_blocks(&big, vec![b"m-000000".to_vec()], opts)
        .await
        .unwrap_err();
    assert_eq!(over.kind, ErrorKind::AlreadyExists, "{over}");

    // Deleting (state only) is idempotent.
    store.delete(&state).await.unwrap();
    store.delete(&state).await.unwrap();
    assert!(store.head(&state).await.unwrap().is_none());

    // Listing by prefix, with metadata.
    let listed = store.list_all(&format!("{prefix}/a/")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, name);
    assert_eq!(listed[0].metadata, meta);
    assert_eq!(listed[0].size, 5);

    // A listing longer than a page walks every page, in name order, once each (the
    // callers run these stores with pages of a few blobs).
    let paged: Vec<String> = (0..7).map(|i| format!("{prefix}/pages/{i:02}")).collect();
    for name in paged.iter().rev() {
        store
            .put(name, Bytes::from_static(b"p"), PutOptions::default())
            .await
            .unwrap();
    }
    let walked: Vec<String> = store
        .list(&format!("{prefix}/pages/"))
        .map_ok(|b| b.name)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(walked, paged);
    assert_eq!(store.count(&format!("{prefix}/pages/")).await.unwrap(), 7);
    assert_eq!(store.count(&format!("{prefix}/pages/none/")).await.unwrap(), 0);

    // Leases fence writes to the leased blob.
    let lock = format!("{prefix}/lock");
    store.put(&lock, Bytes::new(), PutOptions::default()).await.unwrap();
    assert!(!store.head(&lock).await.unwrap().unwrap().leased);
    let lease = store.acquire_lease(&lock, 15).await.unwrap();
    assert!(store.head(&lock).await.unwrap().unwrap().leased);
    assert_eq!(
        store.acquire_lease(&lock, 15).await.unwrap_err().kind,
        ErrorKind::LeaseHeld
    );
    let unleased = store
        .put(&lock, Bytes::from_static(b"x"), PutOptions::default())
        .await
        .unwrap_err();
    assert_eq!(unleased.kind, ErrorKind::PreconditionFailed, "{unleased}");
    store
        .put(
            &lock,
            Bytes::from_static(b"x"),
            PutOptions {
                lease_id: Some(lease.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.renew_lease(&lock, &lease).await.unwrap();
    assert_eq!(
        store
            .renew_lease(&lock, "00000000-0000-0000-0000-000000000000")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::PreconditionFailed
    );
    store.release_lease(&lock, &lease).await.unwrap();
    assert!(!store.head(&lock).await.unwrap().unwrap().leased);
    let again = store.acquire_lease(&lock, 15).await.unwrap();
    store.release_lease(&lock, &again).await.unwrap();
}

#[async_trait]
pub trait Bucket: Send + Sync {
    async fn put_object(&self, key: &str, body: Vec<u8>, metadata: BTreeMap<String, String>);
}

#[async_trait]
impl Bucket for trailvault::storage::memory::MemorySource {
    async fn put_object(&self, key: &str, body: Vec<u8>, metadata: BTreeMap<String, String>) {
        self.put(key, body.into(), metadata, chrono::Utc::now());
    }
}

pub async fn source_contract(src: &dyn Source, bucket: &dyn Bucket) {
    let mut meta = BTreeMap::new();
    meta.insert("signature".to_string(), "00ff".to_string());
    meta.insert("signature-algorithm".to_string(), "SHA256withRSA".to_string());
    for key in [
        "p/AWSLogs/1/a",
        "p/AWSLogs/1/b",
        "p/AWSLogs/2/c",
        "p/AWSLogs/2/d/e",
        "q/other",
    ] {
        bucket.put_object(key, key.as_bytes().to_vec(), meta.clone()).await;
    }
    let keys = |v: Vec<trailvault::storage::SourceObject>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
    // More keys than a page, and a start-after that lands inside the first page.
    assert_eq!(
        keys(src.list("p/", None).try_collect::<Vec<_>>().await.unwrap()),
        ["p/AWSLogs/1/a", "p/AWSLogs/1/b", "p/AWSLogs/2/c", "p/AWSLogs/2/d/e"]
    );
    assert_eq!(
        keys(
            src.list("p/", Some("p/AWSLogs/1/b"))
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
        ),
        ["p/AWSLogs/2/c", "p/AWSLogs/2/d/e"]
    );
    assert_eq!(
        src.list_folders("p/AWSLogs/").await.unwrap(),
        ["p/AWSLogs/1/", "p/AWSLogs/2/"]
    );
    assert_eq!(src.list_folders("p/AWSLogs/2/").await.unwrap(), ["p/AWSLogs/2/d/"]);
    let listed = src.list("p/AWSLogs/1/a", None).try_collect::<Vec<_>>().await.unwrap();
    assert_eq!(listed[0].size, 13);
    assert_eq!(listed[0].etag, hex::encode(md5(b"p/AWSLogs/1/a")));

    let got = src.get("p/AWSLogs/1/a").await.unwrap();
    assert_eq!(got.head.metadata.get("signature").map(String::as_str), Some("00ff"));
    assert_eq!(
        got.head.metadata.get("signature-algorithm").map(String::as_str),
        Some("SHA256withRSA")
    );
    assert_eq!(got.head.size, 13);
    let body: Vec<Bytes> = got.body.try_collect().await.unwrap();
    assert_eq!(body.concat(), b"p/AWSLogs/1/a");
    assert_eq!(
        src.get("p/missing").await.err().map(|e| e.kind),
        Some(ErrorKind::NotFound)
    );
}

/// The service's replay cache, shared by instances through the state container.
pub async fn replay_store_contract(state: &dyn BlobStore) {
    use trailvault::federation::replay::remember_in_state;
    let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let until = t("2026-11-25T10:05:00Z");
    assert!(remember_in_state(state, "_a1", until, t("2026-11-25T10:00:00Z"))
        .await
        .unwrap());
    assert!(
        !remember_in_state(state, "_a1", until, t("2026-11-25T10:01:00Z"))
            .await
            .unwrap(),
        "replay accepted"
    );
    assert!(remember_in_state(state, "_a2", until, t("2026-11-25T10:01:00Z"))
        .await
        .unwrap());
    // After the assertion's window an entry is taken over (the assertion itself is expired then).
    assert!(
        remember_in_state(state, "_a1", t("2026-11-25T12:00:00Z"), t("2026-11-25T11:00:00Z"))
            .await
            .unwrap()
    );
    assert!(
        !remember_in_state(state, "_a1", t("2026-11-25T12:00:00Z"), t("2026-11-25T11:30:00Z"))
            .await
            .unwrap()
    );
    let names: Vec<String> = state
        .list_all("saml/seen/")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.iter().all(|n| !n.contains("_a")),
        "IDs are hashed into names: {names:?}"
    );
}
