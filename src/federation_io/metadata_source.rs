//! Entra federation metadata from a file, or from an https URL (Entra's per-app
//! `…/FederationMetadata/2007-06/FederationMetadata.xml?appid=…`).

/// Why the federation metadata could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The https URL did not answer: running again may succeed.
    #[error("federation.idp_metadata fetching {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: azure_core::Error,
    },
    #[error("federation.idp_metadata fetching {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    /// The file cannot be read: fix the configuration.
    #[error("federation.idp_metadata {location}: {source}")]
    Unreadable {
        location: String,
        #[source]
        source: std::io::Error,
    },
}

impl crate::fault::Classify for LoadError {
    fn fault(&self) -> crate::fault::Fault {
        match self {
            LoadError::Unreachable { .. } | LoadError::Status { .. } => crate::fault::Fault::Failed,
            LoadError::Unreadable { .. } => crate::fault::Fault::Config,
        }
    }
}

/// Reads (a path) or fetches (an `https://` URL) the metadata document.
pub async fn read_metadata(location: &str) -> Result<String, LoadError> {
    if location.starts_with("https://") {
        return fetch(location).await;
    }
    std::fs::read_to_string(location).map_err(|source| LoadError::Unreadable {
        location: location.to_string(),
        source,
    })
}

async fn fetch(url: &str) -> Result<String, LoadError> {
    use azure_core::http::{Method, Request, Url};
    let unreachable = |source| LoadError::Unreachable {
        url: url.to_string(),
        source,
    };
    let parsed = Url::parse(url).map_err(|e| unreachable(e.into()))?;
    let client = azure_core::http::new_http_client(None);
    let response = client
        .execute_request(&Request::new(parsed, Method::Get))
        .await
        .map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        return Err(LoadError::Status {
            url: url.to_string(),
            status: u16::from(status),
        });
    }
    response.into_body().collect_string().await.map_err(unreachable)
}
