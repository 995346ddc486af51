use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_credential_types::provider::future::ProvideCredentials as ProvideFuture;

use super::*;

fn static_provider() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "AKIDEXAMPLE",
        "secret-key-never-shown",
        None,
        None,
        "test",
    ))
}

async fn direct(bucket: &str, endpoint: Option<&str>) -> Option<DirectGet> {
    let inputs = EndpointInputs {
        bucket,
        region: "eu-west-1",
        endpoint_url: endpoint,
        force_path_style: endpoint.is_some(),
        use_fips: false,
        use_dual_stack: false,
    };
    DirectGet::resolve(inputs, Some(static_provider())).await
}

#[tokio::test]
async fn the_bucket_is_addressed_as_the_sdks_rules_say() {
    let d = direct("org-trail", None).await.expect("plain bucket");
    assert_eq!(d.base, "https://org-trail.s3.eu-west-1.amazonaws.com");
    assert_eq!(d.signing_region, "eu-west-1");
    let d = direct("org-trail", Some("http://127.0.0.1:9000"))
        .await
        .expect("custom endpoint");
    assert_eq!(d.base, "http://127.0.0.1:9000/org-trail");
    // A name that is not a DNS label goes path-style, as the SDK sends it.
    let d = direct("trail.with.dots", None).await.expect("dotted bucket");
    assert_eq!(d.base, "https://s3.eu-west-1.amazonaws.com/trail.with.dots");
}

#[tokio::test]
async fn endpoints_needing_another_auth_scheme_stay_with_the_sdk() {
    // A directory bucket (S3 Express) signs with its own session scheme.
    assert!(direct("trail--euw1-az1--x-s3", None).await.is_none());
    // A multi-region access point signs with SigV4a.
    assert!(direct("arn:aws:s3::123456789012:accesspoint:mfzwi23gnjvgw.mrap", None)
        .await
        .is_none());
}

#[tokio::test]
async fn no_provider_leaves_the_gets_to_the_sdk() {
    let inputs = EndpointInputs {
        bucket: "b",
        region: "eu-west-1",
        endpoint_url: None,
        force_path_style: false,
        use_fips: false,
        use_dual_stack: false,
    };
    assert!(DirectGet::resolve(inputs, None).await.is_none());
}

#[tokio::test]
async fn keys_are_encoded_as_one_greedy_label() {
    let d = direct("b", Some("http://127.0.0.1:9000")).await.unwrap();
    let url = d.url_for("AWSLogs/1/CloudTrail/x y+z=%&?#ü.json.gz").unwrap();
    assert_eq!(
        url.as_str(),
        "http://127.0.0.1:9000/b/AWSLogs/1/CloudTrail/x%20y%2Bz%3D%25%26%3F%23%C3%BC.json.gz?x-id=GetObject"
    );
    // Empty segments are kept as they are.
    assert_eq!(d.url_for("a//b").unwrap().path(), "/b/a//b");
    // A parser would fold dot segments: such keys go through the SDK.
    for key in ["a/../b", "./a", "a/.", ".."] {
        assert!(d.url_for(key).is_none(), "{key}");
    }
}

#[tokio::test]
async fn the_request_is_signed_for_s3_with_the_checksum_mode() {
    let d = direct("b", Some("http://127.0.0.1:9000")).await.unwrap();
    let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("session-token".into()), None, "test");
    let url = d.url_for("k 1").unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let request = d.signed(&url, &creds, at).unwrap();
    let h = request.headers();
    assert_eq!(h["x-amz-checksum-mode"], "ENABLED");
    assert_eq!(h["x-amz-date"], "20270115T080000Z");
    assert_eq!(
        h["x-amz-content-sha256"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(h["x-amz-security-token"], "session-token");
    let auth = h["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20270115/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-checksum-mode;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="),
        "{auth}"
    );
    // The same inputs sign the same; another key signs differently.
    assert_eq!(
        d.signed(&url, &creds, at).unwrap().headers()["authorization"],
        h["authorization"]
    );
    let other = d.signed(&d.url_for("k 2").unwrap(), &creds, at).unwrap();
    assert_ne!(other.headers()["authorization"], h["authorization"]);
    // Secrets are marked sensitive, so reqwest keeps them out of its Debug output.
    assert!(h["authorization"].is_sensitive() && h["x-amz-security-token"].is_sensitive());
    assert!(!format!("{request:?}").contains("secret"));
}

