//! Parsing and building CloudTrail S3 keys.
//!
//! `[prefix/]AWSLogs/[o-org/]ACCOUNT/KIND/REGION/YYYY/MM/DD/NAME` where KIND is
//! `CloudTrail`, `CloudTrail-Digest` or `CloudTrail-Insight`. Keys sort by date
//! folder and, within a folder of one stream, by the time in the file name, which is
//! what makes `start-after` listing from a watermark correct.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

// Validated once in `names`; re-exported so keys and their parts are named in one place.
pub use crate::names::{AccountId, Region};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum FileKind {
    Log,
    Digest,
    Insight,
}

impl FileKind {
    pub const ALL: [FileKind; 3] = [FileKind::Log, FileKind::Digest, FileKind::Insight];

    pub fn folder(self) -> &'static str {
        match self {
            FileKind::Log => "CloudTrail",
            FileKind::Digest => "CloudTrail-Digest",
            FileKind::Insight => "CloudTrail-Insight",
        }
    }

    pub fn from_folder(s: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|k| k.folder() == s)
    }
}

/// One listing unit: the files of one kind for one account and region of a trail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamPrefix {
    /// The trail's key prefix, without slashes at either end; empty for none.
    pub trail_prefix: String,
    pub org: Option<String>,
    pub account: AccountId,
    pub kind: FileKind,
    pub region: Region,
}

impl StreamPrefix {
    /// `[prefix/]AWSLogs/[org/]account/Kind/region/`
    pub fn key_prefix(&self) -> String {
        let mut s = awslogs_root(&self.trail_prefix);
        if let Some(org) = &self.org {
            s.push_str(org);
            s.push('/');
        }
        s.push_str(self.account.as_str());
        s.push('/');
        s.push_str(self.kind.folder());
        s.push('/');
        s.push_str(self.region.as_str());
        s.push('/');
        s
    }

    /// The key prefix of one day folder: `.../region/YYYY/MM/DD/`.
    pub fn day_prefix(&self, day: NaiveDate) -> String {
        format!("{}{}/", self.key_prefix(), day.format("%Y/%m/%d"))
    }

    /// A `start-after` value that lists every file of `day` and later days.
    /// `YYYY/MM/DD` without the slash sorts just before every key in that folder.
    pub fn start_after_for_day(&self, day: NaiveDate) -> String {
        format!("{}{}", self.key_prefix(), day.format("%Y/%m/%d"))
    }
}

/// How far past a run's start (or now, for events) a CloudTrail file's name may be dated
/// and still be trusted: CloudTrail names a file for the end of its delivery window,
/// minutes after the events, and clocks drift. Later keys are never archived and never
/// move a watermark (one planted `2099/...` key would otherwise hide a stream for good).
pub const FUTURE_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// `[prefix/]AWSLogs/`
pub fn awslogs_root(trail_prefix: &str) -> String {
    if trail_prefix.is_empty() {
        "AWSLogs/".to_string()
    } else {
        format!("{trail_prefix}/AWSLogs/")
    }
}

/// A parsed CloudTrail file key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtKey {
    pub stream: StreamPrefix,
    pub day: NaiveDate,
    pub file_name: String,
    /// The UTC time in the file name: delivery time for logs and Insights, end time for digests.
    pub time: DateTime<Utc>,
    pub backfill: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key:?} is not a CloudTrail file key: {reason}")]
pub struct KeyError {
    pub key: String,
    pub reason: &'static str,
}

