//! `trailvault saml validate` against Entra-shaped responses signed by xmlsec1, and
//! one case per attack class of the reference, each refused for its reason.
// Every test here drives the validator, which exists only with the `saml` feature.
#![cfg(feature = "saml")]

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

// ---------------------------------------------------------------------------------------------
// Hardening (issue 8): a library-level table over the validator, one row per vector, no process.

use std::time::{Duration, Instant};

use trailvault::federation::replay::ReplayCache;
use trailvault::federation::roles::RoleMapping;
use trailvault::federation::validate::{decode_input, Accepted, Rejection, Validator};

const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

fn validator(idp: &Identity) -> Validator {
    Validator {
        tenant_issuers: vec![issuer()],
        audiences: vec![
            "https://signin.aws.amazon.com/saml".into(),
            "urn:amazon:webservices".into(),
        ],
        certs: vec![cert_der(idp)],
        allow_sha1: false,
        clock_skew: chrono::Duration::minutes(3),
        roles: RoleMapping::parse(ROLES).unwrap(),
        require_grant: false,
    }
}

fn at(t: &str) -> chrono::DateTime<chrono::Utc> {
    t.parse().unwrap()
}

fn check(v: &Validator, input: &[u8], when: &str, cache: Option<&mut ReplayCache>) -> Result<Accepted, Rejection> {
    decode_input(input).and_then(|xml| v.validate(&xml, at(when), cache))
}

/// A Signature's transform list with `extra` transforms after enveloped-signature.
fn with_transform(xml: &str, extra: &str) -> String {
    let env = r#"<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#;
    assert!(xml.contains(env));
    xml.replacen(env, &format!("{env}{extra}"), 1)
}

fn nested(tag: &str, depth: usize) -> String {
    format!(
        "{}{}",
        format!("<{tag}>").repeat(depth),
        format!("</{tag}>").repeat(depth)
    )
}

/// Inserts `extra` right after the Response's Issuer (where Extensions would sit).
fn after_response_issuer(xml: &str, extra: &str) -> String {
    let i = xml.find("</Issuer>").unwrap() + "</Issuer>".len();
    format!("{}{extra}{}", &xml[..i], &xml[i..])
}

