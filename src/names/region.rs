//! An AWS region name's shape (`us-east-1`, `ap-northeast-2`, `us-gov-west-1`, `cn-north-1`),
//! or an S3-compatible store's name of the same shape. Region names become state blob
//! names, so the shape is checked wherever one enters: config, flags, listed folders.

use super::string_newtype::string_newtype_impls;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Region(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an AWS region name")]
pub struct RegionError {
    pub value: String,
}

impl std::str::FromStr for Region {
    type Err = RegionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Region(s.to_string()))
        } else {
            Err(RegionError { value: s.to_string() })
        }
    }
}

impl Region {
    /// The same as `s.parse()`, for call sites that name the type.
    pub fn parse(s: &str) -> Result<Region, RegionError> {
        s.parse()
    }
}

string_newtype_impls!(Region);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_letters_digits_and_inner_dashes() {
        for ok in ["us-east-1", "ap-northeast-2", "us-gov-west-1", "cn-north-1", "garage"] {
            assert_eq!(Region::parse(ok).map(String::from), Ok(ok.to_string()));
        }
        let long = "a".repeat(33);
        for bad in ["", "-us", "us-", "US-EAST-1", "us east", "🌏", long.as_str()] {
            assert!(Region::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Region::parse("x_").unwrap_err().to_string(),
            "\"x_\" is not an AWS region name"
        );
    }
}
