//! `trailvault saml audit`: federated sign-ins in the archived CloudTrail logs (works
//! while AWS is unreachable), checked against the role mapping and the Entra tenant.
//!
//! AssumeRoleWithSAML: the role must be granted by some grant (`role_not_granted`), and
//! the identity provider must be ours: its nameQualifier is
//! Base64(SHA1(issuer + account + "/" + provider name)) for our tenant's issuer
//! (`foreign_idp`). ConsoleLogin: root (`root_login`) and IAM users (`iam_user_login`)
//! sign in outside SSO. Three or more failures of one subject: `repeated_failures`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use base64::Engine;
use chrono::Timelike;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use sha1::{Digest, Sha1};

use super::roles::RoleMapping;
use crate::cloudtrail::digest::gunzip_first_member;
use crate::cloudtrail::record::{parse_log, Record};
use crate::cloudtrail::{FileKind, TimeRange};
use crate::records::{new_run_id, rfc3339, Record as RunRecord, RecordType, RunStatus};
use crate::state::select::{select, Selection};
use crate::state::write_run_records;
use crate::storage::{read_all, BlobStore, StorageError};

const REPEATED_FAILURES: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: Severity,
    pub kind: String,
    pub subject: String,
    pub role_arn: Option<String>,
    pub time: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubjectSummary {
    pub subject: String,
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
}

impl AuditReport {
    pub fn has_high(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::High)
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
    pub archive: Arc<dyn BlobStore>,
    pub state: Option<Arc<dyn BlobStore>>,
    pub sources: Vec<String>,
    /// Filters events by `eventTime`.
    pub range: TimeRange,
    pub tenant_id: String,
    pub roles: RoleMapping,
    pub concurrency: usize,
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

impl AuditJob {
    pub async fn run(&self) -> Result<AuditReport, AuditError> {
        let run_id = new_run_id(Utc::now());
        // Files are chosen by delivery time; a file delivered up to a day after `until`
        // can still hold events before it.
        // A file's key time is its delivery minute without seconds: one delivered in the
        // minute `since` falls in is named before `since` and still holds later events.
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
        let files: Vec<_> = select(self.archive.as_ref(), self.state.as_deref(), &selection)
            .await?
            .into_iter()
            .filter(|s| s.ct.stream.kind == FileKind::Log)
            .collect();
        let archive = self.archive.as_ref();
        // Each file is parsed as it arrives and dropped: memory follows `concurrency`.
        let mut read = std::pin::pin!(futures::stream::iter(&files)
            .map(|f| async move { (f, read_all(archive, &f.blob.name).await) })
            .buffer_unordered(self.concurrency.max(1)));
        let issuer = format!("https://sts.windows.net/{}/", self.tenant_id);
        let mut seen = HashSet::new();
        let mut subjects: BTreeMap<String, Acc> = BTreeMap::new();
        let mut findings = Vec::new();
        let mut events = 0;
        while let Some((f, r)) = read.next().await {
            let Some((bytes, _)) = r? else { continue };
            let records = match gunzip_first_member(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|(j, _)| parse_log(&j).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(key = f.key, error = e, "log file unreadable; skipped (run verify)");
                    continue;
                }
            };
            for rec in records {
                // CloudTrail delivers duplicates with one eventID.
                if !rec.major_version_known() || (!rec.event_id.is_empty() && !seen.insert(rec.event_id.clone())) {
                    continue;
                }
                let Ok(t) = DateTime::parse_from_rfc3339(&rec.event_time).map(|t| t.with_timezone(&Utc)) else {
                    continue;
                };
                if self.range.since.is_some_and(|s| t < s) || self.range.until.is_some_and(|u| t >= u) {
                    continue;
                }
                match (rec.event_source.as_str(), rec.event_name.as_str()) {
                    ("sts.amazonaws.com", "AssumeRoleWithSAML") => {
                        events += 1;
                        self.assume_role(&rec, t, &issuer, &mut subjects, &mut findings);
                    }
                    ("signin.amazonaws.com", "ConsoleLogin") => {
                        events += 1;
                        console_login(&rec, t, &mut subjects, &mut findings);
                    }
                    _ => {}
                }
            }
        }
        for (subject, acc) in &subjects {
            if acc.failures >= REPEATED_FAILURES {
                findings.push(Finding {
                    severity: Severity::Medium,
                    kind: "repeated_failures".into(),
                    subject: subject.clone(),
                    role_arn: None,
                    time: acc.last.map(rfc3339).unwrap_or_default(),
                    detail: format!("{} failed sign-ins", acc.failures),
                });
            }
        }
        findings.sort();
        let report = AuditReport {
            run_id,
            subjects: subjects
                .into_iter()
                .map(|(subject, a)| SubjectSummary {
                    subject,
                    roles: a.roles.into_iter().collect(),
                    source_ips: a.ips.into_iter().collect(),
                    first: a.first.map(rfc3339).unwrap_or_default(),
                    last: a.last.map(rfc3339).unwrap_or_default(),
                    failures: a.failures,
                })
                .collect(),
            findings,
            files_read: files.len() as u64,
            events,
        };
        self.write_record(&report).await;
        Ok(report)
    }

