//! saml audit over CloudTrail log files archived straight into a memory store, with
//! the metadata sync writes: subjects, findings, the eventTime window, duplicates.

use chrono::{DateTime, Utc};
use sha2::Digest;
use trailvault::archive::{blob_metadata, blob_name, SourceHead};
use trailvault::cli::exit::Verdict;
use trailvault::cloudtrail::TimeRange;
use trailvault::federation::audit::{name_qualifier, AuditJob, AuditReport};
use trailvault::federation::roles::RoleMapping;
use trailvault::storage::PutOptions;

use super::*;

const TENANT: &str = "0f0f0f0f-aaaa-bbbb-cccc-dddddddddddd";
const ACCOUNT: &str = "111122223333";
const PROVIDER: &str = "arn:aws:iam::111122223333:saml-provider/EntraID";
const ADMIN: &str = "arn:aws:iam::111122223333:role/Admin";

fn issuer() -> String {
    format!("https://sts.windows.net/{TENANT}/")
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn event(name: &str, time: &str, identity: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut e = serde_json::json!({
        "eventVersion": "1.09",
        "eventID": format!("{:032x}", rand::random::<u128>()),
        "eventTime": time,
        "eventSource": if name == "ConsoleLogin" { "signin.amazonaws.com" } else { "sts.amazonaws.com" },
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userIdentity": identity,
        "recipientAccountId": ACCOUNT,
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

/// AssumeRoleWithSAML as CloudTrail records it; `qualifier` is the identity provider's
/// nameQualifier, `error` a failed call's errorCode.
fn assume(who: &str, role: &str, qualifier: &str, time: &str, error: Option<&str>) -> serde_json::Value {
    let mut extra = serde_json::json!({
        "requestParameters": {"sAMLAssertionID": "_x", "roleSessionName": who, "roleArn": role, "principalArn": PROVIDER, "durationSeconds": 3600},
        "responseElements": if error.is_some() { serde_json::Value::Null } else {
            serde_json::json!({"issuer": issuer(), "subject": who, "nameQualifier": qualifier, "audience": "https://signin.aws.amazon.com/saml"})
        },
    });
    if let Some(code) = error {
        extra["errorCode"] = serde_json::json!(code);
    }
    let identity = serde_json::json!({"type": "SAMLUser", "principalId": format!("{qualifier}:{who}"), "userName": who, "identityProvider": qualifier});
    event("AssumeRoleWithSAML", time, identity, extra)
}

fn console_login(time: &str, identity: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    event("ConsoleLogin", time, identity, extra)
}

/// Archives a log file as sync would: `{source}/{key}`, Content-MD5, and the metadata
/// (sha256, source bucket and key, ...).
async fn archive_log(archive: &MemoryBlobStore, key: &str, records: &[serde_json::Value]) {
    let body = support::ctgen::gzip(&serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap());
    let md5: [u8; 16] = md5::Md5::digest(&body).into();
    let head = SourceHead {
        size: body.len() as u64,
        etag: hex::encode(md5),
        last_modified: Some(Utc::now()),
        content_type: Some("application/json".into()),
        content_encoding: Some("gzip".into()),
        ..Default::default()
    };
    let sha = hex::encode(sha2::Sha256::digest(&body));
    let opts = PutOptions {
        content_type: Some("application/json".into()),
        content_md5: Some(md5),
        metadata: blob_metadata("audit-bucket", key, &head, &sha),
        ..Default::default()
    };
    archive.put(&blob_name("m", key), body.into(), opts).await.unwrap();
}

struct Archived {
    archive: Arc<MemoryBlobStore>,
    state: Arc<MemoryBlobStore>,
}

/// The emulator test's events, plus an event before the window in a file inside it, a
/// file delivered after the window holding an event inside it, and a duplicate.
async fn archived() -> Archived {
    let ours = name_qualifier(&issuer(), ACCOUNT, "EntraID");
    let mallory_first = assume(
        "mallory@example.com",
        ADMIN,
        &ours,
        "2026-11-25T09:40:00Z",
        Some("IDPRejectedClaim"),
    );
    let main = vec![
        assume("alice@example.com", ADMIN, &ours, "2026-11-25T09:01:00Z", None),
        console_login(
            "2026-11-25T09:01:05Z",
            serde_json::json!({"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com", "accountId": ACCOUNT}),
            serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}, "additionalEventData": {"SamlProviderArn": PROVIDER, "MFAUsed": "No"}}),
        ),
        assume(
            "bob@example.com",
            "arn:aws:iam::111122223333:role/SuperAdmin",
            &ours,
            "2026-11-25T09:10:00Z",
            None,
        ),
        assume(
            "eve@example.com",
            ADMIN,
            "Zm9yZWlnbmlkcHF1YWxpZmllcg==",
            "2026-11-25T09:20:00Z",
            None,
        ),
        console_login(
            "2026-11-25T09:30:00Z",
            serde_json::json!({"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": ACCOUNT}),
            serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}}),
        ),
        console_login(
            "2026-11-25T09:31:00Z",
            serde_json::json!({"type": "IAMUser", "userName": "legacy-ops", "arn": "arn:aws:iam::111122223333:user/legacy-ops"}),
            serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}}),
        ),
        mallory_first.clone(),
        assume(
            "mallory@example.com",
            ADMIN,
            &ours,
            "2026-11-25T09:41:00Z",
            Some("IDPRejectedClaim"),
        ),
        assume(
            "mallory@example.com",
            ADMIN,
            &ours,
            "2026-11-25T09:42:00Z",
            Some("InvalidIdentityToken"),
        ),
        // In a file of the window, but the event itself is before it.
        assume(
            "yan@example.com",
            "arn:aws:iam::111122223333:role/Ghost",
            &ours,
            "2026-11-24T23:50:00Z",
            None,
        ),
        // Not a federated sign-in: ignored.
        event(
            "GetCallerIdentity",
            "2026-11-25T09:43:00Z",
            serde_json::json!({"type": "AssumedRole"}),
            serde_json::json!({}),
        ),
    ];
    let trail = support::ctgen::Trail::sample("audit-bucket", 1);
    let archive = Arc::new(MemoryBlobStore::new());
    let key = |at: &str, unique: &str| trail.log_key(ACCOUNT, "us-east-1", t(at), unique);
    archive_log(&archive, &key("2026-11-25T09:45:00Z", "AUDITEVENTS00001"), &main).await;
    // A file of the day before: outside the window.
    archive_log(
        &archive,
        &key("2026-11-24T09:45:00Z", "AUDITEVENTS00000"),
        &[assume(
            "zoe@example.com",
            "arn:aws:iam::111122223333:role/Ghost",
            &ours,
            "2026-11-24T09:00:00Z",
            None,
        )],
    )
    .await;
    // Delivered after the window, holding an event inside it, and a duplicate delivery
    // of one of mallory's failures (same eventID).
    archive_log(
        &archive,
        &key("2026-11-26T00:10:00Z", "AUDITEVENTS00002"),
        &[
            assume(
                "late@example.com",
                "arn:aws:iam::111122223333:role/SuperAdmin",
                &ours,
                "2026-11-25T23:58:00Z",
                None,
            ),
            mallory_first,
        ],
    )
    .await;
    Archived {
        archive,
        state: Arc::new(MemoryBlobStore::new()),
    }
}

