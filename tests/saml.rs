//! `trailvault saml validate` against Entra-shaped responses signed by xmlsec1, and
//! one case per attack class of the reference, each refused for its reason.

mod support;

use std::path::{Path, PathBuf};

use base64::Engine;
use support::saml::*;

struct Fixture {
    dir: tempfile::TempDir,
    idp: Identity,
    config: PathBuf,
}

const ROLES: &str = r#"
[[grant]]
group = "0a0a0a0a-1111-2222-3333-444444444444"
name = "aws-admins"
roles = ["arn:aws:iam::111122223333:role/Admin"]

[[grant]]
group = "0b0b0b0b-1111-2222-3333-444444444444"
name = "aws-auditors"
roles = ["arn:aws:iam::111122223333:role/Auditor"]
"#;

fn fixture() -> Option<Fixture> {
    if !tools_available() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let idp = Identity::new(dir.path(), "entra");
    let config = write_config(dir.path(), &metadata(&[&idp]), false);
    Some(Fixture { dir, idp, config })
}

fn write_config(dir: &Path, metadata: &str, allow_sha1: bool) -> PathBuf {
    let n = rand::random::<u32>();
    std::fs::write(dir.join(format!("entra-{n}.xml")), metadata).unwrap();
    std::fs::write(dir.join("roles.toml"), ROLES).unwrap();
    let path = dir.join(format!("trailvault-{n}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"[federation]
idp_metadata = "entra-{n}.xml"
tenant_id = "{TENANT}"
audiences = ["https://signin.aws.amazon.com/saml", "urn:amazon:webservices"]
role_mapping = "roles.toml"
allow_sha1 = {allow_sha1}
clock_skew = "3m"
"#
        ),
    )
    .unwrap();
    path
}

