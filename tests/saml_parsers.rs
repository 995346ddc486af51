//! The verifier and the reader see one document: trailvault's reader (`federation::xml`)
//! against libxml2, the parser xmlsec verifies with.
//!
//! - Differential: hand-made and random documents go to trailvault's reader and to libxml2
//!   in strict mode (no recovery, no network); whenever trailvault accepts, libxml2 must
//!   accept too and read the same element names, namespaces, namespace declarations,
//!   attribute values and text.
//! - Equivalence: the serialisation xmlsec is given ([`Element::to_xml`]), read by libxml2 the
//!   way samael reads it (recover mode, which changes nothing on well-formed input) and in
//!   strict mode, is the same tree.
//! - Fuzz (proptest, bounded case counts): structured mutations of an Entra-shaped signed
//!   response through the pre-screen; whatever it admits has, in libxml2's view, only
//!   enveloped Signatures of the Response or Assertion whose one Reference is `#` + that
//!   element's ID.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libxml::parser::{Parser, ParserOptions};
use libxml::tree::{Node, NodeType};
use proptest::prelude::*;
use trailvault::federation::prescreen;
use trailvault::federation::xml::{self, Element};

/// What both readers must agree on, element by element.
#[derive(Debug, PartialEq, Eq)]
struct Outline {
    name: String,
    ns: String,
    decls: Vec<(String, String)>,
    /// By local name, the first of a name (what libxml2's `xmlGetProp` answers).
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<Outline>,
}

fn ours(e: &Element) -> Outline {
    let mut attrs = BTreeMap::new();
    for a in &e.attributes {
        attrs.entry(a.local.clone()).or_insert_with(|| a.value.clone());
    }
    let mut decls: Vec<(String, String)> = e
        .ns_decls
        .iter()
        .map(|(p, u)| (p.clone().unwrap_or_default(), u.clone()))
        .collect();
    decls.sort();
    Outline {
        name: e.name.clone(),
        ns: e.ns.clone(),
        decls,
        attrs,
        text: e.text.clone(),
        children: e.children.iter().map(ours).collect(),
    }
}

fn theirs(n: &Node) -> Outline {
    let mut text = String::new();
    let mut children = Vec::new();
    for c in n.get_child_nodes() {
        match c.get_type() {
            Some(NodeType::TextNode) | Some(NodeType::CDataSectionNode) => text.push_str(&c.get_content()),
            Some(NodeType::ElementNode) => children.push(theirs(&c)),
            _ => {}
        }
    }
    let mut decls: Vec<(String, String)> = n
        .get_namespace_declarations()
        .iter()
        .map(|d| (d.get_prefix(), d.get_href()))
        .collect();
    decls.sort();
    Outline {
        name: n.get_name(),
        ns: n.get_namespace().map(|ns| ns.get_href()).unwrap_or_default(),
        decls,
        attrs: n.get_properties().into_iter().collect(),
        text,
        children,
    }
}

fn libxml2(xml: &str, recover: bool) -> Option<Outline> {
    let options = ParserOptions {
        recover,
        no_net: true,
        no_def_dtd: true,
        ..ParserOptions::default()
    };
    let doc = Parser::default().parse_string_with_options(xml, options).ok()?;
    doc.get_root_element().map(|r| theirs(&r))
}

/// Our reading of `xml`, checked against libxml2's: `None` when we refuse it.
fn agree(xml: &str) -> Option<Element> {
    let tree = xml::parse(xml).ok()?;
    let strict = libxml2(xml, false);
    assert_eq!(
        strict.as_ref(),
        Some(&ours(&tree)),
        "trailvault accepted what libxml2 (strict) reads differently:\n{xml:?}"
    );
    let serialised = tree.to_xml();
    assert_eq!(
        libxml2(&serialised, true).as_ref(),
        Some(&ours(&tree)),
        "the serialisation reads back differently (recover mode):\n{serialised:?}"
    );
    assert_eq!(
        libxml2(&serialised, false).as_ref(),
        Some(&ours(&tree)),
        "the serialisation reads back differently (strict):\n{serialised:?}"
    );
    Some(tree)
}

const SIG: &str = r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#_a"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AA==</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>AA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##;

fn entra_doc() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" Version="2.0"><Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a" Version="2.0"><Issuer>x</Issuer>{SIG}<Subject><NameID>alice@example.com</NameID></Subject></Assertion></samlp:Response>"#
    )
}

