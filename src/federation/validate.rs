//! Validation of an Entra ID SAMLResponse for AWS console sign-in.
//!
//! Order: raw bytes (size, base64, DOCTYPE, structure, one assertion, algorithm
//! allow-list) -> samael/xmlsec signature reduction against the metadata's certs ->
//! every further check on the *signed* content only: status, issuer, destination,
//! subject confirmation, conditions, audience, time (injectable clock), attributes,
//! roles, session name and duration -> replay. The first failure is the reason.

use std::collections::BTreeSet;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode};
use serde::Serialize;

use super::replay::ReplayCache;
use super::roles::{arn_partition_account, is_provider_arn, is_role_arn, RoleMapping};
use super::xml::{self, Element, XmlError};

pub const ROLE_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/Role";
pub const SESSION_NAME_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/RoleSessionName";
pub const SESSION_DURATION_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/SessionDuration";
pub const GROUPS_ATTRIBUTE: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";
pub const GROUPS_OVERAGE_ATTRIBUTE: &str = "http://schemas.microsoft.com/claims/groups.link";
/// The STS limit on a posted SAMLResponse.
pub const MAX_BASE64_CHARS: usize = 100_000;

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Malformed,
    Doctype,
    Signature,
    Algorithm,
    Issuer,
    Audience,
    Recipient,
    Destination,
    Expired,
    NotYetValid,
    Status,
    MultipleAssertions,
    DuplicateAttribute,
    MissingCondition,
    RoleAttribute,
    SessionName,
    SessionDuration,
    Replay,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{reason:?}: {detail}")]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

fn reject<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection {
        reason,
        detail: detail.into(),
    })
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RolePair {
    pub role_arn: String,
    pub provider_arn: String,
    /// Granted to one of the user's groups by the role mapping.
    pub granted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub valid: bool,
    pub assertion_id: String,
    pub response_id: Option<String>,
    pub issuer: String,
    pub subject: String,
    pub session_name: String,
    pub session_duration: Option<u32>,
    /// Entra group object IDs; null when Entra sent the overage claim instead (too many groups).
    pub groups: Option<Vec<String>>,
    pub roles: Vec<RolePair>,
    /// SubjectConfirmationData's NotOnOrAfter.
    pub not_on_or_after: DateTime<Utc>,
    /// Which parts carried a verified signature.
    pub signed: Vec<&'static str>,
}

pub struct Validator {
    pub tenant_issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub certs: Vec<Vec<u8>>,
    pub allow_sha1: bool,
    pub clock_skew: Duration,
    pub roles: RoleMapping,
}

