//! `[federation]`: the Entra IdP whose SAML sign-ins to AWS are validated and audited.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::defaults::{AUDIENCES, CLOCK_SKEW};
use super::fields::{Fields, Problems};

pub(super) struct RawFederation {
    idp_metadata: Option<String>,
    tenant_id: Option<String>,
    audiences: Vec<String>,
    role_mapping: Option<String>,
    allow_sha1: bool,
    clock_skew: Duration,
    trusted_issuers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct FederationConfig {
    pub idp_metadata: String,
    pub tenant_id: String,
    pub audiences: Vec<String>,
    pub role_mapping: PathBuf,
    pub allow_sha1: bool,
    pub clock_skew: Duration,
    /// `trusted_issuers`: further SAML issuers (IAM Identity Center, for example) whose
    /// sign-ins `saml audit` does not call `foreign_idp`.
    pub trusted_issuers: Vec<String>,
}

pub(super) fn read(t: &toml::Table, problems: &Problems) -> RawFederation {
    let mut f = Fields::new("federation", t, problems);
    let raw = RawFederation {
        idp_metadata: f.required("idp_metadata", "the Entra federation metadata (a file or an https URL)"),
        tenant_id: f.required("tenant_id", "the Entra tenant GUID"),
        audiences: f.strings("audiences", AUDIENCES.map(String::from).to_vec()),
        role_mapping: f.required("role_mapping", "the role mapping file (roles.toml)"),
        allow_sha1: f.boolean("allow_sha1", false),
        clock_skew: f.duration(&CLOCK_SKEW),
        trusted_issuers: f.strings("trusted_issuers", Vec::new()),
    };
    f.finish();
    raw
}

/// Checks the section and resolves its files from `base`, the config file's folder.
pub(super) fn validate(f: RawFederation, base: &Path, problems: &Problems) -> FederationConfig {
    if f.audiences.is_empty() {
        problems.push("federation.audiences must name at least one audience");
    }
    for (i, a) in f.audiences.iter().enumerate() {
        if a.trim().is_empty() {
            problems.push(format!(
                "federation.audiences[{i}] is empty: name an audience or remove it"
            ));
        }
    }
    if let Some(tenant) = f.tenant_id.as_deref().filter(|t| !is_guid(t)) {
        problems.push(format!(
            "federation.tenant_id {tenant:?} must be the Entra tenant GUID (00000000-0000-0000-0000-000000000000)"
        ));
    }
    for (key, value) in [("idp_metadata", &f.idp_metadata), ("role_mapping", &f.role_mapping)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            problems.push(format!("federation.{key} is empty: name a file (relative to the config file) or, for idp_metadata, an https URL"));
        }
    }
    for (i, issuer) in f.trusted_issuers.iter().enumerate() {
        if issuer.is_empty() || issuer.len() > 1024 || issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(format!(
                "federation.trusted_issuers[{i}] {issuer:?} must be a SAML issuer exactly as the IdP sends it (1-1024 characters, no spaces), like \"https://portal.sso.us-east-1.amazonaws.com/saml/assertion/...\""
            ));
        }
    }
    let idp_metadata = f.idp_metadata.unwrap_or_default();
    FederationConfig {
        idp_metadata: if idp_metadata.starts_with("https://") {
            idp_metadata
        } else {
            base.join(&idp_metadata).to_string_lossy().into_owned()
        },
        tenant_id: f.tenant_id.unwrap_or_default(),
        audiences: f.audiences,
        role_mapping: base.join(f.role_mapping.unwrap_or_default()),
        allow_sha1: f.allow_sha1,
        clock_skew: f.clock_skew,
        trusted_issuers: f.trusted_issuers,
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use std::path::PathBuf;

    const FEDERATION: &str = "[federation]\nidp_metadata = \"entra.xml\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nrole_mapping = \"roles.toml\"\n";

    #[test]
    fn trusted_issuers_are_read_and_checked() {
        let fed = FEDERATION;
        let c = parse(&format!("{MINIMAL}\n{fed}"), &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert!(c.federation.unwrap().trusted_issuers.is_empty());
        let issuer = "https://portal.sso.eu-west-1.amazonaws.com/saml/assertion/MTExMTIyMjIzMzMzX2lucy1hYmM=";
        let text = format!("{MINIMAL}\n{fed}trusted_issuers = [\"{issuer}\"]\n");
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(c.federation.unwrap().trusted_issuers, vec![issuer.to_string()]);
        let p = problems(&format!("{MINIMAL}\n{fed}trusted_issuers = [\"\", \"a b\"]\n"));
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn relative_paths_resolve_from_the_config_folder() {
        let text = format!("{MINIMAL}\n{FEDERATION}");
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        let f = c.federation.unwrap();
        assert_eq!(f.role_mapping, PathBuf::from("/etc/trailvault/roles.toml"));
        assert_eq!(f.idp_metadata, "/etc/trailvault/entra.xml");
    }
}
