//! `trailvault daemon`: scheduled syncs (`schedule.cron`) and daily verifies
//! (`schedule.verify_cron`) with tokio-cron-scheduler, and a small HTTP server:
//! `/healthz` (the process answers; no external calls, so a cloud outage does not get
//! the pod restarted), `/readyz` (config loaded, scheduler running, not shutting down),
//! `/metrics` (Prometheus text; with `TRAILVAULT_METRICS_TOKEN` set it needs
//! `Authorization: Bearer <token>`, the probes never do). SIGTERM: not ready, no new
//! runs, the running one finishes (its lease is released), then exit 0.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_cron_scheduler::{Job, JobScheduler};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::progress::NoProgress;
use crate::records::{AwsHealth, RunStatus};
use crate::secret::Secret;
use crate::state::LockError;
use crate::state::SourceHealth;
use crate::sync::{SyncError, SyncReport};
use crate::telemetry::metric;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config cannot drive a daemon (schedule, missing sections): found before any work.
    #[error("{0}")]
    Config(String),
    /// The config lacks a section the daemon needs.
    #[error(transparent)]
    Unfit(#[from] crate::config::ConfigError),
    /// `--listen` could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    /// The daemon could not start or keep running: metrics, scheduler, HTTP server.
    #[error("{0}")]
    Runtime(String),
}

impl crate::fault::Classify for DaemonError {
    fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            DaemonError::Config(_) | DaemonError::Unfit(_) => Fault::Config,
            // An address that is not this host's is a wrong `--listen`; a port in use (or
            // any other refusal) may be gone on the next start.
            DaemonError::Listen { source, .. } if source.kind() == std::io::ErrorKind::AddrNotAvailable => {
                Fault::Config
            }
            DaemonError::Listen { .. } | DaemonError::Runtime(_) => Fault::Failed,
        }
    }
}

struct Shared {
    config: Config,
    ready: AtomicBool,
    /// One run at a time inside this process (the blob lease guards across processes).
    running: tokio::sync::Mutex<()>,
    /// When the sync in progress started (None between runs): `/livez` and
    /// `trailvault_run_in_progress_seconds` read it.
    run_started: Mutex<Option<std::time::Instant>>,
    /// Twice the schedule's interval: a sync running longer is stuck, and `/livez` says so.
    stuck_after: Duration,
    /// Cancelled by SIGTERM: the running sync starts no new file, saves its progress,
    /// writes its run record and releases its lease.
    shutdown: CancellationToken,
    /// Start of the last complete run per source: the backup gap is measured from it.
    last_complete_start: Mutex<HashMap<String, DateTime<Utc>>>,
    metrics: PrometheusHandle,
    /// `TRAILVAULT_METRICS_TOKEN`: the bearer token `/metrics` requires, when set.
    metrics_token: Option<Secret<String>>,
}

/// App setting / environment variable holding the bearer token for `/metrics`.
pub const METRICS_TOKEN_ENV: &str = "TRAILVAULT_METRICS_TOKEN";

/// Scheduling needs seconds-first cron in UTC (as Azure Functions NCRONTAB on Linux): the
/// same check `config check` runs, so a config it accepts is one the daemon can schedule.
fn check_schedule(config: &Config) -> Result<(), DaemonError> {
    let s = &config.schedule;
    let problems = crate::config::check_schedule(&s.cron, &s.timezone, &s.verify_cron);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DaemonError::Config(problems.join("; ")))
    }
}

/// How long SIGTERM waits for the running sync to stop at a safe point (`--shutdown-grace`).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

