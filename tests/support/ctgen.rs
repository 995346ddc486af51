//! Generates CloudTrail-shaped data: gzip JSON log files with realistic records, and
//! hourly digest files that list them (hash of the decompressed log, chained by
//! previousDigest*), with signature metadata as S3 carries it. Deterministic per seed.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Trail {
    pub bucket: String,
    /// The trail's key prefix, without slashes; empty for none.
    pub prefix: String,
    pub org: Option<String>,
    pub name: String,
    pub home_region: String,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub days: Vec<NaiveDate>,
    /// Log files per (account, region, day), spread over the first hours of the day.
    pub logs_per_day: usize,
    /// Digests with no log files after each day's last busy hour.
    pub empty_digests_per_day: usize,
    pub seed: u64,
    /// Signs digests as CloudTrail does; without it signatures are random bytes.
    pub signer: Option<std::sync::Arc<rsa::RsaPrivateKey>>,
    /// Logging stopped and started before this day (index): the chain starts afresh.
    pub restart_on_day: Option<usize>,
    /// A late log delivered after its hour's digest, vouched for by a backfill digest.
    pub backfill: bool,
}

/// A 2048-bit test key, the same for a given seed.
pub fn test_key(seed: u64) -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut StdRng::seed_from_u64(seed), 2048).unwrap()
}

/// DER (PKCS#1) of the public key, as CloudTrail publishes it, and its fingerprint.
pub fn public_der(key: &rsa::RsaPrivateKey) -> (Vec<u8>, String) {
    use rsa::pkcs1::EncodeRsaPublicKey;
    let der = key.to_public_key().to_pkcs1_der().unwrap().as_bytes().to_vec();
    let fp = hex::encode(md5::Md5::digest(&der));
    (der, fp)
}

/// CloudTrail's signature over a digest: hex RSA PKCS#1 v1.5 SHA-256 of the four-line string.
pub fn sign_digest(key: &rsa::RsaPrivateKey, json: &[u8]) -> String {
    use rsa::signature::{SignatureEncoding, Signer};
    let doc: serde_json::Value = serde_json::from_slice(json).unwrap();
    let message = format!(
        "{}\n{}/{}\n{}\n{}",
        doc["digestEndTime"].as_str().unwrap(),
        doc["digestS3Bucket"].as_str().unwrap(),
        doc["digestS3Object"].as_str().unwrap(),
        hex::encode(Sha256::digest(json)),
        doc["previousDigestSignature"].as_str().unwrap_or("null")
    );
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    hex::encode(signer.sign(message.as_bytes()).to_bytes())
}

/// A generated log before compression: key, JSON, delivery time.
type PlainLog = (String, Vec<u8>, DateTime<Utc>);

#[derive(Debug, Clone)]
pub struct GenFile {
    pub key: String,
    pub body: Vec<u8>,
    pub metadata: BTreeMap<String, String>,
    pub time: DateTime<Utc>,
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn hex_of(rng: &mut StdRng, bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rng.gen::<u8>())).collect()
}

