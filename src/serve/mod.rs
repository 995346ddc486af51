//! Runtime, long-running modes: the container daemon (scheduled runs, health and
//! metrics) and the Azure Functions custom handler.

pub mod daemon;
pub mod events;
pub mod functions;
pub mod listener;
pub mod shutdown;
