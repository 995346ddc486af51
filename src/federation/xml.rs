//! The one tree a SAMLResponse becomes: a strict XML 1.0 reader (quick-xml splits the
//! markup; every name, attribute, reference and character is checked here) and the
//! serialisation of that tree that the signature verifier reads.
//!
//! Why a reader of our own over quick-xml's tokens: libxml2 (under xmlsec) and quick-xml
//! disagree on input XML 1.0 forbids (markup in attribute values, raw control characters,
//! namespace names written with character references, `&#+65;`, `]]>` in text...), and a
//! disagreement is a way to show the verifier one document and the reader another. So this
//! reader refuses everything that is not plainly well-formed, and the verifier never sees
//! the input itself: it sees [`Element::to_xml`], a serialisation of this tree that uses
//! only the few escapes every parser reads alike. Exclusive c14n depends on the tree, not
//! on its spelling, so a signature over the input verifies over the serialisation exactly
//! when the tree is the one the signer saw.
//!
//! Names are limited to ASCII NCNames (Entra sends nothing else); DOCTYPE, entities other
//! than the five predefined ones and processing instructions are refused; a comment or CDATA
//! that splits an element's text is recorded so a NameID cut by one is refused, not truncated.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::Reader;

/// The namespace the `xml` prefix is bound to without a declaration.
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// Bounds on the tree, enforced while it is built.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_elements: usize,
    /// Attributes per element, namespace declarations included.
    pub max_attributes: usize,
    pub max_namespace_declarations: usize,
    /// Declarations on an element and all its ancestors.
    pub max_namespaces_in_scope: usize,
}

impl Limits {
    /// What a SAMLResponse may be (the contract's limits).
    pub const SAML: Limits = Limits {
        max_depth: 64,
        max_elements: 4_096,
        max_attributes: 16,
        max_namespace_declarations: 8,
        max_namespaces_in_scope: 32,
    };
    /// IdP metadata: configuration, not attacker input, and larger than a response.
    pub const METADATA: Limits = Limits {
        max_depth: 128,
        max_elements: 1_000_000,
        max_attributes: 256,
        max_namespace_declarations: 256,
        max_namespaces_in_scope: 1_024,
    };
}

/// A piece of an element's content, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The child at this index of `children`.
    Child(usize),
    Text(String),
    CData(String),
    Comment(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribute {
    /// As written: `prefix:local` or `local`.
    pub qname: String,
    /// Its namespace ("" for an unprefixed attribute, which is in none).
    pub ns: String,
    pub local: String,
    /// The value as XML 1.0 defines it: whitespace normalised, references replaced.
    pub value: String,
}

impl Attribute {
    /// The name [`Element::attr`] finds it by: `local`, or `{namespace}local` when prefixed.
    pub fn key(&self) -> Cow<'_, str> {
        if self.ns.is_empty() {
            Cow::Borrowed(&self.local)
        } else {
            Cow::Owned(format!("{{{}}}{}", self.ns, self.local))
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name, without the namespace prefix.
    pub name: String,
    /// The namespace URI the element is in ("" for none).
    pub ns: String,
    pub prefix: Option<String>,
    /// Declarations written on this element: (prefix, namespace); `None` is the default one.
    pub ns_decls: Vec<(Option<String>, String)>,
    /// Attributes other than namespace declarations, in document order.
    pub attributes: Vec<Attribute>,
    pub children: Vec<Element>,
    pub content: Vec<Content>,
    /// Direct text content (text and CDATA), concatenated.
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

fn bad<T>(detail: impl Into<String>) -> Result<T, XmlError> {
    Err(XmlError::Malformed(detail.into()))
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.key() == name)
            .map(|a| a.value.as_str())
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

    /// This element and everything in it, written with only `&amp;`, `&lt;`, `&gt;`, `&quot;`
    /// and the numeric references for tab, newline and carriage return, so that any XML
    /// parser, recovering or not, reads back exactly this tree.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn qname(&self) -> Cow<'_, str> {
        match &self.prefix {
            Some(p) => Cow::Owned(format!("{p}:{}", self.name)),
            None => Cow::Borrowed(&self.name),
        }
    }

    fn write(&self, out: &mut String) {
        let qname = self.qname();
        out.push('<');
        out.push_str(&qname);
        for (prefix, uri) in &self.ns_decls {
            out.push_str(" xmlns");
            if let Some(p) = prefix {
                out.push(':');
                out.push_str(p);
            }
            out.push_str("=\"");
            escape_attribute(uri, out);
            out.push('"');
        }
        for a in &self.attributes {
            out.push(' ');
            out.push_str(&a.qname);
            out.push_str("=\"");
            escape_attribute(&a.value, out);
            out.push('"');
        }
        if self.content.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for piece in &self.content {
            match piece {
                Content::Child(i) => {
                    if let Some(child) = self.children.get(*i) {
                        child.write(out);
                    }
                }
                Content::Text(t) => escape_text(t, out),
                Content::CData(c) => {
                    out.push_str("<![CDATA[");
                    out.push_str(c);
                    out.push_str("]]>");
                }
                Content::Comment(c) => {
                    out.push_str("<!--");
                    out.push_str(c);
                    out.push_str("-->");
                }
            }
        }
        out.push_str("</");
        out.push_str(&qname);
        out.push('>');
    }
}

fn escape_attribute(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            // Written raw, these would be normalised to spaces by the reader.
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            // `]]>` is not allowed in text; escaping every `>` keeps it out.
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// XML 1.0's Char production (a Rust `char` is never a surrogate).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn check_chars(s: &str, what: &str) -> Result<(), XmlError> {
    match s.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => bad(format!(
            "{what} holds the character U+{:04X}, which XML 1.0 does not allow",
            c as u32
        )),
        None => Ok(()),
    }
}

