//! Which announced keys a source archives: exactly those `sync` would copy, that is, keys
//! of its bucket under a stream folder `[prefix/]AWSLogs/[o-org/]ACCOUNT/KIND/REGION/` of
//! valid parts, and not named for a time past what a run may trust.

use chrono::{DateTime, Utc};

use crate::cloudtrail::key::awslogs_root;
use crate::cloudtrail::{AccountId, CtKey, FileKind, Region};

pub use crate::cloudtrail::key::FUTURE_TOLERANCE;

/// Why a key is not archived from this source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOurs {
    OtherBucket,
    NotAStreamKey,
    /// Named for a time after `trusted_until`: `sync` reports it and copies nothing.
    Future,
}

/// `Ok(time in the file name, when it has one)` for a key to archive.
pub fn select(
    bucket: &str,
    trail_prefix: &str,
    announced_bucket: &str,
    key: &str,
    trusted_until: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, NotOurs> {
    if announced_bucket != bucket {
        return Err(NotOurs::OtherBucket);
    }
    let rest = key
        .strip_prefix(&awslogs_root(trail_prefix))
        .ok_or(NotOurs::NotAStreamKey)?;
    let mut parts = rest.split('/');
    let mut account = parts.next().ok_or(NotOurs::NotAStreamKey)?;
    if account.starts_with("o-") {
        account = parts.next().ok_or(NotOurs::NotAStreamKey)?;
    }
    AccountId::parse(account).map_err(|_| NotOurs::NotAStreamKey)?;
    parts
        .next()
        .and_then(FileKind::from_folder)
        .ok_or(NotOurs::NotAStreamKey)?;
    parts
        .next()
        .and_then(|r| Region::parse(r).ok())
        .ok_or(NotOurs::NotAStreamKey)?;
    // Something below the region folder: sync lists every key there.
    if parts.collect::<Vec<_>>().join("/").is_empty() {
        return Err(NotOurs::NotAStreamKey);
    }
    let time = CtKey::parse(trail_prefix, key).ok().map(|k| k.time);
    if time.is_some_and(|t| t > trusted_until) {
        return Err(NotOurs::Future);
    }
    Ok(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "p/AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/07/111122223333_CloudTrail_us-east-1_20261207T1205Z_abc.json.gz";

    fn now() -> DateTime<Utc> {
        "2026-12-07T13:00:00Z".parse().unwrap()
    }

    #[test]
    fn stream_keys_of_the_bucket_and_prefix_are_ours() {
        let t = select("b", "p", "b", LOG, now()).unwrap();
        assert_eq!(t, Some("2026-12-07T12:05:00Z".parse().unwrap()));
        let org = "p/AWSLogs/o-abcdefghij/111122223333/CloudTrail-Digest/eu-west-1/2026/12/07/x.json.gz";
        assert_eq!(select("b", "p", "b", org, now()), Ok(None));
    }

    #[test]
    fn everything_else_is_not_ours() {
        assert_eq!(select("b", "p", "other", LOG, now()), Err(NotOurs::OtherBucket));
        for key in [
            &LOG[2..],
            "p/AWSLogs/111122223333/CloudTrail/ConfigWritabilityCheckFile",
            "p/AWSLogs/111122223333/Config/us-east-1/2026/12/07/x.json.gz",
            "p/AWSLogs/11112222333/CloudTrail/us-east-1/2026/12/07/x.json.gz",
            "p/AWSLogs/111122223333/CloudTrail/US-EAST-1/2026/12/07/x.json.gz",
            "p/AWSLogs/111122223333/CloudTrail/us-east-1/",
            "q/AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/07/x.json.gz",
        ] {
            assert_eq!(select("b", "p", "b", key, now()), Err(NotOurs::NotAStreamKey), "{key}");
        }
        let early: DateTime<Utc> = "2026-12-07T11:00:00Z".parse().unwrap();
        assert_eq!(select("b", "p", "b", LOG, early), Err(NotOurs::Future));
    }
}
