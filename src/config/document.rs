//! The file as written: the top-level table, each section read into its raw form.

use super::aws::{self, RawAws};
use super::federation::{self, RawFederation};
use super::fields::{Fields, Problems};
use super::health::{self, HealthConfig};
use super::log_analytics::{self, RawLogAnalytics};
use super::schedule::{self, ScheduleConfig};
use super::source::{self, RawSource};
use super::sync::{self, RetrySettings, SyncSettings};
use super::target::{self, RawTarget};

/// Sections with defaults for every key are read straight into their checked form;
/// the others wait for resolution.
pub(super) struct RawConfig {
    pub source: Vec<RawSource>,
    pub target: Option<RawTarget>,
    pub sync: SyncSettings,
    pub retry: RetrySettings,
    pub schedule: ScheduleConfig,
    pub health: HealthConfig,
    pub federation: Option<RawFederation>,
    pub log_analytics: Option<RawLogAnalytics>,
    pub aws: Option<RawAws>,
}

/// Reads every section in the order the file's sections are documented, so that
/// problems are listed in that order too.
pub(super) fn read(doc: &toml::Table, problems: &Problems) -> RawConfig {
    let mut top = Fields::new("", doc, problems);
    let source = source::read_all(&mut top, problems);
    let target = top.table("target").map(|t| target::read(t, problems));
    let (sync, retry) = sync::read(top.table("sync"), problems);
    let schedule = schedule::read(top.table("schedule"), problems);
    let health = health::read(top.table("health"), problems);
    let federation = top.table("federation").map(|t| federation::read(t, problems));
    let log_analytics = top.table("log_analytics").map(|t| log_analytics::read(t, problems));
    let aws = top.table("aws").map(|t| aws::read(t, problems));
    top.finish();
    RawConfig {
        source,
        target,
        sync,
        retry,
        schedule,
        health,
        federation,
        log_analytics,
        aws,
    }
}