#[test]
fn s3_error_answers_give_their_code_and_message() {
    let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>1</RequestId></Error>"#;
    assert_eq!(
        error_code(body),
        (Some("SlowDown".into()), Some("Please reduce your request rate.".into()))
    );
    assert_eq!(error_code(b""), (None, None));
    assert_eq!(error_code(b"<html>bad gateway</html>"), (None, None));
    // A body cut short still names its code.
    assert_eq!(error_code(b"<Error><Code>NoSuchKey"), (Some("NoSuchKey".into()), None));
    // A code nested elsewhere is not S3's error code.
    assert_eq!(
        error_code(b"<Error><Detail><Code>X</Code></Detail></Error>"),
        (None, None)
    );
    // Control characters and length are trimmed from what we repeat.
    let long = format!(
        "<Error><Code>A</Code><Message>{}\nnext</Message></Error>",
        "m".repeat(5000)
    );
    let (_, message) = error_code(long.as_bytes());
    let message = message.unwrap();
    assert_eq!(message.chars().count(), 300);
    assert!(!message.contains('\n'));
}

#[test]
fn deeply_nested_error_bodies_stop_the_reader() {
    let hostile = "<a>".repeat(100_000);
    assert_eq!(error_code(hostile.as_bytes()), (None, None));
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            reqwest::header::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn the_head_is_read_as_the_sdk_reads_it() {
    let h = headers(&[
        ("content-length", "1234"),
        ("etag", "\"0123abcd\""),
        ("last-modified", "Tue, 08 Dec 2026 05:00:01 GMT"),
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
        ("x-amz-meta-Trail", "org"),
        ("x-amz-server-side-encryption", "aws:kms"),
    ]);
    let head = source_head(&h).unwrap();
    assert_eq!(head.size, 1234);
    assert_eq!(head.etag, "0123abcd");
    assert_eq!(head.last_modified.unwrap().to_rfc3339(), "2026-12-08T05:00:01+00:00");
    assert_eq!(head.content_type.as_deref(), Some("application/json"));
    assert_eq!(head.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(head.metadata.get("trail").map(String::as_str), Some("org"));
    assert!(head.kms_or_customer_key);
    let plain = source_head(&headers(&[
        ("content-length", "1"),
        ("x-amz-server-side-encryption", "AES256"),
    ]))
    .unwrap();
    assert!(!plain.kms_or_customer_key);
    let customer = source_head(&headers(&[(
        "x-amz-server-side-encryption-customer-algorithm",
        "AES256",
    )]))
    .unwrap();
    assert!(customer.kms_or_customer_key);
}

#[test]
fn an_unreadable_head_is_an_error_not_a_guess() {
    for (name, value) in [
        ("content-length", "-1"),
        ("content-length", "12x"),
        ("last-modified", "yesterday"),
    ] {
        let e = source_head(&headers(&[(name, value)])).unwrap_err();
        assert!(e.contains(name), "{e}");
    }
    let mut h = HeaderMap::new();
    h.insert(
        "x-amz-meta-k",
        reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
    );
    assert!(source_head(&h).unwrap_err().contains("metadata"));
}

#[test]
fn the_full_object_checksum_is_chosen_in_the_sdks_order() {
    let h = headers(&[
        ("x-amz-checksum-crc32", "AAAAAA=="),
        ("x-amz-checksum-crc64nvme", "AAECAwQFBgc="),
    ]);
    let (algorithm, value) = announced_checksum(&h).unwrap();
    assert_eq!(algorithm.as_str(), "crc64nvme");
    assert_eq!(value, vec![0, 1, 2, 3, 4, 5, 6, 7]);
    // A value that is not base64 is skipped, as the SDK skips it; the next one is used.
    let h = headers(&[
        ("x-amz-checksum-crc32", "AAAAAA=="),
        ("x-amz-checksum-crc64nvme", "not base64!"),
    ]);
    assert_eq!(announced_checksum(&h).unwrap().0.as_str(), "crc32");
    // A part-level checksum (multipart upload) cannot be checked against the body.
    let h = headers(&[("x-amz-checksum-crc32", "AAAAAA==-3")]);
    assert!(announced_checksum(&h).is_none());
    assert!(is_part_level("abc=-12"));
    assert!(!is_part_level("abc="));
    assert!(!is_part_level("abc=-"));
    assert!(announced_checksum(&HeaderMap::new()).is_none());
}

fn body_of(chunks: &[&'static [u8]]) -> ByteStream {
    futures::stream::iter(chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect::<Vec<_>>()).boxed()
}

fn crc32_of(bytes: &[u8]) -> Vec<u8> {
    let mut h = ChecksumAlgorithm::Crc32.into_impl();
    h.update(bytes);
    h.finalize().to_vec()
}

#[tokio::test]
async fn a_body_matching_s3s_checksum_passes_whole() {
    let expected = crc32_of(b"hello world");
    let body = checked(
        body_of(&[b"hello ", b"world"]),
        ChecksumAlgorithm::Crc32,
        expected,
        "t".into(),
    );
    let chunks: Vec<_> = body.collect().await;
    assert_eq!(chunks.len(), 2);
    assert!(chunks.iter().all(Result::is_ok));
}

#[tokio::test]
async fn a_body_differing_from_s3s_checksum_fails_at_its_end() {
    let expected = crc32_of(b"hello world");
    let body = checked(
        body_of(&[b"hello ", b"w0rld"]),
        ChecksumAlgorithm::Crc32,
        expected,
        "s3://b/k".into(),
    );
    let chunks: Vec<_> = body.collect().await;
    assert_eq!(chunks.len(), 3, "two chunks, then the error, then the end");
    let e = chunks[2].as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Integrity);
    assert!(e.message.contains("crc32 checksum"), "{}", e.message);
    assert_eq!(e.target, "s3://b/k");
}

#[derive(Debug)]
struct Counting {
    calls: Arc<AtomicUsize>,
    valid_for: Option<Duration>,
}

impl aws_credential_types::provider::ProvideCredentials for Counting {
    fn provide_credentials<'a>(&'a self) -> ProvideFuture<'a>
    where
        Self: 'a,
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let expiry = self.valid_for.map(|d| SystemTime::now() + d);
        ProvideFuture::ready(Ok(Credentials::new("AKID", "secret", None, expiry, "counting")))
    }
}