/// An NCName, limited to ASCII: a letter or `_`, then letters, digits, `_`, `-` and `.`.
fn is_ncname(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `prefix:local` or `local`, each an NCName.
fn split_qname(qname: &str) -> Result<(Option<&str>, &str), XmlError> {
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, qname),
    };
    if !is_ncname(local) || prefix.is_some_and(|p| !is_ncname(p)) {
        let shown: String = qname.chars().take(64).collect();
        return bad(format!(
            "{shown:?} is not an XML name this reader accepts (ASCII NCNames)"
        ));
    }
    Ok((prefix, local))
}

/// Replaces the five predefined entities and character references; anything else is refused.
fn unescape(raw: &str) -> Result<Cow<'_, str>, XmlError> {
    if !raw.contains('&') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';') else {
            return bad("an `&` that starts no reference");
        };
        let name = &after[..semi];
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => char_reference(name)?,
        };
        if !is_xml_char(c) {
            return bad(format!(
                "a character reference to U+{:04X}, which XML 1.0 does not allow",
                c as u32
            ));
        }
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// `#123` or `#x7B`: digits only (no sign, no space), a Unicode scalar value.
fn char_reference(name: &str) -> Result<char, XmlError> {
    let (digits, radix) = match name.strip_prefix("#x") {
        Some(hex) => (hex, 16),
        None => match name.strip_prefix('#') {
            Some(dec) => (dec, 10),
            None => return bad("an entity reference other than the five XML predefines"),
        },
    };
    let valid = !digits.is_empty() && digits.len() <= 8 && digits.chars().all(|c| c.is_digit(radix));
    u32::from_str_radix(digits, radix)
        .ok()
        .filter(|_| valid)
        .and_then(char::from_u32)
        .map_or_else(|| bad("a malformed character reference"), Ok)
}

/// `version="1.0"`, then optionally `encoding` (UTF-8 only) and `standalone`, as XML 1.0 writes them.
fn check_declaration(raw: &str) -> Result<(), XmlError> {
    let Some(mut rest) = raw.strip_prefix("xml") else {
        return bad("bad XML declaration");
    };
    let mut seen_version = false;
    let mut order = 0;
    loop {
        let trimmed = rest.trim_start_matches(is_xml_space);
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return bad("bad XML declaration");
        }
        let (name, value, after) = pseudo_attribute(trimmed)?;
        let (position, ok) = match name {
            "version" => (0, value == "1.0"),
            "encoding" => (1, value.eq_ignore_ascii_case("utf-8")),
            "standalone" => (2, value == "yes" || value == "no"),
            _ => return bad("bad XML declaration"),
        };
        if position < order || (position > 0 && !seen_version) {
            return bad("bad XML declaration");
        }
        if !ok {
            let shown: String = value.chars().take(32).collect();
            return bad(match name {
                "version" => "only XML 1.0 is accepted".to_string(),
                "encoding" => format!("the XML declares the encoding {shown:?}; only UTF-8 is accepted"),
                _ => "bad XML declaration".to_string(),
            });
        }
        seen_version |= position == 0;
        order = position + 1;
        rest = after;
    }
    if !seen_version {
        return bad("the XML declaration has no version");
    }
    Ok(())
}

