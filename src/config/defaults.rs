//! Every default and every range of the configuration, stated once: the readers take them
//! from here, and a test holds the README's configuration section to them.

use std::time::Duration;

/// Staged-block size; also the largest object sent as a single Put Blob.
pub const BLOCK_SIZE: u64 = 4 * 1024 * 1024;

const DAY: u64 = 24 * 3600;
/// The longest duration any setting takes: ten years (longer values are typos, and some
/// overflow date arithmetic).
const LONGEST: Duration = Duration::from_secs(3650 * DAY);

/// A whole-number setting.
#[derive(Debug)]
pub struct Count {
    pub section: &'static str,
    pub key: &'static str,
    pub default: u32,
    pub min: u32,
    pub max: u32,
    /// What is counted, for messages.
    pub what: &'static str,
}

/// A duration setting (humantime text).
#[derive(Debug)]
pub struct Span {
    pub section: &'static str,
    pub key: &'static str,
    pub default: Duration,
    pub min: Duration,
    pub max: Duration,
}

/// A byte-size setting (`"32MiB"` or a number of bytes).
#[derive(Debug)]
pub struct Size {
    pub section: &'static str,
    pub key: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
}

pub const CONCURRENCY: Count = Count {
    section: "sync",
    key: "concurrency",
    default: 32,
    min: 1,
    max: 1024,
    what: "files in flight",
};
/// Twice the default files in flight: every copy holds a read open while it writes.
pub const MAX_REQUESTS: Count = Count {
    section: "sync",
    key: "max_requests",
    default: 64,
    min: 1,
    max: 4096,
    what: "requests in flight to each service",
};
pub const RETRIES: Count = Count {
    section: "sync",
    key: "retries",
    default: 6,
    min: 1,
    max: 20,
    what: "attempts per file, the first included",
};
pub const DEGRADED_AFTER: Count = Count {
    section: "health",
    key: "degraded_after",
    default: 1,
    min: 1,
    max: 1000,
    what: "consecutive failed probes",
};
pub const OUTAGE_AFTER: Count = Count {
    section: "health",
    key: "outage_after",
    default: 3,
    min: 1,
    max: 1000,
    what: "consecutive failed probes",
};

/// At least one block, so that a file of any size can be staged.
pub const IN_FLIGHT_BYTES: Size = Size {
    section: "sync",
    key: "in_flight_bytes",
    default: 32 << 20,
    min: BLOCK_SIZE,
    max: 64 << 30,
};

pub const LOOKBACK: Span = Span {
    section: "sync",
    key: "lookback",
    default: Duration::from_secs(72 * 3600),
    min: Duration::ZERO,
    max: LONGEST,
};
pub const MAX_GAP: Span = Span {
    section: "sync",
    key: "max_gap",
    default: Duration::from_secs(8 * 3600),
    min: Duration::from_secs(1),
    max: LONGEST,
};
pub const RETRY_MAX_DELAY: Span = Span {
    section: "sync",
    key: "retry_max_delay",
    default: Duration::from_secs(30),
    min: Duration::from_millis(10),
    max: Duration::from_secs(600),
};
pub const PROBE_TIMEOUT: Span = Span {
    section: "health",
    key: "probe_timeout",
    default: Duration::from_secs(10),
    min: Duration::from_millis(100),
    max: Duration::from_secs(600),
};
pub const CLOCK_SKEW: Span = Span {
    section: "federation",
    key: "clock_skew",
    default: Duration::from_secs(180),
    min: Duration::ZERO,
    max: Duration::from_secs(3600),
};

pub const COUNTS: [&Count; 5] = [&CONCURRENCY, &MAX_REQUESTS, &RETRIES, &DEGRADED_AFTER, &OUTAGE_AFTER];
pub const SPANS: [&Span; 5] = [&LOOKBACK, &MAX_GAP, &RETRY_MAX_DELAY, &PROBE_TIMEOUT, &CLOCK_SKEW];
pub const SIZES: [&Size; 1] = [&IN_FLIGHT_BYTES];

pub const CRON: &str = "0 0 */8 * * *";
pub const TIMEZONE: &str = "UTC";
pub const VERIFY_CRON: &str = "0 30 1 * * *";

/// The audiences AWS sign-in uses in SAML responses.
pub const AUDIENCES: [&str; 2] = ["https://signin.aws.amazon.com/saml", "urn:amazon:webservices"];

