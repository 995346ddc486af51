//! One writer at a time: a lease on `locks/sync` in the state container, renewed in
//! the background. Losing it cancels a token the copy loop checks before each write.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::records::rfc3339;
use crate::storage::{read_all, BlobStore, Condition, ErrorKind, PutOptions, StateStore, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another sync holds the lock (locks/sync in the state container): {holder}. Wait for it to finish; a crashed holder's lease expires within {LEASE_SECONDS} s")]
    Held { holder: String },
    #[error("the state container is not usable: {0}")]
    State(#[source] StorageError),
}

pub const LOCK_BLOB: &str = "locks/sync";
/// Short, so that a crashed holder blocks the next run for seconds, not minutes.
pub const LEASE_SECONDS: u32 = 15;
const RENEW_EVERY: Duration = Duration::from_secs(5);
const RETRY_RENEW_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockHolder {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
}

impl LockHolder {
    pub fn this_process(run_id: &str, started_at: DateTime<Utc>) -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into());
        Self {
            run_id: run_id.to_string(),
            host,
            pid: std::process::id(),
            started_at,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "run {} on {} (pid {}) since {}",
            self.run_id,
            self.host,
            self.pid,
            rfc3339(self.started_at)
        )
    }
}

pub struct SyncLock {
    state: StateStore,
    lease_id: String,
    lost: CancellationToken,
    stop: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl SyncLock {
    pub async fn acquire(state: StateStore, holder: &LockHolder) -> Result<SyncLock, LockError> {
        let create = state
            .put(
                LOCK_BLOB,
                bytes::Bytes::new(),
                PutOptions {
                    condition: Condition::IfNoneMatch,
                    ..Default::default()
                },
            )
            .await;
        match create {
            Ok(_) => {}
            Err(e) if matches!(e.kind, ErrorKind::AlreadyExists | ErrorKind::PreconditionFailed) => {}
            Err(e) => return Err(LockError::State(e)),
        }
        let lease_id = acquire_lease(state.as_ref()).await?;
        let body = serde_json::to_vec(holder).unwrap_or_default();
        let body = state
            .put(
                LOCK_BLOB,
                body.into(),
                PutOptions {
                    content_type: Some("application/json".into()),
                    lease_id: Some(lease_id.clone()),
                    ..Default::default()
                },
            )
            .await;
        if let Err(e) = body {
            // Not ours to keep: the next run must not wait out a lease nobody renews.
            let _ = state.release_lease(LOCK_BLOB, &lease_id).await;
            return Err(LockError::State(e));
        }
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let renewer = tokio::spawn(renew_loop(state.clone(), lease_id.clone(), lost.clone(), stop.clone()));
        Ok(SyncLock {
            state,
            lease_id,
            lost,
            stop,
            renewer,
            released: false,
        })
    }

    /// Cancelled when the lease can no longer be trusted; stop writing then.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    pub async fn release(mut self) {
        self.stop.cancel();
        // A renewal in flight could take as long as the service does; it is not waited for.
        self.renewer.abort();
        self.released = true;
        if !self.lost.is_cancelled() {
            if let Err(e) = self.state.release_lease(LOCK_BLOB, &self.lease_id).await {
                tracing::warn!(error = %e, "could not release the sync lock; it expires by itself");
            }
        }
    }
}

/// A run dropped without `release` (its future cancelled in a long-lived process) must
/// neither renew the lease for ever nor hold it until it expires.
impl Drop for SyncLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.stop.cancel();
        self.renewer.abort();
        if self.lost.is_cancelled() {
            return;
        }
        let (state, lease_id) = (self.state.clone(), self.lease_id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = state.release_lease(LOCK_BLOB, &lease_id).await {
                    tracing::warn!(error = %e, "could not release a dropped run's sync lock; it expires by itself");
                }
            });
        }
    }
}

/// Acquires the lease, trying again through transient faults. A failed attempt may have
/// taken the lease with its answer lost; the lease is then ours but unknown, so a "held"
/// after such a failure waits for it to expire once before it is believed.
async fn acquire_lease(state: &dyn BlobStore) -> Result<String, LockError> {
    const ATTEMPTS: u32 = 6;
    let (mut attempt, mut unsure, mut waited_out) = (1, false, false);
    loop {
        match state.acquire_lease(LOCK_BLOB, LEASE_SECONDS).await {
            Ok(id) => return Ok(id),
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                unsure = true;
                attempt += 1;
                let wait = e.retry_after.unwrap_or(Duration::from_millis(200 * u64::from(attempt)));
                tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
            }
            Err(e) if e.kind == ErrorKind::LeaseHeld && unsure && !waited_out => {
                waited_out = true;
                tracing::info!(
                    "the lock is leased after an attempt whose answer was lost; waiting for that lease to expire"
                );
                tokio::time::sleep(Duration::from_secs(u64::from(LEASE_SECONDS) + 1)).await;
            }
            Err(e) if e.kind == ErrorKind::LeaseHeld => {
                return Err(LockError::Held {
                    holder: current_holder(state).await,
                })
            }
            Err(e) => return Err(LockError::State(e)),
        }
    }
}

async fn renew_loop(state: StateStore, lease_id: String, lost: CancellationToken, stop: CancellationToken) {
    let mut last_ok = Instant::now();
    let mut next = RENEW_EVERY;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(next) => {}
        }
        // After a failed renewal, try again soon: the lease's remaining time is the budget.
        next = RETRY_RENEW_AFTER;
        // A renewal must answer before the lease could have run out, or it is a failure.
        let left = Duration::from_secs(LEASE_SECONDS.into()).saturating_sub(last_ok.elapsed());
        let renewed = tokio::time::timeout(left, state.renew_lease(LOCK_BLOB, &lease_id))
            .await
            .unwrap_or_else(|_| {
                Err(StorageError::new(
                    ErrorKind::Unreachable,
                    "renew lease",
                    LOCK_BLOB,
                    "no answer before the lease could expire",
                ))
            });
        match renewed {
            Ok(()) => {
                last_ok = Instant::now();
                next = RENEW_EVERY;
            }
            Err(e) if e.kind == ErrorKind::PreconditionFailed => {
                tracing::error!(error = %e, "sync lock taken over; stopping writes");
                lost.cancel();
                return;
            }
            Err(e) => {
                // The service's clock decides expiry; give up a little before it could have.
                if last_ok.elapsed() + Duration::from_secs(2) >= Duration::from_secs(LEASE_SECONDS.into()) {
                    tracing::error!(error = %e, "could not renew the sync lock in time; stopping writes");
                    lost.cancel();
                    return;
                }
                tracing::warn!(error = %e, "renewing the sync lock failed; will retry");
            }
        }
    }
}

/// Since when a sync has been running, as the lock shows it: its lease is held, and
/// its holder document says since when (`now` when the holder has not written it yet).
pub async fn running_since(state: &dyn BlobStore, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StorageError> {
    Ok(match state.head(LOCK_BLOB).await? {
        Some(info) if info.leased => read_all(state, LOCK_BLOB)
            .await?
            .and_then(|(b, _)| serde_json::from_slice::<LockHolder>(&b).ok())
            .map(|h| h.started_at)
            .or(Some(now)),
        _ => None,
    })
}

async fn current_holder(state: &dyn BlobStore) -> String {
    // The winner writes its name right after acquiring; give it a moment.
    for _ in 0..10 {
        if let Ok(Some((bytes, _))) = read_all(state, LOCK_BLOB).await {
            if let Ok(h) = serde_json::from_slice::<LockHolder>(&bytes) {
                return h.describe();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    "another run (it has not recorded its name)".into()
}
