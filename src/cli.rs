//! Command-line surface (the contract's), and the one place where errors become
//! messages and exit codes.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::{Config, ConfigError, ProcessEnv};
use crate::storage::blob::open_target;
use crate::storage::s3::S3Source;
use crate::storage::StorageError;
use crate::sync::{SourceHandle, SyncError, SyncJob};
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
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => EXIT_USAGE,
            CliError::Sync(_) | CliError::Storage(_) => EXIT_FAILED,
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
    };
    let result = match &cli.command {
        Command::Config {
            command: ConfigCommand::Check { json },
        } => config_check(&cli, *json),
        Command::Sync(args) => sync(&cli, args).await,
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
    config.require_sources("sync")?;
    let target = config.require_target("sync")?;
    for name in &args.sources {
        if config.source(name).is_none() {
            return Err(CliError::Usage(format!(
                "--source {name}: no such source in {} (have: {})",
                config.path.display(),
                config
                    .sources
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let (archive, state) = open_target(target).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut sources = Vec::new();
    for s in config
        .sources
        .iter()
        .filter(|s| args.sources.is_empty() || args.sources.contains(&s.name))
    {
        sources.push(SourceHandle {
            name: s.name.clone(),
            prefix: s.prefix.clone(),
            source: Arc::new(S3Source::connect(s).await),
        });
    }
    let job = SyncJob {
        sources,
        archive,
        state,
        settings: config.sync.clone(),
        dry_run: args.dry_run,
    };
    let report = job.run().await?;
    if args.json {
        print_json(&report);
    } else {
        for line in report.summary_lines() {
            println!("{line}");
        }
    }
    Ok(match report.status {
        crate::failover::RunStatus::Succeeded => EXIT_OK,
        _ => EXIT_FAILED,
    })
}
