//! `trailvault verify`: proves, from the Azure archive alone, that archived files are
//! the bytes that were copied and that CloudTrail's signed digest chain holds.
//!
//! Each blob is read once. Digests first (small): SHA-256 against the archived
//! metadata, parse, location and account checks, algorithm allow-list, signature with
//! the archived key named by fingerprint. Then the chain: every link's previous
//! signature and previous hash must match the previous digest (stricter than the AWS
//! CLI). Then logs: SHA-256 against metadata, first-gzip-member hash against the digest
//! that lists it, no trailing data; logs no verified digest lists are findings unless
//! newer than the stream's newest digest.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::keys::KeyRing;
use crate::archive::{ArchiveName, META_SOURCE_BUCKET};
use crate::cloudtrail::digest::{
    self, log_hash, string_to_sign, verify_signature, HASH_ALGORITHM, SIGNATURE_ALGORITHM,
};
use crate::cloudtrail::{AccountId, CtKey, FileKind, Region};
use crate::records::{new_run_id, rfc3339, Record, RecordType, RunStatus};
use crate::state::select::{select, Selected, Selection};
use crate::state::write_run_records;
use crate::storage::retry::RetryPolicy;
use crate::storage::verified::{read_verified, Buffer, Expect, ReadVerified};
use crate::storage::{ArchiveStore, BlobInfo, BlobStore, ErrorKind, StateStore, StorageError};
use crate::truncated::Truncated;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    MetadataMismatch,
    TamperedLog,
    MissingLog,
    TrailingData,
    MissingDigest,
    BadSignature,
    BrokenChain,
    UnknownKey,
    Malformed,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 9] = [
        ProblemKind::MetadataMismatch,
        ProblemKind::TamperedLog,
        ProblemKind::MissingLog,
        ProblemKind::TrailingData,
        ProblemKind::MissingDigest,
        ProblemKind::BadSignature,
        ProblemKind::BrokenChain,
        ProblemKind::UnknownKey,
        ProblemKind::Malformed,
    ];

    /// The name, as serialized (the document's `kind`, the metric's `kind` label).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::MetadataMismatch => "metadata_mismatch",
            ProblemKind::TamperedLog => "tampered_log",
            ProblemKind::MissingLog => "missing_log",
            ProblemKind::TrailingData => "trailing_data",
            ProblemKind::MissingDigest => "missing_digest",
            ProblemKind::BadSignature => "bad_signature",
            ProblemKind::BrokenChain => "broken_chain",
            ProblemKind::UnknownKey => "unknown_key",
            ProblemKind::Malformed => "malformed",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub kind: ProblemKind,
    pub key: String,
    pub time: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    /// Blobs whose bytes were hashed against their `sha256` metadata.
    pub blobs: u64,
    /// Digests parsed and signature-checked.
    pub digests: u64,
    /// Log files hashed against a verified digest.
    pub logs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub run_id: String,
    pub ok: bool,
    pub checked: Checked,
    pub problems: Vec<Problem>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub seconds: f64,
    pub bytes_read: u64,
    pub bytes_per_second: f64,
    /// Digests that start a chain (`previousDigestSignature` null): trail or validation (re)started.
    pub chain_starts: u64,
    /// Logs newer than their stream's newest digest: not vouched for yet, as expected.
    pub logs_awaiting_digest: u64,
    /// Their keys (at most 100).
    pub logs_awaiting_digest_keys: Vec<String>,
    /// Attempts beyond the first, over every request and read of the run.
    pub retries: u64,
    /// Archived files under a source that are not CloudTrail-shaped (not checked
    /// against a digest, but never silently skipped; restore brings them back), counted
    /// over an unbounded run, which lists each source whole.
    pub unrecognized: u64,
    /// Their keys (at most 100).
    pub unrecognized_keys: Vec<String>,
    /// Archived streams sync wrote no watermark for: found from the archive's folders
    /// and verified all the same.
    pub streams_without_watermark: Vec<String>,
    /// Stopped by a signal before every file was checked: not a clean bill.
    pub stopped: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the archive: {0}")]
    Archive(#[source] StorageError),
}

