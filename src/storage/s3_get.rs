//! The sync's GetObject, sent without aws-sdk-s3's per-request orchestrator.
//!
//! Every archived file costs one GetObject, and through the SDK that request cost more CPU
//! than the upload that follows it (issue 22: interceptors, config-bag layers, endpoint
//! rules evaluated per request, identity resolution). Here the parts that matter are kept
//! and done once where they can be:
//! - the bucket's endpoint and signing scope come from the SDK's own endpoint rules,
//!   resolved once per source (virtual-hosted or path-style, FIPS, dual-stack);
//! - each request is signed by `aws-sigv4` with the settings the SDK uses for S3 (no
//!   double encoding, no path normalisation, `x-amz-content-sha256`);
//! - credentials come from the same provider chain, cached until shortly before expiry;
//! - `x-amz-checksum-mode: ENABLED`, and S3's full-object checksum is checked against the
//!   bytes read with `aws-smithy-checksums`, as the SDK's validation does;
//! - answers map onto the same [`ErrorKind`]s as the SDK path (`s3::kind_of`).
//!
//! What the SDK did besides is done elsewhere or not needed: retries by [`super::retry`]'s
//! policy around every request, stalls by [`super::with_idle_timeout`] and the client's
//! connect and read timeouts. Anything this path cannot send exactly as the SDK would (an
//! endpoint that needs another auth scheme or extra headers, a key whose URL a parser
//! would rewrite) goes through the SDK instead.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::endpoint::{Params, ResolveEndpoint};
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_checksums::ChecksumAlgorithm;
use aws_smithy_types::endpoint::Endpoint;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::Document;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::HeaderMap;

use super::{ByteStream, ErrorKind, SourceBody, SourceHead, StorageError, StorageResult};

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(60);
/// Credentials that name no expiry are fetched again after this long (the SDK's lazy
/// cache's default), so rotated keys are picked up.
const NO_EXPIRY_REFRESH: Duration = Duration::from_secs(15 * 60);
/// An error answer is read up to this many bytes (S3's are a few hundred).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How long an error answer's body may take to arrive.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(10);

/// S3's greedy label encoding of a key: every byte but the unreserved ones and `/`.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Where and how a source's GetObject goes when it bypasses the SDK.
pub struct DirectGet {
    http: reqwest::Client,
    /// The bucket's endpoint as the SDK's rules resolve it, without a trailing `/`.
    base: String,
    signing_region: String,
    credentials: CredentialCache,
    /// Seconds to add to this host's clock when signing: S3's clock minus ours, learnt from
    /// a `RequestTimeTooSkewed` answer (the SDK corrects its clock the same way).
    clock_skew: AtomicI64,
}

/// What the SDK client was built with, for resolving the same endpoint.
pub struct EndpointInputs<'a> {
    pub bucket: &'a str,
    pub region: &'a str,
    pub endpoint_url: Option<&'a str>,
    pub force_path_style: bool,
    pub use_fips: bool,
    pub use_dual_stack: bool,
}

impl DirectGet {
    /// None when the SDK must carry the GETs: no credentials provider, no HTTP client, or
    /// an endpoint whose rules ask for anything but plain SigV4 for `s3` without extra
    /// headers (S3 Express, access points, Object Lambda).
    pub async fn resolve(inputs: EndpointInputs<'_>, provider: Option<SharedCredentialsProvider>) -> Option<Self> {
        let provider = provider?;
        let http = super::azure_http::shared_client()?;
        let params = Params::builder()
            .bucket(inputs.bucket)
            .region(inputs.region)
            .set_endpoint(inputs.endpoint_url.map(str::to_string))
            .force_path_style(inputs.force_path_style)
            .use_fips(inputs.use_fips)
            .use_dual_stack(inputs.use_dual_stack)
            .build()
            .ok()?;
        let endpoint = aws_sdk_s3::config::endpoint::DefaultResolver::new()
            .resolve_endpoint(&params)
            .await
            .ok()?;
        if endpoint.headers().next().is_some() {
            return None;
        }
        let signing_region = plain_sigv4_region(&endpoint)?.unwrap_or_else(|| inputs.region.to_string());
        let direct = Self {
            http,
            base: endpoint.url().trim_end_matches('/').to_string(),
            signing_region,
            credentials: CredentialCache::new(provider),
            clock_skew: AtomicI64::new(0),
        };
        // An endpoint the URL parser would rewrite (a default port, upper case) would send
        // every key through the SDK: say so now rather than per key.
        direct.url_for("probe").map(|_| direct)
    }

