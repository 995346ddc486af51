//! The edge that reads local files the knowledge floor only parses.

use std::path::Path;

use crate::config::{Config, ConfigError, Env};

/// A whole local file (a CloudTrail public key to import).
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// Reads and validates the config file at `path`, with secrets from `env`.
pub fn read_config(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Config::parse(&text, path, env)
}
