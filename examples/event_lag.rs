//! The event-lag part of `make bench`: puts CloudTrail-shaped log files at a steady rate
//! and measures, from Azure's side, how long each took to be committed to the archive.
//! The measurement reads the archive's listing, never trailvault's own lag report.
//!
//!   event_lag queue   --endpoint URL --bucket B --queue NAME
//!       creates the bucket and an SQS queue, and has the bucket announce every new
//!       object (s3:ObjectCreated:*) to it; prints the queue URL
//!   event_lag put     --endpoint URL --bucket B --files N --rate PER_SECOND --out FILE
//!       puts N log files, one every 1/rate seconds; FILE gets `key<TAB>unix seconds`
//!       per file, the time its PUT returned (the object exists from then on)
//!   event_lag measure --account-url URL --container C --source NAME --puts FILE
//!                     --wait SECONDS [--lags FILE]
//!       lists `<source>/` in the archive until every put file is there or the last put
//!       is SECONDS old; prints `p50 p99 max arrived total` (seconds) on one line
//!
//! Credentials: test/test for moto; the Azurite account key from
//! TRAILVAULT_AZURE_ACCOUNT_KEY (scripts/lib.sh exports it).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use futures::TryStreamExt;
use rand::Rng;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const ACCOUNTS: [&str; 3] = ["111122223333", "444455556666", "777788889999"];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// Listing interval: a blob seen earlier than its Last-Modified + 1 s narrows its lag.
const POLL: Duration = Duration::from_millis(250);

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .ok_or_else(|| format!("missing {name}"))
    };
    match args.get(1).map(String::as_str) {
        Some("queue") => {
            let url = queue(&arg("--endpoint")?, &arg("--bucket")?, &arg("--queue")?).await?;
            println!("{url}");
        }
        Some("put") => {
            put(
                &arg("--endpoint")?,
                &arg("--bucket")?,
                arg("--files")?.parse()?,
                arg("--rate")?.parse()?,
                &arg("--out")?,
            )
            .await?
        }
        Some("measure") => {
            let summary = measure(
                &arg("--account-url")?,
                &arg("--container")?,
                &arg("--source")?,
                &arg("--puts")?,
                Duration::from_secs_f64(arg("--wait")?.parse()?),
                arg("--lags").ok(),
            )
            .await?;
            println!("{summary}");
        }
        _ => return Err("usage: event_lag queue|put|measure ... (see the file's header)".into()),
    }
    Ok(())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

async fn queue(endpoint: &str, bucket: &str, name: &str) -> Result<String> {
    use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
    use aws_sdk_sqs::types::QueueAttributeName;
    let conf = aws_sdk_sqs::config::Builder::new()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .build();
    let sqs = aws_sdk_sqs::Client::from_conf(conf);
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await?
        .queue_url
        .ok_or("CreateQueue answered no URL")?;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?;
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .ok_or("GetQueueAttributes answered no ARN")?
        .clone();
    let s3 = s3_client(endpoint);
    s3.create_bucket().bucket(bucket).send().await?;
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .queue_arn(arn)
                        .events(Event::S3ObjectCreated)
                        .build()?,
                )
                .build(),
        )
        .send()
        .await?;
    Ok(url)
}

/// A gzip JSON log of a few records, as CloudTrail delivers them, named for `now`.
fn log_file(i: usize, now: chrono::DateTime<chrono::Utc>) -> Result<(String, Vec<u8>)> {
    let mut rng = rand::thread_rng();
    let (account, region) = (
        ACCOUNTS[i % ACCOUNTS.len()],
        REGIONS[i / ACCOUNTS.len() % REGIONS.len()],
    );
    let unique: String = (0..16)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect();
    let key = format!(
        "AWSLogs/{account}/CloudTrail/{region}/{}/{account}_CloudTrail_{region}_{}_{unique}.json.gz",
        now.format("%Y/%m/%d"),
        now.format("%Y%m%dT%H%MZ")
    );
    let records: Vec<_> = (0..rng.gen_range(5..40))
        .map(|_| {
            serde_json::json!({
                "eventVersion": "1.09",
                "userIdentity": {"type": "AssumedRole", "accountId": account,
                    "arn": format!("arn:aws:sts::{account}:assumed-role/bench/session")},
                "eventTime": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "eventSource": "s3.amazonaws.com",
                "eventName": "GetObject",
                "awsRegion": region,
                "sourceIPAddress": format!("10.0.{}.{}", rng.gen::<u8>(), rng.gen::<u8>()),
                "requestID": format!("{:016X}", rng.gen::<u64>()),
                "eventID": format!("{:032x}", rng.gen::<u128>()),
                "readOnly": true,
                "eventType": "AwsApiCall",
                "recipientAccountId": account,
            })
        })
        .collect();
    let json = serde_json::to_vec(&serde_json::json!({ "Records": records }))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json)?;
    Ok((key, gz.finish()?))
}