    /// The request URL of `key` (with the `x-id` the SDK adds to name the operation), or
    /// None when a URL parser would not keep its path as encoded (dot segments): such a
    /// key goes through the SDK.
    pub fn url_for(&self, key: &str) -> Option<reqwest::Url> {
        // An empty key would address the bucket itself (a listing); the SDK refuses it.
        if key.is_empty() || key.split('/').any(|segment| segment == "." || segment == "..") {
            return None;
        }
        let raw = format!("{}/{}?x-id=GetObject", self.base, utf8_percent_encode(key, KEY_ENCODE));
        let url = reqwest::Url::parse(&raw).ok()?;
        (url.as_str() == raw).then_some(url)
    }

    pub async fn get(&self, url: reqwest::Url, target: String) -> StorageResult<SourceBody> {
        let credentials = self.credentials.get().await.map_err(|e| {
            StorageError::new(
                ErrorKind::Credentials,
                "get",
                target.clone(),
                format!("{e}{}", super::s3::CREDENTIALS_HINT),
            )
        })?;
        let request = self.signed(&url, &credentials, self.now()).map_err(|e| {
            StorageError::new(
                ErrorKind::Other,
                "get",
                target.clone(),
                format!("cannot sign the request: {e}"),
            )
        })?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| transport_error(&target, &e))?;
        let status = response.status();
        if !status.is_success() {
            let answer = error_answer(response, target).await;
            return Err(self.learn_from(answer, &credentials));
        }
        let head = source_head(response.headers())
            .map_err(|m| StorageError::new(ErrorKind::Other, "get", target.clone(), m))?;
        let checksum = announced_checksum(response.headers());
        let read_target = target.clone();
        let body: ByteStream = response
            .bytes_stream()
            .map(move |chunk| {
                chunk.map_err(|e| {
                    StorageError::new(
                        ErrorKind::Integrity,
                        "read",
                        read_target.clone(),
                        DisplayErrorContext(&e),
                    )
                })
            })
            .boxed();
        let body = match checksum {
            Some((algorithm, expected)) => checked(body, algorithm, expected, target.clone()),
            None => body,
        };
        Ok(SourceBody {
            head,
            body: super::with_idle_timeout(body, super::BODY_IDLE_TIMEOUT, target),
        })
    }

    /// This host's clock, corrected by what S3 said of it.
    fn now(&self) -> SystemTime {
        shifted(SystemTime::now(), self.clock_skew.load(Ordering::Relaxed))
    }

    /// What an error answer teaches: S3's clock (the request is then worth again, signed
    /// with it), or that the credentials in hand were refused (fetched afresh next time).
    fn learn_from(&self, mut answer: ErrorAnswer, used: &Credentials) -> StorageError {
        if answer.code.as_deref() == Some("RequestTimeTooSkewed") {
            if let Some(server) = answer.server_date {
                let skew = skew_between(server, SystemTime::now());
                self.clock_skew.store(skew, Ordering::Relaxed);
                answer.error.kind = ErrorKind::Unavailable;
                answer.error.message.push_str(&format!(
                    " (this host's clock is {} s off S3's; the next attempt signs with S3's time: correct the host's clock)",
                    skew
                ));
            }
        } else if answer.error.kind == ErrorKind::Credentials {
            self.credentials.forget(used);
        }
        answer.error
    }

    fn signed(
        &self,
        url: &reqwest::Url,
        credentials: &Credentials,
        now: SystemTime,
    ) -> Result<reqwest::Request, Box<dyn std::error::Error + Send + Sync>> {
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.signing_region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()?
            .into();
        let headers = [("x-amz-checksum-mode", "ENABLED")];
        let signable = SignableRequest::new("GET", url.as_str(), headers.into_iter(), SignableBody::Bytes(&[]))?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        let (signed_headers, _query) = instructions.into_parts();
        let mut request = reqwest::Request::new(reqwest::Method::GET, url.clone());
        let map = request.headers_mut();
        for (name, value) in headers {
            map.insert(name, reqwest::header::HeaderValue::from_static(value));
        }
        for header in signed_headers {
            let mut value = reqwest::header::HeaderValue::from_str(header.value())?;
            // Kept out of reqwest's Debug output (and anything that prints a request).
            value
                .set_sensitive(header.sensitive() || matches!(header.name(), "authorization" | "x-amz-security-token"));
            map.insert(header.name(), value);
        }
        Ok(request)
    }
}

