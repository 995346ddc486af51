//! Steps 4 to 11 of the validation: what the signed content says, each check on its own
//! (status, destination, subject, conditions and audience, authentication statement, time,
//! attributes, roles, session name and duration). Every function reads only the verified
//! tree it is given and answers with the refusal reason the contract names.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use super::detail::short;
use super::outcome::*;
use super::prescreen::{NS_ASSERTION, NS_PROTOCOL};
use super::validate::{reject, rejection};
use super::xml::Element;
use crate::names::{ProviderArn, RoleArn, SessionName, SAML_PARTITIONS};

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

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

/// An element's text, refused when markup or a comment splits it.
pub(super) fn plain_text<'a>(el: &'a Element, what: &str) -> Result<&'a str, Rejection> {
    if el.text_interrupted || !el.children.is_empty() {
        return reject(
            Reason::Malformed,
            format!("{what} must be text only (no child element, comment or CDATA)"),
        );
    }
    Ok(el.text.trim())
}

pub(super) fn one_child<'a>(parent: &'a Element, ns: &str, name: &str) -> Result<Option<&'a Element>, Rejection> {
    parent.only_child_in(ns, name).map_err(|n| {
        rejection(
            Reason::Malformed,
            format!("the {} has {n} {name} elements", parent.name),
        )
    })
}

/// Step 4, Status: exactly Success.
pub(super) fn check_status(response: &Element) -> Result<(), Rejection> {
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
    Ok(())
}

/// Step 6, Destination: required when the Response is signed (SAML bindings 3.5.5.2).
pub(super) fn check_destination(response: &Element, response_signed: bool) -> Result<(), Rejection> {
    match response.attr("Destination") {
        Some(dest) if !is_aws_signin_endpoint(dest) => reject(
            Reason::Destination,
            format!("Destination {:?} is not an AWS sign-in endpoint", short(dest)),
        ),
        None if response_signed => reject(Reason::Destination, "the Response is signed but has no Destination"),
        _ => Ok(()),
    }
}

/// The subject and what its one bearer confirmation allows.
pub(super) struct Subject {
    pub name: String,
    /// Read when time is checked (step 10), so a bad value is refused in the same order as before.
    pub not_before: Result<Option<DateTime<Utc>>, Rejection>,
    pub not_on_or_after: DateTime<Utc>,
}

/// Step 7, Subject: the whole NameID text, and exactly one bearer SubjectConfirmation whose data
/// names an AWS sign-in Recipient and a NotOnOrAfter.
pub(super) fn subject(assertion: &Element) -> Result<Subject, Rejection> {
    let subject = one_child(assertion, NS_ASSERTION, "Subject")?
        .ok_or_else(|| rejection(Reason::Malformed, "the Assertion has no Subject"))?;
    let name_id = one_child(subject, NS_ASSERTION, "NameID")?
        .ok_or_else(|| rejection(Reason::Malformed, "the Subject has no NameID"))?;
    if name_id.text_interrupted || !name_id.children.is_empty() {
        return reject(Reason::Malformed, "the NameID text is split by a comment or markup");
    }
    let name = name_id.text.trim().to_string();
    if name.is_empty() {
        return reject(Reason::Malformed, "the NameID is empty");
    }
    let bearer: Vec<&Element> = subject
        .children_in(NS_ASSERTION, "SubjectConfirmation")
        .filter(|c| c.attr("Method") == Some(BEARER))
        .collect();
    let [confirmation] = bearer[..] else {
        return reject(
            Reason::Recipient,
            format!("{} bearer SubjectConfirmations; AWS needs exactly one", bearer.len()),
        );
    };
    let scd = one_child(confirmation, NS_ASSERTION, "SubjectConfirmationData")?.ok_or_else(|| {
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
    let Some(not_on_or_after) = parse_time(scd, "NotOnOrAfter")? else {
        return reject(Reason::MissingCondition, "SubjectConfirmationData has no NotOnOrAfter");
    };
    Ok(Subject {
        name,
        not_before: parse_time(scd, "NotBefore"),
        not_on_or_after,
    })
}

/// The Conditions' window.
pub(super) struct Window {
    pub not_before: DateTime<Utc>,
    pub not_on_or_after: DateTime<Utc>,
}

/// Step 8, Conditions with both times, and every AudienceRestriction naming an allowed audience.
pub(super) fn conditions(assertion: &Element, allowed: &[String]) -> Result<Window, Rejection> {
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
        if !audiences.iter().any(|a| allowed.iter().any(|x| x == a)) {
            let got: Vec<String> = audiences.iter().map(|a| short(a)).collect();
            return reject(Reason::Audience, format!("audience {got:?} is not one of {allowed:?}"));
        }
    }
    Ok(Window {
        not_before,
        not_on_or_after,
    })
}

/// Step 9, Exactly one AuthnStatement (Web Browser SSO profile).
pub(super) fn one_authn_statement(assertion: &Element) -> Result<(), Rejection> {
    match assertion.children_in(NS_ASSERTION, "AuthnStatement").count() {
        0 => reject(Reason::MissingCondition, "the Assertion has no AuthnStatement"),
        1 => Ok(()),
        n => reject(Reason::Malformed, format!("the Assertion has {n} AuthnStatements")),
    }
}

/// Step 10, Time, with skew, at the chosen instant.
pub(super) fn check_time(
    assertion: &Element,
    subject: &Subject,
    window: &Window,
    at: DateTime<Utc>,
    skew: Duration,
) -> Result<(), Rejection> {
    if at + skew < window.not_before {
        return reject(
            Reason::NotYetValid,
            format!("valid from {}, checked at {at}", window.not_before),
        );
    }
    if let Some(t) = subject.not_before.clone()? {
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
    if at - skew >= window.not_on_or_after {
        return reject(
            Reason::Expired,
            format!("Conditions ended at {}, checked at {at}", window.not_on_or_after),
        );
    }
    if at - skew >= subject.not_on_or_after {
        return reject(
            Reason::Expired,
            format!(
                "subject confirmation ended at {}, checked at {at}",
                subject.not_on_or_after
            ),
        );
    }
    Ok(())
}

/// The Assertion's attributes by Name, each with its text values.
pub(super) struct Attributes(Vec<(String, Vec<String>)>);

impl Attributes {
    pub fn get(&self, name: &str) -> Option<&Vec<String>> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// Step 11, Attributes: SAML Attribute elements, each Name once, with text-only AttributeValues.
pub(super) fn attributes(assertion: &Element) -> Result<Attributes, Rejection> {
    let mut names = BTreeSet::new();
    let mut attributes = Vec::new();
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
                values.push(plain_text(v, &format!("a value of {}", short(name)))?.to_string());
            }
            attributes.push((name.to_string(), values));
        }
    }
    Ok(Attributes(attributes))
}

