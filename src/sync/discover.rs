//! Finds every (org, account, kind, region) stream under a trail's `AWSLogs/`, with a
//! few delimiter listings per account: the cost grows with accounts and regions, not
//! with the archive.

use crate::cloudtrail::StreamPrefix;
use crate::storage::streams::discover_streams;
use crate::storage::{Source, StorageResult};

pub async fn discover(src: &dyn Source, trail_prefix: &str) -> StorageResult<Vec<StreamPrefix>> {
    discover_streams(src, "", trail_prefix).await
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
