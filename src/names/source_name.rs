//! A source's name: the first path segment of every blob archived from it.

use super::string_newtype::string_newtype_impls;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SourceName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} must be 1-63 characters of [a-z0-9-] (it is used in blob names)")]
pub struct SourceNameError {
    pub value: String,
}

impl std::str::FromStr for SourceName {
    type Err = SourceNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(SourceName(s.to_string()))
        } else {
            Err(SourceNameError { value: s.to_string() })
        }
    }
}

string_newtype_impls!(SourceName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_63_of_lowercase_digits_and_dashes() {
        for ok in ["seoul", "org-trail", "a", "0", "-", &"a".repeat(63)] {
            assert!(ok.parse::<SourceName>().is_ok(), "{ok:?}");
        }
        for bad in ["", "Bad_Name", "a b", "서울", "a/b", &"a".repeat(64)] {
            assert!(bad.parse::<SourceName>().is_err(), "{bad:?}");
        }
    }
}
