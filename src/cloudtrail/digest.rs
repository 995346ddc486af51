//! CloudTrail digest files and log-file validation, as pure functions over bytes:
//! parsing, the exact string CloudTrail signs, RSA PKCS#1 v1.5 / SHA-256
//! verification, public-key encodings and fingerprints, first-gzip-member hashing.

use std::io::Read;

use md5::Md5;
use rsa::pkcs1::{DecodeRsaPublicKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";
pub const HASH_ALGORITHM: &str = "SHA-256";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Digest {
    pub aws_account_id: String,
    pub digest_start_time: String,
    /// Kept as written: it is part of the signed string.
    pub digest_end_time: String,
    pub digest_s3_bucket: String,
    pub digest_s3_object: String,
    #[serde(alias = "publicKeyFingerprint")]
    pub digest_public_key_fingerprint: String,
    pub digest_signature_algorithm: String,
    #[serde(default)]
    pub previous_digest_s3_bucket: Option<String>,
    #[serde(default)]
    pub previous_digest_s3_object: Option<String>,
    #[serde(default)]
    pub previous_digest_hash_value: Option<String>,
    #[serde(default)]
    pub previous_digest_hash_algorithm: Option<String>,
    /// Required (null for the first digest of a chain); `Option` after a presence check.
    pub previous_digest_signature: Option<String>,
    #[serde(default)]
    pub log_files: Vec<LogFileEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFileEntry {
    pub s3_bucket: String,
    pub s3_object: String,
    pub hash_value: String,
    pub hash_algorithm: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("not gzip: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("not a CloudTrail digest: {0}")]
    Json(#[source] serde_json::Error),
    #[error("not a CloudTrail digest: missing field {0}")]
    MissingField(&'static str),
}

/// The decompressed JSON of a digest, its SHA-256 (hex), and the parsed document.
pub struct ParsedDigest {
    pub json: Vec<u8>,
    pub sha256: String,
    pub digest: Digest,
}

pub fn parse(gz: &[u8]) -> Result<ParsedDigest, DigestError> {
    let (json, _trailing) = gunzip_first_member(gz).map_err(DigestError::Gzip)?;
    // `previousDigestSignature` must be present even when null.
    let value: serde_json::Value = serde_json::from_slice(&json).map_err(DigestError::Json)?;
    for field in [
        "previousDigestSignature",
        "digestPublicKeyFingerprint",
        "digestS3Bucket",
        "digestS3Object",
        "digestStartTime",
        "digestEndTime",
    ] {
        let present = value.get(field).is_some()
            || (field == "digestPublicKeyFingerprint" && value.get("publicKeyFingerprint").is_some());
        if !present {
            return Err(DigestError::MissingField(field));
        }
    }
    let digest: Digest = serde_json::from_value(value).map_err(DigestError::Json)?;
    let sha256 = hex::encode(Sha256::digest(&json));
    Ok(ParsedDigest { json, sha256, digest })
}

/// The four lines CloudTrail signs, joined by `\n`, no trailing newline.
pub fn string_to_sign(d: &Digest, decompressed_sha256_hex: &str) -> String {
    format!(
        "{}\n{}/{}\n{}\n{}",
        d.digest_end_time,
        d.digest_s3_bucket,
        d.digest_s3_object,
        decompressed_sha256_hex,
        d.previous_digest_signature.as_deref().unwrap_or("null")
    )
}

/// RSASSA-PKCS1-v1_5 with SHA-256 over the UTF-8 message; `signature_hex` from S3 metadata.
pub fn verify_signature(key: &RsaPublicKey, message: &str, signature_hex: &str) -> bool {
    let Ok(sig) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig.as_slice()) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
        .verify(message.as_bytes(), &sig)
        .is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyEncoding {
    Pkcs1,
    Spki,
}

/// A public key as AWS publishes it: PKCS#1 (documented) or SubjectPublicKeyInfo (one sample).
pub fn parse_public_key(der: &[u8]) -> Option<(RsaPublicKey, KeyEncoding)> {
    RsaPublicKey::from_pkcs1_der(der)
        .map(|k| (k, KeyEncoding::Pkcs1))
        .or_else(|_| RsaPublicKey::from_public_key_der(der).map(|k| (k, KeyEncoding::Spki)))
        .ok()
}

/// Lowercase hex MD5 of DER bytes: CloudTrail's key fingerprint.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Md5::digest(der))
}

/// The fingerprints of both encodings of a key: a digest names whichever AWS used.
pub fn fingerprints(key: &RsaPublicKey) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(d) = key.to_pkcs1_der() {
        out.push(fingerprint(d.as_bytes()));
    }
    if let Ok(d) = key.to_public_key_der() {
        out.push(fingerprint(d.as_bytes()));
    }
    out
}

/// Decompresses only the first gzip member; `true` when bytes follow it (which makes a
/// CloudTrail log invalid: appended members would otherwise hide extra content).
pub fn gunzip_first_member(gz: &[u8]) -> std::io::Result<(Vec<u8>, bool)> {
    let mut decoder = flate2::bufread::GzDecoder::new(gz);
    let mut out = Vec::new();
    decoder.read_to_end(&mut out)?;
    let rest = decoder.into_inner();
    Ok((out, !rest.is_empty()))
}

/// SHA-256 (hex) of a log's first gzip member and whether data trails it.
pub fn log_hash(gz: &[u8]) -> std::io::Result<(String, bool)> {
    let (plain, trailing) = gunzip_first_member(gz)?;
    Ok((hex::encode(Sha256::digest(&plain)), trailing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::signature::{SignatureEncoding, Signer};
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn key() -> rsa::RsaPrivateKey {
        use rand::SeedableRng;
        rsa::RsaPrivateKey::new(&mut rand::rngs::StdRng::seed_from_u64(1), 1024).unwrap()
    }

    const DIGEST: &str = r#"{"awsAccountId":"111122223333","digestStartTime":"2026-11-25T09:00:00Z","digestEndTime":"2026-11-25T10:00:07Z","digestS3Bucket":"b","digestS3Object":"AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/25/x.json.gz","digestPublicKeyFingerprint":"ab","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,"previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null,"logFiles":[]}"#;

    #[test]
    fn signed_string_has_four_lines_and_null_for_a_first_digest() {
        let p = parse(&gz(DIGEST.as_bytes())).unwrap();
        let s = string_to_sign(&p.digest, &p.sha256);
        let lines: Vec<&str> = s.split('\n').collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "2026-11-25T10:00:07Z");
        assert_eq!(
            lines[1],
            "b/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/25/x.json.gz"
        );
        assert_eq!(lines[2], hex::encode(Sha256::digest(DIGEST.as_bytes())));
        assert_eq!(lines[3], "null");
        assert!(!s.ends_with('\n'));
    }

    #[test]
    fn signature_verifies_only_for_the_exact_message_and_key() {
        let k = key();
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(k.clone());
        let sig = hex::encode(signer.sign(b"message").to_bytes());
        let public = k.to_public_key();
        assert!(verify_signature(&public, "message", &sig));
        assert!(!verify_signature(&public, "messagE", &sig));
        assert!(!verify_signature(&public, "message", "zz"));
        let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024)
            .unwrap()
            .to_public_key();
        assert!(!verify_signature(&other, "message", &sig));
    }

    #[test]
    fn both_key_encodings_parse_and_have_distinct_fingerprints() {
        let public = key().to_public_key();
        let pkcs1 = public.to_pkcs1_der().unwrap();
        let spki = public.to_public_key_der().unwrap();
        assert_eq!(parse_public_key(pkcs1.as_bytes()).unwrap().1, KeyEncoding::Pkcs1);
        assert_eq!(parse_public_key(spki.as_bytes()).unwrap().1, KeyEncoding::Spki);
        assert!(parse_public_key(b"not a key").is_none());
        let fps = fingerprints(&public);
        assert_eq!(fps, vec![fingerprint(pkcs1.as_bytes()), fingerprint(spki.as_bytes())]);
        assert_ne!(fps[0], fps[1]);
    }

    #[test]
    fn only_the_first_gzip_member_counts_and_trailing_data_is_flagged() {
        let one = gz(b"{\"Records\":[]}");
        assert_eq!(
            log_hash(&one).unwrap(),
            (hex::encode(Sha256::digest(b"{\"Records\":[]}")), false)
        );
        let mut two = one.clone();
        two.extend(gz(b"{\"Records\":[{\"eventName\":\"Hidden\"}]}"));
        let (h, trailing) = log_hash(&two).unwrap();
        assert_eq!(h, hex::encode(Sha256::digest(b"{\"Records\":[]}")));
        assert!(trailing);
        let mut junk = one;
        junk.push(0);
        assert!(log_hash(&junk).unwrap().1);
    }

    #[test]
    fn missing_previous_signature_field_is_malformed() {
        let without = DIGEST.replace(",\"previousDigestSignature\":null", "");
        assert!(parse(&gz(without.as_bytes())).is_err());
        assert!(parse(b"plain").is_err());
    }
}
