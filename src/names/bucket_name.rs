//! An S3 bucket name. Everywhere (and for every new bucket) the DNS-compatible rules hold;
//! buckets created in us-east-1 before March 2018 may also have capitals and underscores
//! and up to 255 characters, so a name is checked against the region it lives in.

use super::string_newtype::string_newtype_impls;
use super::Region;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct BucketName(String);

/// Which DNS-compatible rule a name breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BucketRule {
    #[error("it must be 3-63 characters long")]
    Length,
    #[error("only lowercase letters, digits, '.' and '-' are allowed")]
    Characters,
    #[error("it must start and end with a letter or digit")]
    Ends,
    #[error("two periods may not be adjacent")]
    AdjacentPeriods,
    #[error("it must not look like an IP address")]
    IpAddress,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid S3 bucket name: {broken}{}", advice(*.legacy_region))]
pub struct BucketNameError {
    pub value: String,
    pub broken: BucketRule,
    /// The name was checked for us-east-1, where legacy names are allowed too.
    pub legacy_region: bool,
}

fn advice(legacy_region: bool) -> &'static str {
    if legacy_region {
        "; a legacy us-east-1 bucket may also have capitals and '_' (3-255 characters of letters, digits, '.', '-', '_')"
    } else {
        " (capitals and '_' are allowed only in legacy us-east-1 buckets); copy the name from the trail's settings"
    }
}

/// The only region where buckets with legacy names exist.
const LEGACY_REGION: &str = "us-east-1";

/// The rules every region enforces, in the order a reader meets them.
fn dns_compatible(s: &str) -> Result<(), BucketRule> {
    let b = s.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return Err(BucketRule::Length);
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
    {
        return Err(BucketRule::Characters);
    }
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Err(BucketRule::Ends);
    }
    if s.contains("..") {
        return Err(BucketRule::AdjacentPeriods);
    }
    if s.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(BucketRule::IpAddress);
    }
    Ok(())
}

fn legacy(s: &str) -> bool {
    (3..=255).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
}

/// A name valid in every region (the DNS-compatible rules).
impl std::str::FromStr for BucketName {
    type Err = BucketNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::checked(s, false)
    }
}

impl BucketName {
    /// A name valid for a bucket in `region`: in us-east-1, a legacy name too.
    pub fn in_region(s: &str, region: &Region) -> Result<BucketName, BucketNameError> {
        Self::checked(s, region == LEGACY_REGION)
    }

    fn checked(s: &str, legacy_region: bool) -> Result<BucketName, BucketNameError> {
        match dns_compatible(s) {
            Ok(()) => Ok(BucketName(s.to_string())),
            Err(_) if legacy_region && legacy(s) => Ok(BucketName(s.to_string())),
            Err(broken) => Err(BucketNameError {
                value: s.to_string(),
                broken,
                legacy_region,
            }),
        }
    }
}

string_newtype_impls!(BucketName);

#[cfg(test)]
mod tests {
    use super::*;

    fn in_region(s: &str, region: &str) -> Result<BucketName, BucketNameError> {
        BucketName::in_region(s, &Region::parse(region).unwrap())
    }

    #[test]
    fn legacy_us_east_1_bucket_names_keep_their_capitals() {
        for ok in ["org-trail-logs", "my.trail.logs", "a1b"] {
            assert!(in_region(ok, "eu-west-1").is_ok(), "{ok}");
            assert!(ok.parse::<BucketName>().is_ok(), "{ok}");
        }
        for legacy in ["CloudTrail_Logs", "MyCompany-Trail", "Org.Trail_2016"] {
            assert!(in_region(legacy, "us-east-1").is_ok(), "{legacy}");
            let why = in_region(legacy, "eu-west-1").expect_err(legacy).to_string();
            assert!(why.contains("us-east-1"), "{why}");
            assert!(legacy.parse::<BucketName>().is_err(), "{legacy}");
        }
        let long = "A".repeat(255);
        assert!(in_region(&long, "us-east-1").is_ok());
        for bad in [
            "ab",
            "-trail",
            "trail-",
            "tr..ail",
            "192.168.1.1",
            "Trail_Logs",
            "trail logs",
            "tráil",
        ] {
            assert!(in_region(bad, "eu-west-1").is_err(), "{bad}");
        }
        for bad in ["ab", "trail logs", "tráil", "a/b", &"A".repeat(256)] {
            assert!(in_region(bad, "us-east-1").is_err(), "{bad}");
        }
    }

    #[test]
    fn the_message_names_the_broken_rule_and_the_legacy_exception() {
        let e = in_region("B", "eu-west-1").unwrap_err().to_string();
        assert_eq!(
            e,
            "\"B\" is not a valid S3 bucket name: it must be 3-63 characters long (capitals and '_' are allowed only in legacy us-east-1 buckets); copy the name from the trail's settings"
        );
        let e = in_region("a b", "us-east-1").unwrap_err().to_string();
        assert!(e.ends_with("only lowercase letters, digits, '.' and '-' are allowed; a legacy us-east-1 bucket may also have capitals and '_' (3-255 characters of letters, digits, '.', '-', '_')"), "{e}");
    }
}