/// Odd but legal, and illegal: each is read alike by both parsers or refused by trailvault.
fn hand_made() -> Vec<String> {
    let mut v: Vec<String> = [
        "<a/>",
        "<a></a>",
        "<a  b = 'x' c=\"y\" />",
        "<a b=\"&#60;&#x3C;&lt;&gt;&amp;&apos;&quot;\"/>",
        "<a b=\"x\ty\nz\r\nw\"/>",
        "<a b=\"&#9;&#10;&#13;\"/>",
        "<a>x\r\ny\rz</a>",
        "<a>&#13;&#xD;</a>",
        "<a>]]></a>",
        "<a>]]&gt;</a>",
        "<a>]</a>",
        "<a><![CDATA[<b>&amp;]]></a>",
        "<a><!-- c --><!---->x</a>",
        "<a><!-- a -- b --></a>",
        "<a><!-- a ---></a>",
        "<a>&#0;</a>",
        "<a>&#1;</a>",
        "<a>&#x1F600;</a>",
        "<a>&#xD800;</a>",
        "<a>&#xFFFE;</a>",
        "<a>&#+65;</a>",
        "<a>&#x+41;</a>",
        "<a>&#65</a>",
        "<a>&foo;</a>",
        "<a>& b</a>",
        "<a>x\u{1}y</a>",
        "<a>x\u{b}y</a>",
        "<a>x\u{c}y</a>",
        "<a>x\u{7f}y\u{85}z</a>",
        "<a>x\u{fffe}</a>",
        "<a b=\"x\u{1}\"/>",
        "<a b=\"<c/>\"/>",
        "<a b=\"x>y\"/>",
        "<a b='x\"y'/>",
        "<a b=\"1\"c=\"2\"/>",
        "<a b=\"1\" b=\"2\"/>",
        "<a b=1/>",
        "<a b/>",
        "<a / >",
        "<a/ >",
        "< a/>",
        "<a></a >",
        "<a></a b>",
        "<a></A>",
        "<1a/>",
        "<-a/>",
        "<.a/>",
        "<a:b:c xmlns:a=\"urn:a\"/>",
        "<:a/>",
        "<a:/>",
        "<é/>",
        "<a é=\"1\"/>",
        "<p:a/>",
        "<a p:b=\"1\"/>",
        "<a xmlns:p=\"urn:x\" xmlns:q=\"urn:x\" p:b=\"1\" q:b=\"2\"/>",
        "<a xmlns:p=\"urn:x\" p:b=\"1\" b=\"2\"/>",
        "<a xmlns:p=\"\"/>",
        "<a xmlns=\"\"/>",
        "<a xmlns=\"urn:d\"><b xmlns=\"\"/><c/></a>",
        "<a xmlns:ds=\"http://www.w3.org/2000/09/xmldsig&#35;\"><ds:Signature/></a>",
        "<a xmlns=\"http://www.w3.org/2000/09/xmldsig&#x23;\"><Signature/></a>",
        "<a xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\t\"/>",
        "<a xmlns:xml=\"http://www.w3.org/XML/1998/namespace\"/>",
        "<a xmlns:xmlns=\"urn:x\"/>",
        "<a xml:lang=\"en\"/>",
        "<xml:a/>",
        "<?xml version=\"1.0\"?><a/>",
        "<?xml version='1.0' encoding='utf-8' standalone='no'?><a/>",
        "<?xml version=\"1.0\" standalone=\"yes\" encoding=\"UTF-8\"?><a/>",
        "<?xml version=\"1.1\"?><a/>",
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
        "<?xml version=\"1.0\"encoding=\"UTF-8\"?><a/>",
        "<?xml?><a/>",
        " <?xml version=\"1.0\"?><a/>",
        "<?XML version=\"1.0\"?><a/>",
        "<?pi x?><a/>",
        "<!DOCTYPE a><a/>",
        "<a/><!-- after -->\n",
        "<a/>x",
        "x<a/>",
        "<a/><b/>",
        "<a/>&#32;",
        "<a>",
        "</a>",
        "",
        "<a><b></a></b>",
        "<x:a v=\"<ds:Signature xmlns:ds='http://www.w3.org/2000/09/xmldsig#'><ds:SignedInfo/></ds:Signature>\" xmlns:x=\"urn:x\"/>",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let doc = entra_doc();
    v.push(doc.clone());
    v.push(doc.replace("xmldsig#\"", "xmldsig&#35;\""));
    v.push(doc.replace("<Issuer>", "<Issuer a=\"<ds:Signature/>\">"));
    v.push(doc.replace("alice", "al\u{b}ice"));
    v.push(doc.replace("alice", "al&#x1;ice"));
    v
}

#[test]
fn hand_made_documents_are_read_alike_or_refused() {
    let mut accepted = 0;
    for xml in hand_made() {
        if agree(&xml).is_some() {
            accepted += 1;
        }
    }
    // Not everything is refused: the odd-but-legal ones are read, alike.
    assert!(accepted >= 20, "only {accepted} accepted");
}

#[test]
fn the_bypass_doors_are_refused_by_the_reader() {
    let doc = entra_doc();
    for xml in [
        doc.replace("xmldsig#\"", "xmldsig&#35;\""),
        doc.replace(
            "xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\"",
            "xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion&#x20;\"",
        ),
        doc.replace("<Issuer>", &format!("<Issuer a=\"{}\">", SIG.replace('"', "'"))),
        doc.replace("alice", "al\u{1}ice"),
    ] {
        assert!(xml::parse(&xml).is_err(), "read: {xml}");
    }
    assert!(agree(&doc).is_some());
}

/// Pieces a random document is put together from: legal, odd and illegal.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<a>".to_string()),
        Just("</a>".to_string()),
        Just("<b/>".to_string()),
        Just("<p:c xmlns:p=\"urn:p\">".to_string()),
        Just("</p:c>".to_string()),
        Just("<d xmlns=\"urn:d\" x=\"1\">".to_string()),
        Just("</d>".to_string()),
        Just("<e v=\"".to_string()),
        Just("\">".to_string()),
        Just("</e>".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("<".to_string()),
        Just(">".to_string()),
        Just("/".to_string()),
        Just("=".to_string()),
        Just("&amp;".to_string()),
        Just("&#35;".to_string()),
        Just("&#x1;".to_string()),
        Just("&#+9;".to_string()),
        Just("&".to_string()),
        Just(";".to_string()),
        Just("]]>".to_string()),
        Just("<![CDATA[x]]>".to_string()),
        Just("<!--c-->".to_string()),
        Just("--".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("\n".to_string()),
        Just("\r".to_string()),
        Just("\u{1}".to_string()),
        Just("\u{b}".to_string()),
        Just("é".to_string()),
        Just(":".to_string()),
        Just("xmlns:q=\"urn:q&#35;\"".to_string()),
        "[a-z]{1,3}".prop_map(|s| s),
    ]
}

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 1..24).prop_map(|pieces| format!("<r>{}</r>", pieces.concat()))
}

