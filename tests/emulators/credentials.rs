//! Issue 18, "credentials are scrubbed at the edge", against the real binary: a fake App
//! Service identity endpoint and a fake STS plant canary secrets in every field a service
//! can echo (the Entra token, STS's secret key, session token, subject, audience, an
//! unparsable expiration, an error message quoting the token). No canary may reach stdout,
//! stderr or the run records in the state container (what Log Analytics is sent).
//! Also: an identity endpoint's 500 is reported as itself, truncated STS XML is an error,
//! and credentials that STS says already expired cost one exchange, not one per request.

use base64::Engine;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use support::output;

const IDENTITY_HEADER: &str = "x-identity-header-canary-hdr-0001";
const READER: &str = "arn:aws:iam::123456789012:role/trailvault-reader";

/// A JWT-shaped Entra token whose signature is a canary.
fn canary_token() -> String {
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.CANARYENTRATOKENSIG0001",
        b64(&serde_json::json!({"typ": "JWT", "alg": "RS256"})),
        b64(&serde_json::json!({"aud": "api://AzureADTokenExchange", "sub": "s"})),
    )
}

async fn identity(status: u16, body: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/msi/token"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

async fn good_identity() -> MockServer {
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).timestamp();
    identity(
        200,
        serde_json::json!({
            "access_token": canary_token(),
            "expires_on": expires.to_string(),
            "resource": "api://AzureADTokenExchange",
            "token_type": "Bearer",
            "client_id": "99999999-8888-7777-6666-555555555555",
        }),
    )
    .await
}

/// STS answering AssumeRoleWithWebIdentity with `credentials` (the `<Credentials>` element's
/// content) and the token echoed in every other field it has.
async fn sts(status: u16, body: String) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "text/xml"))
        .mount(&server)
        .await;
    server
}

fn sts_answer(credentials: &str) -> String {
    let token = canary_token();
    format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>{token}</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/trailvault-reader/trailvault</Arn><AssumedRoleId>AROA:trailvault</AssumedRoleId></AssumedRoleUser>
    <Credentials>{credentials}</Credentials>
    <Audience>{token}</Audience>
    <Provider>{token}</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
    )
}

fn keyless(w: &World, config: &std::path::PathBuf, identity: &MockServer, sts: &MockServer) -> tokio::process::Command {
    let mut cmd = w.command(config, &["sync", "--json"]);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", w.dir.path().join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", w.dir.path().join("no-aws-credentials"))
        .env("IDENTITY_ENDPOINT", format!("{}/msi/token", identity.uri()))
        .env("IDENTITY_HEADER", IDENTITY_HEADER)
        .env("AWS_ENDPOINT_URL_STS", sts.uri());
    cmd
}

/// Every run record in the state container, as text.
async fn run_records(w: &World) -> String {
    let mut all = String::new();
    for b in w.state.list_all("runs/").await.unwrap_or_default() {
        if let Ok(Some((bytes, _))) = trailvault::storage::read_all(w.state.as_ref(), &b.name).await {
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_from_sts_and_the_identity_endpoint_reach_no_output_or_record() {
    let w = world!("canary-bucket");
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let config = w.config(
        w.moto.port,
        "",
        &format!(
            "[aws]\nauth = \"azure-federated\"\nrole_arn = \"{READER}\"\nazure_credential = \"managed-identity\"\n"
        ),
    );
    let entra = good_identity().await;
    let cases = [
        (
            "an unparsable Expiration",
            sts(
                200,
                sts_answer(
                    "<AccessKeyId>ASIAPLAINKEYID0001</AccessKeyId><SecretAccessKey>CANARYSECRETKEY0001+/=</SecretAccessKey>\
                     <SessionToken>CANARYSESSIONTOKEN0001</SessionToken><Expiration>garbage, not a date</Expiration>",
                ),
            )
            .await,
        ),
        (
            "a refusal quoting the token and keys",
            sts(
                400,
                format!(
                    r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>token {} refused; SecretAccessKey=CANARYSECRETKEY0002 SessionToken: CANARYSESSIONTOKEN0002</Message></Error><RequestId>r</RequestId></ErrorResponse>"#,
                    canary_token()
                ),
            )
            .await,
        ),
        (
            "truncated XML",
            sts(200, {
                let full = sts_answer(
                    "<AccessKeyId>ASIAPLAINKEYID0003</AccessKeyId><SecretAccessKey>CANARYSECRETKEY0003</SecretAccessKey>\
                     <SessionToken>CANARYSESSIONTOKEN0003</SessionToken><Expiration>2100-01-01T00:00:00Z</Expiration>",
                );
                let cut = full.find("<SessionToken>").unwrap() + "<SessionTo".len();
                full[..cut].to_string()
            })
            .await,
        ),
    ];
    for (name, sts) in &cases {
        let run = output(&mut keyless(&w, &config, &entra, sts)).await;
        assert_eq!(run.code, 1, "{name}: {run:?}");
        assert!(
            run.stdout.contains("STS"),
            "{name}: the document names STS: {}",
            run.stdout
        );
        for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(!text.contains("CANARY"), "{name}: a canary reached {what}: {text}");
        }
        assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
    }
    let records = run_records(&w).await;
    assert!(!records.is_empty(), "runs were recorded");
    assert!(!records.contains("CANARY"), "a canary reached a run record: {records}");
    assert_eq!(w.archived_so_far().await, 0, "nothing was copied without credentials");

    // The identity endpoint failing: reported as its own 500, echoed token scrubbed.
    let failing = identity(
        500,
        serde_json::json!({"error": "boom", "access_token": "CANARYIDENTITY500", "detail": canary_token()}),
    )
    .await;
    let never = sts(500, String::new()).await;
    let start = std::time::Instant::now();
    let run = output(&mut keyless(&w, &config, &failing, &never)).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.stdout.contains("no answer within"), "{}", run.stdout);
    assert!(
        run.stdout.contains("boom") && run.stdout.contains("Entra token"),
        "the identity endpoint's own answer: {}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("CANARY") && !run.stderr.contains("CANARY"),
        "{run:?}"
    );
    assert!(
        never.received_requests().await.unwrap().is_empty(),
        "no STS call without a token"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    assert!(!run_records(&w).await.contains("CANARY"));

    // Credentials STS says already expired: kept a while, one exchange for the whole run.
    let expired = sts(
        200,
        sts_answer(
            "<AccessKeyId>ASIAEXPIRED00000001</AccessKeyId><SecretAccessKey>CANARYSECRETKEY0004</SecretAccessKey>\
             <SessionToken>CANARYSESSIONTOKEN0004</SessionToken><Expiration>2001-01-01T00:00:00Z</Expiration>",
        ),
    )
    .await;
    let run = output(&mut keyless(&w, &config, &entra, &expired)).await;
    assert_eq!(run.code, 0, "moto accepts any key: {run:?}");
    assert_eq!(run.json()["sources"][0]["files_copied"], files.len() as u64);
    let exchanges = expired.received_requests().await.unwrap().len();
    assert!(exchanges <= 2, "{exchanges} STS exchanges for {} files", files.len());
    assert!(
        !run.stdout.contains("CANARY") && !run.stderr.contains("CANARY"),
        "{run:?}"
    );
    assert!(!run_records(&w).await.contains("CANARY"));
}
