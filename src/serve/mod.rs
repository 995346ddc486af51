//! Long-running modes: the container daemon (scheduled runs, health and metrics).

pub mod daemon;
pub mod http;
