//! Where secrets come from: the environment, never the file.

pub const ENV_AZURE_SAS: &str = "TRAILVAULT_AZURE_SAS";
pub const ENV_AZURE_ACCOUNT_KEY: &str = "TRAILVAULT_AZURE_ACCOUNT_KEY";

/// Where a command gets environment variables from; tests pass a map.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process's own environment; an empty variable counts as unset.
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
