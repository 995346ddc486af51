//! Edge: CloudTrail's `ListPublicKeys`, the one AWS call integrity needs, done ahead of time
//! so validation works during an outage.

use async_trait::async_trait;
use aws_sdk_cloudtrail::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use chrono::{DateTime, TimeZone, Utc};

use crate::storage::{ErrorKind, StorageError, StorageResult};

/// A public key as `ListPublicKeys` returns it.
#[derive(Debug, Clone)]
pub struct PublishedKey {
    pub der: Vec<u8>,
    /// The fingerprint AWS states (kept beside the key; digests name it).
    pub fingerprint: Option<String>,
    pub validity_start: Option<DateTime<Utc>>,
    pub validity_end: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait PublicKeySource: Send + Sync {
    async fn list_public_keys(
        &self,
        region: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StorageResult<Vec<PublishedKey>>;
}

/// The AWS API, with the SDK's default credential chain or the given provider
/// (`azure-federated`). `AWS_ENDPOINT_URL_CLOUDTRAIL` points it at another endpoint.
#[derive(Default)]
pub struct AwsCloudTrail {
    pub credentials: crate::storage::aws_credentials::AwsCredentials,
}

fn to_utc(t: &aws_sdk_cloudtrail::primitives::DateTime) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(t.secs(), t.subsec_nanos()).single()
}

fn to_smithy(t: DateTime<Utc>) -> aws_sdk_cloudtrail::primitives::DateTime {
    aws_sdk_cloudtrail::primitives::DateTime::from_secs(t.timestamp())
}

#[async_trait]
impl PublicKeySource for AwsCloudTrail {
    async fn list_public_keys(
        &self,
        region: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StorageResult<Vec<PublishedKey>> {
        use crate::storage::aws_waits;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .timeout_config(aws_waits::timeouts());
        if let Some(c) = self.credentials.provider() {
            loader = loader.credentials_provider(c.clone());
        }
        let shared = loader.load().await;
        // A few small pages: the default ceiling (`retry_max_delay`'s default) bounds each wait.
        let max_delay = std::time::Duration::from_secs(30);
        let conf = aws_sdk_cloudtrail::config::Builder::from(&shared)
            .retry_config(aws_waits::retry_config(shared.retry_config(), max_delay))
            .interceptor(aws_waits::CapRetryAfter { max_delay });
        let client = aws_sdk_cloudtrail::Client::from_conf(conf.build());
        let target = format!("cloudtrail ListPublicKeys in {region}");
        let mut pages = client
            .list_public_keys()
            .start_time(to_smithy(start))
            .end_time(to_smithy(end))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                let kind = match &e {
                    SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => ErrorKind::Unreachable,
                    SdkError::TimeoutError(_) => ErrorKind::Unreachable,
                    SdkError::ServiceError(s)
                        if s.err().code().is_some_and(|c| {
                            c.contains("Denied") || c.contains("Token") || c.contains("Signature")
                        }) =>
                    {
                        ErrorKind::Auth
                    }
                    SdkError::DispatchFailure(_) if DisplayErrorContext(&e).to_string().contains("credential") => {
                        ErrorKind::Auth
                    }
                    _ => ErrorKind::Other,
                };
                StorageError::new(kind, "list public keys", target.clone(), DisplayErrorContext(&e))
            })?;
            for k in page.public_key_list() {
                let Some(value) = k.value() else { continue };
                out.push(PublishedKey {
                    der: value.as_ref().to_vec(),
                    fingerprint: k.fingerprint().map(str::to_string),
                    validity_start: k.validity_start_time().and_then(to_utc),
                    validity_end: k.validity_end_time().and_then(to_utc),
                });
            }
        }
        Ok(out)
    }
}
