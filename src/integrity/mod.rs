//! Integrity: CloudTrail's signed, chained digests validated offline from the Azure
//! copy (`verify`), with the public keys archived beforehand (`keys import`, `keys
//! fetch`), so logs can be proven untampered while AWS is unreachable.

pub mod keys;
pub mod verify;
