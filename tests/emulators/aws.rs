//! Issue 11, the Rust half, against the real emulators: AWS credentials from an Azure
//! identity (a fake App Service managed-identity endpoint and moto's STS, no AWS key in
//! the environment), the sync deadline (CLI and Functions), the Functions log split and
//! the `/metrics` bearer token.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::support::ctgen::GenFile;
use super::support::daemon::{answers_get, free_port, http_get_authorized, kill, Daemon};
use super::support::proxy::{Fault, Proxy};
use super::support::{output, World, SOURCE};
use super::{http_post, many_files_trail, sample_trail};
use trailvault::storage::BlobStoreExt;

const IDENTITY_HEADER: &str = "x-identity-header-secret-0f3c";
const READER: &str = "arn:aws:iam::123456789012:role/trailvault-reader";
const RESTORER: &str = "arn:aws:iam::123456789012:role/trailvault-restore";

/// A JWT-shaped Entra token (aud, iss, sub as Entra sets them for a managed identity).
fn entra_token() -> String {
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        b64(&serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": "test"})),
        b64(&serde_json::json!({
            "aud": "api://AzureADTokenExchange",
            "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
            "sub": "11111111-2222-3333-4444-555555555555",
        })),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"signature-that-only-this-test-knows"),
    )
}

/// The App Service managed-identity endpoint (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`):
/// answers only with the right header, as the platform does; records every request.
async fn identity_endpoint(token: &str) -> MockServer {
    let server = MockServer::start().await;
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).timestamp();
    Mock::given(method("GET"))
        .and(path("/msi/token"))
        .and(header("x-identity-header", IDENTITY_HEADER))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": token,
            "expires_on": expires.to_string(),
            "resource": "api://AzureADTokenExchange",
            "token_type": "Bearer",
            "client_id": "99999999-8888-7777-6666-555555555555",
        })))
        .mount(&server)
        .await;
    server
}

/// `trailvault ARGS` with no AWS key anywhere in its environment, the Azure identity of
/// an App Service, and STS reached through `sts_port`.
fn keyless(
    w: &World,
    config: &std::path::PathBuf,
    args: &[&str],
    identity: &MockServer,
    sts_port: u16,
) -> tokio::process::Command {
    let mut cmd = w.command(config, args);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", w.dir.path().join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", w.dir.path().join("no-aws-credentials"))
        .env("IDENTITY_ENDPOINT", format!("{}/msi/token", identity.uri()))
        .env("IDENTITY_HEADER", IDENTITY_HEADER)
        .env("AWS_ENDPOINT_URL_STS", format!("http://127.0.0.1:{sts_port}"));
    cmd
}