impl crate::fault::Classify for VerifyError {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Failed
    }
}

pub struct VerifyJob {
    pub archive: ArchiveStore,
    pub state: Option<StateStore>,
    pub selection: Selection,
    pub concurrency: usize,
    /// Attempts per read; shared with the storage decorators, so its count is the run's.
    pub retry: RetryPolicy,
    /// Cancelled on SIGTERM/SIGINT: no new read starts and the run reports `stopped`.
    pub cancel: CancellationToken,
}

/// What the chain and log checks need from a digest.
#[derive(Debug, Clone)]
struct DigestFacts {
    source: String,
    key: String,
    time: DateTime<Utc>,
    /// From the archived metadata (`ct_signature`).
    signature: Option<String>,
    /// The S3 bucket it was copied from (`source_bucket`).
    bucket: Option<String>,
    /// SHA-256 of the decompressed digest.
    sha256: Option<String>,
    parsed: Option<digest::Digest>,
    /// Parsed, located and signed as it should be: its log list can be trusted.
    trusted: bool,
    stream: StreamId,
}

/// A digest chain's stream: one per source, account and region.
type StreamId = (String, AccountId, Region);

struct Findings {
    problems: Vec<Problem>,
    checked: Checked,
    bytes_read: u64,
}

impl Findings {
    fn add(&mut self, kind: ProblemKind, key: &str, time: Option<DateTime<Utc>>, detail: impl Into<String>) {
        self.problems.push(Problem {
            kind,
            key: key.to_string(),
            time: time.map(rfc3339),
            detail: detail.into(),
        });
    }
}

/// Reads a blob and checks its bytes against the archived `sha256` (read again on a
/// mismatch, reported once the attempts are spent). `None`: the blob is gone.
async fn read_checked(archive: &dyn BlobStore, name: &str, retry: &RetryPolicy) -> CheckedRead {
    let fresh = || async { Ok(Buffer::default()) };
    let read = match read_verified(archive, name, Expect::Recorded, retry, "verify", fresh).await {
        Ok(read) => read,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mismatch = match &read {
        ReadVerified::Verified { .. } => None,
        ReadVerified::Mismatch { expected, actual, .. } => Some(format!(
            "stored bytes have SHA-256 {actual}, the archive recorded {expected}"
        )),
        ReadVerified::Unrecorded { .. } => Some("the blob has no sha256 metadata".to_string()),
    };
    let (buffer, info) = read.into_parts();
    Ok(Some((buffer.into_bytes(), info, mismatch)))
}

/// A blob's bytes, its properties, and why they do not match their recorded hash.
type CheckedRead = Result<Option<(Bytes, BlobInfo, Option<String>)>, StorageError>;

/// Reads the files with bounded concurrency, as a stream whose items carry the file's
/// index: each is checked as it arrives and dropped, so memory follows `concurrency`,
/// not the archive. Owned names keep the futures `Send` for any caller (the daemon's
/// scheduler spawns them).
fn read_stream<'a>(
    archive: &'a dyn BlobStore,
    files: &[Selected],
    concurrency: usize,
    retry: &'a RetryPolicy,
    cancel: &CancellationToken,
) -> impl futures::Stream<Item = (usize, CheckedRead)> + Send + 'a {
    let names: Vec<String> = files.iter().map(|f| f.blob.name.clone()).collect();
    // Stopping: no new read starts; those in flight are dropped with the stream.
    futures::stream::iter(names.into_iter().enumerate())
        .take_until(cancel.clone().cancelled_owned())
        .map(move |(i, name)| async move { (i, read_checked(archive, &name, retry).await) })
        .buffer_unordered(concurrency.max(1))
}

fn stream_of(s: &Selected) -> StreamId {
    (
        s.source.clone(),
        s.ct.stream.account.clone(),
        s.ct.stream.region.clone(),
    )
}