impl CtKey {
    pub fn parse(trail_prefix: &str, key: &str) -> Result<CtKey, KeyError> {
        let err = |reason| KeyError {
            key: key.to_string(),
            reason,
        };
        let root = awslogs_root(trail_prefix);
        let rest = key
            .strip_prefix(&root)
            .ok_or(err("it is not under [prefix/]AWSLogs/"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let (org, parts) = match parts.first() {
            Some(p) if p.starts_with("o-") => (Some(p.to_string()), &parts[1..]),
            _ => (None, &parts[..]),
        };
        let [account, kind, region, y, m, d, name] = parts else {
            return Err(err("it does not have the account/kind/region/YYYY/MM/DD/name shape"));
        };
        let account = AccountId::parse(account).map_err(|_| err("the account id is not 12 digits"))?;
        let kind = FileKind::from_folder(kind).ok_or(err("the kind folder is unknown"))?;
        let region = Region::parse(region).map_err(|_| err("the region is not a region name"))?;
        let day = NaiveDate::parse_from_str(&format!("{y}-{m}-{d}"), "%Y-%m-%d")
            .map_err(|_| err("the date folders are not a date"))?;
        let (time, backfill) = name_time(kind, name).ok_or(err("the file name has no CloudTrail timestamp"))?;
        Ok(CtKey {
            stream: StreamPrefix {
                trail_prefix: trail_prefix.to_string(),
                org,
                account,
                kind,
                region,
            },
            day,
            file_name: name.to_string(),
            time,
            backfill,
        })
    }
}

impl CtKey {
    /// Parses a key whose trail prefix is not known. The part after the trail prefix
    /// has a fixed shape, so the `AWSLogs/` segment it starts at is found from the right:
    /// a trail prefix may itself contain `AWSLogs`.
    pub fn parse_any(key: &str) -> Result<CtKey, KeyError> {
        let mut last_err = KeyError {
            key: key.to_string(),
            reason: "it has no AWSLogs/ segment",
        };
        for at in awslogs_segments(key).into_iter().rev() {
            let prefix = if at == 0 { "" } else { &key[..at - 1] };
            match CtKey::parse(prefix, key) {
                Ok(k) => return Ok(k),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }
}

/// Byte offsets of every `AWSLogs/` that starts a path segment.
fn awslogs_segments(key: &str) -> Vec<usize> {
    key.match_indices("AWSLogs/")
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || key.as_bytes()[i - 1] == b'/')
        .collect()
}

impl StreamPrefix {
    /// Parses a stream's key prefix `[p/]AWSLogs/[o-org/]account/Kind/region/`, as the
    /// watermark documents key their streams.
    pub fn parse(stream: &str) -> Option<StreamPrefix> {
        let body = stream.strip_suffix('/')?;
        awslogs_segments(stream).into_iter().rev().find_map(|at| {
            let trail_prefix = if at == 0 { "" } else { &stream[..at - 1] };
            // `AWSLogs/` at the very end (a hostile watermark) leaves nothing after it.
            let parts: Vec<&str> = body.get(at + "AWSLogs/".len()..)?.split('/').collect();
            let (org, parts) = match parts.first() {
                Some(p) if p.starts_with("o-") => (Some(p.to_string()), &parts[1..]),
                _ => (None, &parts[..]),
            };
            let [account, kind, region] = parts else { return None };
            let account = AccountId::parse(account).ok()?;
            let region = Region::parse(region).ok()?;
            Some(StreamPrefix {
                trail_prefix: trail_prefix.to_string(),
                org,
                account,
                kind: FileKind::from_folder(kind)?,
                region,
            })
        })
    }
}

/// The time in a CloudTrail file name, and whether it is a backfill digest.
fn name_time(kind: FileKind, name: &str) -> Option<(DateTime<Utc>, bool)> {
    let stem = name.strip_suffix(".json.gz")?;
    match kind {
        FileKind::Digest => {
            let (stem, backfill) = match stem.strip_suffix("_backfill") {
                Some(s) => (s, true),
                None => (stem, false),
            };
            let stamp = stem.get(stem.len().checked_sub(16)?..)?;
            Some((parse_stamp(stamp)?, backfill))
        }
        // <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>
        FileKind::Log | FileKind::Insight => {
            let stamp = stem.split('_').nth(3)?;
            Some((parse_stamp(stamp)?, false))
        }
    }
}

/// `YYYYMMDDTHHmmZ` (logs) or `YYYYMMDDTHHMMSSZ` (digests).
pub fn parse_stamp(s: &str) -> Option<DateTime<Utc>> {
    let fmt = match s.len() {
        14 => "%Y%m%dT%H%MZ",
        16 => "%Y%m%dT%H%M%SZ",
        _ => return None,
    };
    NaiveDateTime::parse_from_str(s, fmt)
        .ok()
        .map(|t| Utc.from_utc_datetime(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_ending_at_awslogs_is_not_a_stream() {
        for hostile in ["AWSLogs/", "x/AWSLogs/", "AWSLogs/AWSLogs/", "AWSLogs//"] {
            assert_eq!(StreamPrefix::parse(hostile), None, "{hostile}");
        }
    }

    #[test]
    fn parses_a_standard_log_key() {
        let k = CtKey::parse(
            "",
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/111122223333_CloudTrail_us-east-1_20261125T0905Z_abcdEFGH12345678.json.gz",
        )
        .unwrap();
        assert_eq!(k.stream.account, "111122223333");
        assert_eq!(k.stream.kind, FileKind::Log);
        assert_eq!(k.stream.org, None);
        assert_eq!(k.time.to_rfc3339(), "2026-11-25T09:05:00+00:00");
        assert_eq!(k.stream.key_prefix(), "AWSLogs/111122223333/CloudTrail/us-east-1/");
    }

    #[test]
    fn parses_an_org_trail_digest_with_prefix_and_backfill() {
        let key = "corp/trails/AWSLogs/o-abc123defg/444455556666/CloudTrail-Digest/eu-west-1/2026/11/25/444455556666_CloudTrail-Digest_eu-west-1_org-trail_us-east-1_20261125T101502Z_backfill.json.gz";
        let k = CtKey::parse("corp/trails", key).unwrap();
        assert_eq!(k.stream.org.as_deref(), Some("o-abc123defg"));
        assert_eq!(k.stream.kind, FileKind::Digest);
        assert!(k.backfill);
        assert_eq!(k.time.to_rfc3339(), "2026-11-25T10:15:02+00:00");
        assert!(key.starts_with(&k.stream.key_prefix()));
        assert!(key.starts_with(&k.stream.day_prefix(k.day)));
    }

    #[test]
    fn parses_keys_without_knowing_the_prefix() {
        let k = CtKey::parse_any("a/b/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/111122223333_CloudTrail_us-east-1_20261125T0905Z_x.json.gz").unwrap();
        assert_eq!(k.stream.trail_prefix, "a/b");
        assert!(CtKey::parse_any("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/111122223333_CloudTrail_us-east-1_20261125T0905Z_x.json.gz").is_ok());
        assert!(CtKey::parse_any("xAWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/y.json.gz").is_err());
    }

    #[test]
    fn rejects_foreign_keys() {
        for key in [
            "AWSLogs/111122223333/Config/us-east-1/2026/11/25/x.json.gz",
            "AWSLogs/1111/CloudTrail/us-east-1/2026/11/25/x.json.gz",
            "other/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/111122223333_CloudTrail_us-east-1_20261125T0905Z_a.json.gz",
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/13/25/111122223333_CloudTrail_us-east-1_20261125T0905Z_a.json.gz",
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/notes.txt",
        ] {
            assert!(CtKey::parse("", key).is_err(), "{key}");
        }
    }

    #[test]
    fn day_start_after_sorts_before_the_days_keys_and_after_the_previous_day() {
        let s = StreamPrefix {
            trail_prefix: String::new(),
            org: None,
            account: "111122223333".parse().unwrap(),
            kind: FileKind::Log,
            region: "us-east-1".parse().unwrap(),
        };
        let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let sa = s.start_after_for_day(day);
        let prev = format!("{}2026/11/24/zzzz.json.gz", s.key_prefix());
        let first = format!("{}2026/11/25/0000.json.gz", s.key_prefix());
        assert!(prev.as_str() < sa.as_str());
        assert!(sa.as_str() < first.as_str());
    }

    mod ordering {
        //! Property tests: the orderings `start-after` listing depends on, over keys
        //! built the way CloudTrail builds them.

        use super::super::*;
        use chrono::Datelike;
        use proptest::prelude::*;

        /// What varies between streams: trail prefix (whose segments may be `AWSLogs`),
        /// organization, account, region, kind (logs, digests, Insights), and for digests
        /// the trail and home region.
        #[derive(Debug, Clone)]
        struct Stream {
            prefix: String,
            org: Option<String>,
            account: String,
            region: String,
            kind: FileKind,
            trail: String,
            home_region: String,
        }

        impl Stream {
            fn expected(&self) -> StreamPrefix {
                StreamPrefix {
                    trail_prefix: self.prefix.clone(),
                    org: self.org.clone(),
                    account: self.account.parse().unwrap(),
                    kind: self.kind,
                    region: self.region.parse().unwrap(),
                }
            }

            /// The key CloudTrail writes, built from the pieces (not from `key_prefix`).
            fn key(&self, t: DateTime<Utc>, unique: &str, backfill: bool) -> String {
                let mut s = String::new();
                if !self.prefix.is_empty() {
                    s.push_str(&self.prefix);
                    s.push('/');
                }
                s.push_str("AWSLogs/");
                if let Some(o) = &self.org {
                    s.push_str(o);
                    s.push('/');
                }
                let (acct, region) = (&self.account, &self.region);
                let day = t.format("%Y/%m/%d");
                let kind = self.kind.folder();
                if self.kind == FileKind::Digest {
                    format!(
                        "{s}{acct}/CloudTrail-Digest/{region}/{day}/{acct}_CloudTrail-Digest_{region}_{}_{}_{}{}.json.gz",
                        self.trail,
                        self.home_region,
                        t.format("%Y%m%dT%H%M%SZ"),
                        if backfill { "_backfill" } else { "" }
                    )
                } else {
                    format!(
                        "{s}{acct}/{kind}/{region}/{day}/{acct}_{kind}_{region}_{}_{unique}.json.gz",
                        t.format("%Y%m%dT%H%MZ")
                    )
                }
            }
        }

        fn region() -> impl Strategy<Value = String> {
            "[a-z]{2}(-gov)?-[a-z]{4,9}-[1-9]"
        }

        fn stream() -> impl Strategy<Value = Stream> {
            (
                prop::collection::vec(prop_oneof![Just("AWSLogs".to_string()), "[A-Za-z0-9._-]{1,8}"], 0..4),
                prop::option::of("o-[a-z0-9]{10}"),
                "[0-9]{12}",
                region(),
                prop::sample::select(FileKind::ALL.to_vec()),
                "[A-Za-z0-9._-]{1,20}",
                region(),
            )
                .prop_filter("a prefix segment is a folder name", |(segments, ..)| {
                    segments.iter().all(|s| s != "." && s != "..")
                })
                .prop_map(|(segments, org, account, region, kind, trail, home_region)| Stream {
                    prefix: segments.join("/"),
                    org,
                    account,
                    region,
                    kind,
                    trail,
                    home_region,
                })
        }

        /// 2015 to 2035, to the second.
        fn time() -> impl Strategy<Value = DateTime<Utc>> {
            (1_420_070_400i64..2_082_758_400).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
        }

        /// Files of one stream: times (some on the same day, some in the same minute),
        /// unique suffixes, backfill flags; keys are unique as in S3.
        fn files() -> impl Strategy<Value = Vec<(DateTime<Utc>, String, bool)>> {
            (
                time(),
                prop::collection::vec((0i64..4 * 86_400, "[A-Za-z0-9]{16}", any::<bool>()), 1..40),
            )
                .prop_map(|(base, offsets)| {
                    offsets
                        .into_iter()
                        .map(|(o, unique, backfill)| (base + chrono::Duration::seconds(o), unique, backfill))
                        .collect()
                })
        }

        fn built(s: &Stream, files: &[(DateTime<Utc>, String, bool)]) -> Vec<(String, DateTime<Utc>)> {
            let mut keys: Vec<(String, DateTime<Utc>)> = files
                .iter()
                .map(|(t, unique, backfill)| {
                    // Log and Insight names carry minutes; digest names seconds.
                    let t = if s.kind == FileKind::Digest {
                        *t
                    } else {
                        *t - chrono::Duration::seconds(t.timestamp().rem_euclid(60))
                    };
                    (s.key(t, unique, *backfill), t)
                })
                .collect();
            keys.sort();
            keys.dedup_by(|a, b| a.0 == b.0);
            keys
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn keys_sort_as_their_day_and_time(s in stream(), files in files()) {
                let keys = built(&s, &files);
                let parsed: Vec<(NaiveDate, DateTime<Utc>)> = keys
                    .iter()
                    .map(|(k, _)| {
                        let ct = CtKey::parse(&s.prefix, k).unwrap_or_else(|e| panic!("{e}"));
                        (ct.day, ct.time)
                    })
                    .collect();
                for (w, k) in parsed.windows(2).zip(keys.windows(2)) {
                    prop_assert!(w[0] <= w[1], "{} sorts before {} but is later: {:?} > {:?}", k[0].0, k[1].0, w[0], w[1]);
                }
            }

            #[test]
            fn start_after_for_day_splits_the_stream_at_the_day(s in stream(), files in files(), pick in any::<prop::sample::Index>(), shift in -1i64..=1) {
                let keys = built(&s, &files);
                let day = keys[pick.index(keys.len())].1.date_naive() + chrono::Duration::days(shift);
                let sa = s.expected().start_after_for_day(day);
                for (k, t) in &keys {
                    if t.date_naive() < day {
                        prop_assert!(k.as_str() < sa.as_str(), "{k} (an earlier day) sorts after start-after {sa}");
                    } else {
                        prop_assert!(sa.as_str() < k.as_str(), "{k} (day {} >= {day}) sorts before start-after {sa}", t.date_naive());
                    }
                }
            }

            /// Stream prefixes come from watermark documents and keys from listings:
            /// whoever can write either must not be able to crash a reader.
            #[test]
            fn parsing_hostile_strings_never_panics(
                s in "(AWSLogs/|AWSLogs|o-x/|/|111122223333/|CloudTrail/|us-east-1/|2026/|11/|é|x)*"
            ) {
                let _ = StreamPrefix::parse(&s);
                let _ = CtKey::parse_any(&s);
            }

            #[test]
            fn parse_any_round_trips_the_stream(s in stream(), files in files()) {
                let want = s.expected();
                prop_assert_eq!(StreamPrefix::parse(&want.key_prefix()), Some(want.clone()));
                for (k, t) in &built(&s, &files) {
                    let ct = CtKey::parse_any(k).unwrap_or_else(|e| panic!("{e}"));
                    prop_assert_eq!(&ct.stream, &want, "{}", k);
                    prop_assert!(k.starts_with(&ct.stream.key_prefix()), "{} does not start with {}", k, ct.stream.key_prefix());
                    prop_assert!(k.starts_with(&ct.stream.day_prefix(ct.day)));
                    prop_assert_eq!(ct.time, *t);
                    prop_assert_eq!((ct.day.year(), ct.day.ordinal()), (t.year(), t.ordinal()));
                    prop_assert_eq!(ct.backfill, s.kind == FileKind::Digest && k.ends_with("_backfill.json.gz"));
                }
            }
        }
    }
}
