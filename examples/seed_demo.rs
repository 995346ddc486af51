//! Seeds an S3-compatible bucket with generated CloudTrail data for `make demo` and
//! `make bench`. Usage: seed_demo --endpoint http://127.0.0.1:PORT --bucket NAME
//! [--logs-per-day N] [--days N] [--days-ago N] [--key-out FILE] (writes the digest-signing
//! public key). `--days-ago 1` ends the trail yesterday, so that every file is in the past
//! and a bench copies as many files with trailvault (which never archives a key named for a
//! later time) as with rclone.

#[allow(dead_code)]
#[path = "../tests/support/ctgen.rs"]
mod ctgen;

use aws_sdk_s3::primitives::ByteStream;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .ok_or_else(|| format!("missing {name}"))
    };
    let (endpoint, bucket) = (arg("--endpoint")?, arg("--bucket")?);
    let logs_per_day: usize = arg("--logs-per-day").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let days: i64 = arg("--days").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let days_ago: i64 = arg("--days-ago").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let key = std::sync::Arc::new(ctgen::test_key(2026));
    if let Ok(path) = arg("--key-out") {
        std::fs::write(path, ctgen::public_der(&key).0)?;
    }
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "demo"))
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    s3.create_bucket().bucket(&bucket).send().await?;

    let last = chrono::Utc::now().date_naive() - chrono::Duration::days(days_ago);
    let mut trail = ctgen::Trail::sample(&bucket, 2026);
    trail.days = (0..days).rev().map(|d| last - chrono::Duration::days(d)).collect();
    trail.logs_per_day = logs_per_day;
    trail.signer = Some(key);
    let mut org = trail.clone();
    org.org = Some("o-demo12345a".into());
    org.accounts = vec!["777788889999".into()];
    org.seed = 2027;
    let files: Vec<_> = trail.generate().into_iter().chain(org.generate()).collect();
    let (mut logs, mut digests, mut bytes) = (0, 0, 0);
    let mut puts = futures::stream::FuturesUnordered::new();
    for f in &files {
        let mut req = s3
            .put_object()
            .bucket(&bucket)
            .key(&f.key)
            .content_type("application/json")
            .content_encoding("gzip")
            .body(ByteStream::from(f.body.clone()));
        for (k, v) in &f.metadata {
            req = req.metadata(k, v);
        }
        puts.push(req.send());
        if puts.len() >= 16 {
            use futures::StreamExt;
            puts.next().await.transpose()?;
        }
        if f.key.contains("CloudTrail-Digest") {
            digests += 1;
        } else {
            logs += 1;
        }
        bytes += f.body.len();
    }
    use futures::StreamExt;
    while let Some(r) = puts.next().await {
        r?;
    }
    println!("seeded s3://{bucket}: {logs} log files and {digests} signed digest files ({bytes} bytes), 3 accounts (one via organization trail o-demo12345a) x 2 regions x {days} days");
    Ok(())
}
