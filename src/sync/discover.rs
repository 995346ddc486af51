//! Finds every (org, account, kind, region) stream under a trail's `AWSLogs/`, with a
//! few delimiter listings per account: the cost grows with accounts and regions, not
//! with the archive.

use futures::{StreamExt, TryStreamExt};

use crate::cloudtrail::key::awslogs_root;
use crate::cloudtrail::{AccountId, FileKind, Region, StreamPrefix};
use crate::storage::{Source, StorageResult};

const DISCOVERY_CONCURRENCY: usize = 8;

fn last_segment<'a>(folder: &'a str, parent: &str) -> &'a str {
    folder.get(parent.len()..).unwrap_or_default().trim_end_matches('/')
}

pub async fn discover(src: &dyn Source, trail_prefix: &str) -> StorageResult<Vec<StreamPrefix>> {
    let root = awslogs_root(trail_prefix);
    let mut accounts: Vec<(Option<String>, AccountId)> = Vec::new();
    for folder in src.list_folders(&root).await? {
        let name = last_segment(&folder, &root);
        if name.starts_with("o-") {
            for inner in src.list_folders(&folder).await? {
                if let Ok(account) = AccountId::parse(last_segment(&inner, &folder)) {
                    accounts.push((Some(name.to_string()), account));
                }
            }
        } else if let Ok(account) = AccountId::parse(name) {
            accounts.push((None, account));
        }
    }
    let per_account = futures::stream::iter(accounts)
        .map(|(org, account)| {
            let root = root.clone();
            async move {
                let base = match &org {
                    Some(o) => format!("{root}{o}/{account}/"),
                    None => format!("{root}{account}/"),
                };
                let mut streams = Vec::new();
                for kind_folder in src.list_folders(&base).await? {
                    let Some(kind) = FileKind::from_folder(last_segment(&kind_folder, &base)) else {
                        continue;
                    };
                    for region_folder in src.list_folders(&kind_folder).await? {
                        // Region names become state blob names: a folder CloudTrail could not
                        // have written is reported, not followed.
                        let region = match Region::parse(last_segment(&region_folder, &kind_folder)) {
                            Ok(region) => region,
                            Err(why) => {
                                tracing::warn!(folder = region_folder, %why, "not a region folder; its files are not synced");
                                continue;
                            }
                        };
                        streams.push(StreamPrefix {
                            trail_prefix: trail_prefix.to_string(),
                            org: org.clone(),
                            account: account.clone(),
                            kind,
                            region,
                        });
                    }
                }
                StorageResult::Ok(streams)
            }
        })
        .buffer_unordered(DISCOVERY_CONCURRENCY);
    let mut streams: Vec<StreamPrefix> = per_account
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    streams.sort();
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemorySource;

    #[tokio::test]
    async fn finds_standard_and_organization_streams_under_a_prefix() {
        let src = MemorySource::new("b");
        let now = chrono::Utc::now();
        for key in [
            "p/AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/x.json.gz",
            "p/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/x.json.gz",
            "p/AWSLogs/111122223333/Config/us-east-1/2026/01/01/x.json.gz",
            "p/AWSLogs/o-abcdefghij/444455556666/CloudTrail/eu-west-1/2026/01/01/x.json.gz",
            "p/AWSLogs/o-abcdefghij/444455556666/CloudTrail-Insight/eu-west-1/2026/01/01/x.json.gz",
            "p/AWSLogs/111122223333/CloudTrail/ConfigWritabilityCheckFile",
            "other/AWSLogs/999999999999/CloudTrail/us-east-1/2026/01/01/x.json.gz",
        ] {
            src.put(key, bytes::Bytes::from_static(b"x"), Default::default(), now);
        }
        let streams = discover(&src, "p").await.unwrap();
        let got: Vec<String> = streams.iter().map(|s| s.key_prefix()).collect();
        assert_eq!(
            got,
            vec![
                "p/AWSLogs/111122223333/CloudTrail/us-east-1/",
                "p/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/",
                "p/AWSLogs/o-abcdefghij/444455556666/CloudTrail/eu-west-1/",
                "p/AWSLogs/o-abcdefghij/444455556666/CloudTrail-Insight/eu-west-1/",
            ]
        );
    }

    #[tokio::test]
    async fn only_account_and_region_shaped_folders_become_streams() {
        let src = MemorySource::new("b");
        for key in [
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/30/f.json.gz",
            "AWSLogs/111122223333/CloudTrail/US-EAST-1/2026/11/30/f.json.gz",
            "AWSLogs/111122223333/CloudTrail/a%2Fb/2026/11/30/f.json.gz",
            "AWSLogs/11112222333/CloudTrail/us-east-1/2026/11/30/f.json.gz",
            "AWSLogs/o-abc/444455556666/CloudTrail-Digest/eu-west-1/2026/11/30/f.json.gz",
        ] {
            src.put(
                key,
                bytes::Bytes::from_static(b"x"),
                Default::default(),
                chrono::Utc::now(),
            );
        }
        let streams = discover(&src, "").await.unwrap();
        let found: Vec<String> = streams.iter().map(StreamPrefix::key_prefix).collect();
        assert_eq!(
            found,
            [
                "AWSLogs/111122223333/CloudTrail/us-east-1/",
                "AWSLogs/o-abc/444455556666/CloudTrail-Digest/eu-west-1/",
            ]
        );
    }
}
