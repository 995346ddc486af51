//! Entra ID SAML for AWS console sign-in: validation of SAMLResponses (signature
//! through samael/xmlsec, everything AWS and Entra need on top of it), the role
//! mapping as code, and the audit of federated sign-ins in archived CloudTrail logs.
//!
//! Every file here compiles in every build. The signature step is the `xmlsec` edge's (the
//! only part the `saml` cargo feature gates); files, the network and locks are the
//! `federation_io` edge's.

pub mod audit;
mod claims;
pub mod detail;
pub mod metadata;
pub mod outcome;
pub mod prescreen;
pub mod replay;
pub mod roles;
pub mod validate;
pub mod xml;

/// What a build without the `saml` feature says when asked to validate a SAML response.
pub const NO_SAML_SUPPORT: &str =
    "this build has no SAML support (built without the `saml` feature); use the container image";

/// `Ok` when this build can validate SAML responses; otherwise the message to exit 2 with.
pub fn saml_support() -> Result<(), &'static str> {
    if crate::xmlsec::AVAILABLE {
        Ok(())
    } else {
        Err(NO_SAML_SUPPORT)
    }
}
