//! `validate` in a build without the `saml` cargo feature (the Azure Functions package,
//! whose binary must link only glibc's own libraries, while samael's signature checks need
//! libxmlsec1, libxml2, libxslt and OpenSSL).
//!
//! The public API mirrors `validate.rs`, so callers compile unchanged; everything that would
//! need samael fails closed with [`NO_SAML_SUPPORT`]. The CLI checks
//! [`super::saml_support`] first and exits 2 with that message.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::replay::ReplayCache;
use super::roles::RoleMapping;

/// What every SAML validation entry point answers in this build.
pub const NO_SAML_SUPPORT: &str = super::NO_SAML_SUPPORT;

pub const ROLE_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/Role";
pub const SESSION_NAME_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/RoleSessionName";
pub const SESSION_DURATION_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/SessionDuration";
pub const GROUPS_ATTRIBUTE: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";
pub const GROUPS_OVERAGE_ATTRIBUTE: &str = "http://schemas.microsoft.com/claims/groups.link";
pub use super::prescreen::{MAX_BASE64_CHARS, MAX_INPUT_BYTES, MAX_XML_BYTES};

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Malformed,
    Doctype,
    Signature,
    Algorithm,
    Issuer,
    Audience,
    Recipient,
    Destination,
    Expired,
    NotYetValid,
    Status,
    MultipleAssertions,
    DuplicateAttribute,
    MissingCondition,
    RoleAttribute,
    SessionName,
    SessionDuration,
    Replay,
    NotGranted,
    /// Only in this build: there is no SAML support to validate with.
    Unsupported,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::Doctype => "doctype",
            Reason::Signature => "signature",
            Reason::Algorithm => "algorithm",
            Reason::Issuer => "issuer",
            Reason::Audience => "audience",
            Reason::Recipient => "recipient",
            Reason::Destination => "destination",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Status => "status",
            Reason::MultipleAssertions => "multiple_assertions",
            Reason::DuplicateAttribute => "duplicate_attribute",
            Reason::MissingCondition => "missing_condition",
            Reason::RoleAttribute => "role_attribute",
            Reason::SessionName => "session_name",
            Reason::SessionDuration => "session_duration",
            Reason::Replay => "replay",
            Reason::NotGranted => "not_granted",
            Reason::Unsupported => "unsupported",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{reason:?}: {detail}")]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

fn unsupported<T>() -> Result<T, Rejection> {
    Err(Rejection {
        reason: Reason::Unsupported,
        detail: NO_SAML_SUPPORT.to_string(),
    })
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RolePair {
    pub role_arn: String,
    pub provider_arn: String,
    pub granted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub valid: bool,
    pub assertion_id: String,
    pub response_id: Option<String>,
    pub issuer: String,
    pub subject: String,
    pub session_name: String,
    pub session_duration: Option<u32>,
    pub groups: Option<Vec<String>>,
    pub roles: Vec<RolePair>,
    pub not_on_or_after: DateTime<Utc>,
    pub signed: Vec<&'static str>,
    #[serde(skip)]
    pub remember_until: DateTime<Utc>,
}

pub struct Validator {
    pub tenant_issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub certs: Vec<Vec<u8>>,
    pub allow_sha1: bool,
    pub clock_skew: Duration,
    pub roles: RoleMapping,
    pub require_grant: bool,
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
