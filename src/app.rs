//! Runtime: all wiring from a validated [`Config`] to the jobs the library runs,
//! shared by the CLI, the daemon and the Functions handler, so each builds a job the
//! same way. Nothing here decides an exit code or prints.

use std::sync::Arc;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::cloudtrail::{AccountId, Region, TimeRange};
use crate::config::{Config, ConfigError};
use crate::failover::restore::RestoreJob;
use crate::failover::status::StatusReport;
use crate::fault::{Classify, Fault};
use crate::federation::audit::AuditJob;
use crate::federation::validate::Validator;
use crate::integrity::keys::{ImportedKey, KeyError};
use crate::integrity::verify::VerifyJob;
use crate::progress::Progress;
use crate::state::select::Selection;
use crate::storage::aws_credentials::{self, AwsCredentials};
use crate::storage::blob::open_target;
use crate::storage::decorate::{CountingSink, CountingSource, CountingStore, ReadOnlyStore, RequestCounter};
use crate::storage::folder::FolderSink;
use crate::storage::limit::{LimitedSink, LimitedSource, LimitedStore};
use crate::storage::retry::{RetryPolicy, RetryingSink, RetryingSource, RetryingStore};
use crate::storage::s3::{S3Sink, S3Source};
use crate::storage::{ArchiveStore, BlobStore, Sink, StateStore, StorageError};
use crate::sync::{SourceHandle, SyncJob};
use tokio_util::sync::CancellationToken;

