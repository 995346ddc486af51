//! Argument parsing: clap's raw arguments, then their validation into the typed
//! requests `app` wires (as ripgrep's low and high arguments). Nothing here touches
//! the network or the disk.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::{RestoreRequest, RestoreTarget, StatusSource};
use crate::cloudtrail::{parse_time, AccountId, Region, TimeRange};
use crate::telemetry::LogFormat;

use super::CliError;

#[derive(Debug, Parser)]
#[command(
    name = "trailvault",
    version,
    about = "Keeps a verified copy of AWS CloudTrail logs in Azure Blob Storage"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "TRAILVAULT_CONFIG", default_value = "trailvault.toml")]
    pub config: PathBuf,
    /// Log format on stderr (default: text on a terminal, json otherwise).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less logging (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// On SIGTERM or SIGINT, how long work in flight gets to finish at a safe point (its
    /// run record written, the lock released) before the process ends anyway.
    #[arg(long, global = true, default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: std::time::Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// One incremental, verified pass over every source.
    Sync(SyncArgs),
    /// Archive the files the sources' queues announce, once, until the queues are empty.
    Drain(DrainArgs),
    /// Bring archived files back, verified, to a folder or an S3 bucket.
    Restore(RestoreArgs),
    /// Re-read archived blobs and validate CloudTrail digests and chains, offline.
    Verify(VerifyArgs),
    /// Archive CloudTrail public keys for offline validation.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Long-running: scheduled syncs and verifies, /healthz, /readyz, /metrics.
    Daemon {
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: std::net::SocketAddr,
    },
    /// Azure Functions custom handler on $FUNCTIONS_CUSTOMHANDLER_PORT.
    Functions,
    /// Backup gap, last runs and digest coverage per source, account and region.
    Status {
        /// Where to read from: the state container, or Log Analytics' copy of the records.
        #[arg(long, value_enum, default_value = "state")]
        from: StatusFrom,
        #[arg(long)]
        json: bool,
    },
    /// Entra ID SAML for AWS sign-in.
    Saml {
        #[command(subcommand)]
        command: SamlCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFrom {
    State,
    LogAnalytics,
}

#[derive(Debug, Subcommand)]
pub enum SamlCommand {
    /// Validate a SAMLResponse (base64 as posted, or XML) and show the AWS roles it maps to.
    Validate {
        /// The response; `-` or nothing reads standard input.
        #[arg(value_name = "FILE|-")]
        file: Option<PathBuf>,
        /// Validate as of this instant (RFC 3339 or YYYY-MM-DD; default now).
        #[arg(long)]
        at: Option<String>,
        /// Remember accepted assertion IDs in this file and refuse them again.
        #[arg(long, value_name = "FILE")]
        replay_cache: Option<PathBuf>,
        /// Refuse (exit 3, not_granted) when the role mapping grants none of the offered roles.
        #[arg(long)]
        require_grant: bool,
        #[arg(long)]
        json: bool,
    },
    /// Audit archived AssumeRoleWithSAML and ConsoleLogin events against the role mapping.
    Audit {
        /// Events from this time on (by eventTime; inclusive).
        #[arg(long)]
        since: Option<String>,
        /// Events before this time (exclusive).
        #[arg(long)]
        until: Option<String>,
        /// Only these sources (repeatable; default: every configured source).
        #[arg(long = "source", value_name = "NAME")]
        sources: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// Only these sources (repeatable; default: every source with a queue_url).
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Receive nothing more after this long; files in flight finish.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub max_time: std::time::Duration,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Only these sources (repeatable; default: every configured source).
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Files from this time on (RFC 3339 or YYYY-MM-DD, UTC; inclusive).
    #[arg(long)]
    pub since: Option<String>,
    /// Files before this time (exclusive); digests up to an hour later are included.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Archive public keys from DER (PKCS#1 or SubjectPublicKeyInfo) or PEM files.
    Import {
        /// The region whose digests the keys sign.
        #[arg(long)]
        region: String,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Archive the keys CloudTrail's ListPublicKeys returns for every region the archive holds.
    Fetch {
        /// Keys valid from this time on (default 2015-01-01, before log file validation existed).
        #[arg(long)]
        since: Option<String>,
        /// Also these regions (repeatable), besides those the archive holds.
        #[arg(long = "region", value_name = "R")]
        regions: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the configuration; no network.
    Check {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Only these sources (repeatable; default: all).
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Plan only: list and compare, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Start no new file after this long (humantime: 90s, 8m, 1h); in-flight files finish
    /// (or are abandoned 30 s later), progress is saved and the run is `Partial` with
    /// `deadline_reached` (exit 0 when nothing failed).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub deadline: Option<std::time::Duration>,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A folder, or s3://BUCKET[/PREFIX].
    #[arg(long, value_name = "DIR|s3://BUCKET[/PREFIX]")]
    pub to: String,
    /// S3-compatible endpoint for an s3:// target (path-style); default AWS_ENDPOINT_URL_S3.
    #[arg(long, env = "AWS_ENDPOINT_URL_S3")]
    pub endpoint: Option<String>,
    /// Only these sources (repeatable; default: every configured source).
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Only these accounts (repeatable).
    #[arg(long = "account", value_name = "ID")]
    pub accounts: Vec<String>,
    /// Only these regions (repeatable).
    #[arg(long = "region", value_name = "R")]
    pub regions: Vec<String>,
    /// Files from this time on (RFC 3339 or YYYY-MM-DD, UTC; inclusive).
    #[arg(long)]
    pub since: Option<String>,
    /// Files before this time (exclusive).
    #[arg(long)]
    pub until: Option<String>,
    /// Leave digest files out.
    #[arg(long)]
    pub no_digests: bool,
    /// Show the plan only.
    #[arg(long)]
    pub dry_run: bool,
    /// With [aws] auth = "azure-federated": the role that writes to an s3:// target
    /// (default aws.role_arn).
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    #[arg(long)]
    pub json: bool,
}

impl From<StatusFrom> for StatusSource {
    fn from(f: StatusFrom) -> Self {
        match f {
            StatusFrom::State => StatusSource::State,
            StatusFrom::LogAnalytics => StatusSource::LogAnalytics,
        }
    }
}

impl Command {
    /// Whether the command was asked for one JSON document on stdout.
    pub fn wants_json(&self) -> bool {
        match self {
            Command::Config {
                command: ConfigCommand::Check { json },
            } => *json,
            Command::Sync(a) => a.json,
            Command::Drain(a) => a.json,
            Command::Restore(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Keys {
                command: KeysCommand::Import { json, .. } | KeysCommand::Fetch { json, .. },
            } => *json,
            Command::Saml {
                command: SamlCommand::Validate { json, .. } | SamlCommand::Audit { json, .. },
            } => *json,
            Command::Status { json, .. } => *json,
            Command::Daemon { .. } | Command::Functions => false,
        }
    }

    /// The one-shot commands that stop at a safe point on SIGTERM or SIGINT (the servers
    /// have their own drain).
    pub fn stops_on_signal(&self) -> bool {
        matches!(
            self,
            Command::Sync(_)
                | Command::Drain(_)
                | Command::Restore(_)
                | Command::Verify(_)
                | Command::Keys { .. }
                | Command::Saml {
                    command: SamlCommand::Audit { .. }
                }
        )
    }
}

/// `--since` / `--until` as a range (since inclusive, until exclusive).
pub fn time_range(since: &Option<String>, until: &Option<String>) -> Result<TimeRange, CliError> {
    let time = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|e| CliError::Usage(format!("--{flag}: {e}")))
    };
    TimeRange::new(time("since", since)?, time("until", until)?).map_err(|e| CliError::Usage(e.to_string()))
}

/// A time flag, or its default.
pub fn time_or(
    flag: &str,
    value: &Option<String>,
    default: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, CliError> {
    match value {
        Some(t) => parse_time(t).map_err(|e| CliError::Usage(format!("--{flag}: {e}"))),
        None => Ok(default),
    }
}

pub fn region(flag: &str, value: &str) -> Result<Region, CliError> {
    Region::parse(value).map_err(|e| CliError::Usage(format!("--{flag} {e}")))
}

impl RestoreArgs {
    /// The restore as validated options; `progress` is the renderer's choice.
    pub fn request(&self, progress: Arc<dyn crate::progress::Progress>) -> Result<RestoreRequest, CliError> {
        let accounts = self
            .accounts
            .iter()
            .map(|a| {
                AccountId::parse(a)
                    .map_err(|_| CliError::Usage(format!("--account {a}: an AWS account id is 12 digits")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let regions = self
            .regions
            .iter()
            .map(|r| region("region", r))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(arn) = &self.role_arn {
            if !crate::config::is_role_arn(arn) {
                return Err(CliError::Usage(format!(
                    "--role-arn {arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
                )));
            }
        }
        let to = restore_target(&self.to, self.endpoint.as_deref())?;
        if self.role_arn.is_some() && matches!(to, RestoreTarget::Folder(_)) {
            return Err(CliError::Usage("--role-arn applies to an s3:// target only".into()));
        }
        Ok(RestoreRequest {
            to,
            role_arn: self.role_arn.clone(),
            sources: self.sources.clone(),
            accounts,
            regions,
            range: time_range(&self.since, &self.until)?,
            digests: !self.no_digests,
            dry_run: self.dry_run,
            progress,
        })
    }
}

/// `--to DIR|s3://BUCKET[/PREFIX]`. An empty target, and anything that looks like a URL
/// scheme (`s3:/bkt`, `S3://b`, `az://x`, `file:x`) but is not `s3://`, are usage errors:
/// never the working directory or a local folder named `s3:` (`./s3:x` names one).
pub fn restore_target(to: &str, endpoint: Option<&str>) -> Result<RestoreTarget, CliError> {
    if to.trim().is_empty() {
        return Err(CliError::Usage(
            "--to needs a folder or s3://BUCKET[/PREFIX]; it is empty".into(),
        ));
    }
    let scheme_like = to.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if scheme_like && !to.starts_with("s3://") {
        return Err(CliError::Usage(format!(
            "--to {to:?}: not a folder or s3://BUCKET[/PREFIX] (write ./{to} for a folder of that name)"
        )));
    }
    match to.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(CliError::Usage("--to s3://BUCKET[/PREFIX] needs a bucket".into()));
            }
            Ok(RestoreTarget::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                endpoint: endpoint.filter(|e| !e.is_empty()).map(str::to_string),
            })
        }
        None if to.contains("://") => Err(CliError::Usage(format!("--to {to}: a folder or s3://BUCKET[/PREFIX]"))),
        None => Ok(RestoreTarget::Folder(PathBuf::from(to))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_targets_empty_and_scheme_like_are_usage_errors() {
        for bad in ["", " ", "s3:/bkt", "s3:bkt", "S3://bkt", "az://c", "file:x", "s3://"] {
            assert!(matches!(restore_target(bad, None), Err(CliError::Usage(_))), "{bad:?}");
        }
        assert_eq!(
            restore_target("./s3:x", None).unwrap(),
            RestoreTarget::Folder(PathBuf::from("./s3:x"))
        );
        assert_eq!(
            restore_target("/tmp/r", None).unwrap(),
            RestoreTarget::Folder(PathBuf::from("/tmp/r"))
        );
        assert_eq!(
            restore_target("s3://b/p/q", None).unwrap(),
            RestoreTarget::S3 {
                bucket: "b".into(),
                prefix: "p/q".into(),
                endpoint: None
            }
        );
    }
}
