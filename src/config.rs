//! Strict TOML configuration, validated into typed structs before any network call.
//!
//! Raw structs mirror the file (`deny_unknown_fields` at every level); [`Config::load`]
//! turns them into checked values and reads secrets from the environment, so a
//! mistake is reported as exit 2 with nothing touched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::secret::Secret;

pub const ENV_AZURE_SAS: &str = "TRAILVAULT_AZURE_SAS";
pub const ENV_AZURE_ACCOUNT_KEY: &str = "TRAILVAULT_AZURE_ACCOUNT_KEY";

/// Staged-block size; also the largest object sent as a single Put Blob.
pub const BLOCK_SIZE: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}. Pass --config PATH or set TRAILVAULT_CONFIG")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {problems}", problems = .problems.join("; "))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

impl crate::fault::Classify for ConfigError {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Config
    }
}

// ---------- the file as written ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    source: Vec<RawSource>,
    target: Option<RawTarget>,
    #[serde(default)]
    sync: RawSync,
    #[serde(default)]
    schedule: RawSchedule,
    #[serde(default)]
    health: RawHealth,
    federation: Option<RawFederation>,
    log_analytics: Option<RawLogAnalytics>,
    aws: Option<RawAws>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    bucket: String,
    region: String,
    #[serde(default)]
    prefix: String,
    endpoint: Option<String>,
    role_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    account_url: String,
    container: String,
    state_container: String,
    #[serde(default)]
    state_account_url: String,
    auth: String,
    #[serde(default)]
    managed_identity_client_id: String,
    #[serde(default)]
    create_containers: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_in_flight")]
    in_flight_bytes: String,
    #[serde(default = "default_lookback", with = "humantime_serde")]
    lookback: Duration,
    #[serde(default = "default_max_gap", with = "humantime_serde")]
    max_gap: Duration,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_retry_max_delay", with = "humantime_serde")]
    retry_max_delay: Duration,
}

impl Default for RawSync {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            in_flight_bytes: default_in_flight(),
            lookback: default_lookback(),
            max_gap: default_max_gap(),
            retries: default_retries(),
            retry_max_delay: default_retry_max_delay(),
        }
    }
}

fn default_retries() -> u32 {
    6
}
fn default_retry_max_delay() -> Duration {
    Duration::from_secs(30)
}

fn default_concurrency() -> usize {
    32
}
fn default_in_flight() -> String {
    "32MiB".into()
}
fn default_lookback() -> Duration {
    Duration::from_secs(72 * 3600)
}
fn default_max_gap() -> Duration {
    Duration::from_secs(8 * 3600)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    #[serde(default = "default_cron")]
    cron: String,
    #[serde(default = "default_tz")]
    timezone: String,
    #[serde(default = "default_verify_cron")]
    verify_cron: String,
}

impl Default for RawSchedule {
    fn default() -> Self {
        Self {
            cron: default_cron(),
            timezone: default_tz(),
            verify_cron: default_verify_cron(),
        }
    }
}

fn default_cron() -> String {
    "0 0 */8 * * *".into()
}
fn default_tz() -> String {
    "UTC".into()
}
fn default_verify_cron() -> String {
    "0 30 1 * * *".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default = "default_probe_timeout", with = "humantime_serde")]
    probe_timeout: Duration,
    #[serde(default = "one")]
    degraded_after: u32,
    #[serde(default = "three")]
    outage_after: u32,
}

impl Default for RawHealth {
    fn default() -> Self {
        Self {
            probe_timeout: default_probe_timeout(),
            degraded_after: 1,
            outage_after: 3,
        }
    }
}

fn default_probe_timeout() -> Duration {
    Duration::from_secs(10)
}
fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFederation {
    idp_metadata: String,
    tenant_id: String,
    #[serde(default = "default_audiences")]
    audiences: Vec<String>,
    role_mapping: String,
    #[serde(default)]
    allow_sha1: bool,
    #[serde(default = "default_clock_skew", with = "humantime_serde")]
    clock_skew: Duration,
}

