//! An IAM SAML provider ARN: `arn:PARTITION:iam::ACCOUNT:saml-provider/NAME`, the name 1-128
//! characters of `[A-Za-z0-9._-]` (IAM's CreateSAMLProvider).

use std::fmt;
use std::str::FromStr;

use super::split_iam_arn;

pub const MAX_NAME: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderArn(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProviderArnError {
    #[error("not an IAM ARN (arn:PARTITION:iam::ACCOUNT:..., a known AWS partition, 12 digits)")]
    NotIamArn,
    #[error("not a SAML provider (the resource does not start with saml-provider/)")]
    NotProvider,
    #[error("the provider name must be 1-{MAX_NAME} of [A-Za-z0-9._-]")]
    Name,
}

impl FromStr for ProviderArn {
    type Err = ProviderArnError;

    fn from_str(s: &str) -> Result<Self, ProviderArnError> {
        let (_, _, resource) = split_iam_arn(s).ok_or(ProviderArnError::NotIamArn)?;
        let name = resource
            .strip_prefix("saml-provider/")
            .ok_or(ProviderArnError::NotProvider)?;
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            return Err(ProviderArnError::Name);
        }
        Ok(ProviderArn(s.to_string()))
    }
}

impl ProviderArn {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn partition(&self) -> &str {
        self.0.split(':').nth(1).unwrap_or_default()
    }

    pub fn account(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }

    /// The provider's friendly name (what CloudTrail's nameQualifier is computed from).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }
}

impl fmt::Display for ProviderArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for ProviderArn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_rules() {
        let p: ProviderArn = "arn:aws-cn:iam::111122223333:saml-provider/Entra".parse().unwrap();
        assert_eq!(
            (p.partition(), p.account(), p.name()),
            ("aws-cn", "111122223333", "Entra")
        );
        assert_eq!(
            "arn:aws:iam::111122223333:saml-provider/E ntra".parse::<ProviderArn>(),
            Err(ProviderArnError::Name)
        );
        assert_eq!(
            "arn:aws:iam::111122223333:role/a".parse::<ProviderArn>(),
            Err(ProviderArnError::NotProvider)
        );
        assert!(format!("arn:aws:iam::111122223333:saml-provider/{}", "a".repeat(129))
            .parse::<ProviderArn>()
            .is_err());
    }
}
