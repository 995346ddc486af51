//! Finds every (org, account, kind, region) stream under a trail's `AWSLogs/` with a few
//! delimiter listings per account, in any store that lists folders: the S3 bucket (sync)
//! and the archive (restore, verify), so that what the archive holds is found from the
//! archive itself, never only from the watermarks sync managed to write.

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};

use super::{BlobStore, BlobStoreExt, Source, StorageResult};
use crate::cloudtrail::key::awslogs_root;
use crate::cloudtrail::{AccountId, FileKind, Region, StreamPrefix};

const DISCOVERY_CONCURRENCY: usize = 8;
/// How deep a trail prefix may sit above `AWSLogs/` when it is searched for (an archived
/// source no longer in the config): S3 prefixes of real trails are a folder or two.
const MAX_PREFIX_DEPTH: usize = 8;
/// Folders looked into while searching for `AWSLogs/`; past it the search is an error
/// rather than a walk over a hostile tree.
const MAX_PREFIX_FOLDERS: usize = 1000;

/// A store's "folders" (delimiter `/`): full names, each ending in `/`.
#[async_trait]
pub trait Folders: Send + Sync {
    async fn folders(&self, prefix: &str) -> StorageResult<Vec<String>>;
}

#[async_trait]
impl Folders for dyn Source + '_ {
    async fn folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        self.list_folders(prefix).await
    }
}

#[async_trait]
impl Folders for dyn BlobStore + '_ {
    async fn folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        self.list_folders(prefix).await
    }
}

fn last_segment<'a>(folder: &'a str, parent: &str) -> &'a str {
    folder.get(parent.len()..).unwrap_or_default().trim_end_matches('/')
}

/// The folders directly under `parent`, each checked to be one segment below it: a
/// service that answers with anything else (another prefix, a deeper path) would make up
/// accounts and regions, so its listing is an error.
async fn folders_under<F: Folders + ?Sized>(store: &F, parent: &str) -> StorageResult<Vec<String>> {
    let folders = store.folders(parent).await?;
    for f in &folders {
        let segment = f.strip_prefix(parent).and_then(|s| s.strip_suffix('/'));
        if !segment.is_some_and(|s| !s.is_empty() && !s.contains('/')) {
            let shown: String = f.chars().take(200).collect();
            return Err(super::StorageError::new(
                super::ErrorKind::Other,
                "list folders",
                parent,
                format!("the service listed {shown:?}, which is not a folder directly under the prefix asked for; the listing cannot be trusted"),
            ));
        }
    }
    Ok(folders)
}

/// The streams of the trail at `trail_prefix`, whose keys sit under `base` in the store
/// (`""` in the bucket, `{source}/` in the archive). Sorted.
pub async fn discover_streams<F: Folders + ?Sized>(
    store: &F,
    base: &str,
    trail_prefix: &str,
) -> StorageResult<Vec<StreamPrefix>> {
    let root = format!("{base}{}", awslogs_root(trail_prefix));
    let mut accounts: Vec<(Option<String>, AccountId)> = Vec::new();
    for folder in folders_under(store, &root).await? {
        let name = last_segment(&folder, &root);
        if name.starts_with("o-") {
            for inner in folders_under(store, &folder).await? {
                if let Ok(account) = AccountId::parse(last_segment(&inner, &folder)) {
                    accounts.push((Some(name.to_string()), account));
                }
            }
        } else if let Ok(account) = AccountId::parse(name) {
            accounts.push((None, account));
        }
    }
    let per_account = futures::stream::iter(accounts)
        .map(|(org, account)| {
            let root = root.clone();
            async move {
                let base = match &org {
                    Some(o) => format!("{root}{o}/{account}/"),
                    None => format!("{root}{account}/"),
                };
                let mut streams = Vec::new();
                for kind_folder in folders_under(store, &base).await? {
                    let Some(kind) = FileKind::from_folder(last_segment(&kind_folder, &base)) else {
                        continue;
                    };
                    for region_folder in folders_under(store, &kind_folder).await? {
                        // Region names become state blob names: a folder CloudTrail could not
                        // have written is reported, not followed.
                        let region = match Region::parse(last_segment(&region_folder, &kind_folder)) {
                            Ok(region) => region,
                            Err(why) => {
                                tracing::warn!(folder = region_folder, %why, "not a region folder; its files are not read");
                                continue;
                            }
                        };
                        streams.push(StreamPrefix {
                            trail_prefix: trail_prefix.to_string(),
                            org: org.clone(),
                            account: account.clone(),
                            kind,
                            region,
                        });
                    }
                }
                StorageResult::Ok(streams)
            }
        })
        .buffer_unordered(DISCOVERY_CONCURRENCY);
    let mut streams: Vec<StreamPrefix> = per_account
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    streams.sort();
    Ok(streams)
}

