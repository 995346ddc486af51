//! Seeds an S3-compatible bucket with generated CloudTrail data for `make demo`.
//! Usage: seed_demo --endpoint http://127.0.0.1:PORT --bucket NAME

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
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "demo"))
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    s3.create_bucket().bucket(&bucket).send().await?;

    let today = chrono::Utc::now().date_naive();
    let mut trail = ctgen::Trail::sample(&bucket, 2026);
    trail.days = vec![today - chrono::Duration::days(1), today];
    let mut org = trail.clone();
    org.org = Some("o-demo12345a".into());
    org.accounts = vec!["777788889999".into()];
    org.seed = 2027;
    let files: Vec<_> = trail.generate().into_iter().chain(org.generate()).collect();
    let (mut logs, mut digests, mut bytes) = (0, 0, 0);
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
        req.send().await?;
        if f.key.contains("CloudTrail-Digest") {
            digests += 1;
        } else {
            logs += 1;
        }
        bytes += f.body.len();
    }
    println!("seeded s3://{bucket}: {logs} log files and {digests} digest files ({bytes} bytes), 3 accounts (one via organization trail o-demo12345a) x 2 regions x 2 days");
    Ok(())
}