/// Text between `<tag>` and `</tag>`, each occurrence.
pub(super) fn xml_values(text: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    text.match_indices(&open)
        .filter_map(|(i, _)| {
            let rest = &text[i + open.len()..];
            rest.find(&close).map(|j| rest[..j].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_sync_exchanges_the_azure_identity_at_sts_and_signs_s3_with_the_role() {
    let w = match World::new("keyless-bucket").await {
        Some(w) => w,
        None => return,
    };
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let token = entra_token();
    let identity = identity_endpoint(&token).await;
    // One recording proxy in front of moto serves both S3 (the source endpoint) and STS.
    let proxy = Proxy::start(w.moto.port).await;
    let config = w.config(
        proxy.port,
        "",
        &format!(
            "[aws]\nauth = \"azure-federated\"\nrole_arn = \"{READER}\"\nazure_credential = \"managed-identity\"\n"
        ),
    );

    // An identity the platform does not know (its endpoint answers 404): no AWS
    // credential at all, exit 1, saying why.
    let unknown = MockServer::start().await;
    let refused = output(&mut keyless(&w, &config, &["sync", "--json"], &unknown, proxy.port)).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains("Entra token"), "{}", refused.stdout);
    assert_eq!(w.archived_so_far().await, 0);

    let run = output(&mut keyless(&w, &config, &["sync", "--json"], &identity, proxy.port)).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "Succeeded", "{doc}");
    assert_eq!(doc["sources"][0]["files_copied"], files.len() as u64, "{doc}");
    let (ok, out) = w.rclone_check("");
    assert!(ok, "{out}");

    // The identity endpoint was asked for the token audience, with the platform's header.
    let asked = identity.received_requests().await.unwrap();
    assert!(!asked.is_empty());
    for r in &asked {
        let q: BTreeMap<String, String> = r.url.query_pairs().into_owned().collect();
        assert_eq!(
            q.get("resource").map(String::as_str),
            Some("api://AzureADTokenExchange"),
            "{}",
            r.url
        );
        assert_eq!(q.get("api-version").map(String::as_str), Some("2019-08-01"));
    }

    // STS was asked for the configured role with exactly that token, without a signature.
    let sent = proxy.requests_text();
    assert!(
        sent.contains("Action=AssumeRoleWithWebIdentity"),
        "no STS exchange seen"
    );
    assert!(
        sent.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Ftrailvault-reader"),
        "{sent}"
    );
    assert!(sent.contains("RoleSessionName=trailvault"));
    assert!(
        sent.contains(&format!("WebIdentityToken={token}")),
        "the Entra token was not the one exchanged"
    );
    // Cached: one exchange for the whole run, however many S3 requests it made.
    assert_eq!(sent.matches("Action=AssumeRoleWithWebIdentity").count(), 1);

    // moto assumed the role and issued a key; every S3 request was signed with it.
    let answered = proxy.responses_text();
    let assumed = xml_values(&answered, "Arn");
    assert!(
        assumed
            .iter()
            .any(|a| a == "arn:aws:sts::123456789012:assumed-role/trailvault-reader/trailvault"),
        "{assumed:?}"
    );
    let issued = xml_values(&answered, "AccessKeyId");
    assert_eq!(issued.len(), 1, "{issued:?}");
    let keys: BTreeSet<String> = proxy.signing_keys().into_iter().collect();
    assert_eq!(
        keys,
        BTreeSet::from([issued[0].clone()]),
        "S3 requests signed with other keys"
    );
    assert!(issued[0].starts_with("ASIA"), "{issued:?}");
    assert!(
        sent.contains("x-amz-security-token"),
        "S3 requests carry no session token"
    );
    assert!(sent.matches("x-id=GetObject").count() >= files.len());

    // Neither the token nor the role's secret reaches the output.
    let secret = xml_values(&answered, "SecretAccessKey").pop().unwrap();
    let session = xml_values(&answered, "SessionToken").pop().unwrap();
    for text in [&run.stdout, &run.stderr, &refused.stdout, &refused.stderr] {
        assert!(!text.contains(&token[token.len() - 20..]), "token leaked: {text}");
        assert!(!text.contains(&secret), "AWS secret leaked: {text}");
        assert!(!text.contains(&session[..40]), "session token leaked: {text}");
    }

    // keys fetch: CloudTrail's ListPublicKeys (a local awsJson endpoint) with the role's key too.
    let cloudtrail = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "CloudTrail_20131101.ListPublicKeys"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/x-amz-json-1.1")
                .set_body_json(serde_json::json!({ "PublicKeyList": [] })),
        )
        .mount(&cloudtrail)
        .await;
    let (_, mark) = proxy.recorded();
    let fetch = output(
        keyless(&w, &config, &["keys", "fetch", "--json"], &identity, proxy.port)
            .env("AWS_ENDPOINT_URL_CLOUDTRAIL", cloudtrail.uri()),
    )
    .await;
    assert_eq!(fetch.code, 0, "{fetch:?}");
    let fetch_key = xml_values(&proxy.responses_since(mark), "AccessKeyId")
        .pop()
        .expect("an exchange for keys fetch");
    let calls = cloudtrail.received_requests().await.unwrap();
    assert_eq!(calls.len(), 2, "one call per archived region");
    for c in &calls {
        let auth = c.headers.get("authorization").unwrap().to_str().unwrap();
        assert!(auth.contains(&format!("Credential={fetch_key}/")), "{auth}");
        assert!(c.headers.contains_key("x-amz-security-token"));
    }

    // restore --role-arn: the writing role, assumed the same way, signs the S3 writes.
    w.s3.create_bucket().bucket("restored-bucket").send().await.unwrap();
    let (sent_before, before) = proxy.recorded();
    let restore = output(
        keyless(
            &w,
            &config,
            &[
                "restore",
                "--to",
                "s3://restored-bucket",
                "--role-arn",
                RESTORER,
                "--json",
            ],
            &identity,
            proxy.port,
        )
        .env("AWS_ENDPOINT_URL_S3", format!("http://127.0.0.1:{}", proxy.port)),
    )
    .await;
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(restore.json()["files"], files.len() as u64, "{}", restore.stdout);
    let sent = &proxy.requests_since(sent_before);
    assert!(
        sent.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Ftrailvault-restore"),
        "{sent}"
    );
    let answered = &proxy.responses_since(before);
    let restore_key = xml_values(answered, "AccessKeyId").pop().expect("a second exchange");
    assert_ne!(restore_key, issued[0]);
    let restore_keys: BTreeSet<String> = sent
        .match_indices("Credential=")
        .map(|(i, m)| sent[i + m.len()..].chars().take_while(|c| *c != '/').collect())
        .collect();
    assert_eq!(restore_keys, BTreeSet::from([restore_key]));

    // A --role-arn that is not a role ARN is a usage error, before any network call.
    let bad = output(&mut keyless(
        &w,
        &config,
        &[
            "restore",
            "--to",
            "s3://restored-bucket",
            "--role-arn",
            "arn:aws:iam::1:user/x",
        ],
        &identity,
        proxy.port,
    ))
    .await;
    assert_eq!(bad.code, 2, "{bad:?}");
    // --role-arn means nothing with the SDK's default chain or for a folder: exit 2, saying so.
    let default_chain = w.config(proxy.port, "", "");
    let plain = w
        .run(
            &default_chain,
            &["restore", "--to", "s3://restored-bucket", "--role-arn", RESTORER],
        )
        .await;
    assert_eq!(plain.code, 2, "{plain:?}");
    assert!(plain.stderr.contains("azure-federated"), "{}", plain.stderr);
    let dir = w.dir.path().join("restored");
    let folder = w
        .run(
            &config,
            &["restore", "--to", dir.to_str().unwrap(), "--role-arn", RESTORER],
        )
        .await;
    assert_eq!(folder.code, 2, "{folder:?}");
}

/// Every file of a stream at or before its watermark is archived: the mark never passes
/// a file that was left.
async fn assert_watermarks_exact(w: &World, files: &[GenFile]) -> usize {
    let archived: BTreeSet<String> = w
        .archived()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n[SOURCE.len() + 1..].to_string())
        .collect();
    let mut marks = 0;
    for blob in w.state.list_all(&format!("watermarks/{SOURCE}/")).await.unwrap() {
        let (bytes, _) = trailvault::storage::read_all(w.state.as_ref(), &blob.name)
            .await
            .unwrap()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for (prefix, mark) in doc["streams"].as_object().unwrap() {
            marks += 1;
            let time: chrono::DateTime<chrono::Utc> = mark["time"].as_str().unwrap().parse().unwrap();
            for f in files
                .iter()
                .filter(|f| f.key.starts_with(prefix.as_str()) && f.time <= time)
            {
                assert!(
                    archived.contains(&f.key),
                    "watermark {} of {prefix} passes {} which is not archived",
                    time,
                    f.key
                );
            }
        }
    }
    marks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_stopped_by_its_deadline_is_partial_exact_and_the_next_run_finishes() {
    let w = match World::new("deadline-bucket").await {
        Some(w) => w,
        None => return,
    };
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    proxy.set(Fault::SlowResponses(Duration::from_millis(40)));
    let config = w.config(proxy.port, "", "[sync]\nconcurrency = 2\n");

    let started = std::time::Instant::now();
    let run = w.run(&config, &["sync", "--deadline", "3s", "--json"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the deadline did not stop the run"
    );
    assert_eq!(run.code, 0, "a run stopped only by its deadline exits 0: {run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "Partial", "{doc}");
    assert_eq!(doc["deadline_reached"], true, "{doc}");
    let src = &doc["sources"][0];
    assert_eq!(src["deadline_reached"], true);
    assert_eq!(src["files_failed"], 0, "{doc}");
    assert_eq!(src["complete"], false);
    let copied = src["files_copied"].as_u64().unwrap();
    assert!(copied > 0, "nothing copied before the deadline: {doc}");
    assert!(
        (copied as usize) < files.len(),
        "everything copied: raise the file count"
    );
    assert_eq!(w.archived().await.unwrap().len() as u64, copied, "{doc}");

    // The run record says so too.
    let records = w.run_record(doc["run_id"].as_str().unwrap()).await;
    let sync_run = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["RecordType"] == "SyncRun")
        .unwrap();
    assert_eq!(sync_run["Status"], "Partial", "{sync_run}");
    assert_eq!(sync_run["Details"]["deadline_reached"], true, "{sync_run}");
    assert!(sync_run["Message"].as_str().unwrap().contains("deadline"), "{sync_run}");

    // Progress saved exactly: watermarks exist and none passes a file left behind.
    let marks = assert_watermarks_exact(&w, &files).await;
    assert!(marks > 0, "no progress was saved");
    // The backup gap does not move for a partial run.
    let health = trailvault::storage::read_all(w.state.as_ref(), &format!("health/{SOURCE}.json"))
        .await
        .unwrap()
        .unwrap()
        .0;
    let health: serde_json::Value = serde_json::from_slice(&health).unwrap();
    assert!(health["last_success_started_at"].is_null(), "{health}");

    // The next run (no deadline) finishes the rest; nothing twice, nothing missing.
    proxy.set(Fault::Pass);
    let rest = w.sync(&config).await;
    assert_eq!(rest.code, 0, "{rest:?}");
    let doc2 = rest.json();
    assert_eq!(doc2["status"], "Succeeded", "{doc2}");
    assert_eq!(doc2["deadline_reached"], false);
    assert_eq!(
        doc2["sources"][0]["files_copied"].as_u64().unwrap() + copied,
        files.len() as u64,
        "{doc2}"
    );
    assert_eq!(w.archived().await.unwrap().len(), files.len());
    assert_watermarks_exact(&w, &files).await;
    let (ok, out) = w.rclone_check("");
    assert!(ok, "{out}");
}

fn lines_with_levels(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["level"].as_str().unwrap_or_default().to_string(),
                v["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_logs_split_by_level_and_its_sync_stops_before_the_host_timeout() {
    let w = match World::new("functions-deadline").await {
        Some(w) => w,
        None => return,
    };
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let proxy = Proxy::start(w.moto.port).await;
    proxy.set(Fault::SlowResponses(Duration::from_millis(40)));
    let config = w.config(proxy.port, "", "[sync]\nconcurrency = 2\n");
    // The app folder as deployed: host.json beside the handler, whose working directory it is.
    // A 63 s timeout leaves the sync 3 s.
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join("host.json"),
        r#"{"version": "2.0", "functionTimeout": "00:01:03"}"#,
    )
    .unwrap();
    let port = free_port();
    let child = w
        .command(&config, &["functions"])
        .current_dir(app.path())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .spawn()
        .unwrap();
    assert!(answers_get(port).await, "the handler never answered GET /");

    let timer = r#"{"Data":{"timer":{"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"sync"}}}"#;
    let started = std::time::Instant::now();
    let (code, body) = http_post(port, "/sync", timer).await;
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the deadline did not stop the run"
    );
    assert_eq!(code, 200, "a deadline-only Partial is not a failed invocation: {body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    let logs = reply["Logs"].to_string();
    assert!(logs.contains("Partial") && logs.contains("deadline reached"), "{logs}");
    let partial = w.archived().await.unwrap().len();
    assert!(partial > 0 && partial < files.len(), "{partial} of {}", files.len());
    assert_watermarks_exact(&w, &files).await;

    // Each next invocation goes on from there, until the backfill is done.
    proxy.set(Fault::Pass);
    let mut done = partial;
    for invocation in 2.. {
        assert!(invocation < 20, "the backfill never finished");
        let (code, body) = http_post(port, "/sync", timer).await;
        assert_eq!(code, 200, "{body}");
        let now = w.archived().await.unwrap().len();
        if body.contains("Succeeded") {
            break;
        }
        assert!(body.contains("deadline reached") && now > done, "no progress: {body}");
        assert_watermarks_exact(&w, &files).await;
        done = now;
    }
    assert_eq!(w.archived().await.unwrap().len(), files.len());

    kill(child.id().unwrap(), "TERM");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    let stdout = lines_with_levels(&String::from_utf8_lossy(&out.stdout));
    let stderr = lines_with_levels(&String::from_utf8_lossy(&out.stderr));
    // Information on stdout (the host logs it as Information), nothing else there.
    assert!(
        stdout.iter().any(|(_, m)| m == "custom handler listening"),
        "{stdout:?}"
    );
    assert!(
        stdout.iter().any(|(_, m)| m == "sync deadline per invocation"),
        "{stdout:?}"
    );
    assert!(stdout.iter().any(|(_, m)| m == "sync finished"), "{stdout:?}");
    assert!(
        stdout.iter().all(|(l, _)| l == "INFO" || l == "DEBUG" || l == "TRACE"),
        "{stdout:?}"
    );
    // stderr (logged by the host as errors) only carries warnings and errors.
    assert!(stderr.iter().all(|(l, _)| l == "WARN" || l == "ERROR"), "{stderr:?}");

    // A handler with an unusable config: its error goes to stderr, its start to stdout.
    let bad = w.config(proxy.port, "", "[sync]\nconcurency = 1\n");
    let port = free_port();
    let child = w
        .command(&bad, &["functions"])
        .current_dir(app.path())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .spawn()
        .unwrap();
    answers_get(port).await;
    kill(child.id().unwrap(), "TERM");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = lines_with_levels(&String::from_utf8_lossy(&out.stdout));
    let stderr = lines_with_levels(&String::from_utf8_lossy(&out.stderr));
    assert!(
        stderr
            .iter()
            .any(|(l, m)| l == "ERROR" && m.contains("configuration is unusable")),
        "{stderr:?}"
    );
    assert!(
        stdout
            .iter()
            .any(|(l, m)| l == "INFO" && m == "custom handler listening"),
        "{stdout:?}"
    );
    assert!(!stderr.iter().any(|(l, _)| l == "INFO"), "{stderr:?}");

    // Every other command logs to stderr only: stdout is the one JSON document.
    let other = w.run(&config, &["sync", "--json"]).await;
    assert_eq!(other.code, 0, "{other:?}");
    other.json();
    assert!(other.stderr.contains("\"level\":\"INFO\""), "{}", other.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_bearer_token_when_one_is_set_and_probes_never_do() {
    let w = match World::new("metrics-token").await {
        Some(w) => w,
        None => return,
    };
    let config = w.config(
        w.moto.port,
        "",
        "[schedule]\ncron = \"0 0 0 1 1 *\"\nverify_cron = \"0 0 0 1 1 *\"\n",
    );
    let token = "metrics-token-7f1e2d";
    let daemon = Daemon::start(
        w.command(&config, &["daemon", "--listen", "127.0.0.1:0"])
            .env("TRAILVAULT_METRICS_TOKEN", token),
    )
    .await;
    let port = daemon.port;
    for probe in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(http_get_authorized(port, probe, None).await.code, 200, "{probe}");
    }
    let refused = http_get_authorized(port, "/metrics", None).await;
    assert_eq!(refused.code, 401, "{refused:?}");
    assert!(
        refused.head.to_ascii_lowercase().contains("www-authenticate: bearer"),
        "{refused:?}"
    );
    for wrong in [
        "Bearer wrong".to_string(),
        format!("Bearer {token}x"),
        format!("Basic {token}"),
    ] {
        let answer = http_get_authorized(port, "/metrics", Some(&wrong)).await;
        assert_eq!(answer.code, 401, "{wrong}: {answer:?}");
    }
    let scraped = http_get_authorized(port, "/metrics", Some(&format!("Bearer {token}"))).await;
    assert_eq!(scraped.code, 200, "{scraped:?}");
    assert!(
        scraped.body.contains("trailvault_rpo_target_seconds 28800"),
        "{scraped:?}"
    );

    let (status, logs) = daemon.stop().await;
    assert_eq!(status.code(), Some(0));
    assert!(!logs.contains(token), "the metrics token reached the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_chain_reads_credential_process_and_sso_profiles() {
    let w = match World::new("chain-bucket").await {
        Some(w) => w,
        None => return,
    };
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files[..4]).await;
    let proxy = Proxy::start(w.moto.port).await;
    let config = w.config(proxy.port, "", "[aws]\nauth = \"default\"\n");

    // credential_process (the SDK runs it through the shell).
    let aws_config = w.dir.path().join("aws-config");
    std::fs::write(
        &aws_config,
        "[profile process]\ncredential_process = echo '{\"Version\": 1, \"AccessKeyId\": \"AKIAPROCESS000000001\", \"SecretAccessKey\": \"process-secret\"}'\n\n\
         [profile sso]\nsso_start_url = https://example.awsapps.com/start\nsso_region = us-east-1\nsso_account_id = 123456789012\nsso_role_name = TrailvaultReader\n",
    )
    .unwrap();
    let chain = |profile: &str| {
        let mut cmd = w.command(&config, &["sync", "--json"]);
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_CONFIG_FILE", &aws_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", w.dir.path().join("no-credentials"))
            .env("AWS_PROFILE", profile);
        cmd
    };
    let mark = proxy.recorded().0;
    let run = output(&mut chain("process")).await;
    assert_eq!(run.code, 0, "{run:?}");
    let sent = proxy.requests_since(mark);
    let keys: BTreeSet<String> = sent
        .match_indices("Credential=")
        .map(|(i, m)| sent[i + m.len()..].chars().take_while(|c| *c != '/').collect())
        .collect();
    assert_eq!(keys, BTreeSet::from(["AKIAPROCESS000000001".to_string()]));

    // An IAM Identity Center (SSO) profile: the cached sign-in token, GetRoleCredentials
    // at the portal (a local endpoint here).
    use sha1::Digest;
    let cache = w.dir.path().join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let name = hex::encode(sha1::Sha1::digest(b"https://example.awsapps.com/start"));
    std::fs::write(
        cache.join(format!("{name}.json")),
        r#"{"accessToken": "sso-access-token", "expiresAt": "2099-01-01T00:00:00Z", "region": "us-east-1", "startUrl": "https://example.awsapps.com/start"}"#,
    )
    .unwrap();
    let portal = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/federation/credentials"))
        .and(header("x-amz-sso_bearer_token", "sso-access-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "roleCredentials": {
                "accessKeyId": "ASIASSO0000000000001",
                "secretAccessKey": "sso-secret",
                "sessionToken": "sso-session",
                "expiration": (chrono::Utc::now() + chrono::Duration::hours(1)).timestamp_millis(),
            }
        })))
        .mount(&portal)
        .await;
    let mark = proxy.recorded().0;
    let run = output(chain("sso").env("AWS_ENDPOINT_URL_SSO", portal.uri())).await;
    assert_eq!(run.code, 0, "{run:?}");
    let sent = proxy.requests_since(mark);
    let keys: BTreeSet<String> = sent
        .match_indices("Credential=")
        .map(|(i, m)| sent[i + m.len()..].chars().take_while(|c| *c != '/').collect())
        .collect();
    assert_eq!(keys, BTreeSet::from(["ASIASSO0000000000001".to_string()]));
    assert!(!portal.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_source_is_read_with_its_own_role() {
    let w = match World::new("roles-bucket").await {
        Some(w) => w,
        None => return,
    };
    let files = sample_trail(&w.bucket).generate();
    w.seed(&files).await;
    let token = entra_token();
    let identity = identity_endpoint(&token).await;
    let proxy = Proxy::start(w.moto.port).await;
    let second = "arn:aws:iam::210987654321:role/second-reader";
    let config = w.config(
        proxy.port,
        "",
        &format!(
            "[[source]]\nname = \"second\"\nbucket = \"{}\"\nregion = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:{}\"\nrole_arn = \"{second}\"\n\n\
             [aws]\nauth = \"azure-federated\"\nrole_arn = \"{READER}\"\nazure_credential = \"managed-identity\"\n",
            w.bucket, proxy.port
        ),
    );
    let run = output(&mut keyless(&w, &config, &["sync", "--json"], &identity, proxy.port)).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    for s in doc["sources"].as_array().unwrap() {
        assert_eq!(s["files_copied"], files.len() as u64, "{doc}");
    }

    // One exchange per role; each answer's key, by the role it was issued for.
    let answered = proxy.responses_text();
    let by_role: BTreeMap<String, String> = answered
        .split("<AssumeRoleWithWebIdentityResult>")
        .skip(1)
        .map(|block| {
            let arn = xml_values(block, "Arn").pop().unwrap();
            let role = arn.split('/').nth(1).unwrap().to_string();
            (role, xml_values(block, "AccessKeyId").pop().unwrap())
        })
        .collect();
    assert_eq!(by_role.len(), 2, "{by_role:?}");
    // Each source's S3 requests (signed for its region) carry its own role's key.
    let sent = proxy.requests_text();
    let scopes: BTreeSet<(String, String)> = sent
        .match_indices("Credential=")
        .map(|(i, m)| {
            let mut parts = sent[i + m.len()..].split('/');
            let key = parts.next().unwrap().to_string();
            let region = parts.nth(1).unwrap().to_string();
            (key, region)
        })
        .collect();
    assert_eq!(
        scopes,
        BTreeSet::from([
            (by_role["trailvault-reader"].clone(), "us-east-1".to_string()),
            (by_role["second-reader"].clone(), "eu-west-1".to_string()),
        ])
    );
}

/// Refused credentials are our problem, not an AWS outage: three syncs whose identity
/// exchange fails (an unknown Entra identity; STS answering AccessDenied) leave the
/// source `CredentialsFailed`, write no `Failover` record, and exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_credentials_failed_never_an_outage() {
    let w = match World::new("refused-credentials-bucket").await {
        Some(w) => w,
        None => return,
    };
    w.seed(&sample_trail(&w.bucket).generate()).await;
    let config = w.config(
        w.moto.port,
        "",
        &format!(
            "[aws]\nauth = \"azure-federated\"\nrole_arn = \"{READER}\"\nazure_credential = \"managed-identity\"\n\n[health]\ndegraded_after = 1\noutage_after = 2\n"
        ),
    );
    let unknown = MockServer::start().await;
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_string(
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>x</RequestId></ErrorResponse>",
        ))
        .mount(&sts)
        .await;
    let identity = identity_endpoint(&entra_token()).await;
    let sts_port: u16 = sts.address().port();
    let cases: [(&MockServer, u16); 2] = [(&unknown, w.moto.port), (&identity, sts_port)];
    for (identity, sts_port) in cases {
        for _ in 0..3 {
            let run = output(&mut keyless(&w, &config, &["sync", "--json"], identity, sts_port)).await;
            assert_eq!(run.code, 1, "{run:?}");
        }
        let (health, _) = trailvault::storage::read_all(w.state.as_ref(), &format!("health/{SOURCE}.json"))
            .await
            .unwrap()
            .unwrap();
        let health: serde_json::Value = serde_json::from_slice(&health).unwrap();
        assert_eq!(health["aws_health"], "CredentialsFailed", "{health}");
        let status = w.run(&config, &["status", "--json"]).await;
        assert_eq!(
            status.json()["sources"][0]["aws_health"],
            "CredentialsFailed",
            "{}",
            status.stdout
        );
    }
    for r in w.state.list_all("runs/").await.unwrap() {
        let (bytes, _) = trailvault::storage::read_all(w.state.as_ref(), &r.name)
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("\"Failover\""),
            "a credentials failure was declared an outage: {text}"
        );
        assert!(!text.contains("\"Outage\""), "{text}");
    }
}