/// The trail prefixes under `base` (each folder path that holds an `AWSLogs/` folder,
/// without slashes at either end; `""` for `base/AWSLogs/`), searched breadth-first.
pub async fn find_trail_prefixes<F: Folders + ?Sized>(store: &F, base: &str) -> StorageResult<Vec<String>> {
    let mut found = Vec::new();
    let mut level = vec![base.to_string()];
    let mut visited = 0usize;
    for _ in 0..=MAX_PREFIX_DEPTH {
        let mut next = Vec::new();
        for folder in level {
            visited += 1;
            if visited > MAX_PREFIX_FOLDERS {
                return Err(super::StorageError::new(
                    super::ErrorKind::Other,
                    "list folders",
                    base,
                    format!("more than {MAX_PREFIX_FOLDERS} folders above any AWSLogs/: name the trail prefix in the source's config"),
                ));
            }
            let in_awslogs = folder.ends_with("/AWSLogs/") || folder == format!("{base}AWSLogs/");
            for child in folders_under(store, &folder).await? {
                let name = last_segment(&child, &folder);
                if name == "AWSLogs" {
                    let prefix = folder.get(base.len()..).unwrap_or_default().trim_end_matches('/');
                    found.push(prefix.to_string());
                }
                // A trail's own folders (accounts, organizations) are not searched; anything
                // else under an AWSLogs/ may be a longer trail prefix (`x/AWSLogs/y/AWSLogs/`).
                if !(in_awslogs && (name.starts_with("o-") || AccountId::parse(name).is_ok())) {
                    next.push(child);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    found.sort();
    found.dedup();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryBlobStore;
    use crate::storage::PutOptions;

    #[tokio::test]
    async fn archive_streams_are_found_from_the_archive_with_any_trail_prefix() {
        let archive = MemoryBlobStore::new();
        for name in [
            "s/AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/x.json.gz",
            "s/p/q/AWSLogs/o-abcdefghij/444455556666/CloudTrail-Digest/eu-west-1/2026/01/01/x.json.gz",
            "s/stray/file.txt",
            "s/x/AWSLogs/y/AWSLogs/555566667777/CloudTrail/ap-south-1/2026/01/01/x.json.gz",
            "t/AWSLogs/999999999999/CloudTrail/us-east-1/2026/01/01/x.json.gz",
        ] {
            archive
                .put(name, bytes::Bytes::from_static(b"x"), PutOptions::default())
                .await
                .unwrap();
        }
        let store: &dyn BlobStore = &archive;
        let prefixes = find_trail_prefixes(store, "s/").await.unwrap();
        assert_eq!(prefixes, vec!["", "p/q", "x", "x/AWSLogs/y"]);
        let mut all = Vec::new();
        for p in &prefixes {
            all.extend(discover_streams(store, "s/", p).await.unwrap());
        }
        let keys: Vec<String> = all.iter().map(StreamPrefix::key_prefix).collect();
        assert_eq!(
            keys,
            vec![
                "AWSLogs/111122223333/CloudTrail/us-east-1/",
                "p/q/AWSLogs/o-abcdefghij/444455556666/CloudTrail-Digest/eu-west-1/",
                "x/AWSLogs/y/AWSLogs/555566667777/CloudTrail/ap-south-1/",
            ]
        );
    }

    #[tokio::test]
    async fn a_deep_hostile_tree_is_an_error_not_a_walk() {
        let archive = MemoryBlobStore::new();
        for i in 0..1100 {
            archive
                .put(
                    &format!("s/d{i}/f"),
                    bytes::Bytes::from_static(b"x"),
                    PutOptions::default(),
                )
                .await
                .unwrap();
        }
        let store: &dyn BlobStore = &archive;
        assert!(find_trail_prefixes(store, "s/").await.is_err());
    }
}
