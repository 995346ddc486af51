//! Values that must never reach a log line, an error message or `Debug` output.

use std::fmt;

/// A secret value (SAS token, account key, client secret, bearer token).
///
/// `Debug` and `Display` print a fixed placeholder; the only way to the value is
/// [`Secret::expose`], which keeps every use greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Removes SAS signatures and other credential-bearing query parameters from text
/// that may quote a URL (SDK error messages do).
pub fn redact_text(text: &str) -> String {
    const SENSITIVE: [&str; 5] = [
        "sig=",
        "Signature=",
        "X-Amz-Signature=",
        "X-Amz-Credential=",
        "X-Amz-Security-Token=",
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for marker in SENSITIVE {
            if rest.starts_with(marker) {
                out.push_str(marker);
                out.push_str("REDACTED");
                let end = rest[marker.len()..]
                    .find(|c: char| c == '&' || c == '"' || c == '\'' || c == '>' || c.is_whitespace())
                    .map(|i| i + marker.len())
                    .unwrap_or(rest.len());
                rest = &rest[end..];
                continue 'outer;
            }
        }
        // A JWT (an Entra token: `eyJ...`.`...`.`...`) quoted by an error message.
        if rest.starts_with("eyJ") && !out.ends_with(|c: char| c.is_ascii_alphanumeric()) {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
                .unwrap_or(rest.len());
            if rest[..end].matches('.').count() >= 1 {
                out.push_str("<redacted token>");
                rest = &rest[end..];
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("sv=2022&sig=abc%2Bdef".to_string());
        assert!(!format!("{s:?}").contains("abc"));
        assert!(!format!("{s}").contains("abc"));
        assert_eq!(s.expose(), "sv=2022&sig=abc%2Bdef");
    }

    #[test]
    fn redacts_sas_signature_in_urls() {
        let msg = "GET http://127.0.0.1:1/devstoreaccount1/c?sv=2022-11-02&sig=SECRETSIG%3D&sp=r failed";
        let red = redact_text(msg);
        assert!(!red.contains("SECRETSIG"), "{red}");
        assert!(red.contains("sig=REDACTED&sp=r failed"), "{red}");
    }

    #[test]
    fn redacts_bearer_tokens() {
        let msg = "refused token eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2ln-_x for role; keyJx stays";
        let red = redact_text(msg);
        assert!(!red.contains("eyJ0eXAi") && !red.contains("c2ln"), "{red}");
        assert!(
            red.contains("refused token <redacted token> for role; keyJx stays"),
            "{red}"
        );
    }

    #[test]
    fn redacts_presigned_s3_parameters() {
        let msg = "url https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAXX&X-Amz-Signature=deadbeef end";
        let red = redact_text(msg);
        assert!(!red.contains("AKIAXX") && !red.contains("deadbeef"), "{red}");
    }
}
