//! `[target]`: the Azure storage account, its archive and state containers, and how
//! trailvault authenticates to it.

use url::Url;

use super::env::{Env, ENV_AZURE_ACCOUNT_KEY, ENV_AZURE_SAS};
use super::fields::{Fields, Problems};
use super::resolve::client_secret_from_env;
use super::url::{account_name, parse_http_url};
use crate::names::ContainerName;
use crate::secret::Secret;

pub(super) struct RawTarget {
    account_url: Option<String>,
    container: Option<String>,
    state_container: Option<String>,
    state_account_url: String,
    auth: Option<String>,
    managed_identity_client_id: String,
    create_containers: bool,
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub account_url: Url,
    pub container: ContainerName,
    pub state_container: ContainerName,
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

pub(super) fn read(t: &toml::Table, problems: &Problems) -> RawTarget {
    let mut f = Fields::new("target", t, problems);
    let raw = RawTarget {
        account_url: f.required(
            "account_url",
            "the storage account URL, like \"https://acct.blob.core.windows.net\"",
        ),
        container: f.required("container", "the archive container's name"),
        state_container: f.required("state_container", "the state container's name"),
        state_account_url: f.string_or("state_account_url", ""),
        auth: f.required(
            "auth",
            "one of managed-identity, workload-identity, client-secret, developer-tools, sas, shared-key",
        ),
        managed_identity_client_id: f.string_or("managed_identity_client_id", ""),
        create_containers: f.boolean("create_containers", false),
    };
    f.finish();
    raw
}

pub(super) fn validate(t: RawTarget, env: &dyn Env, problems: &Problems) -> Option<TargetConfig> {
    // Every check runs even when an earlier one failed, so that all problems show at once.
    let account_url = t.account_url.as_deref().and_then(|u| {
        parse_http_url(u)
            .map_err(|m| problems.push(format!("target.account_url {m}")))
            .ok()
    });
    let state_account_url = if t.state_account_url.is_empty() {
        account_url.clone()
    } else {
        parse_http_url(&t.state_account_url)
            .map_err(|m| problems.push(format!("target.state_account_url {m}")))
            .ok()
    };
    let [container, state_container] =
        [("container", &t.container), ("state_container", &t.state_container)].map(|(key, name)| {
            name.as_deref().and_then(|n| {
                n.parse::<ContainerName>()
                    .map_err(|e| problems.push(format!("target.{key} {e}")))
                    .ok()
            })
        });
    if t.container.is_some() && t.container == t.state_container && account_url == state_account_url {
        problems.push(
            "target.state_container must differ from target.container (the archive is write-once, state is mutable)",
        );
    }
    let auth = auth(&t, account_url.as_ref(), env, problems)?;
    if auth.is_token() && account_url.as_ref().is_some_and(|u| u.scheme() != "https") {
        problems.push(format!(
            "target.auth = {:?} sends bearer tokens and needs an https account_url",
            auth.kind()
        ));
    }
    Some(TargetConfig {
        account_url: account_url?,
        container: container?,
        state_container: state_container?,
        state_account_url: state_account_url?,
        auth,
        create_containers: t.create_containers,
    })
}

/// `target.auth` with its secrets from the environment.
fn auth(t: &RawTarget, account_url: Option<&Url>, env: &dyn Env, problems: &Problems) -> Option<AzureAuth> {
    let kind = t.auth.clone()?;
    let missing = |var: &str| format!("target.auth = {kind:?} needs the environment variable {var}: set it");
    let auth = match kind.as_str() {
        "managed-identity" => AzureAuth::ManagedIdentity {
            client_id: Some(t.managed_identity_client_id.clone()).filter(|s| !s.is_empty()),
        },
        "workload-identity" => AzureAuth::WorkloadIdentity,
        "developer-tools" => AzureAuth::DeveloperTools,
        "client-secret" => client_secret_from_env(env, problems, missing),
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
            if !key.is_empty() && !base64_decodes(&key) {
                problems.push(format!(
                    "{ENV_AZURE_ACCOUNT_KEY} is not base64: copy the account key as the portal shows it"
                ));
            }
            let account = account_url.and_then(account_name).unwrap_or_default();
            if account_url.is_some() && account.is_empty() {
                problems.push(
                    "target.account_url does not name a storage account: use https://ACCOUNT.blob.core.windows.net or http://HOST:PORT/ACCOUNT",
                );
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
    Some(auth)
}

fn base64_decodes(s: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn create_containers_defaults_to_false_and_must_be_a_boolean() {
        let c = parse(MINIMAL, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert!(!c.target.unwrap().create_containers);
        let text = MINIMAL.replace(
            "auth = \"shared-key\"",
            "auth = \"shared-key\"\ncreate_containers = true",
        );
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert!(c.target.unwrap().create_containers);
        let text = MINIMAL.replace(
            "auth = \"shared-key\"",
            "auth = \"shared-key\"\ncreate_containers = \"yes\"",
        );
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("create_containers"), "{err}");
    }

    #[test]
    fn missing_secret_is_named() {
        let err = parse(MINIMAL, &[]).unwrap_err().to_string();
        assert!(err.contains(ENV_AZURE_ACCOUNT_KEY), "{err}");
    }

    #[test]
    fn token_auth_needs_https() {
        let text = MINIMAL.replace("\"shared-key\"", "\"managed-identity\"");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("https"), "{err}");
    }
}