impl VerifyJob {
    pub async fn run(&self) -> Result<VerifyReport, VerifyError> {
        let started_at = Utc::now();
        let clock = std::time::Instant::now();
        let run_id = new_run_id(started_at);
        let archive = self.archive.as_ref();
        // Unbounded, each source is listed whole, so every archived file is either checked
        // or named unrecognized (a forged name outside the streams sync knows included);
        // ranged, only the selected days of those streams are listed.
        let range = &self.selection.range;
        let unbounded = range.since.is_none() && range.until.is_none();
        let state = if unbounded { None } else { self.state.as_deref() };
        let picked = select(archive, state, &self.selection)
            .await
            .map_err(VerifyError::Archive)?;
        let (selected, unrecognized, streams_without_watermark) =
            (picked.files, picked.unrecognized, picked.without_watermark);
        let keys = KeyRing::load(archive).await.map_err(VerifyError::Archive)?;
        if keys.is_empty() {
            tracing::warn!("no CloudTrail public keys are archived: import them with `trailvault keys import`");
        }
        let mut f = Findings {
            problems: Vec::new(),
            checked: Checked::default(),
            bytes_read: 0,
        };
        let (digests, others): (Vec<Selected>, Vec<Selected>) =
            selected.into_iter().partition(|s| s.ct.stream.kind == FileKind::Digest);

        let facts = self.read_digests(&digests, &keys, &mut f).await?;
        // A stop (SIGTERM) ends the run between phases: a chain or a log check over what
        // was not read would report files as missing that are only unread.
        let (mut chain_starts, mut awaiting) = (0, Truncated::default());
        if !self.cancel.is_cancelled() {
            chain_starts = self.check_chain(&facts, &mut f).await?;
            awaiting = self.check_logs(&facts, &others, &mut f).await?;
        }
        let stopped = self.cancel.is_cancelled();

        f.problems.sort();
        f.problems.dedup();
        let finished_at = Utc::now();
        let seconds = clock.elapsed().as_secs_f64();
        let report = VerifyReport {
            run_id,
            ok: f.problems.is_empty() && !stopped,
            stopped,
            checked: f.checked,
            problems: f.problems,
            started_at,
            finished_at,
            seconds,
            bytes_read: f.bytes_read,
            bytes_per_second: f.bytes_read as f64 / seconds.max(0.001),
            chain_starts,
            logs_awaiting_digest: awaiting.count,
            logs_awaiting_digest_keys: awaiting.keys,
            retries: self.retry.retries(),
            unrecognized: unrecognized.len() as u64,
            unrecognized_keys: unrecognized.into_iter().take(100).collect(),
            streams_without_watermark,
        };
        if report.unrecognized > 0 {
            tracing::warn!(
                count = report.unrecognized,
                "archived files that are not CloudTrail-shaped were not checked against a digest"
            );
        }
        self.write_record(&report).await;
        Ok(report)
    }

    /// Phase 1: every selected digest read, hashed, parsed and signature-checked.
    async fn read_digests(
        &self,
        digests: &[Selected],
        keys: &KeyRing,
        f: &mut Findings,
    ) -> Result<HashMap<(String, String), DigestFacts>, VerifyError> {
        let archive = self.archive.as_ref();
        let mut results = std::pin::pin!(read_stream(
            archive,
            digests,
            self.concurrency,
            &self.retry,
            &self.cancel
        ));
        let mut facts: HashMap<(String, String), DigestFacts> = HashMap::new();
        while let Some((i, read)) = results.next().await {
            let d = &digests[i];
            match read {
                Ok(Some((bytes, info, mismatch))) => {
                    f.checked.blobs += 1;
                    f.bytes_read += bytes.len() as u64;
                    if let Some(m) = mismatch {
                        f.add(ProblemKind::MetadataMismatch, &d.key, Some(d.ct.time), m);
                    }
                    let fact = check_digest(d, &bytes, &info, keys, f);
                    facts.insert((d.source.clone(), d.key.clone()), fact);
                }
                Ok(None) => f.add(ProblemKind::MissingDigest, &d.key, Some(d.ct.time), "listed but gone"),
                Err(e) => return Err(VerifyError::Archive(e)),
            }
        }

        Ok(facts)
    }

