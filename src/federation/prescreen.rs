//! The first look at a SAMLResponse, before any tree is built and long before xmlsec sees it.
//!
//! One streaming quick-xml pass, in bounded time and memory whatever it is fed, that admits only
//! what an Entra response needs:
//! - limits: at most [`MAX_XML_BYTES`], nesting depth [`MAX_DEPTH`], [`MAX_ELEMENTS`] elements and
//!   [`MAX_ATTRIBUTES`] attributes per element; UTF-8 only (no BOM, no other declared encoding);
//!   no DOCTYPE, no processing instruction; every prefix declared (`malformed`, `doctype`);
//! - signatures shaped as Entra makes them: each `ds:Signature` is a direct child of the SAML
//!   protocol `Response` or SAML assertion `Assertion` it signs (at most one per element), holds
//!   `SignedInfo`, `SignatureValue` and optionally `KeyInfo/X509Data/X509Certificate`, and nothing
//!   else; `SignedInfo` has exclusive c14n, one `SignatureMethod` and exactly one `Reference` whose
//!   URI is `#` + that element's ID, with exactly the transforms enveloped-signature then exclusive
//!   c14n (an `InclusiveNamespaces` PrefixList allowed); no other XML-DSig element anywhere, so
//!   no XPath, XSLT, XPointer, external or other same-document URI, RetrievalMethod, KeyName or
//!   `ds:Object` ever reaches xmlsec (`signature`); IDs are unique (`signature`).
//!
//! Signature and digest *algorithms* are left to the validator's allow-list (`algorithm`).

use std::collections::HashSet;

use super::detail::short;
use super::validate::{Reason, Rejection};
use super::xml::{Element, Limits, Watch, XmlError};

/// The STS limit on a posted SAMLResponse, in base64 characters.
pub const MAX_BASE64_CHARS: usize = 100_000;
/// XML input: what 100,000 base64 characters decode to.
pub const MAX_XML_BYTES: usize = 75_000;
/// A posted form body: the base64 cap, fully percent-encoded, plus room for RelayState.
pub const MAX_INPUT_BYTES: usize = 3 * MAX_BASE64_CHARS + 16_384;
pub const MAX_DEPTH: usize = Limits::SAML.max_depth;
pub const MAX_ELEMENTS: usize = Limits::SAML.max_elements;
pub const MAX_ATTRIBUTES: usize = Limits::SAML.max_attributes;

pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const NS_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// Namespaces whose elements ask a processor to fetch or run something: never in a response.
const FORBIDDEN_NAMESPACES: [&str; 3] = [
    "http://www.w3.org/2001/XInclude",
    "http://www.w3.org/2003/XInclude",
    "http://www.w3.org/1999/XSL/Transform",
];
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

fn malformed(detail: impl Into<String>) -> Rejection {
    Rejection {
        reason: Reason::Malformed,
        detail: detail.into(),
    }
}

fn signature(detail: impl Into<String>) -> Rejection {
    Rejection {
        reason: Reason::Signature,
        detail: detail.into(),
    }
}

#[derive(Debug)]
struct Frame {
    ns: String,
    local: String,
    id: Option<String>,
    /// Inside a ds:Signature (this element is one, or descends from one).
    in_signature: bool,
    has_signature: bool,
    /// XML-DSig children seen so far (local names), for the shape checks at the end tag.
    dsig_children: Vec<String>,
    /// Transform algorithms, for `Transforms`.
    transforms: Vec<String>,
}

/// What an element inside a Signature may contain, by its local name.
fn allowed_dsig_children(parent: &str) -> &'static [&'static str] {
    match parent {
        "Signature" => &["SignedInfo", "SignatureValue", "KeyInfo"],
        "SignedInfo" => &["CanonicalizationMethod", "SignatureMethod", "Reference"],
        "SignatureMethod" => &["HMACOutputLength"],
        "Reference" => &["Transforms", "DigestMethod", "DigestValue"],
        "Transforms" => &["Transform"],
        "KeyInfo" => &["X509Data"],
        "X509Data" => &["X509Certificate"],
        _ => &[],
    }
}

fn allowed_dsig_attributes(element: &str) -> &'static [&'static str] {
    match element {
        "CanonicalizationMethod" | "SignatureMethod" | "DigestMethod" | "Transform" => &["Algorithm"],
        "Reference" => &["URI", "Id"],
        "Signature" | "SignedInfo" | "SignatureValue" | "KeyInfo" => &["Id"],
        _ => &[],
    }
}

