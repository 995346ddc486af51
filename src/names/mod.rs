mod account;
mod bucket_name;
mod container_name;
mod region;
mod source_name;
mod string_newtype;

pub use account::{AccountId, AccountIdError};
pub use bucket_name::{BucketName, BucketNameError};
pub use container_name::{ContainerName, ContainerNameError};
pub use region::{Region, RegionError};
pub use source_name::{SourceName, SourceNameError};
