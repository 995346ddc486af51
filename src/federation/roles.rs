//! The role mapping as code (`roles.toml`): which Entra groups may assume which AWS roles.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

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

#[derive(Debug, thiserror::Error)]
#[error("role mapping {path}: {message}")]
pub struct RoleMappingError {
    pub path: String,
    pub message: String,
}

impl crate::fault::Classify for RoleMappingError {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Config
    }
}

impl RoleMapping {
    pub fn load(path: &Path) -> Result<RoleMapping, RoleMappingError> {
        let err = |message: String| RoleMappingError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::parse(&text).map_err(err)
    }

    pub fn parse(text: &str) -> Result<RoleMapping, String> {
        let raw: RawMapping = toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))?;
        for g in &raw.grant {
            if g.group.len() != 36 || g.group.split('-').count() != 5 {
                return Err(format!(
                    "grant {:?}: group must be an Entra group object ID (a GUID)",
                    g.name
                ));
            }
            for r in &g.roles {
                if !is_role_arn(r) {
                    return Err(format!("grant {:?}: {r:?} is not an IAM role ARN", g.name));
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

/// `arn:PARTITION:iam::ACCOUNT:role/[path/]name`
pub fn is_role_arn(s: &str) -> bool {
    is_iam_arn(s, "role/")
}

/// `arn:PARTITION:iam::ACCOUNT:saml-provider/name`
pub fn is_provider_arn(s: &str) -> bool {
    is_iam_arn(s, "saml-provider/")
}

/// The partitions an Entra-federated AWS account can be in.
pub const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// IAM role names (and here also path segments): 1-64 of `[A-Za-z0-9+=,.@_-]`.
fn iam_name_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn is_iam_arn(s: &str, resource_prefix: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || !PARTITIONS.contains(&parts[1])
        || parts[2] != "iam"
        || !parts[3].is_empty()
        || parts[4].len() != 12
        || !parts[4].bytes().all(|b| b.is_ascii_digit())
    {
        return false;
    }
    let Some(resource) = parts[5].strip_prefix(resource_prefix) else {
        return false;
    };
    match resource_prefix {
        // role/[path/]name: the path at most 512 characters, the name at most 64.
        "role/" => {
            let segments: Vec<&str> = resource.split('/').collect();
            let (name, path) = segments.split_last().expect("split yields one item");
            resource.len() <= 512 + 64 && iam_name_ok(name, 64) && path.iter().all(|p| iam_name_ok(p, 512))
        }
        // saml-provider/name: 1-128 of [A-Za-z0-9._-].
        _ => {
            !resource.is_empty()
                && resource.len() <= 128
                && resource
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }
    }
}

/// (partition, account) of an IAM ARN.
pub fn arn_partition_account(s: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    (parts.len() == 6).then(|| (parts[1], parts[4]))
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
    }

    #[test]
    fn arn_shapes() {
        assert!(is_role_arn("arn:aws:iam::111122223333:role/a"));
        assert!(is_provider_arn("arn:aws-cn:iam::111122223333:saml-provider/Entra"));
        assert!(!is_role_arn("arn:aws:iam::111122223333:saml-provider/Entra"));
        assert!(is_role_arn("arn:aws-us-gov:iam::111122223333:role/team/ops/Admin"));
        assert!(!is_role_arn("arn:awsevil:iam::111122223333:role/a"));
        assert!(!is_role_arn("arn:aws:iam::111122223333:role/Ad min"));
        assert!(!is_role_arn("arn:aws:iam::111122223333:role/*"));
        assert!(!is_role_arn("arn:aws:iam::111122223333:role/a//b"));
        assert!(!is_role_arn("arn:aws:iam:us-east-1:111122223333:role/a"));
        assert!(!is_role_arn(&format!(
            "arn:aws:iam::111122223333:role/{}",
            "a".repeat(65)
        )));
        assert!(!is_provider_arn("arn:aws:iam::111122223333:saml-provider/E ntra"));
        assert_eq!(
            arn_partition_account("arn:aws:iam::111122223333:role/a"),
            Some(("aws", "111122223333"))
        );
    }
}
