//! Command-line surface (the contract's), and the one place where errors become
//! messages and exit codes.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::cloudtrail::{parse_time, TimeRange};
use crate::config::{Config, ConfigError, ProcessEnv};
use crate::failover::keys::KeyError;
use crate::failover::restore::{RestoreError, RestoreJob, Selection};
use crate::failover::verify::VerifyError;
use crate::failover::RunStatus;
use crate::storage::blob::open_target;
use crate::storage::folder::FolderSink;
use crate::storage::s3::S3Sink;
use crate::storage::Sink;
use crate::storage::StorageError;
use crate::sync::SyncError;
use crate::telemetry::{self, LogFormat};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CHECK_FAILED: u8 = 3;

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
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Audit(#[from] crate::federation::audit::AuditError),
    #[error(transparent)]
    Daemon(#[from] crate::serve::daemon::DaemonError),
    #[error(transparent)]
    Functions(#[from] crate::serve::functions::FunctionsError),
    #[error(transparent)]
    Monitor(#[from] crate::monitor::MonitorError),
}

impl From<crate::app::WiringError> for CliError {
    fn from(e: crate::app::WiringError) -> Self {
        match e {
            crate::app::WiringError::Config(c) => CliError::Config(c),
            crate::app::WiringError::Invalid(m) => CliError::Usage(m),
        }
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => EXIT_USAGE,
            CliError::Keys(KeyError::BadKey { .. }) => EXIT_USAGE,
            CliError::Sync(_)
            | CliError::Storage(_)
            | CliError::Restore(_)
            | CliError::Verify(_)
            | CliError::Keys(_)
            | CliError::Audit(_)
            | CliError::Monitor(_) => EXIT_FAILED,
            CliError::Daemon(_) | CliError::Functions(_) => EXIT_USAGE,
        }
    }
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    telemetry::init(cli.log_format, cli.verbose as i8 - cli.quiet as i8);
    let json = match &cli.command {
        Command::Config {
            command: ConfigCommand::Check { json },
        } => *json,
        Command::Sync(a) => a.json,
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
    };
    let result = match &cli.command {
        Command::Config {
            command: ConfigCommand::Check { json },
        } => config_check(&cli, *json),
        Command::Sync(args) => sync(&cli, args).await,
        Command::Restore(args) => restore(&cli, args).await,
        Command::Verify(args) => verify(&cli, args).await,
        Command::Keys {
            command: KeysCommand::Import { region, files, json },
        } => keys_import(&cli, region, files, *json).await,
        Command::Keys {
            command: KeysCommand::Fetch { since, regions, json },
        } => keys_fetch(&cli, since, regions, *json).await,
        Command::Saml {
            command:
                SamlCommand::Validate {
                    file,
                    at,
                    replay_cache,
                    json,
                },
        } => saml_validate(&cli, file.as_deref(), at, replay_cache.as_deref(), *json).await,
        Command::Saml {
            command:
                SamlCommand::Audit {
                    since,
                    until,
                    sources,
                    json,
                },
        } => saml_audit(&cli, since, until, sources, *json).await,
        Command::Status { from, json } => status(&cli, *from, *json).await,
        Command::Daemon { listen } => daemon(&cli, *listen).await,
        Command::Functions => functions(&cli).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            let message = e.to_string();
            tracing::error!(exit_code = code, "{message}");
            if json {
                print_json(&serde_json::json!({ "error": message, "exit_code": code }));
            } else {
                eprintln!("trailvault: {message}");
            }
            code
        }
    }
}

fn print_json<T: Serialize>(doc: &T) {
    match serde_json::to_string_pretty(doc) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("trailvault: cannot print JSON: {e}"),
    }
}

fn load_config(cli: &Cli) -> Result<Config, CliError> {
    Ok(Config::load(&cli.config, &ProcessEnv)?)
}

