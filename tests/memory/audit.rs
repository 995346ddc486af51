//! saml audit over CloudTrail log files archived straight into a memory store, with
//! the metadata sync writes: subjects, findings, the eventTime window, duplicates.

use chrono::{DateTime, Utc};
use sha2::Digest;
use trailvault::archive::{blob_metadata, ArchiveName, SourceHead};
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
    archive
        .put(&ArchiveName::new("m", key).unwrap(), body.into(), opts)
        .await
        .unwrap();
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
        archive: a.archive.clone().into(),
        state: Some(a.state.clone().into()),
        sources: vec!["m".into()],
        range: TimeRange::new(Some(t(since)), Some(t(until))).unwrap(),
        tenant_id: TENANT.into(),
        trusted_issuers: Vec::new(),
        roles: roles(),
        concurrency: 4,
        cancel: Default::default(),
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
                f.kind.to_string(),
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
    assert_eq!(trailvault::records::rfc3339(bob.time), "2026-11-25T09:10:00Z");
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

// ---------- real event shapes (public CloudTrail samples) ----------

const OTHER_ACCOUNT: &str = "444455556666";
const IDC_ISSUER: &str =
    "https://portal.sso.eu-west-1.amazonaws.com/saml/assertion/MTExMTIyMjIzMzMzX2lucy1hYmNkZWYwMTIzNDU2Nzg5";
const IDC_PROVIDER: &str = "AWSSSO_0123456789abcdef_DO_NOT_DELETE";
const IDC_ROLE: &str = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_AdministratorAccess_0123456789abcdef";

async fn audit_with(archive: Arc<MemoryBlobStore>, trusted: &[&str]) -> (AuditReport, Arc<MemoryBlobStore>) {
    let state = Arc::new(MemoryBlobStore::new());
    let r = AuditJob {
        archive: archive.into(),
        state: Some(state.clone().into()),
        sources: vec!["m".into()],
        range: TimeRange::new(Some(t("2026-11-25T00:00:00Z")), Some(t("2026-11-26T00:00:00Z"))).unwrap(),
        tenant_id: TENANT.into(),
        trusted_issuers: trusted.iter().map(|s| s.to_string()).collect(),
        roles: roles(),
        concurrency: 4,
        cancel: Default::default(),
    }
    .run()
    .await
    .unwrap();
    (r, state)
}

/// A failed console sign-in of an IAM user name that does not exist, as CloudTrail logs
/// it: the name is hidden, the request parameters are null, no errorCode.
fn hidden_failure(account: &str, time: &str) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "accountId": account, "accessKeyId": "", "userName": "HIDDEN_DUE_TO_SECURITY_REASONS"},
        "eventTime": time,
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "errorMessage": "No username found in supplied account",
        "requestParameters": null,
        "responseElements": {"ConsoleLogin": "Failure"},
        "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": "No"},
        "eventID": format!("{:032x}", rand::random::<u128>()),
        "readOnly": false,
        "eventType": "AwsConsoleSignIn",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "signin.aws.amazon.com"}
    })
}

fn iam_user_login(account: &str, user: &str, time: &str, outcome: &str) -> serde_json::Value {
    let mut e = hidden_failure(account, time);
    e["userIdentity"] = serde_json::json!({"type": "IAMUser", "principalId": "AIDACKCEVSQ6C2EXAMPLE", "arn": format!("arn:aws:iam::{account}:user/{user}"), "accountId": account, "accessKeyId": "", "userName": user});
    e["responseElements"]["ConsoleLogin"] = serde_json::json!(outcome);
    if outcome == "Success" {
        e.as_object_mut().unwrap().remove("errorMessage");
    } else {
        e["errorMessage"] = serde_json::json!("Failed authentication");
    }
    e
}