struct Attrs {
    /// (namespace or "" for unprefixed, local name, value)
    list: Vec<(String, String, String)>,
}

impl Attrs {
    fn of(element: &Element) -> Attrs {
        Attrs {
            list: element
                .attributes
                .iter()
                .map(|a| (a.ns.clone(), a.local.clone(), a.value.clone()))
                .collect(),
        }
    }

    fn get(&self, local: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|(ns, l, _)| ns.is_empty() && l == local)
            .map(|(_, _, v)| v.as_str())
    }
}

/// What the log line of a refusal may name: the Assertion's ID and Issuer, as far as the
/// pass got (attacker-chosen text: the logger shortens it).
#[derive(Debug, Default, Clone)]
pub struct Identified {
    pub assertion_id: Option<String>,
    pub issuer: Option<String>,
}

/// Reads `xml` into the one tree (see `xml`) and admits it only if it has the shape Entra
/// sends; the first problem in document order is the refusal.
pub fn prescreen(xml: &str) -> Result<Element, Rejection> {
    prescreen_noting(xml, false, &mut Identified::default())
}

/// [`prescreen`], noting the Assertion's ID and Issuer on the way.
/// `allow_sha1` admits RSA-SHA1 and SHA-1 beside RSA-SHA256 and SHA-256 (`algorithm` otherwise).
pub fn prescreen_noting(xml: &str, allow_sha1: bool, seen: &mut Identified) -> Result<Element, Rejection> {
    if xml.len() > MAX_XML_BYTES {
        return Err(malformed(format!(
            "{} bytes of XML; at most {MAX_XML_BYTES} are accepted",
            xml.len()
        )));
    }
    let mut screen = Screen {
        stack: Vec::new(),
        ids: HashSet::new(),
        allow_sha1,
        seen,
    };
    super::xml::parse_watched(xml, &Limits::SAML, &mut screen)
}

impl From<XmlError> for Rejection {
    fn from(e: XmlError) -> Rejection {
        match e {
            XmlError::Doctype => Rejection {
                reason: Reason::Doctype,
                detail: e.to_string(),
            },
            XmlError::Malformed(m) => malformed(short(&m)),
        }
    }
}

/// The signature-shape checks, run on each element as the reader meets it, so the first
/// problem in document order is the one reported.
struct Screen<'s> {
    stack: Vec<Frame>,
    ids: HashSet<String>,
    allow_sha1: bool,
    seen: &'s mut Identified,
}

impl Watch for Screen<'_> {
    type Error = Rejection;

    fn open(&mut self, element: &Element) -> Result<(), Rejection> {
        let attrs = Attrs::of(element);
        if attrs
            .list
            .iter()
            .any(|(ns, l, _)| !ns.is_empty() && l.eq_ignore_ascii_case("id"))
        {
            // samael and xmlsec find IDs by local name, whatever the namespace.
            return Err(signature("an ID attribute in a namespace"));
        }
        let id = attrs.get("ID").map(str::to_string);
        if element.ns == NS_ASSERTION && element.name == "Assertion" && self.seen.assertion_id.is_none() {
            self.seen.assertion_id = id.as_deref().map(short);
        }
        // xmlsec also resolves `Id` (inside a Signature): one set, so no value names two elements.
        for value in [attrs.get("ID"), attrs.get("Id")].into_iter().flatten() {
            if !self.ids.insert(value.to_string()) {
                return Err(signature(format!(
                    "two elements carry the ID {:?}: a signed reference could resolve to either",
                    short(value)
                )));
            }
        }
        let frame = open_element(
            &mut self.stack,
            element.ns.clone(),
            element.name.clone(),
            id,
            &attrs,
            self.allow_sha1,
        )?;
        self.stack.push(frame);
        Ok(())
    }

    fn close(&mut self, element: &Element) -> Result<(), Rejection> {
        let parent = self.stack.len().checked_sub(2).and_then(|i| self.stack.get(i));
        let in_assertion = parent.is_some_and(|p| p.ns == NS_ASSERTION && p.local == "Assertion");
        if in_assertion && element.is(NS_ASSERTION, "Issuer") && self.seen.issuer.is_none() {
            self.seen.issuer = Some(short(element.text.trim()));
        }
        close_element(&mut self.stack)
    }
}