/// `name S? = S? "value"` (or single quotes): the name, the raw value and what follows.
fn pseudo_attribute(s: &str) -> Result<(&str, &str, &str), XmlError> {
    let end = s.find(|c: char| is_xml_space(c) || c == '=').unwrap_or(s.len());
    let (name, rest) = s.split_at(end);
    let rest = rest.trim_start_matches(is_xml_space);
    let Some(rest) = rest.strip_prefix('=') else {
        return bad("an attribute without `=`");
    };
    let rest = rest.trim_start_matches(is_xml_space);
    let Some(quote) = rest.chars().next().filter(|q| *q == '"' || *q == '\'') else {
        return bad("an attribute value without quotes");
    };
    let body = &rest[1..];
    let Some(close) = body.find(quote) else {
        return bad("an attribute value that does not end");
    };
    Ok((name, &body[..close], &body[close + 1..]))
}

/// An attribute as written: its name and raw value.
type RawAttribute<'a> = (&'a str, &'a str);

/// A start tag's name and attributes, read strictly.
fn split_tag(raw: &str) -> Result<(&str, Vec<RawAttribute<'_>>), XmlError> {
    let end = raw.find(is_xml_space).unwrap_or(raw.len());
    let (name, mut rest) = raw.split_at(end);
    let mut attributes = Vec::new();
    loop {
        let trimmed = rest.trim_start_matches(is_xml_space);
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return bad("attributes must be separated by whitespace");
        }
        let (name, value, after) = pseudo_attribute(trimmed)?;
        attributes.push((name, value));
        rest = after;
    }
    Ok((name, attributes))
}

/// Sees each element as the reader meets it, so checks run in document order: the first
/// problem in the document is the one reported, whether a limit or a watcher finds it.
pub trait Watch {
    type Error: From<XmlError>;
    /// The element's name, namespace and attributes are read; its content is not.
    fn open(&mut self, element: &Element) -> Result<(), Self::Error>;
    /// The element is complete.
    fn close(&mut self, element: &Element) -> Result<(), Self::Error>;
}

/// Watches nothing.
struct Unwatched;

impl Watch for Unwatched {
    type Error = XmlError;
    fn open(&mut self, _: &Element) -> Result<(), XmlError> {
        Ok(())
    }
    fn close(&mut self, _: &Element) -> Result<(), XmlError> {
        Ok(())
    }
}

struct Open {
    element: Element,
    /// How many in-scope declarations there were before this element.
    scope_len: usize,
}

/// Reads a document into its root element under `limits`.
pub fn parse_with(xml: &str, limits: &Limits) -> Result<Element, XmlError> {
    parse_watched(xml, limits, &mut Unwatched)
}

/// [`parse_with`], showing each element to `watch` as it is read.
pub fn parse_watched<W: Watch>(xml: &str, limits: &Limits, watch: &mut W) -> Result<Element, W::Error> {
    if xml.starts_with('\u{feff}') {
        return Err(malformed("a byte-order mark precedes the XML"));
    }
    check_chars(xml, "the document")?;
    // XML 1.0 2.11: line ends are read as a single newline before anything else.
    let normalised = if xml.contains('\r') {
        Cow::Owned(xml.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(xml)
    };
    let mut reader = Reader::from_str(&normalised);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.expand_empty_elements = false;
    config.trim_text(false);
    let mut builder = Builder {
        limits,
        watch,
        stack: Vec::new(),
        scope: Vec::new(),
        root: None,
        elements: 0,
    };
    let mut first = true;
    loop {
        let event = reader.read_event().map_err(|e| {
            let shown: String = e.to_string().chars().take(128).collect();
            XmlError::Malformed(format!("not well-formed XML: {shown}"))
        })?;
        let is_first = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(d) => {
                if !is_first {
                    return Err(malformed("an XML declaration that is not at the very start"));
                }
                check_declaration(&String::from_utf8_lossy(&d))?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype.into()),
            Event::PI(_) => return Err(malformed("processing instructions are not allowed")),
            Event::Start(e) => builder.open(&String::from_utf8_lossy(&e))?,
            Event::Empty(e) => {
                builder.open(&String::from_utf8_lossy(&e))?;
                builder.close()?;
            }
            Event::End(_) => builder.close()?,
            Event::Text(t) => builder.text(&String::from_utf8_lossy(&t))?,
            Event::CData(c) => builder.cdata(&String::from_utf8_lossy(&c))?,
            Event::Comment(c) => builder.comment(&String::from_utf8_lossy(&c))?,
            Event::Eof => break,
        }
    }
    if !builder.stack.is_empty() {
        return Err(malformed("the document ends inside an element"));
    }
    builder.root.ok_or_else(|| malformed("no root element"))
}

