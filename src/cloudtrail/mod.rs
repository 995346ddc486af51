//! Pure knowledge of CloudTrail's S3 layout: no I/O, no async.

pub mod digest;
pub mod key;
pub mod range;
pub mod record;

pub use key::{AccountId, CtKey, FileKind, Region, StreamPrefix};
pub use range::{parse_time, TimeRange};