fn alnum(rng: &mut StdRng, n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

fn uuid(rng: &mut StdRng) -> String {
    let h = hex_of(rng, 16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Trail {
    pub fn sample(bucket: &str, seed: u64) -> Trail {
        Trail {
            bucket: bucket.into(),
            prefix: String::new(),
            org: None,
            name: "management-events".into(),
            home_region: "us-east-1".into(),
            accounts: vec!["111122223333".into(), "444455556666".into()],
            regions: vec!["us-east-1".into(), "eu-west-1".into()],
            days: vec![
                NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
                NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            ],
            logs_per_day: 3,
            empty_digests_per_day: 1,
            seed,
            signer: None,
            restart_on_day: None,
            backfill: false,
        }
    }

    fn root(&self, account: &str) -> String {
        let mut s = if self.prefix.is_empty() {
            "AWSLogs/".to_string()
        } else {
            format!("{}/AWSLogs/", self.prefix)
        };
        if let Some(o) = &self.org {
            s.push_str(o);
            s.push('/');
        }
        s.push_str(account);
        s.push('/');
        s
    }

    pub fn log_key(&self, account: &str, region: &str, t: DateTime<Utc>, unique: &str) -> String {
        format!(
            "{}CloudTrail/{region}/{}/{account}_CloudTrail_{region}_{}_{unique}.json.gz",
            self.root(account),
            t.format("%Y/%m/%d"),
            t.format("%Y%m%dT%H%MZ")
        )
    }

    pub fn digest_key(&self, account: &str, region: &str, end: DateTime<Utc>) -> String {
        self.digest_key_kind(account, region, end, "")
    }

    fn digest_key_kind(&self, account: &str, region: &str, end: DateTime<Utc>, suffix: &str) -> String {
        format!(
            "{}CloudTrail-Digest/{region}/{}/{account}_CloudTrail-Digest_{region}_{}_{}_{}{suffix}.json.gz",
            self.root(account),
            end.format("%Y/%m/%d"),
            self.name,
            self.home_region,
            end.format("%Y%m%dT%H%M%SZ")
        )
    }

    /// Every log and digest file of the trail.
    pub fn generate(&self) -> Vec<GenFile> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut out = Vec::new();
        for account in &self.accounts {
            for region in &self.regions {
                let mut previous: Option<(String, String, String)> = None; // key, signature, sha of digest json
                for (day_index, day) in self.days.iter().enumerate() {
                    if self.restart_on_day == Some(day_index) {
                        previous = None;
                    }
                    let midnight = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap());
                    let mut logs_by_hour: BTreeMap<i64, Vec<PlainLog>> = BTreeMap::new();
                    // Deliveries stay inside the day: 25 min apart, closer when there are many.
                    let step = (25 * 60).min((23 * 3600) / self.logs_per_day.max(1) as i64);
                    for i in 0..self.logs_per_day {
                        let t = midnight + Duration::minutes(7) + Duration::seconds(step * i as i64);
                        let json = log_json(&mut rng, account, region, t);
                        let key = self.log_key(account, region, t, &alnum(&mut rng, 16));
                        logs_by_hour
                            .entry((t - midnight).num_hours())
                            .or_default()
                            .push((key, json, t));
                    }
                    let hours = logs_by_hour.keys().max().copied().unwrap_or(0) + 1 + self.empty_digests_per_day as i64;
                    for h in 0..hours {
                        let start = midnight + Duration::hours(h);
                        let end = start + Duration::hours(1) + Duration::seconds(rng.gen_range(0..120));
                        let logs = logs_by_hour.remove(&h).unwrap_or_default();
                        let digest_key = self.digest_key(account, region, end);
                        let (json, signature) = digest_json(
                            &mut rng,
                            self,
                            account,
                            &digest_key,
                            start,
                            end,
                            &logs,
                            previous.as_ref(),
                        );
                        for (key, log, t) in logs {
                            out.push(GenFile {
                                key,
                                body: gzip(&log),
                                metadata: BTreeMap::new(),
                                time: t,
                            });
                        }
                        let mut metadata = BTreeMap::new();
                        metadata.insert("signature".to_string(), signature.clone());
                        metadata.insert("signature-algorithm".to_string(), "SHA256withRSA".to_string());
                        let sha = hex::encode(Sha256::digest(&json));
                        out.push(GenFile {
                            key: digest_key.clone(),
                            body: gzip(&json),
                            metadata,
                            time: end,
                        });
                        previous = Some((digest_key, signature, sha));
                    }
                }
                if self.backfill {
                    out.extend(self.backfill_files(&mut rng, account, region));
                }
            }
        }
        let mut keys = std::collections::HashSet::new();
        assert!(
            out.iter().all(|f| keys.insert(f.key.clone())),
            "the generator made two files with one key"
        );
        out
    }

    /// A log for the first day's first hour delivered late, and the backfill digest
    /// (first of its own chain) that lists it.
    fn backfill_files(&self, rng: &mut StdRng, account: &str, region: &str) -> Vec<GenFile> {
        let midnight = Utc.from_utc_datetime(&self.days[0].and_hms_opt(0, 0, 0).unwrap());
        let t = midnight + Duration::minutes(50);
        let json = log_json(rng, account, region, t);
        let log_key = self.log_key(account, region, t, "BACKFILLEDLATE01");
        let last = Utc.from_utc_datetime(&self.days[self.days.len() - 1].and_hms_opt(0, 0, 0).unwrap());
        let end = last + Duration::hours(6);
        let key = self.digest_key_kind(account, region, end, "_backfill");
        let logs = vec![(log_key.clone(), json.clone(), t)];
        let (digest, signature) = digest_json(
            rng,
            self,
            account,
            &key,
            midnight,
            midnight + Duration::hours(1),
            &logs,
            None,
        );
        // The digest's own end time names the file; the covered hour is the late one.
        let mut doc: serde_json::Value = serde_json::from_slice(&digest).unwrap();
        doc["digestEndTime"] = json!(end.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let digest = serde_json::to_vec(&doc).unwrap();
        let signature = match &self.signer {
            Some(k) => sign_digest(k, &digest),
            None => signature,
        };
        let mut metadata = BTreeMap::new();
        metadata.insert("signature".to_string(), signature);
        metadata.insert("signature-algorithm".to_string(), "SHA256withRSA".to_string());
        metadata.insert(
            "backfill-generation-timestamp".to_string(),
            end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        );
        vec![
            GenFile {
                key: log_key,
                body: gzip(&json),
                metadata: BTreeMap::new(),
                time: t,
            },
            GenFile {
                key,
                body: gzip(&digest),
                metadata,
                time: end,
            },
        ]
    }
}

fn log_json(rng: &mut StdRng, account: &str, region: &str, delivered: DateTime<Utc>) -> Vec<u8> {
    let n = rng.gen_range(2..8);
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let t = delivered - Duration::seconds(rng.gen_range(60..600));
            let (source, name, read_only) = match (i + rng.gen_range(0..5)) % 5 {
                0 => ("s3.amazonaws.com", "ListBuckets", true),
                1 => ("ec2.amazonaws.com", "DescribeInstances", true),
                2 => ("iam.amazonaws.com", "CreateRole", false),
                3 => ("sts.amazonaws.com", "AssumeRoleWithSAML", false),
                _ => ("signin.amazonaws.com", "ConsoleLogin", false),
            };
            let identity = if name == "AssumeRoleWithSAML" {
                json!({"type": "SAMLUser", "principalId": "Q2xvdWRUcmFpbA==:alice@example.com", "userName": "alice@example.com", "identityProvider": "Q2xvdWRUcmFpbA=="})
            } else {
                json!({
                    "type": "AssumedRole",
                    "principalId": format!("AROA{}:alice@example.com", alnum(rng, 16).to_uppercase()),
                    "arn": format!("arn:aws:sts::{account}:assumed-role/EntraAdmins/alice@example.com"),
                    "accountId": account,
                    "sessionContext": {"attributes": {"creationDate": t.to_rfc3339(), "mfaAuthenticated": "false"}}
                })
            };
            json!({
                "eventVersion": "1.09",
                "userIdentity": identity,
                "eventTime": t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "eventSource": source,
                "eventName": name,
                "awsRegion": region,
                "sourceIPAddress": format!("203.0.113.{}", rng.gen_range(1..255)),
                "userAgent": "aws-cli/2.17.0 md/Botocore#1.34.0",
                "requestParameters": if read_only { serde_json::Value::Null } else { json!({"roleName": "Auditor"}) },
                "responseElements": serde_json::Value::Null,
                "requestID": uuid(rng),
                "eventID": uuid(rng),
                "readOnly": read_only,
                "eventType": if source == "signin.amazonaws.com" { "AwsConsoleSignIn" } else { "AwsApiCall" },
                "managementEvent": true,
                "recipientAccountId": account,
                "eventCategory": "Management"
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

#[allow(clippy::too_many_arguments)]
fn digest_json(
    rng: &mut StdRng,
    trail: &Trail,
    account: &str,
    digest_key: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    logs: &[PlainLog],
    previous: Option<&(String, String, String)>,
) -> (Vec<u8>, String) {
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let log_files: Vec<serde_json::Value> = logs
        .iter()
        .map(|(key, json, t)| {
            json!({
                "s3Bucket": trail.bucket,
                "s3Object": key,
                "hashValue": hex::encode(Sha256::digest(json)),
                "hashAlgorithm": "SHA-256",
                "newestEventTime": fmt(*t - Duration::seconds(60)),
                "oldestEventTime": fmt(*t - Duration::seconds(600)),
            })
        })
        .collect();
    let null = serde_json::Value::Null;
    let fingerprint = match &trail.signer {
        Some(k) => public_der(k).1,
        None => hex_of(rng, 16),
    };
    let doc = json!({
        "awsAccountId": account,
        "digestStartTime": fmt(start),
        "digestEndTime": fmt(end),
        "digestS3Bucket": trail.bucket,
        "digestS3Object": digest_key,
        "digestPublicKeyFingerprint": fingerprint,
        "digestSignatureAlgorithm": "SHA256withRSA",
        "newestEventTime": if logs.is_empty() { null.clone() } else { json!(fmt(end - Duration::minutes(5))) },
        "oldestEventTime": if logs.is_empty() { null.clone() } else { json!(fmt(start)) },
        "previousDigestS3Bucket": previous.map(|_| json!(trail.bucket)).unwrap_or(null.clone()),
        "previousDigestS3Object": previous.map(|p| json!(p.0)).unwrap_or(null.clone()),
        "previousDigestHashValue": previous.map(|p| json!(p.2)).unwrap_or(null.clone()),
        "previousDigestHashAlgorithm": previous.map(|_| json!("SHA-256")).unwrap_or(null.clone()),
        "previousDigestSignature": previous.map(|p| json!(p.1)).unwrap_or(null.clone()),
        "logFiles": log_files,
    });
    let json = serde_json::to_vec(&doc).unwrap();
    let signature = match &trail.signer {
        Some(k) => sign_digest(k, &json),
        None => hex_of(rng, 256),
    };
    (json, signature)
}
