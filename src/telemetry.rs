//! Logging setup: text on a terminal, JSON lines otherwise. Logs go to stderr, except
//! under `trailvault functions`, where the Functions host logs every stderr line as an
//! error: there information goes to stdout and only warnings and errors to stderr.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::EnvFilter;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStreams {
    /// Everything to stderr (stdout is kept for `--json` documents).
    Stderr,
    /// Information (and debug, trace) to stdout, warnings and errors to stderr: the
    /// Azure Functions host turns stderr lines into Error-level traces.
    FunctionsHost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `verbosity`: 0 info, 1 debug, 2+ trace, negative warn/error. `RUST_LOG` overrides.
pub fn init(format: Option<LogFormat>, verbosity: i8, streams: LogStreams) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // Our own crate at the chosen level; the SDKs stay quiet unless asked.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("warn,trailvault={level}")));
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match (streams, format) {
        (LogStreams::Stderr, LogFormat::Text) => builder.with_writer(std::io::stderr).try_init(),
        (LogStreams::Stderr, LogFormat::Json) => builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .try_init(),
        (LogStreams::FunctionsHost, LogFormat::Text) => builder.with_writer(split_writer()).try_init(),
        (LogStreams::FunctionsHost, LogFormat::Json) => builder
            .with_writer(split_writer())
            .json()
            .flatten_event(true)
            .try_init(),
    };
}

/// WARN and ERROR to stderr, INFO and more verbose to stdout.
fn split_writer() -> impl for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static {
    std::io::stderr
        .with_max_level(Level::WARN)
        .and(std::io::stdout.with_min_level(Level::INFO))
}

/// Every metric trailvault exports, in one place. Base units, `_total` on counters,
/// timestamps as `_timestamp_seconds` gauges; labels are low-cardinality (source
/// names, statuses, problem kinds).
pub mod metric {
    /// Counter {source, status}: sync runs by outcome.
    pub const SYNC_RUNS: &str = "trailvault_sync_runs_total";
    /// Gauge {source}: end of the last run, whatever its outcome.
    pub const SYNC_LAST_RUN: &str = "trailvault_sync_last_run_timestamp_seconds";
    /// Gauge {source}: end of the last run in which every listed file was archived and verified.
    pub const SYNC_LAST_SUCCESS: &str = "trailvault_sync_last_success_timestamp_seconds";
    /// Gauge {source}: the contract's backup gap (now minus the start of the last complete run).
    pub const BACKUP_GAP: &str = "trailvault_backup_gap_seconds";
    /// Gauge: `sync.max_gap`, for dashboards and alerts.
    pub const RPO_TARGET: &str = "trailvault_rpo_target_seconds";
    /// Gauge {source}: newest CloudTrail file time archived.
    pub const NEWEST_FILE: &str = "trailvault_replicated_watermark_timestamp_seconds";
    /// Counters {source}.
    pub const OBJECTS_COPIED: &str = "trailvault_objects_copied_total";
    pub const BYTES_COPIED: &str = "trailvault_bytes_copied_total";
    pub const OBJECTS_SKIPPED: &str = "trailvault_objects_skipped_existing_total";
    pub const OBJECTS_FAILED: &str = "trailvault_objects_failed_total";
    pub const CONFLICTS: &str = "trailvault_conflicts_total";
    /// Histogram {source}: run time.
    pub const SYNC_DURATION: &str = "trailvault_sync_duration_seconds";
    /// Counter: a scheduled sync found another holding the lock.
    pub const LOCK_REFUSED: &str = "trailvault_sync_lock_refused_total";
    /// Counter {kind}: problems `verify` found.
    pub const VERIFY_PROBLEMS: &str = "trailvault_verify_failures_total";
    /// Gauge {source}: 1 while the probes declare an AWS outage for the source.
    pub const FAILOVER_ACTIVE: &str = "trailvault_failover_active";
    /// Counter {operation}: attempts beyond the first, by what was retried
    /// (`get`, `put`, `list`, `copy`, `restore`, `verify`, ...).
    pub const RETRIES: &str = "trailvault_retries_total";
    /// Gauge: end of the last verify that found nothing.
    pub const VERIFY_LAST_SUCCESS: &str = "trailvault_verify_last_success_timestamp_seconds";
    /// Counter {source, outcome}: announced files by what became of them (`copied`,
    /// `already_archived`, `conflict`, `missing`, `ignored`, `failed`).
    pub const EVENT_FILES: &str = "trailvault_event_files_total";
    /// Histogram: S3 event time to committed blob, per copied file.
    pub const EVENT_LAG: &str = "trailvault_event_lag_seconds";
    /// Counter {source}: queue messages received.
    pub const EVENTS_RECEIVED: &str = "trailvault_events_received_total";
    /// Seconds the sync in progress has been running (0 between runs); `/livez` answers 503
    /// once it passes twice the schedule's interval.
    pub const RUN_IN_PROGRESS: &str = "trailvault_run_in_progress_seconds";
}
