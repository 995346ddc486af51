//! Validation of an Entra ID SAMLResponse for AWS console sign-in.
//!
//! Order: input form and size (base64, form body or XML, UTF-8) -> DOCTYPE -> the streaming
//! pre-screen (limits, namespaces, signature shape: see `prescreen`) -> structure (a SAML 2.0
//! Response with one Assertion) -> algorithm allow-list -> samael/xmlsec signature reduction
//! against the metadata's certs (hardened: see `xmlsec_guard`) -> every further check on the
//! *signed* content only, namespace-aware and over every value: status, issuer, destination,
//! subject confirmation, conditions, audience, authentication statement, time (injectable
//! clock), attributes, roles, session name and duration -> grant (optional) -> replay. The
//! first failure is the reason; every refusal is logged once at WARN.

use std::collections::BTreeSet;

use base64::Engine;
use chrono::{DateTime, Utc};
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode};

use super::detail::short;
use super::prescreen::{self, NS_ASSERTION, NS_DSIG, NS_PROTOCOL, RSA_SHA1, RSA_SHA256, SHA1, SHA256};
use super::replay::ReplayCache;
use super::roles::{arn_partition_account, is_provider_arn, is_role_arn};
use super::xml::{self, Element};
use super::xmlsec_guard;

pub use super::outcome::*;

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

fn reject<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection {
        reason,
        detail: detail.into(),
    })
}

