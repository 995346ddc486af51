//! Identifiers with one rule each: parsed once with `FromStr` into a newtype, each with its
//! own error, so a value that got past the parse is known good everywhere it goes.
//! Knowledge floor: pure, no I/O.

mod account;
mod bucket_name;
mod container_name;
pub mod provider_arn;
mod region;
pub mod role_arn;
pub mod session_name;
mod source_name;
mod string_newtype;

pub use account::{AccountId, AccountIdError};
pub use bucket_name::{BucketName, BucketNameError};
pub use container_name::{ContainerName, ContainerNameError};
pub use provider_arn::{ProviderArn, ProviderArnError};
pub use region::{Region, RegionError};
pub use role_arn::{RoleArn, RoleArnError};
pub use session_name::{SessionName, SessionNameError};
pub use source_name::{SourceName, SourceNameError};

/// AWS's partitions. An IAM ARN names a resource in any of them; a domain that works only
/// in some (SAML sign-in: [`SAML_PARTITIONS`]) says so itself.
pub const PARTITIONS: [&str; 8] = [
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// The partitions with a SAML sign-in endpoint an Entra app can post to.
pub const SAML_PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// IAM's name characters (`[\w+=,.@-]`, ASCII): role names, path segments, session names.
pub(crate) fn is_iam_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)
}

/// `arn:PARTITION:iam::ACCOUNT:RESOURCE` split, with the partition and account checked.
pub(crate) fn split_iam_arn(s: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return None;
    };
    let ok = *arn == "arn"
        && PARTITIONS.contains(partition)
        && *service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit());
    ok.then_some((*partition, *account, *resource))
}