    /// Phase 2: every link of the chain against the digest it names (read by name when
    /// it lies outside the selection). Returns how many digests start a chain.
    async fn check_chain(
        &self,
        facts: &HashMap<(String, String), DigestFacts>,
        f: &mut Findings,
    ) -> Result<u64, VerifyError> {
        let mut chain_starts = 0;
        let mut sorted: Vec<&DigestFacts> = facts.values().collect();
        sorted.sort_by(|a, b| (&a.source, &a.key).cmp(&(&b.source, &b.key)));
        let mut extra: HashMap<(String, String), Option<DigestFacts>> = HashMap::new();
        for cur in sorted {
            let Some(p) = &cur.parsed else { continue };
            let Some(prev_sig) = &p.previous_digest_signature else {
                chain_starts += 1;
                if p.previous_digest_s3_object.is_some() || p.previous_digest_hash_value.is_some() {
                    f.add(
                        ProblemKind::Malformed,
                        &cur.key,
                        Some(cur.time),
                        "previousDigestSignature is null but other previousDigest fields are set",
                    );
                }
                continue;
            };
            let Some(prev_key) = &p.previous_digest_s3_object else {
                f.add(
                    ProblemKind::BrokenChain,
                    &cur.key,
                    Some(cur.time),
                    "previousDigestSignature is set but previousDigestS3Object is not",
                );
                continue;
            };
            let id = (cur.source.clone(), prev_key.clone());
            let prev = match facts.get(&id) {
                Some(p) => Some(p.clone()),
                None => {
                    if !extra.contains_key(&id) {
                        let loaded = self.load_outside(&cur.source, prev_key, f).await?;
                        extra.insert(id.clone(), loaded);
                    }
                    extra.get(&id).cloned().flatten()
                }
            };
            let Some(prev) = prev else {
                let t = CtKey::parse_any(prev_key).ok().map(|k| k.time);
                f.add(
                    ProblemKind::MissingDigest,
                    prev_key,
                    t,
                    format!("the previous digest of {} is not in the archive", cur.key),
                );
                continue;
            };
            if p.previous_digest_s3_bucket.as_deref() != prev.bucket.as_deref() && prev.bucket.is_some() {
                f.add(
                    ProblemKind::BrokenChain,
                    &cur.key,
                    Some(cur.time),
                    format!(
                        "previousDigestS3Bucket {:?} is not the bucket of {prev_key}",
                        p.previous_digest_s3_bucket
                    ),
                );
            }
            if prev.signature.as_deref().map(str::to_ascii_lowercase) != Some(prev_sig.to_ascii_lowercase()) {
                f.add(
                    ProblemKind::BrokenChain,
                    &cur.key,
                    Some(cur.time),
                    format!("previousDigestSignature does not match the signature of {prev_key}"),
                );
            }
            if p.previous_digest_hash_algorithm.as_deref() != Some(HASH_ALGORITHM) {
                f.add(
                    ProblemKind::BrokenChain,
                    &cur.key,
                    Some(cur.time),
                    format!(
                        "previousDigestHashAlgorithm is {:?}, expected SHA-256",
                        p.previous_digest_hash_algorithm
                    ),
                );
            } else if p.previous_digest_hash_value.as_deref().map(str::to_ascii_lowercase) != prev.sha256 {
                f.add(
                    ProblemKind::BrokenChain,
                    &cur.key,
                    Some(cur.time),
                    format!("previousDigestHashValue does not match the SHA-256 of {prev_key}"),
                );
            }
        }

        Ok(chain_starts)
    }