type Row = (&'static str, Vec<u8>, Result<&'static str, &'static str>);

const DSIG_DEFAULT: &str = "xmlns=\"http://www.w3.org/2000/09/xmldsig#\"";
const DSIG_ESCAPED: &str = "xmlns=\"http://www.w3.org/2000/09/xmldsig&#35;\"";

/// A Signature (prefixed `ds:`) hidden in the document, its namespace written as given and
/// its Reference pointing at `uri`.
fn hidden_signature(ns_decl: &str, uri: &str) -> String {
    format!(
        r#"<ds:Signature {ns_decl}><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="{uri}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AA==</ds:SignatureValue></ds:Signature>"#
    )
}

/// Issue #17: the verifier and the reader see one document. Each way a parser could read
/// the input differently from trailvault is refused before xmlsec runs.
fn one_document_rows(dir: &Path, idp: &Identity, good_a: &str, good_b: &str) -> Vec<Row> {
    let d = Spec::default();
    let a_id = d.assertion_id.clone();
    let xp_string_range = "#xpointer(string-range(//@*,'a'))";
    let xp_string_range_all = "#xpointer(string-range(//*,'a'))";
    let xp_namespaces = "#xpointer(//namespace::*)";
    let xp_recursive = "#xpointer(//*[count(//*[count(//*[count(//*)&gt;0])&gt;0])&gt;0])";
    let flood: String = "<b/>".repeat(12_000);
    let ns_flood: String = (0..40)
        .map(|i| {
            let decls: String = (0..8).map(|j| format!(" xmlns:n{j}=\"urn:{i}:{j}\"")).collect();
            format!("<e{i}{decls}>")
        })
        .collect::<String>()
        + &(0..40).rev().map(|i| format!("</e{i}>")).collect::<String>();
    let time = |field: &str, value: &str| {
        let mut s = d.clone();
        match field {
            "NotBefore" => s.not_before = value.into(),
            "NotOnOrAfter" => s.not_on_or_after = value.into(),
            "IssueInstant" => s.issue_instant = value.into(),
            _ => s.scd_not_on_or_after = value.into(),
        }
        b64(&signed_response(dir, idp, &s, Signed::Assertion))
    };
    // Signed by xmlsec1 (which decodes the reference), then the reference written back.
    let escaped_signature = |how| {
        let xml = signed_edited(dir, idp, &d, how, &|a| a.replace(DSIG_DEFAULT, DSIG_ESCAPED), &|r| {
            r.replace(DSIG_DEFAULT, DSIG_ESCAPED)
        });
        b64(&xml.replace(DSIG_DEFAULT, DSIG_ESCAPED))
    };
    let with_uri = |uri: &str| b64(&good_a.replace(&format!("URI=\"#{a_id}\""), &format!("URI=\"{uri}\"")));
    vec![
        // The first door: a namespace name written with a character reference.
        (
            "hidden ds:Signature, namespace by &#35;, XPointer string-range",
            b64(&after_response_issuer(
                good_a,
                &format!(
                    "<x:a xmlns:x=\"urn:x\">{}</x:a>",
                    hidden_signature("xmlns:ds=\"http://www.w3.org/2000/09/xmldsig&#35;\"", xp_string_range)
                ),
            )),
            Err("malformed"),
        ),
        (
            "hidden Signature, default namespace by &#x23;",
            b64(&after_response_issuer(
                good_a,
                &hidden_signature("xmlns=\"http://www.w3.org/2000/09/xmldsig&#x23;\"", xp_namespaces)
                    .replace("ds:", ""),
            )),
            Err("malformed"),
        ),
        (
            "SAML assertion namespace by a reference",
            b64(&good_a.replace(
                "xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\"",
                "xmlns=\"urn:oasis:names:tc:SAML&#58;2.0:assertion\"",
            )),
            Err("malformed"),
        ),
        // The second door: markup inside an attribute value.
        (
            "Signature inside an attribute value",
            b64(&after_response_issuer(
                good_a,
                &format!(
                    "<x:a xmlns:x=\"urn:x\" v=\"{}\"/>",
                    hidden_signature("xmlns:ds='http://www.w3.org/2000/09/xmldsig#'", xp_string_range_all)
                        .replace('"', "'")
                ),
            )),
            Err("malformed"),
        ),
        (
            "12,000 elements hidden in an attribute value",
            b64(&after_response_issuer(
                good_a,
                &format!("<x:a xmlns:x=\"urn:x\" v=\"{flood}\"/>"),
            )),
            Err("malformed"),
        ),
        (
            "320 namespace declarations in scope",
            b64(&after_response_issuer(good_a, &ns_flood)),
            Err("malformed"),
        ),
        // XPointer and every other non-ID Reference, on the real Signature.
        (
            "XPointer string-range over attributes",
            with_uri(xp_string_range),
            Err("signature"),
        ),
        (
            "XPointer string-range over elements",
            with_uri(xp_string_range_all),
            Err("signature"),
        ),
        ("XPointer namespace axis", with_uri(xp_namespaces), Err("signature")),
        (
            "XPointer recursive predicates",
            with_uri(xp_recursive),
            Err("signature"),
        ),
        (
            "XPointer id()",
            with_uri(&format!("#xpointer(id('{a_id}'))")),
            Err("signature"),
        ),
        ("bare #xpointer", with_uri("#xpointer(/)"), Err("signature")),
        ("empty Reference", with_uri(""), Err("signature")),
        (
            "no URI",
            b64(&good_a.replace(&format!(" URI=\"#{a_id}\""), "")),
            Err("signature"),
        ),
        ("http Reference", with_uri("http://127.0.0.1:1/x"), Err("signature")),
        ("file Reference", with_uri("file:///dev/zero"), Err("signature")),
        (
            "the sibling's ID",
            with_uri(&format!("#{}", d.response_id)),
            Err("signature"),
        ),
        (
            "a percent-escaped ID",
            with_uri(&format!("#%5F{}", &a_id[1..])),
            Err("signature"),
        ),
        // Raw control characters, which a recovering parser drops.
        (
            "U+0001 in the NameID",
            b64(&good_a.replace("alice@example.com</NameID>", "alice\u{1}@example.com</NameID>")),
            Err("malformed"),
        ),
        (
            "U+000B in an attribute value",
            b64(&good_a.replace(&format!("ID=\"{a_id}\""), &format!("ID=\"{a_id}\" X=\"a\u{b}b\""))),
            Err("malformed"),
        ),
        (
            "&#1; in the NameID",
            b64(&good_a.replace("alice@example.com</NameID>", "alice&#1;@example.com</NameID>")),
            Err("malformed"),
        ),
        // Odd spellings of the same tree still verify: the signature is over the tree.
        (
            "a character reference in signed text",
            b64(&good_a.replace("alice@example.com</NameID>", "&#x61;lice@example.com</NameID>")),
            Ok("assertion"),
        ),
        (
            "single quotes and spaces in signed tags",
            b64(&good_a.replacen(&format!("ID=\"{a_id}\""), &format!("ID = '{a_id}' "), 1)),
            Ok("assertion"),
        ),
        // SAML times: xs:dateTime in UTC with Z only.
        (
            "NotBefore +14:00",
            time("NotBefore", "2026-11-25T23:55:00+14:00"),
            Err("malformed"),
        ),
        (
            "NotOnOrAfter lower-case z",
            time("NotOnOrAfter", "2026-11-25T11:05:00z"),
            Err("malformed"),
        ),
        (
            "IssueInstant lower-case t",
            time("IssueInstant", "2026-11-25t10:00:00Z"),
            Err("malformed"),
        ),
        (
            "NotBefore second 60",
            time("NotBefore", "2026-11-25T09:54:60Z"),
            Err("malformed"),
        ),
        (
            "NotBefore space for T",
            time("NotBefore", "2026-11-25 09:55:00Z"),
            Err("malformed"),
        ),
        (
            "SCD NotOnOrAfter without zone",
            time("SCD", "2026-11-25T10:05:00"),
            Err("malformed"),
        ),
        (
            "SCD NotOnOrAfter fraction, Z",
            time("SCD", "2026-11-25T10:05:00.1234567Z"),
            Ok("assertion"),
        ),
        // `signed` comes from the verified tree: an escaped Signature namespace is refused,
        // never read as "not signed".
        (
            "assertion signed, Signature namespace escaped",
            escaped_signature(Signed::Assertion),
            Err("malformed"),
        ),
        (
            "both signed, Signature namespaces escaped",
            escaped_signature(Signed::Both),
            Err("malformed"),
        ),
        ("both signed, as sent", b64(good_b), Ok("assertion,response")),
    ]
}

#[test]
fn hardening_table_over_the_validator() {
    let Some(f) = fixture() else { return };
    let dir = f.dir.path();
    let v = validator(&f.idp);
    let d = Spec::default();
    let a_id = d.assertion_id.clone();
    let r_id = d.response_id.clone();
    let sign = |s: &Spec, how| signed_response(dir, &f.idp, s, how);
    let edit_a = |how, e: &dyn Fn(String) -> String| signed_edited(dir, &f.idp, &d, how, e, &|r| r);
    let edit_r = |how, e: &dyn Fn(String) -> String| signed_edited(dir, &f.idp, &d, how, &|a| a, e);
    let good_a = sign(&d, Signed::Assertion);
    let good_r = sign(&d, Signed::Response);
    let good_b = sign(&d, Signed::Both);
    let with_attr = |name: &str, values: Vec<String>| {
        let mut s = d.clone();
        s.attributes.retain(|(n, _)| n != name);
        s.attributes.push((name.to_string(), values));
        s
    };
    let role_attr = "https://aws.amazon.com/SAML/Attributes/Role";
    let session = "https://aws.amazon.com/SAML/Attributes/RoleSessionName";
    let duration = "https://aws.amazon.com/SAML/Attributes/SessionDuration";
    let groups_attr = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";
    let roles_with = |pairs: &[&str]| with_attr(role_attr, pairs.iter().map(|p| p.to_string()).collect());
    let b64s = |x: &str| String::from_utf8(b64(x)).unwrap();
    let form = |x: &str| url::form_urlencoded::byte_serialize(b64s(x).as_bytes()).collect::<String>();
    let deep_xslt = {
        let mut t = String::from("<xsl:value-of select=\"count(//*)\"/>");
        for _ in 0..40 {
            t = format!(
                "<xsl:for-each select=\"//node()\"><xsl:for-each select=\"//@*\">{t}</xsl:for-each></xsl:for-each>"
            );
        }
        format!(
            r#"<Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"><xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"><xsl:template match="/">{t}</xsl:template></xsl:stylesheet></Transform>"#
        )
    };
    let attrs17: String = (0..17).map(|i| format!(" a{i}=\"x\"")).collect();

    let rows: Vec<Row> = vec![
        // Accepted: every signing mode, the regional hosts, a form body in any order, 150 groups.
        ("assertion signed", b64(&good_a), Ok("assertion")),
        ("response signed", b64(&good_r), Ok("response")),
        ("both signed", b64(&good_b), Ok("assertion,response")),
        ("raw XML", good_a.clone().into_bytes(), Ok("assertion")),
        (
            "form, RelayState first",
            format!(
                "RelayState=https%3A%2F%2Fconsole.aws.amazon.com%2F+x&SAMLResponse={}",
                form(&good_a)
            )
            .into_bytes(),
            Ok("assertion"),
        ),
        (
            "form, SAMLResponse first",
            format!("SAMLResponse={}&RelayState=", form(&good_b)).into_bytes(),
            Ok("assertion,response"),
        ),
        (
            "regional ap-northeast-2",
            b64(&sign(
                &Spec {
                    recipient: "https://ap-northeast-2.signin.aws.amazon.com/saml".into(),
                    destination: Some("https://ap-northeast-2.signin.aws.amazon.com/saml".into()),
                    ..d.clone()
                },
                Signed::Both,
            )),
            Ok("assertion,response"),
        ),
        (
            "regional us-gov-west-1 acs",
            b64(&sign(
                &Spec {
                    recipient: "https://us-gov-west-1.signin.aws.amazon.com/saml/acs/SAMLSP4SF6X5T1CG".into(),
                    ..d.clone()
                },
                Signed::Assertion,
            )),
            Ok("assertion"),
        ),
        (
            "150 group claims",
            b64(&sign(&with_attr(groups_attr, many_groups(150)), Signed::Both)),
            Ok("assertion,response"),
        ),
        // Forbidden signature shapes: refused before xmlsec sees them.
        (
            "XSLT transform",
            b64(&with_transform(&good_a, &deep_xslt)),
            Err("signature"),
        ),
        (
            "XPath filter",
            b64(&with_transform(
                &good_a,
                r#"<Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><XPath>count(//. | //@* | //namespace::*) &gt; 0 and not(ancestor-or-self::*[count(//*) &gt; 0])</XPath></Transform>"#,
            )),
            Err("signature"),
        ),
        (
            "XPath2 filter",
            b64(&with_transform(
                &good_a,
                r#"<Transform Algorithm="http://www.w3.org/2002/06/xmldsig-filter2"><XPath xmlns="http://www.w3.org/2002/06/xmldsig-filter2" Filter="union">//*</XPath></Transform>"#,
            )),
            Err("signature"),
        ),
        (
            "http Reference",
            b64(&good_a.replace(&format!("URI=\"#{a_id}\""), "URI=\"http://127.0.0.1:8999/ref\"")),
            Err("signature"),
        ),
        (
            "file Reference",
            b64(&good_a.replace(&format!("URI=\"#{a_id}\""), "URI=\"file:///etc/passwd\"")),
            Err("signature"),
        ),
        (
            "/proc Reference",
            b64(&good_a.replace(&format!("URI=\"#{a_id}\""), "URI=\"/proc/self/environ\"")),
            Err("signature"),
        ),
        (
            "/dev/zero Reference",
            b64(&good_a.replace(&format!("URI=\"#{a_id}\""), "URI=\"/dev/zero\"")),
            Err("signature"),
        ),
        (
            "whole-document Reference",
            b64(&good_a.replace(&format!("URI=\"#{a_id}\""), "URI=\"\"")),
            Err("signature"),
        ),
        (
            "xpointer Reference",
            b64(&good_a.replace(&format!("URI=\"#{a_id}\""), "URI=\"#xpointer(/)\"")),
            Err("signature"),
        ),
        (
            "Reference to another element",
            b64(&good_a.replace(&format!("URI=\"#{a_id}\""), &format!("URI=\"#{r_id}\""))),
            Err("signature"),
        ),
        (
            "two References",
            b64(&{
                let start = good_a.find("<Reference ").unwrap();
                let end = good_a.find("</Reference>").unwrap() + "</Reference>".len();
                let reference = good_a[start..end].to_string();
                good_a.replacen(&reference, &format!("{reference}{reference}"), 1)
            }),
            Err("signature"),
        ),
        (
            "RetrievalMethod",
            b64(&good_a.replacen(
                "<KeyInfo>",
                "<KeyInfo><RetrievalMethod URI=\"http://127.0.0.1:8999/key\"/>",
                1,
            )),
            Err("signature"),
        ),
        (
            "KeyName",
            b64(&good_a.replacen("<KeyInfo>", "<KeyInfo><KeyName>entra</KeyName>", 1)),
            Err("signature"),
        ),
        (
            "ds:Object",
            b64(&good_a.replacen("</KeyInfo>", "</KeyInfo><Object><x/></Object>", 1)),
            Err("signature"),
        ),
        (
            "Signature in Extensions",
            b64(&after_response_issuer(
                &good_a,
                &format!("<samlp:Extensions>{}</samlp:Extensions>", signature_template(&d, &a_id)),
            )),
            Err("signature"),
        ),
        (
            "XInclude",
            b64(&after_response_issuer(
                &good_a,
                r#"<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>"#,
            )),
            Err("signature"),
        ),
        (
            "duplicate ID",
            b64(&after_response_issuer(
                &good_a,
                &format!("<samlp:Extensions ID=\"{a_id}\"/>"),
            )),
            Err("signature"),
        ),
        (
            "DOCTYPE",
            b64(&format!("<!DOCTYPE r SYSTEM \"http://127.0.0.1:8999/dtd\">{good_a}")),
            Err("doctype"),
        ),
        // Limits: malformed, in bounded time, whatever the size.
        (
            "deep nesting",
            b64(&after_response_issuer(&good_a, &nested("a", 8_000))),
            Err("malformed"),
        ),
        (
            "depth 64",
            b64(&after_response_issuer(&good_a, &nested("a", 63))),
            Ok("assertion"),
        ),
        (
            "depth 65",
            b64(&after_response_issuer(&good_a, &nested("a", 64))),
            Err("malformed"),
        ),
        (
            "17 attributes",
            b64(&after_response_issuer(&good_a, &format!("<a{attrs17}/>"))),
            Err("malformed"),
        ),
        (
            "4,097 elements",
            b64(&after_response_issuer(&good_a, &"<a/>".repeat(4_097))),
            Err("malformed"),
        ),
        (
            "300,000 attributes",
            (0..300_000)
                .fold(String::from("<a"), |s, i| s + &format!(" a{i}=\"\""))
                .into_bytes(),
            Err("malformed"),
        ),
        (
            "50 MB XML",
            format!("<a>{}</a>", "x".repeat(50 << 20)).into_bytes(),
            Err("malformed"),
        ),
        (
            "76,000 bytes XML",
            after_response_issuer(&good_a, &format!("<!--{}-->", "x".repeat(76_000))).into_bytes(),
            Err("malformed"),
        ),
        (
            "100,004 base64 characters",
            "A".repeat(100_004).into_bytes(),
            Err("malformed"),
        ),
        (
            "ISO-8859-1 declaration",
            b64(&format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{good_a}")),
            Err("malformed"),
        ),
        (
            "UTF-16",
            good_a.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            Err("malformed"),
        ),
        (
            "form without SAMLResponse",
            b"RelayState=x&SAMLRequest=abc".to_vec(),
            Err("malformed"),
        ),
        // Namespace tricks.
        (
            "foreign-namespace Response",
            b64(&good_a.replace(
                "xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"",
                "xmlns:samlp=\"urn:evil:protocol\"",
            )),
            Err("malformed"),
        ),
        (
            "undeclared prefix",
            b64(&good_a.replace(" xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"", "")),
            Err("malformed"),
        ),
        (
            "foreign-namespace Assertion",
            b64(&good_a.replace(
                "<Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\"",
                "<Assertion xmlns=\"urn:oasis:names:tc:SAML:1.0:assertion\"",
            )),
            Err("malformed"),
        ),
        (
            "foreign-namespace Status",
            b64(&good_a
                .replace(
                    "<samlp:Status><samlp:StatusCode",
                    "<samlp:Status><StatusCode xmlns=\"urn:evil\"",
                )
                .replace("\"/></samlp:Status>", "\"></StatusCode></samlp:Status>")),
            Err("status"),
        ),
        // Every value, exactly.
        (
            "evil status",
            b64(&good_a.replace(STATUS_SUCCESS, "urn:evil:status:Success")),
            Err("status"),
        ),
        (
            "two RoleSessionName values",
            b64(&sign(
                &with_attr(session, vec!["alice@example.com".into(), "mallory".into()]),
                Signed::Assertion,
            )),
            Err("session_name"),
        ),
        (
            "two SessionDuration values",
            b64(&sign(
                &with_attr(duration, vec!["3600".into(), "999999".into()]),
                Signed::Assertion,
            )),
            Err("session_duration"),
        ),
        (
            "partition awsevil",
            b64(&sign(
                &roles_with(&[
                    "arn:awsevil:iam::111122223333:role/Admin,arn:awsevil:iam::111122223333:saml-provider/EntraID",
                ]),
                Signed::Assertion,
            )),
            Err("role_attribute"),
        ),
        (
            "role name with a space",
            b64(&sign(
                &roles_with(&[&format!("arn:aws:iam::111122223333:role/Ad min,{}", provider())]),
                Signed::Assertion,
            )),
            Err("role_attribute"),
        ),
        (
            "role name *",
            b64(&sign(
                &roles_with(&[&format!("arn:aws:iam::111122223333:role/*,{}", provider())]),
                Signed::Assertion,
            )),
            Err("role_attribute"),
        ),
        (
            "child element in a Role value",
            b64(&edit_a(Signed::Assertion, &|a| {
                a.replacen(
                    &format!("<AttributeValue>{},{}</AttributeValue>", role("Admin"), provider()),
                    &format!(
                        "<AttributeValue><x xmlns=\"urn:x\">{},{}</x></AttributeValue>",
                        role("Admin"),
                        provider()
                    ),
                    1,
                )
            })),
            Err("malformed"),
        ),
        (
            "made-up regional Recipient",
            b64(&sign(
                &Spec {
                    recipient: "https://evil-attacker-x.signin.aws.amazon.com/saml".into(),
                    ..d.clone()
                },
                Signed::Assertion,
            )),
            Err("recipient"),
        ),
        (
            "made-up regional Destination",
            b64(&sign(
                &Spec {
                    destination: Some("https://evil-attacker-x.signin.aws.amazon.com/saml".into()),
                    ..d.clone()
                },
                Signed::Response,
            )),
            Err("destination"),
        ),
        (
            "signed Response without Destination",
            b64(&sign(
                &Spec {
                    destination: None,
                    ..d.clone()
                },
                Signed::Response,
            )),
            Err("destination"),
        ),
        (
            "Assertion without Version",
            b64(&edit_a(Signed::Assertion, &|a| a.replacen(" Version=\"2.0\"", "", 1))),
            Err("malformed"),
        ),
        (
            "Response without Version",
            b64(&good_a.replacen(" Version=\"2.0\"", "", 1)),
            Err("malformed"),
        ),
        (
            "Response Version 1.1",
            b64(&edit_r(Signed::Response, &|r| {
                r.replacen(" Version=\"2.0\"", " Version=\"1.1\"", 1)
            })),
            Err("malformed"),
        ),
        (
            "no AuthnStatement",
            b64(&edit_a(Signed::Assertion, &|a| {
                let s = a.find("<AuthnStatement").unwrap();
                let e = a.find("</AuthnStatement>").unwrap() + "</AuthnStatement>".len();
                format!("{}{}", &a[..s], &a[e..])
            })),
            Err("missing_condition"),
        ),
    ];
    let mut rows = rows;
    rows.extend(one_document_rows(dir, &f.idp, &good_a, &good_b));
    let mut failures = Vec::new();
    for (name, input, expect) in rows {
        let started = Instant::now();
        let got = check(&v, &input, AT, None);
        let took = started.elapsed();
        if took >= Duration::from_secs(2) {
            failures.push(format!("{name}: took {took:?}"));
        }
        match (expect, got) {
            (Ok(signed), Ok(ok)) => {
                if ok.signed.join(",") != signed || ok.subject != "alice@example.com" {
                    failures.push(format!("{name}: signed {:?}, subject {:?}", ok.signed, ok.subject));
                }
            }
            (Err(reason), Err(r)) => {
                if r.reason.as_str() != reason || r.detail.contains("Crypto Provider") {
                    failures.push(format!("{name}: expected {reason}, got {:?}: {}", r.reason, r.detail));
                }
            }
            (want, got) => failures.push(format!("{name}: expected {want:?}, got {got:?}")),
        }
    }
    // Every failing row at once, not only the first.
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The signature step ran with xmlsec restricted to the Entra transforms.
    assert_eq!(trailvault::xmlsec::guard::registered_transforms(), 6);
}

#[test]
fn require_grant_refuses_a_response_with_no_granted_role() {
    let Some(f) = fixture() else { return };
    let mut v = validator(&f.idp);
    v.require_grant = true;
    let good = b64(&signed_response(
        f.dir.path(),
        &f.idp,
        &Spec::default(),
        Signed::Assertion,
    ));
    assert!(check(&v, &good, AT, None).is_ok());
    let mut spec = Spec::default();
    spec.attributes.retain(|(n, _)| !n.ends_with("/claims/groups"));
    let ungranted = b64(&signed_response(f.dir.path(), &f.idp, &spec, Signed::Assertion));
    let r = check(&v, &ungranted, AT, None).unwrap_err();
    assert_eq!(r.reason.as_str(), "not_granted", "{}", r.detail);
}

#[test]
fn replay_is_remembered_up_to_the_skew_edge_and_across_threads() {
    let Some(f) = fixture() else { return };
    let v = validator(&f.idp);
    // Conditions end 11:05 and the subject confirmation 10:05 (Spec::default); skew 3 min.
    // The confirmation is accepted until 10:08; the ID must be remembered until 11:08.
    let xml = b64(&signed_response(
        f.dir.path(),
        &f.idp,
        &Spec::default(),
        Signed::Assertion,
    ));
    let mut cache = ReplayCache::in_memory();
    assert!(check(&v, &xml, "2026-11-25T10:01:00Z", Some(&mut cache)).is_ok());
    let edge = check(&v, &xml, "2026-11-25T10:07:59Z", Some(&mut cache)).unwrap_err();
    assert_eq!(edge.reason.as_str(), "replay", "{}", edge.detail);
    let after = check(&v, &xml, "2026-11-25T10:08:00Z", Some(&mut cache)).unwrap_err();
    assert_eq!(after.reason.as_str(), "expired", "{}", after.detail);
    // A fresh cache accepts it at the last second of the window, then refuses the replay.
    let mut cache = ReplayCache::in_memory();
    assert!(check(&v, &xml, "2026-11-25T10:07:59Z", Some(&mut cache)).is_ok());
    assert_eq!(
        check(&v, &xml, "2026-11-25T10:07:59Z", Some(&mut cache))
            .unwrap_err()
            .reason
            .as_str(),
        "replay"
    );

    // Ten threads, one cache file: exactly one acceptance.
    let path = f.dir.path().join("seen-threads.json");
    let results: Vec<Result<Accepted, Rejection>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let (v, xml, path) = (&v, &xml, &path);
                s.spawn(move || {
                    let mut cache = ReplayCache::with_store(Box::new(
                        trailvault::federation_io::FileReplayStore::open(path).unwrap(),
                    ));
                    let r = check(v, xml, AT, Some(&mut cache));
                    cache.save().unwrap();
                    r
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|r| r.reason.as_str() == "replay"));
}

/// Below the pre-screen: even a document that reached xmlsec could open no URI. Run on
/// samael directly (as the validator would, hardened) with References a pre-screen refuses.
#[test]
fn xmlsec_itself_opens_no_url_and_no_file() {
    let Some(f) = fixture() else { return };
    use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode};
    trailvault::xmlsec::guard::harden();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let d = Spec::default();
    let good = signed_response(f.dir.path(), &f.idp, &d, Signed::Assertion);
    let certs = vec![CertificateDer::from(cert_der(&f.idp))];
    for uri in [
        format!("http://127.0.0.1:{port}/ref"),
        "file:///dev/zero".to_string(),
        "/dev/zero".to_string(),
    ] {
        let xml = good.replace(&format!("URI=\"#{}\"", d.assertion_id), &format!("URI=\"{uri}\""));
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let certs = certs.clone();
        std::thread::spawn(move || {
            trailvault::xmlsec::guard::harden();
            let r = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                &xml,
                &certs,
                ReduceMode::ValidateAndMarkNoAncestors,
                None,
            );
            let _ = tx.send(r.is_ok());
        });
        let ok = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("xmlsec did not return within 10 s");
        assert!(!ok, "{uri} verified");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{uri}: {:?}",
            started.elapsed()
        );
        assert!(listener.accept().is_err(), "{uri}: xmlsec connected to the listener");
    }
}

// ---------------------------------------------------------------------------------------------
// Hardening at the command line: the binary, watched for network, files, stderr, time and memory.

#[repr(C)]
#[derive(Default)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    maxrss_kib: i64,
    rest: [i64; 13],
}

extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
}

struct Measured {
    code: i32,
    stdout: String,
    stderr: String,
    wall: Duration,
    /// User plus system CPU time of the child.
    cpu: Duration,
    max_rss_mib: i64,
}

/// Runs `saml validate --json --log-format json` on `input`; the child's wall time and peak
/// RSS come from wait4 (the RSS is an upper bound: Linux starts a spawned child's high-water
/// mark at this test process's size). A child still running after 60 s is killed (the test fails).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which std's Child does not know
fn run_measured(config: &Path, input: &[u8], extra: &[&str]) -> Measured {
    let dir = config.parent().unwrap();
    let n = rand::random::<u32>();
    let file = dir.join(format!("in-{n}"));
    let (out, err) = (dir.join(format!("out-{n}")), dir.join(format!("err-{n}")));
    std::fs::write(&file, input).unwrap();
    let started = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_trailvault"))
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json", "saml", "validate"])
        .arg(&file)
        .args(["--at", AT, "--json"])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(60)).is_err() {
            // SAFETY: signals our own child, not yet reaped (the waiter has not returned).
            unsafe { kill(pid, 9) };
        }
    });
    let mut status = 0;
    let mut usage = Rusage::default();
    // SAFETY: waits for our own child; the structs match Linux's x86-64/AArch64 layout.
    let waited = unsafe { wait4(pid, &mut status, 0, &mut usage) };
    let _ = done.send(());
    guard.join().unwrap();
    assert_eq!(waited, pid);
    let code = if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        -(status & 0x7f)
    };
    Measured {
        code,
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
        wall: started.elapsed(),
        cpu: [usage.utime, usage.stime]
            .iter()
            .map(|[s, us]| Duration::from_secs(*s as u64) + Duration::from_micros(*us as u64))
            .sum(),
        max_rss_mib: usage.maxrss_kib / 1024,
    }
}

