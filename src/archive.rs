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

/// What the verified, create-only copy did with one object: sync's and the events' (one
/// copy path, so one outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOutcome {
    Copied {
        bytes: u64,
    },
    /// The archive already holds these exact bytes.
    AlreadyArchived,
    /// The archive holds different bytes under this key; it was left untouched.
    Conflict {
        archived_sha256: String,
        source_sha256: String,
    },
}

pub const META_SHA256: &str = "sha256";
pub const META_SOURCE_BUCKET: &str = "source_bucket";
pub const META_SOURCE_KEY: &str = "source_key";
pub const META_SOURCE_ETAG: &str = "source_etag";
pub const META_SOURCE_LAST_MODIFIED: &str = "source_last_modified";
pub const META_SOURCE_SIZE: &str = "source_size";
pub const META_SOURCE_CONTENT_ENCODING: &str = "source_content_encoding";
/// Set to `percent` when `source_key` holds the key percent-encoded: metadata travels in
/// HTTP headers, which carry printable ASCII only (a non-ASCII or control character
/// would be refused by Azure, or mangled and fail a SharedKey signature).
pub const META_SOURCE_KEY_ENCODING: &str = "source_key_encoding";

/// A metadata value as it can travel in an HTTP header: printable ASCII, no edge spaces.
fn header_safe(v: &str) -> bool {
    v.bytes().all(|b| (0x20..0x7f).contains(&b)) && v.trim() == v
}

/// `%XX` for every byte outside printable ASCII, for `%` itself and for spaces.
pub fn percent_encode_header(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if (0x21..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The original S3 key recorded in a blob's metadata, decoded.
pub fn source_key_of(metadata: &BTreeMap<String, String>) -> Option<String> {
    let v = metadata.get(META_SOURCE_KEY)?;
    match metadata.get(META_SOURCE_KEY_ENCODING).map(String::as_str) {
        Some("percent") => percent_decode(v),
        _ => Some(v.clone()),
    }
}

/// S3 user-metadata names of a digest's signature and the archive names they are
/// kept under (Azure metadata names must be C# identifiers: no hyphens).
pub const SIGNATURE_METADATA: [(&str, &str); 3] = [
    ("signature", "ct_signature"),
    ("signature-algorithm", "ct_signature_algorithm"),
    ("backfill-generation-timestamp", "ct_backfill_generation_timestamp"),
];

/// Azure's limit on a blob name, in characters.
pub const MAX_BLOB_NAME_CHARS: usize = 1024;

/// Why a key cannot be archived under its name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveNameError {
    #[error("an empty key cannot be archived")]
    EmptyKey,
    #[error("the blob name {source_name}/{{key}} would be {chars} characters; Azure allows {MAX_BLOB_NAME_CHARS}")]
    TooLong { source_name: String, chars: usize },
}

/// An archived file's blob name, `{source}/{original S3 key}`, checked once against what
/// the archive can hold. The key is kept verbatim: a key the archive cannot hold fails,
/// named, and is never renamed. Parsing a listed name back gives the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArchiveName {
    name: String,
    /// Where the key starts in `name` (after `{source}/`).
    key_at: usize,
}

impl ArchiveName {
    /// The name `key` of `source` is archived under, or why the archive cannot hold it.
    pub fn new(source: &str, key: &str) -> Result<ArchiveName, ArchiveNameError> {
        if key.is_empty() {
            return Err(ArchiveNameError::EmptyKey);
        }
        let name = format!("{source}/{key}");
        let chars = name.chars().count();
        if chars > MAX_BLOB_NAME_CHARS {
            return Err(ArchiveNameError::TooLong {
                source_name: source.to_string(),
                chars,
            });
        }
        Ok(ArchiveName {
            key_at: source.len() + 1,
            name,
        })
    }

