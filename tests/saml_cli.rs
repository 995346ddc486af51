//! `trailvault saml validate` as a process: Entra-shaped responses signed by xmlsec1 are
//! accepted in every signing mode, one case per attack class of the reference is refused for
//! its reason, and hostile inputs open nothing, say nothing and stay within time and memory.
// Every test here validates a signature, which needs the `saml` feature.
#![cfg(feature = "saml")]

use trailvault_test_support as support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::saml::*;

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
