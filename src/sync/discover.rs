//! Finds every (org, account, kind, region) stream under a trail's `AWSLogs/`, with a
//! few delimiter listings per account: the cost grows with accounts and regions, not
//! with the archive.

use futures::{StreamExt, TryStreamExt};

use crate::cloudtrail::key::awslogs_root;
use crate::cloudtrail::{FileKind, StreamPrefix};
use crate::storage::{Source, StorageResult};

const DISCOVERY_CONCURRENCY: usize = 8;

fn last_segment<'a>(folder: &'a str, parent: &str) -> &'a str {
    folder.get(parent.len()..).unwrap_or_default().trim_end_matches('/')
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

pub async fn discover(src: &dyn Source, trail_prefix: &str) -> StorageResult<Vec<StreamPrefix>> {
    let root = awslogs_root(trail_prefix);
    let mut accounts: Vec<(Option<String>, String)> = Vec::new();
    for folder in src.list_folders(&root).await? {
        let name = last_segment(&folder, &root);
        if name.starts_with("o-") {
            for inner in src.list_folders(&folder).await? {
                let account = last_segment(&inner, &folder);
                if is_account(account) {
                    accounts.push((Some(name.to_string()), account.to_string()));
                }
            }
        } else if is_account(name) {
            accounts.push((None, name.to_string()));
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
                        let region = last_segment(&region_folder, &kind_folder);
                        if region.is_empty() {
                            continue;
                        }
                        streams.push(StreamPrefix {
                            trail_prefix: trail_prefix.to_string(),
                            org: org.clone(),
                            account: account.clone(),
                            kind,
                            region: region.to_string(),
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
}