    fn assume_role(
        &self,
        rec: &Record,
        t: DateTime<Utc>,
        issuer: &str,
        subjects: &mut BTreeMap<String, Acc>,
        findings: &mut Vec<Finding>,
    ) {
        let subject = Record::str_at(&rec.user_identity, &["userName"])
            .or_else(|| Record::str_at(&rec.response_elements, &["subject"]))
            .unwrap_or("(unknown)")
            .to_string();
        let role = Record::str_at(&rec.request_parameters, &["roleArn"]).map(str::to_string);
        let acc = touch(subjects, &subject, t, &rec.source_ip_address);
        if rec.error_code.is_some() {
            acc.failures += 1;
            return;
        }
        if let Some(r) = &role {
            acc.roles.insert(r.clone());
        }
        let time = rfc3339(t);
        if let Some(r) = &role {
            if !self.roles.grants_role(r) {
                findings.push(Finding {
                    severity: Severity::High,
                    kind: "role_not_granted".into(),
                    subject: subject.clone(),
                    role_arn: Some(r.clone()),
                    time: time.clone(),
                    detail: "no grant in the role mapping contains this role".into(),
                });
            }
        }
        let qualifier = Record::str_at(&rec.user_identity, &["identityProvider"])
            .or_else(|| Record::str_at(&rec.response_elements, &["nameQualifier"]));
        let principal = Record::str_at(&rec.request_parameters, &["principalArn"]).unwrap_or_default();
        let (account, provider) = match principal.split_once(":saml-provider/") {
            Some((head, name)) => (head.rsplit(':').next().unwrap_or_default(), name),
            None => ("", ""),
        };
        let expected = name_qualifier(issuer, account, provider);
        let event_issuer = Record::str_at(&rec.response_elements, &["issuer"]);
        let foreign = qualifier.is_some_and(|q| q != expected) || event_issuer.is_some_and(|i| i != issuer);
        if foreign {
            findings.push(Finding {
                severity: Severity::High,
                kind: "foreign_idp".into(),
                subject,
                role_arn: role,
                time,
                detail: format!(
                    "identity provider {} (issuer {}) is not the configured Entra tenant",
                    qualifier.unwrap_or("?"),
                    event_issuer.unwrap_or("?")
                ),
            });
        }
    }

    async fn write_record(&self, report: &AuditReport) {
        let Some(state) = &self.state else { return };
        let status = if report.has_high() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let record = RunRecord {
            source: self.sources.join(","),
            message: format!("{} subjects, {} findings", report.subjects.len(), report.findings.len()),
            details: serde_json::json!({ "findings": report.findings }),
            ..RunRecord::of(RecordType::SamlAudit, &report.run_id, "samlaudit", status)
        };
        if let Err(e) = write_run_records(state.as_ref(), &report.run_id, &[record]).await {
            tracing::warn!(error = %e, "could not write the SamlAudit record");
        }
    }
}

fn touch<'a>(subjects: &'a mut BTreeMap<String, Acc>, subject: &str, t: DateTime<Utc>, ip: &str) -> &'a mut Acc {
    let acc = subjects.entry(subject.to_string()).or_default();
    acc.first = Some(acc.first.map_or(t, |f| f.min(t)));
    acc.last = Some(acc.last.map_or(t, |l| l.max(t)));
    if !ip.is_empty() {
        acc.ips.insert(ip.to_string());
    }
    acc
}

fn console_login(rec: &Record, t: DateTime<Utc>, subjects: &mut BTreeMap<String, Acc>, findings: &mut Vec<Finding>) {
    let kind = Record::str_at(&rec.user_identity, &["type"]).unwrap_or_default();
    let arn = Record::str_at(&rec.user_identity, &["arn"]).unwrap_or_default();
    let failed =
        Record::str_at(&rec.response_elements, &["ConsoleLogin"]) == Some("Failure") || rec.error_code.is_some();
    // Federated: arn:aws:sts::ACCT:assumed-role/ROLE/SESSION -> subject SESSION, role ROLE.
    let (subject, role) = match arn.split_once(":assumed-role/") {
        Some((head, rest)) => {
            let (role_name, session) = rest.rsplit_once('/').unwrap_or((rest, ""));
            let account = head.rsplit(':').next().unwrap_or_default();
            let partition = head.split(':').nth(1).unwrap_or("aws");
            (
                session.to_string(),
                Some(format!("arn:{partition}:iam::{account}:role/{role_name}")),
            )
        }
        None => (
            Record::str_at(&rec.user_identity, &["userName"])
                .map(str::to_string)
                .unwrap_or_else(|| {
                    if kind == "Root" {
                        format!("root ({})", rec.recipient_account_id)
                    } else {
                        arn.to_string()
                    }
                }),
            None,
        ),
    };
    let acc = touch(subjects, &subject, t, &rec.source_ip_address);
    if failed {
        acc.failures += 1;
    } else if let Some(r) = &role {
        acc.roles.insert(r.clone());
    }
    let (kind_name, severity, detail) = match kind {
        "Root" => (
            "root_login",
            Severity::High,
            "root user console sign-in: break-glass use outside SSO",
        ),
        "IAMUser" => (
            "iam_user_login",
            Severity::Medium,
            "IAM user console sign-in outside SSO",
        ),
        _ => return,
    };
    findings.push(Finding {
        severity,
        kind: kind_name.into(),
        subject,
        role_arn: None,
        time: rfc3339(t),
        detail: format!("{detail}{}", if failed { " (failed)" } else { "" }),
    });
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
}
