//! An STS role session name: 2-64 characters of `[\w+=,.@-]` (AssumeRole's RoleSessionName).

use std::fmt;
use std::str::FromStr;

use super::is_iam_name_char;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a session name must be 2-64 characters of [A-Za-z0-9+=,.@_-]")]
pub struct SessionNameError;

impl FromStr for SessionName {
    type Err = SessionNameError;

    fn from_str(s: &str) -> Result<Self, SessionNameError> {
        if (2..=64).contains(&s.len()) && s.bytes().all(is_iam_name_char) {
            Ok(SessionName(s.to_string()))
        } else {
            Err(SessionNameError)
        }
    }
}

impl SessionName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for SessionName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_rules() {
        assert!("alice@example.com".parse::<SessionName>().is_ok());
        assert!("a".parse::<SessionName>().is_err());
        assert!("alice smith".parse::<SessionName>().is_err());
        assert!("a".repeat(65).parse::<SessionName>().is_err());
        assert!("élise".parse::<SessionName>().is_err());
    }
}