fn run(config: &Path, input: &[u8], extra: &[&str]) -> (i32, serde_json::Value) {
    let dir = config.parent().unwrap();
    let file = dir.join(format!("response-{}.txt", rand::random::<u32>()));
    std::fs::write(&file, input).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailvault"))
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json", "saml", "validate"])
        .arg(&file)
        .args(["--at", AT, "--json"])
        .args(extra)
        .output()
        .unwrap();
    if std::env::var("TRAILVAULT_TEST_VERBOSE").is_ok() {
        eprintln!(
            "saml validate -> {}",
            String::from_utf8_lossy(&out.stdout).replace('\n', " ")
        );
    }
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

fn b64(xml: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.encode(xml).into_bytes()
}

fn assert_reason(f: &Fixture, xml: &str, reason: &str) {
    let (code, doc) = run(&f.config, &b64(xml), &[]);
    assert_eq!(doc["valid"], false, "accepted, expected {reason}: {doc}");
    assert_eq!(doc["reason"], reason, "{doc}");
    assert_eq!(code, 3);
}

#[test]
fn entra_shaped_responses_are_accepted_in_every_signing_mode() {
    let Some(f) = fixture() else { return };
    for how in [Signed::Assertion, Signed::Response, Signed::Both] {
        let xml = signed_response(f.dir.path(), &f.idp, &Spec::default(), how);
        let (code, doc) = run(&f.config, &b64(&xml), &[]);
        assert_eq!(code, 0, "{how:?}: {doc}");
        assert_eq!(doc["valid"], true);
        assert_eq!(doc["subject"], "alice@example.com");
        assert_eq!(doc["issuer"], issuer());
        assert_eq!(doc["assertion_id"], Spec::default().assertion_id);
        assert_eq!(doc["session_name"], "alice@example.com");
        assert_eq!(doc["session_duration"], 3600);
        assert_eq!(doc["groups"], serde_json::json!([GROUP_ADMINS]));
        assert_eq!(doc["not_on_or_after"], "2026-11-25T10:05:00Z");
        // Both ARN orders parse; the mapping grants Admin to the user's group, not Auditor.
        assert_eq!(
            doc["roles"],
            serde_json::json!([
                {"role_arn": role("Admin"), "provider_arn": provider(), "granted": true},
                {"role_arn": role("Auditor"), "provider_arn": provider(), "granted": false},
            ])
        );
    }
    // Raw XML is accepted too.
    let xml = signed_response(f.dir.path(), &f.idp, &Spec::default(), Signed::Assertion);
    assert_eq!(run(&f.config, xml.as_bytes(), &[]).0, 0);
}

#[test]
fn aws_alternatives_and_certificate_rollover_are_accepted() {
    let Some(f) = fixture() else { return };
    let urn = Spec {
        audience: "urn:amazon:webservices".into(),
        ..Default::default()
    };
    assert_eq!(
        run(
            &f.config,
            &b64(&signed_response(f.dir.path(), &f.idp, &urn, Signed::Assertion)),
            &[]
        )
        .0,
        0
    );
    let regional = Spec {
        recipient: "https://eu-central-1.signin.aws.amazon.com/saml".into(),
        destination: Some("https://eu-central-1.signin.aws.amazon.com/saml".into()),
        ..Default::default()
    };
    assert_eq!(
        run(
            &f.config,
            &b64(&signed_response(f.dir.path(), &f.idp, &regional, Signed::Both)),
            &[]
        )
        .0,
        0
    );
    // Rollover: the metadata lists the old and the new certificate; the new one signs.
    let new = Identity::new(f.dir.path(), "entra-new");
    let config = write_config(f.dir.path(), &metadata(&[&f.idp, &new]), false);
    let xml = signed_response(f.dir.path(), &new, &Spec::default(), Signed::Assertion);
    let (code, doc) = run(&config, &b64(&xml), &[]);
    assert_eq!(code, 0, "{doc}");
}

#[test]
fn signature_attacks_are_refused() {
    let Some(f) = fixture() else { return };
    let spec = Spec::default();
    let good = signed_response(f.dir.path(), &f.idp, &spec, Signed::Assertion);

    // Signature stripping.
    let unsigned = response(&spec, false, &assertion(&spec, false));
    assert_reason(&f, &unsigned, "signature");
    // Content changed after signing.
    assert_reason(
        &f,
        &good.replace("alice@example.com</NameID>", "admin@example.com</NameID>"),
        "signature",
    );
    // Certificate substitution: re-signed by the attacker, their cert in KeyInfo.
    let attacker = Identity::new(f.dir.path(), "attacker");
    assert_reason(
        &f,
        &signed_response(f.dir.path(), &attacker, &spec, Signed::Assertion),
        "signature",
    );
    // XSW3: a forged unsigned assertion before the signed one.
    let forged = assertion(
        &Spec {
            assertion_id: "_forged".into(),
            name_id: "admin@example.com".into(),
            ..spec.clone()
        },
        false,
    );
    let signed_assertion = xmlsec_sign(f.dir.path(), &f.idp, &assertion(&spec, true));
    assert_reason(
        &f,
        &response(&spec, false, &format!("{forged}{signed_assertion}")),
        "multiple_assertions",
    );
    // XSW4: a forged assertion wraps the signed original.
    let wrapper = forged.replacen("</Issuer>", &format!("</Issuer>{signed_assertion}"), 1);
    assert_reason(&f, &response(&spec, false, &wrapper), "multiple_assertions");
    // XSW1: an unsigned Response wraps the signed one inside its Signature (response signing).
    let signed_resp = signed_response(f.dir.path(), &f.idp, &spec, Signed::Response);
    let evil_spec = Spec {
        response_id: "_evil".into(),
        assertion_id: "_evil_a".into(),
        name_id: "admin@example.com".into(),
        ..spec.clone()
    };
    let xsw1 = response(
        &evil_spec,
        false,
        &format!("{}<Extensions>{signed_resp}</Extensions>", assertion(&evil_spec, false)),
    );
    let (code, doc) = run(&f.config, &b64(&xsw1), &[]);
    assert_eq!(code, 3);
    assert!(
        ["signature", "multiple_assertions"].contains(&doc["reason"].as_str().unwrap()),
        "{doc}"
    );
    // Comment injection in the NameID of a validly signed assertion.
    let sneaky = Spec {
        name_id: "alice@example.com.evil.example".into(),
        ..spec.clone()
    };
    let xml = signed_response(f.dir.path(), &f.idp, &sneaky, Signed::Assertion).replace(
        "alice@example.com.evil.example",
        "alice@example.com<!---->.evil.example",
    );
    let (code, doc) = run(&f.config, &b64(&xml), &[]);
    assert_eq!(code, 3, "{doc}");
    assert!(
        ["signature", "malformed"].contains(&doc["reason"].as_str().unwrap()),
        "{doc}"
    );
    // Duplicate IDs: another element claims the signed assertion's ID.
    let dup = good.replacen(
        "<samlp:Status>",
        &format!(r#"<samlp:Extensions ID="{}"/><samlp:Status>"#, spec.assertion_id),
        1,
    );
    assert_reason(&f, &dup, "signature");
}

#[test]
fn hostile_xml_and_weak_algorithms_are_refused() {
    let Some(f) = fixture() else { return };
    let spec = Spec::default();
    let good = signed_response(f.dir.path(), &f.idp, &spec, Signed::Assertion);
    let bomb = format!(r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>{good}"#);
    assert_reason(&f, &bomb, "doctype");
    let xxe = format!(
        r#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>{}"#,
        good.replace("alice@example.com</NameID>", "&x;</NameID>")
    );
    assert_reason(&f, &xxe, "doctype");
    assert_reason(&f, "<samlp:Response", "malformed");
    // HMAC with the public key as the secret.
    let hmac = Spec {
        signature_method: "http://www.w3.org/2000/09/xmldsig#hmac-sha1".into(),
        ..spec.clone()
    };
    assert_reason(&f, &response(&hmac, false, &assertion(&hmac, true)), "algorithm");
    // SHA-1: refused by default, accepted when the config allows it.
    let sha1 = Spec {
        signature_method: "http://www.w3.org/2000/09/xmldsig#rsa-sha1".into(),
        digest_method: "http://www.w3.org/2000/09/xmldsig#sha1".into(),
        ..spec.clone()
    };
    let xml = signed_response(f.dir.path(), &f.idp, &sha1, Signed::Assertion);
    assert_reason(&f, &xml, "algorithm");
    let lenient = write_config(f.dir.path(), &metadata(&[&f.idp]), true);
    assert_eq!(run(&lenient, &b64(&xml), &[]).0, 0);
    // An empty trust store is a configuration error, never "accept everything".
    let empty = write_config(
        f.dir.path(),
        &format!(
            "<EntityDescriptor entityID=\"{}\"><IDPSSODescriptor/></EntityDescriptor>",
            issuer()
        ),
        false,
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailvault"))
        .arg("--config")
        .arg(&empty)
        .args(["saml", "validate", "-", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn semantic_checks_each_have_their_reason() {
    let Some(f) = fixture() else { return };
    let d = Spec::default();
    let sign = |s: &Spec, how| signed_response(f.dir.path(), &f.idp, s, how);
    let cases: Vec<(Spec, Signed, &str)> = vec![
        (
            Spec {
                issuer: "https://sts.windows.net/99999999-0000-0000-0000-000000000000/".into(),
                ..d.clone()
            },
            Signed::Assertion,
            "issuer",
        ),
        (
            Spec {
                audience: "https://example.com/saml".into(),
                ..d.clone()
            },
            Signed::Assertion,
            "audience",
        ),
        (
            Spec {
                recipient: "https://evil.example/saml".into(),
                ..d.clone()
            },
            Signed::Assertion,
            "recipient",
        ),
        (
            Spec {
                destination: Some("https://evil.example/saml".into()),
                ..d.clone()
            },
            Signed::Response,
            "destination",
        ),
        (
            Spec {
                status: "urn:oasis:names:tc:SAML:2.0:status:Responder".into(),
                ..d.clone()
            },
            Signed::Both,
            "status",
        ),
        (
            Spec {
                conditions: false,
                ..d.clone()
            },
            Signed::Assertion,
            "missing_condition",
        ),
        (
            Spec {
                scd_not_on_or_after: "2026-11-25T09:50:00Z".into(),
                ..d.clone()
            },
            Signed::Assertion,
            "expired",
        ),
        (
            Spec {
                not_on_or_after: "2026-11-25T09:40:00Z".into(),
                ..d.clone()
            },
            Signed::Assertion,
            "expired",
        ),
        (
            Spec {
                not_before: "2026-11-25T10:30:00Z".into(),
                ..d.clone()
            },
            Signed::Assertion,
            "not_yet_valid",
        ),
    ];
    for (spec, how, reason) in cases {
        assert_reason(&f, &sign(&spec, how), reason);
    }
    let with_attr = |name: &str, values: Vec<String>| {
        let mut s = d.clone();
        s.attributes.retain(|(n, _)| n != name);
        if !values.is_empty() {
            s.attributes.push((name.to_string(), values));
        }
        s
    };
    let role_attr = "https://aws.amazon.com/SAML/Attributes/Role";
    assert_reason(
        &f,
        &sign(&with_attr(role_attr, vec![]), Signed::Assertion),
        "role_attribute",
    );
    assert_reason(
        &f,
        &sign(&with_attr(role_attr, vec![role("Admin")]), Signed::Assertion),
        "role_attribute",
    );
    assert_reason(
        &f,
        &sign(
            &with_attr(
                role_attr,
                vec![format!("{},arn:aws:iam::999999999999:saml-provider/X", role("Admin"))],
            ),
            Signed::Assertion,
        ),
        "role_attribute",
    );
    let session = "https://aws.amazon.com/SAML/Attributes/RoleSessionName";
    assert_reason(
        &f,
        &sign(&with_attr(session, vec!["alice smith".into()]), Signed::Assertion),
        "session_name",
    );
    let duration = "https://aws.amazon.com/SAML/Attributes/SessionDuration";
    assert_reason(
        &f,
        &sign(&with_attr(duration, vec!["60".into()]), Signed::Assertion),
        "session_duration",
    );
    let mut dup = d.clone();
    dup.attributes.push((session.into(), vec!["mallory".into()]));
    assert_reason(&f, &sign(&dup, Signed::Assertion), "duplicate_attribute");

    // Overage: too many groups for the token; groups are unknown, not empty.
    let mut over = with_attr("http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", vec![]);
    over.attributes.push((
        "http://schemas.microsoft.com/claims/groups.link".into(),
        vec!["https://graph.microsoft.com/v1.0/users/x/getMemberObjects".into()],
    ));
    let (code, doc) = run(&f.config, &b64(&sign(&over, Signed::Assertion)), &[]);
    assert_eq!(code, 0, "{doc}");
    assert!(doc["groups"].is_null());
}

#[test]
fn a_replayed_assertion_is_refused_inside_its_window() {
    let Some(f) = fixture() else { return };
    let xml = signed_response(f.dir.path(), &f.idp, &Spec::default(), Signed::Assertion);
    let cache = f.dir.path().join("seen.json");
    let cache_arg = cache.to_str().unwrap();
    assert_eq!(run(&f.config, &b64(&xml), &["--replay-cache", cache_arg]).0, 0);
    let (code, doc) = run(&f.config, &b64(&xml), &["--replay-cache", cache_arg]);
    assert_eq!((code, doc["reason"].as_str()), (3, Some("replay")), "{doc}");
    // Without a cache nothing is remembered.
    assert_eq!(run(&f.config, &b64(&xml), &[]).0, 0);
}

#[test]
fn assertion_contents_stay_out_of_logs() {
    let Some(f) = fixture() else { return };
    let xml = signed_response(f.dir.path(), &f.idp, &Spec::default(), Signed::Assertion);
    let file = f.dir.path().join("resp.b64");
    std::fs::write(&file, b64(&xml)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailvault"))
        .arg("--config")
        .arg(&f.config)
        .args(["--log-format", "json", "-vv", "saml", "validate"])
        .arg(&file)
        .args(["--at", AT])
        .output()
        .unwrap();
    // The validation must have run (and logged at trace level) for the check below to mean anything.
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SAML response accepted"),
        "nothing was logged: {stderr}"
    );
    assert!(
        !stderr.contains("SignatureValue") && !stderr.contains(&f.idp.cert_b64[..40]),
        "{stderr}"
    );
    assert!(!stderr.contains(&String::from_utf8_lossy(&b64(&xml))[..60]));
}

#[test]
fn unreachable_metadata_url_is_a_failure_not_a_configuration_error() {
    let Some(f) = fixture() else { return };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&f.config)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("idp_metadata") {
                format!("idp_metadata = \"https://127.0.0.1:{closed}/FederationMetadata.xml\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = f.dir.path().join("url.toml");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailvault"))
        .arg("--config")
        .arg(&config)
        .args(["saml", "validate", "-", "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    // The configuration is fine; the IdP did not answer: running again may succeed (exit 1).
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["error"].as_str().unwrap().contains("fetching https://127.0.0.1"),
        "{doc}"
    );
}