/// One Role value: a role and a provider ARN in either order, same account and partition,
/// a partition with SAML sign-in.
pub(super) fn role_pair(v: &str) -> Result<(RoleArn, ProviderArn), Rejection> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    let [a, b] = parts[..] else {
        return reject(
            Reason::RoleAttribute,
            format!("role value {:?} is not a pair of ARNs", short(v)),
        );
    };
    let pair = match (a.parse::<RoleArn>(), b.parse::<ProviderArn>()) {
        (Ok(role), Ok(provider)) => Some((role, provider)),
        _ => match (b.parse::<RoleArn>(), a.parse::<ProviderArn>()) {
            (Ok(role), Ok(provider)) => Some((role, provider)),
            _ => None,
        },
    };
    let Some((role, provider)) = pair.filter(|(r, _)| SAML_PARTITIONS.contains(&r.partition())) else {
        return reject(
            Reason::RoleAttribute,
            format!(
                "role value {:?} needs one IAM :role/ and one :saml-provider/ ARN (partition aws, aws-cn or aws-us-gov; IAM name characters)",
                short(v)
            ),
        );
    };
    if (role.partition(), role.account()) != (provider.partition(), provider.account()) {
        return reject(
            Reason::RoleAttribute,
            format!(
                "role and provider of {:?} are in different accounts or partitions",
                short(v)
            ),
        );
    }
    Ok((role, provider))
}

/// RoleSessionName: exactly one value, an STS session name.
pub(super) fn session_name(attributes: &Attributes) -> Result<SessionName, Rejection> {
    let value = match attributes.get(SESSION_NAME_ATTRIBUTE).map(Vec::as_slice) {
        Some([one]) => one.as_str(),
        Some(values) if values.len() > 1 => {
            return reject(
                Reason::SessionName,
                format!("RoleSessionName has {} values; AWS needs exactly one", values.len()),
            )
        }
        _ => "",
    };
    value.parse().map_err(|_| {
        rejection(
            Reason::SessionName,
            format!("RoleSessionName {:?} must be 2-64 of [A-Za-z0-9_+=,.@-]", short(value)),
        )
    })
}

/// SessionDuration (optional): one value, 900-43200 seconds.
pub(super) fn session_duration(attributes: &Attributes) -> Result<Option<u32>, Rejection> {
    match attributes.get(SESSION_DURATION_ATTRIBUTE).map(Vec::as_slice) {
        None => Ok(None),
        Some([v]) => match v.parse::<u32>() {
            Ok(d) if (900..=43200).contains(&d) && !v.starts_with('+') => Ok(Some(d)),
            _ => reject(
                Reason::SessionDuration,
                format!("SessionDuration {:?} must be 900-43200 seconds", short(v)),
            ),
        },
        Some(values) => reject(
            Reason::SessionDuration,
            format!("SessionDuration has {} values; AWS needs exactly one", values.len()),
        ),
    }
}