fn open_element(
    stack: &mut [Frame],
    ns: String,
    local: String,
    id: Option<String>,
    attrs: &Attrs,
    allow_sha1: bool,
) -> Result<Frame, Rejection> {
    if FORBIDDEN_NAMESPACES.contains(&ns.as_str()) {
        return Err(signature(format!(
            "an XInclude or XSLT element ({}) is refused",
            short(&local)
        )));
    }
    let misplaced = (local == "Response" && ns != NS_PROTOCOL) || (local == "Assertion" && ns != NS_ASSERTION);
    if misplaced {
        return Err(malformed(format!(
            "a {local} in namespace {:?}, not SAML 2.0's",
            short(&ns)
        )));
    }
    let parent_in_signature = stack.last().is_some_and(|p| p.in_signature);
    let is_dsig = ns == NS_DSIG;
    let frame = Frame {
        ns,
        local,
        id,
        in_signature: parent_in_signature,
        has_signature: false,
        dsig_children: Vec::new(),
        transforms: Vec::new(),
    };
    if !parent_in_signature {
        if !is_dsig {
            return Ok(frame);
        }
        return open_signature(stack, frame, attrs);
    }
    open_inside_signature(stack, frame, attrs, allow_sha1)
}

/// A Signature outside any other: enveloped in the Response or Assertion it signs, one per
/// element, whose ID is a plain XML name.
fn open_signature(stack: &mut [Frame], mut frame: Frame, attrs: &Attrs) -> Result<Frame, Rejection> {
    if frame.local != "Signature" {
        return Err(signature(format!(
            "an XML-DSig {} element outside a Signature",
            short(&frame.local)
        )));
    }
    // A Signature: enveloped in the Response or Assertion it signs, one per element.
    let Some(parent) = stack.last_mut() else {
        return Err(signature("the root element is a Signature"));
    };
    let envelops = (parent.ns == NS_PROTOCOL && parent.local == "Response")
        || (parent.ns == NS_ASSERTION && parent.local == "Assertion");
    if !envelops {
        return Err(signature(format!(
            "a Signature inside {}: only the Response and the Assertion may be signed",
            short(&parent.local)
        )));
    }
    if parent.has_signature {
        return Err(signature(format!("the {} carries two Signatures", parent.local)));
    }
    match parent.id.as_deref() {
        None => return Err(signature(format!("the signed {} has no ID", parent.local))),
        // xmlsec reads `#` + an NCName as a plain ID; anything else is an XPointer or worse.
        Some(id) if !is_plain_id(id) => {
            return Err(signature(format!(
                "the signed {} has the ID {:?}, not an XML name",
                parent.local,
                short(id)
            )))
        }
        Some(_) => {}
    }
    parent.has_signature = true;
    check_dsig_attributes(&frame.local, attrs)?;
    frame.in_signature = true;
    Ok(frame)
}

/// An element inside a Signature: XML-DSig (and exc-c14n InclusiveNamespaces) elements from
/// an allow-list only, with the algorithms and the Reference Entra uses.
fn open_inside_signature(
    stack: &mut [Frame],
    frame: Frame,
    attrs: &Attrs,
    allow_sha1: bool,
) -> Result<Frame, Rejection> {
    let Some(parent) = stack.last_mut() else {
        return Err(signature("a Signature element with no parent"));
    };
    let inclusive_namespaces = frame.ns == NS_EXC_C14N
        && frame.local == "InclusiveNamespaces"
        && parent.ns == NS_DSIG
        && (parent.local == "Transform" || parent.local == "CanonicalizationMethod");
    if inclusive_namespaces {
        if attrs.list.iter().any(|(ns, l, _)| !ns.is_empty() || l != "PrefixList") {
            return Err(signature("InclusiveNamespaces may only carry a PrefixList"));
        }
        if parent.dsig_children.iter().any(|c| c == "InclusiveNamespaces") {
            return Err(signature("two InclusiveNamespaces in one transform"));
        }
        parent.dsig_children.push("InclusiveNamespaces".into());
        return Ok(frame);
    }
    if frame.ns != NS_DSIG
        || parent.ns != NS_DSIG
        || !allowed_dsig_children(&parent.local).contains(&frame.local.as_str())
    {
        return Err(signature(format!(
            "{} is not allowed inside a Signature's {} (Entra signs with one enveloped, exclusive-c14n Reference and an X509 certificate)",
            short(&frame.local),
            short(&parent.local)
        )));
    }
    check_dsig_attributes(&frame.local, attrs)?;
    check_dsig_values(stack, &frame.local, attrs, allow_sha1)?;
    if let Some(parent) = stack.last_mut() {
        parent.dsig_children.push(frame.local.clone());
    }
    Ok(frame)
}