fn default_audiences() -> Vec<String> {
    vec![
        "https://signin.aws.amazon.com/saml".into(),
        "urn:amazon:webservices".into(),
    ]
}
fn default_clock_skew() -> Duration {
    Duration::from_secs(180)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogAnalytics {
    ingestion_endpoint: String,
    dcr_immutable_id: String,
    stream: String,
    #[serde(default)]
    workspace_id: String,
    auth: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    auth: Option<String>,
    role_arn: Option<String>,
    azure_credential: Option<String>,
    token_audience: Option<String>,
    session_name: Option<String>,
}

/// The audience Entra issues federation tokens for by default (AWS's OIDC provider
/// for the tenant lists it as its client ID).
pub const DEFAULT_TOKEN_AUDIENCE: &str = "api://AzureADTokenExchange";
pub const DEFAULT_SESSION_NAME: &str = "trailvault";

// ---------- validated ----------

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub sources: Vec<SourceConfig>,
    pub target: Option<TargetConfig>,
    pub sync: SyncSettings,
    /// `[sync] retries` and `retry_max_delay`: one policy for every read and write.
    pub retry: RetrySettings,
    pub schedule: ScheduleConfig,
    pub health: HealthConfig,
    pub federation: Option<FederationConfig>,
    pub log_analytics: Option<LogAnalyticsConfig>,
    /// How AWS calls get credentials (`[aws]`; the SDK's default chain without it).
    pub aws: AwsAuth,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub bucket: String,
    pub region: String,
    /// The trail's key prefix without leading or trailing `/` (empty for none).
    pub prefix: String,
    pub endpoint: Option<Url>,
    /// The role this source's S3 is read with under `azure-federated` (`[aws] role_arn` when unset).
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub account_url: Url,
    pub container: String,
    pub state_container: String,
    pub state_account_url: Url,
    pub auth: AzureAuth,
    /// `sync` creates a missing archive or state container only when this is set.
    pub create_containers: bool,
}

/// How trailvault authenticates to Azure Storage. Secrets are read from the
/// environment at load time and wrapped so they cannot be printed.
#[derive(Debug, Clone, PartialEq)]
pub enum AzureAuth {
    ManagedIdentity {
        client_id: Option<String>,
    },
    WorkloadIdentity,
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Secret<String>,
    },
    DeveloperTools,
    Sas(Secret<String>),
    SharedKey {
        account: String,
        key: Secret<String>,
    },
}

impl AzureAuth {
    pub fn kind(&self) -> &'static str {
        match self {
            AzureAuth::ManagedIdentity { .. } => "managed-identity",
            AzureAuth::WorkloadIdentity => "workload-identity",
            AzureAuth::ClientSecret { .. } => "client-secret",
            AzureAuth::DeveloperTools => "developer-tools",
            AzureAuth::Sas(_) => "sas",
            AzureAuth::SharedKey { .. } => "shared-key",
        }
    }

    pub fn is_token(&self) -> bool {
        !matches!(self, AzureAuth::Sas(_) | AzureAuth::SharedKey { .. })
    }
}

/// How trailvault gets AWS credentials.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AwsAuth {
    /// The SDK's default chain: environment, profile (SSO, `credential_process`), web
    /// identity, ECS, IMDS.
    #[default]
    Default,
    /// An Entra token from an Azure credential, exchanged with STS
    /// `AssumeRoleWithWebIdentity` for short-lived role credentials: no AWS key stored.
    AzureFederated(AzureFederated),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AzureFederated {
    /// `[aws] role_arn`: the default role (sources may name their own; restore may too).
    pub role_arn: Option<String>,
    /// The Azure identity whose token is exchanged (a token kind).
    pub azure_credential: AzureAuth,
    /// The token's audience; the scope asked for is `{token_audience}/.default`.
    pub token_audience: String,
    pub session_name: String,
}

impl AzureFederated {
    pub fn scope(&self) -> String {
        format!("{}/.default", self.token_audience)
    }
}

