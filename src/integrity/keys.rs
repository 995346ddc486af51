//! The archived CloudTrail public keys: `trailvault keys import` writes them,
//! `verify` reads them (one listing, then a map from fingerprint to key per region).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use rsa::RsaPublicKey;
use serde::Serialize;

use crate::archive::{public_key_name, PUBLIC_KEYS_PREFIX};
use crate::cloudtrail::digest::{fingerprint, fingerprints, parse_public_key, KeyEncoding};
use crate::cloudtrail_api::PublicKeySource;
use crate::records::rfc3339;
use futures::TryStreamExt;

use crate::storage::{read_all, BlobStore, BlobStoreExt, Condition, ErrorKind, PutOptions, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    BadKey { path: String, reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl crate::fault::Classify for KeyError {
    fn fault(&self) -> crate::fault::Fault {
        match self {
            KeyError::BadKey { .. } => crate::fault::Fault::Usage,
            KeyError::Storage(_) => crate::fault::Fault::Failed,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportedKey {
    pub file: String,
    pub region: String,
    pub fingerprint: String,
    pub encoding: KeyEncoding,
    pub blob: String,
    /// False when the same key was already archived.
    pub new: bool,
}

/// A key file's bytes (`read` is what reading it gave): DER, or PEM around DER for
/// convenience. `path` names it in errors.
pub fn key_file_der(path: &str, read: std::io::Result<Vec<u8>>) -> Result<Vec<u8>, KeyError> {
    let bad = |reason: String| KeyError::BadKey {
        path: path.to_string(),
        reason,
    };
    let bytes = read.map_err(|e| bad(e.to_string()))?;
    if bytes.starts_with(b"-----BEGIN") {
        let text = String::from_utf8_lossy(&bytes);
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::Engine;
        return base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| bad(format!("PEM body is not base64: {e}")));
    }
    Ok(bytes)
}

pub async fn import(archive: &dyn BlobStore, region: &str, file: &str, der: Vec<u8>) -> Result<ImportedKey, KeyError> {
    store(
        archive,
        region,
        file,
        der,
        BTreeMap::from([("origin".to_string(), "import".to_string())]),
    )
    .await
}

/// `ListPublicKeys` for each region over `[start, end]`, every key archived with the
/// fingerprint and validity AWS states.
pub async fn fetch(
    archive: &dyn BlobStore,
    api: &dyn PublicKeySource,
    regions: &[String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<ImportedKey>, KeyError> {
    let mut out = Vec::new();
    for region in regions {
        for k in api.list_public_keys(region, start, end).await? {
            let mut meta = BTreeMap::from([("origin".to_string(), "ListPublicKeys".to_string())]);
            if let Some(fp) = &k.fingerprint {
                meta.insert("aws_fingerprint".into(), fp.to_ascii_lowercase());
            }
            if let Some(t) = k.validity_start {
                meta.insert("validity_start".into(), rfc3339(t));
            }
            if let Some(t) = k.validity_end {
                meta.insert("validity_end".into(), rfc3339(t));
            }
            out.push(store(archive, region, &format!("ListPublicKeys {region}"), k.der, meta).await?);
        }
    }
    Ok(out)
}

async fn store(
    archive: &dyn BlobStore,
    region: &str,
    file: &str,
    der: Vec<u8>,
    mut metadata: BTreeMap<String, String>,
) -> Result<ImportedKey, KeyError> {
    let (_, encoding) = parse_public_key(&der).ok_or_else(|| KeyError::BadKey {
        path: file.to_string(),
        reason: "not an RSA public key in DER (PKCS#1 or SubjectPublicKeyInfo)".into(),
    })?;
    let fp = fingerprint(&der);
    let name = public_key_name(region, &fp);
    metadata.insert("encoding".to_string(), format!("{encoding:?}").to_ascii_lowercase());
    metadata.insert("imported_at".to_string(), rfc3339(Utc::now()));
    let opts = PutOptions {
        content_type: Some("application/octet-stream".into()),
        content_md5: Some(Md5::digest(&der).into()),
        metadata,
        condition: Condition::IfNoneMatch,
        lease_id: None,
    };
    let new = match archive.put(&name, der.into(), opts).await {
        Ok(_) => true,
        // Same name means same MD5 of the same bytes: already archived.
        Err(e) if e.kind == ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e.into()),
    };
    Ok(ImportedKey {
        file: file.to_string(),
        region: region.to_string(),
        fingerprint: fp,
        encoding,
        blob: name,
        new,
    })
}

/// Every archived key, by region, under each fingerprint a digest may name.
#[derive(Default)]
pub struct KeyRing {
    by_region: HashMap<String, HashMap<String, RsaPublicKey>>,
}

impl KeyRing {
    pub async fn load(archive: &dyn BlobStore) -> Result<KeyRing, StorageError> {
        let mut ring = KeyRing::default();
        let mut blobs = archive.list(PUBLIC_KEYS_PREFIX);
        while let Some(blob) = blobs.try_next().await? {
            let Some(rest) = blob.name.strip_prefix(PUBLIC_KEYS_PREFIX) else {
                continue;
            };
            let Some((region, _)) = rest.split_once('/') else {
                continue;
            };
            let Some((der, info)) = read_all(archive, &blob.name).await? else {
                continue;
            };
            let Some((key, _)) = parse_public_key(&der) else {
                tracing::warn!(blob = blob.name, "archived public key does not parse; ignored");
                continue;
            };
            let entry = ring.by_region.entry(region.to_string()).or_default();
            for fp in fingerprints(&key).into_iter().chain([fingerprint(&der)]) {
                entry.insert(fp, key.clone());
            }
            if let Some(aws_fp) = info.metadata.get("aws_fingerprint") {
                entry.insert(aws_fp.to_ascii_lowercase(), key.clone());
            }
        }
        Ok(ring)
    }

    pub fn get(&self, region: &str, fingerprint: &str) -> Option<&RsaPublicKey> {
        self.by_region.get(region)?.get(&fingerprint.to_ascii_lowercase())
    }

    pub fn is_empty(&self) -> bool {
        self.by_region.is_empty()
    }
}
