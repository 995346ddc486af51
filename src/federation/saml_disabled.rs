//! `validate` in a build without the `saml` cargo feature (the Azure Functions package,
//! whose binary must link only glibc's own libraries, while samael's signature checks need
//! libxmlsec1, libxml2, libxslt and OpenSSL).
//!
//! The public API mirrors `validate.rs`, so callers compile unchanged; everything that would
//! need samael fails closed with [`NO_SAML_SUPPORT`]. The CLI checks
//! [`super::saml_support`] first and exits 2 with that message.

use chrono::{DateTime, Utc};

use super::replay::ReplayCache;

/// What every SAML validation entry point answers in this build.
pub const NO_SAML_SUPPORT: &str = super::NO_SAML_SUPPORT;

pub use super::outcome::*;

fn unsupported<T>() -> Result<T, Rejection> {
    Err(Rejection {
        reason: Reason::Unsupported,
        detail: NO_SAML_SUPPORT.to_string(),
    })
}

/// Refuses: nothing can be validated in this build.
pub fn decode_input(_input: &[u8]) -> Result<String, Rejection> {
    unsupported()
}

/// Fails closed: with no SAML support nothing is vouched for.
pub fn is_region_shape(_s: &str) -> bool {
    false
}

/// Fails closed: with no SAML support no sign-in endpoint is vouched for.
pub fn is_aws_signin_endpoint(_url: &str) -> bool {
    false
}

impl Validator {
    /// Refuses every response: there is no signature verification in this build.
    pub fn validate(
        &self,
        _xml_text: &str,
        _at: DateTime<Utc>,
        _replay: Option<&mut ReplayCache>,
    ) -> Result<Accepted, Rejection> {
        unsupported()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_refuses_with_the_reason() {
        let e = decode_input(b"PHNhbWxwOlJlc3BvbnNlLz4=").unwrap_err();
        assert_eq!(e.reason, Reason::Unsupported);
        assert!(e.detail.contains("`saml` feature"), "{}", e.detail);
        assert!(!is_aws_signin_endpoint("https://signin.aws.amazon.com/saml"));
        assert!(super::super::saml_support().is_err());
    }
}