fn rejection(reason: Reason, detail: impl Into<String>) -> Rejection {
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

fn parse_time(el: &Element, attr: &str) -> Result<Option<DateTime<Utc>>, Rejection> {
    match el.attr(attr) {
        None => Ok(None),
        Some(v) => saml_time(v).map(Some).ok_or_else(|| {
            rejection(
                Reason::Malformed,
                format!(
                    "{}@{attr} {:?} is not a SAML time (xs:dateTime in UTC, ending in Z)",
                    el.name,
                    short(v)
                ),
            )
        }),
    }
}

/// SAML core 1.3.3: `YYYY-MM-DDThh:mm:ss[.fraction]Z`, UTC with `Z` only; no offset, no
/// lower-case `t`/`z`, no space for `T`, no leap second.
pub fn saml_time(v: &str) -> Option<DateTime<Utc>> {
    let b = v.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[b.len() - 1] == b'Z';
    if !shape {
        return None;
    }
    let fraction = &b[19..b.len() - 1];
    let fraction_ok = fraction.is_empty()
        || (fraction.len() >= 2 && fraction.len() <= 10 && fraction[0] == b'.' && digits(20..b.len() - 1));
    if !fraction_ok {
        return None;
    }
    // chrono reads second 60 as a leap second; SAML times have none.
    if &v[17..19] >= "60" {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(&v[..v.len() - 1], "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// The shape of an AWS region: `ap-northeast-2`, `us-gov-west-1`, `eu-central-1`.
pub fn is_region_shape(s: &str) -> bool {
    const DIRECTIONS: [&str; 9] = [
        "north",
        "south",
        "east",
        "west",
        "central",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
    ];
    let parts: Vec<&str> = s.split('-').collect();
    let (country, direction, number) = match parts[..] {
        [c, d, n] => (c, d, n),
        [c, "gov", d, n] => (c, d, n),
        _ => return false,
    };
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_lowercase())
        && DIRECTIONS.contains(&direction)
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
        && !number.starts_with('0')
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
    let path_ok = path.is_empty()
        || path.strip_prefix("/acs/").is_some_and(|id| {
            !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    is_region_shape(region) && path_ok
}

fn session_name_ok(s: &str) -> bool {
    (2..=64).contains(&s.chars().count()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// An element's text, refused when markup or a comment splits it.
fn plain_text<'a>(el: &'a Element, what: &str) -> Result<&'a str, Rejection> {
    if el.text_interrupted || !el.children.is_empty() {
        return reject(
            Reason::Malformed,
            format!("{what} must be text only (no child element, comment or CDATA)"),
        );
    }
    Ok(el.text.trim())
}

fn one_child<'a>(parent: &'a Element, ns: &str, name: &str) -> Result<Option<&'a Element>, Rejection> {
    parent.only_child_in(ns, name).map_err(|n| {
        rejection(
            Reason::Malformed,
            format!("the {} has {n} {name} elements", parent.name),
        )
    })
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

    fn check(
        &self,
        xml_text: &str,
        at: DateTime<Utc>,
        replay: Option<&mut ReplayCache>,
        seen: &mut Seen,
    ) -> Result<Accepted, Rejection> {
        // 1. Raw bytes and a streaming pass, before any tree or crypto.
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
        // The one parse: the tree every later step reads, and whose serialisation xmlsec verifies.
        let raw = prescreen::prescreen_noting(xml_text, self.allow_sha1, seen)?;

        // 2. Structure: a SAML 2.0 Response carrying one SAML 2.0 Assertion.
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
        let mut found = Vec::new();
        raw.descendants("EncryptedAssertion", &mut found);
        if !found.is_empty() {
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
        let mut responses = Vec::new();
        raw.descendants("Response", &mut responses);
        if responses.len() > 1 {
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
        self.check_algorithms(&raw)?;
        let response_signed = raw.children_in(NS_DSIG, "Signature").next().is_some();
        let assertion_signed = raw_assertion.children_in(NS_DSIG, "Signature").next().is_some();
        if !response_signed && !assertion_signed {
            return reject(Reason::Signature, "neither the Response nor the Assertion is signed");
        }

        // 3. Signatures: only what xmlsec verified against the trusted certs survives.
        // xmlsec reads the tree trailvault checked, never the input's own spelling of it.
        let signed_xml = self.reduce(&raw.to_xml())?;
        let signed = xml::parse(&signed_xml)
            .map_err(|e| rejection(Reason::Signature, format!("signed content does not parse: {e}")))?;
        let assertion = if signed.is(NS_PROTOCOL, "Response") {
            if !response_signed {
                return reject(
                    Reason::Signature,
                    "the verified content is a Response that carries no Signature",
                );
            }
            signed.children_in(NS_ASSERTION, "Assertion").next()
        } else if signed.is(NS_ASSERTION, "Assertion") {
            if response_signed {
                return reject(
                    Reason::Signature,
                    "the Response's signature does not cover the Response",
                );
            }
            Some(&signed)
        } else {
            None
        };
        let Some(assertion) = assertion else {
            return reject(Reason::Signature, "no signature covers the Assertion");
        };
        let mut signed_assertions = Vec::new();
        signed.descendants("Assertion", &mut signed_assertions);
        if signed_assertions.len() != 1 {
            return reject(
                Reason::MultipleAssertions,
                "the signed content carries more than one Assertion",
            );
        }
        let assertion_id = assertion.attr("ID").unwrap_or_default().to_string();
        if raw_assertion.attr("ID") != Some(assertion_id.as_str()) {
            return reject(
                Reason::Signature,
                "the signed Assertion is not the one the Response carries",
            );
        }
        if assertion.attr("Version") != Some("2.0") {
            return reject(Reason::Malformed, "the signed Assertion is not SAML Version 2.0");
        }
        // Response-level fields come from the signed Response when there is one.
        let response = if response_signed { &signed } else { &raw };

        // 4. Status: exactly Success.
        let status = one_child(response, NS_PROTOCOL, "Status")?
            .map(|s| one_child(s, NS_PROTOCOL, "StatusCode"))
            .transpose()?
            .flatten()
            .and_then(|c| c.attr("Value"))
            .unwrap_or_default();
        if status != STATUS_SUCCESS {
            return reject(
                Reason::Status,
                format!("status is {:?}, not {STATUS_SUCCESS}", short(status)),
            );
        }

        // 5. Issuer, on the Assertion and on the Response when it has one.
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

        // 6. Destination: required when the Response is signed (SAML bindings 3.5.5.2).
        match response.attr("Destination") {
            Some(dest) if !is_aws_signin_endpoint(dest) => {
                return reject(
                    Reason::Destination,
                    format!("Destination {:?} is not an AWS sign-in endpoint", short(dest)),
                )
            }
            None if response_signed => {
                return reject(Reason::Destination, "the Response is signed but has no Destination")
            }
            _ => {}
        }

        // 7. Subject and its one bearer confirmation.
        let subject = one_child(assertion, NS_ASSERTION, "Subject")?
            .ok_or_else(|| rejection(Reason::Malformed, "the Assertion has no Subject"))?;
        let name_id = one_child(subject, NS_ASSERTION, "NameID")?
            .ok_or_else(|| rejection(Reason::Malformed, "the Subject has no NameID"))?;
        if name_id.text_interrupted || !name_id.children.is_empty() {
            return reject(Reason::Malformed, "the NameID text is split by a comment or markup");
        }
        let subject_name = name_id.text.trim().to_string();
        if subject_name.is_empty() {
            return reject(Reason::Malformed, "the NameID is empty");
        }
        let bearer: Vec<&Element> = subject
            .children_in(NS_ASSERTION, "SubjectConfirmation")
            .filter(|c| c.attr("Method") == Some(BEARER))
            .collect();
        if bearer.len() != 1 {
            return reject(
                Reason::Recipient,
                format!("{} bearer SubjectConfirmations; AWS needs exactly one", bearer.len()),
            );
        }
        let scd = one_child(bearer[0], NS_ASSERTION, "SubjectConfirmationData")?.ok_or_else(|| {
            rejection(
                Reason::MissingCondition,
                "the SubjectConfirmation has no SubjectConfirmationData",
            )
        })?;
        let recipient = scd.attr("Recipient").unwrap_or_default();
        if !is_aws_signin_endpoint(recipient) {
            return reject(
                Reason::Recipient,
                format!("Recipient {:?} is not an AWS sign-in endpoint", short(recipient)),
            );
        }
        let Some(scd_not_on_or_after) = parse_time(scd, "NotOnOrAfter")? else {
            return reject(Reason::MissingCondition, "SubjectConfirmationData has no NotOnOrAfter");
        };

        // 8. Conditions and audience.
        let conditions = one_child(assertion, NS_ASSERTION, "Conditions")?
            .ok_or_else(|| rejection(Reason::MissingCondition, "the Assertion has no Conditions"))?;
        let (Some(not_before), Some(not_on_or_after)) = (
            parse_time(conditions, "NotBefore")?,
            parse_time(conditions, "NotOnOrAfter")?,
        ) else {
            return reject(Reason::MissingCondition, "Conditions need NotBefore and NotOnOrAfter");
        };
        let restrictions: Vec<&Element> = conditions.children_in(NS_ASSERTION, "AudienceRestriction").collect();
        if restrictions.is_empty() {
            return reject(Reason::MissingCondition, "Conditions have no AudienceRestriction");
        }
        for r in &restrictions {
            let mut audiences = Vec::new();
            for a in r.children_in(NS_ASSERTION, "Audience") {
                audiences.push(plain_text(a, "an Audience")?);
            }
            if !audiences.iter().any(|a| self.audiences.iter().any(|x| x == a)) {
                let got: Vec<String> = audiences.iter().map(|a| short(a)).collect();
                return reject(
                    Reason::Audience,
                    format!("audience {got:?} is not one of {:?}", self.audiences),
                );
            }
        }

        // 9. Exactly one AuthnStatement (Web Browser SSO profile).
        match assertion.children_in(NS_ASSERTION, "AuthnStatement").count() {
            0 => return reject(Reason::MissingCondition, "the Assertion has no AuthnStatement"),
            1 => {}
            n => return reject(Reason::Malformed, format!("the Assertion has {n} AuthnStatements")),
        }

        // 10. Time, with skew, at the chosen instant.
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

        // 11. Attributes: SAML Attribute elements with text-only AttributeValues.
        let mut names = BTreeSet::new();
        let mut attributes: Vec<(&str, Vec<String>)> = Vec::new();
        for stmt in assertion.children_in(NS_ASSERTION, "AttributeStatement") {
            for a in &stmt.children {
                if !a.is(NS_ASSERTION, "Attribute") {
                    return reject(
                        Reason::Malformed,
                        format!("an AttributeStatement holds a {} element", short(&a.name)),
                    );
                }
                let name = a.attr("Name").unwrap_or_default();
                if !names.insert(name) {
                    return reject(
                        Reason::DuplicateAttribute,
                        format!("attribute {} appears more than once", short(name)),
                    );
                }
                let mut values = Vec::new();
                for v in &a.children {
                    if !v.is(NS_ASSERTION, "AttributeValue") {
                        return reject(
                            Reason::Malformed,
                            format!("attribute {} holds a {} element", short(name), short(&v.name)),
                        );
                    }
                    let text = plain_text(v, &format!("a value of {}", short(name)))?;
                    values.push(text.to_string());
                }
                attributes.push((name, values));
            }
        }
        let attr = |n: &str| attributes.iter().find(|(k, _)| *k == n).map(|(_, v)| v);
        let role_values = attr(ROLE_ATTRIBUTE)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| rejection(Reason::RoleAttribute, format!("no {ROLE_ATTRIBUTE} attribute")))?;
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
                return reject(
                    Reason::RoleAttribute,
                    format!("role value {:?} is not a pair of ARNs", short(v)),
                );
            };
            let (role, provider) = if is_role_arn(a) && is_provider_arn(b) {
                (a, b)
            } else if is_role_arn(b) && is_provider_arn(a) {
                (b, a)
            } else {
                return reject(
                    Reason::RoleAttribute,
                    format!(
                        "role value {:?} needs one IAM :role/ and one :saml-provider/ ARN (partition aws, aws-cn or aws-us-gov; IAM name characters)",
                        short(v)
                    ),
                );
            };
            if arn_partition_account(role) != arn_partition_account(provider) {
                return reject(
                    Reason::RoleAttribute,
                    format!(
                        "role and provider of {:?} are in different accounts or partitions",
                        short(v)
                    ),
                );
            }
            roles.push(RolePair {
                role_arn: role.to_string(),
                provider_arn: provider.to_string(),
                granted: self.roles.grants_role_to(&group_set, role),
            });
        }
        let session_name = match attr(SESSION_NAME_ATTRIBUTE).map(Vec::as_slice) {
            Some([one]) => one.clone(),
            Some(values) if values.len() > 1 => {
                return reject(
                    Reason::SessionName,
                    format!("RoleSessionName has {} values; AWS needs exactly one", values.len()),
                )
            }
            _ => String::new(),
        };
        if !session_name_ok(&session_name) {
            return reject(
                Reason::SessionName,
                format!(
                    "RoleSessionName {:?} must be 2-64 of [A-Za-z0-9_+=,.@-]",
                    short(&session_name)
                ),
            );
        }
        let session_duration = match attr(SESSION_DURATION_ATTRIBUTE).map(Vec::as_slice) {
            None => None,
            Some([v]) => match v.parse::<u32>() {
                Ok(d) if (900..=43200).contains(&d) && !v.starts_with('+') => Some(d),
                _ => {
                    return reject(
                        Reason::SessionDuration,
                        format!("SessionDuration {:?} must be 900-43200 seconds", short(v)),
                    )
                }
            },
            Some(values) => {
                return reject(
                    Reason::SessionDuration,
                    format!("SessionDuration has {} values; AWS needs exactly one", values.len()),
                )
            }
        };

        // 12. Grant (optional): a role the mapping grants to one of the user's groups.
        if self.require_grant && !roles.iter().any(|r| r.granted) {
            return reject(
                Reason::NotGranted,
                "none of the offered roles is granted to the user's groups by the role mapping",
            );
        }

        // 13. Replay: an assertion is good once, remembered until it can no longer be accepted.
        let remember_until = not_on_or_after.max(scd_not_on_or_after) + skew;
        if let Some(cache) = replay {
            if !cache.check_and_remember(&assertion_id, remember_until, at) {
                return reject(
                    Reason::Replay,
                    format!("assertion {} was already presented", short(&assertion_id)),
                );
            }
        }
        tracing::debug!(assertion_id, subject = subject_name, "SAML response accepted");
        let mut signed_parts = Vec::new();
        if assertion_signed {
            signed_parts.push("assertion");
        }
        if response_signed {
            signed_parts.push("response");
        }
        Ok(Accepted {
            valid: true,
            assertion_id,
            response_id: response.attr("ID").map(str::to_string),
            issuer,
            subject: subject_name,
            session_name,
            session_duration,
            groups,
            roles,
            not_on_or_after: scd_not_on_or_after,
            signed: signed_parts,
            remember_until,
        })
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
        if self.certs.is_empty() {
            return reject(Reason::Signature, "no trusted signing certificate is configured");
        }
        xmlsec_guard::harden();
        let certs: Vec<CertificateDer> = self.certs.iter().cloned().map(CertificateDer::from).collect();
        // SHA-1 is not in samael's allow-list; our own check above already limited the algorithms.
        let allowed: Option<&[AllowedSignatureAlgorithm]> = if self.allow_sha1 {
            None
        } else {
            Some(&[AllowedSignatureAlgorithm::RsaSha256])
        };
        let text = xml_text.to_string();
        // samael may panic on hostile input in versions before its fix; never let it take us down.
        let result = xmlsec_guard::guarded(move || {
            Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                &text,
                &certs,
                ReduceMode::ValidateAndMarkNoAncestors,
                allowed,
            )
        });
        match result {
            Ok(Ok(signed)) => Ok(signed),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "xmlsec refused the signature");
                reject(
                    Reason::Signature,
                    "a Signature does not verify against the metadata's signing certificates (content changed after signing, or signed by another key)",
                )
            }
            Err(_) => reject(Reason::Signature, "the signature could not be verified on this input"),
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