fn config_check(cli: &Cli, json: bool) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let sources: Vec<_> = config
        .sources
        .iter()
        .map(|s| serde_json::json!({"name": s.name, "bucket": s.bucket, "region": s.region, "prefix": s.prefix}))
        .collect();
    if json {
        print_json(&serde_json::json!({
            "ok": true,
            "config": config.path,
            "sources": sources,
            "target": config.target.as_ref().map(|t| serde_json::json!({
                "account_url": t.account_url.as_str(),
                "container": t.container,
                "state_container": t.state_container,
                "auth": t.auth.kind(),
            })),
            "federation": config.federation.is_some(),
            "log_analytics": config.log_analytics.is_some(),
        }));
    } else {
        println!("{}: OK", config.path.display());
        for s in &config.sources {
            println!("  source {}: s3://{}/{} ({})", s.name, s.bucket, s.prefix, s.region);
        }
        if let Some(t) = &config.target {
            println!(
                "  target {}/{} (state: {}), auth {}",
                t.account_url,
                t.container,
                t.state_container,
                t.auth.kind()
            );
        }
    }
    Ok(EXIT_OK)
}

async fn sync(cli: &Cli, args: &SyncArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let progress: Arc<dyn crate::progress::Progress> = if args.dry_run {
        Arc::new(crate::progress::NoProgress)
    } else {
        crate::progress::for_stderr("sync")
    };
    let job = crate::app::sync_job(&config, &args.sources, args.dry_run, progress).await?;
    let report = job.run().await?;
    if !args.dry_run {
        crate::app::publish_run(&config, &report.run_id).await;
    }
    if args.json {
        print_json(&report);
    } else {
        for line in report.summary_lines() {
            println!("{line}");
        }
    }
    Ok(match report.status {
        RunStatus::Succeeded => EXIT_OK,
        _ => EXIT_FAILED,
    })
}

/// The archived sources a reading command works on: those named, else every configured one.
fn archived_sources(config: &Config, named: &[String], command: &str) -> Result<Vec<String>, CliError> {
    let sources: Vec<String> = if named.is_empty() {
        config.sources.iter().map(|s| s.name.clone()).collect()
    } else {
        named.to_vec()
    };
    if sources.is_empty() {
        return Err(CliError::Usage(format!(
            "{command}: name the archived source with --source NAME"
        )));
    }
    Ok(sources)
}

fn time_range(since: &Option<String>, until: &Option<String>) -> Result<TimeRange, CliError> {
    let time = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|e| CliError::Usage(format!("--{flag}: {e}")))
    };
    TimeRange::new(time("since", since)?, time("until", until)?).map_err(CliError::Usage)
}

async fn keys_import(cli: &Cli, region: &str, files: &[PathBuf], json: bool) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let target = config.require_target("keys import")?;
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(CliError::Usage(format!(
            "--region {region:?} is not an AWS region name"
        )));
    }
    let keys: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| Ok((f.display().to_string(), crate::failover::keys::read_key_file(f)?)))
        .collect::<Result<_, KeyError>>()?;
    let (archive, _) = open_target(target).map_err(|e| CliError::Usage(e.to_string()))?;
    archive.ensure_container().await?;
    let mut imported = Vec::new();
    for (file, der) in keys {
        imported.push(crate::failover::keys::import(archive.as_ref(), region, &file, der).await?);
    }
    if json {
        print_json(&serde_json::json!({ "imported": imported }));
    } else {
        for k in &imported {
            println!(
                "{}: {} key {} ({:?}) -> {}",
                k.file,
                k.region,
                k.fingerprint,
                k.encoding,
                if k.new { k.blob.as_str() } else { "already archived" }
            );
        }
    }
    Ok(EXIT_OK)
}

/// Loads `[federation]`: metadata (file or https URL), tenant issuer, audiences, role mapping.
async fn federation_validator(config: &Config) -> Result<crate::federation::validate::Validator, CliError> {
    let fed = config
        .federation
        .as_ref()
        .ok_or_else(|| CliError::Usage(format!("{} has no [federation] section", config.path.display())))?;
    let metadata = crate::federation::metadata::load(&fed.idp_metadata)
        .await
        .map_err(|e| CliError::Usage(format!("federation.idp_metadata {e}")))?;
    let roles =
        crate::federation::roles::RoleMapping::load(&fed.role_mapping).map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(crate::federation::validate::Validator {
        tenant_issuers: vec![format!("https://sts.windows.net/{}/", fed.tenant_id)],
        audiences: fed.audiences.clone(),
        certs: metadata.signing_certs,
        allow_sha1: fed.allow_sha1,
        clock_skew: chrono::Duration::from_std(fed.clock_skew).unwrap_or(chrono::Duration::minutes(3)),
        roles,
    })
}