pub async fn run(config: Config, listen: SocketAddr, shutdown_grace: Duration) -> Result<(), DaemonError> {
    check_schedule(&config)?;
    config.require_sources("daemon").map_err(DaemonError::Unfit)?;
    let target = config.require_target("daemon").map_err(DaemonError::Unfit)?.clone();
    // Bound before the state container is read, so a taken port is reported at once
    // rather than after a slow or unreachable cloud.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| DaemonError::Listen { addr: listen, source })?;
    let addr = listener
        .local_addr()
        .map_err(|e| DaemonError::Runtime(format!("the listening socket: {e}")))?;
    let metrics = install_metrics(&config)?;

    let stuck_after = schedule_interval(&config.schedule.cron).saturating_mul(2);
    let shared = Arc::new(Shared {
        config,
        ready: AtomicBool::new(false),
        running: tokio::sync::Mutex::new(()),
        run_started: Mutex::new(None),
        stuck_after,
        last_complete_start: Mutex::new(HashMap::new()),
        metrics,
        metrics_token: std::env::var(METRICS_TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        shutdown: CancellationToken::new(),
    });
    if shared.metrics_token.is_some() {
        tracing::info!("/metrics requires the bearer token of {METRICS_TOKEN_ENV}");
    }
    seed_gaps(&shared, &target).await;

    let mut scheduler = scheduler(&shared).await?;

    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_endpoint))
        .with_state(shared.clone());
    scheduler
        .start()
        .await
        .map_err(|e| DaemonError::Runtime(format!("scheduler: {e}")))?;
    shared.ready.store(true, Ordering::SeqCst);
    let events = crate::serve::events::spawn(shared.config.clone(), shared.shutdown.clone());
    tracing::info!(addr = %addr, cron = shared.config.schedule.cron, verify_cron = shared.config.schedule.verify_cron, "listening");

    let s = shared.clone();
    let drained = async move {
        crate::serve::shutdown::shutdown_signal().await;
        tracing::info!("shutting down: no new runs; the running one stops at its next file");
        s.ready.store(false, Ordering::SeqCst);
        s.shutdown.cancel();
        let _ = scheduler.shutdown().await;
        // The running sync finishes its in-flight files, saves its watermarks, writes its
        // run record and releases its lease; past the grace the lease expires by itself.
        if tokio::time::timeout(shutdown_grace, s.running.lock()).await.is_err() {
            tracing::warn!(
                grace_s = shutdown_grace.as_secs(),
                "the running sync did not stop within the grace; its lease expires by itself"
            );
        }
        if let Some(events) = events {
            // Files in flight finish; their messages are deleted or come back.
            let _ = tokio::time::timeout(shutdown_grace, events).await;
        }
    };
    crate::serve::listener::serve(listener, app, crate::serve::listener::Limits::default(), drained)
        .await
        .map_err(|e| DaemonError::Runtime(format!("http server: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// The Prometheus recorder, with buckets fitted to sync durations and event lags.
fn install_metrics(config: &Config) -> Result<PrometheusHandle, DaemonError> {
    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(metric::SYNC_DURATION.into()),
            &[10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0],
        )
        .map_err(|e| DaemonError::Runtime(format!("metrics: {e}")))?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(metric::EVENT_LAG.into()),
            &[5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0],
        )
        .map_err(|e| DaemonError::Runtime(format!("metrics: {e}")))?
        .install_recorder()
        .map_err(|e| DaemonError::Runtime(format!("metrics: {e}")))?;
    metrics::gauge!(metric::RPO_TARGET).set(config.sync.max_gap.as_secs_f64());
    Ok(metrics)
}

/// Seeds the gap from what earlier runs recorded; an unreachable state container is not
/// fatal here (the first run will say more).
async fn seed_gaps(shared: &Shared, target: &crate::config::TargetConfig) {
    if let Ok((_, state)) = crate::storage::blob::open_target(target, shared.config.retry.max_delay) {
        for s in &shared.config.sources {
            match SourceHealth::load(state.as_ref(), s.name.as_str()).await {
                Ok(h) => {
                    if let Some(t) = h.last_success_started_at {
                        lock(&shared.last_complete_start).insert(s.name.to_string(), t);
                    }
                }
                Err(e) => tracing::warn!(source = s.name.as_str(), error = %e, "cannot read health state yet"),
            }
        }
    }
}

/// The scheduler with the sync and verify jobs added, not yet started.
async fn scheduler(shared: &Arc<Shared>) -> Result<JobScheduler, DaemonError> {
    let scheduler = JobScheduler::new()
        .await
        .map_err(|e| DaemonError::Runtime(format!("scheduler: {e}")))?;
    let s = shared.clone();
    let sync_job = Job::new_async(shared.config.schedule.cron.as_str(), move |_, _| {
        let s = s.clone();
        Box::pin(async move { scheduled_sync(&s).await })
    })
    .map_err(|e| DaemonError::Config(format!("schedule.cron {:?}: {e}", shared.config.schedule.cron)))?;
    let s = shared.clone();
    let verify_job = Job::new_async(shared.config.schedule.verify_cron.as_str(), move |_, _| {
        let s = s.clone();
        Box::pin(async move { scheduled_verify(&s).await })
    })
    .map_err(|e| {
        DaemonError::Config(format!(
            "schedule.verify_cron {:?}: {e}",
            shared.config.schedule.verify_cron
        ))
    })?;
    for job in [sync_job, verify_job] {
        scheduler
            .add(job)
            .await
            .map_err(|e| DaemonError::Runtime(format!("scheduler: {e}")))?;
    }
    Ok(scheduler)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The interval between two ticks of `cron` (the first two after now); an hour when it
/// cannot be read (the schedule was checked at start-up, so only as a fallback).
fn schedule_interval(cron: &str) -> Duration {
    let interval = crate::config::parse_cron(cron).ok().and_then(|c| {
        let first = c.find_next_occurrence(&Utc::now(), false).ok()?;
        let second = c.find_next_occurrence(&first, false).ok()?;
        (second - first).to_std().ok()
    });
    interval.unwrap_or(Duration::from_secs(3600))
}

/// How long the sync in progress has run, if one is.
fn run_in_progress(s: &Shared) -> Option<Duration> {
    lock(&s.run_started).map(|t| t.elapsed())
}

/// 503 when a sync has been running for more than twice the schedule's interval: the
/// process answers, but its work is stuck, and a restart is what helps. No external call.
async fn livez(State(s): State<Arc<Shared>>) -> (StatusCode, String) {
    match run_in_progress(&s) {
        Some(running) if running > s.stuck_after => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stuck: a sync has been running for {} s (more than twice the schedule's interval)\n",
                running.as_secs()
            ),
        ),
        _ => (StatusCode::OK, "ok".into()),
    }
}

async fn readyz(State(s): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time
/// (over SHA-256 digests, so neither content nor length leaks through timing).
fn bearer_matches(headers: &HeaderMap, token: &Secret<String>) -> bool {
    use sha2::{Digest, Sha256};
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
    else {
        return false;
    };
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(token.expose().as_bytes());
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics_endpoint(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(token) = &s.metrics_token {
        if !bearer_matches(&headers, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"trailvault metrics\"")],
                "a bearer token is required\n",
            )
                .into_response();
        }
    }
    metrics_text(&s).into_response()
}

