//! Failover: what a security team needs when AWS is down — `restore` of archived
//! logs to a folder or a bucket, `status` (backup gap, health) from the state or from
//! Log Analytics, and publishing run records to Log Analytics.

pub mod publish;
pub mod restore;
pub mod status;