/// AssumeRoleWithSAML from IAM Identity Center: its own issuer and SAML provider.
fn idc_assume(who: &str, time: &str) -> serde_json::Value {
    let q = name_qualifier(IDC_ISSUER, ACCOUNT, IDC_PROVIDER);
    serde_json::json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "SAMLUser", "principalId": format!("{q}:{who}"), "userName": who, "identityProvider": q},
        "eventTime": time,
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRoleWithSAML",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "192.0.2.101",
        "userAgent": "aws-internal/3",
        "requestParameters": {
            "sAMLAssertionID": "_c0046cEXAMPLEb9d4b8eEXAMPLE2619aEXAMPLE",
            "roleSessionName": who,
            "durationSeconds": 3600,
            "roleArn": IDC_ROLE,
            "principalArn": format!("arn:aws:iam::{ACCOUNT}:saml-provider/{IDC_PROVIDER}")
        },
        "responseElements": {
            "credentials": {"accessKeyId": "ASIAIOSFODNN7EXAMPLE", "sessionToken": "x", "expiration": "Nov 25, 2026, 10:00:00 AM"},
            "assumedRoleUser": {"assumedRoleId": format!("AROAD35QRSTUVWEXAMPLE:{who}"), "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/{who}")},
            "subject": who,
            "subjectType": "persistent",
            "issuer": IDC_ISSUER,
            "audience": "https://signin.aws.amazon.com/saml",
            "nameQualifier": q
        },
        "requestID": "4f8b3c2a-1111-2222-3333-444455556666",
        "eventID": format!("{:032x}", rand::random::<u128>()),
        "readOnly": true,
        "resources": [{"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": IDC_ROLE}],
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management"
    })
}

/// The console sign-in that follows an Identity Center role choice: the STS ARN drops
/// the role's path; the session issuer keeps it.
fn sso_console_login(who: &str, time: &str) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAD35QRSTUVWEXAMPLE:{who}"),
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/{who}"),
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": "AROAD35QRSTUVWEXAMPLE", "arn": IDC_ROLE, "accountId": ACCOUNT, "userName": "AWSReservedSSO_AdministratorAccess_0123456789abcdef"},
                "webIdFederationData": {},
                "attributes": {"creationDate": time, "mfaAuthenticated": "false"}
            }
        },
        "eventTime": time,
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "192.0.2.101",
        "userAgent": "Mozilla/5.0",
        "requestParameters": null,
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"MobileVersion": "No", "MFAUsed": "No"},
        "eventID": format!("{:032x}", rand::random::<u128>()),
        "readOnly": false,
        "eventType": "AwsConsoleSignIn",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management"
    })
}

async fn one_file(records: &[serde_json::Value], unique: &str, account: &str) -> Arc<MemoryBlobStore> {
    let archive = Arc::new(MemoryBlobStore::new());
    add_file(&archive, records, unique, account).await;
    archive
}

async fn add_file(archive: &MemoryBlobStore, records: &[serde_json::Value], unique: &str, account: &str) {
    let trail = support::ctgen::Trail::sample("audit-bucket", 1);
    let key = trail.log_key(account, "us-east-1", t("2026-11-25T12:00:00Z"), unique);
    archive_log(archive, &key, records).await;
}

