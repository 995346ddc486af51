//! The daemon's event loop: every source with a queue is long-polled all the time,
//! beside the schedule, one `Events` record per source every [`RECORD_EVERY`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::{self, DrainMode};
use crate::config::Config;

/// How long one drain of the loop lasts: each ends with its records.
pub const RECORD_EVERY: Duration = Duration::from_secs(300);
/// Pause after a drain that could not be set up (a bad role, an unreachable identity).
const SETUP_RETRY: Duration = Duration::from_secs(30);

/// Starts the loop when a source has a queue; it ends after `shutdown`, once the files
/// in flight are archived and its last records written.
pub fn spawn(config: Config, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    if !app::has_queues(&config, &[]) {
        return None;
    }
    Some(tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            let mode = DrainMode::Daemon {
                record_every: RECORD_EVERY,
            };
            let job = match app::drain_job(&config, &[], mode).await {
                Ok(job) => job,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the event loop; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(SETUP_RETRY) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            };
            let _linked = app::cancel_on(&job.cancel, &shutdown);
            let report = job.run().await;
            for s in &report.sources {
                tracing::info!(
                    source = s.name,
                    messages = s.messages,
                    files_copied = s.files_copied,
                    files_failed = s.files_failed,
                    lag_p99 = s.lag_seconds.p99,
                    "events"
                );
            }
            app::publish_run(&config, &report.run_id).await;
        }
    }))
}