/// Why a job could not be built or a wired command could not finish.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A command-line value that the configuration contradicts (an unknown source).
    #[error("{0}")]
    Usage(String),
    /// The configuration cannot be turned into clients (a bad URL, a credential kind
    /// that does not fit); nothing was touched.
    #[error("{0}")]
    Setup(String),
    /// The target's containers cannot be opened as clients (a bad URL or credential).
    #[error("{0}")]
    Open(#[source] StorageError),
    #[error(transparent)]
    Credential(#[from] crate::storage::azure_auth::CredentialError),
    #[error(transparent)]
    AwsFederation(#[from] crate::storage::aws_credentials::FederationSetupError),
    #[error(transparent)]
    Metadata(#[from] crate::federation_io::LoadError),
    #[error(transparent)]
    MetadataInvalid(#[from] crate::federation::metadata::InvalidMetadata),
    #[error(transparent)]
    RoleFile(#[from] crate::federation_io::RoleFileError),
    #[error(transparent)]
    Roles(#[from] crate::federation::roles::RoleMappingError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Monitor(#[from] crate::monitor::MonitorError),
}

impl Classify for AppError {
    fn fault(&self) -> Fault {
        match self {
            AppError::Config(_)
            | AppError::Setup(_)
            | AppError::Open(_)
            | AppError::Credential(_)
            | AppError::AwsFederation(_) => Fault::Config,
            AppError::Usage(_) => Fault::Usage,
            AppError::Metadata(e) => e.fault(),
            AppError::MetadataInvalid(e) => e.fault(),
            AppError::RoleFile(e) => e.fault(),
            AppError::Roles(e) => e.fault(),
            AppError::Keys(e) => e.fault(),
            AppError::Storage(e) => e.fault(),
            AppError::Monitor(e) => e.fault(),
        }
    }
}

/// The archive container and the state container: distinct types, so they cannot be
/// swapped, and the archive's has no delete.
pub type Containers = (ArchiveStore, StateStore);

/// The archive and state containers of `[target]`, each request retried by `retry`.
pub fn open_containers(config: &Config, command: &str, retry: &RetryPolicy) -> Result<Containers, AppError> {
    open_counted(config, command, retry, &RequestCounter::default())
}

/// As [`open_containers`], each request on the wire counted in `counter` (inside the
/// retries, so a retried request counts twice). The limit sits inside our retries too: a
/// request waiting out our backoff holds no permit (the SDKs' own short retries happen
/// inside one request, and hold it).
fn open_counted(
    config: &Config,
    command: &str,
    retry: &RetryPolicy,
    counter: &RequestCounter,
) -> Result<Containers, AppError> {
    let target = config.require_target(command)?;
    let (archive, state) = open_target(target, config.retry.max_delay).map_err(AppError::Open)?;
    // One stack of decorators for both; generic, so the state's keeps its delete.
    fn wrap<S: BlobStore + ?Sized + 'static>(
        store: Arc<S>,
        side: &'static str,
        counter: &RequestCounter,
        max_requests: usize,
        retry: &RetryPolicy,
    ) -> Arc<RetryingStore<LimitedStore<CountingStore<S>>>> {
        let counted = Arc::new(CountingStore::new(store, counter.clone(), side));
        let limited = Arc::new(LimitedStore::new(counted, max_requests));
        Arc::new(RetryingStore::new(limited, retry.clone()))
    }
    let max = config.sync.max_requests;
    Ok((
        ArchiveStore::new(wrap(archive.shared(), "archive", counter, max, retry)),
        wrap(state.shared(), "state", counter, max, retry).into(),
    ))
}

/// The archived sources a reading command works on: those named, else every configured one.
pub fn archived_sources(config: &Config, named: &[String], command: &str) -> Result<Vec<String>, AppError> {
    let mut sources: Vec<String> = if named.is_empty() {
        config.sources.iter().map(|s| s.name.to_string()).collect()
    } else {
        named.to_vec()
    };
    // A source named twice would be read twice, and its logs' digest entries used up by
    // the first copy: once is what was meant.
    let mut once = std::collections::BTreeSet::new();
    sources.retain(|s| once.insert(s.clone()));
    for name in sources.iter().filter(|s| config.source(s).is_none()) {
        // Allowed (a source removed from the config is still archived), but a typo here
        // would read nothing and call it clean: say so.
        tracing::warn!(
            source = name.as_str(),
            command,
            "not a configured source; reading what the archive holds under it"
        );
    }
    if sources.is_empty() {
        return Err(AppError::Usage(format!(
            "{command}: name the archived source with --source NAME"
        )));
    }
    Ok(sources)
}

/// Cancels a job's token when `signal` fires (SIGTERM), until the returned guard drops.
pub fn cancel_on(job_cancel: &CancellationToken, signal: &CancellationToken) -> tokio_util::sync::DropGuard {
    let (job, signal) = (job_cancel.clone(), signal.clone());
    let done = CancellationToken::new();
    let guard = done.clone().drop_guard();
    tokio::spawn(async move {
        tokio::select! {
            _ = signal.cancelled() => job.cancel(),
            _ = done.cancelled() => {}
        }
    });
    guard
}

/// A sync of the named sources (all when `only` is empty); no file is started after `deadline`.
pub async fn sync_job(
    config: &Config,
    only: &[String],
    dry_run: bool,
    progress: Arc<dyn Progress>,
    deadline: Option<tokio::time::Instant>,
) -> Result<SyncJob, AppError> {
    config.require_sources("sync")?;
    config.require_target("sync")?;
    for name in only {
        if config.source(name).is_none() {
            let have: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            return Err(AppError::Usage(format!(
                "--source {name}: no such source in {} (have: {})",
                config.path.display(),
                have.join(", ")
            )));
        }
    }
    let cancel = CancellationToken::new();
    let retry = RetryPolicy::new(config.retry).with_cancel(cancel.clone());
    let requests = RequestCounter::default();
    let (mut archive, mut state) = open_counted(config, "sync", &retry, &requests)?;
    if dry_run {
        archive = ArchiveStore::new(Arc::new(ReadOnlyStore::new(archive.shared())));
        state = Arc::new(ReadOnlyStore::new(state.shared())).into();
    }
    let mut sources = Vec::new();
    let mut source_roles = Vec::new();
    // One provider per role: sources sharing a role share its cached credentials.
    let mut providers: std::collections::HashMap<String, AwsCredentials> = std::collections::HashMap::new();
    for s in config
        .sources
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| s.name.as_str() == o))
    {
        let credentials = match config.source_role(s) {
            None => aws_credentials::provider(&config.aws, None, s.region.as_str(), config.retry.max_delay)
                .await
                .map_err(AppError::from)?,
            Some(role) => match providers.get(&role) {
                Some(p) => p.clone(),
                None => {
                    let p =
                        aws_credentials::provider(&config.aws, Some(&role), s.region.as_str(), config.retry.max_delay)
                            .await
                            .map_err(AppError::from)?;
                    providers.insert(role, p.clone());
                    p
                }
            },
        };
        source_roles.push(config.source_role(s));
        sources.push(SourceHandle {
            name: s.name.to_string(),
            prefix: s.prefix.clone(),
            credentials_error: None,
            source: {
                let s3 = Arc::new(S3Source::connect(s, credentials, config.retry.max_delay).await);
                let counted = Arc::new(CountingSource::new(s3, requests.clone()));
                let limited = Arc::new(LimitedSource::new(counted, config.sync.max_requests));
                Arc::new(RetryingSource::new(limited, retry.clone()))
            },
        });
    }
    // Exchange the Azure identity before the health probe runs, so the probe's timeout
    // measures S3, not a first token. A failure marks the sources of that role: their
    // health is `CredentialsFailed` (our side to fix), never an AWS outage.
    if !dry_run {
        let refused = warm_up(&providers).await;
        for (handle, role) in sources.iter_mut().zip(&source_roles) {
            handle.credentials_error = role.as_deref().and_then(|r| refused.get(r).cloned());
        }
    }
    Ok(SyncJob {
        sources,
        archive,
        state,
        settings: config.sync.clone(),
        dry_run,
        progress,
        health: config.health.clone(),
        retry,
        cancel,
        requests,
        deadline,
        create_containers: config.target.as_ref().is_some_and(|t| t.create_containers),
    })
}

/// Asks each federated role's provider for credentials once, within the SDK's load
/// timeout; returns the roles refused, with why (secrets scrubbed).
async fn warm_up(
    providers: &std::collections::HashMap<String, AwsCredentials>,
) -> std::collections::HashMap<String, String> {
    use aws_credential_types::provider::ProvideCredentials;
    let mut refused = std::collections::HashMap::new();
    for (role, provider) in providers.iter().filter_map(|(r, p)| p.provider().map(|p| (r, p))) {
        let warm = tokio::time::timeout(aws_credentials::LOAD_TIMEOUT, provider.provide_credentials());
        let error = match warm.await {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => crate::secret::redact_text(&format!(
                "no AWS credentials from the Azure identity: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )),
            Err(_) => format!(
                "no AWS credentials from the Azure identity within {}s",
                aws_credentials::LOAD_TIMEOUT.as_secs()
            ),
        };
        tracing::warn!(role_arn = role.as_str(), error, "AWS credentials failed");
        refused.insert(role.clone(), error);
    }
    refused
}

/// A verify of the given sources over `range`.
pub fn verify_job(config: &Config, sources: Vec<String>, range: TimeRange) -> Result<VerifyJob, AppError> {
    let retry = RetryPolicy::new(config.retry);
    let (archive, state) = open_containers(config, "verify", &retry)?;
    Ok(VerifyJob {
        archive,
        state: Some(state),
        selection: Selection {
            sources,
            range,
            digests: true,
            ..Default::default()
        },
        concurrency: config.sync.concurrency,
        retry,
        cancel: CancellationToken::new(),
    })
}

/// The scheduled verify (daemon and Functions): every source, the last day.
pub fn verify_last_day_job(config: &Config) -> Result<VerifyJob, AppError> {
    let until = chrono::Utc::now();
    let range = TimeRange {
        since: Some(until - chrono::Duration::days(1)),
        until: Some(until),
    };
    verify_job(
        config,
        config.sources.iter().map(|s| s.name.to_string()).collect(),
        range,
    )
}

/// The Entra credential for `[log_analytics]`, whose identity config resolved
/// (`log_analytics.auth`, else the target's).
fn la_credential(
    la: &crate::config::LogAnalyticsConfig,
    max_delay: std::time::Duration,
) -> Result<Arc<dyn azure_core::credentials::TokenCredential>, AppError> {
    use crate::storage::azure_auth::{client_auth, ClientAuth};
    match client_auth(&la.auth, max_delay).map_err(AppError::from)? {
        ClientAuth::Token(credential) => Ok(credential),
        _ => Err(AppError::Setup("log_analytics needs a token credential".into())),
    }
}

/// The Logs Ingestion client of `[log_analytics]`, or None when it is not configured.
pub fn ingestion(config: &Config) -> Result<Option<crate::monitor::LogsIngestion>, AppError> {
    let Some(la) = &config.log_analytics else {
        return Ok(None);
    };
    crate::monitor::LogsIngestion::new(
        &la.ingestion_endpoint,
        &la.dcr_immutable_id,
        &la.stream,
        la_credential(la, config.retry.max_delay)?,
        crate::storage::azure_http::client_options(config.retry.max_delay),
    )
    .map(Some)
    .map_err(|e| AppError::Setup(e.to_string()))
}

/// The query client for `status --from log-analytics`.
pub fn logs_query(config: &Config) -> Result<crate::monitor::LogsQuery, AppError> {
    let la = config
        .log_analytics
        .as_ref()
        .ok_or_else(|| AppError::Setup(format!("{} has no [log_analytics] section", config.path.display())))?;
    if la.workspace_id.is_empty() {
        return Err(AppError::Setup(
            "log_analytics.workspace_id (the workspace GUID) is needed for queries".into(),
        ));
    }
    crate::monitor::LogsQuery::new(
        &la.workspace_id,
        la_credential(la, config.retry.max_delay)?,
        crate::storage::azure_http::client_options(config.retry.max_delay),
    )
    .map_err(|e| AppError::Setup(e.to_string()))
}

/// Sends a finished run's records to Log Analytics when configured (spooling on
/// failure). Best effort: the run's outcome and exit code do not depend on it.
pub async fn publish_run(config: &Config, run_id: &str) {
    let client = match ingestion(config) {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "Log Analytics is configured but unusable; records stay in runs/");
            return;
        }
    };
    if config.target.is_none() {
        return;
    }
    let state = match open_containers(config, "publish", &RetryPolicy::new(config.retry)) {
        Ok((_, state)) => state,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the state container to publish records");
            return;
        }
    };
    let out = crate::failover::publish::publish(state.as_ref(), &client, run_id).await;
    tracing::info!(
        sent = out.sent.len(),
        spooled = out.spooled.len(),
        "records published to Log Analytics"
    );
}

/// Where `restore` writes, as the command line named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTarget {
    Folder(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
    },
}

/// A restore as the command line asked for it, validated.
pub struct RestoreRequest {
    pub to: RestoreTarget,
    pub sources: Vec<String>,
    pub accounts: Vec<AccountId>,
    pub regions: Vec<Region>,
    pub range: TimeRange,
    pub digests: bool,
    pub dry_run: bool,
    pub progress: Arc<dyn Progress>,
    /// The role an S3 target is written with under `azure-federated` (default `[aws] role_arn`).
    pub role_arn: Option<String>,
}

pub async fn restore_job(config: &Config, request: RestoreRequest) -> Result<RestoreJob, AppError> {
    config.require_target("restore")?;
    let retry = RetryPolicy::new(config.retry);
    let sources = archived_sources(config, &request.sources, "restore")?;
    let sink: Arc<dyn Sink> = match &request.to {
        RestoreTarget::S3 {
            bucket,
            prefix,
            endpoint,
        } => {
            let credentials = restore_credentials(config, request.role_arn.as_deref()).await?;
            Arc::new(
                S3Sink::connect(bucket, prefix, endpoint.as_deref(), credentials, config.retry.max_delay)
                    .await
                    .with_retry(retry.clone()),
            )
        }
        RestoreTarget::Folder(dir) => {
            let folder = FolderSink::new(dir);
            if !request.dry_run {
                folder.clear_partial().await?;
            }
            Arc::new(folder)
        }
    };
    // The same stack as the containers': retry -> limit -> count -> target.
    let counter = RequestCounter::default();
    let counted = Arc::new(CountingSink::new(sink, counter.clone(), "target"));
    let limited = Arc::new(LimitedSink::new(counted, config.sync.max_requests));
    let sink: Arc<dyn Sink> = Arc::new(RetryingSink::new(limited, retry.clone()));
    let (archive, state) = open_counted(config, "restore", &retry, &counter)?;
    Ok(RestoreJob {
        archive,
        state: Some(state),
        sink,
        selection: Selection {
            sources,
            accounts: request.accounts.into_iter().collect(),
            regions: request.regions.into_iter().collect(),
            range: request.range,
            digests: request.digests,
        },
        concurrency: config.sync.concurrency,
        in_flight_bytes: config.sync.in_flight_bytes,
        dry_run: request.dry_run,
        progress: request.progress,
        retry,
        cancel: CancellationToken::new(),
    })
}

/// Credentials for an S3 restore target: `--role-arn`, else `[aws] role_arn`, under
/// `azure-federated`; the default chain otherwise (where `--role-arn` has no meaning).
async fn restore_credentials(config: &Config, role_arn: Option<&str>) -> Result<AwsCredentials, AppError> {
    use crate::config::AwsAuth;
    match &config.aws {
        AwsAuth::Default if role_arn.is_some() => Err(AppError::Usage(
            "--role-arn needs [aws] auth = \"azure-federated\" (with the SDK's default chain, choose the role in an AWS profile)".into(),
        )),
        AwsAuth::Default => Ok(AwsCredentials::SdkChain),
        AwsAuth::AzureFederated(f) => {
            if role_arn.is_none() && f.role_arn.is_none() {
                return Err(AppError::Usage(
                    "restore to S3 with aws.auth = \"azure-federated\" needs a role that may write: --role-arn ARN or aws.role_arn".into(),
                ));
            }
            let region = aws_credentials::sts_region("us-east-1");
            aws_credentials::provider(&config.aws, role_arn, &region, config.retry.max_delay)
                .await
                .map_err(AppError::from)
        }
    }
}

fn federation_section(config: &Config) -> Result<&crate::config::FederationConfig, AppError> {
    config
        .federation
        .as_ref()
        .ok_or_else(|| AppError::Usage(format!("{} has no [federation] section", config.path.display())))
}

/// The IdP metadata, read by the edge and parsed by the domain.
async fn idp_metadata(location: &str) -> Result<crate::federation::metadata::IdpMetadata, AppError> {
    let text = crate::federation_io::read_metadata(location).await?;
    crate::federation::metadata::parse(&text).map_err(|source| {
        crate::federation::metadata::InvalidMetadata {
            location: location.to_string(),
            source,
        }
        .into()
    })
}

/// `roles.toml`, read by the edge and parsed by the domain.
fn role_mapping(path: &std::path::Path) -> Result<crate::federation::roles::RoleMapping, AppError> {
    let text = crate::federation_io::read_role_file(path)?;
    crate::federation::roles::RoleMapping::parse(&text).map_err(|source| {
        crate::federation::roles::RoleMappingError {
            path: path.display().to_string(),
            source,
        }
        .into()
    })
}

/// `[federation]` as a validator: metadata (file or https URL), tenant issuer,
/// audiences, role mapping.
pub async fn federation_validator(config: &Config) -> Result<Validator, AppError> {
    let fed = federation_section(config)?;
    let metadata = idp_metadata(&fed.idp_metadata).await?;
    let roles = role_mapping(&fed.role_mapping)?;
    Ok(Validator {
        tenant_issuers: vec![format!("https://sts.windows.net/{}/", fed.tenant_id)],
        audiences: fed.audiences.clone(),
        certs: metadata.signing_certs,
        allow_sha1: fed.allow_sha1,
        clock_skew: chrono::Duration::from_std(fed.clock_skew).unwrap_or(chrono::Duration::minutes(3)),
        roles,
        require_grant: false,
    })
}

pub fn audit_job(config: &Config, sources: &[String], range: TimeRange) -> Result<AuditJob, AppError> {
    let fed = federation_section(config)?;
    config.require_target("saml audit")?;
    let sources = archived_sources(config, sources, "saml audit")?;
    let roles = role_mapping(&fed.role_mapping)?;
    let (archive, state) = open_containers(config, "saml audit", &RetryPolicy::new(config.retry))?;
    Ok(AuditJob {
        archive,
        state: Some(state),
        sources,
        range,
        tenant_id: fed.tenant_id.clone(),
        trusted_issuers: fed.trusted_issuers.clone(),
        roles,
        concurrency: config.sync.concurrency,
        cancel: CancellationToken::new(),
    })
}

/// `keys import`: reads every file first (a bad one touches nothing), then archives them.
pub async fn keys_import(config: &Config, region: &Region, files: &[PathBuf]) -> Result<Vec<ImportedKey>, AppError> {
    config.require_target("keys import")?;
    let keys: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let name = f.display().to_string();
            let der = crate::integrity::keys::key_file_der(&name, crate::files::read_bytes(f))?;
            Ok((name, der))
        })
        .collect::<Result<_, KeyError>>()?;
    let (archive, _) = open_containers(config, "keys import", &RetryPolicy::new(config.retry))?;
    archive.ensure_container().await?;
    let mut imported = Vec::new();
    for (file, der) in keys {
        imported.push(crate::integrity::keys::import(archive.as_ref(), region.as_str(), &file, der).await?);
    }
    Ok(imported)
}