/// The gap is computed at scrape time from what runs recorded: no I/O here.
fn metrics_text(s: &Shared) -> String {
    let now = Utc::now();
    let running = run_in_progress(s).map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!(metric::RUN_IN_PROGRESS).set(running);
    for source in &s.config.sources {
        if let Some(t) = lock(&s.last_complete_start).get(source.name.as_str()) {
            metrics::gauge!(metric::BACKUP_GAP, "source" => source.name.to_string())
                .set((now - *t).num_seconds() as f64);
        }
    }
    s.metrics.render()
}

async fn scheduled_sync(s: &Shared) {
    let Ok(_guard) = s.running.try_lock() else {
        tracing::warn!("the previous sync is still running; this tick is skipped");
        return;
    };
    if !s.ready.load(Ordering::SeqCst) {
        return;
    }
    let _in_progress = InProgress::start(s);
    let job = match crate::app::sync_job(&s.config, &[], false, Arc::new(NoProgress), None).await {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the sync");
            return;
        }
    };
    // The job's own token also ends its retry waits; SIGTERM cancels it.
    let _linked = crate::app::cancel_on(&job.cancel, &s.shutdown);
    match job.run().await {
        Ok(report) => {
            record_sync(s, &report);
            // Publishing (bounded by its own budget) holds neither the next tick nor `/livez`.
            drop(_in_progress);
            drop(_guard);
            crate::app::publish_run(&s.config, &report.run_id).await;
        }
        Err(SyncError::Lock(LockError::Held { holder })) => {
            metrics::counter!(metric::LOCK_REFUSED).increment(1);
            tracing::warn!(holder, "another sync holds the lock; this tick is skipped");
        }
        Err(e) => {
            for source in &s.config.sources {
                metrics::counter!(metric::SYNC_RUNS, "source" => source.name.to_string(), "status" => "Failed")
                    .increment(1);
            }
            tracing::error!(error = %e, "sync failed");
        }
    }
}

/// Marks a sync in progress until dropped.
struct InProgress<'a>(&'a Shared);

impl<'a> InProgress<'a> {
    fn start(s: &'a Shared) -> Self {
        *lock(&s.run_started) = Some(std::time::Instant::now());
        Self(s)
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        *lock(&self.0.run_started) = None;
    }
}