impl Config {
    /// The role a source is read with under `azure-federated` (None with the default chain).
    pub fn source_role(&self, source: &SourceConfig) -> Option<String> {
        match &self.aws {
            AwsAuth::Default => None,
            AwsAuth::AzureFederated(f) => source.role_arn.clone().or_else(|| f.role_arn.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub concurrency: usize,
    pub in_flight_bytes: u64,
    pub lookback: Duration,
    pub max_gap: Duration,
}

/// Attempts per file or request (the first included) and the longest wait between two,
/// stacked on the SDKs' own per-request retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub attempts: u32,
    pub max_delay: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            attempts: default_retries(),
            max_delay: default_retry_max_delay(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub cron: String,
    pub timezone: String,
    pub verify_cron: String,
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub probe_timeout: Duration,
    pub degraded_after: u32,
    pub outage_after: u32,
}

#[derive(Debug, Clone)]
pub struct FederationConfig {
    pub idp_metadata: String,
    pub tenant_id: String,
    pub audiences: Vec<String>,
    pub role_mapping: PathBuf,
    pub allow_sha1: bool,
    pub clock_skew: Duration,
}

#[derive(Debug, Clone)]
pub struct LogAnalyticsConfig {
    pub ingestion_endpoint: Url,
    pub dcr_immutable_id: String,
    pub stream: String,
    pub workspace_id: String,
    pub auth: String,
}

/// Where a command gets environment variables from; tests pass a map.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }
}

impl Config {
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path, env)
    }

    pub fn parse(text: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let config = validate(raw, path, base, env, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The `[target]` section, or an error naming the command that needs it.
    pub fn require_target(&self, command: &str) -> Result<&TargetConfig, ConfigError> {
        self.target.as_ref().ok_or_else(|| ConfigError::Invalid {
            path: self.path.clone(),
            problems: vec![format!("`{command}` needs a [target] section")],
        })
    }

    pub fn require_sources(&self, command: &str) -> Result<(), ConfigError> {
        if self.sources.is_empty() {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                problems: vec![format!("`{command}` needs at least one [[source]]")],
            });
        }
        Ok(())
    }
}

