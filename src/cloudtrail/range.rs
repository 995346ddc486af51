//! Time selection of the contract: `--since` inclusive, `--until` exclusive, on the
//! UTC time in the file name; digests by `[since, until + 1h)` so the digests that
//! vouch for the selected logs come with them.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::{CtKey, FileKind};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{0:?} is neither RFC 3339 (2026-11-25T09:00:00Z) nor a date (2026-11-25)")]
    NotATime(String),
    #[error("--until must be later than --since")]
    EmptyRange,
}

/// RFC 3339, or a date `YYYY-MM-DD` meaning its midnight UTC.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, TimeError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
        .ok_or_else(|| TimeError::NotATime(s.to_string()))
}

impl TimeRange {
    pub fn new(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Result<Self, TimeError> {
        if let (Some(s), Some(u)) = (since, until) {
            if u <= s {
                return Err(TimeError::EmptyRange);
            }
        }
        Ok(Self { since, until })
    }

    pub fn contains(&self, key: &CtKey) -> bool {
        let until = match (key.stream.kind, self.until) {
            (FileKind::Digest, Some(u)) => Some(u + chrono::Duration::hours(1)),
            (_, u) => u,
        };
        self.since.is_none_or(|s| key.time >= s) && until.is_none_or(|u| key.time < u)
    }

    /// The date folders that can hold selected files (None: unbounded). Digest folders
    /// follow the digest end time, so the range reaches one hour past `until`.
    pub fn days(&self) -> Option<Vec<NaiveDate>> {
        let (since, until) = (self.since?, self.until? + chrono::Duration::hours(1));
        let mut d = since.date_naive();
        let mut out = Vec::new();
        while d <= until.date_naive() {
            out.push(d);
            d = d.succ_opt()?;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, stamp: &str) -> CtKey {
        let k = match kind {
            "log" => format!("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/111122223333_CloudTrail_us-east-1_{stamp}_abc.json.gz"),
            _ => format!("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/25/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_{stamp}.json.gz"),
        };
        CtKey::parse("", &k).unwrap()
    }

    #[test]
    fn since_inclusive_until_exclusive_and_digests_an_hour_later() {
        let r = TimeRange::new(
            Some(parse_time("2026-11-25").unwrap()),
            Some(parse_time("2026-11-25T10:00:00Z").unwrap()),
        )
        .unwrap();
        assert!(r.contains(&key("log", "20261125T0000Z")));
        assert!(r.contains(&key("log", "20261125T0959Z")));
        assert!(!r.contains(&key("log", "20261125T1000Z")));
        assert!(r.contains(&key("digest", "20261125T105959Z")));
        assert!(!r.contains(&key("digest", "20261125T110000Z")));
    }

    #[test]
    fn bad_times_are_explained() {
        assert!(parse_time("yesterday").unwrap_err().to_string().contains("RFC 3339"));
        assert!(TimeRange::new(
            Some(parse_time("2026-11-25").unwrap()),
            Some(parse_time("2026-11-24").unwrap())
        )
        .is_err());
    }

    #[test]
    fn days_cover_the_range_and_the_digest_hour() {
        let r = TimeRange::new(
            Some(parse_time("2026-11-24T23:00:00Z").unwrap()),
            Some(parse_time("2026-11-25T23:30:00Z").unwrap()),
        )
        .unwrap();
        let days: Vec<String> = r.days().unwrap().iter().map(|d| d.to_string()).collect();
        assert_eq!(days, ["2026-11-24", "2026-11-25", "2026-11-26"]);
    }
}
