//! The http(s) URLs a config names: storage accounts, S3-compatible endpoints, the Logs
//! Ingestion endpoint.

use url::Url;

use super::env::ENV_AZURE_SAS;

pub(super) fn parse_http_url(s: &str) -> Result<Url, String> {
    // A trailing slash on a path-style emulator URL makes the SDK build `//container`.
    let url = Url::parse(s.trim_end_matches('/')).map_err(|e| {
        format!("{s:?} is not a URL ({e}): write a full URL like \"https://host\" or \"http://127.0.0.1:PORT\"")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{s:?} must be an http:// or https:// URL"));
    }
    if url.query().is_some() {
        return Err(format!(
            "must not carry a query string (put a SAS in {ENV_AZURE_SAS}, never in the config file)"
        ));
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
