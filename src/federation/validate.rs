//! Validation of an Entra ID SAMLResponse for AWS console sign-in.
//!
//! Order: input form and size (base64, form body or XML, UTF-8) -> DOCTYPE -> the streaming
//! pre-screen (limits, namespaces, signature shape: see `prescreen`) -> structure (a SAML 2.0
//! Response with one Assertion) -> algorithm allow-list -> samael/xmlsec signature reduction
//! against the metadata's certs (the `xmlsec` edge, hardened: see `xmlsec::guard`) -> every further check on the
//! *signed* content only, namespace-aware and over every value: status, issuer, destination,
//! subject confirmation, conditions, audience, authentication statement, time (injectable
//! clock), attributes, roles, session name and duration -> grant (optional) -> replay. The
//! first failure is the reason; every refusal is logged once at WARN.

use std::collections::BTreeSet;

use base64::Engine;
use chrono::{DateTime, Utc};

use super::claims::{self, one_child, plain_text, Attributes};
pub use super::claims::{is_aws_signin_endpoint, is_region_shape, saml_time};
use super::detail::short;
use super::prescreen::{self, NS_ASSERTION, NS_DSIG, NS_PROTOCOL, RSA_SHA1, RSA_SHA256, SHA1, SHA256};
use super::replay::ReplayCache;
use super::xml::{self, Element};
use crate::xmlsec::ReduceError;

pub use super::outcome::*;

pub(super) fn reject<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection {
        reason,
        detail: detail.into(),
    })
}

pub(super) fn rejection(reason: Reason, detail: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        detail: detail.into(),
    }
}

/// Logs a refusal once, at WARN: reason, assertion ID and issuer (when known), never contents.
fn log_refusal(r: &Rejection, assertion_id: Option<&str>, issuer: Option<&str>) {
    tracing::warn!(
        reason = r.reason.as_str(),
        assertion_id = assertion_id.map(short).unwrap_or_default(),
        issuer = issuer.map(short).unwrap_or_default(),
        "SAML response refused"
    );
}

/// The posted form or raw XML, as text: base64; a form body (`SAMLResponse=…`, any field
/// order, `+` and `%XX` decoded as forms are); or XML. Every form has its size cap; the result
/// is UTF-8. A refusal is logged.
pub fn decode_input(input: &[u8]) -> Result<String, Rejection> {
    let result = decode(input);
    if let Err(r) = &result {
        log_refusal(r, None, None);
    }
    result
}

