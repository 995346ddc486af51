//! What the section tests share: a minimal valid config and parsing it.

use std::path::Path;

pub(super) use super::env::{ENV_AZURE_ACCOUNT_KEY, ENV_AZURE_SAS};
pub(super) use super::{AzureAuth, Config, ConfigError, Env};

pub(super) const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub(super) fn parse(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/trailvault/trailvault.toml"), env)
}

pub(super) const MINIMAL: &str = r#"
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

pub(super) fn problems(text: &str) -> Vec<String> {
    match parse(text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}
