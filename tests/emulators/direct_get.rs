//! The sync's GetObject without the SDK (src/storage/s3_get.rs), checked by a server that
//! verifies signatures: moto with IAM authentication switched on recomputes every
//! request's SigV4 signature with botocore's signer, so a request signed differently
//! from AWS's rules is refused here as S3 would refuse it.

use super::aws::xml_values;
use super::keys::body_for;
use super::*;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use trailvault::storage::aws_credentials::AwsCredentials;
use trailvault::storage::s3::S3Source;
use trailvault::storage::{ErrorKind, Source};

/// An IAM call to moto (query API), signed for `iam` with the set-up credentials.
async fn iam(port: u16, params: &[(&str, &str)]) -> String {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().copied())
        .append_pair("Version", "2010-05-08")
        .finish();
    let url = format!("http://127.0.0.1:{port}/");
    let identity = Credentials::new("test", "test", None, None, "setup").into();
    let signing = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("iam")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let content_type = ("content-type", "application/x-www-form-urlencoded");
    let signable = SignableRequest::new(
        "POST",
        &url,
        [content_type].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &signing).unwrap().into_parts();
    let mut request = reqwest::Client::new().post(&url).header(content_type.0, content_type.1);
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let answer = request.body(body).send().await.unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert!(status.is_success(), "IAM {params:?}: {status} {text}");
    text
}

async fn source(port: u16, access_key: &str, secret: &str) -> S3Source {
    let provider = SharedCredentialsProvider::new(Credentials::new(access_key, secret, None, None, "test"));
    S3Source::connect_with(
        "signed",
        "us-east-1",
        Some(&format!("http://127.0.0.1:{port}")),
        AwsCredentials::Provider(provider),
    )
    .await
}

async fn read_all(s: &S3Source, key: &str) -> trailvault::storage::StorageResult<Vec<u8>> {
    let chunks: Vec<bytes::Bytes> = s.get(key).await?.body.try_collect().await?;
    Ok(chunks.concat())
}

#[tokio::test]
async fn direct_gets_pass_a_server_that_checks_every_signature() {
    let Some(moto) = support::emulators::start_moto() else {
        return;
    };
    let port = moto.port;
    // A user whose key may do anything in S3, made while moto still lets anyone in.
    iam(port, &[("Action", "CreateUser"), ("UserName", "trailvault")]).await;
    let key = iam(port, &[("Action", "CreateAccessKey"), ("UserName", "trailvault")]).await;
    let (access_key, secret) = (
        xml_values(&key, "AccessKeyId").remove(0),
        xml_values(&key, "SecretAccessKey").remove(0),
    );
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let put_policy = [
        ("Action", "PutUserPolicy"),
        ("UserName", "trailvault"),
        ("PolicyName", "s3"),
        ("PolicyDocument", policy),
    ];
    iam(port, &put_policy).await;
    let s3 = support::s3_client(port);
    s3.create_bucket().bucket("signed").send().await.unwrap();
    let dir = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/24";
    let keys = [
        format!("{dir}/111122223333_CloudTrail_us-east-1_20261124T0105Z_plain.json.gz"),
        format!("{dir}/tab\there caf\u{e9} \u{1f600}.json.gz"),
        format!("{dir}/pct%41%2F%zz+plus=eq&amp?q#h;semi.json.gz"),
        format!("{dir}//double-slash.json.gz"),
    ];
    for k in &keys {
        s3.put_object()
            .bucket("signed")
            .key(k)
            .body(body_for(k).into())
            .send()
            .await
            .unwrap();
    }
    // From here on moto checks every signature and the key's policy.
    let reset = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/moto-api/reset-auth"))
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());

    let good = source(port, &access_key, &secret).await;
    assert!(
        good.uses_direct_get(),
        "an explicit endpoint is resolved for the direct path"
    );
    for k in &keys {
        assert_eq!(read_all(&good, k).await.unwrap(), body_for(k), "{k:?}");
    }
    // The SDK's own path, as a control: the set-up is what lets these keys in.
    let sdk = source(port, &access_key, &secret).await.without_direct_get();
    assert_eq!(read_all(&sdk, &keys[1]).await.unwrap(), body_for(&keys[1]));

    // A wrong secret is refused by the signature check, and said to be a credentials problem.
    let wrong = source(port, &access_key, "not-the-secret").await;
    let e = read_all(&wrong, &keys[0]).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Credentials, "{e}");
    assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
    assert!(!e.to_string().contains("not-the-secret"), "{e}");
    // A missing key is NotFound, as through the SDK.
    let e = read_all(&good, &format!("{dir}/absent.json.gz")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}