/// A structured mutation of the Entra-shaped response: a piece inserted, a span removed, or
/// a span replaced, at a random place.
fn mutated() -> impl Strategy<Value = String> {
    let doc = entra_doc();
    (0..doc.len(), 1usize..40, piece(), 0u8..3).prop_map(move |(at, span, p, kind)| {
        let cut = |k: usize| {
            let mut k = k.min(doc.len());
            while !doc.is_char_boundary(k) {
                k -= 1;
            }
            k
        };
        let (lo, hi) = (cut(at), cut(at + span));
        match kind {
            0 => format!("{}{p}{}", &doc[..lo], &doc[lo..]),
            1 => format!("{}{}", &doc[..lo], &doc[hi..]),
            _ => format!("{}{p}{}", &doc[..lo], &doc[hi..]),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_documents_are_read_alike_or_refused(xml in document()) {
        agree(&xml);
    }

    #[test]
    fn mutated_responses_that_pass_the_prescreen_have_only_entra_signatures_in_libxml2s_view(xml in mutated()) {
        let started = Instant::now();
        let screened = prescreen::prescreen(&xml);
        prop_assert!(started.elapsed() < Duration::from_secs(1));
        if let Ok(tree) = screened {
            agree(&xml);
            let serialised = tree.to_xml();
            let doc = Parser::default().parse_string(&serialised).expect("libxml2 reads the serialisation");
            let root = doc.get_root_element().expect("a root");
            let ours_count = count_signatures(&ours(&tree));
            let mut theirs_count = 0;
            check_signatures(&root, &mut theirs_count);
            prop_assert_eq!(ours_count, theirs_count);
        }
    }
}

fn count_signatures(o: &Outline) -> usize {
    let own = usize::from(o.name == "Signature" && o.ns == prescreen::NS_DSIG);
    own + o.children.iter().map(count_signatures).sum::<usize>()
}

/// Every Signature libxml2 sees is enveloped in a SAML Response or Assertion and references
/// exactly `#` + that element's ID.
fn check_signatures(n: &Node, count: &mut usize) {
    for c in n.get_child_elements() {
        let is_sig =
            c.get_name() == "Signature" && c.get_namespace().is_some_and(|ns| ns.get_href() == prescreen::NS_DSIG);
        if is_sig {
            *count += 1;
            let parent_ns = n.get_namespace().map(|ns| ns.get_href()).unwrap_or_default();
            let envelops = (n.get_name() == "Response" && parent_ns == prescreen::NS_PROTOCOL)
                || (n.get_name() == "Assertion" && parent_ns == prescreen::NS_ASSERTION);
            assert!(envelops, "a Signature inside {}", n.get_name());
            let id = n.get_property("ID").expect("the signed element has an ID");
            let mut uris = Vec::new();
            collect_reference_uris(&c, &mut uris);
            assert_eq!(uris, vec![format!("#{id}")]);
        }
        check_signatures(&c, count);
    }
}

fn collect_reference_uris(n: &Node, out: &mut Vec<String>) {
    for c in n.get_child_elements() {
        if c.get_name() == "Reference" {
            out.push(c.get_property("URI").unwrap_or_default());
        }
        collect_reference_uris(&c, out);
    }
}