fn validate(raw: RawConfig, path: &Path, base: &Path, env: &dyn Env, problems: &mut Vec<String>) -> Config {
    let mut names = BTreeSet::new();
    let mut sources = Vec::new();
    for (i, s) in raw.source.into_iter().enumerate() {
        let at = format!("source[{i}] ({})", s.name);
        if !is_source_name(&s.name) {
            problems.push(format!(
                "{at}: name must be 1-63 characters of [a-z0-9-] (it is used in blob names)"
            ));
        }
        if !names.insert(s.name.clone()) {
            problems.push(format!("{at}: name is used by more than one source"));
        }
        if !is_bucket_name(&s.bucket) {
            problems.push(format!("{at}: bucket {:?} is not a valid S3 bucket name", s.bucket));
        }
        if s.region.trim().is_empty() {
            problems.push(format!("{at}: region must be set (the bucket's region)"));
        }
        let endpoint = s.endpoint.as_deref().filter(|e| !e.is_empty()).and_then(|e| {
            parse_http_url(e)
                .map_err(|m| problems.push(format!("{at}: endpoint {m}")))
                .ok()
        });
        let role_arn = s.role_arn.filter(|r| !r.is_empty());
        if let Some(r) = &role_arn {
            if !is_role_arn(r) {
                problems.push(format!(
                    "{at}: role_arn {r:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
                ));
            }
        }
        sources.push(SourceConfig {
            name: s.name,
            bucket: s.bucket,
            region: s.region,
            prefix: s.prefix.trim_matches('/').to_string(),
            endpoint,
            role_arn,
        });
    }

    let target = raw.target.and_then(|t| validate_target(t, env, problems));
    let aws = validate_aws(raw.aws, &sources, target.as_ref(), env, problems);

    let in_flight_bytes = match parse_bytes(&raw.sync.in_flight_bytes) {
        Ok(b) if b >= BLOCK_SIZE => b,
        Ok(_) => {
            problems.push(format!(
                "sync.in_flight_bytes must be at least 4MiB (one staged block), got {:?}",
                raw.sync.in_flight_bytes
            ));
            BLOCK_SIZE
        }
        Err(m) => {
            problems.push(format!("sync.in_flight_bytes: {m}"));
            BLOCK_SIZE
        }
    };
    if raw.sync.concurrency == 0 || raw.sync.concurrency > 1024 {
        problems.push("sync.concurrency must be between 1 and 1024".into());
    }
    if raw.sync.max_gap.is_zero() {
        problems.push("sync.max_gap must be more than zero".into());
    }
    if !(1..=20).contains(&raw.sync.retries) {
        problems.push(format!(
            "sync.retries = {} must be between 1 and 20 (attempts per file, the first included)",
            raw.sync.retries
        ));
    }
    if raw.sync.retry_max_delay < Duration::from_millis(10) || raw.sync.retry_max_delay > Duration::from_secs(600) {
        problems.push("sync.retry_max_delay must be between 10ms and 10m".into());
    }

    for (key, expr) in [
        ("schedule.cron", &raw.schedule.cron),
        ("schedule.verify_cron", &raw.schedule.verify_cron),
    ] {
        let fields = expr.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            problems.push(format!(
                "{key} {expr:?} must be a seconds-first cron expression (6 or 7 fields)"
            ));
        }
    }
    if raw.health.degraded_after == 0 || raw.health.outage_after < raw.health.degraded_after {
        problems.push("health: need 1 <= degraded_after <= outage_after".into());
    }

    let federation = raw.federation.map(|f| {
        if f.audiences.is_empty() {
            problems.push("federation.audiences must name at least one audience".into());
        }
        if !is_guid(&f.tenant_id) {
            problems.push("federation.tenant_id must be the Entra tenant GUID".into());
        }
        FederationConfig {
            idp_metadata: if f.idp_metadata.starts_with("https://") {
                f.idp_metadata
            } else {
                base.join(&f.idp_metadata).to_string_lossy().into_owned()
            },
            tenant_id: f.tenant_id,
            audiences: f.audiences,
            role_mapping: base.join(f.role_mapping),
            allow_sha1: f.allow_sha1,
            clock_skew: f.clock_skew,
        }
    });

    let log_analytics = raw.log_analytics.and_then(|la| {
        let auth = la
            .auth
            .or_else(|| {
                target
                    .as_ref()
                    .filter(|t| t.auth.is_token())
                    .map(|t| t.auth.kind().to_string())
            })
            .unwrap_or_default();
        if !matches!(
            auth.as_str(),
            "managed-identity" | "workload-identity" | "client-secret" | "developer-tools"
        ) {
            problems.push(
                "log_analytics.auth must be a token kind (managed-identity, workload-identity, client-secret, developer-tools)".into(),
            );
        }
        let endpoint = parse_http_url(&la.ingestion_endpoint)
            .map_err(|m| problems.push(format!("log_analytics.ingestion_endpoint {m}")))
            .ok()?;
        if endpoint.scheme() != "https" {
            problems.push("log_analytics.ingestion_endpoint must be https (bearer tokens are never sent over http)".into());
        }
        Some(LogAnalyticsConfig {
            ingestion_endpoint: endpoint,
            dcr_immutable_id: la.dcr_immutable_id,
            stream: la.stream,
            workspace_id: la.workspace_id,
            auth,
        })
    });

    Config {
        path: path.to_path_buf(),
        sources,
        target,
        sync: SyncSettings {
            concurrency: raw.sync.concurrency.clamp(1, 1024),
            in_flight_bytes,
            lookback: raw.sync.lookback,
            max_gap: raw.sync.max_gap,
        },
        retry: RetrySettings {
            attempts: raw.sync.retries.clamp(1, 20),
            max_delay: raw.sync.retry_max_delay,
        },
        schedule: ScheduleConfig {
            cron: raw.schedule.cron,
            timezone: raw.schedule.timezone,
            verify_cron: raw.schedule.verify_cron,
        },
        health: HealthConfig {
            probe_timeout: raw.health.probe_timeout,
            degraded_after: raw.health.degraded_after,
            outage_after: raw.health.outage_after,
        },
        federation,
        log_analytics,
        aws,
    }
}