    /// Phase 3: each log against the trusted digest that lists it; logs no digest lists
    /// yet are counted as awaiting one. Returns them, counted with the first 100 named.
    async fn check_logs(
        &self,
        facts: &HashMap<(String, String), DigestFacts>,
        others: &[Selected],
        f: &mut Findings,
    ) -> Result<Truncated<String>, VerifyError> {
        let archive = self.archive.as_ref();
        let mut expected: HashMap<(String, String), (String, String)> = HashMap::new();
        let mut newest_digest: HashMap<StreamId, DateTime<Utc>> = HashMap::new();
        for d in facts.values().filter(|d| d.trusted) {
            let e = newest_digest.entry(d.stream.clone()).or_insert(d.time);
            *e = (*e).max(d.time);
            for log in d.parsed.iter().flat_map(|p| &p.log_files) {
                if log.hash_algorithm != HASH_ALGORITHM {
                    f.add(
                        ProblemKind::Malformed,
                        &d.key,
                        Some(d.time),
                        format!("{} has hashAlgorithm {}", log.s3_object, log.hash_algorithm),
                    );
                    continue;
                }
                expected.insert(
                    (d.source.clone(), log.s3_object.clone()),
                    (log.hash_value.to_ascii_lowercase(), d.key.clone()),
                );
            }
        }
        let mut awaiting = Truncated::default();
        let mut results = std::pin::pin!(read_stream(
            archive,
            others,
            self.concurrency,
            &self.retry,
            &self.cancel
        ));
        while let Some((i, read)) = results.next().await {
            let s = &others[i];
            let (bytes, _, mismatch) = match read {
                Ok(Some(x)) => x,
                Ok(None) => continue,
                Err(e) => return Err(VerifyError::Archive(e)),
            };
            f.checked.blobs += 1;
            f.bytes_read += bytes.len() as u64;
            if let Some(m) = mismatch {
                f.add(ProblemKind::MetadataMismatch, &s.key, Some(s.ct.time), m);
            }
            if s.ct.stream.kind != FileKind::Log {
                continue;
            }
            match expected.remove(&(s.source.clone(), s.key.clone())) {
                Some((hash, digest_key)) => check_log(&s.key, Some(s.ct.time), &bytes, &hash, &digest_key, f),
                None => match newest_digest.get(&stream_of(s)) {
                    Some(newest) if s.ct.time <= *newest => f.add(
                        ProblemKind::MissingDigest,
                        &s.key,
                        Some(s.ct.time),
                        "no verified digest lists this log file, though later digests exist",
                    ),
                    _ => awaiting.push(s.key.clone()),
                },
            }
        }
        if self.cancel.is_cancelled() {
            // Stopped: logs not read yet are not missing; the run says it was stopped.
            return Ok(awaiting);
        }
        self.check_unlisted_logs(expected, f).await?;
        Ok(awaiting)
    }

    /// The logs digests list that the archive listing did not show (outside the selection's
    /// listing, or gone): each read by name, missing if it is not there.
    async fn check_unlisted_logs(
        &self,
        expected: HashMap<(String, String), (String, String)>,
        f: &mut Findings,
    ) -> Result<(), VerifyError> {
        let archive = self.archive.as_ref();
        let mut rest: Vec<_> = expected.into_iter().collect();
        rest.sort();
        for ((source, key), (hash, digest_key)) in rest {
            let time = CtKey::parse_any(&key).ok().map(|k| k.time);
            let read = match ArchiveName::new(&source, &key) {
                Ok(name) => read_checked(archive, name.as_str(), &self.retry)
                    .await
                    .map_err(VerifyError::Archive)?,
                // A key the archive could never hold is missing from it like any other.
                Err(_) => None,
            };
            match read {
                None => f.add(
                    ProblemKind::MissingLog,
                    &key,
                    time,
                    format!("listed in {digest_key} but not in the archive"),
                ),
                Some((bytes, _, mismatch)) => {
                    f.checked.blobs += 1;
                    f.bytes_read += bytes.len() as u64;
                    if let Some(m) = mismatch {
                        f.add(ProblemKind::MetadataMismatch, &key, time, m);
                    }
                    check_log(&key, time, &bytes, &hash, &digest_key, f);
                }
            }
        }
        Ok(())
    }

