//! The Log Analytics query API: `POST {base}/v1/workspaces/{id}/query` with a bearer
//! token for `https://api.loganalytics.io/.default`; rows come back positional and are
//! mapped to their columns here.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Context, Method, Pipeline, Request, Url};
use serde_json::{Map, Value};

use super::MonitorError;

pub const QUERY_SCOPE: &str = "https://api.loganalytics.io/.default";
pub const QUERY_BASE: &str = "https://api.loganalytics.azure.com";

pub struct LogsQuery {
    pipeline: Pipeline,
    url: Url,
}

impl LogsQuery {
    pub fn new(
        workspace_id: &str,
        credential: Arc<dyn TokenCredential>,
        options: ClientOptions,
    ) -> Result<Self, MonitorError> {
        let url = Url::parse(&format!("{QUERY_BASE}/v1/workspaces/{workspace_id}/query"))
            .map_err(|e| MonitorError::Url(e.to_string()))?;
        let pipeline = super::bearer_pipeline(QUERY_SCOPE, credential, options);
        Ok(Self { pipeline, url })
    }

    /// Runs `query` over `timespan` (ISO 8601, e.g. `P30D`); the first table's rows as objects.
    pub async fn query(&self, query: &str, timespan: &str) -> Result<Vec<Map<String, Value>>, MonitorError> {
        let mut request = Request::new(self.url.clone(), Method::Post);
        request.insert_header("content-type", "application/json");
        request.insert_header("prefer", "wait=60");
        let body = serde_json::json!({ "query": query, "timespan": timespan });
        request.set_body(serde_json::to_vec(&body).unwrap_or_default());
        let response = self
            .pipeline
            .send(&Context::default(), &mut request, None)
            .await
            .map_err(|e| {
                match e.http_status() {
            Some(s) => MonitorError::Rejected {
                status: u16::from(s),
                detail: crate::secret::redact_text(&e.to_string()),
                hint: " (the identity needs Log Analytics Reader on the workspace; workspace_id is the workspace GUID)",
            },
            None => MonitorError::Unreachable(crate::secret::redact_text(&e.to_string())),
        }
            })?;
        // 204: a workspace with no data.
        if u16::from(response.status()) == 204 {
            return Ok(Vec::new());
        }
        let doc: Value = serde_json::from_slice(response.body()).map_err(|e| MonitorError::Rejected {
            status: u16::from(response.status()),
            detail: format!("the answer is not JSON: {e}"),
            hint: "",
        })?;
        rows(&doc)
    }
}

/// `{"tables":[{"columns":[{"name","type"}],"rows":[[...]]}]}` -> one object per row.
pub fn rows(doc: &Value) -> Result<Vec<Map<String, Value>>, MonitorError> {
    if let Some(err) = doc.get("error").filter(|e| !e.is_null()) {
        return Err(MonitorError::Rejected {
            status: 200,
            detail: err.to_string(),
            hint: " (the query failed in part)",
        });
    }
    let Some(table) = doc.get("tables").and_then(|t| t.get(0)) else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = table["columns"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| c["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    Ok(table["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r.as_array())
                .map(|r| names.iter().cloned().zip(r.iter().cloned()).collect())
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_mapped_to_columns_by_index() {
        let doc = serde_json::json!({"tables":[{"name":"PrimaryResult","columns":[{"name":"Source","type":"string"},{"name":"Gap","type":"long"}],"rows":[["a",5],["b",7]]}]});
        let r = rows(&doc).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1]["Source"], "b");
        assert_eq!(r[1]["Gap"], 7);
        let partial = serde_json::json!({"tables": [], "error": {"code": "PartialError"}});
        assert!(rows(&partial).is_err());
    }
}
