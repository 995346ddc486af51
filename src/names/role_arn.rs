//! An IAM role ARN: `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
//!
//! The rule is IAM's (CreateRole): the name 1-64 characters of `[\w+=,.@-]`, the path at most
//! 512 characters. Two rules disagreed before: the config allowed names up to 512 (that is
//! the path's limit, not the name's) in AWS's eight partitions; the federation allowed 64 in
//! three. The ARN's rule is the union of partitions and IAM's 64; only SAML sign-in narrows
//! the partitions (see [`super::SAML_PARTITIONS`]), and it says so where it checks. Path
//! segments keep to the name characters and are never empty (no `//`), stricter than IAM's
//! path pattern, as both earlier rules were.

use std::fmt;
use std::str::FromStr;

use super::{is_iam_name_char, split_iam_arn};

/// The longest role name IAM accepts.
pub const MAX_NAME: usize = 64;
/// The longest role path IAM accepts (between `role/` and the name, slashes included).
pub const MAX_PATH: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleArn(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoleArnError {
    #[error("not an IAM ARN (arn:PARTITION:iam::ACCOUNT:..., a known AWS partition, 12 digits)")]
    NotIamArn,
    #[error("not a role (the resource does not start with role/)")]
    NotRole,
    #[error("the role name must be 1-{MAX_NAME} of [A-Za-z0-9+=,.@_-]")]
    Name,
    #[error("the role path must be at most {MAX_PATH} characters of non-empty [A-Za-z0-9+=,.@_-] segments")]
    Path,
}

impl FromStr for RoleArn {
    type Err = RoleArnError;

    fn from_str(s: &str) -> Result<Self, RoleArnError> {
        let (_, _, resource) = split_iam_arn(s).ok_or(RoleArnError::NotIamArn)?;
        let rest = resource.strip_prefix("role/").ok_or(RoleArnError::NotRole)?;
        let (path, name) = match rest.rsplit_once('/') {
            Some((path, name)) => (Some(path), name),
            None => (None, rest),
        };
        if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(is_iam_name_char) {
            return Err(RoleArnError::Name);
        }
        if let Some(path) = path {
            let segments_ok = path
                .split('/')
                .all(|seg| !seg.is_empty() && seg.bytes().all(is_iam_name_char));
            // `/path/` as IAM counts it: both slashes included.
            if path.len() + 2 > MAX_PATH || !segments_ok {
                return Err(RoleArnError::Path);
            }
        }
        Ok(RoleArn(s.to_string()))
    }
}

impl RoleArn {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn partition(&self) -> &str {
        self.0.split(':').nth(1).unwrap_or_default()
    }

    pub fn account(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for RoleArn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        s.parse::<RoleArn>().is_ok()
    }

    #[test]
    fn iam_rules() {
        assert!(ok("arn:aws:iam::111122223333:role/a"));
        assert!(ok("arn:aws-us-gov:iam::111122223333:role/team/ops/Admin"));
        assert!(ok("arn:aws-iso-b:iam::111122223333:role/a"));
        assert!(ok(&format!("arn:aws:iam::111122223333:role/{}", "a".repeat(64))));
        assert_eq!(
            format!("arn:aws:iam::111122223333:role/{}", "a".repeat(65)).parse::<RoleArn>(),
            Err(RoleArnError::Name)
        );
        assert!(ok(&format!("arn:aws:iam::111122223333:role/{}/a", "p".repeat(510))));
        assert_eq!(
            format!("arn:aws:iam::111122223333:role/{}/a", "p".repeat(511)).parse::<RoleArn>(),
            Err(RoleArnError::Path)
        );
        assert_eq!(
            "arn:awsevil:iam::111122223333:role/a".parse::<RoleArn>(),
            Err(RoleArnError::NotIamArn)
        );
        assert_eq!(
            "arn:aws:iam::111122223333:role/Ad min".parse::<RoleArn>(),
            Err(RoleArnError::Name)
        );
        assert!(!ok("arn:aws:iam::111122223333:role/*"));
        assert_eq!(
            "arn:aws:iam::111122223333:role/a//b".parse::<RoleArn>(),
            Err(RoleArnError::Path)
        );
        assert!(!ok("arn:aws:iam::111122223333:role/a/"));
        assert!(!ok("arn:aws:iam:us-east-1:111122223333:role/a"));
        assert_eq!(
            "arn:aws:iam::111122223333:saml-provider/E".parse::<RoleArn>(),
            Err(RoleArnError::NotRole)
        );
        let r: RoleArn = "arn:aws-cn:iam::111122223333:role/x".parse().unwrap();
        assert_eq!((r.partition(), r.account()), ("aws-cn", "111122223333"));
    }
}
