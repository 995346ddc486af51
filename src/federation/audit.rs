//! `trailvault saml audit`: federated sign-ins in the archived CloudTrail logs (works
//! while AWS is unreachable), checked against the role mapping and the Entra tenant.
//!
//! A subject is an (account, principal) pair: the same IAM user name in two accounts is
//! two subjects. AssumeRoleWithSAML: the role must be granted by some grant
//! (`role_not_granted`), and the identity provider must be ours: its nameQualifier is
//! Base64(SHA1(issuer + account + "/" + provider name)) for our tenant's issuer or one of
//! `[federation] trusted_issuers` (`foreign_idp`). Roles of a trusted issuer (IAM
//! Identity Center, say) are governed by that issuer's own assignments, so the role
//! mapping is not applied to them. ConsoleLogin: root (`root_login`) and IAM users
//! (`iam_user_login`) sign in outside SSO. Three or more failures of one subject:
//! `repeated_failures`. A record that cannot be read is skipped alone and counted
//! (`records_skipped`); a file that cannot be read at all is counted in
//! `files_unreadable` and makes the audit partial (exit 1 unless a high finding).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use base64::Engine;
use chrono::{DateTime, Utc};
use chrono::{SubsecRound, Timelike};
use futures::StreamExt;
use serde::Serialize;
use sha1::{Digest, Sha1};

use super::roles::RoleMapping;
use crate::cloudtrail::digest::gunzip_first_member;
use crate::cloudtrail::record::{parse_log_lenient, FieldError, Record};
use crate::cloudtrail::{FileKind, TimeRange};
use crate::names::ProviderArn;
use crate::records::{new_run_id, rfc3339, Record as RunRecord, RecordType, RunStatus};
use crate::state::select::{select, Selected, Selection};
use crate::state::write_run_records;
use crate::storage::{read_all, ArchiveStore, StateStore, StorageError};

const REPEATED_FAILURES: u64 = 3;
/// Unreadable files named in the document (all are counted).
const UNREADABLE_LISTED: usize = 100;
/// ... and in the SamlAudit record, whose Details stay small.
const UNREADABLE_IN_RECORD: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
}

/// What a finding is about. The names are the contract's (`kind` in the document and in
/// the SamlAudit record's `findings`, matched by the workbook's KQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    // Declared in the order of their names: findings sort by kind as they did when the
    // kind was its name.
    /// An AssumeRoleWithSAML whose identity provider is neither our tenant nor trusted.
    ForeignIdp,
    /// An IAM user signed in to the console, outside SSO.
    IamUserLogin,
    /// A subject failed to sign in [`REPEATED_FAILURES`] times or more.
    RepeatedFailures,
    /// A role no grant of the role mapping contains.
    RoleNotGranted,
    /// The root user signed in to the console.
    RootLogin,
}

impl FindingKind {
    /// The name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ForeignIdp => "foreign_idp",
            FindingKind::IamUserLogin => "iam_user_login",
            FindingKind::RepeatedFailures => "repeated_failures",
            FindingKind::RoleNotGranted => "role_not_granted",
            FindingKind::RootLogin => "root_login",
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with a kind's name (`f.kind == "root_login"`), as callers did when it was text.
impl PartialEq<&str> for FindingKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: Severity,
    pub kind: FindingKind,
    pub subject: String,
    /// The AWS account the sign-in was to.
    pub account: String,
    pub role_arn: Option<String>,
    /// The event's time, to the second (as the document writes it: RFC 3339 with `Z`).
    #[serde(serialize_with = "crate::records::serialize_rfc3339")]
    pub time: DateTime<Utc>,
    pub detail: String,
}

/// A finding's time: whole seconds, so findings order as the times they print.
fn finding_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