    /// A listed blob of `source`, or None when it is not one of that source's files.
    pub fn of_blob(source: &str, blob_name: &str) -> Option<ArchiveName> {
        let key = blob_name.strip_prefix(source)?.strip_prefix('/')?;
        ArchiveName::new(source, key).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The original S3 key.
    pub fn key(&self) -> &str {
        &self.name[self.key_at..]
    }

    pub fn source(&self) -> &str {
        &self.name[..self.key_at - 1]
    }
}

impl std::fmt::Display for ArchiveName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl From<ArchiveName> for String {
    fn from(name: ArchiveName) -> String {
        name.name
    }
}

impl std::ops::Deref for ArchiveName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

/// Where a folder restore writes files before they are verified and linked into place;
/// the tool's own, so no key may lead into it.
pub const PARTIAL_DIR: &str = ".trailvault-partial";

/// The longest file name (one path segment, in bytes) common filesystems hold.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// The relative path, as segments, at which a folder holds `key` verbatim (`DIR/{key}`),
/// or why no filesystem path can hold it verbatim. Canonical keys only: no leading or
/// trailing `/`, no empty, `.` or `..` segment, no NUL, no segment over 255 bytes, and
/// nothing under the tool's partial folder. Distinct accepted keys give distinct paths
/// (the segments are the key split on `/`), and joining them with `/` gives the key back.
pub fn local_segments(key: &str) -> Result<Vec<&str>, &'static str> {
    if key.is_empty() {
        return Err("an empty key has no path");
    }
    if key.contains('\0') {
        return Err("a filesystem cannot hold a NUL in a name");
    }
    let segments: Vec<&str> = key.split('/').collect();
    for s in &segments {
        match *s {
            "" => {
                return Err(
                    "the key has an empty path segment (leading, trailing or doubled /), which a filesystem collapses",
                )
            }
            "." | ".." => return Err("the key has a . or .. path segment, which a filesystem resolves"),
            s if s.len() > MAX_SEGMENT_BYTES => return Err("a path segment is longer than 255 bytes"),
            _ => {}
        }
    }
    if segments[0] == PARTIAL_DIR {
        return Err("the key leads into the restore's own partial folder");
    }
    Ok(segments)
}

