//! Entra-shaped SAMLResponses signed by the xmlsec1 command (an implementation
//! independent of the one under test), with certificates made by openssl.

use std::path::{Path, PathBuf};
use std::process::Command;

use trailvault::federation::replay::ReplayCache;
use trailvault::federation::roles::RoleMapping;
use trailvault::federation::validate::{decode_input, Accepted, Rejection, Validator};

pub const TENANT: &str = "3b3c1a6e-8f0d-4a51-9c2e-0d5e7a9b1c2d";
pub const ACCOUNT: &str = "111122223333";
pub const GROUP_ADMINS: &str = "0a0a0a0a-1111-2222-3333-444444444444";

pub fn issuer() -> String {
    format!("https://sts.windows.net/{TENANT}/")
}

pub fn role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

pub fn provider() -> String {
    format!("arn:aws:iam::{ACCOUNT}:saml-provider/EntraID")
}

pub fn tools_available() -> bool {
    let ok =
        |c: &str| Command::new(c).arg("version").output().is_ok() || Command::new(c).arg("--version").output().is_ok();
    super::emulators::require("xmlsec1 and openssl", ok("xmlsec1") && ok("openssl"))
}

/// A signing identity: key and self-signed certificate, as Entra makes them.
pub struct Identity {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub cert_b64: String,
}