/// `keys fetch`: the regions the archive holds (a state read failure is an error, not
/// "no regions") and `extra`, fetched from CloudTrail's ListPublicKeys.
pub async fn keys_fetch(
    config: &Config,
    since: DateTime<Utc>,
    extra: &[Region],
) -> Result<(Vec<String>, Vec<ImportedKey>), AppError> {
    let (archive, state) = open_containers(config, "keys fetch", &RetryPolicy::new(config.retry))?;
    let sources: Vec<String> = config.sources.iter().map(|s| s.name.to_string()).collect();
    let mut regions = crate::state::select::archived_regions(archive.as_ref(), state.as_ref(), &sources).await?;
    regions.extend(extra.iter().cloned());
    if regions.is_empty() {
        return Err(AppError::Usage(
            "keys fetch: the archive holds no regions yet (run a sync first) and none was named with --region".into(),
        ));
    }
    archive.ensure_container().await?;
    let regions: Vec<String> = regions.into_iter().map(String::from).collect();
    // `[aws] role_arn`, else the first source's role, reads the public keys.
    let role = match &config.aws {
        crate::config::AwsAuth::AzureFederated(f) => f
            .role_arn
            .clone()
            .or_else(|| config.sources.iter().find_map(|s| config.source_role(s))),
        crate::config::AwsAuth::Default => None,
    };
    let region = aws_credentials::sts_region(config.sources.first().map(|s| s.region.as_str()).unwrap_or("us-east-1"));
    let api = crate::cloudtrail_api::AwsCloudTrail {
        credentials: aws_credentials::provider(&config.aws, role.as_deref(), &region, config.retry.max_delay)
            .await
            .map_err(AppError::from)?,
    };
    let fetched = crate::integrity::keys::fetch(archive.as_ref(), &api, &regions, since, Utc::now()).await?;
    Ok((regions, fetched))
}

