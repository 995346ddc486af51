//! A small, strict, namespace-aware XML tree for reading SAML after its signature has been
//! checked. DOCTYPE, entities and processing instructions are refused outright; comments are
//! recorded so a NameID with a comment inside can be refused rather than truncated; a prefix
//! that is not declared is refused. SAML input reaches this parser only after the streaming
//! pre-screen bounded its size, depth and counts.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

#[derive(Debug, Clone, Default)]
pub struct Element {
    /// Local name, without the namespace prefix.
    pub name: String,
    /// The namespace URI the element is in ("" for none).
    pub ns: String,
    /// Attributes: unprefixed ones by their local name, prefixed ones as `{namespace}local`;
    /// namespace declarations are not attributes.
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// Direct text content, concatenated.
    pub text: String,
    /// A comment or CDATA split the text: a naive reader would see only part of it.
    pub text_interrupted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the XML has a DOCTYPE (entity expansion and XXE are refused)")]
    Doctype,
    #[error("malformed XML: {0}")]
    Malformed(String),
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Whether this element is `name` in namespace `ns`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// Children that are `name` in namespace `ns`.
    pub fn children_in<'a>(&'a self, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// The only child `name` in `ns`: None when there is none, Err(n) when there are n > 1.
    pub fn only_child_in(&self, ns: &str, name: &str) -> Result<Option<&Element>, usize> {
        let mut found = None;
        let mut n = 0;
        for c in self.children.iter().filter(|c| c.is(ns, name)) {
            n += 1;
            found = found.or(Some(c));
        }
        if n > 1 {
            Err(n)
        } else {
            Ok(found)
        }
    }

    /// Every descendant (and self) that is `name` in `ns`, in document order.
    pub fn descendants_in<'a>(&'a self, ns: &str, name: &str, out: &mut Vec<&'a Element>) {
        if self.is(ns, name) {
            out.push(self);
        }
        for c in &self.children {
            c.descendants_in(ns, name, out);
        }
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Every descendant (and self) with this local name, in document order.
    pub fn descendants<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        if self.name == name {
            out.push(self);
        }
        for c in &self.children {
            c.descendants(name, out);
        }
    }

    pub fn count(&self, name: &str) -> usize {
        let mut v = Vec::new();
        self.descendants(name, &mut v);
        v.len()
    }
}

fn namespace(r: &ResolveResult<'_>) -> Result<String, XmlError> {
    match r {
        ResolveResult::Bound(ns) => Ok(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(XmlError::Malformed(format!(
            "the namespace prefix {:?} is not declared",
            String::from_utf8_lossy(p)
        ))),
    }
}

fn element(
    reader: &NsReader<&[u8]>,
    ns: Result<String, XmlError>,
    e: &quick_xml::events::BytesStart<'_>,
) -> Result<Element, XmlError> {
    let bad = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let mut el = Element {
        name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
        ns: ns?,
        ..Default::default()
    };
    for a in e.attributes() {
        let a = a.map_err(|e| bad(&e))?;
        let key = a.key.as_ref();
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            continue;
        }
        let v = a.unescape_value().map_err(|e| bad(&e))?.into_owned();
        let local = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        let name = if a.key.prefix().is_some() {
            let (r, _) = reader.resolve_attribute(a.key);
            format!("{{{}}}{local}", namespace(&r)?)
        } else {
            local
        };
        if el.attrs.iter().any(|(k, _)| *k == name) {
            return Err(XmlError::Malformed(format!("the attribute {name} appears twice")));
        }
        el.attrs.push((name, v));
    }
    Ok(el)
}

/// Parses a whole document into its root element.
pub fn parse(xml: &str) -> Result<Element, XmlError> {
    if xml.starts_with('\u{feff}') {
        return Err(XmlError::Malformed("a byte-order mark precedes the XML".into()));
    }
    let mut reader = NsReader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let bad = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(|e| bad(&e))?;
        let ns = namespace(&resolved);
        match event {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::PI(_) => return Err(XmlError::Malformed("processing instructions are not allowed".into())),
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err(XmlError::Malformed("content after the root element".into()));
            }
            Event::Start(e) => stack.push(element(&reader, ns, &e)?),
            Event::Empty(e) => {
                let el = element(&reader, ns, &e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| bad(&e))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&text);
                } else if !text.trim().is_empty() {
                    return Err(XmlError::Malformed("text outside the root element".into()));
                }
            }
            Event::CData(c) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&String::from_utf8_lossy(&c));
                    el.text_interrupted = true;
                }
            }
            Event::Comment(_) => {
                if let Some(el) = stack.last_mut() {
                    el.text_interrupted = true;
                }
            }
            Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("the document ends inside an element".into()));
    }
    root.ok_or_else(|| XmlError::Malformed("no root element".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_doctype_and_entities_and_processing_instructions() {
        let bomb =
            r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><a>&lol2;</a>"#;
        assert_eq!(parse(bomb).unwrap_err(), XmlError::Doctype);
        assert!(parse("<a>&undefined;</a>").is_err());
        assert!(parse("<?xml version=\"1.0\"?><?php evil ?><a/>").is_err());
        assert!(parse("\u{feff}<a/>").is_err());
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a/><b/>").is_err());
    }

    #[test]
    fn reads_local_names_attributes_and_marks_comment_split_text() {
        let root = parse(r#"<samlp:Response xmlns:samlp="urn:p" ID="_1"><NameID>admin@example.com<!-- x -->.evil.com</NameID><B>t&amp;c</B></samlp:Response>"#).unwrap();
        assert_eq!(root.name, "Response");
        assert_eq!(root.ns, "urn:p");
        assert_eq!(root.attr("ID"), Some("_1"));
        assert_eq!(root.child("NameID").unwrap().ns, "");
        let n = root.child("NameID").unwrap();
        assert!(n.text_interrupted);
        assert_eq!(n.text, "admin@example.com.evil.com");
        assert_eq!(root.child("B").unwrap().text, "t&c");
        assert!(!root.child("B").unwrap().text_interrupted);
    }

    #[test]
    fn namespaces_are_resolved_and_undeclared_prefixes_refused() {
        let root = parse(r#"<Response xmlns="urn:p" xmlns:x="urn:x" x:ID="_2" ID="_1"><x:Assertion/><a:B xmlns:a="urn:a"/></Response>"#).unwrap();
        assert_eq!(root.ns, "urn:p");
        assert_eq!(root.attr("ID"), Some("_1"));
        assert_eq!(root.attr("{urn:x}ID"), Some("_2"));
        assert!(root.children[0].is("urn:x", "Assertion"));
        assert!(root.children[1].is("urn:a", "B"));
        assert!(parse("<p:Response/>").is_err());
        assert!(parse(r#"<a q:x="1"/>"#).is_err());
    }
}
