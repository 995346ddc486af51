//! Amazon SQS through aws-sdk-sqs, with the source's AWS credentials. The endpoint is the
//! SDK's (`AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL`), else the queue URL's own host when
//! it is not an AWS one (an emulator).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::{DateTime, TimeZone, Utc};
use url::Url;

use super::{Message, Queue, QueueError, QueueErrorKind};
use crate::storage::aws_credentials::{AwsCredentials, LOAD_TIMEOUT};

pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// Error codes that mean "this call will not work by being repeated".
const REFUSED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "InvalidAddress",
    "InvalidSecurity",
];

impl SqsQueue {
    /// `max_delay` (`[sync] retry_max_delay`) bounds every wait of the SDK's own retries.
    pub async fn connect(
        queue_url: &Url,
        fallback_region: &str,
        credentials: AwsCredentials,
        max_delay: Duration,
    ) -> Self {
        let host = queue_url.host_str().unwrap_or_default();
        // `sqs.REGION.amazonaws.com`: the queue's region is in its URL.
        let region = host
            .strip_prefix("sqs.")
            .and_then(|h| h.split('.').next())
            .filter(|_| is_aws_host(host))
            .unwrap_or(fallback_region)
            .to_string();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    // Long polls hold the response up to 20 s.
                    .read_timeout(Duration::from_secs(40))
                    .build(),
            );
        if let Some(c) = credentials.provider().cloned() {
            loader = loader.credentials_provider(c).identity_cache(
                aws_config::identity::IdentityCache::lazy()
                    .load_timeout(LOAD_TIMEOUT)
                    .build(),
            );
        }
        let shared = loader.load().await;
        let mut conf = aws_sdk_sqs::config::Builder::from(&shared)
            .retry_config(crate::storage::aws_waits::retry_config(
                shared.retry_config(),
                max_delay,
            ))
            .interceptor(crate::storage::aws_waits::CapRetryAfter { max_delay });
        if shared.endpoint_url().is_none() && !is_aws_host(host) {
            conf = conf.endpoint_url(queue_url.origin().ascii_serialization());
        }
        Self {
            client: aws_sdk_sqs::Client::from_conf(conf.build()),
            url: queue_url.as_str().to_string(),
        }
    }

    fn error<E>(&self, op: &'static str, err: SdkError<E, aws_sdk_sqs::config::http::HttpResponse>) -> QueueError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let refused = err.code().is_some_and(|c| REFUSED.contains(&c))
            || matches!(&err, SdkError::ServiceError(s) if matches!(s.raw().status().as_u16(), 400 | 403 | 404));
        QueueError {
            kind: if refused {
                QueueErrorKind::Refused
            } else {
                QueueErrorKind::Transient
            },
            op,
            queue: self.url.clone(),
            message: DisplayErrorContext(&err).to_string(),
        }
    }
}

fn is_aws_host(host: &str) -> bool {
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

#[async_trait]
impl Queue for SqsQueue {
    async fn receive(&self, max: u8, wait: Duration) -> Result<Vec<Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::from(max.clamp(1, 10)))
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| self.error("ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let sent = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|ms| ms.parse::<i64>().ok())
                    .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
                Some(Message {
                    id: m.message_id.unwrap_or_default(),
                    // Without a receipt handle a message can be neither deleted nor
                    // extended; it comes back by itself.
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    sent: sent.map(|t: DateTime<Utc>| t),
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("DeleteMessage", e))
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        // SQS caps a visibility timeout at 12 hours.
        let secs = visibility.as_secs().min(12 * 3600) as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("ChangeMessageVisibility", e))
    }

    async fn visibility_timeout(&self) -> Option<Duration> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .map_err(|e| tracing::debug!(queue = self.url, error = %DisplayErrorContext(&e), "no visibility timeout"))
            .ok()?;
        let secs = out
            .attributes()?
            .get(&aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)?
            .parse::<u64>()
            .ok()?;
        Some(Duration::from_secs(secs))
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}