#[test]
fn cli_hostile_inputs_open_nothing_say_nothing_and_stay_bounded() {
    let Some(f) = fixture() else { return };
    let d = Spec::default();
    let good = signed_response(f.dir.path(), &f.idp, &d, Signed::Assertion);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://127.0.0.1:{}/x", listener.local_addr().unwrap().port());
    let marker = format!("TRAILVAULT-MARKER-{:08x}", rand::random::<u32>());
    let secret = f.dir.path().join("secret.txt");
    std::fs::write(&secret, format!("{marker}\n{marker}\n")).unwrap();
    let file_url = format!("file://{}", secret.display());
    let reference = format!("URI=\"#{}\"", d.assertion_id);
    let xslt = |src: &str| {
        with_transform(
            &good,
            &format!(
                r#"<Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"><xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"><xsl:template match="/"><xsl:copy-of select="document('{src}')"/></xsl:template></xsl:stylesheet></Transform>"#
            ),
        )
    };
    let attrs: String = (0..300_000).map(|i| format!(" a{i}=\"\"")).collect();
    let mut named = 0;
    let vectors: Vec<(&str, Vec<u8>)> = vec![
        (
            "http Reference",
            b64(&good.replace(&reference, &format!("URI=\"{url}\""))),
        ),
        (
            "file Reference",
            b64(&good.replace(&reference, &format!("URI=\"{file_url}\""))),
        ),
        (
            "path Reference",
            b64(&good.replace(&reference, &format!("URI=\"{}\"", secret.display()))),
        ),
        (
            "/dev/zero Reference",
            b64(&good.replace(&reference, "URI=\"file:///dev/zero\"")),
        ),
        (
            "RetrievalMethod",
            b64(&good.replacen("<KeyInfo>", &format!("<KeyInfo><RetrievalMethod URI=\"{url}\"/>"), 1)),
        ),
        ("XSLT document()", b64(&xslt(&url))),
        ("XSLT file document()", b64(&xslt(&file_url))),
        (
            "XInclude",
            b64(&after_response_issuer(
                &good,
                &format!(r#"<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{file_url}" parse="text"/>"#),
            )),
        ),
        ("external DTD", b64(&format!("<!DOCTYPE r SYSTEM \"{url}\">{good}"))),
        (
            "external entity",
            b64(&format!(
                "<!DOCTYPE r [<!ENTITY x SYSTEM \"{file_url}\">]>{}",
                good.replace("alice@example.com</NameID>", "&x;</NameID>")
            )),
        ),
        ("deep nesting", b64(&after_response_issuer(&good, &nested("a", 9_000)))),
        // Well-shaped, so xmlsec itself runs and reports errors: they must reach stderr as JSON only.
        (
            "changed after signing",
            b64(&good.replace("alice@example.com</NameID>", "admin@example.com</NameID>")),
        ),
        (
            "signed by another key",
            b64(&signed_response(
                f.dir.path(),
                &Identity::new(f.dir.path(), "mallory"),
                &d,
                Signed::Assertion,
            )),
        ),
        ("300,000 attributes", format!("<a{attrs}/>").into_bytes()),
        ("50 MB", format!("<a>{}</a>", "<b/>".repeat(12 << 20)).into_bytes()),
    ];
    for (name, input) in &vectors {
        let m = run_measured(&f.config, input, &[]);
        if std::env::var("TRAILVAULT_TEST_VERBOSE").is_ok() {
            eprintln!("{name}: {:?}, {} MiB, {}", m.wall, m.max_rss_mib, m.stdout.trim());
        }
        assert_eq!(m.code, 3, "{name}: {}\n{}", m.stdout, m.stderr);
        let doc: serde_json::Value =
            serde_json::from_str(&m.stdout).unwrap_or_else(|e| panic!("{name}: {e}: {}", m.stdout));
        assert_eq!(doc["valid"], false, "{name}");
        assert!(
            !m.stdout.contains(&marker) && !m.stderr.contains(&marker),
            "{name}: file content reached output"
        );
        let mut refusals = 0;
        for line in m.stderr.lines() {
            let log: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: stderr line is not JSON ({e}): {line}"));
            if log["message"] == "SAML response refused" {
                refusals += 1;
                assert_eq!(log["level"], "WARN", "{name}: {line}");
                assert_eq!(log["reason"], doc["reason"], "{name}: {line}");
                // Named when the pass met the Assertion before the problem.
                if log["assertion_id"] != "" {
                    assert_eq!(log["assertion_id"], d.assertion_id.as_str(), "{name}: {line}");
                    assert_eq!(log["issuer"], issuer().as_str(), "{name}: {line}");
                    named += 1;
                }
            }
        }
        assert_eq!(refusals, 1, "{name}: {}", m.stderr);
        assert!(m.wall < Duration::from_secs(5), "{name}: {:?}", m.wall);
        assert!(m.max_rss_mib < 300, "{name}: {} MiB", m.max_rss_mib);
    }
    assert!(named >= 5, "refusals name the assertion ID and issuer");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a connection reached the listener"
    );
}