/// `[aws]`: the default chain, or `azure-federated` with a role for every source and an
/// Azure token credential (named, or the target's when it is a token kind).
fn validate_aws(
    raw: Option<RawAws>,
    sources: &[SourceConfig],
    target: Option<&TargetConfig>,
    env: &dyn Env,
    problems: &mut Vec<String>,
) -> AwsAuth {
    let raw = raw.unwrap_or(RawAws {
        auth: None,
        role_arn: None,
        azure_credential: None,
        token_audience: None,
        session_name: None,
    });
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let role_arn = nonempty(raw.role_arn);
    match raw.auth.as_deref().unwrap_or("default") {
        "default" => {
            for (key, set) in [
                ("role_arn", role_arn.is_some()),
                ("azure_credential", raw.azure_credential.is_some()),
                ("token_audience", raw.token_audience.is_some()),
                ("session_name", raw.session_name.is_some()),
            ] {
                if set {
                    problems.push(format!(
                        "aws.{key} is used only with aws.auth = \"azure-federated\" (aws.auth is \"default\": the SDK's credential chain)"
                    ));
                }
            }
            for s in sources.iter().filter(|s| s.role_arn.is_some()) {
                problems.push(format!(
                    "source {}: role_arn needs [aws] auth = \"azure-federated\" (with the SDK's default chain, name the role in an AWS profile)",
                    s.name
                ));
            }
            AwsAuth::Default
        }
        "azure-federated" => {
            if let Some(r) = &role_arn {
                if !is_role_arn(r) {
                    problems.push(format!(
                        "aws.role_arn {r:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
                    ));
                }
            }
            for s in sources.iter().filter(|s| s.role_arn.is_none() && role_arn.is_none()) {
                problems.push(format!(
                    "source {}: no role to assume: set aws.role_arn or the source's role_arn",
                    s.name
                ));
            }
            let kind = nonempty(raw.azure_credential)
                .or_else(|| target.filter(|t| t.auth.is_token()).map(|t| t.auth.kind().to_string()));
            let azure_credential = match kind.as_deref() {
                None => {
                    problems.push(
                        "aws.azure_credential must name the Azure identity whose token is exchanged (managed-identity, workload-identity, client-secret, developer-tools): target.auth is not a token kind".into(),
                    );
                    AzureAuth::ManagedIdentity { client_id: None }
                }
                Some(kind) => match (target.map(|t| &t.auth).filter(|a| a.kind() == kind), kind) {
                    // The target's identity when it is the same kind (one managed identity serves both).
                    (Some(a), _) => a.clone(),
                    (None, "managed-identity") => AzureAuth::ManagedIdentity { client_id: None },
                    (None, "workload-identity") => AzureAuth::WorkloadIdentity,
                    (None, "developer-tools") => AzureAuth::DeveloperTools,
                    (None, "client-secret") => {
                        let mut get = |v: &str| {
                            env.var(v).or_else(|| {
                                problems.push(format!(
                                    "aws.azure_credential = \"client-secret\" needs the environment variable {v}"
                                ));
                                None
                            })
                        };
                        let (tenant, client, secret) = (
                            get("AZURE_TENANT_ID"),
                            get("AZURE_CLIENT_ID"),
                            get("AZURE_CLIENT_SECRET"),
                        );
                        AzureAuth::ClientSecret {
                            tenant_id: tenant.unwrap_or_default(),
                            client_id: client.unwrap_or_default(),
                            secret: Secret::new(secret.unwrap_or_default()),
                        }
                    }
                    (None, other) => {
                        problems.push(format!(
                            "aws.azure_credential {other:?} is not one of managed-identity, workload-identity, client-secret, developer-tools"
                        ));
                        AzureAuth::ManagedIdentity { client_id: None }
                    }
                },
            };
            let token_audience = nonempty(raw.token_audience)
                .map(|a| a.trim_end_matches("/.default").to_string())
                .unwrap_or_else(|| DEFAULT_TOKEN_AUDIENCE.to_string());
            if token_audience.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push(format!("aws.token_audience {token_audience:?} must not contain spaces"));
            }
            let session_name = nonempty(raw.session_name).unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string());
            if !is_session_name(&session_name) {
                problems.push(format!(
                    "aws.session_name {session_name:?} must be 2-64 characters of [A-Za-z0-9+=,.@_-]"
                ));
            }
            AwsAuth::AzureFederated(AzureFederated {
                role_arn,
                azure_credential,
                token_audience,
                session_name,
            })
        }
        other => {
            problems.push(format!(
                "aws.auth {other:?} is not one of \"default\" (the SDK's credential chain) or \"azure-federated\""
            ));
            AwsAuth::Default
        }
    }
}

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
pub fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return false;
    };
    let Some(name) = resource.strip_prefix("role/") else {
        return false;
    };
    *arn == "arn"
        && matches!(
            *partition,
            "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b" | "aws-iso-e" | "aws-iso-f" | "aws-eusc"
        )
        && *service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
        && !name.ends_with('/')
}

