//! What a SAML validation decides: the attribute
//! names, the refusal reasons, and the accepted document.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::roles::RoleMapping;
use crate::names::{ProviderArn, RoleArn, SessionName};

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
    /// `--require-grant`: none of the offered roles is granted by the role mapping.
    NotGranted,
    /// Only in a build without the `saml` feature: there is nothing to validate with.
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

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RolePair {
    pub role_arn: RoleArn,
    pub provider_arn: ProviderArn,
    /// Granted to one of the user's groups by the role mapping.
    pub granted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub valid: bool,
    pub assertion_id: String,
    pub response_id: Option<String>,
    pub issuer: String,
    pub subject: String,
    pub session_name: SessionName,
    pub session_duration: Option<u32>,
    /// Entra group object IDs; null when Entra sent the overage claim instead (too many groups).
    pub groups: Option<Vec<String>>,
    pub roles: Vec<RolePair>,
    /// SubjectConfirmationData's NotOnOrAfter.
    pub not_on_or_after: DateTime<Utc>,
    /// Which parts carried a verified signature: "assertion", "response" or both.
    pub signed: Vec<&'static str>,
    /// How long a replay store must remember the assertion ID: the later of the Conditions'
    /// and the SubjectConfirmationData's NotOnOrAfter, plus the clock skew.
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
    /// Refuse (`not_granted`) a response none of whose roles the role mapping grants.
    pub require_grant: bool,
}
