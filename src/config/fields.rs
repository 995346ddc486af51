//! Reading one TOML table field by field. The text is parsed into a `toml::Table` first
//! and then read key by key, so that one wrong type, bad value or unknown key does not
//! hide the others: every problem is collected with its path and reported together.

use std::cell::RefCell;
use std::time::Duration;

use super::defaults::{Count, Size, Span};

/// Every problem found in a config, by reading and by resolving: the one collector all
/// readers and checks write to. Shared by reference, so that a section's reader and the
/// document's reader can both hold it.
#[derive(Default)]
pub(super) struct Problems(RefCell<Vec<String>>);

impl Problems {
    pub(super) fn push(&self, problem: impl Into<String>) {
        self.0.borrow_mut().push(problem.into());
    }

    pub(super) fn into_vec(self) -> Vec<String> {
        self.0.into_inner()
    }
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number with a fraction",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// A short, printable rendering of a value for messages (never the whole of a huge one).
fn shown(v: &toml::Value) -> String {
    let s = match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Table(_) => "{...}".into(),
        toml::Value::Array(a) => format!("[{} items]", a.len()),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

/// `a string "x"`, `an integer 5`: what was found where something else was wanted.
pub(super) fn described(v: &toml::Value) -> String {
    format!("{} {}", type_name(v), shown(v))
}

/// Reads one table of the file; keys nobody asked for are reported by [`Fields::finish`].
pub(super) struct Fields<'a> {
    path: String,
    table: &'a toml::Table,
    known: Vec<&'static str>,
    problems: &'a Problems,
}

impl<'a> Fields<'a> {
    pub(super) fn new(path: impl Into<String>, table: &'a toml::Table, problems: &'a Problems) -> Self {
        Self {
            path: path.into(),
            table,
            known: Vec::new(),
            problems,
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn value(&mut self, key: &'static str) -> Option<&'a toml::Value> {
        self.known.push(key);
        self.table.get(key)
    }

    pub(super) fn wrong_type(&self, key: &str, v: &toml::Value, want: &str) {
        self.problems
            .push(format!("{} must be {want}, got {}", self.at(key), described(v)));
    }

    fn missing(&self, key: &str, what: &str) {
        self.problems
            .push(format!("{} is missing: set it to {what}", self.at(key)));
    }

    /// A string, or None when absent or of another type (reported).
    pub(super) fn opt_string(&mut self, key: &'static str) -> Option<String> {
        match self.value(key)? {
            toml::Value::String(s) => Some(s.clone()),
            v => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    pub(super) fn string_or(&mut self, key: &'static str, default: &str) -> String {
        self.opt_string(key).unwrap_or_else(|| default.to_string())
    }

    /// A string the section cannot do without (`what` says what to write).
    pub(super) fn required(&mut self, key: &'static str, what: &str) -> Option<String> {
        if self.table.get(key).is_none() {
            self.known.push(key);
            self.missing(key, what);
            return None;
        }
        self.opt_string(key)
    }

    /// A whole number within the setting's range; its default when absent or wrong.
    pub(super) fn count(&mut self, setting: &Count) -> u32 {
        let (key, what) = (setting.key, setting.what);
        match self.value(key) {
            None => setting.default,
            Some(toml::Value::Integer(n)) => match u32::try_from(*n) {
                Ok(n) if (setting.min..=setting.max).contains(&n) => n,
                _ => {
                    self.problems.push(format!(
                        "{} = {n} is out of range: it must be between {} and {} ({what})",
                        self.at(key),
                        setting.min,
                        setting.max
                    ));
                    setting.default
                }
            },
            Some(v) => {
                self.wrong_type(key, v, &format!("a whole number ({what})"));
                setting.default
            }
        }
    }

    pub(super) fn boolean(&mut self, key: &'static str, default: bool) -> bool {
        match self.value(key) {
            None => default,
            Some(toml::Value::Boolean(b)) => *b,
            Some(v) => {
                self.wrong_type(key, v, "true or false");
                default
            }
        }
    }

    pub(super) fn strings(&mut self, key: &'static str, default: Vec<String>) -> Vec<String> {
        match self.value(key) {
            None => default,
            Some(toml::Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        toml::Value::String(s) => out.push(s.clone()),
                        v => self.wrong_type(&format!("{key}[{i}]"), v, "a string"),
                    }
                }
                out
            }
            Some(v) => {
                self.wrong_type(key, v, "an array of strings");
                default
            }
        }
    }

    /// A humantime duration (`90s`, `30m`, `8h`) within the setting's range.
    pub(super) fn duration(&mut self, setting: &Span) -> Duration {
        let key = setting.key;
        let text = match self.value(key) {
            None => return setting.default,
            Some(toml::Value::String(s)) => s,
            Some(v) => {
                self.wrong_type(key, v, "a duration string like \"90s\", \"30m\" or \"8h\"");
                return setting.default;
            }
        };
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d >= setting.min && d <= setting.max => d,
            Ok(_) => {
                self.problems.push(format!(
                    "{} = {} is out of range: it must be between {} and {}",
                    self.at(key),
                    shown(&toml::Value::String(text.clone())),
                    show_duration(setting.min),
                    show_duration(setting.max)
                ));
                setting.default
            }
            Err(e) => {
                self.problems.push(format!(
                    "{} = {} is not a duration ({e}): write it like \"90s\", \"30m\", \"8h\" or \"3days\"",
                    self.at(key),
                    shown(&toml::Value::String(text.clone()))
                ));
                setting.default
            }
        }
    }

    /// A byte size: a string like `32MiB`, or a whole number of bytes, within the setting's range.
    pub(super) fn size(&mut self, setting: &Size) -> u64 {
        let key = setting.key;
        let parsed = match self.value(key) {
            None => return setting.default,
            Some(toml::Value::String(s)) => parse_bytes(s),
            Some(toml::Value::Integer(n)) => u64::try_from(*n).map_err(|_| SizeError::Negative(*n)),
            Some(v) => {
                self.wrong_type(key, v, "a size like \"32MiB\"");
                return setting.default;
            }
        };
        match parsed {
            Ok(n) if (setting.min..=setting.max).contains(&n) => n,
            Ok(n) => {
                self.problems.push(format!(
                    "{} = {n} bytes is out of range: it must be between {} and {}",
                    self.at(key),
                    show_size(setting.min),
                    show_size(setting.max)
                ));
                setting.default
            }
            Err(m) => {
                self.problems.push(format!("{}: {m}", self.at(key)));
                setting.default
            }
        }
    }

    /// A sub-table, or None when absent or not a table (reported).
    pub(super) fn table(&mut self, key: &'static str) -> Option<&'a toml::Table> {
        match self.value(key)? {
            toml::Value::Table(t) => Some(t),
            v => {
                self.wrong_type(key, v, &format!("a table (a [{key}] section)"));
                None
            }
        }
    }

    /// Every key of the table that no reader asked for is a problem of its own.
    pub(super) fn finish(self) {
        for key in self.table.keys() {
            if self.known.contains(&key.as_str()) {
                continue;
            }
            let hint = self
                .known
                .iter()
                .filter(|k| similar(k, key))
                .map(|k| format!(" (did you mean `{}`?)", self.at(k)))
                .next()
                .unwrap_or_default();
            let place = if self.path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{}]", self.path)
            };
            self.problems.push(format!(
                "unknown key `{}` {place}{hint}: remove it; the keys allowed there are {}",
                self.at(key),
                self.known.join(", ")
            ));
        }
    }
}

/// A bound as a person writes it: `3650days`, `10m`, `100ms`.
fn show_duration(d: Duration) -> String {
    const DAY: u64 = 24 * 3600;
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs >= DAY && secs.is_multiple_of(DAY) {
        format!("{}days", secs / DAY)
    } else {
        humantime::format_duration(d).to_string()
    }
}

fn show_size(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{}GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else {
        format!("{n}B")
    }
}

/// A likely misspelling: the same letters but for one edit, a swap of two, or a case change.
fn similar(known: &str, typed: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (known.chars().collect(), typed.to_lowercase().chars().collect());
    if a.len().abs_diff(b.len()) > 1 || b.len() > 64 {
        return false;
    }
    // Levenshtein distance, at most 2.
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

/// Why a byte size is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("{0:?} is not a size like 32MiB")]
    NotASize(String),
    #[error("{0:?} has an unknown unit (use B, KiB, MiB, GiB, like \"32MiB\")")]
    UnknownUnit(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
    /// A whole number of bytes below zero.
    #[error("{0} is negative")]
    Negative(i64),
}

pub fn parse_bytes(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| SizeError::NotASize(s.to_string()))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(SizeError::UnknownUnit(s.to_string())),
    };
    n.checked_mul(mult).ok_or_else(|| SizeError::TooLarge(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let text = MINIMAL.replace("region = \"ap-northeast-2\"", "region = \"x\"\nregoin = \"y\"");
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("regoin"), "{err}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }
}
