//! `trailvault functions`: the Azure Functions custom handler. The host starts us with
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, polls `GET /` until we answer, then calls
//! `POST /sync` and `POST /verify` for the timer functions and forwards the HTTP
//! function as `GET /api/status` (`enableProxyingHttpRequest`). A timer reply is
//! `{"Outputs": {}, "Logs": [...], "ReturnValue": null}`; any non-2xx status marks the
//! invocation failed (failed timer runs are not retried: the next schedule is).
//!
//! A sync stops starting files before the function times out: at `functionTimeout` from
//! the `host.json` beside the handler minus 60 s, or after the app setting
//! `TRAILVAULT_SYNC_DEADLINE`. A run stopped only by that deadline answers 200, so a
//! long first backfill advances across invocations.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{Config, ConfigError};
use crate::progress::NoProgress;

pub const PORT_ENV: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
/// App setting: how long a sync may start files (humantime), instead of the timeout in host.json.
pub const DEADLINE_ENV: &str = "TRAILVAULT_SYNC_DEADLINE";
/// Time kept between the sync's deadline and `functionTimeout`, to save progress.
pub const TIMEOUT_MARGIN: Duration = Duration::from_secs(60);
/// The Consumption plan's default `functionTimeout`, the shortest of the plans' defaults.
const CONSUMPTION_DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum FunctionsError {
    #[error("{PORT_ENV} is not set: `trailvault functions` is started by the Azure Functions host")]
    NoPort,
    #[error("{PORT_ENV}={0:?} is not a port")]
    BadPort(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("the handler's server on {0} stopped: {1}")]
    Serve(SocketAddr, std::io::Error),
}

impl crate::fault::Classify for FunctionsError {
    fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            FunctionsError::NoPort | FunctionsError::BadPort(_) => Fault::Config,
            // The host chose the port: one in use is a failure of this start, not of the config.
            FunctionsError::Listen(..) | FunctionsError::Serve(..) => Fault::Failed,
        }
    }
}

/// The config, or the reason it is unusable: invocations then fail with that reason
/// instead of the host restarting a handler that cannot start.
struct Handler {
    config: Result<Config, ConfigError>,
    /// How long an invocation's sync may start files (None: no limit found).
    sync_budget: Option<Duration>,
    /// Cancelled when the host stops us: a running sync starts no new file, saves its
    /// progress and releases its lease before the reply.
    shutdown: tokio_util::sync::CancellationToken,
}

/// The timer payload, read leniently (the host's shape is not documented).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Invocation {
    data: Value,
    metadata: Value,
}

type Reply = (StatusCode, Json<Value>);

fn reply(ok: bool, logs: Vec<String>) -> Reply {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (
        status,
        Json(json!({ "Outputs": {}, "Logs": logs, "ReturnValue": null })),
    )
}