#[tokio::test]
async fn saml_audit_keeps_one_user_name_in_two_accounts_apart() {
    let archive = Arc::new(MemoryBlobStore::new());
    // Two hidden failures in each account: four in all, but two per subject.
    add_file(
        &archive,
        &[
            hidden_failure(ACCOUNT, "2026-11-25T10:00:00Z"),
            hidden_failure(ACCOUNT, "2026-11-25T10:01:00Z"),
            iam_user_login(ACCOUNT, "ops", "2026-11-25T10:02:00Z", "Success"),
        ],
        "AUDITACCOUNTA001",
        ACCOUNT,
    )
    .await;
    add_file(
        &archive,
        &[
            hidden_failure(OTHER_ACCOUNT, "2026-11-25T10:00:30Z"),
            hidden_failure(OTHER_ACCOUNT, "2026-11-25T10:01:30Z"),
            iam_user_login(OTHER_ACCOUNT, "ops", "2026-11-25T10:03:00Z", "Failure"),
        ],
        "AUDITACCOUNTB001",
        OTHER_ACCOUNT,
    )
    .await;
    let (r, _) = audit_with(archive.clone(), &[]).await;
    assert!(
        r.findings.iter().all(|f| f.kind != "repeated_failures"),
        "{:#?}",
        r.findings
    );
    let subjects: Vec<(&str, &str, u64)> = r
        .subjects
        .iter()
        .map(|s| (s.subject.as_str(), s.account.as_str(), s.failures))
        .collect();
    assert_eq!(
        subjects,
        vec![
            ("HIDDEN_DUE_TO_SECURITY_REASONS", ACCOUNT, 2),
            ("HIDDEN_DUE_TO_SECURITY_REASONS", OTHER_ACCOUNT, 2),
            ("ops", ACCOUNT, 0),
            ("ops", OTHER_ACCOUNT, 1),
        ]
    );
    let logins: Vec<(&str, &str)> = r
        .findings
        .iter()
        .filter(|f| f.kind == "iam_user_login" && f.subject == "ops")
        .map(|f| (f.account.as_str(), f.detail.as_str()))
        .collect();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert!(logins.contains(&(OTHER_ACCOUNT, "IAM user console sign-in outside SSO (failed)")));

    // A third failure in one account: repeated there, and only there.
    add_file(
        &archive,
        &[hidden_failure(OTHER_ACCOUNT, "2026-11-25T10:05:00Z")],
        "AUDITACCOUNTB002",
        OTHER_ACCOUNT,
    )
    .await;
    let (r, _) = audit_with(archive, &[]).await;
    let repeated: Vec<(&str, &str)> = r
        .findings
        .iter()
        .filter(|f| f.kind == "repeated_failures")
        .map(|f| (f.subject.as_str(), f.account.as_str()))
        .collect();
    assert_eq!(repeated, vec![("HIDDEN_DUE_TO_SECURITY_REASONS", OTHER_ACCOUNT)]);
    let doc = serde_json::to_value(&r).unwrap();
    assert!(doc["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["account"].is_string()));
    assert!(doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["account"].is_string()));
}

#[tokio::test]
async fn saml_audit_skips_an_unreadable_record_alone_and_counts_it() {
    let root = console_login(
        "2026-11-25T11:00:00Z",
        serde_json::json!({"type": "Root", "principalId": ACCOUNT, "arn": "arn:aws:iam::111122223333:root", "accountId": ACCOUNT, "accessKeyId": ""}),
        serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}, "requestParameters": null}),
    );
    let mut null_ip = hidden_failure(ACCOUNT, "2026-11-25T10:00:00Z");
    null_ip["sourceIPAddress"] = serde_json::Value::Null;
    let mut bad_time = iam_user_login(ACCOUNT, "ops", "2026-11-25T10:00:00Z", "Success");
    bad_time["eventTime"] = serde_json::json!("25/11/2026 10:00");
    let mut null_user = iam_user_login(ACCOUNT, "ops", "2026-11-25T10:00:00Z", "Success");
    null_user["userIdentity"]["userName"] = serde_json::Value::Null;
    let mut numeric_role = idc_assume("dana@example.com", "2026-11-25T10:10:00Z");
    numeric_role["requestParameters"]["roleArn"] = serde_json::json!(42);
    // Nulls where CloudTrail puts them (requestParameters, a failed call's
    // responseElements) are not problems.
    let failed = assume(
        "mallory@example.com",
        ADMIN,
        &name_qualifier(&issuer(), ACCOUNT, "EntraID"),
        "2026-11-25T10:20:00Z",
        Some("InvalidIdentityToken"),
    );
    let archive = one_file(
        &[
            null_ip,
            bad_time,
            root,
            null_user,
            serde_json::json!("not a record"),
            numeric_role,
            failed,
        ],
        "AUDITNULLS000001",
        ACCOUNT,
    )
    .await;
    let (r, state) = audit_with(archive, &[]).await;
    assert_eq!(
        findings(&r),
        vec![expect("high", "root_login", "root (111122223333)")],
        "the readable events of the file are audited"
    );
    assert_eq!(r.records_skipped, 5);
    assert_eq!(r.files_unreadable, 0);
    assert_eq!(r.events, 2);
    assert!(r
        .subjects
        .iter()
        .any(|s| s.subject == "mallory@example.com" && s.failures == 1));
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_CHECK_FAILED);
    let doc = serde_json::to_value(&r).unwrap();
    assert_eq!(doc["records_skipped"], 5);
    assert_eq!(doc["files_unreadable"], 0);
    let (bytes, _) = trailvault::storage::read_all(state.as_ref(), &format!("runs/{}.json", r.run_id))
        .await
        .unwrap()
        .unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(rec[0]["Details"]["records_skipped"], 5);
    assert_eq!(rec[0]["Details"]["files_unreadable"], 0);
}

