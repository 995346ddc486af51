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