pub async fn run(
    config: Result<Config, ConfigError>,
    port: Option<String>,
    shutdown_grace: std::time::Duration,
) -> Result<(), FunctionsError> {
    let port = port.ok_or(FunctionsError::NoPort)?;
    let port: u16 = port.parse().map_err(|_| FunctionsError::BadPort(port.clone()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let candidates = host_json_candidates();
    let sync_budget = match sync_budget(std::env::var(DEADLINE_ENV).ok().as_deref(), &candidates) {
        // A malformed app setting must not leave runs unbounded: fall back to host.json.
        Err(e @ BudgetError::BadSetting(_)) => {
            tracing::warn!(error = %e, "ignoring the app setting; using host.json");
            sync_budget(None, &candidates)
        }
        other => other,
    };
    match &sync_budget {
        Ok((budget, from)) => tracing::info!(
            deadline_seconds = budget.map(|b| b.as_secs()),
            from = from.as_str(),
            "sync deadline per invocation"
        ),
        Err(e) => tracing::warn!(error = %e, "no sync deadline: runs may outlive the function timeout"),
    }
    let handler = Arc::new(Handler {
        config,
        sync_budget: sync_budget.ok().and_then(|(b, _)| b),
        shutdown: tokio_util::sync::CancellationToken::new(),
    });
    if let Err(e) = &handler.config {
        tracing::error!(
            error = %e,
            "configuration is unusable; every invocation will fail until it is fixed"
        );
    }
    let app = Router::new()
        .route("/", get(|| async { "trailvault" }))
        .route("/sync", post(sync))
        .route("/verify", post(verify))
        .route("/drain", post(drain))
        .route("/api/status", get(status))
        .with_state(handler.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| FunctionsError::Listen(addr, e))?;
    tracing::info!(addr = %addr, "custom handler listening");
    let stopping = handler.shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        crate::serve::shutdown::shutdown_signal().await;
        tracing::info!("shutting down: a running sync stops at its next file");
        stopping.cancel();
    });
    let stopped = handler.shutdown.clone();
    tokio::select! {
        served = server => served.map_err(|e| FunctionsError::Serve(addr, e)),
        // The graceful drain waits for running invocations; never past the grace.
        _ = async move {
            stopped.cancelled().await;
            tokio::time::sleep(shutdown_grace).await;
        } => {
            tracing::warn!(grace_s = shutdown_grace.as_secs(), "invocations did not finish within the grace");
            Ok(())
        }
    }
}

async fn sync(State(h): State<Arc<Handler>>, body: Option<Json<Invocation>>) -> Reply {
    let invocation = body.map(|Json(b)| b).unwrap_or_default();
    tracing::debug!(past_due = ?invocation.data.pointer("/timer/IsPastDue"), method = ?invocation.metadata.pointer("/sys/MethodName"), "timer invocation");
    let config = match &h.config {
        Ok(c) => c,
        Err(e) => return reply(false, vec![format!("configuration error: {e}")]),
    };
    let deadline = h.sync_budget.map(|b| tokio::time::Instant::now() + b);
    let job = match crate::app::sync_job(config, &[], false, Arc::new(NoProgress), deadline).await {
        Ok(j) => j,
        Err(e) => return reply(false, vec![format!("cannot set up the sync: {e}")]),
    };
    let _linked = crate::app::cancel_on(&job.cancel, &h.shutdown);
    match job.run().await {
        Ok(report) => {
            crate::app::publish_run(config, &report.run_id).await;
            reply(report.is_success(), report.summary_lines())
        }
        Err(e) => reply(false, vec![e.to_string()]),
    }
}

async fn verify(State(h): State<Arc<Handler>>) -> Reply {
    let config = match &h.config {
        Ok(c) => c,
        Err(e) => return reply(false, vec![format!("configuration error: {e}")]),
    };
    let job = match crate::app::verify_last_day_job(config) {
        Ok(j) => j,
        Err(e) => return reply(false, vec![format!("cannot set up the verify: {e}")]),
    };
    match job.run().await {
        Ok(report) => {
            crate::app::publish_run(config, &report.run_id).await;
            let mut logs = vec![format!(
                "verify {}: {} ({} blobs, {} digests, {} logs)",
                report.run_id,
                if report.ok { "OK" } else { "PROBLEMS FOUND" },
                report.checked.blobs,
                report.checked.digests,
                report.checked.logs
            )];
            logs.extend(
                report
                    .problems
                    .iter()
                    .take(50)
                    .map(|p| format!("{:?} {}: {}", p.kind, p.key, p.detail)),
            );
            reply(report.ok, logs)
        }
        Err(e) => reply(false, vec![e.to_string()]),
    }
}

async fn status(State(h): State<Arc<Handler>>) -> Reply {
    let config = match &h.config {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": format!("configuration error: {e}") })),
            )
        }
    };
    // The same wiring as `trailvault status` (retries, limits), from the state container.
    match crate::app::status(config, crate::app::StatusSource::State, Utc::now()).await {
        Ok(report) => (StatusCode::OK, Json(serde_json::to_value(report).unwrap_or_default())),
        Err(e) => (StatusCode::BAD_GATEWAY, Json(json!({ "error": e.to_string() }))),
    }
}

