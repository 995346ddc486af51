//! The role mapping as code (`roles.toml`): which Entra groups may assume which AWS roles.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::names::{RoleArn, RoleArnError, SAML_PARTITIONS};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    #[serde(default)]
    grant: Vec<Grant>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Entra group object ID.
    pub group: String,
    /// A readable name for the group.
    pub name: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RoleMapping {
    pub grants: Vec<Grant>,
}

/// `roles.toml`, named, and why it is refused.
#[derive(Debug, thiserror::Error)]
#[error("role mapping {path}: {source}")]
pub struct RoleMappingError {
    pub path: String,
    #[source]
    pub source: RoleMappingProblem,
}

impl crate::fault::Classify for RoleMappingError {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Config
    }
}

/// Why `roles.toml` is refused.
#[derive(Debug, thiserror::Error)]
pub enum RoleMappingProblem {
    #[error("{}", .0.to_string().trim().replace('\n', " "))]
    Toml(#[from] toml::de::Error),
    #[error("grant {name:?}: group must be an Entra group object ID (a GUID)")]
    Group { name: String },
    #[error("grant {name:?}: {role:?} is not an IAM role ARN: {source}")]
    Role {
        name: String,
        role: String,
        #[source]
        source: RoleArnError,
    },
    #[error("grant {name:?}: {role:?} is not in a partition with SAML sign-in (aws, aws-cn, aws-us-gov)")]
    Partition { name: String, role: String },
}

impl RoleMapping {
    pub fn parse(text: &str) -> Result<RoleMapping, RoleMappingProblem> {
        let raw: RawMapping = toml::from_str(text)?;
        for g in &raw.grant {
            if g.group.len() != 36 || g.group.split('-').count() != 5 {
                return Err(RoleMappingProblem::Group { name: g.name.clone() });
            }
            for r in &g.roles {
                let role: RoleArn = r.parse().map_err(|source| RoleMappingProblem::Role {
                    name: g.name.clone(),
                    role: r.clone(),
                    source,
                })?;
                if !SAML_PARTITIONS.contains(&role.partition()) {
                    return Err(RoleMappingProblem::Partition {
                        name: g.name.clone(),
                        role: r.clone(),
                    });
                }
            }
        }
        Ok(RoleMapping { grants: raw.grant })
    }

    /// Whether any grant contains this role (for audits, where groups are unknown).
    pub fn grants_role(&self, role_arn: &str) -> bool {
        self.grants.iter().any(|g| g.roles.iter().any(|r| r == role_arn))
    }

    /// Whether one of these groups is granted the role.
    pub fn grants_role_to(&self, groups: &BTreeSet<String>, role_arn: &str) -> bool {
        self.grants
            .iter()
            .any(|g| groups.contains(&g.group.to_ascii_lowercase()) && g.roles.iter().any(|r| r == role_arn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_grants() {
        let m = RoleMapping::parse(
            r#"[[grant]]
group = "0a0a0a0a-1111-2222-3333-444444444444"
name = "platform-readers"
roles = ["arn:aws:iam::111122223333:role/ReadOnly", "arn:aws-us-gov:iam::111122223333:role/path/Ops"]
"#,
        )
        .unwrap();
        let groups: BTreeSet<String> = ["0a0a0a0a-1111-2222-3333-444444444444".to_string()].into();
        assert!(m.grants_role_to(&groups, "arn:aws:iam::111122223333:role/ReadOnly"));
        assert!(!m.grants_role_to(&groups, "arn:aws:iam::111122223333:role/Admin"));
        assert!(m.grants_role("arn:aws-us-gov:iam::111122223333:role/path/Ops"));
        assert!(RoleMapping::parse("[[grant]]\ngroup = \"x\"\nname = \"n\"\nroles = []\n").is_err());
        assert!(RoleMapping::parse("[[grant]]\ngroup = \"0a0a0a0a-1111-2222-3333-444444444444\"\nname = \"n\"\nroles = [\"arn:aws:iam::1:user/x\"]\n").is_err());
        assert!(RoleMapping::parse("[[grnt]]\n").is_err());
        assert!(matches!(
            RoleMapping::parse("[[grant]]\ngroup = \"0a0a0a0a-1111-2222-3333-444444444444\"\nname = \"n\"\nroles = [\"arn:aws-iso:iam::111122223333:role/x\"]\n"),
            Err(RoleMappingProblem::Partition { .. })
        ));
    }
}