/// Issue #17 through the binary: the doors to libxml2's XPointer engine (a Signature behind an
/// escaped namespace or inside an attribute value) and hidden floods are refused within 1 s of
/// CPU and 128 MiB, with no signal death and one JSON document on stdout.
#[test]
fn cli_parser_differential_inputs_are_refused_within_a_second_and_128_mib() {
    let Some(f) = fixture() else { return };
    let good = signed_response(f.dir.path(), &f.idp, &Spec::default(), Signed::Assertion);
    let hidden = |decl: &str, uri: &str| {
        after_response_issuer(
            &good,
            &format!("<x:a xmlns:x=\"urn:x\">{}</x:a>", hidden_signature(decl, uri)),
        )
    };
    let escaped = "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig&#35;\"";
    let in_attribute = |uri: &str| {
        after_response_issuer(
            &good,
            &format!(
                "<x:a xmlns:x=\"urn:x\" v=\"{}\"/>",
                hidden_signature("xmlns:ds='http://www.w3.org/2000/09/xmldsig#'", uri).replace('"', "'")
            ),
        )
    };
    let vectors = [
        hidden(escaped, "#xpointer(string-range(//@*,'a'))"),
        hidden(escaped, "#xpointer(string-range(//*,'a'))"),
        hidden(escaped, "#xpointer(//namespace::*)"),
        in_attribute("#xpointer(string-range(//@*,'a'))"),
        in_attribute("#xpointer(//*[count(//*[count(//*)&gt;0])&gt;0])"),
        after_response_issuer(
            &good,
            &format!("<x:a xmlns:x=\"urn:x\" v=\"{}\"/>", "<b/>".repeat(17_000)),
        ),
    ];
    for (i, xml) in vectors.iter().enumerate() {
        let m = run_measured(&f.config, &b64(xml), &[]);
        assert_eq!(m.code, 3, "vector {i}: {}\n{}", m.stdout, m.stderr);
        let doc: serde_json::Value =
            serde_json::from_str(&m.stdout).unwrap_or_else(|e| panic!("vector {i}: {e}: {}", m.stdout));
        assert_eq!(doc["valid"], false, "vector {i}");
        assert!(m.cpu < Duration::from_secs(1), "vector {i}: {:?} CPU", m.cpu);
        assert!(m.max_rss_mib < 128, "vector {i}: {} MiB", m.max_rss_mib);
    }
}