/// Seconds from `ours` to `server` (negative: S3 is behind), saturating.
fn skew_between(server: SystemTime, ours: SystemTime) -> i64 {
    match server.duration_since(ours) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
        Err(behind) => i64::try_from(behind.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// `now` moved by `skew` seconds. A shift that leaves the years a SigV4 date can say
/// (1970 to 9999; a hostile or garbled `Date`) leaves it where it is.
fn shifted(now: SystemTime, skew: i64) -> SystemTime {
    const LAST_SIGNABLE: Duration = Duration::from_secs(253_402_300_799); // 9999-12-31T23:59:59Z
    let by = Duration::from_secs(skew.unsigned_abs());
    let moved = if skew >= 0 {
        now.checked_add(by)
    } else {
        now.checked_sub(by)
    };
    moved
        .filter(|t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .is_ok_and(|d| d <= LAST_SIGNABLE)
        })
        .unwrap_or(now)
}

/// The signing region of an endpoint whose first auth scheme is SigV4 for `s3` without
/// double encoding (Some(None): the scheme names no region); None for anything else.
fn plain_sigv4_region(endpoint: &Endpoint) -> Option<Option<String>> {
    let scheme = endpoint.auth_schemes().first()?;
    let text = |k: &str| match scheme.get(k) {
        Some(Document::String(s)) => Some(s.clone()),
        _ => None,
    };
    let no_double_encoding = matches!(scheme.get("disableDoubleEncoding"), Some(Document::Bool(true)));
    (scheme.name() == "sigv4" && text("signingName").as_deref() == Some("s3") && no_double_encoding)
        .then(|| text("signingRegion"))
}

/// Credentials from the provider, kept until shortly before they expire; one fetch at a time.
struct CredentialCache {
    provider: SharedCredentialsProvider,
    /// The credentials and when they are to be fetched again.
    current: tokio::sync::Mutex<Option<(Credentials, SystemTime)>>,
}

impl CredentialCache {
    fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            provider,
            current: tokio::sync::Mutex::new(None),
        }
    }

    async fn get(&self) -> Result<Credentials, String> {
        let mut current = self.current.lock().await;
        if let Some((c, _)) = current
            .as_ref()
            .filter(|(_, refresh_at)| SystemTime::now() < *refresh_at)
        {
            return Ok(c.clone());
        }
        let loaded = tokio::time::timeout(
            super::aws_credentials::LOAD_TIMEOUT,
            self.provider.provide_credentials(),
        )
        .await
        .map_err(|_| {
            format!(
                "no credentials within {} s from the credential provider",
                super::aws_credentials::LOAD_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("the credential provider failed: {}", DisplayErrorContext(&e)))?;
        *current = Some((loaded.clone(), refresh_at(&loaded, SystemTime::now())));
        Ok(loaded)
    }

    /// S3 refused `used`: the next request fetches credentials again, unless newer ones
    /// have already replaced them.
    fn forget(&self, used: &Credentials) {
        if let Ok(mut current) = self.current.try_lock() {
            if current
                .as_ref()
                .is_some_and(|(c, _)| c.access_key_id() == used.access_key_id())
            {
                *current = None;
            }
        }
    }
}

/// When credentials fetched at `now` are fetched again: a minute before they expire, or,
/// when they name no expiry, after the SDK's default of 15 minutes.
fn refresh_at(c: &Credentials, now: SystemTime) -> SystemTime {
    match c.expiry() {
        Some(expiry) => expiry.checked_sub(REFRESH_BEFORE_EXPIRY).unwrap_or(now),
        None => now + NO_EXPIRY_REFRESH,
    }
}

fn transport_error(target: &str, e: &reqwest::Error) -> StorageError {
    let kind = if e.is_body() || e.is_decode() {
        ErrorKind::Integrity
    } else {
        ErrorKind::Unreachable
    };
    let hint = if kind == ErrorKind::Unreachable {
        super::s3::UNREACHABLE_HINT
    } else {
        ""
    };
    StorageError::new(kind, "get", target, format!("{}{hint}", DisplayErrorContext(e)))
}

/// An error answer, with what the caller may learn from it.
struct ErrorAnswer {
    error: StorageError,
    code: Option<String>,
    /// The answer's `Date`: S3's clock.
    server_date: Option<SystemTime>,
}

/// An answer other than 2xx: S3's error code and message, mapped as the SDK path maps them,
/// with S3's request ids (what AWS support asks for).
async fn error_answer(response: reqwest::Response, target: String) -> ErrorAnswer {
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(clip);
    let retry_after = header("retry-after").and_then(|v| super::retry::parse_retry_after(&v));
    let server_date = header("date")
        .and_then(|d| DateTime::parse_from_rfc2822(&d).ok())
        .map(|d| SystemTime::from(d.with_timezone(&Utc)));
    let ids = [
        ("request id", header("x-amz-request-id")),
        ("host id", header("x-amz-id-2")),
    ];
    let body = read_capped(response).await;
    let (code, message) = error_code(&body);
    let kind = super::s3::kind_of(code.as_deref(), status);
    let mut text = format!("GetObject answered {status}");
    if let Some(c) = &code {
        text.push_str(&format!(" {c}"));
    }
    if let Some(m) = &message {
        text.push_str(&format!(": {m}"));
    }
    for (name, id) in ids {
        if let Some(id) = id {
            text.push_str(&format!(" ({name} {id})"));
        }
    }
    if code.as_deref() == Some("RequestTimeTooSkewed") {
        text.push_str(" (check this host's clock)");
    }
    text.push_str(super::s3::hint_for(kind));
    ErrorAnswer {
        error: StorageError::new(kind, "get", target, text).with_retry_after(retry_after),
        code,
        server_date,
    }
}

async fn read_capped(response: reqwest::Response) -> Vec<u8> {
    let mut body = response.bytes_stream();
    let mut out = Vec::new();
    let read = async {
        while let Some(Ok(chunk)) = body.next().await {
            let room = MAX_ERROR_BODY - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(ERROR_BODY_WAIT, read).await;
    out
}

/// `<Error><Code>…</Code><Message>…</Message>…</Error>`'s code and message, when present.
fn error_code(body: &[u8]) -> (Option<String>, Option<String>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let (mut code, mut message) = (None, None);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => path.push(e.local_name().as_ref().to_vec()),
            Ok(Event::End(_)) => {
                path.pop();
            }
            Ok(Event::Text(t)) if path.len() == 2 && path[0] == b"Error" => {
                let text = t.unescape().map(|s| s.trim().to_string()).unwrap_or_default();
                match path[1].as_slice() {
                    b"Code" if code.is_none() && !text.is_empty() => code = Some(text),
                    b"Message" if message.is_none() && !text.is_empty() => message = Some(text),
                    _ => {}
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
        if path.len() > 8 {
            break;
        }
        buf.clear();
    }
    (code.map(|c| clip(&c)), message.map(|m| clip(&m)))
}

/// A service's words in our messages, kept to one short line.
fn clip(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    one_line.chars().take(300).collect()
}

/// The object's properties from GetObject's headers, read as the SDK reads them.
fn source_head(headers: &HeaderMap) -> Result<SourceHead, String> {
    let text = |name: &str| -> Result<Option<&str>, String> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| format!("S3 sent a {name} header that is not text"))
            })
            .transpose()
    };
    let size = match text("content-length")? {
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("S3 sent an unreadable content-length ({v})"))?,
        None => 0,
    };
    let last_modified = match text("last-modified")? {
        Some(v) => Some(
            DateTime::parse_from_rfc2822(v.trim())
                .map_err(|_| format!("S3 sent an unreadable last-modified ({v})"))?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let mut metadata = std::collections::BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix("x-amz-meta-") {
            let value = value
                .to_str()
                .map_err(|_| format!("S3 sent metadata {key} that is not text"))?;
            metadata.insert(key.to_ascii_lowercase(), value.to_string());
        }
    }
    let sse = text("x-amz-server-side-encryption")?;
    Ok(SourceHead {
        size,
        etag: text("etag")?
            .map(|e| e.trim_matches('"').to_string())
            .unwrap_or_default(),
        last_modified,
        content_type: text("content-type")?.map(str::to_string),
        content_encoding: text("content-encoding")?.map(str::to_string),
        metadata: metadata.into_iter().collect(),
        kms_or_customer_key: text("x-amz-server-side-encryption-customer-algorithm")?.is_some()
            || matches!(sse, Some("aws:kms") | Some("aws:kms:dsse")),
    })
}