async fn saml_validate(
    cli: &Cli,
    file: Option<&std::path::Path>,
    at: &Option<String>,
    replay_cache: Option<&std::path::Path>,
    json: bool,
) -> Result<u8, CliError> {
    use std::io::Read;
    crate::federation::saml_support().map_err(|m| CliError::Usage(m.to_string()))?;
    let config = load_config(cli)?;
    let validator = federation_validator(&config).await?;
    let at = match at {
        Some(t) => parse_time(t).map_err(|e| CliError::Usage(format!("--at: {e}")))?,
        None => chrono::Utc::now(),
    };
    let mut input = Vec::new();
    match file {
        None => std::io::stdin().read_to_end(&mut input),
        Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_end(&mut input),
        Some(p) => std::fs::File::open(p).and_then(|mut f| f.read_to_end(&mut input)),
    }
    .map_err(|e| CliError::Usage(format!("cannot read the SAMLResponse: {e}")))?;
    let mut cache = match replay_cache {
        Some(p) => Some(crate::federation::replay::ReplayCache::load(p).map_err(CliError::Usage)?),
        None => None,
    };
    let result =
        crate::federation::validate::decode_input(&input).and_then(|xml| validator.validate(&xml, at, cache.as_mut()));
    if let Some(c) = &cache {
        c.save().map_err(CliError::Usage)?;
    }
    match result {
        Ok(ok) => {
            if json {
                print_json(&ok);
            } else {
                println!("valid SAML response {} from {}", ok.assertion_id, ok.issuer);
                println!(
                    "  subject {} session {} duration {:?}",
                    ok.subject, ok.session_name, ok.session_duration
                );
                match &ok.groups {
                    Some(g) => println!("  groups {}", g.join(", ")),
                    None => println!("  groups unknown (Entra sent the overage claim)"),
                }
                for r in &ok.roles {
                    println!(
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
            }
            Ok(EXIT_OK)
        }
        Err(rejection) => {
            if json {
                print_json(
                    &serde_json::json!({"valid": false, "reason": rejection.reason, "detail": rejection.detail}),
                );
            } else {
                println!("invalid SAML response: {:?}: {}", rejection.reason, rejection.detail);
            }
            Ok(EXIT_CHECK_FAILED)
        }
    }
}

async fn daemon(cli: &Cli, listen: std::net::SocketAddr) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    crate::serve::daemon::run(config, listen).await?;
    Ok(EXIT_OK)
}

async fn functions(cli: &Cli) -> Result<u8, CliError> {
    // A bad config must not stop the handler from answering the host; invocations report it.
    let config = Config::load(&cli.config, &ProcessEnv);
    let port = std::env::var(crate::serve::functions::PORT_ENV).ok();
    crate::serve::functions::run(config, port).await?;
    Ok(EXIT_OK)
}

async fn status(cli: &Cli, from: StatusFrom, json: bool) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let sources: Vec<String> = config.sources.iter().map(|s| s.name.clone()).collect();
    let max_gap = chrono::Duration::from_std(config.sync.max_gap).unwrap_or(chrono::Duration::hours(8));
    let report = match from {
        StatusFrom::LogAnalytics => {
            let query = crate::app::logs_query(&config)?;
            crate::failover::status::status_from_log_analytics(&query, &sources, max_gap, chrono::Utc::now()).await?
        }
        StatusFrom::State => {
            let target = config.require_target("status")?;
            let (_, state) = open_target(target).map_err(|e| CliError::Usage(e.to_string()))?;
            crate::failover::status::status(state.as_ref(), &sources, max_gap, chrono::Utc::now()).await?
        }
    };
    if json {
        print_json(&report);
    } else {
        println!(
            "status at {} (target: backup gap at most {} s)",
            report.generated_at, report.max_gap_seconds
        );
        for s in &report.sources {
            println!(
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
                println!(
                    "    {} {}: newest file {}, {} logs not yet covered by a digest",
                    a.account,
                    a.region,
                    a.newest_file_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    a.files_not_covered_by_digest
                );
            }
        }
    }
    Ok(if report.ok { EXIT_OK } else { EXIT_CHECK_FAILED })
}