async fn put(endpoint: &str, bucket: &str, files: usize, rate: f64, out: &str) -> Result<()> {
    if rate <= 0.0 {
        return Err("--rate must be above 0".into());
    }
    let s3 = s3_client(endpoint);
    // The bucket exists when `queue` made it; the scheduled path's bucket is made here.
    if s3.head_bucket().bucket(bucket).send().await.is_err() {
        s3.create_bucket().bucket(bucket).send().await?;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(out)?);
    let start = Instant::now();
    for i in 0..files {
        // A fixed schedule, not a sleep after each put: a slow PUT does not lower the rate.
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (key, body) = log_file(i, chrono::Utc::now())?;
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .content_type("application/json")
            .content_encoding("gzip")
            .body(ByteStream::from(body))
            .send()
            .await?;
        writeln!(out, "{key}\t{:.3}", unix_now())?;
    }
    out.flush()?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::INFINITY;
    }
    // Nearest rank: the smallest lag at least p of the files had.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn measure(
    account_url: &str,
    container: &str,
    source: &str,
    puts: &str,
    wait: Duration,
    lags_out: Option<String>,
) -> Result<String> {
    use azure_storage_blob::models::BlobContainerClientListBlobsOptions;
    use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
    use trailvault::storage::azure_auth::{client_auth, ClientAuth};

    let put_at: HashMap<String, f64> = std::fs::read_to_string(puts)?
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, t)| Ok((format!("{source}/{k}"), t.parse::<f64>()?)))
        .collect::<std::result::Result<_, std::num::ParseFloatError>>()?;
    let last_put = put_at.values().copied().fold(f64::MIN, f64::max);

    let key = std::env::var("TRAILVAULT_AZURE_ACCOUNT_KEY").map_err(|_| "TRAILVAULT_AZURE_ACCOUNT_KEY is not set")?;
    let auth = trailvault::config::AzureAuth::SharedKey {
        account: "devstoreaccount1".into(),
        key: trailvault::secret::Secret::new(key),
    };
    let mut options = BlobContainerClientOptions {
        client_options: trailvault::storage::azure_http::client_options(Duration::from_secs(5)),
        ..Default::default()
    };
    let ClientAuth::Policy(policy) = client_auth(&auth, Duration::from_secs(5))? else {
        return Err("a shared key gives a signing policy".into());
    };
    options.client_options.per_try_policies.push(policy);
    let url = azure_core::http::Url::parse(&format!("{}/{container}", account_url.trim_end_matches('/')))?;
    let client = BlobContainerClient::new(url, None, Some(options))?;

    // committed: Last-Modified (whole seconds, so the commit is within the second after
    // it) + 1 s, or the first listing that showed the blob if that was sooner.
    let mut committed: HashMap<String, f64> = HashMap::new();
    loop {
        let listed_at = unix_now();
        let list = BlobContainerClientListBlobsOptions {
            prefix: Some(format!("{source}/")),
            ..Default::default()
        };
        let mut pages = client.list_blobs(Some(list))?.into_pages();
        while let Some(page) = pages.try_next().await? {
            for item in page.into_model()?.blob_items {
                let Some(name) = item.name.filter(|n| put_at.contains_key(n)) else {
                    continue;
                };
                let modified = item
                    .properties
                    .and_then(|p| p.last_modified)
                    .map(|t| t.unix_timestamp() as f64 + 1.0)
                    .unwrap_or(listed_at);
                committed.entry(name).or_insert(modified.min(listed_at));
            }
        }
        if committed.len() == put_at.len() || unix_now() > last_put + wait.as_secs_f64() {
            break;
        }
        tokio::time::sleep(POLL).await;
    }

    // A file not committed within the wait counts as infinitely late, so a percentile it
    // reaches reads `>wait` instead of being computed over the files that made it.
    let mut lags: Vec<f64> = put_at
        .iter()
        .map(|(name, put)| match committed.get(name) {
            Some(at) if at - put <= wait.as_secs_f64() => (at - put).max(0.0),
            _ => f64::INFINITY,
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    if let Some(path) = lags_out {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut rows: Vec<_> = committed.iter().map(|(n, at)| (put_at[n], at - put_at[n], n)).collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (put, lag, name) in rows {
            writeln!(f, "{put:.3}\t{lag:.3}\t{name}")?;
        }
        f.flush()?;
    }
    let show = |v: f64| {
        if v.is_finite() {
            format!("{v:.2}")
        } else {
            format!(">{}", wait.as_secs())
        }
    };
    Ok(format!(
        "{} {} {} {} {}",
        show(percentile(&lags, 0.50)),
        show(percentile(&lags, 0.99)),
        show(lags.last().copied().unwrap_or(f64::INFINITY)),
        lags.iter().filter(|l| l.is_finite()).count(),
        put_at.len()
    ))
}
