//! Queues that announce new files (SQS): receive, delete, extend visibility. The
//! events domain sees only [`Queue`]; the SQS wire format stays in [`sqs`].

pub mod sqs;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// One received message; `receipt` is what deletes it or extends its visibility.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub receipt: String,
    pub body: String,
    /// When the queue accepted it (`SentTimestamp`): the lag's start when the body has no time.
    pub sent: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueErrorKind {
    /// Network, throttling, 5xx: the message stays and comes back.
    Transient,
    /// Refused (no permission, no such queue): retrying the same call does not help.
    Refused,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} {queue}: {message}")]
pub struct QueueError {
    pub kind: QueueErrorKind,
    pub op: &'static str,
    pub queue: String,
    pub message: String,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Up to `max` messages, waiting at most `wait` for the first (a long poll).
    async fn receive(&self, max: u8, wait: Duration) -> Result<Vec<Message>, QueueError>;
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;
    /// Hides the message for `visibility` more from now: work on it is still going on.
    /// `Duration::ZERO` hands it back to the queue at once.
    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError>;
    /// The queue's own visibility timeout (`None` when it cannot be read): work still in
    /// progress is extended well before it runs out.
    async fn visibility_timeout(&self) -> Option<Duration> {
        None
    }
    /// The queue URL, for logs.
    fn describe(&self) -> String;
}