async fn saml_audit(
    cli: &Cli,
    since: &Option<String>,
    until: &Option<String>,
    sources: &[String],
    json: bool,
) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let fed = config
        .federation
        .as_ref()
        .ok_or_else(|| CliError::Usage(format!("{} has no [federation] section", config.path.display())))?;
    let target = config.require_target("saml audit")?;
    let sources = archived_sources(&config, sources, "saml audit")?;
    let range = time_range(since, until)?;
    let roles =
        crate::federation::roles::RoleMapping::load(&fed.role_mapping).map_err(|e| CliError::Usage(e.to_string()))?;
    let (archive, state) = open_target(target).map_err(|e| CliError::Usage(e.to_string()))?;
    let job = crate::federation::audit::AuditJob {
        archive,
        state: Some(state),
        sources,
        range,
        tenant_id: fed.tenant_id.clone(),
        roles,
        concurrency: config.sync.concurrency,
    };
    let report = job.run().await?;
    crate::app::publish_run(&config, &report.run_id).await;
    if json {
        print_json(&report);
    } else {
        println!(
            "saml audit {}: {} events in {} log files, {} subjects",
            report.run_id,
            report.events,
            report.files_read,
            report.subjects.len()
        );
        for s in &report.subjects {
            println!(
                "  {}: roles {}; from {}; {} .. {}; {} failures",
                s.subject,
                s.roles.join(", "),
                s.source_ips.join(", "),
                s.first,
                s.last,
                s.failures
            );
        }
        for f in &report.findings {
            println!("  {:?} {} {} {}: {}", f.severity, f.kind, f.time, f.subject, f.detail);
        }
    }
    Ok(if report.has_high() { EXIT_CHECK_FAILED } else { EXIT_OK })
}

async fn keys_fetch(cli: &Cli, since: &Option<String>, extra: &[String], json: bool) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let target = config.require_target("keys fetch")?;
    let start = match since {
        Some(s) => parse_time(s).map_err(|e| CliError::Usage(format!("--since: {e}")))?,
        None => parse_time("2015-01-01").map_err(CliError::Usage)?,
    };
    let (archive, state) = open_target(target).map_err(|e| CliError::Usage(e.to_string()))?;
    let sources: Vec<String> = config.sources.iter().map(|s| s.name.clone()).collect();
    let mut regions = crate::failover::select::archived_regions(state.as_ref(), &sources)
        .await
        .unwrap_or_default();
    regions.extend(extra.iter().cloned());
    if regions.is_empty() {
        return Err(CliError::Usage(
            "keys fetch: the archive holds no regions yet (run a sync first) and none was named with --region".into(),
        ));
    }
    archive.ensure_container().await?;
    let regions: Vec<String> = regions.into_iter().collect();
    let api = crate::storage::cloudtrail_api::AwsCloudTrail;
    let fetched = crate::failover::keys::fetch(archive.as_ref(), &api, &regions, start, chrono::Utc::now()).await?;
    if json {
        print_json(&serde_json::json!({ "regions": regions, "keys": fetched }));
    } else {
        println!("fetched {} keys for {}", fetched.len(), regions.join(", "));
        for k in &fetched {
            println!(
                "  {} {} {}",
                k.region,
                k.fingerprint,
                if k.new { "archived" } else { "already archived" }
            );
        }
    }
    Ok(EXIT_OK)
}

