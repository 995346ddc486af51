//! The archive's layout, as the contract fixes it: blob names and metadata names.
//! Pure knowledge: sync writes these, verify and restore read them; storage carries
//! [`SourceHead`] from an S3 GET to here.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

/// Headers and user metadata of a source object, from its GET.
#[derive(Debug, Clone, Default)]
pub struct SourceHead {
    pub size: u64,
    pub etag: String,
    pub last_modified: Option<DateTime<Utc>>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// User metadata without the `x-amz-meta-` prefix (`signature`, `signature-algorithm`, ...).
    pub metadata: BTreeMap<String, String>,
    /// SSE-KMS or SSE-C: the ETag is then not an MD5 of the bytes.
    pub kms_or_customer_key: bool,
}

pub const META_SHA256: &str = "sha256";
pub const META_SOURCE_BUCKET: &str = "source_bucket";
pub const META_SOURCE_KEY: &str = "source_key";
pub const META_SOURCE_ETAG: &str = "source_etag";
pub const META_SOURCE_LAST_MODIFIED: &str = "source_last_modified";
pub const META_SOURCE_SIZE: &str = "source_size";
pub const META_SOURCE_CONTENT_ENCODING: &str = "source_content_encoding";

/// S3 user-metadata names of a digest's signature and the archive names they are
/// kept under (Azure metadata names must be C# identifiers: no hyphens).
pub const SIGNATURE_METADATA: [(&str, &str); 3] = [
    ("signature", "ct_signature"),
    ("signature-algorithm", "ct_signature_algorithm"),
    ("backfill-generation-timestamp", "ct_backfill_generation_timestamp"),
];

/// `{source}/{original S3 key}`
pub fn blob_name(source: &str, key: &str) -> String {
    format!("{source}/{key}")
}

/// The archive prefix that mirrors an S3 key prefix of one source.
pub fn blob_prefix(source: &str, key_prefix: &str) -> String {
    format!("{source}/{key_prefix}")
}

/// The metadata written with an archived file, in the upload itself (WORM-safe).
pub fn blob_metadata(bucket: &str, key: &str, head: &SourceHead, sha256_hex: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(META_SHA256.into(), sha256_hex.to_string());
    m.insert(META_SOURCE_BUCKET.into(), bucket.to_string());
    m.insert(META_SOURCE_KEY.into(), key.to_string());
    m.insert(META_SOURCE_ETAG.into(), head.etag.clone());
    if let Some(t) = head.last_modified {
        m.insert(
            META_SOURCE_LAST_MODIFIED.into(),
            t.to_rfc3339_opts(SecondsFormat::Secs, true),
        );
    }
    m.insert(META_SOURCE_SIZE.into(), head.size.to_string());
    if let Some(enc) = head.content_encoding.as_deref().filter(|e| !e.is_empty()) {
        m.insert(META_SOURCE_CONTENT_ENCODING.into(), enc.to_string());
    }
    for (s3_name, archive_name) in SIGNATURE_METADATA {
        if let Some(v) = head.metadata.get(s3_name) {
            m.insert(archive_name.into(), v.clone());
        }
    }
    m
}

/// Whether an S3 ETag is the MD5 of the object's bytes: single-part uploads without
/// SSE-KMS or SSE-C. Multipart ETags carry `-N`; KMS ETags look like MD5s but are not.
pub fn etag_is_md5(etag: &str, encrypted_with_kms_or_customer_key: bool) -> bool {
    !encrypted_with_kms_or_customer_key && etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// CloudTrail public keys live beside the logs, so validation needs nothing from AWS.
pub const PUBLIC_KEYS_PREFIX: &str = "_trailvault/public-keys/";

/// `_trailvault/public-keys/{region}/{fingerprint}.der`
pub fn public_key_name(region: &str, fingerprint: &str) -> String {
    format!("{PUBLIC_KEYS_PREFIX}{region}/{fingerprint}.der")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_signature_metadata_is_renamed_without_hyphens() {
        let mut head = SourceHead {
            size: 10,
            etag: "abc".into(),
            content_encoding: Some("gzip".into()),
            ..Default::default()
        };
        head.metadata.insert("signature".into(), "00ff".into());
        head.metadata
            .insert("signature-algorithm".into(), "SHA256withRSA".into());
        let m = blob_metadata("b", "k", &head, "ee");
        assert_eq!(m["ct_signature"], "00ff");
        assert_eq!(m["ct_signature_algorithm"], "SHA256withRSA");
        assert_eq!(m["source_content_encoding"], "gzip");
        assert!(m.keys().all(|k| !k.contains('-')));
        assert!(!m.contains_key("ct_backfill_generation_timestamp"));
    }

    #[test]
    fn etag_md5_detection() {
        assert!(etag_is_md5("d41d8cd98f00b204e9800998ecf8427e", false));
        assert!(!etag_is_md5("d41d8cd98f00b204e9800998ecf8427e", true));
        assert!(!etag_is_md5("d41d8cd98f00b204e9800998ecf8427e-3", false));
    }
}
