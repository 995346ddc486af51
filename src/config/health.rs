//! `[health]`: how AWS's health is probed and when failed probes mean degraded or outage.

use std::time::Duration;

use super::defaults::{DEGRADED_AFTER, OUTAGE_AFTER, PROBE_TIMEOUT};
use super::fields::{Fields, Problems};

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub probe_timeout: Duration,
    pub degraded_after: u32,
    pub outage_after: u32,
}

pub(super) fn read(t: Option<&toml::Table>, problems: &Problems) -> HealthConfig {
    let empty = toml::Table::new();
    let mut f = Fields::new("health", t.unwrap_or(&empty), problems);
    let health = HealthConfig {
        probe_timeout: f.duration(&PROBE_TIMEOUT),
        degraded_after: f.count(&DEGRADED_AFTER),
        outage_after: f.count(&OUTAGE_AFTER),
    };
    f.finish();
    health
}

pub(super) fn validate(h: &HealthConfig, problems: &Problems) {
    if h.outage_after < h.degraded_after {
        problems.push(format!(
            "health.outage_after = {} must be at least health.degraded_after = {} (an outage follows degradation)",
            h.outage_after, h.degraded_after
        ));
    }
}
