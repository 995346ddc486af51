//! The "folders" of a container (List Blobs with `delimiter=/`), which azure_storage_blob
//! 1.x does not offer: one request a page, sent through a pipeline built from the same
//! client options (transport, retry, SharedKey policy) and credential as the SDK's own
//! clients, and its XML read here. Restore and verify find an archive's accounts and
//! regions this way, so a stream whose watermark was never written is still found.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::Policy;
use azure_core::http::{ClientOptions, Context, Method, Pipeline, Request, Url};
use quick_xml::events::Event;

use super::list::PageToken;
use super::Page;

/// The service's largest page; the folders under one prefix are accounts or regions.
const MAX_RESULTS: u32 = 5000;

pub struct FolderLister {
    pipeline: Pipeline,
    container_url: Url,
    version: String,
}

impl FolderLister {
    pub fn new(
        container_url: Url,
        credential: Option<Arc<dyn TokenCredential>>,
        client_options: ClientOptions,
        version: String,
    ) -> Self {
        let mut per_try: Vec<Arc<dyn Policy>> = Vec::new();
        if let Some(credential) = credential {
            per_try.push(Arc::new(BearerTokenAuthorizationPolicy::new(
                credential,
                vec!["https://storage.azure.com/.default"],
            )));
        }
        let pipeline = Pipeline::new(
            option_env!("CARGO_PKG_NAME"),
            option_env!("CARGO_PKG_VERSION"),
            client_options,
            Vec::new(),
            per_try,
            None,
        );
        FolderLister {
            pipeline,
            container_url,
            version,
        }
    }

    /// One page of the folder names directly under `prefix`, each ending in `/`.
    pub async fn page(
        &self,
        prefix: &str,
        token: Option<&PageToken>,
        page_size: Option<u32>,
    ) -> Result<Page<String>, azure_core::Error> {
        let mut url = self.container_url.clone();
        {
            // Appended to the SAS query, if the URL carries one.
            let mut q = url.query_pairs_mut();
            q.append_pair("restype", "container")
                .append_pair("comp", "list")
                .append_pair("delimiter", "/")
                .append_pair("maxresults", &page_size.unwrap_or(MAX_RESULTS).to_string());
            if !prefix.is_empty() {
                q.append_pair("prefix", prefix);
            }
            if let Some(token) = token {
                q.append_pair("marker", token.as_str());
            }
        }
        let mut request = Request::new(url, Method::Get);
        request.insert_header("accept", "application/xml");
        request.insert_header("x-ms-version", self.version.clone());
        let options = azure_core::http::PipelineSendOptions {
            check_success: azure_core::error::CheckSuccessOptions { success_codes: &[200] },
            ..Default::default()
        };
        let response = self.pipeline.send(&Context::new(), &mut request, Some(options)).await?;
        let body = response.into_body();
        parse_folders(&body).map_err(|why| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::DataConversion,
                format!("unreadable folder listing: {why}"),
            )
        })
    }
}

/// Why a folder listing could not be read as the service's document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    #[error("not XML: {0}")]
    Xml(String),
    #[error("the listing ended before its document did")]
    Truncated,
    #[error("no EnumerationResults element")]
    NotAListing,
}

/// `BlobPrefix/Name` elements and `NextMarker` of an `EnumerationResults` document.
pub fn parse_folders(xml: &[u8]) -> Result<Page<String>, ListingError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut items = Vec::new();
    let mut next = None;
    let mut saw_root = false;
    loop {
        match reader.read_event().map_err(|e| ListingError::Xml(e.to_string()))? {
            Event::Start(e) => {
                if path.is_empty() {
                    saw_root = e.name().as_ref() == b"EnumerationResults";
                }
                path.push(e.name().as_ref().to_vec());
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| ListingError::Xml(e.to_string()))?.into_owned();
                let at: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
                match at.as_slice() {
                    [b"EnumerationResults", b"Blobs", b"BlobPrefix", b"Name"] => items.push(text),
                    [b"EnumerationResults", b"NextMarker"] => next = Some(text),
                    _ => {}
                }
            }
            Event::Eof if path.is_empty() => break,
            // A page cut short would silently lose the folders after the cut.
            Event::Eof => return Err(ListingError::Truncated),
            _ => {}
        }
    }
    if !saw_root {
        return Err(ListingError::NotAListing);
    }
    Ok(Page {
        items,
        next: PageToken::from_service(next),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_the_next_marker_are_read() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1/devstoreaccount1" ContainerName="a">
  <Prefix>s/AWSLogs/</Prefix><Delimiter>/</Delimiter>
  <Blobs>
    <BlobPrefix><Name>s/AWSLogs/111122223333/</Name></BlobPrefix>
    <Blob><Name>s/AWSLogs/stray.json</Name><Properties/></Blob>
    <BlobPrefix><Name>s/AWSLogs/o-a&amp;b/</Name></BlobPrefix>
  </Blobs>
  <NextMarker>2!abc</NextMarker>
</EnumerationResults>"#;
        let page = parse_folders(xml).unwrap();
        assert_eq!(page.items, vec!["s/AWSLogs/111122223333/", "s/AWSLogs/o-a&b/"]);
        assert_eq!(page.next.as_ref().map(PageToken::as_str), Some("2!abc"));
    }

    #[test]
    fn an_empty_marker_ends_the_listing_and_garbage_is_an_error() {
        let page = parse_folders(b"<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>").unwrap();
        assert!(page.items.is_empty());
        assert!(page.next.is_none());
        assert!(parse_folders(b"<html>proxy error</html>").is_err());
        assert!(parse_folders(b"<EnumerationResults><Blobs><BlobPrefix><Name>a/</Name></BlobPrefix>").is_err());
        assert!(parse_folders(b"\xff\xfe<").is_err());
    }
}
