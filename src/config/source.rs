//! `[[source]]`: the S3 buckets trails deliver to.

use std::collections::BTreeSet;

use url::Url;

use super::fields::{described, Fields, Problems};
use super::url::{parse_http_url, UrlError};
use crate::names::{BucketName, Region, SourceName};

/// One `[[source]]` as written; required fields are `None` when absent or of the wrong
/// type (already reported).
pub(super) struct RawSource {
    name: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    prefix: String,
    endpoint: Option<String>,
    role_arn: Option<String>,
    queue_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: SourceName,
    pub bucket: BucketName,
    pub region: Region,
    /// The trail's key prefix without leading or trailing `/` (empty for none).
    pub prefix: String,
    pub endpoint: Option<Url>,
    /// The role this source's S3 is read with under `azure-federated` (`[aws] role_arn` when unset).
    pub role_arn: Option<String>,
    /// The SQS queue that announces new files of this source (`drain`, the daemon's
    /// event loop); `None`: the schedule alone archives it.
    pub queue_url: Option<Url>,
}

/// What `[aws]` needs to know of a source, valid or not: its name as written and whether
/// it names a role.
pub(super) struct SourceRole {
    pub name: String,
    pub has_role: bool,
}

/// The `source` key of the document: an array of `[[source]]` tables.
pub(super) fn read_all(top: &mut Fields<'_>, problems: &Problems) -> Vec<RawSource> {
    let mut sources = Vec::new();
    match top.value("source") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    toml::Value::Table(t) => sources.push(read(&format!("source[{i}]"), t, problems)),
                    v => problems.push(format!(
                        "source[{i}] must be a table ([[source]] with name, bucket, region), got {}",
                        described(v)
                    )),
                }
            }
        }
        Some(toml::Value::Table(_)) => {
            problems.push("`source` must be an array of tables: write [[source]] (two brackets), not [source]")
        }
        Some(v) => top.wrong_type("source", v, "an array of [[source]] tables"),
    }
    sources
}

fn read(at: &str, t: &toml::Table, problems: &Problems) -> RawSource {
    let mut f = Fields::new(at, t, problems);
    let raw = RawSource {
        name: f.required(
            "name",
            "a short name of [a-z0-9-] (the first segment of every archived blob)",
        ),
        bucket: f.required("bucket", "the S3 bucket the trail delivers to"),
        region: f.required("region", "the bucket's region, like \"us-east-1\""),
        prefix: f.string_or("prefix", ""),
        endpoint: f.opt_string("endpoint"),
        role_arn: f.opt_string("role_arn"),
        queue_url: f.opt_string("queue_url"),
    };
    f.finish();
    raw
}

pub(super) fn roles(raw: &[RawSource]) -> Vec<SourceRole> {
    raw.iter()
        .map(|s| SourceRole {
            name: s.name.clone().unwrap_or_default(),
            has_role: s.role_arn.as_deref().is_some_and(|r| !r.is_empty()),
        })
        .collect()
}

/// Every source checked on its own and the names against one another; a source with a
/// problem is reported and left out.
pub(super) fn validate_all(raw: Vec<RawSource>, problems: &Problems) -> Vec<SourceConfig> {
    let mut names = BTreeSet::new();
    let mut sources = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let at = match &s.name {
            Some(name) => format!("source[{i}] ({name})"),
            None => format!("source[{i}]"),
        };
        let unique = s.name.as_ref().is_none_or(|name| names.insert(name.clone()));
        if let Some(source) = validate(&at, s, unique, problems) {
            sources.push(source);
        }
    }
    sources
}

fn validate(at: &str, s: RawSource, unique: bool, problems: &Problems) -> Option<SourceConfig> {
    // Every check runs even when an earlier one failed, so that all problems show at once.
    let name = s.name.as_deref().map(|n| {
        n.parse::<SourceName>()
            .map_err(|e| problems.push(format!("{at}: name {e}")))
    });
    if !unique {
        problems.push(format!(
            "{at}: name is used by more than one source; give each a name of its own"
        ));
    }
    let region = s.region.as_deref().map(|r| r.parse::<Region>());
    let bucket = s.bucket.as_deref().zip(region.as_ref()).map(|(b, region)| {
        match region {
            Ok(region) => BucketName::in_region(b, region),
            Err(_) => b.parse(),
        }
        .map_err(|e| problems.push(format!("{at}: bucket {e}")))
    });
    let region = region.map(|r| {
        r.map_err(|e| match e.value.as_str() {
            "" => problems.push(format!(
                "{at}: region is empty: set the bucket's region, like \"us-east-1\""
            )),
            _ => problems.push(format!(
                "{at}: region {e} (lowercase letters, digits and '-', like \"eu-west-1\")"
            )),
        })
    });
    let endpoint = match s.endpoint.as_deref().filter(|e| !e.is_empty()) {
        None => Ok(None),
        Some(e) => parse_http_url(e)
            .map(Some)
            .map_err(|m| problems.push(format!("{at}: endpoint {m}"))),
    };
    let role_arn = s.role_arn.filter(|r| !r.is_empty());
    if let Some(r) = &role_arn {
        if !super::aws::is_role_arn(r) {
            problems.push(format!(
                "{at}: role_arn {r:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
            ));
        }
    }
    let queue_url = match s.queue_url.as_deref().filter(|q| !q.is_empty()) {
        None => Ok(None),
        Some(q) => parse_http_url(q)
            .and_then(
                |u| match u.path_segments().map(|p| p.filter(|s| !s.is_empty()).count()) {
                    // `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`: a queue URL names its
                    // account and queue; a bare endpoint would send every call to no queue.
                    Some(2) => Ok(u),
                    _ => Err(UrlError::NotAQueue(q.to_string())),
                },
            )
            .map(Some)
            .map_err(|m| problems.push(format!("{at}: queue_url {m}"))),
    };
    if !unique {
        return None;
    }
    Some(SourceConfig {
        name: name?.ok()?,
        bucket: bucket?.ok()?,
        region: region?.ok()?,
        prefix: s.prefix.trim_matches('/').to_string(),
        endpoint: endpoint.ok()?,
        role_arn,
        queue_url: queue_url.ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn queue_url_is_optional_and_must_name_a_queue() {
        let c = parse(MINIMAL, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert!(c.sources[0].queue_url.is_none());
        let with = |q: &str| MINIMAL.replacen("[[source]]\n", &format!("[[source]]\nqueue_url = {q:?}\n"), 1);
        let good = with("https://sqs.ap-northeast-2.amazonaws.com/111122223333/trail-events");
        let c = parse(&good, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(
            c.sources[0].queue_url.as_ref().map(|u| u.as_str()),
            Some("https://sqs.ap-northeast-2.amazonaws.com/111122223333/trail-events")
        );
        for bad in ["https://sqs.ap-northeast-2.amazonaws.com", "ftp://q/1/2", "not a url"] {
            let err = parse(&with(bad), &[(ENV_AZURE_ACCOUNT_KEY, KEY)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("queue_url"), "{bad}: {err}");
        }
    }

    /// The rule itself is tested in `names::bucket_name`; here, that the source's region picks it.
    #[test]
    fn legacy_us_east_1_bucket_names_keep_their_capitals() {
        let text = MINIMAL.replace("org-trail-logs", "CloudTrail_Logs");
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(
            err.contains("CloudTrail_Logs") && err.contains("legacy us-east-1"),
            "{err}"
        );
        let text = text.replace("ap-northeast-2", "us-east-1");
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(c.sources[0].bucket, "CloudTrail_Logs");
    }
}