/// The path a key lands on where `//`, `/./` and leading or trailing `/` collapse (as
/// on a filesystem). Equal to the key exactly when the key is canonical.
pub fn collapsed_key(key: &str) -> String {
    key.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether `key` is in canonical form (see [`collapsed_key`]).
pub fn is_canonical_key(key: &str) -> bool {
    collapsed_key(key) == key
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
    if header_safe(key) {
        m.insert(META_SOURCE_KEY.into(), key.to_string());
    } else {
        m.insert(META_SOURCE_KEY.into(), percent_encode_header(key));
        m.insert(META_SOURCE_KEY_ENCODING.into(), "percent".into());
    }
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
    fn keys_that_headers_cannot_carry_are_percent_encoded_in_metadata() {
        let head = SourceHead::default();
        for key in [
            "plain/key.json.gz",
            "tab\there",
            "caf\u{e9}/\u{1f600}",
            "50% off",
            " edge ",
        ] {
            let m = blob_metadata("b", key, &head, "ee");
            assert!(m.values().all(|v| header_safe(v)), "{m:?}");
            assert_eq!(source_key_of(&m).as_deref(), Some(key));
        }
        let m = blob_metadata("b", "plain/key.json.gz", &head, "ee");
        assert_eq!(m["source_key"], "plain/key.json.gz");
        assert!(!m.contains_key(META_SOURCE_KEY_ENCODING));
    }

    #[test]
    fn etag_md5_detection() {
        assert!(etag_is_md5("d41d8cd98f00b204e9800998ecf8427e", false));
        assert!(!etag_is_md5("d41d8cd98f00b204e9800998ecf8427e", true));
        assert!(!etag_is_md5("d41d8cd98f00b204e9800998ecf8427e-3", false));
    }

    #[test]
    fn non_canonical_keys_collapse_onto_their_canonical_twin() {
        assert_eq!(collapsed_key("corp//AWSLogs/x"), "corp/AWSLogs/x");
        assert_eq!(collapsed_key("/corp/./AWSLogs/x"), "corp/AWSLogs/x");
        assert!(is_canonical_key("a/b\tc/%41/\u{e9}"));
        assert!(!is_canonical_key("a//b"));
        assert!(local_segments("a//b").is_err());
        assert!(local_segments("/a").is_err());
        assert!(local_segments("a/./b").is_err());
        assert!(local_segments("a/../b").is_err());
        assert!(local_segments(".trailvault-partial/x").is_err());
        assert_eq!(local_segments("a/b\tc").unwrap(), vec!["a", "b\tc"]);
    }

    #[test]
    fn blob_names_over_azure_limit_are_refused() {
        assert!(ArchiveName::new("s", &"k".repeat(1022)).is_ok());
        assert!(ArchiveName::new("s", &"k".repeat(1023))
            .unwrap_err()
            .to_string()
            .contains("1025"));
        assert!(ArchiveName::new("s", "").is_err());
        let name = ArchiveName::new("src", "AWSLogs/a/b").unwrap();
        assert_eq!(
            (name.as_str(), name.source(), name.key()),
            ("src/AWSLogs/a/b", "src", "AWSLogs/a/b")
        );
        assert_eq!(ArchiveName::of_blob("src", "src/AWSLogs/a/b"), Some(name));
        assert_eq!(ArchiveName::of_blob("src", "srcx/AWSLogs/a/b"), None);
        assert_eq!(ArchiveName::of_blob("src", "src/"), None);
    }

    proptest::proptest! {
        /// key -> blob name -> key round-trips for every key; key -> local path is
        /// injective and round-trips wherever a path exists, and a path exists for
        /// every canonical key a filesystem can hold.
        #[test]
        fn key_blob_name_and_local_path_map_one_to_one(
            a in "(/|\\.|[a-zA-Z0-9]|\t|%|[\u{80}-\u{10ffff}]|AWSLogs){0,40}",
            b in "(/|\\.|[a-zA-Z0-9]|\t|%|[\u{80}-\u{10ffff}]|AWSLogs){0,40}",
            source in "[a-z0-9-]{1,12}",
        ) {
            for k in [&a, &b] {
                if let Ok(name) = ArchiveName::new(&source, k) {
                    let back = ArchiveName::of_blob(&source, name.as_str());
                    proptest::prop_assert_eq!(back.as_ref().map(ArchiveName::key), Some(k.as_str()));
                    proptest::prop_assert_eq!(back.as_ref().map(ArchiveName::source), Some(source.as_str()));
                } else {
                    proptest::prop_assert!(k.is_empty());
                }
                if let Ok(segs) = local_segments(k) {
                    proptest::prop_assert_eq!(segs.join("/"), k.clone());
                    proptest::prop_assert!(is_canonical_key(k));
                    let path: std::path::PathBuf = segs.iter().collect();
                    let back: Vec<String> = path
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    proptest::prop_assert_eq!(back.join("/"), k.clone());
                } else if !k.is_empty() && is_canonical_key(k) {
                    proptest::prop_assert!(k.split('/').any(|s| s == ".." || s == PARTIAL_DIR || s.len() > MAX_SEGMENT_BYTES));
                }
            }
            if a != b {
                proptest::prop_assert_ne!(ArchiveName::new(&source, &a).ok(), ArchiveName::new(&source, &b).ok());
                if let (Ok(pa), Ok(pb)) = (local_segments(&a), local_segments(&b)) {
                    let pa: std::path::PathBuf = pa.iter().collect();
                    let pb: std::path::PathBuf = pb.iter().collect();
                    proptest::prop_assert_ne!(pa, pb);
                }
            }
        }
    }
}
