//! Rendering: every document a command prints, as a serde struct (for `--json`) and
//! as text beside it. Writes end quietly when stdout is closed (`| head`); any other write
//! error is returned, so the exit code can say the output is missing.

use std::io::Write;

use serde::Serialize;

use crate::config::Config;
use crate::failover::restore::RestoreReport;
use crate::failover::status::StatusReport;
use crate::federation::audit::AuditReport;
use crate::federation::validate::{Accepted, Rejection};
use crate::integrity::keys::ImportedKey;
use crate::integrity::verify::VerifyReport;
use crate::sync::SyncReport;

/// A document a command prints: one JSON document with `--json`, text otherwise.
pub trait Render: Serialize {
    fn text(&self) -> String;
}

/// Why a document did not reach stdout. A closed pipe is not one of them: the reader
/// chose to stop reading (`| head`), and the command's own code still stands.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("the output could not be written to stdout: {0}")]
    Write(std::io::Error),
    #[error("the output could not be written: it does not encode as JSON: {0}")]
    Encode(serde_json::Error),
}

impl crate::fault::Classify for OutputError {
    fn fault(&self) -> crate::fault::Fault {
        // A script reading the output got less than the command found: the run failed
        // for it, whatever the command did.
        crate::fault::Fault::Failed
    }
}

/// Prints `doc` on stdout. A closed pipe ends the output quietly (`Ok`); any other
/// failure to write is returned, so the exit code can say the output is missing.
pub fn print<T: Render + ?Sized>(doc: &T, json: bool) -> Result<(), OutputError> {
    let body = if json {
        serde_json::to_string_pretty(doc).map_err(OutputError::Encode)? + "\n"
    } else {
        doc.text()
    };
    write_stdout(&body)
}

fn write_stdout(body: &str) -> Result<(), OutputError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(body.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.map_err(OutputError::Write),
    }
}

/// `{"error", "exit_code"}`: a command that failed before it had a report.
#[derive(Debug, Serialize)]
pub struct ErrorDoc {
    pub error: String,
    pub exit_code: u8,
    /// A configuration refused: each problem on its own (all of them are in `error` too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Render for ErrorDoc {
    fn text(&self) -> String {
        String::new()
    }
}

macro_rules! lines {
    ($out:ident, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

#[derive(Debug, Serialize)]
pub struct ConfigCheckDoc {
    pub ok: bool,
    pub config: std::path::PathBuf,
    pub sources: Vec<ConfigSourceDoc>,
    pub target: Option<ConfigTargetDoc>,
    pub federation: bool,
    pub log_analytics: bool,
}

#[derive(Debug, Serialize)]
pub struct ConfigSourceDoc {
    pub name: String,
    pub bucket: String,
    pub region: String,
    pub prefix: String,
}

#[derive(Debug, Serialize)]
pub struct ConfigTargetDoc {
    pub account_url: String,
    pub container: String,
    pub state_container: String,
    pub auth: String,
}

impl ConfigCheckDoc {
    pub fn of(config: &Config) -> Self {
        Self {
            ok: true,
            config: config.path.clone(),
            sources: config
                .sources
                .iter()
                .map(|s| ConfigSourceDoc {
                    name: s.name.to_string(),
                    bucket: s.bucket.to_string(),
                    region: s.region.to_string(),
                    prefix: s.prefix.clone(),
                })
                .collect(),
            target: config.target.as_ref().map(|t| ConfigTargetDoc {
                account_url: t.account_url.as_str().to_string(),
                container: t.container.to_string(),
                state_container: t.state_container.to_string(),
                auth: t.auth.kind().to_string(),
            }),
            federation: config.federation.is_some(),
            log_analytics: config.log_analytics.is_some(),
        }
    }
}

impl Render for ConfigCheckDoc {
    fn text(&self) -> String {
        let mut out = String::new();
        lines!(out, "{}: OK", self.config.display());
        for s in &self.sources {
            lines!(
                out,
                "  source {}: s3://{}/{} ({})",
                s.name,
                s.bucket,
                s.prefix,
                s.region
            );
        }
        if let Some(t) = &self.target {
            lines!(
                out,
                "  target {}/{} (state: {}), auth {}",
                t.account_url,
                t.container,
                t.state_container,
                t.auth
            );
        }
        out
    }
}

impl Render for crate::events::EventsReport {
    fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.sources {
            let lag = |v: Option<f64>| v.map(|v| format!("{v:.1}s")).unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "{}: {} messages, {} copied, {} already archived, {} ignored, {} unreadable, {} missing, {} failed; lag p50 {} p99 {} max {}\n",
                s.name,
                s.messages,
                s.files_copied,
                s.files_already_archived,
                s.events_ignored,
                s.events_unreadable,
                s.files_missing,
                s.files_failed,
                lag(s.lag_seconds.p50),
                lag(s.lag_seconds.p99),
                lag(s.lag_seconds.max),
            ));
        }
        if self.stopped.is_some() {
            out.push_str("stopped on a signal\n");
        }
        out
    }
}

