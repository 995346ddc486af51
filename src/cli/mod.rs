//! Runtime: the command line (the contract's surface). `args` parses and validates,
//! `app` wires the jobs, `render` prints, and `exit` turns each outcome into an exit
//! code. This file only dispatches.

pub mod args;
pub mod exit;
pub mod render;

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use args::Cli;
use args::{Command, ConfigCommand, DrainArgs, KeysCommand, RestoreArgs, SamlCommand, SyncArgs, VerifyArgs};
use exit::Verdict;
pub use exit::{EXIT_CHECK_FAILED, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use render::{print, ConfigCheckDoc, ErrorDoc, KeysFetchDoc, KeysImportDoc, OutputError, SamlRejectedDoc};

use crate::app::{self, AppError};
use crate::config::{Config, ConfigError, ProcessEnv};
use crate::fault::{Classify, Fault};
use crate::progress::{self, NoProgress, Progress};
use crate::telemetry;

/// Every error a command can end with; each says its [`Fault`], which decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Restore(#[from] crate::failover::restore::RestoreError),
    #[error(transparent)]
    Verify(#[from] crate::integrity::verify::VerifyError),
    #[error(transparent)]
    Audit(#[from] crate::federation::audit::AuditError),
    #[error(transparent)]
    Daemon(#[from] crate::serve::daemon::DaemonError),
    #[error(transparent)]
    Functions(#[from] crate::serve::functions::FunctionsError),
    /// The replay cache file could not be read or written.
    #[error("{0}")]
    ReplayCache(String),
}

impl Classify for CliError {
    fn fault(&self) -> Fault {
        match self {
            CliError::Config(e) => e.fault(),
            CliError::Usage(_) => Fault::Usage,
            CliError::App(e) => e.fault(),
            CliError::Sync(e) => e.fault(),
            CliError::Restore(e) => e.fault(),
            CliError::Verify(e) => e.fault(),
            CliError::Audit(e) => e.fault(),
            CliError::Daemon(e) => e.fault(),
            CliError::Functions(e) => e.fault(),
            CliError::ReplayCache(_) => Fault::Failed,
        }
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        exit::for_fault(self.fault())
    }
}

/// How a command ended: the code its outcome decided, and whether its document reached
/// stdout (the exit code depends on both; see [`exit::after_output`]).
struct Ended {
    code: u8,
    output: Result<(), OutputError>,
}

impl Ended {
    fn printed(code: u8, output: Result<(), OutputError>) -> Self {
        Self { code, output }
    }

    /// The servers print no document.
    fn without_output(code: u8) -> Self {
        Self { code, output: Ok(()) }
    }
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let streams = match cli.command {
        Command::Functions => telemetry::LogStreams::FunctionsHost,
        _ => telemetry::LogStreams::Stderr,
    };
    telemetry::init(cli.log_format, cli.verbose as i8 - cli.quiet as i8, streams);
    let json = cli.command.wants_json();
    let stop = cli
        .command
        .stops_on_signal()
        .then(|| crate::serve::shutdown::SignalStop::install(cli.shutdown_grace));
    let stop_token = stop.as_ref().map(|s| s.token.clone()).unwrap_or_default();
    let ended = match dispatch(&cli, json, &stop_token).await {
        Ok(ended) => ended,
        Err(e) => {
            let code = e.exit_code();
            let message = e.to_string();
            tracing::error!(exit_code = code, "{message}");
            if json {
                let output = print(
                    &ErrorDoc {
                        error: message,
                        exit_code: code,
                        problems: match &e {
                            CliError::Config(ConfigError::Invalid { problems, .. }) => problems.clone(),
                            _ => Vec::new(),
                        },
                    },
                    true,
                );
                Ended::printed(code, output)
            } else {
                eprintln!("trailvault: {message}");
                Ended::without_output(code)
            }
        }
    };
    let mut code = exit::after_output(ended.code, &ended.output);
    if let Some(signal) = stop.as_ref().and_then(|s| s.received()) {
        // Stopped on request: the run record says what was done; the code says why it ended.
        code = signal.exit_code();
    }
    if let Err(e) = &ended.output {
        // stdout is what failed, so stderr is the only place left to say it.
        tracing::error!(exit_code = code, "{e}");
        eprintln!("trailvault: {e}");
    }
    code
}

/// `stop` is cancelled on SIGTERM/SIGINT (one-shot commands); jobs link their own
/// cancellation to it.
async fn dispatch(cli: &Cli, json: bool, stop: &CancellationToken) -> Result<Ended, CliError> {
    match &cli.command {
        Command::Config {
            command: ConfigCommand::Check { .. },
        } => {
            let config = load_config(cli)?;
            Ok(Ended::printed(EXIT_OK, print(&ConfigCheckDoc::of(&config), json)))
        }
        Command::Sync(args) => sync(cli, args, stop).await,
        Command::Drain(args) => drain(cli, args, stop).await,
        Command::Restore(args) => restore(cli, args, stop).await,
        Command::Verify(args) => verify(cli, args, stop).await,
        Command::Keys {
            command: KeysCommand::Import { region, files, .. },
        } => keys_import(cli, region, files, json).await,
        Command::Keys {
            command: KeysCommand::Fetch { since, regions, .. },
        } => keys_fetch(cli, since, regions, json).await,
        Command::Saml {
            command:
                SamlCommand::Validate {
                    file,
                    at,
                    replay_cache,
                    require_grant,
                    ..
                },
        } => saml_validate(cli, file.as_deref(), at, replay_cache.as_deref(), *require_grant, json).await,
        Command::Saml {
            command: SamlCommand::Audit {
                since, until, sources, ..
            },
        } => {
            let config = load_config(cli)?;
            let job = app::audit_job(&config, sources, args::time_range(since, until)?)?;
            let _linked = app::cancel_on(&job.cancel, stop);
            let report = job.run().await?;
            app::publish_run(&config, &report.run_id).await;
            Ok(Ended::printed(report.exit_code(), print(&report, json)))
        }
        Command::Status { from, .. } => {
            let config = load_config(cli)?;
            let report = app::status(&config, (*from).into(), chrono::Utc::now()).await?;
            Ok(Ended::printed(report.exit_code(), print(&report, json)))
        }
        Command::Daemon { listen } => {
            let config = load_config(cli)?;
            crate::serve::daemon::run(config, *listen, cli.shutdown_grace).await?;
            Ok(Ended::without_output(EXIT_OK))
        }
        Command::Functions => {
            // A bad config must not stop the handler from answering the host; invocations report it.
            let config = crate::files::read_config(&cli.config, &ProcessEnv);
            let port = std::env::var(crate::serve::functions::PORT_ENV).ok();
            crate::serve::functions::run(config, port, cli.shutdown_grace).await?;
            Ok(Ended::without_output(EXIT_OK))
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, CliError> {
    Ok(crate::files::read_config(&cli.config, &ProcessEnv)?)
}

async fn sync(cli: &Cli, args: &SyncArgs, stop: &CancellationToken) -> Result<Ended, CliError> {
    let config = load_config(cli)?;
    let progress: Arc<dyn Progress> = if args.dry_run {
        Arc::new(NoProgress)
    } else {
        progress::for_stderr("sync")
    };
    let deadline = args.deadline.map(|d| tokio::time::Instant::now() + d);
    let job = app::sync_job(&config, &args.sources, args.dry_run, progress, deadline).await?;
    let _linked = app::cancel_on(&job.cancel, stop);
    let report = job.run().await?;
    if !args.dry_run {
        app::publish_run(&config, &report.run_id).await;
    }
    Ok(Ended::printed(report.exit_code(), print(&report, args.json)))
}

async fn drain(cli: &Cli, args: &DrainArgs, stop: &CancellationToken) -> Result<Ended, CliError> {
    let config = load_config(cli)?;
    if !app::has_queues(&config, &args.sources) {
        return Err(CliError::Usage("drain: no source has a queue_url".into()));
    }
    let mode = app::DrainMode::Once {
        max_time: args.max_time,
    };
    let job = app::drain_job(&config, &args.sources, mode).await?;
    let _linked = app::cancel_on(&job.cancel, stop);
    let report = job.run().await;
    app::publish_run(&config, &report.run_id).await;
    let code = if report.failed() { EXIT_FAILED } else { EXIT_OK };
    Ok(Ended::printed(code, print(&report, args.json)))
}

async fn keys_import(cli: &Cli, region: &str, files: &[PathBuf], json: bool) -> Result<Ended, CliError> {
    let config = load_config(cli)?;
    config.require_target("keys import")?;
    let region = args::region("region", region)?;
    let imported = app::keys_import(&config, &region, files).await?;
    Ok(Ended::printed(EXIT_OK, print(&KeysImportDoc { imported }, json)))
}

async fn keys_fetch(cli: &Cli, since: &Option<String>, extra: &[String], json: bool) -> Result<Ended, CliError> {
    let config = load_config(cli)?;
    config.require_target("keys fetch")?;
    let default_start = crate::cloudtrail::parse_time("2015-01-01").map_err(|e| CliError::Usage(e.to_string()))?;
    let start = args::time_or("since", since, default_start)?;
    let extra = extra
        .iter()
        .map(|r| args::region("region", r))
        .collect::<Result<Vec<_>, _>>()?;
    let (regions, keys) = app::keys_fetch(&config, start, &extra).await?;
    Ok(Ended::printed(EXIT_OK, print(&KeysFetchDoc { regions, keys }, json)))
}

async fn saml_validate(
    cli: &Cli,
    file: Option<&std::path::Path>,
    at: &Option<String>,
    replay_cache: Option<&std::path::Path>,
    require_grant: bool,
    json: bool,
) -> Result<Ended, CliError> {
    use std::io::Read;
    crate::federation::saml_support().map_err(|m| CliError::Usage(m.to_string()))?;
    let config = load_config(cli)?;
    let at = args::time_or("at", at, chrono::Utc::now())?;
    let mut validator = app::federation_validator(&config).await?;
    validator.require_grant = require_grant;
    let mut input = Vec::new();
    // One byte over the cap is enough to refuse the input as too large.
    let cap = crate::federation::validate::MAX_INPUT_BYTES as u64 + 1;
    match file {
        None => std::io::stdin().take(cap).read_to_end(&mut input),
        Some(p) if p.as_os_str() == "-" => std::io::stdin().take(cap).read_to_end(&mut input),
        Some(p) => std::fs::File::open(p).and_then(|f| f.take(cap).read_to_end(&mut input)),
    }
    .map_err(|e| CliError::Usage(format!("cannot read the SAMLResponse: {e}")))?;
    let mut cache = match replay_cache {
        Some(p) => Some(crate::federation::replay::ReplayCache::with_store(Box::new(
            crate::federation_io::FileReplayStore::open(p).map_err(|e| CliError::ReplayCache(e.to_string()))?,
        ))),
        None => None,
    };
    let result =
        crate::federation::validate::decode_input(&input).and_then(|xml| validator.validate(&xml, at, cache.as_mut()));
    if let Some(c) = &cache {
        c.save().map_err(|e| CliError::ReplayCache(e.to_string()))?;
    }
    match result {
        Ok(ok) => Ok(Ended::printed(EXIT_OK, print(&ok, json))),
        Err(rejection) => {
            let doc = SamlRejectedDoc {
                valid: false,
                rejection: &rejection,
            };
            Ok(Ended::printed(EXIT_CHECK_FAILED, print(&doc, json)))
        }
    }
}

async fn verify(cli: &Cli, args: &VerifyArgs, stop: &CancellationToken) -> Result<Ended, CliError> {
    let config = load_config(cli)?;
    let sources = app::archived_sources(&config, &args.sources, "verify")?;
    let range = args::time_range(&args.since, &args.until)?;
    let job = app::verify_job(&config, sources, range)?;
    let _linked = app::cancel_on(&job.cancel, stop);
    let report = job.run().await?;
    app::publish_run(&config, &report.run_id).await;
    Ok(Ended::printed(report.exit_code(), print(&report, args.json)))
}

async fn restore(cli: &Cli, args: &RestoreArgs, stop: &CancellationToken) -> Result<Ended, CliError> {
    let config = load_config(cli)?;
    config.require_target("restore")?;
    let progress: Arc<dyn Progress> = if args.json || args.dry_run {
        Arc::new(NoProgress)
    } else {
        progress::for_stderr("restore")
    };
    let request = args.request(progress)?;
    let job = app::restore_job(&config, request).await?;
    let _linked = app::cancel_on(&job.cancel, stop);
    let report = job.run().await?;
    if !report.dry_run {
        app::publish_run(&config, &report.run_id).await;
    }
    Ok(Ended::printed(report.exit_code(), print(&report, args.json)))
}