    /// A previous digest outside the selected range: read it by name, for its link only.
    async fn load_outside(
        &self,
        source: &str,
        key: &str,
        f: &mut Findings,
    ) -> Result<Option<DigestFacts>, VerifyError> {
        let Ok(name) = ArchiveName::new(source, key) else {
            return Ok(None);
        };
        let read = read_checked(self.archive.as_ref(), name.as_str(), &self.retry).await;
        let (bytes, info, _) = match read {
            Ok(Some(x)) => x,
            Ok(None) => return Ok(None),
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(VerifyError::Archive(e)),
        };
        f.bytes_read += bytes.len() as u64;
        let Ok(ct) = CtKey::parse_any(key) else { return Ok(None) };
        let parsed = digest::parse(&bytes).ok();
        Ok(Some(DigestFacts {
            source: source.to_string(),
            key: key.to_string(),
            time: ct.time,
            signature: info.metadata.get("ct_signature").cloned(),
            bucket: info.metadata.get(META_SOURCE_BUCKET).cloned(),
            sha256: parsed.as_ref().map(|p| p.sha256.clone()),
            parsed: None,
            trusted: false,
            stream: (source.to_string(), ct.stream.account, ct.stream.region),
        }))
    }

    async fn write_record(&self, report: &VerifyReport) {
        let Some(state) = &self.state else { return };
        let mut by_kind: BTreeMap<ProblemKind, u64> = BTreeMap::new();
        for p in &report.problems {
            *by_kind.entry(p.kind).or_default() += 1;
        }
        let status = if report.ok {
            RunStatus::Succeeded
        } else if report.stopped && report.problems.is_empty() {
            RunStatus::Partial
        } else {
            RunStatus::Failed
        };
        let record = Record {
            time_generated: report.finished_at,
            source: self.selection.sources.join(","),
            files_failed: report.problems.len() as u64,
            duration_seconds: report.seconds,
            message: if report.ok {
                "archive verified".into()
            } else {
                format!("{} problems", report.problems.len())
            },
            details: serde_json::json!({
                "checked": report.checked,
                "problems_by_kind": by_kind,
                "since": self.selection.range.since,
                "until": self.selection.range.until,
                "stopped": report.stopped.then_some("signal"),
                "streams_without_watermark": report.streams_without_watermark,
            }),
            ..Record::of(RecordType::Verify, &report.run_id, "verify", status)
        };
        if let Err(e) = write_run_records(state.as_ref(), &report.run_id, &[record]).await {
            tracing::warn!(error = %e, "could not write the verify record");
        }
    }
}

fn check_digest(d: &Selected, bytes: &[u8], info: &BlobInfo, keys: &KeyRing, f: &mut Findings) -> DigestFacts {
    f.checked.digests += 1;
    let t = Some(d.ct.time);
    let mut fact = DigestFacts {
        source: d.source.clone(),
        key: d.key.clone(),
        time: d.ct.time,
        signature: info.metadata.get("ct_signature").cloned(),
        bucket: info.metadata.get(META_SOURCE_BUCKET).cloned(),
        sha256: None,
        parsed: None,
        trusted: false,
        stream: stream_of(d),
    };
    let parsed = match digest::parse(bytes) {
        Ok(p) => p,
        Err(e) => {
            f.add(ProblemKind::Malformed, &d.key, t, e.to_string());
            return fact;
        }
    };
    fact.sha256 = Some(parsed.sha256.clone());
    let sound = digest_fields_agree(d, &parsed.digest, info, f);
    let signed = digest_signature_verifies(d, &parsed, fact.signature.as_deref(), keys, f);
    fact.trusted = sound && signed;
    fact.parsed = Some(parsed.digest);
    fact
}