fn malformed<E: From<XmlError>>(detail: &str) -> E {
    XmlError::Malformed(detail.to_string()).into()
}

/// Reads a SAMLResponse under the contract's limits ([`Limits::SAML`]).
pub fn parse(xml: &str) -> Result<Element, XmlError> {
    parse_with(xml, &Limits::SAML)
}

struct Builder<'l, W> {
    limits: &'l Limits,
    watch: &'l mut W,
    stack: Vec<Open>,
    /// In-scope declarations, innermost last.
    scope: Vec<(Option<String>, String)>,
    root: Option<Element>,
    elements: usize,
}

impl<W: Watch> Builder<'_, W> {
    fn resolve(&self, prefix: Option<&str>) -> Result<String, XmlError> {
        if prefix == Some("xml") {
            return Ok(NS_XML.to_string());
        }
        match self.scope.iter().rev().find(|(p, _)| p.as_deref() == prefix) {
            Some((_, uri)) => Ok(uri.clone()),
            None if prefix.is_none() => Ok(String::new()),
            None => {
                let shown: String = prefix.unwrap_or_default().chars().take(64).collect();
                bad(format!("the namespace prefix {shown:?} is not declared"))
            }
        }
    }

    fn open(&mut self, raw: &str) -> Result<(), W::Error> {
        let element = self.read_start(raw)?;
        self.watch.open(&element.0)?;
        self.stack.push(Open {
            element: element.0,
            scope_len: element.1,
        });
        Ok(())
    }

    /// A start tag read into an element, its declarations added to the scope; with the scope's
    /// length before them.
    fn read_start(&mut self, raw: &str) -> Result<(Element, usize), XmlError> {
        let limits = self.limits;
        if self.root.is_some() {
            return bad("content after the root element");
        }
        self.elements += 1;
        if self.elements > limits.max_elements {
            return bad(format!("more than {} elements", limits.max_elements));
        }
        if self.stack.len() >= limits.max_depth {
            return bad(format!("elements nested deeper than {}", limits.max_depth));
        }
        let (qname, raw_attributes) = split_tag(raw)?;
        let (prefix, local) = split_qname(qname)?;
        if raw_attributes.len() > limits.max_attributes {
            return bad(format!(
                "an element {local} has more than {} attributes",
                limits.max_attributes
            ));
        }
        let scope_len = self.scope.len();
        let mut element = Element {
            name: local.to_string(),
            prefix: prefix.map(str::to_string),
            ..Default::default()
        };
        let mut plain = Vec::new();
        for (name, raw_value) in &raw_attributes {
            if raw_value.contains('<') {
                return bad("markup (`<`) inside an attribute value");
            }
            if raw_attributes.iter().filter(|(n, _)| n == name).count() > 1 {
                return bad("an attribute appears twice");
            }
            let declared = match *name {
                "xmlns" => Some(None),
                n => n.strip_prefix("xmlns:").map(Some),
            };
            match declared {
                Some(p) => element.ns_decls.push(declaration(p, raw_value)?),
                None => plain.push((*name, *raw_value)),
            }
        }
        if element.ns_decls.len() > limits.max_namespace_declarations {
            return bad(format!(
                "an element declares more than {} namespaces",
                limits.max_namespace_declarations
            ));
        }
        self.scope.extend(element.ns_decls.iter().cloned());
        if self.scope.len() > limits.max_namespaces_in_scope {
            return bad(format!(
                "more than {} namespace declarations in scope",
                limits.max_namespaces_in_scope
            ));
        }
        element.ns = self.resolve(prefix)?;
        for (name, raw_value) in plain {
            let (p, l) = split_qname(name)?;
            let ns = match p {
                Some(p) => self.resolve(Some(p))?,
                None => String::new(),
            };
            // XML 1.0 3.3.3: literal whitespace in an attribute value reads as a space.
            let spaced = raw_value.replace(['\t', '\n'], " ");
            let value = unescape(&spaced)?.into_owned();
            if element.attributes.iter().any(|a| a.ns == ns && a.local == l) {
                return bad("two attributes with the same name in the same namespace");
            }
            element.attributes.push(Attribute {
                qname: name.to_string(),
                ns,
                local: l.to_string(),
                value,
            });
        }
        Ok((element, scope_len))
    }

    fn close(&mut self) -> Result<(), W::Error> {
        let Some(open) = self.stack.pop() else {
            return Err(malformed("unbalanced end tag"));
        };
        self.watch.close(&open.element)?;
        self.scope.truncate(open.scope_len);
        match self.stack.last_mut() {
            Some(parent) => {
                let parent = &mut parent.element;
                parent.content.push(Content::Child(parent.children.len()));
                parent.children.push(open.element);
            }
            None => self.root = Some(open.element),
        }
        Ok(())
    }

    fn text(&mut self, raw: &str) -> Result<(), XmlError> {
        let Some(open) = self.stack.last_mut() else {
            if raw.chars().all(is_xml_space) {
                return Ok(());
            }
            return bad("text outside the root element");
        };
        if raw.contains("]]>") {
            return bad("`]]>` in text");
        }
        let text = unescape(raw)?.into_owned();
        open.element.text.push_str(&text);
        open.element.content.push(Content::Text(text));
        Ok(())
    }

    fn cdata(&mut self, raw: &str) -> Result<(), XmlError> {
        let Some(open) = self.stack.last_mut() else {
            return bad("CDATA outside the root element");
        };
        open.element.text.push_str(raw);
        open.element.text_interrupted = true;
        open.element.content.push(Content::CData(raw.to_string()));
        Ok(())
    }

    fn comment(&mut self, raw: &str) -> Result<(), XmlError> {
        if raw.contains("--") || raw.ends_with('-') {
            return bad("`--` inside a comment");
        }
        if let Some(open) = self.stack.last_mut() {
            open.element.text_interrupted = true;
            open.element.content.push(Content::Comment(raw.to_string()));
        }
        Ok(())
    }
}

