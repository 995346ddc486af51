//! The federation domain's edge: what it reads from disks and the network, and the replay
//! cache file it locks and rewrites. The domain (`federation/`) gets text and a
//! [`ReplayStore`]; nothing under it touches a file or a socket.

pub mod metadata_source;
pub mod replay_file;
pub mod replay_store;
pub mod role_file;

pub use metadata_source::{read_metadata, LoadError};
pub use replay_file::FileReplayStore;
pub use replay_store::ReplayStore;
pub use role_file::{read_role_file, RoleFileError};
