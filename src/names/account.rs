//! A 12-digit AWS account id.

use super::string_newtype::string_newtype_impls;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an AWS account id (12 digits)")]
pub struct AccountIdError {
    pub value: String,
}

impl std::str::FromStr for AccountId {
    type Err = AccountIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(s.to_string()))
        } else {
            Err(AccountIdError { value: s.to_string() })
        }
    }
}

impl AccountId {
    /// The same as `s.parse()`, for call sites that name the type.
    pub fn parse(s: &str) -> Result<AccountId, AccountIdError> {
        s.parse()
    }
}

string_newtype_impls!(AccountId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_digits_and_nothing_else() {
        assert_eq!(
            AccountId::parse("111122223333").map(String::from),
            Ok("111122223333".into())
        );
        for bad in ["", "11112222333", "1111222233334", "11112222333a", " 111122223333"] {
            assert!(AccountId::parse(bad).is_err(), "{bad:?}");
        }
        let e = AccountId::parse("x").unwrap_err();
        assert_eq!(e.to_string(), "\"x\" is not an AWS account id (12 digits)");
    }
}
