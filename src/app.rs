//! Wiring from a validated [`Config`] to the jobs the library runs: shared by the CLI
//! and the long-running daemon, so both build a sync or a verify the same way.

use std::sync::Arc;

use crate::cloudtrail::TimeRange;
use crate::config::{Config, ConfigError};
use crate::failover::select::Selection;
use crate::failover::verify::VerifyJob;
use crate::progress::Progress;
use crate::storage::blob::open_target;
use crate::storage::s3::S3Source;
use crate::sync::{SourceHandle, SyncJob};

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Invalid(String),
}

/// A sync of the named sources (all when `only` is empty).
pub async fn sync_job(
    config: &Config,
    only: &[String],
    dry_run: bool,
    progress: Arc<dyn Progress>,
) -> Result<SyncJob, WiringError> {
    config.require_sources("sync")?;
    let target = config.require_target("sync")?;
    for name in only {
        if config.source(name).is_none() {
            let have: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            return Err(WiringError::Invalid(format!(
                "--source {name}: no such source in {} (have: {})",
                config.path.display(),
                have.join(", ")
            )));
        }
    }
    let (archive, state) = open_target(target).map_err(|e| WiringError::Invalid(e.to_string()))?;
    let mut sources = Vec::new();
    for s in config
        .sources
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
    {
        sources.push(SourceHandle {
            name: s.name.clone(),
            prefix: s.prefix.clone(),
            source: Arc::new(S3Source::connect(s).await),
        });
    }
    Ok(SyncJob {
        sources,
        archive,
        state,
        settings: config.sync.clone(),
        dry_run,
        progress,
        health: config.health.clone(),
    })
}

/// A verify of the given sources over `range`.
pub fn verify_job(config: &Config, sources: Vec<String>, range: TimeRange) -> Result<VerifyJob, WiringError> {
    let target = config.require_target("verify")?;
    let (archive, state) = open_target(target).map_err(|e| WiringError::Invalid(e.to_string()))?;
    Ok(VerifyJob {
        archive,
        state: Some(state),
        selection: Selection {
            sources,
            range,
            digests: true,
            ..Default::default()
        },
        concurrency: config.sync.concurrency,
    })
}

/// The scheduled verify (daemon and Functions): every source, the last day.
pub fn verify_last_day_job(config: &Config) -> Result<VerifyJob, WiringError> {
    let until = chrono::Utc::now();
    let range = TimeRange {
        since: Some(until - chrono::Duration::days(1)),
        until: Some(until),
    };
    verify_job(config, config.sources.iter().map(|s| s.name.clone()).collect(), range)
}

/// The Entra credential for `[log_analytics]`: the target's identity when it is the same
/// kind (one managed identity serves both), else one of the named kind.
fn la_credential(
    config: &Config,
    la: &crate::config::LogAnalyticsConfig,
) -> Result<Arc<dyn azure_core::credentials::TokenCredential>, WiringError> {
    use crate::config::{AzureAuth, ProcessEnv};
    use crate::storage::azure_auth::{client_auth, ClientAuth};
    let target_auth = config
        .target
        .as_ref()
        .map(|t| t.auth.clone())
        .filter(|a| a.kind() == la.auth);
    let env = |k: &str| crate::config::Env::var(&ProcessEnv, k).unwrap_or_default();
    let auth = match (target_auth, la.auth.as_str()) {
        (Some(a), _) => a,
        (None, "managed-identity") => AzureAuth::ManagedIdentity { client_id: None },
        (None, "workload-identity") => AzureAuth::WorkloadIdentity,
        (None, "developer-tools") => AzureAuth::DeveloperTools,
        (None, "client-secret") => AzureAuth::ClientSecret {
            tenant_id: env("AZURE_TENANT_ID"),
            client_id: env("AZURE_CLIENT_ID"),
            secret: crate::secret::Secret::new(env("AZURE_CLIENT_SECRET")),
        },
        (None, other) => {
            return Err(WiringError::Invalid(format!(
                "log_analytics.auth {other:?} is not a token kind"
            )))
        }
    };
    match client_auth(&auth).map_err(WiringError::Invalid)? {
        ClientAuth::Token(credential) => Ok(credential),
        _ => Err(WiringError::Invalid("log_analytics needs a token credential".into())),
    }
}

/// The Logs Ingestion client of `[log_analytics]`, or None when it is not configured.
pub fn ingestion(config: &Config) -> Result<Option<crate::monitor::LogsIngestion>, WiringError> {
    let Some(la) = &config.log_analytics else {
        return Ok(None);
    };
    crate::monitor::LogsIngestion::new(
        &la.ingestion_endpoint,
        &la.dcr_immutable_id,
        &la.stream,
        la_credential(config, la)?,
        azure_core::http::ClientOptions::default(),
    )
    .map(Some)
    .map_err(|e| WiringError::Invalid(e.to_string()))
}

/// The query client for `status --from log-analytics`.
pub fn logs_query(config: &Config) -> Result<crate::monitor::LogsQuery, WiringError> {
    let la = config
        .log_analytics
        .as_ref()
        .ok_or_else(|| WiringError::Invalid(format!("{} has no [log_analytics] section", config.path.display())))?;
    if la.workspace_id.is_empty() {
        return Err(WiringError::Invalid(
            "log_analytics.workspace_id (the workspace GUID) is needed for queries".into(),
        ));
    }
    crate::monitor::LogsQuery::new(
        &la.workspace_id,
        la_credential(config, la)?,
        azure_core::http::ClientOptions::default(),
    )
    .map_err(|e| WiringError::Invalid(e.to_string()))
}

/// Sends a finished run's records to Log Analytics when configured (spooling on
/// failure). Best effort: the run's outcome and exit code do not depend on it.
pub async fn publish_run(config: &Config, run_id: &str) {
    let client = match ingestion(config) {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "Log Analytics is configured but unusable; records stay in runs/");
            return;
        }
    };
    let Some(target) = &config.target else { return };
    let state = match crate::storage::blob::open_target(target) {
        Ok((_, state)) => state,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the state container to publish records");
            return;
        }
    };
    let out = crate::failover::publish::publish(state.as_ref(), &client, run_id).await;
    tracing::info!(
        sent = out.sent.len(),
        spooled = out.spooled.len(),
        "records published to Log Analytics"
    );
}