fn decode(input: &[u8]) -> Result<String, Rejection> {
    if input.len() > MAX_INPUT_BYTES {
        return reject(
            Reason::Malformed,
            format!("{} bytes of input; at most {MAX_INPUT_BYTES} are read", input.len()),
        );
    }
    let text = std::str::from_utf8(input).map_err(|_| rejection(Reason::Malformed, "input is not UTF-8"))?;
    let trimmed = text.trim();
    if trimmed.starts_with('<') || trimmed.starts_with('\u{feff}') {
        if trimmed.len() > MAX_XML_BYTES {
            return reject(
                Reason::Malformed,
                format!("{} bytes of XML; at most {MAX_XML_BYTES} are accepted", trimmed.len()),
            );
        }
        return Ok(trimmed.to_string());
    }
    let is_form = trimmed.contains('&') || trimmed.trim_end_matches('=').contains('=');
    let b64: String = if is_form {
        let mut values = url::form_urlencoded::parse(trimmed.as_bytes())
            .filter(|(k, _)| k == "SAMLResponse")
            .map(|(_, v)| v.into_owned());
        let first = values.next();
        if values.next().is_some() {
            return reject(Reason::Malformed, "the form body has more than one SAMLResponse field");
        }
        first.ok_or_else(|| rejection(Reason::Malformed, "the form body has no SAMLResponse field"))?
    } else {
        trimmed.to_string()
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
        .map_err(|e| rejection(Reason::Malformed, format!("not strict base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| rejection(Reason::Malformed, "the decoded SAMLResponse is not UTF-8"))
}

/// What the log line of a refusal names, filled in as soon as it is known.
type Seen = prescreen::Identified;

impl Validator {
    /// Validates one SAMLResponse (as text; see [`decode_input`]) at the instant `at`.
    /// A refusal is logged once at WARN.
    pub fn validate(
        &self,
        xml_text: &str,
        at: DateTime<Utc>,
        replay: Option<&mut ReplayCache>,
    ) -> Result<Accepted, Rejection> {
        let mut seen = Seen::default();
        let result = self.check(xml_text, at, replay, &mut seen);
        if let Err(r) = &result {
            log_refusal(r, seen.assertion_id.as_deref(), seen.issuer.as_deref());
        }
        result
    }

    /// The steps in order; the first refusal is the reason.
    fn check(
        &self,
        xml_text: &str,
        at: DateTime<Utc>,
        replay: Option<&mut ReplayCache>,
        seen: &mut Seen,
    ) -> Result<Accepted, Rejection> {
        let raw = self.screen(xml_text, seen)?;
        let raw_assertion = structure(&raw, seen)?;
        self.check_algorithms(&raw)?;
        let signed = self.verify(&raw, raw_assertion)?;
        let assertion = signed.assertion()?;
        let response = if signed.response_signed { &signed.tree } else { &raw };
        claims::check_status(response)?;
        let issuer = self.check_issuer(assertion, response, seen)?;
        claims::check_destination(response, signed.response_signed)?;
        let subject = claims::subject(assertion)?;
        let window = claims::conditions(assertion, &self.audiences)?;
        claims::one_authn_statement(assertion)?;
        claims::check_time(assertion, &subject, &window, at, self.clock_skew)?;
        let attributes = claims::attributes(assertion)?;
        let (groups, roles) = self.roles(&attributes)?;
        let session_name = claims::session_name(&attributes)?;
        let session_duration = claims::session_duration(&attributes)?;
        self.check_grant(&roles)?;
        let assertion_id = assertion.attr("ID").unwrap_or_default().to_string();
        let remember_until = window.not_on_or_after.max(subject.not_on_or_after) + self.clock_skew;
        check_replay(replay, &assertion_id, remember_until, at)?;
        tracing::debug!(assertion_id, subject = subject.name, "SAML response accepted");
        Ok(Accepted {
            valid: true,
            assertion_id,
            response_id: response.attr("ID").map(str::to_string),
            issuer,
            subject: subject.name,
            session_name,
            session_duration,
            groups,
            roles,
            not_on_or_after: subject.not_on_or_after,
            signed: signed.parts(),
            remember_until,
        })
    }

    /// Step 1, Raw bytes, then the one parse: the tree every later step reads and whose
    /// serialisation xmlsec verifies, checked element by element as it is read.
    fn screen(&self, xml_text: &str, seen: &mut Seen) -> Result<Element, Rejection> {
        if xml_text.len() > MAX_XML_BYTES {
            return reject(
                Reason::Malformed,
                format!("{} bytes of XML; at most {MAX_XML_BYTES} are accepted", xml_text.len()),
            );
        }
        let lowered = xml_text.to_ascii_lowercase();
        if lowered.contains("<!doctype") || lowered.contains("<!entity") {
            return reject(Reason::Doctype, "the XML has a DOCTYPE or ENTITY declaration");
        }
        prescreen::prescreen_noting(xml_text, self.allow_sha1, seen)
    }

    /// Step 3, Signatures: only what xmlsec verified against the trusted certs survives. xmlsec
    /// reads the tree trailvault checked, never the input's own spelling of it.
    fn verify(&self, raw: &Element, raw_assertion: &Element) -> Result<Signed, Rejection> {
        // Counted in the one tree; every Signature in it is verified by the reduction.
        let response_signed = raw.children_in(NS_DSIG, "Signature").next().is_some();
        let assertion_signed = raw_assertion.children_in(NS_DSIG, "Signature").next().is_some();
        if !response_signed && !assertion_signed {
            return reject(Reason::Signature, "neither the Response nor the Assertion is signed");
        }
        let signed_xml = self.reduce(&raw.to_xml())?;
        let tree = xml::parse(&signed_xml)
            .map_err(|e| rejection(Reason::Signature, format!("signed content does not parse: {e}")))?;
        let signed = Signed {
            tree,
            response_signed,
            assertion_signed,
        };
        let assertion = signed.assertion()?;
        let mut signed_assertions = Vec::new();
        signed.tree.descendants("Assertion", &mut signed_assertions);
        if signed_assertions.len() != 1 {
            return reject(
                Reason::MultipleAssertions,
                "the signed content carries more than one Assertion",
            );
        }
        if raw_assertion.attr("ID") != assertion.attr("ID") {
            return reject(
                Reason::Signature,
                "the signed Assertion is not the one the Response carries",
            );
        }
        if assertion.attr("Version") != Some("2.0") {
            return reject(Reason::Malformed, "the signed Assertion is not SAML Version 2.0");
        }
        Ok(signed)
    }

    /// Step 5, Issuer, on the Assertion and on the Response when it has one.
    fn check_issuer(&self, assertion: &Element, response: &Element, seen: &mut Seen) -> Result<String, Rejection> {
        let issuer = match one_child(assertion, NS_ASSERTION, "Issuer")? {
            Some(i) => plain_text(i, "the Issuer")?.to_string(),
            None => String::new(),
        };
        seen.issuer = Some(issuer.clone());
        if !self.tenant_issuers.contains(&issuer) {
            return reject(
                Reason::Issuer,
                format!("issuer {:?} is not the configured Entra tenant", short(&issuer)),
            );
        }
        if let Some(ri) = one_child(response, NS_ASSERTION, "Issuer")? {
            let ri = plain_text(ri, "the Response Issuer")?;
            if ri != issuer {
                return reject(
                    Reason::Issuer,
                    format!("the Response issuer {:?} differs from the Assertion's", short(ri)),
                );
            }
        }
        Ok(issuer)
    }

    /// Step 11, Roles: pairs in either order, one role and one provider in the same account and a
    /// partition with SAML sign-in, each marked granted when the mapping grants it.
    fn roles(&self, attributes: &Attributes) -> Result<(Option<Vec<String>>, Vec<RolePair>), Rejection> {
        let role_values = attributes
            .get(ROLE_ATTRIBUTE)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| rejection(Reason::RoleAttribute, format!("no {ROLE_ATTRIBUTE} attribute")))?;
        let groups: Option<Vec<String>> = if attributes.get(GROUPS_OVERAGE_ATTRIBUTE).is_some() {
            None
        } else {
            Some(attributes.get(GROUPS_ATTRIBUTE).cloned().unwrap_or_default())
        };
        let group_set: BTreeSet<String> = groups.iter().flatten().map(|g| g.to_ascii_lowercase()).collect();
        let mut roles = Vec::new();
        for v in role_values {
            let (role_arn, provider_arn) = claims::role_pair(v)?;
            let granted = self.roles.grants_role_to(&group_set, role_arn.as_str());
            roles.push(RolePair {
                role_arn,
                provider_arn,
                granted,
            });
        }
        Ok((groups, roles))
    }

    /// Step 12, Grant (optional): a role the mapping grants to one of the user's groups.
    fn check_grant(&self, roles: &[RolePair]) -> Result<(), Rejection> {
        if self.require_grant && !roles.iter().any(|r| r.granted) {
            return reject(
                Reason::NotGranted,
                "none of the offered roles is granted to the user's groups by the role mapping",
            );
        }
        Ok(())
    }

    /// RSA-SHA256 (RSA-SHA1 only when allowed) and the matching digests; no HMAC.
    fn check_algorithms(&self, raw: &Element) -> Result<(), Rejection> {
        let mut methods = Vec::new();
        raw.descendants_in(NS_DSIG, "SignatureMethod", &mut methods);
        if methods.is_empty() {
            return reject(Reason::Signature, "the Response is not signed");
        }
        for m in methods {
            let alg = m.attr("Algorithm").unwrap_or_default();
            let ok = alg == RSA_SHA256 || (self.allow_sha1 && alg == RSA_SHA1);
            if !ok {
                return reject(
                    Reason::Algorithm,
                    format!("signature algorithm {} is not allowed", short(alg)),
                );
            }
        }
        let mut digests = Vec::new();
        raw.descendants_in(NS_DSIG, "DigestMethod", &mut digests);
        for d in digests {
            let alg = d.attr("Algorithm").unwrap_or_default();
            let ok = alg == SHA256 || (self.allow_sha1 && alg == SHA1);
            if !ok {
                return reject(
                    Reason::Algorithm,
                    format!("digest algorithm {} is not allowed", short(alg)),
                );
            }
        }
        Ok(())
    }

    fn reduce(&self, xml_text: &str) -> Result<String, Rejection> {
        crate::xmlsec::reduce_to_signed(xml_text, &self.certs, self.allow_sha1).map_err(|e| match e {
            ReduceError::Unsupported => rejection(Reason::Unsupported, e.to_string()),
            ReduceError::Invalid => rejection(
                Reason::Signature,
                "a Signature does not verify against the metadata's signing certificates (content changed after signing, or signed by another key)",
            ),
            ReduceError::NoCertificates | ReduceError::Panicked => rejection(Reason::Signature, e.to_string()),
        })
    }
}

/// Step 2, Structure: a SAML 2.0 Response carrying one SAML 2.0 Assertion, as its direct child.
fn structure<'a>(raw: &'a Element, seen: &mut Seen) -> Result<&'a Element, Rejection> {
    if !raw.is(NS_PROTOCOL, "Response") {
        return reject(
            Reason::Malformed,
            format!(
                "the root element is {} in namespace {:?}, not a SAML 2.0 protocol Response",
                short(&raw.name),
                short(&raw.ns)
            ),
        );
    }
    if raw.attr("Version") != Some("2.0") {
        return reject(Reason::Malformed, "the Response is not SAML Version 2.0");
    }
    if raw.count("EncryptedAssertion") > 0 {
        return reject(Reason::Malformed, "encrypted assertions are not supported");
    }
    let mut named = Vec::new();
    raw.descendants("Assertion", &mut named);
    if let Some(foreign) = named.iter().find(|a| a.ns != NS_ASSERTION) {
        return reject(
            Reason::Malformed,
            format!(
                "an Assertion in namespace {:?}, not the SAML 2.0 assertion namespace",
                short(&foreign.ns)
            ),
        );
    }
    if raw.count("Response") > 1 {
        return reject(Reason::Signature, "a Response nested inside the Response");
    }
    match named.len() {
        0 => return reject(Reason::Malformed, "the Response carries no SAML 2.0 Assertion"),
        1 => {}
        n => {
            return reject(
                Reason::MultipleAssertions,
                format!("the Response carries {n} Assertion elements"),
            )
        }
    }
    let Some(raw_assertion) = raw.children_in(NS_ASSERTION, "Assertion").next() else {
        return reject(Reason::Signature, "the Assertion is not a direct child of the Response");
    };
    seen.assertion_id = raw_assertion.attr("ID").map(str::to_string);
    seen.issuer = raw_assertion
        .children_in(NS_ASSERTION, "Issuer")
        .next()
        .map(|i| i.text.trim().to_string());
    if raw_assertion.attr("Version") != Some("2.0") {
        return reject(Reason::Malformed, "the Assertion is not SAML Version 2.0");
    }
    Ok(raw_assertion)
}

/// The content xmlsec verified, and which parts of the one tree carried a Signature.
struct Signed {
    tree: Element,
    response_signed: bool,
    assertion_signed: bool,
}

impl Signed {
    /// The signed Assertion: the whole verified content, or the Response's Assertion when the
    /// Response is what was verified.
    fn assertion(&self) -> Result<&Element, Rejection> {
        let assertion = if self.tree.is(NS_PROTOCOL, "Response") {
            if !self.response_signed {
                return reject(
                    Reason::Signature,
                    "the verified content is a Response that carries no Signature",
                );
            }
            self.tree.children_in(NS_ASSERTION, "Assertion").next()
        } else if self.tree.is(NS_ASSERTION, "Assertion") {
            if self.response_signed {
                return reject(
                    Reason::Signature,
                    "the Response's signature does not cover the Response",
                );
            }
            Some(&self.tree)
        } else {
            None
        };
        assertion.ok_or_else(|| rejection(Reason::Signature, "no signature covers the Assertion"))
    }

    fn parts(&self) -> Vec<&'static str> {
        let mut parts = Vec::new();
        if self.assertion_signed {
            parts.push("assertion");
        }
        if self.response_signed {
            parts.push("response");
        }
        parts
    }
}

