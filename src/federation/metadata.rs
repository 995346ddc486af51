//! Entra federation metadata: the issuer (entityID) and every signing certificate
//! (IDPSSODescriptor and RoleDescriptor KeyDescriptors with `use="signing"` or no `use`).

use base64::Engine;

use super::xml::{self, Element};

#[derive(Debug, Clone)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// DER certificates, de-duplicated, in document order.
    pub signing_certs: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("federation metadata is not valid XML: {0}")]
    Xml(#[from] xml::XmlError),
    #[error("federation metadata has no EntityDescriptor entityID")]
    NoEntityId,
    #[error(
        "federation metadata lists no signing certificate: refusing to validate anything against an empty trust store"
    )]
    NoCerts,
    #[error("federation metadata has a certificate that is not base64: {0}")]
    BadCert(#[from] base64::DecodeError),
}

/// The metadata at `location` (a path or URL, for the message) is not usable.
#[derive(Debug, thiserror::Error)]
#[error("federation.idp_metadata {location}: {source}")]
pub struct InvalidMetadata {
    pub location: String,
    #[source]
    pub source: MetadataError,
}

impl crate::fault::Classify for InvalidMetadata {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Config
    }
}

pub fn parse(text: &str) -> Result<IdpMetadata, MetadataError> {
    // Entra serves metadata with a UTF-8 BOM; it is harmless here.
    let root = xml::parse_with(text.trim_start_matches('\u{feff}'), &xml::Limits::METADATA)?;
    let entity_id = root.attr("entityID").ok_or(MetadataError::NoEntityId)?.to_string();
    let mut descriptors = Vec::new();
    root.descendants("KeyDescriptor", &mut descriptors);
    let mut certs: Vec<Vec<u8>> = Vec::new();
    for kd in descriptors {
        if kd.attr("use").is_some_and(|u| u != "signing") {
            continue;
        }
        let mut found: Vec<&Element> = Vec::new();
        kd.descendants("X509Certificate", &mut found);
        for c in found {
            let b64: String = c.text.chars().filter(|c| !c.is_whitespace()).collect();
            let der = base64::engine::general_purpose::STANDARD.decode(&b64)?;
            if !certs.contains(&der) {
                certs.push(der);
            }
        }
    }
    if certs.is_empty() {
        return Err(MetadataError::NoCerts);
    }
    Ok(IdpMetadata {
        entity_id,
        signing_certs: certs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_signing_certs_from_both_descriptors_and_skips_encryption_keys() {
        let md = r#"<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sts.windows.net/t/">
<RoleDescriptor><KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>AAEC</X509Certificate></X509Data></KeyInfo></KeyDescriptor></RoleDescriptor>
<IDPSSODescriptor><KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>AAEC</X509Certificate></X509Data></KeyInfo></KeyDescriptor>
<KeyDescriptor><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>
AwQF
</X509Certificate></X509Data></KeyInfo></KeyDescriptor>
<KeyDescriptor use="encryption"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>BgcI</X509Certificate></X509Data></KeyInfo></KeyDescriptor></IDPSSODescriptor></EntityDescriptor>"#;
        let m = parse(&format!("\u{feff}{md}")).unwrap();
        assert_eq!(m.entity_id, "https://sts.windows.net/t/");
        assert_eq!(m.signing_certs, vec![vec![0, 1, 2], vec![3, 4, 5]]);
    }

    #[test]
    fn no_signing_cert_is_an_error() {
        let md = r#"<EntityDescriptor entityID="x"><IDPSSODescriptor/></EntityDescriptor>"#;
        assert!(matches!(parse(md), Err(MetadataError::NoCerts)));
    }
}
