//! AWS credentials without stored keys (`[aws] auth = "azure-federated"`): the Azure
//! workload's own Entra identity gets a token for `{token_audience}/.default`, and STS
//! `AssumeRoleWithWebIdentity` exchanges it for short-lived role credentials. The
//! provider caches them and fetches new ones a few minutes before they expire; the AWS
//! SDK calls it whenever its own cache needs credentials, so S3 and CloudTrail clients
//! built with it never see a long-lived key.
//!
//! Neither the Entra token nor the AWS secret reaches a log line, an error or `Debug`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use azure_core::credentials::TokenCredential;

use crate::config::{AwsAuth, AzureFederated};
use crate::secret::{redact_text, remember, Secret};

/// Credentials are replaced this long before STS says they expire.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// The SDK's own identity cache asks again a little before the expiry we report; our
/// cache must not hand back the same credentials then.
const SDK_CACHE_BUFFER: Duration = Duration::from_secs(60);
/// Credentials are kept at least this long, however soon STS says they expire.
const MIN_REUSE: Duration = Duration::from_secs(60);

/// Bounds on each half of the exchange, so a dead endpoint is named in the error
/// instead of the SDK's identity cache giving up on a silent provider.
const ENTRA_TIMEOUT: Duration = Duration::from_secs(15);
const STS_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest STS or identity-endpoint answer read (they are a few KiB).
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// The SDK's identity cache waits this long for the provider (more than both bounds).
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(45);

/// A clock, injectable for tests.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// How AWS clients get credentials.
#[derive(Clone, Debug, Default)]
pub enum AwsCredentials {
    /// The SDK's default chain (environment, profile, web identity, ECS, IMDS): `aws.auth`
    /// left as it is.
    #[default]
    SdkChain,
    /// A provider of ours: Entra tokens exchanged at STS (`aws.auth = "azure-federated"`).
    Provider(SharedCredentialsProvider),
}

impl AwsCredentials {
    /// The provider a client is built with; `None` leaves the SDK's own chain in place.
    pub fn provider(&self) -> Option<&SharedCredentialsProvider> {
        match self {
            AwsCredentials::SdkChain => None,
            AwsCredentials::Provider(p) => Some(p),
        }
    }
}

/// Exchanges an Entra token for role credentials at STS, caching them.
#[derive(Clone)]
pub struct AzureFederatedProvider {
    inner: Arc<Inner>,
}

struct Inner {
    azure: Arc<dyn TokenCredential>,
    scope: String,
    role_arn: String,
    session_name: String,
    sts: aws_sdk_sts::Client,
    clock: Clock,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Clone)]
struct Cached {
    credentials: Credentials,
    /// Until when they are handed out without a new exchange.
    fresh_until: SystemTime,
}

impl std::fmt::Debug for AzureFederatedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureFederatedProvider")
            .field("scope", &self.inner.scope)
            .field("role_arn", &self.inner.role_arn)
            .field("session_name", &self.inner.session_name)
            .finish_non_exhaustive()
    }
}

impl AzureFederatedProvider {
    pub fn new(
        azure: Arc<dyn TokenCredential>,
        scope: String,
        role_arn: String,
        session_name: String,
        sts: aws_sdk_sts::Client,
    ) -> Self {
        Self::with_clock(azure, scope, role_arn, session_name, sts, Arc::new(SystemTime::now))
    }