/// Where `status` reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    State,
    LogAnalytics,
}

pub async fn status(config: &Config, from: StatusSource, now: DateTime<Utc>) -> Result<StatusReport, AppError> {
    let sources: Vec<String> = config.sources.iter().map(|s| s.name.to_string()).collect();
    let max_gap = chrono::Duration::from_std(config.sync.max_gap).unwrap_or(chrono::Duration::hours(8));
    Ok(match from {
        StatusSource::LogAnalytics => {
            let query = logs_query(config)?;
            crate::failover::status::status_from_log_analytics(&query, &sources, max_gap, now).await?
        }
        StatusSource::State => {
            let (_, state) = open_containers(config, "status", &RetryPolicy::new(config.retry))?;
            crate::failover::status::status(state.as_ref(), &sources, max_gap, now).await?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoEnv;
    impl crate::config::Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    #[test]
    fn a_source_named_twice_is_read_once() {
        let text = "[[source]]\nname = \"a\"\nbucket = \"bkt-a\"\nregion = \"us-east-1\"\n";
        let config = Config::parse(text, std::path::Path::new("t.toml"), &NoEnv).unwrap();
        let named = ["a".to_string(), "old".to_string(), "a".to_string()];
        assert_eq!(archived_sources(&config, &named, "verify").unwrap(), ["a", "old"]);
        assert_eq!(archived_sources(&config, &[], "verify").unwrap(), ["a"]);
    }
}

/// The copy `sync` makes (`sync::copy::Copier`), handed to the events domain: runtime is
/// the one floor that sees both domains, so events and sync archive by one code path
/// without either importing the other or the copier moving out of `sync`.
struct SyncCopy {
    archive: ArchiveStore,
    /// `sync.in_flight_bytes`, as in a sync.
    budget: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl crate::events::CopyFile for SyncCopy {
    async fn copy(
        &self,
        source: &crate::events::EventSource,
        object: &crate::storage::SourceObject,
        existing: Option<&crate::storage::BlobInfo>,
    ) -> Result<crate::archive::CopyOutcome, StorageError> {
        use crate::sync::copy::Copier;
        let copier = Copier {
            src: source.source.as_ref(),
            archive: self.archive.as_ref(),
            source_name: &source.name,
            budget: &self.budget,
        };
        copier.copy(object, existing).await
    }
}

/// How a drain polls: `drain` waits briefly so it ends soon after the queues are empty;
/// the daemon long-polls for ever, a record every `record_every`.
#[derive(Debug, Clone, Copy)]
pub enum DrainMode {
    Once { max_time: std::time::Duration },
    Daemon { record_every: std::time::Duration },
}

/// Long poll of the daemon (SQS's maximum).
pub const DAEMON_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// Wait of `drain`: an empty receive ends it, so this is the time it takes to see "empty".
pub const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether any source (of `only`, or any) has a queue.
pub fn has_queues(config: &Config, only: &[String]) -> bool {
    config
        .sources
        .iter()
        .any(|s| s.queue_url.is_some() && (only.is_empty() || only.iter().any(|o| s.name.as_str() == o)))
}

/// A drain of the named sources' queues (every source with a queue when `only` is empty).
pub async fn drain_job(config: &Config, only: &[String], mode: DrainMode) -> Result<crate::events::DrainJob, AppError> {
    config.require_sources("drain")?;
    config.require_target("drain")?;
    for name in only {
        match config.source(name) {
            None => {
                return Err(AppError::Usage(format!(
                    "--source {name}: no such source in {}",
                    config.path.display()
                )))
            }
            Some(s) if s.queue_url.is_none() => {
                return Err(AppError::Usage(format!("--source {name}: the source has no queue_url")))
            }
            Some(_) => {}
        }
    }
    let cancel = CancellationToken::new();
    let retry = RetryPolicy::new(config.retry).with_cancel(cancel.clone());
    let requests = RequestCounter::default();
    let (archive, state) = open_counted(config, "drain", &retry, &requests)?;
    if config.target.as_ref().is_some_and(|t| t.create_containers) {
        let both: [(&dyn BlobStore, &str); 2] = [(&*archive, "archive"), (&*state, "state")];
        for (store, which) in both {
            // Not fatal: each copy then fails on its own and its message stays queued.
            if let Err(e) = store.ensure_container().await {
                tracing::warn!(container = which, error = %e, "could not create the container");
            }
        }
    }
    let mut sources = Vec::new();
    let mut providers: std::collections::HashMap<Option<String>, AwsCredentials> = std::collections::HashMap::new();
    for s in config
        .sources
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| s.name.as_str() == o))
    {
        let Some(queue_url) = &s.queue_url else { continue };
        // SQS is read with the source's own credentials (its role under azure-federated).
        let role = config.source_role(s);
        let credentials = match providers.get(&role) {
            Some(p) => p.clone(),
            None => {
                let p =
                    aws_credentials::provider(&config.aws, role.as_deref(), s.region.as_str(), config.retry.max_delay)
                        .await
                        .map_err(AppError::from)?;
                providers.insert(role, p.clone());
                p
            }
        };
        let queue = crate::queue::sqs::SqsQueue::connect(
            queue_url,
            s.region.as_str(),
            credentials.clone(),
            config.retry.max_delay,
        )
        .await;
        let s3 = Arc::new(S3Source::connect(s, credentials, config.retry.max_delay).await);
        let counted = Arc::new(CountingSource::new(s3, requests.clone()));
        let limited = Arc::new(LimitedSource::new(counted, config.sync.max_requests));
        sources.push(crate::events::EventSource {
            name: s.name.to_string(),
            prefix: s.prefix.clone(),
            source: Arc::new(RetryingSource::new(limited, retry.clone())),
            queue: Arc::new(queue),
        });
    }
    let (wait, deadline, until_empty) = match mode {
        DrainMode::Once { max_time } => (DRAIN_WAIT, Some(tokio::time::Instant::now() + max_time), true),
        DrainMode::Daemon { record_every } => (DAEMON_WAIT, Some(tokio::time::Instant::now() + record_every), false),
    };
    let budget = tokio::sync::Semaphore::new(
        config
            .sync
            .in_flight_bytes
            .min(tokio::sync::Semaphore::MAX_PERMITS as u64) as usize,
    );
    Ok(crate::events::DrainJob {
        run_id: crate::records::new_run_id(Utc::now()),
        sources,
        archive: archive.clone(),
        state,
        copier: Arc::new(SyncCopy { archive, budget }),
        wait,
        deadline,
        until_empty,
        files_in_flight: config.sync.concurrency,
        default_visibility: std::time::Duration::from_secs(30),
        cancel,
    })
}