/// The digest's own account of where and when it was written agrees with its key, its
/// folders and the bucket it was copied from; each disagreement is a finding.
fn digest_fields_agree(d: &Selected, p: &digest::Digest, info: &BlobInfo, f: &mut Findings) -> bool {
    let t = Some(d.ct.time);
    let mut sound = true;
    let source_bucket = info.metadata.get(META_SOURCE_BUCKET);
    if p.digest_s3_object != d.key || source_bucket.is_some_and(|b| *b != p.digest_s3_bucket) {
        f.add(
            ProblemKind::Malformed,
            &d.key,
            t,
            format!(
                "digest says it was written to {}/{}: moved from its original location",
                p.digest_s3_bucket, p.digest_s3_object
            ),
        );
        sound = false;
    }
    if p.aws_account_id != d.ct.stream.account.as_str() {
        f.add(
            ProblemKind::Malformed,
            &d.key,
            t,
            format!("awsAccountId {} does not match the key's account", p.aws_account_id),
        );
        sound = false;
    }
    match DateTime::parse_from_rfc3339(&p.digest_end_time) {
        Ok(end) if end.with_timezone(&Utc) == d.ct.time && end.date_naive() == d.ct.day => {}
        _ => {
            f.add(
                ProblemKind::Malformed,
                &d.key,
                t,
                format!(
                    "digestEndTime {} does not match the file name and date folders",
                    p.digest_end_time
                ),
            );
            sound = false;
        }
    }
    let meta_alg = info.metadata.get("ct_signature_algorithm").map(String::as_str);
    if p.digest_signature_algorithm != SIGNATURE_ALGORITHM || meta_alg.is_some_and(|a| a != SIGNATURE_ALGORITHM) {
        f.add(
            ProblemKind::BadSignature,
            &d.key,
            t,
            format!(
                "signature algorithm {} / {:?} is not {SIGNATURE_ALGORITHM}",
                p.digest_signature_algorithm, meta_alg
            ),
        );
        sound = false;
    }
    sound
}

/// The signature archived beside the digest verifies under an archived public key of the
/// digest's region (the fingerprint the digest names).
fn digest_signature_verifies(
    d: &Selected,
    parsed: &digest::ParsedDigest,
    signature: Option<&str>,
    keys: &KeyRing,
    f: &mut Findings,
) -> bool {
    let t = Some(d.ct.time);
    let p = &parsed.digest;
    match (
        signature,
        keys.get(d.ct.stream.region.as_str(), &p.digest_public_key_fingerprint),
    ) {
        (None, _) => {
            f.add(
                ProblemKind::BadSignature,
                &d.key,
                t,
                "no ct_signature metadata: the signature was not archived",
            );
            false
        }
        (Some(_), None) => {
            f.add(
                ProblemKind::UnknownKey,
                &d.key,
                t,
                format!(
                    "no archived {} key has fingerprint {}",
                    d.ct.stream.region, p.digest_public_key_fingerprint
                ),
            );
            false
        }
        (Some(sig), Some(key)) => {
            let ok = verify_signature(key, &string_to_sign(p, &parsed.sha256), sig);
            if !ok {
                f.add(
                    ProblemKind::BadSignature,
                    &d.key,
                    t,
                    "the RSA signature does not verify",
                );
            }
            ok
        }
    }
}

fn check_log(key: &str, time: Option<DateTime<Utc>>, bytes: &[u8], want: &str, digest_key: &str, f: &mut Findings) {
    f.checked.logs += 1;
    match log_hash(bytes) {
        Err(e) => f.add(ProblemKind::TamperedLog, key, time, format!("not a gzip file: {e}")),
        Ok((hash, trailing)) => {
            if hash != want {
                f.add(
                    ProblemKind::TamperedLog,
                    key,
                    time,
                    format!("SHA-256 of the log is {hash}; {digest_key} says {want}"),
                );
            }
            if trailing {
                f.add(
                    ProblemKind::TrailingData,
                    key,
                    time,
                    "bytes follow the first gzip member",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProblemKind;

    #[test]
    fn every_problem_kind_is_named_as_it_serializes() {
        for kind in ProblemKind::ALL {
            // A new variant stops this match compiling: add it to ALL as well.
            match kind {
                ProblemKind::MetadataMismatch
                | ProblemKind::TamperedLog
                | ProblemKind::MissingLog
                | ProblemKind::TrailingData
                | ProblemKind::MissingDigest
                | ProblemKind::BadSignature
                | ProblemKind::BrokenChain
                | ProblemKind::UnknownKey
                | ProblemKind::Malformed => {}
            }
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
