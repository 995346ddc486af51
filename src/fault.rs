//! What kind of failure an error is, so the exit code follows from the kind and not
//! from which module the error came from. Every domain and edge error says its class.

/// The contract's exit codes follow from these: usage and config 2, failed 1, integrity 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A bad flag or argument; nothing was touched.
    Usage,
    /// The configuration, or a file it names, is missing or invalid; nothing was touched.
    Config,
    /// The operation failed or finished partially: an endpoint unreachable, a write
    /// refused, a lock held. Running again may succeed.
    Failed,
    /// A check failed: tampering, corruption, a gap over target, an invalid response.
    Integrity,
}

/// Implemented by every error that reaches the command line.
pub trait Classify {
    fn fault(&self) -> Fault;
}