async fn verify(cli: &Cli, args: &VerifyArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let sources = archived_sources(&config, &args.sources, "verify")?;
    let range = time_range(&args.since, &args.until)?;
    let job = crate::app::verify_job(&config, sources, range)?;
    let report = job.run().await?;
    crate::app::publish_run(&config, &report.run_id).await;
    if args.json {
        print_json(&report);
    } else {
        println!(
            "verify {}: {} ({} blobs, {} digests, {} logs checked; {} chain starts; {} logs awaiting their digest; {:.1} MB/s)",
            report.run_id,
            if report.ok { "OK" } else { "PROBLEMS FOUND" },
            report.checked.blobs,
            report.checked.digests,
            report.checked.logs,
            report.chain_starts,
            report.logs_awaiting_digest,
            report.bytes_per_second / 1e6
        );
        for p in &report.problems {
            println!(
                "  {:?} {} {}: {}",
                p.kind,
                p.time.as_deref().unwrap_or("-"),
                p.key,
                p.detail
            );
        }
    }
    Ok(if report.ok { EXIT_OK } else { EXIT_CHECK_FAILED })
}

async fn restore(cli: &Cli, args: &RestoreArgs) -> Result<u8, CliError> {
    let config = load_config(cli)?;
    let target = config.require_target("restore")?;
    let sources = archived_sources(&config, &args.sources, "restore")?;
    let range = time_range(&args.since, &args.until)?;
    for a in &args.accounts {
        if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CliError::Usage(format!(
                "--account {a}: an AWS account id is 12 digits"
            )));
        }
    }
    let sink: Arc<dyn Sink> = match args.to.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(CliError::Usage("--to s3://BUCKET[/PREFIX] needs a bucket".into()));
            }
            Arc::new(S3Sink::connect(bucket, prefix, args.endpoint.as_deref().filter(|e| !e.is_empty())).await)
        }
        None if args.to.contains("://") => {
            return Err(CliError::Usage(format!(
                "--to {}: a folder or s3://BUCKET[/PREFIX]",
                args.to
            )))
        }
        None => {
            let folder = FolderSink::new(&args.to);
            if !args.dry_run {
                folder.clear_partial().await?;
            }
            Arc::new(folder)
        }
    };
    let (archive, state) = open_target(target).map_err(|e| CliError::Usage(e.to_string()))?;
    let job = RestoreJob {
        archive,
        state: Some(state),
        sink,
        selection: Selection {
            sources,
            accounts: args.accounts.iter().cloned().collect(),
            regions: args.regions.iter().cloned().collect(),
            range,
            digests: !args.no_digests,
        },
        concurrency: config.sync.concurrency,
        in_flight_bytes: config.sync.in_flight_bytes,
        dry_run: args.dry_run,
        progress: if args.json || args.dry_run {
            Arc::new(crate::progress::NoProgress)
        } else {
            crate::progress::for_stderr("restore")
        },
    };
    let report = job.run().await?;
    if !report.dry_run {
        crate::app::publish_run(&config, &report.run_id).await;
    }
    if args.json {
        print_json(&report);
    } else {
        println!(
            "restore {} -> {}{}",
            report.run_id,
            report.target,
            if report.dry_run { " (dry run: plan only)" } else { "" }
        );
        println!(
            "  {:<10} {:<12} {:<16} {:<10} {:>7} {:>12}",
            "source", "account", "region", "day", "files", "bytes"
        );
        for r in &report.plan {
            println!(
                "  {:<10} {:<12} {:<16} {:<10} {:>7} {:>12}",
                r.source, r.account, r.region, r.day, r.files, r.bytes
            );
        }
        println!(
            "  planned: {} files, {} bytes",
            report.planned_files, report.planned_bytes
        );
        if !report.dry_run {
            println!(
                "  restored {} files ({} bytes), skipped {}, failed {}, corrupted {}, conflicts {} in {:.1} s",
                report.files,
                report.bytes,
                report.skipped,
                report.failed,
                report.corrupted.len(),
                report.conflicts.len(),
                report.seconds
            );
            for k in &report.corrupted {
                println!("    corrupted in the archive (not restored): {k}");
            }
            for k in &report.conflicts {
                println!("    different file already at the target (left as is): {k}");
            }
            for f in &report.failures {
                println!("    failed: {}: {}", f.key, f.error);
            }
        }
    }
    Ok(if !report.corrupted.is_empty() {
        EXIT_CHECK_FAILED
    } else if report.status() == RunStatus::Succeeded {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}
