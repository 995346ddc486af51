//! Pure knowledge of CloudTrail's S3 layout: no I/O, no async.

pub mod key;

pub use key::{CtKey, FileKind, StreamPrefix};