#[test]
fn cli_require_grant_and_ten_concurrent_processes_sharing_one_replay_cache() {
    let Some(f) = fixture() else { return };
    let mut spec = Spec::default();
    spec.attributes.retain(|(n, _)| !n.ends_with("/claims/groups"));
    let ungranted = b64(&signed_response(f.dir.path(), &f.idp, &spec, Signed::Assertion));
    assert_eq!(run(&f.config, &ungranted, &[]).0, 0);
    let (code, doc) = run(&f.config, &ungranted, &["--require-grant"]);
    assert_eq!((code, doc["reason"].as_str()), (3, Some("not_granted")), "{doc}");

    let good = b64(&signed_response(f.dir.path(), &f.idp, &Spec::default(), Signed::Both));
    let (code, doc) = run(&f.config, &good, &["--require-grant"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["signed"], serde_json::json!(["assertion", "response"]));
    let cache = f.dir.path().join("shared-seen.json");
    let codes: Vec<i32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let (config, good, cache) = (&f.config, &good, &cache);
                s.spawn(move || run_measured(config, good, &["--replay-cache", cache.to_str().unwrap()]))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let m = h.join().unwrap();
                if m.code == 3 {
                    assert!(m.stdout.contains("\"replay\""), "{}", m.stdout);
                }
                m.code
            })
            .collect()
    });
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 3).count(), 9, "{codes:?}");
}

