//! The edge to libxml2 and xmlsec (through samael): the only place with their FFI and
//! `unsafe`. The federation domain hands over a serialised, already checked document and the
//! trusted certificates, and gets back the content a trusted certificate signed.
//!
//! Only this module is gated by the `saml` cargo feature: without it (the Azure Functions
//! package, which must link only glibc's libraries) [`reduce_to_signed`] answers
//! [`ReduceError::Unsupported`] and the rest of the federation domain is the same code.

#[cfg(feature = "saml")]
pub mod guard;
#[cfg(feature = "saml")]
mod reduce;

/// Why no signed content came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReduceError {
    #[error("no trusted signing certificate is configured")]
    NoCertificates,
    /// xmlsec refused a Signature (its error codes go to the debug log, never the document).
    #[error("a Signature does not verify against the trusted certificates")]
    Invalid,
    /// samael panicked on this input; the panic was caught.
    #[error("the signature could not be verified on this input")]
    Panicked,
    #[error("this build has no SAML support (built without the `saml` feature); use the container image")]
    Unsupported,
}

/// Whether this build can verify signatures (the `saml` feature).
pub const AVAILABLE: bool = cfg!(feature = "saml");

/// Verifies every Signature in `xml` against `certs` (DER) with samael's
/// `ValidateAndMarkNoAncestors` and returns only the signed content. `allow_sha1` admits
/// RSA-SHA1/SHA-1 beside RSA-SHA256/SHA-256.
pub fn reduce_to_signed(xml: &str, certs: &[Vec<u8>], allow_sha1: bool) -> Result<String, ReduceError> {
    if certs.is_empty() {
        return Err(ReduceError::NoCertificates);
    }
    #[cfg(feature = "saml")]
    {
        reduce::reduce(xml, certs, allow_sha1)
    }
    #[cfg(not(feature = "saml"))]
    {
        let _ = (xml, allow_sha1);
        Err(ReduceError::Unsupported)
    }
}
