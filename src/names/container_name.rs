//! An Azure Blob container's name.

use super::string_newtype::string_newtype_impls;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ContainerName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a valid container name (3-63 of [a-z0-9-], starting and ending with a letter or digit, no \"--\")"
)]
pub struct ContainerNameError {
    pub value: String,
}

impl std::str::FromStr for ContainerName {
    type Err = ContainerNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (3..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--");
        if ok {
            Ok(ContainerName(s.to_string()))
        } else {
            Err(ContainerNameError { value: s.to_string() })
        }
    }
}

string_newtype_impls!(ContainerName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_label_rules() {
        for ok in ["cloudtrail-archive", "abc", "a-1", &"a".repeat(63)] {
            assert!(ok.parse::<ContainerName>().is_ok(), "{ok:?}");
        }
        for bad in ["ab", "-abc", "abc-", "a--b", "Archive", "a_b", &"a".repeat(64)] {
            assert!(bad.parse::<ContainerName>().is_err(), "{bad:?}");
        }
    }
}
