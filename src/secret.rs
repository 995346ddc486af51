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

/// Fields whose value is credential material wherever a service or an SDK echoes them:
/// STS's XML (`<SecretAccessKey>`, `<SessionToken>`), token endpoints' JSON
/// (`"access_token": ...`), form bodies (`client_secret=`, `client_assertion=`),
/// connection strings (`AccountKey=`) and the SDKs' `Debug` renderings of the same.
/// Matched case-insensitively; the value ends at a quote, `<`, `&`, `,`, `;`, `}`, `\` or
/// whitespace. Access key ids are identifiers and stay.
const SECRET_FIELDS: [&str; 14] = [
    "SecretAccessKey",
    "secret_access_key",
    "SessionToken",
    "session_token",
    "WebIdentityToken",
    "web_identity_token",
    "access_token",
    "accessToken",
    "refresh_token",
    "id_token",
    "client_secret",
    "client_assertion",
    "AccountKey",
    "x-identity-header",
];

/// Credential values this process holds or has received (SAS, keys, STS secrets, Entra
/// tokens): removed from any text, whatever shape it quotes them in. Bounded: the oldest
/// go first.
static KNOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
const KNOWN_MAX: usize = 256;
/// Shorter values would redact ordinary words.
const KNOWN_MIN_LEN: usize = 8;

/// Remembers `value` as credential material: [`redact_text`] removes it from every text
/// from now on (an echo in a shape no pattern knows included).
pub fn remember(value: &str) {
    let value = value.trim();
    if value.len() < KNOWN_MIN_LEN {
        return;
    }
    let mut known = match KNOWN.lock() {
        Ok(k) => k,
        Err(poisoned) => poisoned.into_inner(),
    };
    if known.iter().any(|k| k == value) {
        return;
    }
    if known.len() >= KNOWN_MAX {
        known.remove(0);
    }
    known.push(value.to_string());
}

fn without_known(text: &str) -> String {
    let known = match KNOWN.lock() {
        Ok(k) => k,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut out = text.to_string();
    for k in known.iter() {
        if out.contains(k.as_str()) {
            out = out.replace(k.as_str(), "<redacted>");
        }
    }
    out
}

/// `rest` starts with a [`SECRET_FIELDS`] name followed by a separator (`:`, `=` or `>`,
/// with quotes, backslashes and spaces around): the length up to the value.
fn secret_field(rest: &str) -> Option<usize> {
    let name = SECRET_FIELDS
        .iter()
        .find(|f| rest.get(..f.len()).is_some_and(|r| r.eq_ignore_ascii_case(f)))?;
    let after = &rest[name.len()..];
    let sep = after
        .find(|c: char| !matches!(c, '"' | '\'' | '\\' | ' ' | ':' | '=' | '>'))
        .unwrap_or(after.len());
    after[..sep].contains([':', '=', '>']).then_some(name.len() + sep)
}

/// Removes credential material from text that may quote a URL, a request or a service's
/// answer (SDK error messages do): SAS signatures and presigned-URL parameters, JWTs
/// (Entra and web-identity tokens), bearer tokens, the values of [`SECRET_FIELDS`], and
/// every value given to [`remember`].
pub fn redact_text(text: &str) -> String {
    const SENSITIVE: [&str; 6] = [
        "sig=",
        "Signature=",
        "X-Amz-Signature=",
        "X-Amz-Credential=",
        "X-Amz-Security-Token=",
        "Bearer ",
    ];
    let text = without_known(text);
    let end_of_value = |s: &str| {
        s.find(|c: char| matches!(c, '&' | '"' | '\'' | '>' | '<' | ',' | ';' | '}' | '\\') || c.is_whitespace())
            .unwrap_or(s.len())
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
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
        // A field name on its own (not the tail of a longer word, not a closing tag).
        let starts_field = !out.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '/');
        if let Some(at) = secret_field(rest).filter(|_| starts_field) {
            let value = end_of_value(&rest[at..]);
            out.push_str(&rest[..at]);
            if value > 0 {
                out.push_str("<redacted>");
            }
            rest = &rest[at + value..];
            continue 'outer;
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
    fn redacts_credential_fields_in_every_shape_a_service_echoes() {
        let sts = "unhandled error (Unhandled): <Credentials><AccessKeyId>ASIAKEEPME</AccessKeyId>\
                   <SecretAccessKey>CANARY-secret+/1</SecretAccessKey><SessionToken>CANARY-session=</SessionToken>\
                   <Expiration>not-a-date</Expiration></Credentials>";
        let json = r#"body: {"access_token":"CANARY-at","refresh_token": "CANARY-rt","expires_on":"x"}"#;
        let debug = r#"Some("{\"accessToken\":\"CANARY-az\"}") client_secret=CANARY-cs&x=1 AccountKey=CANARY-ak;"#;
        let bearer = "authorization: Bearer CANARY-bearer, x-identity-header: CANARY-ih";
        for text in [sts, json, debug, bearer] {
            let red = redact_text(text);
            assert!(!red.contains("CANARY"), "{red}");
        }
        let red = redact_text(sts);
        assert!(red.contains("ASIAKEEPME"), "access key ids stay: {red}");
        assert!(red.contains("<SecretAccessKey><redacted></SecretAccessKey>"), "{red}");
        // Prose naming a field, a longer name ending in one and closing tags are left alone.
        assert_eq!(
            redact_text("the SessionToken is invalid"),
            "the SessionToken is invalid"
        );
        let subject = r"<SubjectFromWebIdentityToken>sub</SubjectFromWebIdentityToken>\n<Arn>";
        assert_eq!(redact_text(subject), subject);
    }

    #[test]
    fn remembered_values_are_removed_in_any_shape() {
        remember("CANARY-remembered-0001");
        remember("short");
        let red = redact_text("echo[CANARY-remembered-0001] and short");
        assert_eq!(red, "echo[<redacted>] and short");
    }

    #[test]
    fn redacts_presigned_s3_parameters() {
        let msg = "url https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAXX&X-Amz-Signature=deadbeef end";
        let red = redact_text(msg);
        assert!(!red.contains("AKIAXX") && !red.contains("deadbeef"), "{red}");
    }
}