#[derive(Debug, Clone, Serialize)]
pub struct SubjectSummary {
    pub subject: String,
    /// The AWS account: with `subject`, what identifies a subject.
    pub account: String,
    pub roles: Vec<String>,
    pub source_ips: Vec<String>,
    pub first: String,
    pub last: String,
    pub failures: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub run_id: String,
    pub subjects: Vec<SubjectSummary>,
    pub findings: Vec<Finding>,
    pub files_read: u64,
    pub events: u64,
    /// Records left out because they could not be read (a null where a string belongs, a
    /// bad `eventTime`, an unknown event version); the rest of their file was audited.
    pub records_skipped: u64,
    /// Files that could not be read at all (not gzip, not JSON, no `Records`).
    pub files_unreadable: u64,
    /// The first of them with the reason.
    pub unreadable_files: Vec<UnreadableFile>,
    /// Stopped by a signal before every selected file was read.
    pub stopped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnreadableFile {
    pub key: String,
    pub reason: String,
}

impl AuditReport {
    pub fn has_high(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::High)
    }

    /// Every selected file was read (records may still have been skipped).
    pub fn complete(&self) -> bool {
        self.files_unreadable == 0 && !self.stopped
    }

    pub fn status(&self) -> RunStatus {
        if self.has_high() {
            RunStatus::Failed
        } else if !self.complete() {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot read the archive: {0}")]
    Archive(#[from] StorageError),
}

impl crate::fault::Classify for AuditError {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Failed
    }
}

pub struct AuditJob {
    pub archive: ArchiveStore,
    pub state: Option<StateStore>,
    pub sources: Vec<String>,
    /// Filters events by `eventTime`.
    pub range: TimeRange,
    pub tenant_id: String,
    /// `[federation] trusted_issuers`: further SAML issuers that are not `foreign_idp`.
    pub trusted_issuers: Vec<String>,
    pub roles: RoleMapping,
    pub concurrency: usize,
    /// Cancelled on SIGTERM/SIGINT: no new file is read and the report says `stopped`.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// CloudTrail's nameQualifier for a SAML provider trusting `issuer`.
pub fn name_qualifier(issuer: &str, account: &str, provider_name: &str) -> String {
    let digest = Sha1::digest(format!("{issuer}{account}/{provider_name}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

#[derive(Default)]
struct Acc {
    roles: BTreeSet<String>,
    ips: BTreeSet<String>,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    failures: u64,
}

/// What the files read so far add up to.
#[derive(Default)]
struct Tally {
    /// Records audited, by eventID and content: a duplicate delivery is audited once.
    seen: HashSet<(String, u64)>,
    seen_ids: HashSet<String>,
    subjects: BTreeMap<(String, String), Acc>,
    findings: Vec<Finding>,
    events: u64,
    records_skipped: u64,
    unreadable: Vec<UnreadableFile>,
    files_unreadable: u64,
    files_read: u64,
}

impl Tally {
    /// The report: subjects with repeated failures found, findings sorted.
    fn into_report(mut self, run_id: String, stopped: bool) -> AuditReport {
        for ((subject, account), acc) in &self.subjects {
            // Every subject was entered with the time of its first event (`touch`).
            let Some(last) = acc.last else { continue };
            if acc.failures >= REPEATED_FAILURES {
                self.findings.push(Finding {
                    severity: Severity::Medium,
                    kind: FindingKind::RepeatedFailures,
                    subject: subject.clone(),
                    account: account.clone(),
                    role_arn: None,
                    time: finding_time(last),
                    detail: format!("{} failed sign-ins to account {account}", acc.failures),
                });
            }
        }
        self.findings.sort();
        self.unreadable.sort_by(|a, b| a.key.cmp(&b.key));
        AuditReport {
            run_id,
            subjects: self
                .subjects
                .into_iter()
                .map(|((subject, account), a)| SubjectSummary {
                    subject,
                    account,
                    roles: a.roles.into_iter().collect(),
                    source_ips: a.ips.into_iter().collect(),
                    first: a.first.map(rfc3339).unwrap_or_default(),
                    last: a.last.map(rfc3339).unwrap_or_default(),
                    failures: a.failures,
                })
                .collect(),
            findings: self.findings,
            stopped,
            files_read: self.files_read,
            events: self.events,
            records_skipped: self.records_skipped,
            files_unreadable: self.files_unreadable,
            unreadable_files: self.unreadable,
        }
    }
}

impl AuditJob {
    pub async fn run(&self) -> Result<AuditReport, AuditError> {
        let run_id = new_run_id(Utc::now());
        let files = self.select_logs().await?;
        let archive = self.archive.as_ref();
        // Each file is parsed as it arrives and dropped: memory follows `concurrency`.
        let mut read = std::pin::pin!(futures::stream::iter(&files)
            .take_until(self.cancel.clone().cancelled_owned())
            .map(|f| async move { (f, read_all(archive, &f.blob.name).await) })
            .buffer_unordered(self.concurrency.max(1)));
        let entra = format!("https://sts.windows.net/{}/", self.tenant_id);
        let mut issuers = vec![entra.as_str()];
        issuers.extend(self.trusted_issuers.iter().map(String::as_str).filter(|i| *i != entra));
        let mut tally = Tally::default();
        while let Some((f, r)) = read.next().await {
            tally.files_read += 1;
            let Some((bytes, _)) = r? else { continue };
            self.audit_file(&f.key, &bytes, &issuers, &mut tally);
        }
        let stopped = tally.files_read < files.len() as u64;
        let report = tally.into_report(run_id, stopped);
        self.write_record(&report).await;
        Ok(report)
    }

    /// The log files to read. Files are chosen by delivery time; a file delivered up to
    /// a day after `until` can still hold events before it. A file's key time is its
    /// delivery minute without seconds: one delivered in the minute `since` falls in is
    /// named before `since` and still holds later events.
    async fn select_logs(&self) -> Result<Vec<Selected>, AuditError> {
        let files_range = TimeRange {
            since: self.range.since.map(|s| {
                s - chrono::Duration::seconds(i64::from(s.second()))
                    - chrono::Duration::nanoseconds(i64::from(s.nanosecond()))
            }),
            until: self.range.until.map(|u| u + chrono::Duration::days(1)),
        };
        let selection = Selection {
            sources: self.sources.clone(),
            range: files_range,
            digests: false,
            ..Default::default()
        };
        Ok(select(self.archive.as_ref(), self.state.as_deref(), &selection)
            .await?
            .files
            .into_iter()
            .filter(|s| s.ct.stream.kind == FileKind::Log)
            .collect())
    }

    /// One log file: unreadable as a whole (counted and named), or audited record by
    /// record, those that cannot be read skipped and counted.
    fn audit_file(&self, key: &str, bytes: &[u8], issuers: &[&str], tally: &mut Tally) {
        let log = match gunzip_first_member(bytes)
            .map_err(|e| e.to_string())
            .and_then(|(j, _)| parse_log_lenient(&j).map_err(|e| e.to_string()))
        {
            Ok(log) => log,
            Err(e) => {
                tracing::warn!(
                    key,
                    error = e,
                    "log file unreadable; its events are not audited (run verify)"
                );
                tally.files_unreadable += 1;
                if tally.unreadable.len() < UNREADABLE_LISTED {
                    tally.unreadable.push(UnreadableFile {
                        key: key.to_string(),
                        reason: e,
                    });
                }
                return;
            }
        };
        let mut skipped_here = log.skipped;
        let mut why = log.first_problem;
        for rec in log.records {
            if let Some(reason) = self.audit_record(key, &rec, issuers, tally) {
                skipped_here += 1;
                why.get_or_insert(reason);
            }
        }
        if skipped_here > 0 {
            tracing::warn!(
                key,
                skipped = skipped_here,
                first = why.unwrap_or_default(),
                "records that cannot be read were skipped; the rest of the file was audited"
            );
            tally.records_skipped += skipped_here;
        }
    }

    /// One record: a sign-in in the range is tallied; anything else is passed over.
    /// Returns why the record cannot be read, when it cannot (it is then skipped).
    fn audit_record(&self, key: &str, rec: &Record, issuers: &[&str], tally: &mut Tally) -> Option<String> {
        if !rec.major_version_known() {
            return Some(format!("unknown eventVersion {:?}", rec.event_version));
        }
        // CloudTrail delivers duplicates with one eventID; a copy that differs is not a
        // duplicate but a forgery of one of them, and whichever arrived first must not
        // hide the other: both are audited.
        if !rec.event_id.is_empty() {
            if !tally.seen.insert((rec.event_id.clone(), fingerprint(rec))) {
                return None;
            }
            if !tally.seen_ids.insert(rec.event_id.clone()) {
                tracing::warn!(
                    key,
                    event_id = rec.event_id,
                    "records share an eventID but differ: each is audited (run verify)"
                );
            }
        }
        let t = match DateTime::parse_from_rfc3339(&rec.event_time) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => return Some(format!("eventTime {:?}: {e}", rec.event_time)),
        };
        if self.range.since.is_some_and(|s| t < s) || self.range.until.is_some_and(|u| t >= u) {
            return None;
        }
        let signin = match (rec.event_source.as_str(), rec.event_name.as_str()) {
            ("sts.amazonaws.com", "AssumeRoleWithSAML") => assume_role_event(rec),
            ("signin.amazonaws.com", "ConsoleLogin") => console_login_event(rec),
            _ => return None,
        };
        let ip = &rec.source_ip_address;
        match signin {
            Ok(SignIn::AssumeRole(a)) => {
                tally.events += 1;
                self.assume_role(a, t, ip, issuers, &mut tally.subjects, &mut tally.findings);
            }
            Ok(SignIn::Console(c)) => {
                tally.events += 1;
                console_login(c, t, ip, &mut tally.subjects, &mut tally.findings);
            }
            Err(e) => return Some(format!("{} {}: {e}", rec.event_name, rec.event_id)),
        }
        None
    }

    fn assume_role(
        &self,
        e: AssumeRoleEvent,
        t: DateTime<Utc>,
        ip: &str,
        issuers: &[&str],
        subjects: &mut BTreeMap<(String, String), Acc>,
        findings: &mut Vec<Finding>,
    ) {
        let acc = touch(subjects, &e.subject, &e.account, t, ip);
        if e.failed {
            acc.failures += 1;
            return;
        }
        if let Some(r) = &e.role {
            acc.roles.insert(r.clone());
        }
        let time = finding_time(t);
        // The issuer that vouches for this sign-in: the one the event names, and whose
        // nameQualifier for this provider matches; without an issuer, the one whose
        // qualifier matches; with neither, ours (nothing says otherwise).
        // A principal IAM would not have issued names no provider: no qualifier can match it.
        let provider = e.principal.parse::<ProviderArn>().ok();
        let (account, provider_name) = provider.as_ref().map_or(("", ""), |p| (p.account(), p.name()));
        let qualifier_of = |issuer: &str| name_qualifier(issuer, account, provider_name);
        let vouching: Option<&str> = match (e.issuer.as_deref(), e.qualifier.as_deref()) {
            (Some(i), q) => issuers
                .iter()
                .copied()
                .find(|known| *known == i)
                .filter(|known| q.is_none_or(|q| q == qualifier_of(known))),
            (None, Some(q)) => issuers.iter().copied().find(|known| qualifier_of(known) == q),
            (None, None) => issuers.first().copied(),
        };
        let ours = issuers.first().copied();
        // Roles from a trusted issuer other than our tenant follow that issuer's own
        // assignments; the role mapping speaks for our tenant (and against strangers).
        if vouching.is_none() || vouching == ours {
            if let Some(r) = &e.role {
                if !self.roles.grants_role(r) {
                    findings.push(Finding {
                        severity: Severity::High,
                        kind: FindingKind::RoleNotGranted,
                        subject: e.subject.clone(),
                        account: e.account.clone(),
                        role_arn: Some(r.clone()),
                        time,
                        detail: "no grant in the role mapping contains this role".into(),
                    });
                }
            }
        }
        if vouching.is_none() {
            findings.push(Finding {
                severity: Severity::High,
                kind: FindingKind::ForeignIdp,
                subject: e.subject,
                account: e.account,
                role_arn: e.role,
                time,
                detail: format!(
                    "identity provider {} (issuer {}) is neither the configured Entra tenant nor a trusted issuer",
                    e.qualifier.as_deref().unwrap_or("?"),
                    e.issuer.as_deref().unwrap_or("?")
                ),
            });
        }
    }

    async fn write_record(&self, report: &AuditReport) {
        let Some(state) = &self.state else { return };
        let record = RunRecord {
            source: self.sources.join(","),
            message: format!(
                "{} subjects, {} findings, {} records skipped, {} files unreadable",
                report.subjects.len(),
                report.findings.len(),
                report.records_skipped,
                report.files_unreadable
            ),
            details: serde_json::json!({
                "findings": report.findings,
                "records_skipped": report.records_skipped,
                "files_unreadable": report.files_unreadable,
                "unreadable_files": report.unreadable_files.iter().take(UNREADABLE_IN_RECORD).collect::<Vec<_>>(),
            }),
            ..RunRecord::of(RecordType::SamlAudit, &report.run_id, "samlaudit", report.status())
        };
        if let Err(e) = write_run_records(state.as_ref(), &report.run_id, &[record]).await {
            tracing::warn!(error = %e, "could not write the SamlAudit record");
        }
    }
}

/// A sign-in event, read completely before it touches the report: a field of the wrong
/// type makes the whole record unreadable (skipped and counted), never half-counted.
enum SignIn {
    AssumeRole(AssumeRoleEvent),
    Console(ConsoleEvent),
}

struct AssumeRoleEvent {
    subject: String,
    account: String,
    role: Option<String>,
    principal: String,
    qualifier: Option<String>,
    issuer: Option<String>,
    failed: bool,
}

struct ConsoleEvent {
    subject: String,
    account: String,
    /// The role of a federated sign-in, with its path.
    role: Option<String>,
    kind: String,
    failed: bool,
}

/// The account part of an ARN (`arn:aws:iam::111122223333:role/X`).
fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

fn own(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

fn assume_role_event(rec: &Record) -> Result<SignIn, FieldError> {
    let ui = &rec.user_identity;
    let req = &rec.request_parameters;
    let resp = &rec.response_elements;
    let role = own(Record::text_at(req, &["roleArn"])?);
    let principal = own(Record::text_at(req, &["principalArn"])?).unwrap_or_default();
    let subject = own(Record::text_at(ui, &["userName"])?)
        .or(own(Record::text_at(resp, &["subject"])?))
        .or(own(Record::text_at(req, &["roleSessionName"])?))
        .unwrap_or_else(|| "(unknown)".into());
    let qualifier =
        own(Record::text_at(ui, &["identityProvider"])?).or(own(Record::text_at(resp, &["nameQualifier"])?));
    let issuer = own(Record::text_at(resp, &["issuer"])?);
    let account = own(Some(rec.recipient_account_id.as_str()))
        .or_else(|| role.as_deref().and_then(arn_account).map(str::to_string))
        .or_else(|| arn_account(&principal).map(str::to_string))
        .unwrap_or_default();
    Ok(SignIn::AssumeRole(AssumeRoleEvent {
        subject,
        account,
        role,
        principal,
        qualifier,
        issuer,
        failed: rec.error_code.is_some(),
    }))
}

fn console_login_event(rec: &Record) -> Result<SignIn, FieldError> {
    let ui = &rec.user_identity;
    let kind = own(Record::text_at(ui, &["type"])?).unwrap_or_default();
    let arn = own(Record::text_at(ui, &["arn"])?).unwrap_or_default();
    let user = own(Record::text_at(ui, &["userName"])?);
    let principal_id = own(Record::text_at(ui, &["principalId"])?);
    let ui_account = own(Record::text_at(ui, &["accountId"])?);
    let issuer_arn = own(Record::text_at(ui, &["sessionContext", "sessionIssuer", "arn"])?);
    let outcome = Record::text_at(&rec.response_elements, &["ConsoleLogin"])?;
    let failed = outcome == Some("Failure") || rec.error_code.is_some();
    let account = ui_account
        .or_else(|| arn_account(&arn).map(str::to_string))
        .or_else(|| own(Some(rec.recipient_account_id.as_str())))
        .unwrap_or_default();
    // Federated: arn:aws:sts::ACCT:assumed-role/ROLE/SESSION -> subject SESSION; the role
    // is the session issuer's ARN, which keeps the path
    // (role/aws-reserved/sso.amazonaws.com/REGION/AWSReservedSSO_...).
    let (subject, role) = match arn.split_once(":assumed-role/") {
        Some((head, rest)) => {
            let (role_name, session) = rest.rsplit_once('/').unwrap_or((rest, ""));
            let partition = head.split(':').nth(1).unwrap_or("aws");
            let role = issuer_arn
                .filter(|a| a.contains(":role/"))
                .unwrap_or_else(|| format!("arn:{partition}:iam::{account}:role/{role_name}"));
            (session.to_string(), Some(role))
        }
        None => (
            user.or_else(|| {
                if kind == "Root" {
                    Some(format!("root ({account})"))
                } else {
                    own(Some(arn.as_str())).or(principal_id)
                }
            })
            .unwrap_or_else(|| "(unknown)".into()),
            None,
        ),
    };
    Ok(SignIn::Console(ConsoleEvent {
        subject,
        account,
        role,
        kind,
        failed,
    }))
}

fn touch<'a>(
    subjects: &'a mut BTreeMap<(String, String), Acc>,
    subject: &str,
    account: &str,
    t: DateTime<Utc>,
    ip: &str,
) -> &'a mut Acc {
    let acc = subjects.entry((subject.to_string(), account.to_string())).or_default();
    acc.first = Some(acc.first.map_or(t, |f| f.min(t)));
    acc.last = Some(acc.last.map_or(t, |l| l.max(t)));
    if !ip.is_empty() {
        acc.ips.insert(ip.to_string());
    }
    acc
}

fn console_login(
    c: ConsoleEvent,
    t: DateTime<Utc>,
    ip: &str,
    subjects: &mut BTreeMap<(String, String), Acc>,
    findings: &mut Vec<Finding>,
) {
    let acc = touch(subjects, &c.subject, &c.account, t, ip);
    if c.failed {
        acc.failures += 1;
    } else if let Some(r) = &c.role {
        acc.roles.insert(r.clone());
    }
    let (kind_name, severity, detail) = match c.kind.as_str() {
        "Root" => (
            FindingKind::RootLogin,
            Severity::High,
            "root user console sign-in: break-glass use outside SSO",
        ),
        "IAMUser" => (
            FindingKind::IamUserLogin,
            Severity::Medium,
            "IAM user console sign-in outside SSO",
        ),
        _ => return,
    };
    findings.push(Finding {
        severity,
        kind: kind_name,
        subject: c.subject,
        account: c.account,
        role_arn: None,
        time: finding_time(t),
        detail: format!("{detail}{}", if c.failed { " (failed)" } else { "" }),
    });
}

/// What a record says, as a number: equal for CloudTrail's duplicate deliveries of one
/// event, different for a copy someone changed.
fn fingerprint(rec: &crate::cloudtrail::record::Record) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{rec:?}").hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_qualifier_is_base64_sha1_of_issuer_account_and_provider() {
        let q = name_qualifier("https://sts.windows.net/t/", "111122223333", "EntraID");
        let expect = base64::engine::general_purpose::STANDARD
            .encode(Sha1::digest(b"https://sts.windows.net/t/111122223333/EntraID"));
        assert_eq!(q, expect);
        assert_eq!(q.len(), 28);
    }

    #[test]
    fn finding_kinds_serialize_as_their_names_and_sort_by_them() {
        let kinds = [
            FindingKind::RootLogin,
            FindingKind::ForeignIdp,
            FindingKind::RoleNotGranted,
            FindingKind::RepeatedFailures,
            FindingKind::IamUserLogin,
        ];
        for k in kinds {
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.as_str()));
            assert_eq!(k.to_string(), k.as_str());
        }
        let mut by_kind = kinds.to_vec();
        by_kind.sort();
        let mut by_name: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        by_name.sort();
        assert_eq!(by_kind.iter().map(|k| k.as_str()).collect::<Vec<_>>(), by_name);
    }

    #[test]
    fn a_finding_serializes_its_time_to_the_second_with_z() {
        let t = DateTime::parse_from_rfc3339("2026-11-25T09:10:00.750Z")
            .unwrap()
            .with_timezone(&Utc);
        let f = Finding {
            severity: Severity::High,
            kind: FindingKind::RootLogin,
            subject: "s".into(),
            account: "1".into(),
            role_arn: None,
            time: finding_time(t),
            detail: "d".into(),
        };
        let doc = serde_json::to_value(&f).unwrap();
        assert_eq!(doc["time"], "2026-11-25T09:10:00Z");
        assert_eq!(doc["kind"], "root_login");
    }
}
