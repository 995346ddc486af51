//! Issue 18, "listings that never end", against the real binary: a fake S3 that lists
//! one stream (`AWSLogs/111122223333/CloudTrail/us-east-1/`) and turns hostile at one
//! level: tokens that cycle A, B, A on a delimiter (folder) listing, a 1 MB continuation
//! token, a fresh token on every page. Each is a listing error for the source (exit 1),
//! never a hang, a panic (exit 101) or memory without bound.

use std::time::{Duration, Instant};

use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::*;

const ACCOUNT_ROOT: &str = "AWSLogs/111122223333/";
const KIND_ROOT: &str = "AWSLogs/111122223333/CloudTrail/";
const STREAM: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/";

#[derive(Clone, Copy)]
enum Hostile {
    /// The folder listing of the account hands out tokens A, B, A, ...
    CyclingFolders,
    /// The folder listing of the account continues with a 1 MB token.
    HugeToken,
    /// The stream's listing continues for ever, a new token on every (empty) page.
    Endless,
}

struct FakeS3 {
    mode: Hostile,
    pages: std::sync::atomic::AtomicU64,
}

fn listing(prefix: &str, folders: &[&str], next: Option<&str>) -> String {
    let common: String = folders
        .iter()
        .map(|f| format!("<CommonPrefixes><Prefix>{f}</Prefix></CommonPrefixes>"))
        .collect();
    let token = next
        .map(|t| format!("<NextContinuationToken>{t}</NextContinuationToken>"))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Name>b</Name><Prefix>{prefix}</Prefix><KeyCount>{}</KeyCount><MaxKeys>1000</MaxKeys>\
         <IsTruncated>{}</IsTruncated>{token}{common}</ListBucketResult>",
        folders.len(),
        next.is_some()
    )
}

impl Respond for FakeS3 {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let q: std::collections::BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let prefix = q.get("prefix").cloned().unwrap_or_default();
        let token = q.get("continuation-token").cloned();
        let folders = q.contains_key("delimiter");
        let n = self.pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let body = match (self.mode, folders, prefix.as_str()) {
            (_, true, "AWSLogs/") => listing(&prefix, &[ACCOUNT_ROOT], None),
            (Hostile::CyclingFolders, true, ACCOUNT_ROOT) => {
                let next = match token.as_deref() {
                    Some("A") => "B",
                    _ => "A",
                };
                listing(&prefix, &[], Some(next))
            }
            (Hostile::HugeToken, true, ACCOUNT_ROOT) if token.is_none() => {
                listing(&prefix, &[], Some(&"T".repeat(1 << 20)))
            }
            (_, true, ACCOUNT_ROOT) => listing(&prefix, &[KIND_ROOT], None),
            (_, true, KIND_ROOT) => listing(&prefix, &[STREAM], None),
            (Hostile::Endless, false, _) => listing(&prefix, &[], Some(&format!("{n:08}{}", "x".repeat(900)))),
            _ => listing(&prefix, &[], None),
        };
        ResponseTemplate::new(200).set_body_raw(body, "application/xml")
    }
}

async fn fake_s3(mode: Hostile) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("GET"))
        .respond_with(FakeS3 {
            mode,
            pages: Default::default(),
        })
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_listings_are_listing_errors_not_hangs_panics_or_memory() {
    let w = world!("hostile-listing");
    for (mode, name, expect) in [
        (Hostile::CyclingFolders, "cycling folder tokens", "gave before"),
        (Hostile::HugeToken, "a 1 MB token", "longer than its limit"),
        (Hostile::Endless, "a fresh token on every page", "budget of 50 pages"),
    ] {
        let s3 = fake_s3(mode).await;
        let port = s3.address().port();
        let config = w.config(port, "", "");
        let mut cmd = w.command(&config, &["sync", "--json"]);
        cmd.env("TRAILVAULT_LIST_MAX_PAGES", "50");
        let start = Instant::now();
        let (out, peak_kib) = tokio::time::timeout(Duration::from_secs(120), support::run_measured(cmd))
            .await
            .unwrap_or_else(|_| panic!("{name}: sync hung"));
        let took = start.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
        let errors = doc["sources"][0]["errors"].to_string();
        assert!(errors.contains(expect), "{name}: {doc}");
        assert!(took < Duration::from_secs(60), "{name}: took {took:?}");
        assert!(peak_kib < 200 * 1024, "{name}: peak RSS {peak_kib} KiB");
    }
}