    pub fn with_clock(
        azure: Arc<dyn TokenCredential>,
        scope: String,
        role_arn: String,
        session_name: String,
        sts: aws_sdk_sts::Client,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                azure,
                scope,
                role_arn,
                session_name,
                sts,
                clock,
                cache: tokio::sync::Mutex::new(None),
            }),
        }
    }

    pub fn role_arn(&self) -> &str {
        &self.inner.role_arn
    }

    /// Cached credentials while they are fresh, else a new exchange. One exchange at a
    /// time: concurrent callers wait for it instead of each asking STS.
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let mut cache = self.inner.cache.lock().await;
        let now = (self.inner.clock)();
        if let Some(c) = cache.as_ref() {
            if now < c.fresh_until {
                return Ok(c.credentials.clone());
            }
        }
        let fresh = self.exchange(now).await.map_err(CredentialsError::provider_error)?;
        let credentials = fresh.credentials.clone();
        *cache = Some(fresh);
        Ok(credentials)
    }

    async fn exchange(&self, now: SystemTime) -> Result<Cached, CredentialFailure> {
        let inner = &self.inner;
        let token = self.entra_token().await?;
        let out = self.assume_role(&token).await?;
        let sts = |kind: CredentialFailureKind, detail: String| self.sts_failure(kind, detail);
        let c = out.credentials().ok_or_else(|| {
            sts(
                CredentialFailureKind::Malformed,
                "the answer holds no credentials".into(),
            )
        })?;
        remember(c.secret_access_key());
        remember(c.session_token());
        // The SDK's XML reader accepts a truncated answer and fills what it did not see with
        // empty strings and the epoch: an empty key, secret or session token, or no
        // expiration, is a broken answer, not credentials.
        if c.access_key_id().trim().is_empty()
            || c.secret_access_key().trim().is_empty()
            || c.session_token().trim().is_empty()
        {
            return Err(sts(
                CredentialFailureKind::Malformed,
                "the answer holds an empty access key, secret or session token (truncated?)".into(),
            ));
        }
        let expires = SystemTime::try_from(*c.expiration())
            .ok()
            .filter(|t| *t > SystemTime::UNIX_EPOCH + Duration::from_secs(86_400))
            .ok_or_else(|| {
                sts(
                    CredentialFailureKind::Malformed,
                    "the answer has no readable expiration (truncated?)".into(),
                )
            })?;
        let remaining = expires.duration_since(now).unwrap_or_default();
        // Replaced ahead of their expiry; but credentials that (by our clock) expire soon or
        // already did are still kept a minute, or every S3 request would cost an exchange.
        let fresh_until = expires
            .checked_sub(REFRESH_BEFORE_EXPIRY + SDK_CACHE_BUFFER)
            .unwrap_or(now)
            .max(now + MIN_REUSE);
        // Report an earlier expiry so any SDK cache asks again before the real one, and never
        // one before `fresh_until`, so the SDK does not ask on every request either.
        let report = (expires - REFRESH_BEFORE_EXPIRY.min(remaining / 2)).max(fresh_until);
        if remaining < REFRESH_BEFORE_EXPIRY + SDK_CACHE_BUFFER {
            tracing::warn!(
                role_arn = inner.role_arn,
                expires_in_seconds = remaining.as_secs(),
                "STS returned credentials that expire (by this host's clock) within minutes; check the clock"
            );
        }
        tracing::info!(
            role_arn = inner.role_arn,
            access_key_id = c.access_key_id(),
            assumed_role = out.assumed_role_user().map(|u| u.arn()),
            expires_in_seconds = remaining.as_secs(),
            "AWS role credentials obtained with the Azure identity"
        );
        Ok(Cached {
            credentials: Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                Some(report),
                "trailvault-azure-federated",
            ),
            fresh_until,
        })
    }

    /// A token for the STS audience from the Azure identity, within [`ENTRA_TIMEOUT`].
    async fn entra_token(&self) -> Result<Secret<String>, CredentialFailure> {
        let inner = &self.inner;
        let entra = |detail: String| {
            CredentialFailure::new(
                CredentialFailureKind::EntraToken,
                format!(
                    "cannot get an Entra token for {} from the Azure credential: {detail}",
                    inner.scope
                ),
            )
        };
        let token = tokio::time::timeout(ENTRA_TIMEOUT, inner.azure.get_token(&[inner.scope.as_str()], None))
            .await
            .map_err(|_| {
                entra(format!(
                    "no answer within {ENTRA_TIMEOUT:?} (is the identity endpoint reachable?)"
                ))
            })?
            .map_err(|e| match e.http_status() {
                // The endpoint's own answer, as it gave it: a 500 or 429 is not "no answer".
                Some(status) => entra(format!("the identity endpoint answered {}: {e}", u16::from(status))),
                None => entra(e.to_string()),
            })?;
        let token = Secret::new(token.token.secret().to_string());
        remember(token.expose());
        Ok(token)
    }

    /// STS AssumeRoleWithWebIdentity with the Entra token, within [`STS_TIMEOUT`].
    async fn assume_role(
        &self,
        token: &Secret<String>,
    ) -> Result<aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityOutput, CredentialFailure>
    {
        let inner = &self.inner;
        let call = inner
            .sts
            .assume_role_with_web_identity()
            .role_arn(&inner.role_arn)
            .role_session_name(&inner.session_name)
            .web_identity_token(token.expose())
            .send();
        tokio::time::timeout(STS_TIMEOUT, call)
            .await
            .map_err(|_| self.sts_failure(CredentialFailureKind::Sts, format!("no answer within {STS_TIMEOUT:?}")))?
            .map_err(|e| {
                // The SDK's error may quote STS's whole answer (an unreadable one included),
                // credentials and all: the text is scrubbed by `CredentialFailure::new`.
                let kind = match &e {
                    aws_sdk_sts::error::SdkError::ResponseError(_) => CredentialFailureKind::Malformed,
                    _ => CredentialFailureKind::Sts,
                };
                let text = aws_sdk_sts::error::DisplayErrorContext(&e).to_string();
                self.sts_failure(
                    kind,
                    format!(
                        "refused or unreachable: {}",
                        text.replace(token.expose().as_str(), "<redacted>")
                    ),
                )
            })
    }

    fn sts_failure(&self, kind: CredentialFailureKind, detail: String) -> CredentialFailure {
        CredentialFailure::new(
            kind,
            format!("STS AssumeRoleWithWebIdentity for {}: {detail}", self.inner.role_arn),
        )
    }
}

