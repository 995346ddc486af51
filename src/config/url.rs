//! The http(s) URLs a config names: storage accounts, S3-compatible endpoints, the Logs
//! Ingestion endpoint.

use url::Url;

use super::env::ENV_AZURE_SAS;

/// Why a config's URL is refused; the text follows the key that names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{text:?} is not a URL ({source}): write a full URL like \"https://host\" or \"http://127.0.0.1:PORT\"")]
    NotAUrl {
        text: String,
        #[source]
        source: url::ParseError,
    },
    #[error("{0:?} must be an http:// or https:// URL")]
    NotHttp(String),
    #[error("must not carry a query string (put a SAS in {sas}, never in the config file)", sas = ENV_AZURE_SAS)]
    Query,
    /// An SQS queue URL that does not name an account and a queue.
    #[error("{0:?} is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)")]
    NotAQueue(String),
}

pub(super) fn parse_http_url(s: &str) -> Result<Url, UrlError> {
    // A trailing slash on a path-style emulator URL makes the SDK build `//container`.
    let url = Url::parse(s.trim_end_matches('/')).map_err(|source| UrlError::NotAUrl {
        text: s.to_string(),
        source,
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::NotHttp(s.to_string()));
    }
    if url.query().is_some() {
        return Err(UrlError::Query);
    }
    Ok(url)
}

/// The storage account name: the first label of `acct.blob.core.windows.net`, or the
/// first path segment of an emulator URL (`http://127.0.0.1:10000/devstoreaccount1`).
pub(super) fn account_name(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let first_segment = url.path_segments().and_then(|mut s| s.next()).filter(|s| !s.is_empty());
    if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
        first_segment.map(str::to_string)
    } else {
        host.split('.').next().map(str::to_string)
    }
}
