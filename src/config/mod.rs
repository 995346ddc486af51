//! Strict TOML configuration, validated into typed values before any network call.
//!
//! The text is parsed into a TOML table and read field by field (`fields`), one section
//! per file, with every default and range from `defaults`; unknown keys, wrong types and
//! bad values are collected rather than stopping at the first, then `resolve` checks each
//! section and what depends on another, reading secrets from the environment (`env`).
//! Every problem is reported at once (exit 2) with nothing touched. Pure: the file is read
//! by the caller (`crate::files::read_config`).

mod aws;
pub mod defaults;
mod document;
mod env;
mod federation;
mod fields;
mod health;
mod log_analytics;
mod resolve;
mod schedule;
mod source;
mod sync;
mod target;
mod url;

use std::path::{Path, PathBuf};

pub use aws::{is_role_arn, AwsAuth, AzureFederated};
pub use defaults::BLOCK_SIZE;
pub use env::{Env, ProcessEnv, ENV_AZURE_ACCOUNT_KEY, ENV_AZURE_SAS};
pub use federation::FederationConfig;
pub use fields::{parse_bytes, SizeError};
pub use health::HealthConfig;
pub use log_analytics::LogAnalyticsConfig;
pub use schedule::{check_schedule, parse_cron, CronError, ScheduleConfig};
pub use source::SourceConfig;
pub use sync::{RetrySettings, SyncSettings};
pub use target::{AzureAuth, TargetConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}. Pass --config PATH or set TRAILVAULT_CONFIG")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "config file {path} is not valid TOML: {message}. Fix the file at that line (text values need quotes, like lookback = \"72h\"; each key once per table)"
    )]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}{}", list(.problems))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

/// One problem on the same line; several as a list, one a line.
fn list(problems: &[String]) -> String {
    match problems {
        [one] => format!(": {one}"),
        many => {
            const SHOWN: usize = 100;
            let mut out = format!(" has {} problems:", many.len());
            for p in many.iter().take(SHOWN) {
                out.push_str("\n  - ");
                out.push_str(p);
            }
            if many.len() > SHOWN {
                out.push_str(&format!("\n  - ... and {} more", many.len() - SHOWN));
            }
            out
        }
    }
}

impl crate::fault::Classify for ConfigError {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Config
    }
}

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

impl Config {
    /// `text` is the file at `path` (relative paths in it resolve from its folder); secrets
    /// come from `env`.
    pub fn parse(text: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let problems = fields::Problems::default();
        let raw = document::read(&doc, &problems);
        let config = resolve::resolve(raw, path, env, &problems);
        let problems = problems.into_vec();
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

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests;