/// How often the provider is asked over `gets` requests when what it gives lasts `valid_for`.
async fn fetches_over(gets: usize, valid_for: Duration) -> usize {
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = CredentialCache::new(SharedCredentialsProvider::new(Counting {
        calls: calls.clone(),
        valid_for: Some(valid_for),
    }));
    for _ in 0..gets {
        cache.get().await.unwrap();
    }
    calls.load(Ordering::SeqCst)
}

#[tokio::test]
async fn credentials_are_fetched_once_while_they_are_fresh() {
    assert_eq!(fetches_over(5, Duration::from_secs(3600)).await, 1);
}

#[tokio::test]
async fn credentials_close_to_expiry_are_fetched_again() {
    assert_eq!(fetches_over(3, REFRESH_BEFORE_EXPIRY / 2).await, 3);
}

#[test]
fn a_hostile_date_cannot_move_the_signing_clock_out_of_range() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let hour_ahead = now + Duration::from_secs(3600);
    assert_eq!(skew_between(hour_ahead, now), 3600);
    assert_eq!(skew_between(now, hour_ahead), -3600);
    assert_eq!(shifted(now, 3600), hour_ahead);
    assert_eq!(shifted(now, -3600), now - Duration::from_secs(3600));
    // Beyond what a SigV4 date can say: the signing clock stays where it was, nothing panics.
    for absurd in [i64::MAX, i64::MIN, -1_800_000_001, 300_000_000_000] {
        assert_eq!(shifted(now, absurd), now, "{absurd}");
    }
}

