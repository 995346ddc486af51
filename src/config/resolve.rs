//! From the sections as written to a [`Config`]: each section checked, and the settings
//! that depend on another section (identities, roles) resolved against it.

use std::path::Path;

use super::document::RawConfig;
use super::env::Env;
use super::fields::Problems;
use super::target::{AzureAuth, TargetConfig};
use super::{aws, federation, health, log_analytics, schedule, source, target, Config};
use crate::secret::Secret;

/// Every section is checked even when an earlier one failed, so that all problems show
/// at once; sizes, counts and duration ranges were checked as they were read.
pub(super) fn resolve(raw: RawConfig, path: &Path, env: &dyn Env, problems: &Problems) -> Config {
    let base = path.parent().unwrap_or(Path::new("."));
    let roles = source::roles(&raw.source);
    let sources = source::validate_all(raw.source, problems);
    let target = raw.target.and_then(|t| target::validate(t, env, problems));
    let aws = aws::validate(raw.aws, &roles, target.as_ref(), env, problems);
    schedule::validate(&raw.schedule, problems);
    health::validate(&raw.health, problems);
    let federation = raw.federation.map(|f| federation::validate(f, base, problems));
    let log_analytics = raw
        .log_analytics
        .and_then(|la| log_analytics::validate(la, target.as_ref(), env, problems));
    Config {
        path: path.to_path_buf(),
        sources,
        target,
        sync: raw.sync,
        retry: raw.retry,
        schedule: raw.schedule,
        health: raw.health,
        federation,
        log_analytics,
        aws,
    }
}

/// An Entra app registration's client secret from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
/// `AZURE_CLIENT_SECRET` (secrets never come from the file); each missing one is a
/// problem worded by `missing`.
pub(super) fn client_secret_from_env(
    env: &dyn Env,
    problems: &Problems,
    missing: impl Fn(&str) -> String,
) -> AzureAuth {
    let get = |v: &str| {
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

/// The Entra identity a setting names (`aws.azure_credential`, `log_analytics.auth`):
/// the target's own when it is the same kind (one managed identity, with its client id,
/// serves every use), else the kind built afresh, a client secret from the environment.
/// Unset means the target's, which must then be a token kind.
pub(super) fn token_identity(
    setting: &str,
    kind: Option<String>,
    target: Option<&TargetConfig>,
    env: &dyn Env,
    problems: &Problems,
) -> AzureAuth {
    const KINDS: &str = "managed-identity, workload-identity, client-secret, developer-tools";
    let kind = kind.or_else(|| target.filter(|t| t.auth.is_token()).map(|t| t.auth.kind().to_string()));
    let Some(kind) = kind else {
        problems.push(format!(
            "{setting} must name the Azure identity to use ({KINDS}): target.auth is not a token kind"
        ));
        return AzureAuth::ManagedIdentity { client_id: None };
    };
    if let Some(same) = target.map(|t| &t.auth).filter(|a| a.kind() == kind) {
        return same.clone();
    }
    match kind.as_str() {
        "managed-identity" => AzureAuth::ManagedIdentity { client_id: None },
        "workload-identity" => AzureAuth::WorkloadIdentity,
        "developer-tools" => AzureAuth::DeveloperTools,
        "client-secret" => client_secret_from_env(env, problems, |v| {
            format!("{setting} = \"client-secret\" needs the environment variable {v}")
        }),
        other => {
            problems.push(format!("{setting} {other:?} is not one of {KINDS}"));
            AzureAuth::ManagedIdentity { client_id: None }
        }
    }
}