fn is_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn validate_target(t: RawTarget, env: &dyn Env, problems: &mut Vec<String>) -> Option<TargetConfig> {
    let account_url = parse_http_url(&t.account_url)
        .map_err(|m| problems.push(format!("target.account_url {m}")))
        .ok()?;
    let state_account_url = if t.state_account_url.is_empty() {
        account_url.clone()
    } else {
        parse_http_url(&t.state_account_url)
            .map_err(|m| problems.push(format!("target.state_account_url {m}")))
            .ok()?
    };
    for (key, name) in [("container", &t.container), ("state_container", &t.state_container)] {
        if !is_container_name(name) {
            problems.push(format!(
                "target.{key} {name:?} is not a valid container name (3-63 of [a-z0-9-])"
            ));
        }
    }
    if t.container == t.state_container && account_url == state_account_url {
        problems.push(
            "target.state_container must differ from target.container (the archive is write-once, state is mutable)"
                .into(),
        );
    }
    let missing = |var: &str| format!("target.auth = {:?} needs the environment variable {var}", t.auth);
    let auth = match t.auth.as_str() {
        "managed-identity" => AzureAuth::ManagedIdentity {
            client_id: Some(t.managed_identity_client_id.clone()).filter(|s| !s.is_empty()),
        },
        "workload-identity" => AzureAuth::WorkloadIdentity,
        "developer-tools" => AzureAuth::DeveloperTools,
        "client-secret" => {
            let mut get = |v: &str| {
                env.var(v).or_else(|| {
                    problems.push(missing(v));
                    None
                })
            };
            let (tenant, client, secret) = (
                get("AZURE_TENANT_ID"),
                get("AZURE_CLIENT_ID"),
                get("AZURE_CLIENT_SECRET"),
            );
            AzureAuth::ClientSecret {
                tenant_id: tenant.unwrap_or_default(),
                client_id: client.unwrap_or_default(),
                secret: Secret::new(secret.unwrap_or_default()),
            }
        }
        "sas" => {
            let sas = env.var(ENV_AZURE_SAS).unwrap_or_else(|| {
                problems.push(missing(ENV_AZURE_SAS));
                String::new()
            });
            AzureAuth::Sas(Secret::new(sas.trim_start_matches('?').to_string()))
        }
        "shared-key" => {
            let key = env.var(ENV_AZURE_ACCOUNT_KEY).unwrap_or_else(|| {
                problems.push(missing(ENV_AZURE_ACCOUNT_KEY));
                String::new()
            });
            if !key.is_empty() && base64_decodes(&key).is_none() {
                problems.push(format!("{ENV_AZURE_ACCOUNT_KEY} is not base64"));
            }
            let account = account_name(&account_url).unwrap_or_default();
            if account.is_empty() {
                problems.push("target.account_url does not name a storage account".into());
            }
            AzureAuth::SharedKey {
                account,
                key: Secret::new(key),
            }
        }
        other => {
            problems.push(format!(
                "target.auth {other:?} is not one of managed-identity, workload-identity, client-secret, developer-tools, sas, shared-key"
            ));
            return None;
        }
    };
    if auth.is_token() && account_url.scheme() != "https" {
        problems.push(format!(
            "target.auth = {:?} sends bearer tokens and needs an https account_url",
            auth.kind()
        ));
    }
    Some(TargetConfig {
        account_url,
        container: t.container,
        state_container: t.state_container,
        state_account_url,
        auth,
        create_containers: t.create_containers,
    })
}

/// The storage account name: the first label of `acct.blob.core.windows.net`, or the
/// first path segment of an emulator URL (`http://127.0.0.1:10000/devstoreaccount1`).
pub fn account_name(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let first_segment = url.path_segments().and_then(|mut s| s.next()).filter(|s| !s.is_empty());
    if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
        first_segment.map(str::to_string)
    } else {
        host.split('.').next().map(str::to_string)
    }
}

fn parse_http_url(s: &str) -> Result<Url, String> {
    // A trailing slash on a path-style emulator URL makes the SDK build `//container`.
    let url = Url::parse(s.trim_end_matches('/')).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{s:?} must be http(s)"));
    }
    if url.query().is_some() {
        return Err(format!(
            "must not carry a query string (put a SAS in {ENV_AZURE_SAS}, never in the config file)"
        ));
    }
    Ok(url)
}

pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size like 32MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("{s:?} has an unknown unit (use B, KiB, MiB, GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

fn is_source_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_container_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn base64_decodes(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn parse(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/trailvault/trailvault.toml"), env)
    }

    const MINIMAL: &str = r#"
[[source]]
name = "seoul"
bucket = "org-trail-logs"
region = "ap-northeast-2"

[target]
account_url = "http://127.0.0.1:10000/devstoreaccount1/"
container = "cloudtrail-archive"
state_container = "trailvault-state"
auth = "shared-key"
"#;

    #[test]
    fn minimal_config_gets_contract_defaults() {
        let c = parse(MINIMAL, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(c.sync.concurrency, 32);
        assert_eq!(c.sync.in_flight_bytes, 32 << 20);
        assert_eq!(c.sync.lookback, Duration::from_secs(72 * 3600));
        assert_eq!(c.sync.max_gap, Duration::from_secs(8 * 3600));
        let t = c.target.unwrap();
        assert_eq!(t.account_url.as_str(), "http://127.0.0.1:10000/devstoreaccount1");
        match t.auth {
            AzureAuth::SharedKey { account, .. } => assert_eq!(account, "devstoreaccount1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let text = MINIMAL.replace("region = \"ap-northeast-2\"", "region = \"x\"\nregoin = \"y\"");
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("regoin"), "{err}");
    }

    #[test]
    fn missing_secret_is_named() {
        let err = parse(MINIMAL, &[]).unwrap_err().to_string();
        assert!(err.contains(ENV_AZURE_ACCOUNT_KEY), "{err}");
    }

    #[test]
    fn several_problems_are_reported_together() {
        let text = r#"
[[source]]
name = "Bad_Name"
bucket = "B"
region = ""
[[source]]
name = "Bad_Name"
bucket = "ok-bucket"
region = "us-east-1"
[target]
account_url = "https://acct.blob.core.windows.net?sv=1&sig=x"
container = "archive"
state_container = "state"
auth = "sas"
[sync]
in_flight_bytes = "1MiB"
concurrency = 0
"#;
        let err = parse(text, &[(ENV_AZURE_SAS, "sv=1&sig=SECRET")])
            .unwrap_err()
            .to_string();
        for needle in [
            "[a-z0-9-]",
            "more than one source",
            "bucket",
            "region",
            "query string",
            "4MiB",
            "concurrency",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
        assert!(!err.contains("SECRET"));
    }

    #[test]
    fn token_auth_needs_https() {
        let text = MINIMAL.replace("\"shared-key\"", "\"managed-identity\"");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("https"), "{err}");
    }

    #[test]
    fn log_analytics_needs_https_and_a_token_kind() {
        let text = format!(
            "{MINIMAL}\n[log_analytics]\ningestion_endpoint = \"http://x.ingest.monitor.azure.com\"\ndcr_immutable_id = \"dcr-1\"\nstream = \"Custom-TrailVault_CL\"\n"
        );
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("https"), "{err}");
        // shared-key is not a token kind, so log_analytics.auth must be named.
        assert!(err.contains("token kind"), "{err}");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = parse(MINIMAL, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(&KEY[..20]), "{dbg}");
    }

    const FEDERATED: &str = "\n[aws]\nauth = \"azure-federated\"\nrole_arn = \"arn:aws:iam::111122223333:role/trailvault-reader\"\nazure_credential = \"managed-identity\"\n";

    #[test]
    fn no_aws_section_keeps_the_default_chain() {
        let c = parse(MINIMAL, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(c.aws, AwsAuth::Default);
        assert_eq!(c.source_role(&c.sources[0]), None);
    }

    #[test]
    fn azure_federated_gets_contract_defaults_and_per_source_roles() {
        let text = MINIMAL.replace(
            "region = \"ap-northeast-2\"",
            "region = \"ap-northeast-2\"\nrole_arn = \"arn:aws:iam::444455556666:role/path/seoul-reader\"",
        ) + "[[source]]\nname = \"other\"\nbucket = \"other-bucket\"\nregion = \"us-east-1\"\n"
            + FEDERATED;
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        let AwsAuth::AzureFederated(f) = &c.aws else {
            panic!("{:?}", c.aws)
        };
        assert_eq!(f.token_audience, DEFAULT_TOKEN_AUDIENCE);
        assert_eq!(f.scope(), "api://AzureADTokenExchange/.default");
        assert_eq!(f.session_name, "trailvault");
        assert_eq!(f.azure_credential, AzureAuth::ManagedIdentity { client_id: None });
        assert_eq!(
            c.source_role(&c.sources[0]).as_deref(),
            Some("arn:aws:iam::444455556666:role/path/seoul-reader")
        );
        assert_eq!(
            c.source_role(&c.sources[1]).as_deref(),
            Some("arn:aws:iam::111122223333:role/trailvault-reader")
        );
    }

    #[test]
    fn azure_federated_defaults_to_the_targets_token_identity() {
        let text = MINIMAL
            .replace("http://127.0.0.1:10000/devstoreaccount1/", "https://acct.blob.core.windows.net")
            .replace("\"shared-key\"", "\"managed-identity\"\nmanaged_identity_client_id = \"abc\"")
            + "\n[aws]\nauth = \"azure-federated\"\nrole_arn = \"arn:aws:iam::111122223333:role/r\"\ntoken_audience = \"api://custom/.default\"\n";
        let c = parse(&text, &[]).unwrap();
        let AwsAuth::AzureFederated(f) = &c.aws else {
            panic!("{:?}", c.aws)
        };
        assert_eq!(
            f.azure_credential,
            AzureAuth::ManagedIdentity {
                client_id: Some("abc".into())
            }
        );
        assert_eq!(f.scope(), "api://custom/.default");
    }

    #[test]
    fn aws_section_problems_are_named_before_any_network_call() {
        // shared-key target, no azure_credential, a bad ARN, a bad session name, an unknown key.
        let text = format!(
            "{MINIMAL}\n[aws]\nauth = \"azure-federated\"\nrole_arn = \"arn:aws:iam::1111:user/x\"\nsession_name = \"a b\"\n"
        );
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        for needle in ["aws.azure_credential", "aws.role_arn", "aws.session_name"] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
        let unknown = format!("{MINIMAL}\n[aws]\nauth = \"azure-federated\"\nrole = \"x\"\n");
        let err = parse(&unknown, &[(ENV_AZURE_ACCOUNT_KEY, KEY)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("role"), "{err}");
        let kind = format!("{MINIMAL}\n[aws]\nauth = \"keys\"\n");
        let err = parse(&kind, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("aws.auth"), "{err}");
        // No role for a source at all.
        let norole =
            format!("{MINIMAL}\n[aws]\nauth = \"azure-federated\"\nazure_credential = \"workload-identity\"\n");
        let err = parse(&norole, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("no role to assume"), "{err}");
        // client-secret needs its environment.
        let cs = format!("{MINIMAL}{}", FEDERATED.replace("managed-identity", "client-secret"));
        let err = parse(&cs, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("AZURE_CLIENT_SECRET"), "{err}");
        // Federated-only keys and per-source roles are refused with the default chain.
        let dflt = MINIMAL.replace(
            "region = \"ap-northeast-2\"",
            "region = \"ap-northeast-2\"\nrole_arn = \"arn:aws:iam::111122223333:role/r\"",
        ) + "\n[aws]\nauth = \"default\"\ntoken_audience = \"x\"\n";
        let err = parse(&dflt, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(
            err.contains("aws.token_audience") && err.contains("role_arn needs"),
            "{err}"
        );
    }

    #[test]
    fn role_arns_are_checked() {
        assert!(is_role_arn("arn:aws:iam::111122223333:role/trailvault-reader"));
        assert!(is_role_arn("arn:aws-us-gov:iam::111122223333:role/a/b/c"));
        assert!(!is_role_arn("arn:aws:iam::111122223333:user/x"));
        assert!(!is_role_arn("arn:aws:iam:us-east-1:111122223333:role/x"));
        assert!(!is_role_arn("arn:aws:iam::11112222333:role/x"));
        assert!(!is_role_arn("arn:aws:iam::111122223333:role/"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }

    #[test]
    fn relative_paths_resolve_from_the_config_folder() {
        let text = format!(
            "{MINIMAL}\n[federation]\nidp_metadata = \"entra.xml\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nrole_mapping = \"roles.toml\"\n"
        );
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        let f = c.federation.unwrap();
        assert_eq!(f.role_mapping, PathBuf::from("/etc/trailvault/roles.toml"));
        assert_eq!(f.idp_metadata, "/etc/trailvault/entra.xml");
    }
}
