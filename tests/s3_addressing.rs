//! How the S3 SDK addresses the bucket names the config accepts.

/// A legacy us-east-1 bucket name is not a DNS label: the S3 SDK (which trailvault uses
/// without an endpoint override) addresses it path-style on its own, so accepting the name
/// is enough for sync and restore to reach it.
#[test]
fn the_s3_sdk_addresses_a_legacy_bucket_path_style() {
    use aws_sdk_s3::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    let resolve = |bucket: &str| {
        let params = Params::builder()
            .bucket(bucket)
            .region("us-east-1")
            .use_fips(false)
            .use_dual_stack(false)
            .accelerate(false)
            .build()
            .unwrap();
        let endpoint = futures::executor::block_on(DefaultResolver::new().resolve_endpoint(&params)).unwrap();
        endpoint.url().to_string()
    };
    assert_eq!(
        resolve("CloudTrail_Logs_2016"),
        "https://s3.us-east-1.amazonaws.com/CloudTrail_Logs_2016"
    );
    assert_eq!(
        resolve("org-trail-logs"),
        "https://org-trail-logs.s3.us-east-1.amazonaws.com"
    );
}