/// The audience Entra issues federation tokens for by default (AWS's OIDC provider
/// for the tenant lists it as its client ID).
pub const TOKEN_AUDIENCE: &str = "api://AzureADTokenExchange";
pub const SESSION_NAME: &str = "trailvault";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fields::parse_bytes;
    use crate::config::test_support::*;

    /// The README's configuration section: its TOML example and its table of ranges.
    fn readme_configuration() -> &'static str {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("\n## Configuration\n")
            .expect("README has a Configuration section");
        let rest = &readme[start + 1..];
        let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
        &rest[..end]
    }

    fn readme_example() -> toml::Table {
        let section = readme_configuration();
        let start = section.find("```toml\n").expect("a TOML example") + "```toml\n".len();
        let end = start + section[start..].find("```").expect("the example ends");
        section[start..end].parse().expect("the README's example is TOML")
    }

    fn duration(text: &str) -> Duration {
        humantime::parse_duration(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn the_readme_example_shows_the_defaults() {
        let example = readme_example();
        let value = |section: &str, key: &str| example.get(section).and_then(|s| s.get(key)).cloned();
        let mut shown = 0;
        for c in COUNTS {
            if let Some(v) = value(c.section, c.key) {
                assert_eq!(v.as_integer(), Some(i64::from(c.default)), "{}.{}", c.section, c.key);
                shown += 1;
            }
        }
        for s in SPANS {
            if let Some(v) = value(s.section, s.key) {
                assert_eq!(v.as_str().map(duration), Some(s.default), "{}.{}", s.section, s.key);
                shown += 1;
            }
        }
        for s in SIZES {
            if let Some(v) = value(s.section, s.key) {
                let bytes = v.as_str().and_then(|t| parse_bytes(t).ok());
                assert_eq!(bytes, Some(s.default), "{}.{}", s.section, s.key);
                shown += 1;
            }
        }
        assert!(shown >= 5, "the README's example shows {shown} of the table's settings");
    }

    /// Rows `| section.key | default | min | max |` of the README's table of ranges.
    fn readme_ranges() -> Vec<[String; 4]> {
        readme_configuration()
            .lines()
            .filter_map(|line| {
                let cells: Vec<String> = line
                    .trim()
                    .strip_prefix('|')?
                    .strip_suffix('|')?
                    .split('|')
                    .map(|c| c.trim().trim_matches('`').to_string())
                    .collect();
                let cells: [String; 4] = cells.try_into().ok()?;
                cells[0].contains('.').then_some(cells)
            })
            .collect()
    }

    #[test]
    fn the_readme_table_of_ranges_is_this_table() {
        let rows = readme_ranges();
        let mut seen = Vec::new();
        for [key, default, min, max] in &rows {
            seen.push(key.clone());
            if let Some(c) = COUNTS.iter().find(|c| *key == format!("{}.{}", c.section, c.key)) {
                let numbers = [default, min, max].map(|n| n.parse::<u32>().ok());
                assert_eq!(numbers, [Some(c.default), Some(c.min), Some(c.max)], "{key}");
            } else if let Some(s) = SPANS.iter().find(|s| *key == format!("{}.{}", s.section, s.key)) {
                assert_eq!(
                    [default, min, max].map(|d| duration(d)),
                    [s.default, s.min, s.max],
                    "{key}"
                );
            } else if let Some(s) = SIZES.iter().find(|s| *key == format!("{}.{}", s.section, s.key)) {
                let bytes = [default, min, max].map(|b| parse_bytes(b).ok());
                assert_eq!(bytes, [Some(s.default), Some(s.min), Some(s.max)], "{key}");
            } else {
                panic!("the README lists {key}, which has no range in config/defaults.rs");
            }
        }
        let keys = COUNTS
            .iter()
            .map(|c| format!("{}.{}", c.section, c.key))
            .chain(SPANS.iter().map(|s| format!("{}.{}", s.section, s.key)))
            .chain(SIZES.iter().map(|s| format!("{}.{}", s.section, s.key)));
        for key in keys {
            assert!(seen.contains(&key), "the README's table of ranges has no row for {key}");
        }
    }

    #[test]
    fn durations_sizes_and_counts_have_ranges() {
        for (section, key, value, needle) in [
            ("sync", "lookback", "\"300000years\"", "out of range"),
            ("sync", "lookback", "\"99999999999999999999999h\"", "not a duration"),
            ("sync", "lookback", "\"-5s\"", "not a duration"),
            ("sync", "max_gap", "\"0s\"", "out of range"),
            ("sync", "in_flight_bytes", "\"1MiB\"", "out of range"),
            ("sync", "in_flight_bytes", "\"99999999999999GiB\"", "too large"),
            ("sync", "in_flight_bytes", "-4", "negative"),
            ("sync", "concurrency", "0", "out of range"),
            ("sync", "concurrency", "9223372036854775807", "out of range"),
            ("sync", "max_requests", "0", "out of range"),
            ("sync", "max_requests", "\"many\"", "whole number"),
            ("sync", "retry_max_delay", "\"1ns\"", "out of range"),
            ("health", "probe_timeout", "\"20years\"", "out of range"),
            ("health", "degraded_after", "0", "out of range"),
            ("schedule", "cron", "7", "must be a string"),
        ] {
            let text = format!("{MINIMAL}\n[{section}]\n{key} = {value}\n");
            let p = problems(&text);
            assert_eq!(p.len(), 1, "{section}.{key} = {value}: {p:?}");
            assert!(
                p[0].contains(&format!("{section}.{key}")) && p[0].contains(needle),
                "{p:?}"
            );
        }
        let text = format!("{MINIMAL}\n[sync]\nlookback = \"3650days\"\nin_flight_bytes = 8388608\n");
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(c.sync.in_flight_bytes, 8 << 20);
        assert_eq!(c.sync.lookback, Duration::from_secs(3650 * 24 * 3600));
    }
}