/// The posted form (base64, optionally `SAMLResponse=` and URL-encoded) or raw XML.
pub fn decode_input(input: &[u8]) -> Result<String, Rejection> {
    let text = std::str::from_utf8(input).map_err(|_| Rejection {
        reason: Reason::Malformed,
        detail: "input is not UTF-8".into(),
    })?;
    let trimmed = text.trim();
    if trimmed.starts_with('<') || trimmed.starts_with('\u{feff}') {
        return Ok(trimmed.to_string());
    }
    let b64: String = match trimmed.strip_prefix("SAMLResponse=") {
        Some(v) => url::form_urlencoded::parse(format!("v={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default(),
        None => trimmed.to_string(),
    };
    let b64: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if b64.len() > MAX_BASE64_CHARS {
        return reject(
            Reason::Malformed,
            format!(
                "{} base64 characters; AWS accepts at most {MAX_BASE64_CHARS}",
                b64.len()
            ),
        );
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .or_else(|e| reject(Reason::Malformed, format!("not strict base64: {e}")))?;
    String::from_utf8(bytes).or_else(|_| reject(Reason::Malformed, "decoded SAMLResponse is not UTF-8"))
}

fn xml_err(e: XmlError) -> Rejection {
    match e {
        XmlError::Doctype => Rejection {
            reason: Reason::Doctype,
            detail: e.to_string(),
        },
        XmlError::Malformed(m) => Rejection {
            reason: Reason::Malformed,
            detail: m,
        },
    }
}

fn parse_time(el: &Element, attr: &str) -> Result<Option<DateTime<Utc>>, Rejection> {
    match el.attr(attr) {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .or_else(|_| reject(Reason::Malformed, format!("{}@{attr} {v:?} is not a time", el.name))),
    }
}

/// AWS sign-in endpoints: global, regional, regional with `/acs/<id>`, and the other partitions.
pub fn is_aws_signin_endpoint(url: &str) -> bool {
    const GLOBAL: [&str; 3] = [
        "https://signin.aws.amazon.com/saml",
        "https://signin.amazonaws.cn/saml",
        "https://signin.amazonaws-us-gov.com/saml",
    ];
    if GLOBAL.contains(&url) {
        return true;
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let Some((region, path)) = rest.split_once(".signin.aws.amazon.com/saml") else {
        return false;
    };
    let region_ok = !region.is_empty()
        && region.split('-').count() >= 3
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let path_ok = path.is_empty()
        || path
            .strip_prefix("/acs/")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    region_ok && path_ok
}

fn session_name_ok(s: &str) -> bool {
    (2..=64).contains(&s.chars().count()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

impl Validator {
    pub fn validate(
        &self,
        xml_text: &str,
        at: DateTime<Utc>,
        replay: Option<&mut ReplayCache>,
    ) -> Result<Accepted, Rejection> {
        // 1. Raw structure, before any crypto.
        let lowered = xml_text.to_ascii_lowercase();
        if lowered.contains("<!doctype") || lowered.contains("<!entity") {
            return reject(Reason::Doctype, "the XML has a DOCTYPE or ENTITY declaration");
        }
        let raw = xml::parse(xml_text).map_err(xml_err)?;
        if raw.name != "Response" {
            return reject(
                Reason::Malformed,
                format!("the root element is {}, not a samlp:Response", raw.name),
            );
        }
        if raw.attr("Version") != Some("2.0") {
            return reject(Reason::Malformed, "the Response is not SAML Version 2.0");
        }
        if raw.count("EncryptedAssertion") > 0 {
            return reject(Reason::Malformed, "encrypted assertions are not supported");
        }
        match raw.count("Assertion") {
            0 => return reject(Reason::Malformed, "the Response carries no Assertion"),
            1 => {}
            n => {
                return reject(
                    Reason::MultipleAssertions,
                    format!("the Response carries {n} Assertion elements"),
                )
            }
        }
        self.check_algorithms(&raw)?;

        // 2. Signatures: only what xmlsec verified against the trusted certs survives.
        let signed_xml = self.reduce(xml_text)?;
        let signed = xml::parse(&signed_xml).map_err(|e| Rejection {
            reason: Reason::Signature,
            detail: format!("signed content does not parse: {e}"),
        })?;
        let (response_signed, assertion) = match signed.name.as_str() {
            "Response" => (true, signed.child("Assertion")),
            "Assertion" => (false, Some(&signed)),
            _ => (false, None),
        };
        let Some(assertion) = assertion else {
            return reject(Reason::Signature, "no signature covers the Assertion");
        };
        if signed.count("Assertion") != 1 {
            return reject(
                Reason::MultipleAssertions,
                "the signed content carries more than one Assertion",
            );
        }
        let raw_assertion = raw.child("Assertion");
        let assertion_id = assertion.attr("ID").unwrap_or_default().to_string();
        if raw_assertion.and_then(|a| a.attr("ID")) != Some(assertion_id.as_str()) {
            return reject(
                Reason::Signature,
                "the signed Assertion is not the one the Response carries",
            );
        }
        let assertion_signed = assertion.child("Signature").is_some();
        // Response-level fields come from the signed Response when there is one.
        let response = if response_signed { &signed } else { &raw };

        // 3. Status.
        let status = response
            .child("Status")
            .and_then(|s| s.child("StatusCode"))
            .and_then(|c| c.attr("Value"))
            .unwrap_or_default();
        if !status.ends_with(":status:Success") {
            return reject(Reason::Status, format!("status is {status:?}, not Success"));
        }

        // 4. Issuer, on the Assertion and on the Response when it has one.
        let issuer = assertion
            .child("Issuer")
            .map(|i| i.text.trim().to_string())
            .unwrap_or_default();
        if !self.tenant_issuers.contains(&issuer) {
            return reject(
                Reason::Issuer,
                format!("issuer {issuer:?} is not the configured Entra tenant"),
            );
        }
        if let Some(ri) = response.child("Issuer") {
            if ri.text.trim() != issuer {
                return reject(
                    Reason::Issuer,
                    format!("the Response issuer {:?} differs from the Assertion's", ri.text.trim()),
                );
            }
        }

        // 5. Destination.
        if let Some(dest) = response.attr("Destination") {
            if !is_aws_signin_endpoint(dest) {
                return reject(
                    Reason::Destination,
                    format!("Destination {dest:?} is not an AWS sign-in endpoint"),
                );
            }
        }

        // 6. Subject and its one bearer confirmation.
        let subject = assertion.child("Subject").ok_or_else(|| Rejection {
            reason: Reason::Malformed,
            detail: "the Assertion has no Subject".into(),
        })?;
        let name_id = subject.child("NameID").ok_or_else(|| Rejection {
            reason: Reason::Malformed,
            detail: "the Subject has no NameID".into(),
        })?;
        if name_id.text_interrupted || !name_id.children.is_empty() {
            return reject(Reason::Malformed, "the NameID text is split by a comment or markup");
        }
        let subject_name = name_id.text.trim().to_string();
        if subject_name.is_empty() {
            return reject(Reason::Malformed, "the NameID is empty");
        }
        let bearer: Vec<&Element> = subject
            .children_named("SubjectConfirmation")
            .filter(|c| c.attr("Method") == Some("urn:oasis:names:tc:SAML:2.0:cm:bearer"))
            .collect();
        if bearer.len() != 1 {
            return reject(
                Reason::Recipient,
                format!("{} bearer SubjectConfirmations; AWS needs exactly one", bearer.len()),
            );
        }
        let scd = bearer[0].child("SubjectConfirmationData").ok_or_else(|| Rejection {
            reason: Reason::MissingCondition,
            detail: "the SubjectConfirmation has no SubjectConfirmationData".into(),
        })?;
        let recipient = scd.attr("Recipient").unwrap_or_default();
        if !is_aws_signin_endpoint(recipient) {
            return reject(
                Reason::Recipient,
                format!("Recipient {recipient:?} is not an AWS sign-in endpoint"),
            );
        }
        let Some(scd_not_on_or_after) = parse_time(scd, "NotOnOrAfter")? else {
            return reject(Reason::MissingCondition, "SubjectConfirmationData has no NotOnOrAfter");
        };

        // 7. Conditions and audience.
        let conditions = assertion.child("Conditions").ok_or_else(|| Rejection {
            reason: Reason::MissingCondition,
            detail: "the Assertion has no Conditions".into(),
        })?;
        let (Some(not_before), Some(not_on_or_after)) = (
            parse_time(conditions, "NotBefore")?,
            parse_time(conditions, "NotOnOrAfter")?,
        ) else {
            return reject(Reason::MissingCondition, "Conditions need NotBefore and NotOnOrAfter");
        };
        let restrictions: Vec<&Element> = conditions.children_named("AudienceRestriction").collect();
        if restrictions.is_empty() {
            return reject(Reason::MissingCondition, "Conditions have no AudienceRestriction");
        }
        for r in &restrictions {
            let ok = r
                .children_named("Audience")
                .any(|a| self.audiences.iter().any(|x| x == a.text.trim()));
            if !ok {
                let got: Vec<&str> = r.children_named("Audience").map(|a| a.text.trim()).collect();
                return reject(
                    Reason::Audience,
                    format!("audience {got:?} is not one of {:?}", self.audiences),
                );
            }
        }

        // 8. Time, with skew, at the chosen instant.
        let skew = self.clock_skew;
        if at + skew < not_before {
            return reject(Reason::NotYetValid, format!("valid from {not_before}, checked at {at}"));
        }
        if let Some(t) = parse_time(scd, "NotBefore")? {
            if at + skew < t {
                return reject(
                    Reason::NotYetValid,
                    format!("subject confirmation valid from {t}, checked at {at}"),
                );
            }
        }
        if let Some(issued) = parse_time(assertion, "IssueInstant")? {
            if issued > at + skew {
                return reject(
                    Reason::NotYetValid,
                    format!("issued at {issued}, in the future of {at}"),
                );
            }
        }
        if at - skew >= not_on_or_after {
            return reject(
                Reason::Expired,
                format!("Conditions ended at {not_on_or_after}, checked at {at}"),
            );
        }
        if at - skew >= scd_not_on_or_after {
            return reject(
                Reason::Expired,
                format!("subject confirmation ended at {scd_not_on_or_after}, checked at {at}"),
            );
        }

        // 9. Attributes.
        let mut names = BTreeSet::new();
        let mut attributes: Vec<(&str, Vec<String>)> = Vec::new();
        for stmt in assertion.children_named("AttributeStatement") {
            for a in stmt.children_named("Attribute") {
                let name = a.attr("Name").unwrap_or_default();
                if !names.insert(name) {
                    return reject(
                        Reason::DuplicateAttribute,
                        format!("attribute {name} appears more than once"),
                    );
                }
                let mut values = Vec::new();
                for v in a.children_named("AttributeValue") {
                    if v.text_interrupted {
                        return reject(Reason::Malformed, format!("a value of {name} is split by a comment"));
                    }
                    values.push(v.text.trim().to_string());
                }
                attributes.push((name, values));
            }
        }
        let attr = |n: &str| attributes.iter().find(|(k, _)| *k == n).map(|(_, v)| v);
        let role_values = attr(ROLE_ATTRIBUTE)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Rejection {
                reason: Reason::RoleAttribute,
                detail: format!("no {ROLE_ATTRIBUTE} attribute"),
            })?;
        let groups: Option<Vec<String>> = if attr(GROUPS_OVERAGE_ATTRIBUTE).is_some() {
            None
        } else {
            Some(attr(GROUPS_ATTRIBUTE).cloned().unwrap_or_default())
        };
        let group_set: BTreeSet<String> = groups.iter().flatten().map(|g| g.to_ascii_lowercase()).collect();
        let mut roles = Vec::new();
        for v in role_values {
            let parts: Vec<&str> = v.split(',').map(str::trim).collect();
            let [a, b] = parts[..] else {
                return reject(Reason::RoleAttribute, format!("role value {v:?} is not a pair of ARNs"));
            };
            let (role, provider) = if is_role_arn(a) && is_provider_arn(b) {
                (a, b)
            } else if is_role_arn(b) && is_provider_arn(a) {
                (b, a)
            } else {
                return reject(
                    Reason::RoleAttribute,
                    format!("role value {v:?} needs one :role/ and one :saml-provider/ ARN"),
                );
            };
            if arn_partition_account(role) != arn_partition_account(provider) {
                return reject(
                    Reason::RoleAttribute,
                    format!("role and provider of {v:?} are in different accounts or partitions"),
                );
            }
            roles.push(RolePair {
                role_arn: role.to_string(),
                provider_arn: provider.to_string(),
                granted: self.roles.grants_role_to(&group_set, role),
            });
        }
        let session_name = attr(SESSION_NAME_ATTRIBUTE)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default();
        if !session_name_ok(&session_name) {
            return reject(
                Reason::SessionName,
                format!("RoleSessionName {session_name:?} must be 2-64 of [A-Za-z0-9_+=,.@-]"),
            );
        }
        let session_duration = match attr(SESSION_DURATION_ATTRIBUTE).and_then(|v| v.first()) {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(d) if (900..=43200).contains(&d) => Some(d),
                _ => {
                    return reject(
                        Reason::SessionDuration,
                        format!("SessionDuration {v:?} must be 900-43200 seconds"),
                    )
                }
            },
        };

        // 10. Replay: an assertion is good once inside its validity window.
        if let Some(cache) = replay {
            let until = not_on_or_after.max(scd_not_on_or_after);
            if !cache.check_and_remember(&assertion_id, until, at) {
                return reject(
                    Reason::Replay,
                    format!("assertion {assertion_id} was already presented"),
                );
            }
        }
        tracing::debug!(assertion_id, subject = subject_name, "SAML response accepted");
        let mut signed_parts = Vec::new();
        if response_signed {
            signed_parts.push("response");
        }
        if assertion_signed {
            signed_parts.push("assertion");
        }
        Ok(Accepted {
            valid: true,
            assertion_id,
            response_id: raw.attr("ID").map(str::to_string),
            issuer,
            subject: subject_name,
            session_name,
            session_duration,
            groups,
            roles,
            not_on_or_after: scd_not_on_or_after,
            signed: signed_parts,
        })
    }

    /// RSA-SHA256 (RSA-SHA1 only when allowed) and the matching digests; no HMAC.
    fn check_algorithms(&self, raw: &Element) -> Result<(), Rejection> {
        let mut methods = Vec::new();
        raw.descendants("SignatureMethod", &mut methods);
        if methods.is_empty() {
            return reject(Reason::Signature, "the Response is not signed");
        }
        for m in methods {
            let alg = m.attr("Algorithm").unwrap_or_default();
            let ok = alg == RSA_SHA256 || (self.allow_sha1 && alg == RSA_SHA1);
            if !ok {
                return reject(Reason::Algorithm, format!("signature algorithm {alg} is not allowed"));
            }
        }
        let mut digests = Vec::new();
        raw.descendants("DigestMethod", &mut digests);
        for d in digests {
            let alg = d.attr("Algorithm").unwrap_or_default();
            let ok = alg == SHA256 || (self.allow_sha1 && alg == SHA1);
            if !ok {
                return reject(Reason::Algorithm, format!("digest algorithm {alg} is not allowed"));
            }
        }
        Ok(())
    }

    fn reduce(&self, xml_text: &str) -> Result<String, Rejection> {
        if self.certs.is_empty() {
            return reject(Reason::Signature, "no trusted signing certificate is configured");
        }
        let certs: Vec<CertificateDer> = self.certs.iter().cloned().map(CertificateDer::from).collect();
        // SHA-1 is not in samael's allow-list; our own check above already limited the algorithms.
        let allowed: Option<&[AllowedSignatureAlgorithm]> = if self.allow_sha1 {
            None
        } else {
            Some(&[AllowedSignatureAlgorithm::RsaSha256])
        };
        let text = xml_text.to_string();
        // samael may panic on hostile input in versions before its fix; never let it take us down.
        let result = std::panic::catch_unwind(move || {
            Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                &text,
                &certs,
                ReduceMode::ValidateAndMarkNoAncestors,
                allowed,
            )
        });
        match result {
            Ok(Ok(signed)) => Ok(signed),
            Ok(Err(e)) => reject(Reason::Signature, format!("signature verification failed: {e}")),
            Err(_) => reject(Reason::Signature, "signature verification failed on malformed input"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_endpoints() {
        assert!(is_aws_signin_endpoint("https://signin.aws.amazon.com/saml"));
        assert!(is_aws_signin_endpoint("https://eu-west-1.signin.aws.amazon.com/saml"));
        assert!(is_aws_signin_endpoint(
            "https://us-gov-west-1.signin.aws.amazon.com/saml/acs/SAMLSPD0000000000"
        ));
        assert!(!is_aws_signin_endpoint("https://signin.aws.amazon.com.evil.com/saml"));
        assert!(!is_aws_signin_endpoint("https://evil.com/.signin.aws.amazon.com/saml"));
        assert!(!is_aws_signin_endpoint("http://signin.aws.amazon.com/saml"));
    }

    #[test]
    fn session_names() {
        assert!(session_name_ok("alice@example.com"));
        assert!(!session_name_ok("a"));
        assert!(!session_name_ok("alice smith"));
        assert!(!session_name_ok(&"a".repeat(65)));
    }

    #[test]
    fn input_forms() {
        let xml = "<samlp:Response/>";
        let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
        assert_eq!(decode_input(xml.as_bytes()).unwrap(), xml);
        assert_eq!(decode_input(b64.as_bytes()).unwrap(), xml);
        let form = format!(
            "SAMLResponse={}",
            url::form_urlencoded::byte_serialize(b64.as_bytes()).collect::<String>()
        );
        assert_eq!(decode_input(form.as_bytes()).unwrap(), xml);
        assert_eq!(decode_input(b"!!notbase64").unwrap_err().reason, Reason::Malformed);
        assert_eq!(
            decode_input("A".repeat(MAX_BASE64_CHARS + 4).as_bytes())
                .unwrap_err()
                .reason,
            Reason::Malformed
        );
    }
}
