//! One file that could not be done, and why: what a run document lists under `failures`.

use serde::Serialize;

/// `{"key": ..., "error": ...}`: the file's key (S3's, as the archive names it under its
/// source) and the error's text, secrets already scrubbed by the error's own display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyFailure {
    pub key: String,
    pub error: String,
}

impl KeyFailure {
    pub fn new(key: impl Into<String>, error: impl std::fmt::Display) -> Self {
        KeyFailure {
            key: key.into(),
            error: error.to_string(),
        }
    }
}