impl Render for SyncReport {
    fn text(&self) -> String {
        self.summary_lines().into_iter().map(|l| l + "\n").collect()
    }
}

#[derive(Debug, Serialize)]
pub struct KeysImportDoc {
    pub imported: Vec<ImportedKey>,
}

impl Render for KeysImportDoc {
    fn text(&self) -> String {
        let mut out = String::new();
        for k in &self.imported {
            lines!(
                out,
                "{}: {} key {} ({:?}) -> {}",
                k.file,
                k.region,
                k.fingerprint,
                k.encoding,
                if k.new { k.blob.as_str() } else { "already archived" }
            );
        }
        out
    }
}

#[derive(Debug, Serialize)]
pub struct KeysFetchDoc {
    pub regions: Vec<String>,
    pub keys: Vec<ImportedKey>,
}

impl Render for KeysFetchDoc {
    fn text(&self) -> String {
        let mut out = String::new();
        lines!(out, "fetched {} keys for {}", self.keys.len(), self.regions.join(", "));
        for k in &self.keys {
            lines!(
                out,
                "  {} {} {}",
                k.region,
                k.fingerprint,
                if k.new { "archived" } else { "already archived" }
            );
        }
        out
    }
}

impl Render for Accepted {
    fn text(&self) -> String {
        let mut out = String::new();
        lines!(out, "valid SAML response {} from {}", self.assertion_id, self.issuer);
        lines!(
            out,
            "  subject {} session {} duration {:?}",
            self.subject,
            self.session_name,
            self.session_duration
        );
        match &self.groups {
            Some(g) => lines!(out, "  groups {}", g.join(", ")),
            None => lines!(out, "  groups unknown (Entra sent the overage claim)"),
        }
        for r in &self.roles {
            lines!(
                out,
                "  role {} via {}{}",
                r.role_arn,
                r.provider_arn,
                if r.granted {
                    ""
                } else {
                    "  NOT GRANTED by the role mapping"
                }
            );
        }
        out
    }
}

/// `{"valid": false, "reason", "detail"}`
#[derive(Debug, Serialize)]
pub struct SamlRejectedDoc<'a> {
    pub valid: bool,
    #[serde(flatten)]
    pub rejection: &'a Rejection,
}

impl Render for SamlRejectedDoc<'_> {
    fn text(&self) -> String {
        format!(
            "invalid SAML response: {:?}: {}\n",
            self.rejection.reason, self.rejection.detail
        )
    }
}

impl Render for StatusReport {
    fn text(&self) -> String {
        let mut out = String::new();
        lines!(
            out,
            "status at {} (target: backup gap at most {} s)",
            self.generated_at,
            self.max_gap_seconds
        );
        for s in &self.sources {
            lines!(
                out,
                "  {}: {} backup gap {}, last complete run started {}, last run {:?}{}",
                s.name,
                if s.within_target { "OK" } else { "OVER TARGET" },
                s.backup_gap_seconds
                    .map(|g| format!("{g} s"))
                    .unwrap_or_else(|| "unknown (no complete run yet)".into()),
                s.last_success_started_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "never".into()),
                s.last_run_status,
                if s.run_in_progress { ", a sync is running" } else { "" }
            );
            for a in &s.accounts {
                lines!(
                    out,
                    "    {} {}: newest file {}, {} logs not yet covered by a digest",
                    a.account,
                    a.region,
                    a.newest_file_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    a.files_not_covered_by_digest
                );
            }
            for stream in &s.stale_streams {
                lines!(
                    out,
                    "    STALE {stream}: its newest archived file is more than the target behind its siblings'"
                );
            }
        }
        out
    }
}