fn roles() -> RoleMapping {
    RoleMapping::parse(&format!(
        "[[grant]]\ngroup = \"0a0a0a0a-1111-2222-3333-444444444444\"\nname = \"aws-admins\"\nroles = [\"{ADMIN}\"]\n"
    ))
    .unwrap()
}

async fn audit(a: &Archived, since: &str, until: &str) -> AuditReport {
    AuditJob {
        archive: a.archive.clone(),
        state: Some(a.state.clone()),
        sources: vec!["m".into()],
        range: TimeRange::new(Some(t(since)), Some(t(until))).unwrap(),
        tenant_id: TENANT.into(),
        roles: roles(),
        concurrency: 4,
    }
    .run()
    .await
    .unwrap()
}

fn findings(r: &AuditReport) -> Vec<(String, String, String)> {
    r.findings
        .iter()
        .map(|f| {
            (
                serde_json::to_value(f.severity).unwrap().as_str().unwrap().to_string(),
                f.kind.clone(),
                f.subject.clone(),
            )
        })
        .collect()
}

fn expect(severity: &str, kind: &str, subject: &str) -> (String, String, String) {
    (severity.into(), kind.into(), subject.into())
}

#[tokio::test]
async fn saml_audit_reports_subjects_and_findings_from_a_memory_archive() {
    let a = archived().await;
    let r = audit(&a, "2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z").await;
    assert_eq!(
        findings(&r),
        vec![
            expect("high", "foreign_idp", "eve@example.com"),
            expect("high", "role_not_granted", "bob@example.com"),
            expect("high", "role_not_granted", "late@example.com"),
            expect("high", "root_login", "root (111122223333)"),
            expect("medium", "iam_user_login", "legacy-ops"),
            expect("medium", "repeated_failures", "mallory@example.com"),
        ],
        "{:#?}",
        r.findings
    );
    let bob = r.findings.iter().find(|f| f.subject == "bob@example.com").unwrap();
    assert_eq!(
        bob.role_arn.as_deref(),
        Some("arn:aws:iam::111122223333:role/SuperAdmin")
    );
    assert_eq!(bob.time, "2026-11-25T09:10:00Z");
    assert!(r.has_high());
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_CHECK_FAILED);
    // Both files that can hold window events are read; the day before is not.
    assert_eq!(r.files_read, 2);
    // Sign-in events in the window: nine in the day's file and the late one; the
    // duplicate delivery and the event before the window are not counted.
    assert_eq!(r.events, 10);

    let subject = |who: &str| r.subjects.iter().find(|s| s.subject == who);
    let alice = subject("alice@example.com").expect("alice");
    assert_eq!(alice.roles, vec![ADMIN.to_string()]);
    assert_eq!(alice.source_ips, vec!["198.51.100.7".to_string()]);
    assert_eq!(
        (alice.first.as_str(), alice.last.as_str()),
        ("2026-11-25T09:01:00Z", "2026-11-25T09:01:05Z")
    );
    assert_eq!(alice.failures, 0);
    let mallory = subject("mallory@example.com").expect("mallory");
    assert_eq!(mallory.failures, 3, "the duplicate delivery is counted once");
    assert!(mallory.roles.is_empty(), "failed calls grant no role");
    assert!(
        subject("zoe@example.com").is_none(),
        "a file before the window is not read"
    );
    assert!(
        subject("yan@example.com").is_none(),
        "an event before the window is left out"
    );
    assert!(
        subject("late@example.com").is_some(),
        "a late file's events in the window count"
    );

    // The SamlAudit run record, failed because of high findings.
    let (bytes, _) = trailvault::storage::read_all(a.state.as_ref(), &format!("runs/{}.json", r.run_id))
        .await
        .unwrap()
        .expect("a SamlAudit record");
    let rec: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(rec[0]["RecordType"], "SamlAudit");
    assert_eq!(rec[0]["Status"], "Failed");
    assert_eq!(rec[0]["Details"]["findings"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn saml_audit_time_window_filters_by_event_time() {
    let a = archived().await;
    // Only alice's sign-ins are in 09:00-09:05, though the file holds them all.
    let r = audit(&a, "2026-11-25T09:00:00Z", "2026-11-25T09:05:00Z").await;
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.exit_code(), 0);
    let names: Vec<&str> = r.subjects.iter().map(|s| s.subject.as_str()).collect();
    assert_eq!(names, ["alice@example.com"]);
    assert_eq!(r.events, 2);

    // Until is exclusive: mallory's third failure at 09:42 falls outside, two are not "repeated".
    let r = audit(&a, "2026-11-25T09:35:00Z", "2026-11-25T09:42:00Z").await;
    assert!(findings(&r).is_empty(), "{:#?}", r.findings);
    let names: Vec<&str> = r.subjects.iter().map(|s| s.subject.as_str()).collect();
    assert_eq!(names, ["mallory@example.com"]);
    assert_eq!(r.subjects[0].failures, 2);

    // The day before: zoe and yan, both with a role no grant holds.
    let r = audit(&a, "2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z").await;
    assert_eq!(
        findings(&r),
        vec![
            expect("high", "role_not_granted", "yan@example.com"),
            expect("high", "role_not_granted", "zoe@example.com"),
        ]
    );
}

#[tokio::test]
async fn saml_audit_since_inside_a_minute_still_reads_that_minutes_file() {
    // Delivered at 09:00:50, so named 0900Z; the root sign-in at 09:00:40 is inside the window.
    let archive = Arc::new(MemoryBlobStore::new());
    let trail = support::ctgen::Trail::sample("audit-bucket", 1);
    let root = console_login(
        "2026-11-25T09:00:40Z",
        serde_json::json!({"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": ACCOUNT}),
        serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}}),
    );
    let key = trail.log_key(ACCOUNT, "us-east-1", t("2026-11-25T09:00:50Z"), "AUDITEVENTS00003");
    assert!(key.contains("_20261125T0900Z_"), "{key}");
    archive_log(&archive, &key, &[root]).await;
    let a = Archived {
        archive,
        state: Arc::new(MemoryBlobStore::new()),
    };
    let r = audit(&a, "2026-11-25T09:00:30Z", "2026-11-25T09:05:00Z").await;
    assert_eq!(
        findings(&r),
        vec![expect("high", "root_login", "root (111122223333)")],
        "files read: {}",
        r.files_read
    );
}
