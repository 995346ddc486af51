//! Entra ID SAML for AWS console sign-in: validation of SAMLResponses (signature
//! through samael/xmlsec, everything AWS and Entra need on top of it), the role
//! mapping as code, and the audit of federated sign-ins in archived CloudTrail logs.
//!
//! Only `validate` and `xmlsec_guard` need samael (and through it libxmlsec1, libxml2,
//! libxslt and OpenSSL). Without the `saml` cargo feature (the Azure Functions package)
//! `validate` is replaced by `saml_disabled.rs`, which has the same API and refuses with
//! [`NO_SAML_SUPPORT`], and `xmlsec_guard` is left out; the prescreen, the audit, the role
//! mapping and the metadata loader stay.

pub mod audit;
pub mod detail;
pub mod metadata;
pub mod outcome;
pub mod prescreen;
pub mod replay;
pub mod roles;
#[cfg(feature = "saml")]
pub mod validate;
#[cfg(not(feature = "saml"))]
#[path = "saml_disabled.rs"]
pub mod validate;
pub mod xml;
#[cfg(feature = "saml")]
pub mod xmlsec_guard;

/// What a build without the `saml` feature says when asked to validate a SAML response.
pub const NO_SAML_SUPPORT: &str =
    "this build has no SAML support (built without the `saml` feature); use the container image";

/// `Ok` when this build can validate SAML responses; otherwise the message to exit 2 with.
pub fn saml_support() -> Result<(), &'static str> {
    if cfg!(feature = "saml") {
        Ok(())
    } else {
        Err(NO_SAML_SUPPORT)
    }
}