/// The values of a DSig element that decide what is signed and how: exclusive c14n, the
/// algorithm allow-list (as early as the element shows it), the two accepted transforms,
/// and a Reference to the enveloping element's own ID.
fn check_dsig_values(stack: &mut [Frame], local: &str, attrs: &Attrs, allow_sha1: bool) -> Result<(), Rejection> {
    match local {
        "CanonicalizationMethod" if attrs.get("Algorithm") != Some(EXC_C14N) => {
            return Err(signature(format!(
                "the CanonicalizationMethod {:?} is not exclusive c14n",
                short(attrs.get("Algorithm").unwrap_or_default())
            )));
        }
        // The algorithm allow-list, as early as the element shows it (`algorithm`, as before).
        "SignatureMethod" => {
            let alg = attrs.get("Algorithm").unwrap_or_default();
            if !(alg == RSA_SHA256 || (allow_sha1 && alg == RSA_SHA1)) {
                return Err(Rejection {
                    reason: Reason::Algorithm,
                    detail: format!("signature algorithm {} is not allowed", short(alg)),
                });
            }
        }
        "DigestMethod" => {
            let alg = attrs.get("Algorithm").unwrap_or_default();
            if !(alg == SHA256 || (allow_sha1 && alg == SHA1)) {
                return Err(Rejection {
                    reason: Reason::Algorithm,
                    detail: format!("digest algorithm {} is not allowed", short(alg)),
                });
            }
        }
        "Transform" => {
            let alg = attrs.get("Algorithm").unwrap_or_default();
            if alg != ENVELOPED && alg != EXC_C14N {
                return Err(signature(format!(
                    "the transform {:?} is refused: only enveloped-signature and exclusive c14n are accepted",
                    short(alg)
                )));
            }
            if let Some(parent) = stack.last_mut() {
                parent.transforms.push(alg.to_string());
            }
        }
        "Reference" => {
            let uri = attrs.get("URI");
            // The Signature's parent is two frames up: [.., signed element, Signature, SignedInfo].
            let signed_id = stack
                .len()
                .checked_sub(3)
                .and_then(|i| stack[i].id.as_deref())
                .unwrap_or_default();
            let expected = format!("#{signed_id}");
            if uri != Some(expected.as_str()) {
                return Err(signature(format!(
                    "the Reference URI {:?} is not #{}, the ID of the element the Signature is enveloped in",
                    short(uri.unwrap_or("(none)")),
                    short(signed_id)
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

/// An ID as Entra writes them (`_` and a GUID): an ASCII NCName.
fn is_plain_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn check_dsig_attributes(element: &str, attrs: &Attrs) -> Result<(), Rejection> {
    let allowed = allowed_dsig_attributes(element);
    for (ns, local, _) in &attrs.list {
        if !ns.is_empty() || !allowed.contains(&local.as_str()) {
            return Err(signature(format!(
                "the attribute {} is not allowed on a Signature's {}",
                short(local),
                short(element)
            )));
        }
    }
    Ok(())
}

fn close_element(stack: &mut Vec<Frame>) -> Result<(), Rejection> {
    let frame = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
    if !frame.in_signature || frame.ns != NS_DSIG {
        return Ok(());
    }
    let children: Vec<&str> = frame
        .dsig_children
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "InclusiveNamespaces")
        .collect();
    let ok = match frame.local.as_str() {
        "Signature" => {
            children == ["SignedInfo", "SignatureValue"] || children == ["SignedInfo", "SignatureValue", "KeyInfo"]
        }
        "SignedInfo" => children == ["CanonicalizationMethod", "SignatureMethod", "Reference"],
        "Reference" => children == ["Transforms", "DigestMethod", "DigestValue"],
        "Transforms" => frame.transforms == [ENVELOPED, EXC_C14N],
        "KeyInfo" => children.len() <= 1,
        "SignatureMethod" => children.len() <= 1,
        _ => true,
    };
    if !ok {
        let what = match frame.local.as_str() {
            "Transforms" => "the transforms must be exactly enveloped-signature then exclusive c14n".to_string(),
            "SignedInfo" => {
                "SignedInfo must hold exclusive c14n, one SignatureMethod and exactly one Reference".to_string()
            }
            other => format!("the Signature's {other} is not shaped as Entra signs"),
        };
        return Err(signature(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_are_refused_as_algorithm_before_anything_later_in_the_signature() {
        let hmac = SIG
            .replace("xmldsig-more#rsa-sha256", "xmldsig#hmac-sha1")
            .replace("<ds:X509Data>", "<ds:KeyName>k</ds:KeyName><ds:X509Data>");
        assert_eq!(reason(&doc(&hmac)), Some(Reason::Algorithm));
        let sha1 = SIG.replace("2001/04/xmlenc#sha256", "2000/09/xmldsig#sha1");
        assert_eq!(reason(&doc(&sha1)), Some(Reason::Algorithm));
        let mut seen = Identified::default();
        let sha1_both = sha1.replace("2001/04/xmldsig-more#rsa-sha256", "2000/09/xmldsig#rsa-sha1");
        assert!(prescreen_noting(&doc(&sha1_both), true, &mut seen).is_ok());
        assert_eq!(seen.assertion_id.as_deref(), Some("_a"));
        assert_eq!(seen.issuer.as_deref(), Some("x"));
    }

    const SIG: &str = r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#_a"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AA==</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>AA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##;

    fn doc(sig: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" Version="2.0"><Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a" Version="2.0"><Issuer>x</Issuer>{sig}</Assertion></samlp:Response>"#
        )
    }

    fn reason(xml: &str) -> Option<Reason> {
        prescreen(xml).err().map(|r| r.reason)
    }

    #[test]
    fn admits_the_entra_shape() {
        assert_eq!(reason(&doc(SIG)), None);
    }

    #[test]
    fn refuses_what_entra_never_sends() {
        let s = Some(Reason::Signature);
        assert_eq!(reason(&doc(&SIG.replace("URI=\"#_a\"", "URI=\"#_r\""))), s);
        assert_eq!(
            reason(&doc(&SIG.replace("URI=\"#_a\"", "URI=\"http://127.0.0.1:1/x\""))),
            s
        );
        assert_eq!(reason(&doc(&SIG.replace("URI=\"#_a\"", "URI=\"\""))), s);
        assert_eq!(
            reason(&doc(&SIG.replace(
                "xmldsig#enveloped-signature\"/>",
                "xmldsig#enveloped-signature\"/><ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/>"
            ))),
            s
        );
        assert_eq!(
            reason(&doc(&SIG.replace(
                "<ds:X509Data>",
                "<ds:RetrievalMethod URI=\"file:///etc/passwd\"/><ds:X509Data>"
            ))),
            s
        );
        assert_eq!(
            reason(&doc(&SIG.replace("</ds:KeyInfo>", "</ds:KeyInfo><ds:Object/>"))),
            s
        );
        let two_refs = SIG.replace("</ds:Reference>", "</ds:Reference><ds:Reference URI=\"#_a\"/>");
        assert_eq!(reason(&doc(&two_refs)), s);
        assert_eq!(
            reason(&format!(
                "<samlp:Response xmlns:samlp=\"{NS_PROTOCOL}\" ID=\"_a\"><x ID=\"_a\"/></samlp:Response>"
            )),
            s
        );
    }

    #[test]
    fn limits_and_encodings() {
        let m = Some(Reason::Malformed);
        assert_eq!(reason(&format!("{}{}", "<a>".repeat(65), "</a>".repeat(65))), m);
        assert_eq!(reason(&format!("{}{}", "<a>".repeat(64), "</a>".repeat(64))), None);
        assert_eq!(reason(&format!("<a>{}</a>", "<b/>".repeat(4096))), m);
        let attrs: String = (0..17).map(|i| format!(" a{i}=\"x\"")).collect();
        assert_eq!(reason(&format!("<a{attrs}/>")), m);
        assert_eq!(reason("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>"), m);
        assert_eq!(reason("<?xml version=\"1.0\" encoding=\"utf-16\"?><a/>"), m);
        assert_eq!(reason("<?xml version=\"1.1\"?><a/>"), m);
        assert_eq!(reason("<!----><?xml version=\"1.0\"?><a/>"), m);
        assert_eq!(reason("<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>"), None);
        assert_eq!(reason("<p:a/>"), m);
        assert_eq!(reason("<a p:x=\"1\"/>"), m);
        assert_eq!(reason("<!DOCTYPE a><a/>"), Some(Reason::Doctype));
        assert_eq!(reason("<?php x?><a/>"), m);
        assert_eq!(reason(&"x".repeat(MAX_XML_BYTES + 1)), m);
    }
}