/// The deadline excuses only files not started: with every archive PUT failing, a run
/// with `--deadline` is `Failed`, exit 1 (never `Partial`, 0 failed, exit 0), ends within
/// the deadline plus the in-flight allowance, and the next clean run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_archive_puts_under_a_deadline_are_a_failed_run() {
    use super::support::proxy::{Cloud, Storm};
    let w = match World::new("deadline-failing-bucket").await {
        Some(w) => w,
        None => return,
    };
    let files = many_files_trail(&w.bucket).generate();
    w.seed(&files).await;
    let archive_proxy = Proxy::start(w.azurite.port).await;
    archive_proxy.storm(Some(Storm {
        cloud: Cloud::Azure,
        errors: 1.0,
        resets: 0.0,
        // Blob writes under the source's folder; creating the container passes.
        only: Some(archive_upload_line()),
    }));
    let config = w.config_with_target(
        w.moto.port,
        "",
        &super::support::blob_url(archive_proxy.port),
        "shared-key",
        &format!("state_account_url = \"{}\"\n\n[sync]\nconcurrency = 2\n", w.blob_url()),
    );
    let started = std::time::Instant::now();
    let run = w.run(&config, &["sync", "--deadline", "3s", "--json"]).await;
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "Failed", "{doc}");
    assert!(doc["sources"][0]["files_failed"].as_u64().unwrap() > 0, "{doc}");
    assert!(
        took < Duration::from_secs(3 + 30 + 20),
        "the run outlived its deadline: {took:?}"
    );
    assert!(archive_proxy.storm_errors() > 0);
    assert_eq!(w.archived_so_far().await, 0);

    archive_proxy.storm(None);
    let run = w.sync(&config).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.archived().await.unwrap().len(), files.len());
    let (ok, out) = w.rclone_check("");
    assert!(ok, "{out}");
}

/// The request line of an archived file's upload through the proxy.
fn archive_upload_line() -> &'static str {
    static LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINE.get_or_init(|| format!("PUT /devstoreaccount1/{}/{SOURCE}", super::support::ARCHIVE))
}
