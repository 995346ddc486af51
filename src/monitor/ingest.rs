//! `POST {endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`
//! with a bearer token for `https://monitor.azure.com/.default`; a JSON array body of at
//! most 1 MB (uncompressed), split when larger; success is 204. The pipeline retries
//! 408/429/5xx honouring Retry-After.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Context, Method, Pipeline, Request, StatusCode, Url};

use crate::records::Record;

pub const SCOPE: &str = "https://monitor.azure.com/.default";
pub const API_VERSION: &str = "2023-01-01";
/// The service's limit per call, applied to the uncompressed body.
pub const MAX_BODY_BYTES: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("Log Analytics ingestion URL: {0}")]
    Url(String),
    #[error("Log Analytics refused the records ({status}): {detail}{hint}")]
    Rejected {
        status: u16,
        detail: String,
        hint: &'static str,
    },
    #[error("Log Analytics is unreachable: {0}")]
    Unreachable(String),
    #[error("a record is larger than the 1 MB Logs Ingestion limit ({0} bytes)")]
    TooLarge(usize),
    #[error("a record cannot be written as JSON: {0}")]
    Encode(String),
}

impl MonitorError {
    /// Sending the same records again cannot succeed: the service refused them as they
    /// are (400, 413) or they are over its limits.
    pub fn is_permanent(&self) -> bool {
        match self {
            MonitorError::Rejected { status, .. } => matches!(status, 400 | 413),
            MonitorError::TooLarge(_) | MonitorError::Encode(_) => true,
            _ => false,
        }
    }
}

impl crate::fault::Classify for MonitorError {
    fn fault(&self) -> crate::fault::Fault {
        match self {
            MonitorError::Url(_) => crate::fault::Fault::Config,
            _ => crate::fault::Fault::Failed,
        }
    }
}

pub struct LogsIngestion {
    pipeline: Pipeline,
    url: Url,
}

impl LogsIngestion {
    pub fn new(
        endpoint: &Url,
        dcr_immutable_id: &str,
        stream: &str,
        credential: Arc<dyn TokenCredential>,
        options: ClientOptions,
    ) -> Result<Self, MonitorError> {
        let url = Url::parse(&format!(
            "{}/dataCollectionRules/{dcr_immutable_id}/streams/{stream}?api-version={API_VERSION}",
            endpoint.as_str().trim_end_matches('/')
        ))
        .map_err(|e| MonitorError::Url(e.to_string()))?;
        let pipeline = super::bearer_pipeline(SCOPE, credential, options);
        Ok(Self { pipeline, url })
    }

    /// Sends one batch (see [`batches`]) in one call.
    pub async fn send_batch(&self, batch: &[Record]) -> Result<(), MonitorError> {
        let mut request = Request::new(self.url.clone(), Method::Post);
        request.insert_header("content-type", "application/json");
        request.set_body(body(batch)?);
        match self.pipeline.send(&Context::default(), &mut request, None).await {
            Ok(r) if r.status() == StatusCode::NoContent || r.status().is_success() => Ok(()),
            Ok(r) => Err(MonitorError::Rejected {
                status: u16::from(r.status()),
                detail: "unexpected status".into(),
                hint: "",
            }),
            Err(e) => Err(classify(e)),
        }
    }
}

fn classify(e: azure_core::Error) -> MonitorError {
    match e.http_status() {
        Some(status) => {
            let code = u16::from(status);
            let hint = match code {
                403 => " (grant the identity Monitoring Metrics Publisher on the DCR; it can take 30 min to apply)",
                404 => " (check log_analytics.ingestion_endpoint, dcr_immutable_id and stream)",
                413 => " (the batch is too large)",
                _ => "",
            };
            MonitorError::Rejected {
                status: code,
                detail: crate::secret::redact_text(&e.to_string()),
                hint,
            }
        }
        None => MonitorError::Unreachable(crate::secret::redact_text(&e.to_string())),
    }
}

/// `records` cut, in order, into runs whose JSON array is at most [`MAX_BODY_BYTES`].
pub fn batches(records: &[Record]) -> Result<Vec<&[Record]>, MonitorError> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 2; // the brackets
    for (i, r) in records.iter().enumerate() {
        let len = serde_json::to_vec(r)
            .map_err(|e| MonitorError::Encode(e.to_string()))?
            .len();
        if len.saturating_add(2) > MAX_BODY_BYTES {
            return Err(MonitorError::TooLarge(len));
        }
        if size + len + 1 > MAX_BODY_BYTES && i > start {
            out.push(&records[start..i]);
            start = i;
            size = 2;
        }
        size += len + 1;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    Ok(out)
}

/// The JSON array of one batch.
pub fn body(batch: &[Record]) -> Result<Vec<u8>, MonitorError> {
    // An empty body would be refused as a malformed request, hiding why.
    let body = serde_json::to_vec(batch).map_err(|e| MonitorError::Encode(e.to_string()))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(MonitorError::TooLarge(body.len()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{RecordType, RunStatus};

    #[test]
    fn batches_stay_under_the_limit_and_keep_every_record() {
        let mut r = Record::of(RecordType::SyncRun, "run", "a", RunStatus::Succeeded);
        r.message = "x".repeat(100_000);
        let records = vec![r; 25];
        let cut = batches(&records).unwrap();
        assert!(cut.len() >= 3);
        let mut n = 0;
        for batch in &cut {
            let b = body(batch).unwrap();
            assert!(b.len() <= MAX_BODY_BYTES);
            n += serde_json::from_slice::<Vec<serde_json::Value>>(&b).unwrap().len();
        }
        assert_eq!(n, 25);
        assert_eq!(cut.concat(), records, "every record once, in order");
        let mut huge = Record::of(RecordType::SyncRun, "run", "a", RunStatus::Succeeded);
        huge.message = "x".repeat(MAX_BODY_BYTES);
        assert!(matches!(batches(&[huge]), Err(MonitorError::TooLarge(_))));
    }
}
