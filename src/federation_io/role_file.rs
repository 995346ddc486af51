//! `roles.toml` from disk (the federation domain parses it).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("role mapping {path}: {source}")]
pub struct RoleFileError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

impl crate::fault::Classify for RoleFileError {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Config
    }
}

pub fn read_role_file(path: &Path) -> Result<String, RoleFileError> {
    std::fs::read_to_string(path).map_err(|source| RoleFileError {
        path: path.display().to_string(),
        source,
    })
}