/// Where the host.json of this Functions app may be: the script root the host names,
/// the working directory the host starts us in, and the executable's folder.
fn host_json_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(root) = std::env::var("AzureWebJobsScriptRoot") {
        out.push(Path::new(&root).join("host.json"));
    }
    if let Ok(dir) = std::env::current_dir() {
        out.push(dir.join("host.json"));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join("host.json"));
    }
    out
}

/// Why an invocation's sync budget could not be read.
#[derive(Debug, Clone, thiserror::Error)]
enum BudgetError {
    /// The app setting is not a duration: host.json is used instead.
    #[error("{0}")]
    BadSetting(String),
    #[error("{0}")]
    NoHostJson(String),
    #[error("{0}")]
    BadHostJson(String),
}

/// The sync budget per invocation and where it came from: the app setting when set,
/// else `functionTimeout` of the first host.json found minus [`TIMEOUT_MARGIN`]
/// (`Ok(None)`: the timeout is unbounded, `-1`).
fn sync_budget(setting: Option<&str>, candidates: &[PathBuf]) -> Result<(Option<Duration>, String), BudgetError> {
    if let Some(s) = setting.filter(|s| !s.trim().is_empty()) {
        let d = humantime::parse_duration(s.trim()).map_err(|e| {
            BudgetError::BadSetting(format!("{DEADLINE_ENV}={s:?} is not a duration like 8m or 25m: {e}"))
        })?;
        return Ok((Some(d), DEADLINE_ENV.to_string()));
    }
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        return Err(BudgetError::NoHostJson(format!(
            "no host.json found (looked at {candidates:?}) and {DEADLINE_ENV} is not set"
        )));
    };
    let bad = |e: &dyn std::fmt::Display| BudgetError::BadHostJson(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
    let host: Value = serde_json::from_str(&text).map_err(|e| bad(&e))?;
    let from = format!("functionTimeout in {}", path.display());
    let timeout = match host.get("functionTimeout").and_then(Value::as_str) {
        // The plan's default applies, which we cannot see: assume the shortest (Consumption's).
        None => Some(CONSUMPTION_DEFAULT_TIMEOUT),
        Some(t) if t.trim() == "-1" => None,
        Some(t) => Some(parse_timespan(t).ok_or_else(|| bad(&format!("functionTimeout {t:?} is not hh:mm:ss")))?),
    };
    match timeout {
        None => Ok((None, from)),
        Some(timeout) => {
            // Keep a margin to save progress; a very short timeout keeps half of itself.
            let budget = timeout
                .checked_sub(TIMEOUT_MARGIN)
                .filter(|b| !b.is_zero())
                .unwrap_or(timeout / 2);
            Ok((Some(budget), from))
        }
    }
}

/// A .NET TimeSpan as host.json writes it: `[d.]hh:mm:ss[.fffffff]`.
fn parse_timespan(s: &str) -> Option<Duration> {
    let s = s.trim();
    let parts: Vec<&str> = s.split(':').collect();
    let [h, m, sec] = parts.as_slice() else {
        return None;
    };
    let (days, hours) = match h.split_once('.') {
        Some((d, h)) => (d.parse::<u64>().ok()?, h.parse::<u64>().ok()?),
        None => (0, h.parse::<u64>().ok()?),
    };
    let minutes: u64 = m.parse().ok()?;
    let seconds: f64 = sec.parse().ok()?;
    if minutes >= 60 || !(0.0..60.0).contains(&seconds) {
        return None;
    }
    Some(Duration::from_secs(days * 86_400 + hours * 3600 + minutes * 60) + Duration::from_secs_f64(seconds))
}