fn record_sync(s: &Shared, report: &SyncReport) {
    let end = report.finished_at.timestamp() as f64;
    let seconds = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
    for src in &report.sources {
        let name = src.name.clone();
        let status = match src.status() {
            RunStatus::Succeeded => "Succeeded",
            RunStatus::Partial => "Partial",
            RunStatus::Failed => "Failed",
        };
        metrics::counter!(metric::SYNC_RUNS, "source" => name.clone(), "status" => status).increment(1);
        metrics::gauge!(metric::SYNC_LAST_RUN, "source" => name.clone()).set(end);
        metrics::counter!(metric::OBJECTS_COPIED, "source" => name.clone()).increment(src.files_copied);
        metrics::counter!(metric::BYTES_COPIED, "source" => name.clone()).increment(src.bytes_copied);
        metrics::counter!(metric::OBJECTS_SKIPPED, "source" => name.clone()).increment(src.files_skipped);
        metrics::counter!(metric::OBJECTS_FAILED, "source" => name.clone()).increment(src.files_failed);
        metrics::counter!(metric::CONFLICTS, "source" => name.clone()).increment(src.conflicts.len() as u64);
        metrics::histogram!(metric::SYNC_DURATION, "source" => name.clone()).record(seconds);
        if let Some(h) = src.aws_health {
            let active = if h == AwsHealth::Outage { 1.0 } else { 0.0 };
            metrics::gauge!(metric::FAILOVER_ACTIVE, "source" => name.clone()).set(active);
        }
        if let Some(t) = src.newest_file_time {
            metrics::gauge!(metric::NEWEST_FILE, "source" => name.clone()).set(t.timestamp() as f64);
        }
        if src.complete {
            metrics::gauge!(metric::SYNC_LAST_SUCCESS, "source" => name.clone()).set(end);
            lock(&s.last_complete_start).insert(name, report.started_at);
        }
    }
}

async fn scheduled_verify(s: &Shared) {
    let job = match crate::app::verify_last_day_job(&s.config) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the verify");
            return;
        }
    };
    match job.run().await {
        Ok(report) => {
            for p in &report.problems {
                metrics::counter!(metric::VERIFY_PROBLEMS, "kind" => p.kind.as_str()).increment(1);
            }
            if report.ok {
                metrics::gauge!(metric::VERIFY_LAST_SUCCESS).set(report.finished_at.timestamp() as f64);
            }
            tracing::info!(
                ok = report.ok,
                problems = report.problems.len(),
                "scheduled verify done"
            );
            crate::app::publish_run(&s.config, &report.run_id).await;
        }
        Err(e) => tracing::error!(error = %e, "verify failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Classify, Fault};

    #[test]
    fn only_configuration_problems_are_configuration_errors() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let listen = |kind| DaemonError::Listen {
            addr,
            source: std::io::Error::from(kind),
        };
        assert_eq!(DaemonError::Config("schedule.cron: bad".into()).fault(), Fault::Config);
        assert_eq!(listen(std::io::ErrorKind::AddrNotAvailable).fault(), Fault::Config);
        assert_eq!(listen(std::io::ErrorKind::AddrInUse).fault(), Fault::Failed);
        assert_eq!(listen(std::io::ErrorKind::PermissionDenied).fault(), Fault::Failed);
        assert_eq!(DaemonError::Runtime("scheduler: gone".into()).fault(), Fault::Failed);
        assert!(listen(std::io::ErrorKind::AddrInUse)
            .to_string()
            .contains("127.0.0.1:8080"));
    }

    #[tokio::test]
    async fn a_schedule_the_daemon_cannot_run_is_refused_as_configuration() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("trailvault.example.toml");
        let mut config = crate::files::read_config(&path, &crate::config::ProcessEnv).unwrap();
        config.schedule.cron = "every day".into();
        let err = run(config, "127.0.0.1:0".parse().unwrap(), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, DaemonError::Config(_)), "{err:?}");
        assert_eq!(err.fault(), Fault::Config);
    }

    #[test]
    fn only_the_exact_bearer_token_opens_metrics() {
        let token = Secret::new("s3cr3t-token".to_string());
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(bearer_matches(&with("Bearer s3cr3t-token"), &token));
        assert!(bearer_matches(&with("bearer  s3cr3t-token "), &token));
        assert!(!bearer_matches(&with("Bearer s3cr3t-toke"), &token));
        assert!(!bearer_matches(&with("Bearer s3cr3t-token2"), &token));
        assert!(!bearer_matches(&with("Basic s3cr3t-token"), &token));
        assert!(!bearer_matches(&with("s3cr3t-token"), &token));
        assert!(!bearer_matches(&HeaderMap::new(), &token));
    }
}
