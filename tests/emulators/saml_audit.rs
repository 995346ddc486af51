//! saml audit over archived events, and the replay store over Azurite.

use super::*;

pub(super) fn audit_event(
    name: &str,
    t: &str,
    identity: serde_json::Value,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut e = serde_json::json!({
        "eventVersion": "1.09",
        "eventID": format!("{:032x}", rand::random::<u128>()),
        "eventTime": t,
        "eventSource": if name == "ConsoleLogin" { "signin.amazonaws.com" } else { "sts.amazonaws.com" },
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userIdentity": identity,
        "recipientAccountId": "111122223333",
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_audit_reports_subjects_and_findings_from_the_archive() {
    use trailvault::federation::audit::name_qualifier;
    let mut w = world!("audit-bucket");
    let tenant = support::saml::TENANT;
    let issuer = support::saml::issuer();
    let provider = "arn:aws:iam::111122223333:saml-provider/EntraID";
    let ours = name_qualifier(&issuer, "111122223333", "EntraID");
    let saml_user = |who: &str, q: &str| serde_json::json!({"type": "SAMLUser", "principalId": format!("{q}:{who}"), "userName": who, "identityProvider": q});
    let assume = |who: &str, role: &str, q: &str, t: &str, error: Option<&str>| {
        let mut extra = serde_json::json!({
            "requestParameters": {"sAMLAssertionID": "_x", "roleSessionName": who, "roleArn": role, "principalArn": provider, "durationSeconds": 3600},
            "responseElements": if error.is_some() { serde_json::Value::Null } else { serde_json::json!({"issuer": issuer, "subject": who, "nameQualifier": q, "audience": "https://signin.aws.amazon.com/saml"}) },
        });
        if let Some(code) = error {
            extra["errorCode"] = serde_json::json!(code);
        }
        audit_event("AssumeRoleWithSAML", t, saml_user(who, q), extra)
    };
    let admin = "arn:aws:iam::111122223333:role/Admin";
    let records = vec![
        assume("alice@example.com", admin, &ours, "2026-11-25T09:01:00Z", None),
        audit_event(
            "ConsoleLogin",
            "2026-11-25T09:01:05Z",
            serde_json::json!({"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com", "accountId": "111122223333"}),
            serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}, "additionalEventData": {"SamlProviderArn": provider, "MFAUsed": "No"}}),
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
            admin,
            "Zm9yZWlnbmlkcHF1YWxpZmllcg==",
            "2026-11-25T09:20:00Z",
            None,
        ),
        audit_event(
            "ConsoleLogin",
            "2026-11-25T09:30:00Z",
            serde_json::json!({"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"}),
            serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}}),
        ),
        audit_event(
            "ConsoleLogin",
            "2026-11-25T09:31:00Z",
            serde_json::json!({"type": "IAMUser", "userName": "legacy-ops", "arn": "arn:aws:iam::111122223333:user/legacy-ops"}),
            serde_json::json!({"responseElements": {"ConsoleLogin": "Success"}}),
        ),
        assume(
            "mallory@example.com",
            admin,
            &ours,
            "2026-11-25T09:40:00Z",
            Some("IDPRejectedClaim"),
        ),
        assume(
            "mallory@example.com",
            admin,
            &ours,
            "2026-11-25T09:41:00Z",
            Some("IDPRejectedClaim"),
        ),
        assume(
            "mallory@example.com",
            admin,
            &ours,
            "2026-11-25T09:42:00Z",
            Some("InvalidIdentityToken"),
        ),
        // Outside the audited window.
        assume(
            "zoe@example.com",
            "arn:aws:iam::111122223333:role/Ghost",
            &ours,
            "2026-11-24T09:00:00Z",
            None,
        ),
    ];
    let trail = sample_trail(&w.bucket);
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-25T09:45:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let key = trail.log_key("111122223333", "us-east-1", t, "AUDITEVENTS00001");
    let body = gzip(&serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap());
    w.put(&key, body, &BTreeMap::new()).await;
    let early = trail.log_key(
        "111122223333",
        "us-east-1",
        t - chrono::Duration::days(1),
        "AUDITEVENTS00000",
    );
    w.put(
        &early,
        gzip(&serde_json::to_vec(&serde_json::json!({ "Records": [records[9].clone()] })).unwrap()),
        &BTreeMap::new(),
    )
    .await;
    std::fs::write(
        w.dir.path().join("roles.toml"),
        "[[grant]]\ngroup = \"0a0a0a0a-1111-2222-3333-444444444444\"\nname = \"aws-admins\"\nroles = [\"arn:aws:iam::111122223333:role/Admin\"]\n",
    )
    .unwrap();
    let federation = format!(
        "[federation]\nidp_metadata = \"entra.xml\"\ntenant_id = \"{tenant}\"\nrole_mapping = \"roles.toml\"\n"
    );
    let config = w.config(w.moto.port, "", &federation);
    assert_eq!(w.sync(&config).await.code, 0);
    w.moto.stop(); // the audit reads Azure only

    let run = w
        .run(
            &config,
            &[
                "saml",
                "audit",
                "--since",
                "2026-11-25",
                "--until",
                "2026-11-26",
                "--json",
            ],
        )
        .await;
    assert_eq!(run.code, 3, "high findings exit 3: {run:?}");
    let doc = run.json();
    let findings: Vec<(String, String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().into(),
                f["kind"].as_str().unwrap().into(),
                f["subject"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = |s: &str, k: &str, who: &str| (s.to_string(), k.to_string(), who.to_string());
    assert_eq!(
        findings,
        vec![
            expect("high", "foreign_idp", "eve@example.com"),
            expect("high", "role_not_granted", "bob@example.com"),
            expect("high", "root_login", "root (111122223333)"),
            expect("medium", "iam_user_login", "legacy-ops"),
            expect("medium", "repeated_failures", "mallory@example.com"),
        ],
        "{doc}"
    );
    let alice = doc["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "alice@example.com")
        .unwrap();
    assert_eq!(alice["roles"], serde_json::json!([admin]));
    assert_eq!(alice["source_ips"], serde_json::json!(["198.51.100.7"]));
    assert_eq!(alice["first"], "2026-11-25T09:01:00Z");
    assert_eq!(alice["last"], "2026-11-25T09:01:05Z");
    let mallory = doc["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "mallory@example.com")
        .unwrap();
    assert_eq!(mallory["failures"], 3);
    assert!(
        doc["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["subject"] != "zoe@example.com"),
        "eventTime filter"
    );

    // A window with only the good sign-ins: exit 0.
    let run = w
        .run(
            &config,
            &[
                "saml",
                "audit",
                "--since",
                "2026-11-25T09:00:00Z",
                "--until",
                "2026-11-25T09:05:00Z",
                "--json",
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.json()["findings"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_store_over_azurite() {
    let w = world!("replay-bucket");
    w.state.ensure_container().await.unwrap();
    support::store_suite::replay_store_contract(w.state.as_ref()).await;
}

/// Real event shapes through sync and the CLI: the same user name in two accounts, a
/// record with a null and one with a bad time, a file that is not a log at all, an IAM
/// Identity Center issuer trusted by the config, and an SSO role whose path is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_audit_on_real_event_shapes_through_the_cli() {
    use trailvault::federation::audit::name_qualifier;
    let mut w = world!("audit-real-bucket");
    let (a, b) = ("111122223333", "444455556666");
    let idc_issuer =
        "https://portal.sso.eu-west-1.amazonaws.com/saml/assertion/MTExMTIyMjIzMzMzX2lucy1hYmNkZWYwMTIzNDU2Nzg5";
    let idc_provider = "AWSSSO_0123456789abcdef_DO_NOT_DELETE";
    let idc_role = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_ReadOnly_0123456789abcdef";
    let hidden = |account: &str, t: &str| {
        serde_json::json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "accountId": account, "accessKeyId": "", "userName": "HIDDEN_DUE_TO_SECURITY_REASONS"},
            "eventTime": t, "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
            "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "userAgent": "Mozilla/5.0",
            "errorMessage": "No username found in supplied account", "requestParameters": null,
            "responseElements": {"ConsoleLogin": "Failure"},
            "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": "No"},
            "eventID": format!("{:032x}", rand::random::<u128>()), "readOnly": false,
            "eventType": "AwsConsoleSignIn", "managementEvent": true, "recipientAccountId": account,
            "eventCategory": "Management"
        })
    };
    let q = name_qualifier(idc_issuer, a, idc_provider);
    let idc = serde_json::json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "SAMLUser", "principalId": format!("{q}:dana@example.com"), "userName": "dana@example.com", "identityProvider": q},
        "eventTime": "2026-11-25T10:00:00Z", "eventSource": "sts.amazonaws.com", "eventName": "AssumeRoleWithSAML",
        "awsRegion": "eu-west-1", "sourceIPAddress": "192.0.2.101", "userAgent": "aws-internal/3",
        "requestParameters": {"sAMLAssertionID": "_c0046c", "roleSessionName": "dana@example.com", "durationSeconds": 3600,
            "roleArn": idc_role, "principalArn": format!("arn:aws:iam::{a}:saml-provider/{idc_provider}")},
        "responseElements": {"subject": "dana@example.com", "subjectType": "persistent", "issuer": idc_issuer,
            "audience": "https://signin.aws.amazon.com/saml", "nameQualifier": q},
        "eventID": format!("{:032x}", rand::random::<u128>()), "eventType": "AwsApiCall", "recipientAccountId": a
    });
    let sso_console = serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLE:dana@example.com",
            "arn": format!("arn:aws:sts::{a}:assumed-role/AWSReservedSSO_ReadOnly_0123456789abcdef/dana@example.com"),
            "accountId": a,
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": idc_role, "accountId": a,
                "userName": "AWSReservedSSO_ReadOnly_0123456789abcdef"}, "attributes": {"mfaAuthenticated": "false"}}},
        "eventTime": "2026-11-25T10:00:05Z", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "awsRegion": "eu-west-1", "sourceIPAddress": "192.0.2.101", "requestParameters": null,
        "responseElements": {"ConsoleLogin": "Success"}, "additionalEventData": {"MobileVersion": "No", "MFAUsed": "No"},
        "eventID": format!("{:032x}", rand::random::<u128>()), "recipientAccountId": a
    });
    let mut null_ip = hidden(a, "2026-11-25T10:30:00Z");
    null_ip["sourceIPAddress"] = serde_json::Value::Null;
    let mut bad_time = hidden(a, "2026-11-25T10:31:00Z");
    bad_time["eventTime"] = serde_json::json!("not a time");

    let trail = sample_trail(&w.bucket);
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let records_a = vec![
        hidden(a, "2026-11-25T09:00:00Z"),
        hidden(a, "2026-11-25T09:01:00Z"),
        idc,
        sso_console,
        null_ip,
        bad_time,
    ];
    let records_b = vec![hidden(b, "2026-11-25T09:02:00Z"), hidden(b, "2026-11-25T09:03:00Z")];
    for (account, records, unique) in [(a, records_a, "AUDITREALA000001"), (b, records_b, "AUDITREALB000001")] {
        let key = trail.log_key(account, "us-east-1", at, unique);
        let body = gzip(&serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap());
        w.put(&key, body, &BTreeMap::new()).await;
    }
    // A file under the trail that is not a log at all.
    let bad = trail.log_key(a, "us-east-1", at, "AUDITREALBAD0001");
    w.put(&bad, b"this is not gzip".to_vec(), &BTreeMap::new()).await;
    std::fs::write(
        w.dir.path().join("roles.toml"),
        "[[grant]]\ngroup = \"0a0a0a0a-1111-2222-3333-444444444444\"\nname = \"aws-admins\"\nroles = [\"arn:aws:iam::111122223333:role/Admin\"]\n",
    )
    .unwrap();
    let federation = |trusted: &str| {
        format!(
            "[federation]\nidp_metadata = \"entra.xml\"\ntenant_id = \"{}\"\nrole_mapping = \"roles.toml\"\n{trusted}",
            support::saml::TENANT
        )
    };
    let config = w.config(
        w.moto.port,
        "",
        &federation(&format!("trusted_issuers = [\"{idc_issuer}\"]\n")),
    );
    assert_eq!(w.sync(&config).await.code, 0);
    w.moto.stop();
    let args = [
        "saml",
        "audit",
        "--since",
        "2026-11-25",
        "--until",
        "2026-11-26",
        "--json",
    ];

    let run = w.run(&config, &args).await;
    // Trusted issuer and no repeated failures, but one file unreadable: partial, exit 1.
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["records_skipped"], 2, "{doc}");
    assert_eq!(doc["files_unreadable"], 1, "{doc}");
    assert!(
        doc["unreadable_files"][0]["key"]
            .as_str()
            .unwrap()
            .ends_with("AUDITREALBAD0001.json.gz"),
        "{doc}"
    );
    let mut subjects: Vec<(String, String, u64)> = doc["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["subject"].as_str().unwrap().to_string(),
                s["account"].as_str().unwrap().to_string(),
                s["failures"].as_u64().unwrap(),
            )
        })
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        vec![
            ("HIDDEN_DUE_TO_SECURITY_REASONS".to_string(), a.to_string(), 2),
            ("HIDDEN_DUE_TO_SECURITY_REASONS".to_string(), b.to_string(), 2),
            ("dana@example.com".to_string(), a.to_string(), 0),
        ],
        "{doc}"
    );
    let dana = doc["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "dana@example.com")
        .unwrap();
    assert_eq!(dana["roles"], serde_json::json!([idc_role]));
    let kinds: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["iam_user_login"; 4], "{doc}");

    // Without trusting Identity Center its sign-in is a foreign identity provider.
    let untrusted = w.config(w.moto.port, "", &federation(""));
    let run = w.run(&untrusted, &args).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "foreign_idp" && f["subject"] == "dana@example.com" && f["account"] == a));
}
