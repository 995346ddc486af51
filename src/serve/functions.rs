//! `trailvault functions`: the Azure Functions custom handler. The host starts us with
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, polls `GET /` until we answer, then calls
//! `POST /sync` and `POST /verify` for the timer functions and forwards the HTTP
//! function as `GET /api/status` (`enableProxyingHttpRequest`). A timer reply is
//! `{"Outputs": {}, "Logs": [...], "ReturnValue": null}`; any non-2xx status marks the
//! invocation failed (failed timer runs are not retried: the next schedule is).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{Config, ConfigError};
use crate::progress::NoProgress;
use crate::records::RunStatus;

pub const PORT_ENV: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

#[derive(Debug, thiserror::Error)]
pub enum FunctionsError {
    #[error("{PORT_ENV} is not set: `trailvault functions` is started by the Azure Functions host")]
    NoPort,
    #[error("{PORT_ENV}={0:?} is not a port")]
    BadPort(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

impl crate::fault::Classify for FunctionsError {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Config
    }
}

/// The config, or the reason it is unusable: invocations then fail with that reason
/// instead of the host restarting a handler that cannot start.
struct Handler {
    config: Result<Config, String>,
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
    let handler = Arc::new(Handler {
        config: config.map_err(|e| e.to_string()),
        shutdown: tokio_util::sync::CancellationToken::new(),
    });
    if let Err(e) = &handler.config {
        tracing::error!(
            error = e,
            "configuration is unusable; every invocation will fail until it is fixed"
        );
    }
    let app = Router::new()
        .route("/", get(|| async { "trailvault" }))
        .route("/sync", post(sync))
        .route("/verify", post(verify))
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
        served = server => served.map_err(|e| FunctionsError::Listen(addr, e)),
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
    let job = match crate::app::sync_job(config, &[], false, Arc::new(NoProgress)).await {
        Ok(j) => j,
        Err(e) => return reply(false, vec![format!("cannot set up the sync: {e}")]),
    };
    let _linked = crate::app::cancel_on(&job.cancel, &h.shutdown);
    match job.run().await {
        Ok(report) => {
            crate::app::publish_run(config, &report.run_id).await;
            reply(report.status == RunStatus::Succeeded, report.summary_lines())
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
    let result = async {
        let target = config.require_target("status").map_err(|e| e.to_string())?;
        let (_, state) = crate::storage::blob::open_target(target).map_err(|e| e.to_string())?;
        let sources: Vec<String> = config.sources.iter().map(|s| s.name.clone()).collect();
        let max_gap = chrono::Duration::from_std(config.sync.max_gap).unwrap_or(chrono::Duration::hours(8));
        crate::failover::status::status(state.as_ref(), &sources, max_gap, Utc::now())
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(report) => (StatusCode::OK, Json(serde_json::to_value(report).unwrap_or_default())),
        Err(e) => (StatusCode::BAD_GATEWAY, Json(json!({ "error": e }))),
    }
}