#[test]
fn credentials_without_an_expiry_are_fetched_again_after_15_minutes() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let forever = Credentials::new("AKID", "s", None, None, "t");
    assert_eq!(refresh_at(&forever, now), now + Duration::from_secs(900));
    let hour = Credentials::new("AKID", "s", None, Some(now + Duration::from_secs(3600)), "t");
    assert_eq!(refresh_at(&hour, now), now + Duration::from_secs(3540));
}

#[tokio::test]
async fn an_empty_key_is_never_sent_as_a_bucket_request() {
    let d = direct("b", Some("http://127.0.0.1:9000")).await.unwrap();
    assert!(d.url_for("").is_none());
}

#[tokio::test]
async fn an_endpoint_the_url_parser_rewrites_leaves_the_gets_to_the_sdk() {
    // `:80` on http is dropped by the parser: the URL would not be the one signed as built.
    assert!(direct("b", Some("http://127.0.0.1:80")).await.is_none());
}

mod against_a_server {
    use super::*;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn error_xml(code: &str) -> String {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
    }

    async fn direct_with(server: &MockServer, provider: SharedCredentialsProvider) -> DirectGet {
        let uri = server.uri();
        let inputs = EndpointInputs {
            bucket: "b",
            region: "eu-west-1",
            endpoint_url: Some(&uri),
            force_path_style: true,
            use_fips: false,
            use_dual_stack: false,
        };
        DirectGet::resolve(inputs, Some(provider)).await.unwrap()
    }

    async fn get(d: &DirectGet, key: &str) -> StorageResult<SourceBody> {
        d.get(d.url_for(key).unwrap(), format!("s3://b/{key}")).await
    }

    #[tokio::test]
    async fn a_skewed_clock_is_corrected_from_s3s_date_and_the_retry_is_worth_it() {
        let server = MockServer::start().await;
        let s3_time = chrono::Utc::now() + chrono::Duration::hours(2);
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(403)
                    .insert_header("date", s3_time.to_rfc2822().replace("+0000", "GMT").as_str())
                    .insert_header("x-amz-request-id", "REQ123")
                    .set_body_string(error_xml("RequestTimeTooSkewed")),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&server)
            .await;
        let d = direct_with(&server, static_provider()).await;
        let e = get(&d, "k").await.err().unwrap();
        assert!(e.kind.is_transient(), "{e}");
        assert!(e.message.contains("clock") && e.message.contains("REQ123"), "{e}");
        let got = get(&d, "k").await.unwrap();
        assert_eq!(got.head.size, 2);
        let sent = server.received_requests().await.unwrap();
        let signed_at = |i: usize| {
            let v = sent[i].headers.get("x-amz-date").unwrap().to_str().unwrap().to_string();
            chrono::NaiveDateTime::parse_from_str(&v, "%Y%m%dT%H%M%SZ")
                .unwrap()
                .and_utc()
        };
        let shift = signed_at(1) - signed_at(0);
        assert!((shift - chrono::Duration::hours(2)).num_seconds().abs() <= 5, "{shift}");
    }

    #[tokio::test]
    async fn refused_credentials_are_fetched_again_for_the_next_request() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(403).set_body_string(error_xml("InvalidAccessKeyId")))
            .mount(&server)
            .await;
        let calls = Arc::new(AtomicUsize::new(0));
        let provider = SharedCredentialsProvider::new(Counting {
            calls: calls.clone(),
            valid_for: Some(Duration::from_secs(3600)),
        });
        let d = direct_with(&server, provider).await;
        for _ in 0..2 {
            let e = get(&d, "k").await.err().unwrap();
            assert_eq!(e.kind, ErrorKind::Credentials, "{e}");
            assert!(e.message.contains("InvalidAccessKeyId"), "{e}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn throttling_keeps_s3s_wait_and_a_huge_error_body_is_read_only_so_far() {
        let server = MockServer::start().await;
        let huge = format!("{}{}", error_xml("SlowDown"), " ".repeat(10 * 1024 * 1024));
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(503)
                    .insert_header("retry-after", "3")
                    .set_body_string(huge),
            )
            .mount(&server)
            .await;
        let d = direct_with(&server, static_provider()).await;
        let e = get(&d, "k").await.err().unwrap();
        assert_eq!(e.kind, ErrorKind::Throttled, "{e}");
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    }
}