impl Render for AuditReport {
    fn text(&self) -> String {
        let mut out = String::new();
        lines!(
            out,
            "saml audit {}: {} events in {} log files, {} subjects; {} records skipped, {} files unreadable",
            self.run_id,
            self.events,
            self.files_read,
            self.subjects.len(),
            self.records_skipped,
            self.files_unreadable
        );
        for f in &self.unreadable_files {
            lines!(out, "  unreadable {}: {}", f.key, f.reason);
        }
        for s in &self.subjects {
            lines!(
                out,
                "  {} (account {}): roles {}; from {}; {} .. {}; {} failures",
                s.subject,
                s.account,
                s.roles.join(", "),
                s.source_ips.join(", "),
                s.first,
                s.last,
                s.failures
            );
        }
        for f in &self.findings {
            lines!(
                out,
                "  {:?} {} {} {} (account {}): {}",
                f.severity,
                f.kind,
                crate::records::rfc3339(f.time),
                f.subject,
                f.account,
                f.detail
            );
        }
        out
    }
}

impl Render for VerifyReport {
    fn text(&self) -> String {
        let mut out = String::new();
        lines!(
            out,
            "verify {}: {} ({} blobs, {} digests, {} logs checked; {} chain starts; {} logs awaiting their digest; {:.1} MB/s)",
            self.run_id,
            if self.ok { "OK" } else { "PROBLEMS FOUND" },
            self.checked.blobs,
            self.checked.digests,
            self.checked.logs,
            self.chain_starts,
            self.logs_awaiting_digest,
            self.bytes_per_second / 1e6
        );
        for p in &self.problems {
            lines!(
                out,
                "  {:?} {} {}: {}",
                p.kind,
                p.time.as_deref().unwrap_or("-"),
                p.key,
                p.detail
            );
        }
        if self.stopped {
            lines!(
                out,
                "  stopped by a signal before every file was checked: not a clean bill"
            );
        }
        for stream in &self.streams_without_watermark {
            lines!(
                out,
                "  no watermark (found from the archive's folders, checked): {stream}"
            );
        }
        out
    }
}

impl Render for RestoreReport {
    fn text(&self) -> String {
        let mut out = String::new();
        lines!(
            out,
            "restore {} -> {}{}",
            self.run_id,
            self.target,
            if self.dry_run { " (dry run: plan only)" } else { "" }
        );
        lines!(
            out,
            "  {:<10} {:<12} {:<16} {:<10} {:>7} {:>12}",
            "source",
            "account",
            "region",
            "day",
            "files",
            "bytes"
        );
        for r in &self.plan {
            lines!(
                out,
                "  {:<10} {:<12} {:<16} {:<10} {:>7} {:>12}",
                r.source,
                r.account,
                r.region,
                r.day,
                r.files,
                r.bytes
            );
        }
        lines!(
            out,
            "  planned: {} files, {} bytes",
            self.planned_files,
            self.planned_bytes
        );
        if !self.dry_run {
            lines!(
                out,
                "  restored {} files ({} bytes), skipped {}, failed {}, corrupted {}, conflicts {} in {:.1} s",
                self.files,
                self.bytes,
                self.skipped,
                self.failed,
                self.corrupted.len(),
                self.conflicts.len(),
                self.seconds
            );
            if self.stopped {
                lines!(
                    out,
                    "    stopped by a signal: {} planned files not started",
                    self.not_started
                );
            }
            for stream in &self.streams_without_watermark {
                lines!(
                    out,
                    "    no watermark (found from the archive's folders, restored): {stream}"
                );
            }
            for k in &self.corrupted {
                lines!(out, "    corrupted in the archive (not restored): {k}");
            }
            for k in &self.conflicts {
                lines!(out, "    different file already at the target (left as is): {k}");
            }
            for f in &self.failures {
                lines!(out, "    failed: {}: {}", f.key, f.error);
            }
        }
        out
    }
}