/// Step 13, Replay: an assertion is good once, remembered until it can no longer be accepted.
fn check_replay(
    replay: Option<&mut ReplayCache>,
    assertion_id: &str,
    remember_until: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<(), Rejection> {
    if let Some(cache) = replay {
        if !cache.check_and_remember(assertion_id, remember_until, at) {
            return reject(
                Reason::Replay,
                format!("assertion {} was already presented", short(assertion_id)),
            );
        }
    }
    Ok(())
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
    fn saml_times_are_utc_with_z_only() {
        assert!(saml_time("2026-11-25T10:00:00Z").is_some());
        assert!(saml_time("2026-11-25T10:00:00.123Z").is_some());
        for odd in [
            "2026-11-25T10:00:00+14:00",
            "2026-11-25T10:00:00+00:00",
            "2026-11-25T10:00:00z",
            "2026-11-25t10:00:00Z",
            "2026-11-25 10:00:00Z",
            "2026-11-25T10:00:60Z",
            "2026-11-25T10:00:00",
            "2026-11-25T10:00:00.Z",
            "2026-13-25T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "+2026-11-25T10:00:00Z",
            "12026-11-25T10:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T10:00:00.1234567890Z",
        ] {
            assert!(saml_time(odd).is_none(), "{odd}");
        }
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