/// Which half of the credential exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFailureKind {
    /// The Azure identity gave no token (identity endpoint refused, failed, or silent).
    EntraToken,
    /// STS refused the exchange (`AccessDenied`, `InvalidIdentityToken`, ...) or did not answer.
    Sts,
    /// STS answered something that is not usable credentials (unparsable, truncated, empty).
    Malformed,
}

/// Credentials could not be obtained: not an AWS outage. It travels inside the SDK's
/// `CredentialsError` to every S3 request that needed them, where
/// [`crate::storage::ErrorKind::Credentials`] is recognised from it. The message is
/// scrubbed of credential material when made.
#[derive(Debug, Clone)]
pub struct CredentialFailure {
    pub kind: CredentialFailureKind,
    message: String,
}

impl CredentialFailure {
    pub fn new(kind: CredentialFailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: redact_text(&message.into()),
        }
    }
}

impl std::fmt::Display for CredentialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CredentialFailure {}

/// Whether `err` (or anything in its source chain) is a failure to obtain credentials:
/// ours ([`CredentialFailure`]) or the AWS SDK's own chain's (`CredentialsError`).
pub fn is_credentials_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<CredentialFailure>() || e.is::<CredentialsError>() {
            return true;
        }
        next = e.source();
    }
    false
}

impl ProvideCredentials for AzureFederatedProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

/// An STS client for the exchange: no credentials (the call is unsigned), the given
/// region's endpoint; `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` apply as in the SDK.
/// No SDK retry waits longer than `max_delay`.
pub async fn sts_client(region: &str, max_delay: Duration) -> aws_sdk_sts::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .no_credentials()
        .region(aws_config::Region::new(region.to_string()))
        .timeout_config(super::aws_waits::timeouts())
        .load()
        .await;
    let conf = aws_sdk_sts::config::Builder::from(&shared)
        .retry_config(super::aws_waits::retry_config(shared.retry_config(), max_delay))
        .interceptor(super::aws_waits::CapRetryAfter { max_delay })
        .interceptor(super::aws_waits::CapBody {
            max_bytes: MAX_ANSWER_BYTES,
        });
    aws_sdk_sts::Client::from_conf(conf.build())
}