/// The `drain` timer (every 5 minutes): the queues until empty, within the sync budget.
async fn drain(State(h): State<Arc<Handler>>) -> Reply {
    let config = match &h.config {
        Ok(c) => c,
        Err(e) => return reply(false, vec![format!("configuration error: {e}")]),
    };
    if !crate::app::has_queues(config, &[]) {
        return reply(true, vec!["drain: no source has a queue_url".into()]);
    }
    let max_time = h.sync_budget.unwrap_or(DRAIN_MAX_TIME).min(DRAIN_MAX_TIME);
    let job = match crate::app::drain_job(config, &[], crate::app::DrainMode::Once { max_time }).await {
        Ok(j) => j,
        Err(e) => return reply(false, vec![format!("cannot set up the drain: {e}")]),
    };
    let _linked = crate::app::cancel_on(&job.cancel, &h.shutdown);
    let report = job.run().await;
    crate::app::publish_run(config, &report.run_id).await;
    let logs = report
        .sources
        .iter()
        .map(|s| {
            format!(
                "drain {} {}: {} messages, {} copied, {} already archived, {} failed",
                report.run_id, s.name, s.messages, s.files_copied, s.files_already_archived, s.files_failed
            )
        })
        .collect();
    reply(!report.failed(), logs)
}

/// A drain invocation ends well before the next timer (every 5 minutes).
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(240);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Classify, Fault};

    #[test]
    fn a_bad_port_variable_is_configuration_and_a_taken_port_a_failure() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 7071));
        let io = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        assert_eq!(FunctionsError::NoPort.fault(), Fault::Config);
        assert_eq!(FunctionsError::BadPort("x".into()).fault(), Fault::Config);
        assert_eq!(FunctionsError::Listen(addr, io()).fault(), Fault::Failed);
        assert_eq!(FunctionsError::Serve(addr, io()).fault(), Fault::Failed);
    }

    #[tokio::test]
    async fn a_port_in_use_fails_the_start() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let config = Err(ConfigError::Invalid {
            path: PathBuf::from("trailvault.toml"),
            problems: vec!["not needed to meet the port".into()],
        });
        let err = run(config, Some(port.to_string()), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, FunctionsError::Listen(..)), "{err:?}");
        assert_eq!(err.fault(), Fault::Failed);
    }

    #[test]
    fn timespans_parse_as_the_host_writes_them() {
        assert_eq!(parse_timespan("00:10:00"), Some(Duration::from_secs(600)));
        assert_eq!(parse_timespan("01:30:05"), Some(Duration::from_secs(5405)));
        assert_eq!(parse_timespan("1.00:00:00"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_timespan("00:00:30.5"), Some(Duration::from_millis(30_500)));
        assert_eq!(parse_timespan("10m"), None);
        assert_eq!(parse_timespan("00:61:00"), None);
    }

    #[test]
    fn the_budget_is_the_timeout_minus_a_minute_or_the_app_setting() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host.json");
        let missing = dir.path().join("nowhere/host.json");
        std::fs::write(&host, r#"{"version": "2.0", "functionTimeout": "00:10:00"}"#).unwrap();
        let (budget, from) = sync_budget(None, &[missing.clone(), host.clone()]).unwrap();
        assert_eq!(budget, Some(Duration::from_secs(540)));
        assert!(from.contains("host.json"), "{from}");
        let (budget, from) = sync_budget(Some("25m"), std::slice::from_ref(&host)).unwrap();
        assert_eq!(budget, Some(Duration::from_secs(1500)));
        assert_eq!(from, DEADLINE_ENV);
        assert!(sync_budget(Some("soon"), std::slice::from_ref(&host)).is_err());
        std::fs::write(&host, r#"{"functionTimeout": "-1"}"#).unwrap();
        assert_eq!(sync_budget(None, std::slice::from_ref(&host)).unwrap().0, None);
        std::fs::write(&host, r#"{"version": "2.0"}"#).unwrap();
        assert_eq!(
            sync_budget(None, std::slice::from_ref(&host)).unwrap().0,
            Some(Duration::from_secs(240))
        );
        std::fs::write(&host, r#"{"functionTimeout": "00:00:40"}"#).unwrap();
        assert_eq!(sync_budget(None, &[host]).unwrap().0, Some(Duration::from_secs(20)));
        assert!(sync_budget(None, &[missing]).is_err());
    }
}