/// Mutations of a valid response (hostile fragments spliced in at random places, ranges cut
/// out): every one is decided within a second, and whatever is accepted still carries exactly
/// the signed claims.
#[test]
fn random_mutations_never_change_the_accepted_claims() {
    use rand::{Rng, SeedableRng};
    let Some(f) = fixture() else { return };
    let v = validator(&f.idp);
    let d = Spec::default();
    let docs = [
        signed_response(f.dir.path(), &f.idp, &d, Signed::Assertion),
        signed_response(f.dir.path(), &f.idp, &d, Signed::Both),
    ];
    let fragments = [
        "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>".to_string(),
        "&e;".into(),
        "<!---->".into(),
        "<![CDATA[x]]>".into(),
        "<?pi x?>".into(),
        format!("<Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_x\" Version=\"2.0\"><Issuer>{}</Issuer></Assertion>", issuer()),
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/>".into(),
        "<Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/>".into(),
        "<Reference URI=\"http://127.0.0.1:1/\"/>".into(),
        "<x:y xmlns:x=\"urn:x\"/>".into(),
        "<p:q/>".into(),
        " ID=\"_a0f1e2d3-c4b5-4a69-8877-665544332211\"".into(),
        " xmlns=\"urn:evil\"".into(),
        "<AttributeValue>arn:aws:iam::111122223333:role/Evil,arn:aws:iam::111122223333:saml-provider/EntraID</AttributeValue>".into(),
        "<NameID>admin@example.com</NameID>".into(),
        "</a>".into(),
        "\u{feff}".into(),
    ];
    let env = |k: &str, default: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let rounds = env("TRAILVAULT_MUTATION_ROUNDS", 400) as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(env("TRAILVAULT_MUTATION_SEED", 8));
    let mut accepted = 0;
    for i in 0..rounds {
        let doc = &docs[i % docs.len()];
        let mut xml = doc.clone();
        for _ in 0..rng.gen_range(1..=2) {
            let mut at = rng.gen_range(0..xml.len());
            while !xml.is_char_boundary(at) {
                at -= 1;
            }
            if rng.gen_bool(0.8) {
                xml.insert_str(at, &fragments[rng.gen_range(0..fragments.len())]);
            } else {
                let mut end = (at + rng.gen_range(1..40)).min(xml.len());
                while !xml.is_char_boundary(end) {
                    end -= 1;
                }
                xml.replace_range(at..end, "");
            }
        }
        let started = Instant::now();
        let got = check(&v, xml.as_bytes(), AT, None);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "mutation {i} took {:?}",
            started.elapsed()
        );
        if let Ok(ok) = got {
            accepted += 1;
            assert_eq!(ok.subject, "alice@example.com", "mutation {i}: {xml}");
            assert_eq!(ok.assertion_id, d.assertion_id, "mutation {i}: {xml}");
            assert_eq!(ok.roles.len(), 2, "mutation {i}: {xml}");
            assert_eq!(ok.groups, Some(vec![GROUP_ADMINS.to_string()]), "mutation {i}: {xml}");
        }
    }
    assert!(accepted < rounds, "no mutation was refused");
}