/// The region whose STS endpoint serves the exchange: the SDK's (`AWS_REGION`,
/// `AWS_DEFAULT_REGION`) when set, else `fallback` (the source's region).
pub fn sts_region(fallback: &str) -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| fallback.to_string())
}

/// Why federated AWS credentials cannot be set up (nothing was sent yet).
#[derive(Debug, thiserror::Error)]
pub enum FederationSetupError {
    #[error(
        "aws.auth = \"azure-federated\" needs a role to assume (aws.role_arn, the source's role_arn or --role-arn)"
    )]
    NoRole,
    #[error(transparent)]
    Azure(#[from] super::azure_auth::CredentialError),
    #[error("aws.azure_credential {0:?} is not a token credential")]
    NotATokenCredential(&'static str),
}

/// Credentials for AWS calls under `aws`: the SDK's default chain, or a federated provider
/// for `role_arn`.
/// `max_delay` (`[sync] retry_max_delay`) bounds every wait of the STS and Entra clients' retries.
pub async fn provider(
    aws: &AwsAuth,
    role_arn: Option<&str>,
    region: &str,
    max_delay: Duration,
) -> Result<AwsCredentials, FederationSetupError> {
    let AwsAuth::AzureFederated(f) = aws else {
        return Ok(AwsCredentials::SdkChain);
    };
    let role_arn = role_arn.or(f.role_arn.as_deref()).ok_or(FederationSetupError::NoRole)?;
    Ok(AwsCredentials::Provider(SharedCredentialsProvider::new(
        federated(f, role_arn, region, max_delay).await?,
    )))
}

pub async fn federated(
    f: &AzureFederated,
    role_arn: &str,
    region: &str,
    max_delay: Duration,
) -> Result<AzureFederatedProvider, FederationSetupError> {
    let azure = match super::azure_auth::client_auth(&f.azure_credential, max_delay)? {
        super::azure_auth::ClientAuth::Token(t) => t,
        _ => return Err(FederationSetupError::NotATokenCredential(f.azure_credential.kind())),
    };
    Ok(AzureFederatedProvider::new(
        azure,
        f.scope(),
        role_arn.to_string(),
        f.session_name.clone(),
        sts_client(&sts_region(region), max_delay).await,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use wiremock::matchers::{body_string_contains, method};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    const JWT: &str =
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly9BenVyZUFEVG9rZW5FeGNoYW5nZSJ9.c2lnbmF0dXJlLXNlY3JldA";

    /// An Entra credential that records the scopes it was asked for.
    #[derive(Debug, Default)]
    struct Entra {
        scopes: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Entra {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            self.scopes.lock().unwrap().extend(scopes.iter().map(|s| s.to_string()));
            Ok(azure_core::credentials::AccessToken::new(
                JWT,
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    /// STS as AWS answers AssumeRoleWithWebIdentity: a new key each call, valid for `ttl`
    /// from the (injected) clock.
    struct Sts {
        calls: Arc<AtomicUsize>,
        now: Arc<AtomicU64>,
        ttl: u64,
    }

    impl Respond for Sts {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let exp = chrono::DateTime::from_timestamp((self.now.load(Ordering::SeqCst) + self.ttl) as i64, 0)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ");
            ResponseTemplate::new(200).set_body_raw(
                format!(
                    r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>sub</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/reader/trailvault</Arn><AssumedRoleId>AROA:trailvault</AssumedRoleId></AssumedRoleUser>
    <Credentials><AccessKeyId>ASIAKEY{n:013}</AccessKeyId><SecretAccessKey>SECRETKEYMATERIAL{n}</SecretAccessKey><SessionToken>SESSIONTOKEN{n}</SessionToken><Expiration>{exp}</Expiration></Credentials>
    <Audience>api://AzureADTokenExchange</Audience>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
                ),
                "text/xml",
            )
        }
    }

    fn sts_at(uri: &str) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::Config::builder()
                .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
                .region(aws_sdk_sts::config::Region::new("eu-west-1"))
                .endpoint_url(uri)
                .build(),
        )
    }

    #[tokio::test]
    async fn credentials_are_cached_and_refreshed_before_they_expire() {
        let server = MockServer::start().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let start = 1_900_000_000u64;
        let now = Arc::new(AtomicU64::new(start));
        Mock::given(method("POST"))
            .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
            .and(body_string_contains(
                "RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Freader",
            ))
            .and(body_string_contains("RoleSessionName=trailvault"))
            .and(body_string_contains(JWT))
            .respond_with(Sts {
                calls: calls.clone(),
                now: now.clone(),
                ttl: 3600,
            })
            .mount(&server)
            .await;
        let entra = Arc::new(Entra::default());
        let clock_now = now.clone();
        let provider = AzureFederatedProvider::with_clock(
            entra.clone(),
            "api://AzureADTokenExchange/.default".into(),
            "arn:aws:iam::111122223333:role/reader".into(),
            "trailvault".into(),
            sts_at(&server.uri()),
            Arc::new(move || SystemTime::UNIX_EPOCH + Duration::from_secs(clock_now.load(Ordering::SeqCst))),
        );

        let first = provider.provide_credentials().await.unwrap();
        assert_eq!(first.access_key_id(), "ASIAKEY0000000000001");
        assert_eq!(first.session_token(), Some("SESSIONTOKEN1"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            *entra.scopes.lock().unwrap(),
            vec!["api://AzureADTokenExchange/.default"]
        );
        // The SDK is told an expiry before the real one, so it asks again in time.
        let reported = first.expiry().unwrap();
        let real = SystemTime::UNIX_EPOCH + Duration::from_secs(start + 3600);
        assert_eq!(real.duration_since(reported).unwrap(), REFRESH_BEFORE_EXPIRY);

        // Half an hour on: still fresh, no exchange.
        now.store(start + 1800, Ordering::SeqCst);
        let again = provider.provide_credentials().await.unwrap();
        assert_eq!(again.access_key_id(), first.access_key_id());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Six minutes before expiry (inside the refresh window, before the real expiry): a new exchange.
        now.store(start + 3600 - 6 * 60, Ordering::SeqCst);
        let renewed = provider.provide_credentials().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(renewed.access_key_id(), "ASIAKEY0000000000002");
        assert!(renewed.expiry().unwrap() > reported);
        assert_eq!(entra.scopes.lock().unwrap().len(), 2);

        // Concurrent callers share one exchange.
        now.store(start + 2 * 3600, Ordering::SeqCst);
        let (a, b) = tokio::join!(provider.provide_credentials(), provider.provide_credentials());
        assert_eq!(a.unwrap().access_key_id(), b.unwrap().access_key_id());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_token_never_reaches_errors_or_debug() {
        let server = MockServer::start().await;
        // STS echoing the token back in its refusal (a worst case).
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_raw(
                format!(
                    r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>token {JWT} is not trusted</Message></Error><RequestId>r</RequestId></ErrorResponse>"#
                ),
                "text/xml",
            ))
            .mount(&server)
            .await;
        let provider = AzureFederatedProvider::new(
            Arc::new(Entra::default()),
            "api://AzureADTokenExchange/.default".into(),
            "arn:aws:iam::111122223333:role/reader".into(),
            "trailvault".into(),
            sts_at(&server.uri()),
        );
        let err = provider.provide_credentials().await.unwrap_err();
        let texts = [
            err.to_string(),
            format!("{err:?}"),
            aws_sdk_sts::error::DisplayErrorContext(&err).to_string(),
            format!("{provider:?}"),
        ];
        for t in &texts {
            assert!(!t.contains("c2lnbmF0dXJlLXNlY3JldA"), "token leaked: {t}");
            assert!(!t.contains("eyJ0eXAi"), "token leaked: {t}");
        }
        assert!(texts[2].contains("InvalidIdentityToken"), "{}", texts[2]);
        assert!(texts[2].contains("role/reader"), "{}", texts[2]);
    }
}