impl Identity {
    pub fn new(dir: &Path, name: &str) -> Identity {
        let key = dir.join(format!("{name}.key.pem"));
        let cert = dir.join(format!("{name}.cert.pem"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1095",
                "-subj",
                "/CN=Microsoft Azure Federated SSO Certificate",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let pem = std::fs::read_to_string(&cert).unwrap();
        let cert_b64 = pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>();
        Identity { key, cert, cert_b64 }
    }
}

pub fn metadata(certs: &[&Identity]) -> String {
    let kds: String = certs
        .iter()
        .map(|c| format!(r#"<KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>{}</X509Certificate></X509Data></KeyInfo></KeyDescriptor>"#, c.cert_b64))
        .collect();
    format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><EntityDescriptor ID=\"_m\" entityID=\"{}\" xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\"><IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{kds}<SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"https://login.microsoftonline.com/{TENANT}/saml2\"/></IDPSSODescriptor></EntityDescriptor>",
        issuer()
    )
}

#[derive(Clone)]
pub struct Spec {
    pub response_id: String,
    pub assertion_id: String,
    pub issue_instant: String,
    pub not_before: String,
    pub not_on_or_after: String,
    pub scd_not_on_or_after: String,
    pub issuer: String,
    pub destination: Option<String>,
    pub recipient: String,
    pub audience: String,
    pub name_id: String,
    pub status: String,
    pub attributes: Vec<(String, Vec<String>)>,
    pub conditions: bool,
    pub signature_method: String,
    pub digest_method: String,
}

pub const AT: &str = "2026-11-25T10:01:00Z";

impl Default for Spec {
    fn default() -> Self {
        Spec {
            response_id: "_r6a1d0c3e-2b4f-4a5e-9f8d-7c6b5a4e3d2c".into(),
            assertion_id: "_a0f1e2d3-c4b5-4a69-8877-665544332211".into(),
            issue_instant: "2026-11-25T10:00:00.000Z".into(),
            not_before: "2026-11-25T09:55:00.000Z".into(),
            not_on_or_after: "2026-11-25T11:05:00.000Z".into(),
            scd_not_on_or_after: "2026-11-25T10:05:00.000Z".into(),
            issuer: issuer(),
            destination: Some("https://signin.aws.amazon.com/saml".into()),
            recipient: "https://signin.aws.amazon.com/saml".into(),
            audience: "https://signin.aws.amazon.com/saml".into(),
            name_id: "alice@example.com".into(),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            attributes: vec![
                (
                    "http://schemas.microsoft.com/identity/claims/tenantid".into(),
                    vec![TENANT.into()],
                ),
                (
                    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups".into(),
                    vec![GROUP_ADMINS.into()],
                ),
                (
                    "https://aws.amazon.com/SAML/Attributes/Role".into(),
                    vec![
                        format!("{},{}", role("Admin"), provider()),
                        format!("{},{}", provider(), role("Auditor")),
                    ],
                ),
                (
                    "https://aws.amazon.com/SAML/Attributes/RoleSessionName".into(),
                    vec!["alice@example.com".into()],
                ),
                (
                    "https://aws.amazon.com/SAML/Attributes/SessionDuration".into(),
                    vec!["3600".into()],
                ),
            ],
            conditions: true,
            signature_method: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256".into(),
            digest_method: "http://www.w3.org/2001/04/xmlenc#sha256".into(),
        }
    }
}

pub fn signature_template(spec: &Spec, reference: &str) -> String {
    format!(
        r##"<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo><CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><SignatureMethod Algorithm="{}"/><Reference URI="#{reference}"><Transforms><Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms><DigestMethod Algorithm="{}"/><DigestValue></DigestValue></Reference></SignedInfo><SignatureValue></SignatureValue><KeyInfo><X509Data></X509Data></KeyInfo></Signature>"##,
        spec.signature_method, spec.digest_method
    )
}

/// The Assertion element (with a signature template when `signed`).
pub fn assertion(spec: &Spec, signed: bool) -> String {
    let attrs: String = spec
        .attributes
        .iter()
        .map(|(name, values)| {
            let vs: String = values
                .iter()
                .map(|v| format!("<AttributeValue>{v}</AttributeValue>"))
                .collect();
            format!(r#"<Attribute Name="{name}">{vs}</Attribute>"#)
        })
        .collect();
    let conditions = if spec.conditions {
        format!(
            r#"<Conditions NotBefore="{}" NotOnOrAfter="{}"><AudienceRestriction><Audience>{}</Audience></AudienceRestriction></Conditions>"#,
            spec.not_before, spec.not_on_or_after, spec.audience
        )
    } else {
        String::new()
    };
    format!(
        r#"<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" IssueInstant="{ii}" Version="2.0"><Issuer>{issuer}</Issuer>{sig}<Subject><NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name}</NameID><SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><SubjectConfirmationData NotOnOrAfter="{scd}" Recipient="{recipient}"/></SubjectConfirmation></Subject>{conditions}<AttributeStatement>{attrs}</AttributeStatement><AuthnStatement AuthnInstant="{ii}" SessionIndex="{id}"><AuthnContext><AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</AuthnContextClassRef></AuthnContext></AuthnStatement></Assertion>"#,
        id = spec.assertion_id,
        ii = spec.issue_instant,
        issuer = spec.issuer,
        sig = if signed {
            signature_template(spec, &spec.assertion_id)
        } else {
            String::new()
        },
        name = spec.name_id,
        scd = spec.scd_not_on_or_after,
        recipient = spec.recipient,
    )
}

pub fn response(spec: &Spec, sign_response_template: bool, assertion_xml: &str) -> String {
    let dest = spec
        .destination
        .as_ref()
        .map(|d| format!(r#" Destination="{d}""#))
        .unwrap_or_default();
    format!(
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="{id}" Version="2.0" IssueInstant="{ii}"{dest}><Issuer xmlns="urn:oasis:names:tc:SAML:2.0:assertion">{issuer}</Issuer>{sig}<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>{assertion_xml}</samlp:Response>"#,
        id = spec.response_id,
        ii = spec.issue_instant,
        issuer = spec.issuer,
        sig = if sign_response_template {
            signature_template(spec, &spec.response_id)
        } else {
            String::new()
        },
        status = spec.status,
    )
}

/// Fills the first Signature template in `xml` with xmlsec1.
pub fn xmlsec_sign(dir: &Path, who: &Identity, xml: &str) -> String {
    let n = rand::random::<u32>();
    let input = dir.join(format!("unsigned-{n}.xml"));
    let output = dir.join(format!("signed-{n}.xml"));
    std::fs::write(&input, xml).unwrap();
    let out = Command::new("xmlsec1")
        .arg("--sign")
        .arg("--privkey-pem")
        .arg(format!("{},{}", who.key.display(), who.cert.display()))
        .args(["--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"])
        .args(["--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response"])
        .arg("--output")
        .arg(&output)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xmlsec1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = std::fs::read_to_string(&output).unwrap();
    // xmlsec1 writes an XML declaration and a trailing newline; Entra sends neither.
    signed
        .trim()
        .trim_start_matches(r#"<?xml version="1.0"?>"#)
        .trim()
        .to_string()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Signed {
    Assertion,
    Response,
    Both,
}

pub fn signed_response(dir: &Path, who: &Identity, spec: &Spec, how: Signed) -> String {
    match how {
        Signed::Assertion => {
            let a = xmlsec_sign(dir, who, &assertion(spec, true));
            response(spec, false, &a)
        }
        Signed::Response => xmlsec_sign(dir, who, &response(spec, true, &assertion(spec, false))),
        Signed::Both => {
            let a = xmlsec_sign(dir, who, &assertion(spec, true));
            xmlsec_sign(dir, who, &response(spec, true, &a))
        }
    }
}

/// Like [`signed_response`], with edits applied to the assertion and response templates
/// before xmlsec1 signs them (so the edited content carries a valid signature).
pub fn signed_edited(
    dir: &Path,
    who: &Identity,
    spec: &Spec,
    how: Signed,
    edit_assertion: &dyn Fn(String) -> String,
    edit_response: &dyn Fn(String) -> String,
) -> String {
    let a = edit_assertion(assertion(spec, how != Signed::Response));
    let a = if how == Signed::Response {
        a
    } else {
        xmlsec_sign(dir, who, &a)
    };
    let r = edit_response(response(spec, how != Signed::Assertion, &a));
    if how == Signed::Assertion {
        r
    } else {
        xmlsec_sign(dir, who, &r)
    }
}

/// The DER bytes of an identity's certificate (what the metadata carries).
pub fn cert_der(who: &Identity) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(&who.cert_b64).unwrap()
}

/// `n` distinct Entra group object IDs, the first the admins' group.
pub fn many_groups(n: usize) -> Vec<String> {
    let mut v = vec![GROUP_ADMINS.to_string()];
    v.extend((1..n).map(|i| format!("{i:08x}-aaaa-4bbb-8ccc-{i:012x}")));
    v
}

// Fixtures the library table and the command-line tests share.

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub idp: Identity,
    pub config: PathBuf,
}

pub const ROLES: &str = r#"
[[grant]]
group = "0a0a0a0a-1111-2222-3333-444444444444"
name = "aws-admins"
roles = ["arn:aws:iam::111122223333:role/Admin"]

[[grant]]
group = "0b0b0b0b-1111-2222-3333-444444444444"
name = "aws-auditors"
roles = ["arn:aws:iam::111122223333:role/Auditor"]
"#;

pub fn fixture() -> Option<Fixture> {
    if !tools_available() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let idp = Identity::new(dir.path(), "entra");
    let config = write_config(dir.path(), &metadata(&[&idp]), false);
    Some(Fixture { dir, idp, config })
}

pub fn write_config(dir: &Path, metadata: &str, allow_sha1: bool) -> PathBuf {
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

pub fn b64(xml: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(xml).into_bytes()
}

pub fn validator(idp: &Identity) -> Validator {
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

pub fn at(t: &str) -> chrono::DateTime<chrono::Utc> {
    t.parse().unwrap()
}

pub fn check(v: &Validator, input: &[u8], when: &str, cache: Option<&mut ReplayCache>) -> Result<Accepted, Rejection> {
    decode_input(input).and_then(|xml| v.validate(&xml, at(when), cache))
}

/// A Signature's transform list with `extra` transforms after enveloped-signature.
pub fn with_transform(xml: &str, extra: &str) -> String {
    let env = r#"<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#;
    assert!(xml.contains(env));
    xml.replacen(env, &format!("{env}{extra}"), 1)
}

pub fn nested(tag: &str, depth: usize) -> String {
    format!(
        "{}{}",
        format!("<{tag}>").repeat(depth),
        format!("</{tag}>").repeat(depth)
    )
}

/// Inserts `extra` right after the Response's Issuer (where Extensions would sit).
pub fn after_response_issuer(xml: &str, extra: &str) -> String {
    let i = xml.find("</Issuer>").unwrap() + "</Issuer>".len();
    format!("{}{extra}{}", &xml[..i], &xml[i..])
}

pub const DSIG_DEFAULT: &str = "xmlns=\"http://www.w3.org/2000/09/xmldsig#\"";
pub const DSIG_ESCAPED: &str = "xmlns=\"http://www.w3.org/2000/09/xmldsig&#35;\"";

/// A Signature (prefixed `ds:`) hidden in the document, its namespace written as given and
/// its Reference pointing at `uri`.
pub fn hidden_signature(ns_decl: &str, uri: &str) -> String {
    format!(
        r#"<ds:Signature {ns_decl}><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="{uri}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AA==</ds:SignatureValue></ds:Signature>"#
    )
}
