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
}

impl MonitorError {
    /// Sending the same records again cannot succeed: the service refused them as they
    /// are (400, 413) or they are over its limits.
    pub fn is_permanent(&self) -> bool {
        match self {
            MonitorError::Rejected { status, .. } => matches!(status, 400 | 413),
            MonitorError::TooLarge(_) => true,
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

    /// Sends the records, in as many calls as the 1 MB limit needs.
    pub async fn send(&self, records: &[Record]) -> Result<(), MonitorError> {
        for body in batches(records)? {
            let mut request = Request::new(self.url.clone(), Method::Post);
            request.insert_header("content-type", "application/json");
            request.set_body(body);
            match self.pipeline.send(&Context::default(), &mut request, None).await {
                Ok(r) if r.status() == StatusCode::NoContent || r.status().is_success() => {}
                Ok(r) => {
                    return Err(MonitorError::Rejected {
                        status: u16::from(r.status()),
                        detail: "unexpected status".into(),
                        hint: "",
                    })
                }
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(())
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

/// JSON arrays of at most [`MAX_BODY_BYTES`] each.
pub fn batches(records: &[Record]) -> Result<Vec<Vec<u8>>, MonitorError> {
    let mut out = Vec::new();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut size = 2; // the brackets
    for r in records {
        let json = serde_json::to_vec(r).unwrap_or_default();
        if json.len() + 2 > MAX_BODY_BYTES {
            return Err(MonitorError::TooLarge(json.len()));
        }
        if size + json.len() + 1 > MAX_BODY_BYTES && !current.is_empty() {
            out.push(join(&current));
            current.clear();
            size = 2;
        }
        size += json.len() + 1;
        current.push(json);
    }
    if !current.is_empty() {
        out.push(join(&current));
    }
    Ok(out)
}

fn join(items: &[Vec<u8>]) -> Vec<u8> {
    let mut body = b"[".to_vec();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.push(b']');
    body
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
        let bodies = batches(&records).unwrap();
        assert!(bodies.len() >= 3);
        let mut n = 0;
        for b in &bodies {
            assert!(b.len() <= MAX_BODY_BYTES);
            n += serde_json::from_slice::<Vec<serde_json::Value>>(b).unwrap().len();
        }
        assert_eq!(n, 25);
        let mut huge = Record::of(RecordType::SyncRun, "run", "a", RunStatus::Succeeded);
        huge.message = "x".repeat(MAX_BODY_BYTES);
        assert!(matches!(batches(&[huge]), Err(MonitorError::TooLarge(_))));
    }
}