#[tokio::test]
async fn saml_audit_counts_a_file_it_cannot_read_and_is_partial() {
    let archive = Arc::new(MemoryBlobStore::new());
    add_file(
        &archive,
        &[iam_user_login(ACCOUNT, "ops", "2026-11-25T10:02:00Z", "Failure")],
        "AUDITGOODFILE001",
        ACCOUNT,
    )
    .await;
    // Archived as sync would, but the bytes are JSON without Records, and not gzip.
    let trail = support::ctgen::Trail::sample("audit-bucket", 1);
    for (unique, body) in [
        ("AUDITBADFILE0001", support::ctgen::gzip(b"{\"records\": []}")),
        ("AUDITBADFILE0002", b"plain text, not gzip".to_vec()),
        (
            "AUDITBADFILE0003",
            support::ctgen::gzip(b"{\"Records\": [{\"eventVersion\": \"1.08\""),
        ),
    ] {
        let key = trail.log_key(ACCOUNT, "us-east-1", t("2026-11-25T12:00:00Z"), unique);
        archive
            .put(
                &ArchiveName::new("m", &key).unwrap(),
                body.into(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let (r, state) = audit_with(archive, &[]).await;
    assert_eq!(r.files_unreadable, 3, "{:#?}", r.unreadable_files);
    assert_eq!(r.unreadable_files.len(), 3);
    assert_eq!(r.records_skipped, 0);
    assert_eq!(
        findings(&r),
        vec![expect("medium", "iam_user_login", "ops")],
        "the readable file is audited"
    );
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_FAILED, "partial, no high finding");
    let (bytes, _) = trailvault::storage::read_all(state.as_ref(), &format!("runs/{}.json", r.run_id))
        .await
        .unwrap()
        .unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(rec[0]["Status"], "Partial");
    assert_eq!(rec[0]["Details"]["files_unreadable"], 3);
    assert_eq!(rec[0]["Details"]["unreadable_files"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn saml_audit_trusts_identity_center_only_when_configured() {
    let records = [
        idc_assume("dana@example.com", "2026-11-25T10:00:00Z"),
        sso_console_login("dana@example.com", "2026-11-25T10:00:05Z"),
    ];
    // Untrusted: a foreign identity provider, and a role no grant holds.
    let (r, _) = audit_with(one_file(&records, "AUDITIDC00000001", ACCOUNT).await, &[]).await;
    assert_eq!(
        findings(&r),
        vec![
            expect("high", "foreign_idp", "dana@example.com"),
            expect("high", "role_not_granted", "dana@example.com"),
        ]
    );
    assert_eq!(r.exit_code(), trailvault::cli::EXIT_CHECK_FAILED);

    // Trusted: no finding; the roles keep their path, from both events.
    let (r, _) = audit_with(one_file(&records, "AUDITIDC00000002", ACCOUNT).await, &[IDC_ISSUER]).await;
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.subjects.len(), 1);
    assert_eq!(r.subjects[0].account, ACCOUNT);
    assert_eq!(r.subjects[0].roles, vec![IDC_ROLE.to_string()]);

    // Trusted issuer, but a nameQualifier that is not the issuer's for this provider.
    let mut forged = idc_assume("erin@example.com", "2026-11-25T10:30:00Z");
    forged["userIdentity"]["identityProvider"] = serde_json::json!("Zm9yZ2VkcXVhbGlmaWVyMDAwMDA=");
    forged["responseElements"]["nameQualifier"] = serde_json::json!("Zm9yZ2VkcXVhbGlmaWVyMDAwMDA=");
    // Another Identity Center instance, not trusted.
    let mut other = idc_assume("frank@example.com", "2026-11-25T10:40:00Z");
    let other_issuer = "https://portal.sso.us-east-1.amazonaws.com/saml/assertion/OTk5OTg4ODg3Nzc3X2lucy1vdGhlcg==";
    let q = name_qualifier(other_issuer, ACCOUNT, IDC_PROVIDER);
    other["responseElements"]["issuer"] = serde_json::json!(other_issuer);
    other["responseElements"]["nameQualifier"] = serde_json::json!(q);
    other["userIdentity"]["identityProvider"] = serde_json::json!(q);
    let (r, _) = audit_with(
        one_file(&[forged, other], "AUDITIDC00000003", ACCOUNT).await,
        &[IDC_ISSUER],
    )
    .await;
    let foreign: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.kind == "foreign_idp")
        .map(|f| f.subject.as_str())
        .collect();
    assert_eq!(foreign, vec!["erin@example.com", "frank@example.com"]);

    // Our Entra tenant still needs its grants when another issuer is trusted.
    let ours = name_qualifier(&issuer(), ACCOUNT, "EntraID");
    let (r, _) = audit_with(
        one_file(
            &[assume(
                "bob@example.com",
                "arn:aws:iam::111122223333:role/SuperAdmin",
                &ours,
                "2026-11-25T10:50:00Z",
                None,
            )],
            "AUDITIDC00000004",
            ACCOUNT,
        )
        .await,
        &[IDC_ISSUER],
    )
    .await;
    assert_eq!(
        findings(&r),
        vec![expect("high", "role_not_granted", "bob@example.com")]
    );
}

#[tokio::test]
async fn saml_audit_keeps_the_path_of_console_login_roles() {
    let (r, _) = audit_with(
        one_file(
            &[sso_console_login("gina@example.com", "2026-11-25T10:00:05Z")],
            "AUDITPATH0000001",
            ACCOUNT,
        )
        .await,
        &[],
    )
    .await;
    assert_eq!(r.subjects[0].roles, vec![IDC_ROLE.to_string()]);
    // Without a session issuer, the role comes from the STS ARN (no path known).
    let mut bare = sso_console_login("hal@example.com", "2026-11-25T10:00:05Z");
    bare["userIdentity"].as_object_mut().unwrap().remove("sessionContext");
    let (r, _) = audit_with(one_file(&[bare], "AUDITPATH0000002", ACCOUNT).await, &[]).await;
    assert_eq!(
        r.subjects[0].roles,
        vec!["arn:aws:iam::111122223333:role/AWSReservedSSO_AdministratorAccess_0123456789abcdef".to_string()]
    );
}

/// CloudTrail's duplicate deliveries share an eventID and say the same. A copy that says
/// something else under a real event's ID is a forgery: delivered first, it must not hide
/// the real sign-in (a role no grant contains) from the audit.
#[tokio::test]
async fn a_forged_copy_of_an_event_id_does_not_hide_the_real_event() {
    let ours = name_qualifier(&issuer(), ACCOUNT, "EntraID");
    let real = assume(
        "bob@example.com",
        "arn:aws:iam::111122223333:role/SuperAdmin",
        &ours,
        "2026-11-25T09:10:00Z",
        None,
    );
    let mut forged = assume("bob@example.com", ADMIN, &ours, "2026-11-25T09:10:00Z", None);
    forged["eventID"] = real["eventID"].clone();
    let trail = support::ctgen::Trail::sample("audit-bucket", 1);
    let key = |at: &str, unique: &str| trail.log_key(ACCOUNT, "us-east-1", t(at), unique);
    let a = Archived {
        archive: Arc::new(MemoryBlobStore::new()),
        state: Arc::new(MemoryBlobStore::new()),
    };
    // The forged copy sorts first and, read one file at a time, arrives first.
    archive_log(
        &a.archive,
        &key("2026-11-25T09:15:00Z", "AAAAFORGEDCOPY01"),
        std::slice::from_ref(&forged),
    )
    .await;
    archive_log(
        &a.archive,
        &key("2026-11-25T09:20:00Z", "ZZZZREALEVENT001"),
        std::slice::from_ref(&real),
    )
    .await;
    // And a true duplicate delivery of the real event is still counted once.
    archive_log(&a.archive, &key("2026-11-25T09:25:00Z", "ZZZZREALEVENT002"), &[real]).await;
    let r = AuditJob {
        archive: a.archive.clone().into(),
        state: Some(a.state.clone().into()),
        sources: vec!["m".into()],
        range: TimeRange::new(Some(t("2026-11-25T00:00:00Z")), Some(t("2026-11-26T00:00:00Z"))).unwrap(),
        tenant_id: TENANT.into(),
        trusted_issuers: Vec::new(),
        roles: roles(),
        concurrency: 1,
        cancel: Default::default(),
    }
    .run()
    .await
    .unwrap();
    let not_granted: Vec<_> = findings(&r)
        .into_iter()
        .filter(|(_, kind, _)| kind == "role_not_granted")
        .collect();
    assert_eq!(
        not_granted,
        [(
            "high".to_string(),
            "role_not_granted".to_string(),
            "bob@example.com".to_string()
        )],
        "{:?}",
        r.findings
    );
    assert_eq!(r.events, 2, "the forged copy and the real event, the duplicate once");
}