/// A namespace declaration's prefix and name, refused where parsers could read it differently.
fn declaration(prefix: Option<&str>, raw: &str) -> Result<(Option<String>, String), XmlError> {
    if let Some(p) = prefix {
        if !is_ncname(p) || p == "xml" || p == "xmlns" {
            return bad("a namespace prefix that cannot be declared");
        }
        if raw.is_empty() {
            return bad("a namespace prefix declared empty");
        }
    }
    // A reference or whitespace in a namespace name is read as written by some parsers and
    // decoded by others: the same element would be in two namespaces.
    if raw.contains(['&', '"', '\'']) || raw.chars().any(is_xml_space) {
        return bad("a namespace name with a character reference, a quote or whitespace");
    }
    if raw == NS_XML || raw == "http://www.w3.org/2000/xmlns/" {
        return bad("a reserved namespace name declared");
    }
    Ok((prefix.map(str::to_string), raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(xml: &str) -> bool {
        matches!(parse(xml), Err(XmlError::Malformed(_)))
    }

    #[test]
    fn refuses_doctype_and_entities_and_processing_instructions() {
        let bomb =
            r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><a>&lol2;</a>"#;
        assert_eq!(parse(bomb).unwrap_err(), XmlError::Doctype);
        assert!(malformed("<a>&undefined;</a>"));
        assert!(malformed("<?xml version=\"1.0\"?><?php evil ?><a/>"));
        assert!(malformed("\u{feff}<a/>"));
        assert!(malformed("<a><b></a>"));
        assert!(malformed("<a/><b/>"));
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
        assert!(malformed("<p:Response/>"));
        assert!(malformed(r#"<a q:x="1"/>"#));
    }

    #[test]
    fn what_parsers_read_differently_is_refused() {
        // A namespace name written with a character reference, prefixed or default.
        assert!(malformed(r#"<a xmlns:ds="http://www.w3.org/2000/09/xmldsig&#35;"/>"#));
        assert!(malformed(r#"<a xmlns="http://www.w3.org/2000/09/xmldsig&#x23;"/>"#));
        // Markup in an attribute value.
        assert!(malformed(r#"<a v="<ds:Signature/>"/>"#));
        // Raw and referenced control characters.
        assert!(malformed("<a>x\u{1}y</a>"));
        assert!(malformed("<a v=\"x\u{b}\"/>"));
        assert!(malformed("<a>&#1;</a>"));
        assert!(malformed("<a>&#xFFFE;</a>"));
        assert!(malformed("<a>&#+65;</a>"));
        assert!(malformed("<a>&# 65;</a>"));
        assert!(malformed("<a>]]></a>"));
        assert!(malformed("<a><!-- a -- b --></a>"));
        assert!(malformed("<a><!-- a ---></a>"));
        assert!(malformed(r#"<a b="1"c="2"/>"#));
        assert!(malformed(r#"<a b="1" b="2"/>"#));
        assert!(malformed(r#"<a xmlns:p="urn:x" xmlns:q="urn:x" p:b="1" q:b="2"/>"#));
        assert!(malformed("<a:b:c xmlns:a=\"urn:a\"/>"));
        assert!(malformed("<1a/>"));
        assert!(malformed("x<a/>"));
        assert!(malformed("<a/>&#32;"));
        assert!(malformed("<?xml version=\"1.0\"encoding=\"UTF-8\"?><a/>"));
        assert!(malformed("<?xml encoding=\"UTF-8\"?><a/>"));
        assert!(malformed("<?xml version=\"1.1\"?><a/>"));
        assert!(parse("<?xml version='1.0' encoding='utf-8' standalone='yes' ?>\n<a/>\n").is_ok());
    }

    #[test]
    fn attribute_values_and_line_ends_are_read_as_xml_defines_them() {
        let root = parse("<a v=\"x\ty\r\nz\" w=\"&#9;&#10;&lt;&quot;\">1\r\n2\r3</a>").unwrap();
        assert_eq!(root.attr("v"), Some("x y z"));
        assert_eq!(root.attr("w"), Some("\t\n<\""));
        assert_eq!(root.text, "1\n2\n3");
    }

    #[test]
    fn the_serialisation_reads_back_as_the_same_tree() {
        let xml = "<p:a xmlns:p=\"urn:p\" xmlns=\"urn:d\" v=\"&#9;x&amp;&lt;&quot;'\" p:w=\"1\"><b>t&amp;&lt;&gt;&#13;</b><!-- c --><![CDATA[<x>]]>tail<c xmlns=\"\"/></p:a>";
        let tree = parse(xml).unwrap();
        let again = parse(&tree.to_xml()).unwrap();
        assert_eq!(tree, again);
        assert_eq!(again.children[1].ns, "");
        assert_eq!(again.children[0].ns, "urn:d");
    }

    #[test]
    fn limits_hold_while_the_tree_is_built() {
        let deep = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        assert!(parse(&deep(64)).is_ok());
        assert!(malformed(&deep(65)));
        assert!(malformed(&format!("<a>{}</a>", "<b/>".repeat(4_096))));
        let attrs: String = (0..17).map(|i| format!(" a{i}=\"x\"")).collect();
        assert!(malformed(&format!("<a{attrs}/>")));
        let decls: String = (0..9).map(|i| format!(" xmlns:n{i}=\"urn:{i}\"")).collect();
        assert!(malformed(&format!("<a{decls}/>")));
        let nested: String = (0..5)
            .map(|i| format!("<e{i} xmlns:a{i}=\"u:a\" xmlns:b{i}=\"u:b\" xmlns:c{i}=\"u:c\" xmlns:d{i}=\"u:d\" xmlns:e{i}=\"u:e\" xmlns:f{i}=\"u:f\" xmlns:g{i}=\"u:g\">"))
            .collect();
        let closing: String = (0..5).rev().map(|i| format!("</e{i}>")).collect();
        assert!(malformed(&format!("{nested}{closing}")));
    }
}