/// The full-object checksum S3 announced, the first in the SDK's order of preference; a
/// part-level one (`…-N`, multipart uploads) cannot be checked against the whole body.
fn announced_checksum(headers: &HeaderMap) -> Option<(ChecksumAlgorithm, Vec<u8>)> {
    aws_smithy_checksums::http::CHECKSUM_ALGORITHMS_IN_PRIORITY_ORDER
        .iter()
        .filter_map(|name| name.parse::<ChecksumAlgorithm>().ok())
        .find_map(|algorithm| {
            let value = headers.get(algorithm.into_impl().header_name())?.to_str().ok()?.trim();
            // An undecodable value is skipped, as the SDK skips it (the ETag check remains).
            let bytes = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
            (!is_part_level(value)).then_some((algorithm, bytes))
        })
}

/// `…-<digits>`: a checksum of part checksums.
fn is_part_level(value: &str) -> bool {
    value
        .rsplit_once('-')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `body`, whose end fails with [`ErrorKind::Integrity`] when its checksum differs from
/// the one S3 announced.
fn checked(body: ByteStream, algorithm: ChecksumAlgorithm, expected: Vec<u8>, target: String) -> ByteStream {
    let state = (body, Some(algorithm.into_impl()), expected, target);
    futures::stream::unfold(state, |(mut body, hasher, expected, target)| async move {
        let mut hasher = hasher?;
        match body.next().await {
            Some(Ok(chunk)) => {
                hasher.update(&chunk);
                Some((Ok::<Bytes, StorageError>(chunk), (body, Some(hasher), expected, target)))
            }
            Some(Err(e)) => Some((Err(e), (body, None, expected, target))),
            None => {
                let name = hasher.header_name().trim_start_matches("x-amz-checksum-").to_string();
                let got = hasher.finalize();
                if got.as_ref() == expected.as_slice() {
                    None
                } else {
                    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
                    let e = StorageError::new(
                        ErrorKind::Integrity,
                        "read",
                        target.clone(),
                        format!(
                            "S3's {name} checksum of the object ({}) differs from the bytes read ({})",
                            b64(&expected),
                            b64(&got)
                        ),
                    );
                    Some((Err(e), (body, None, expected, target)))
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests;
