//! Choosing archived files by source, account, region, kind and time: the archive
//! reader shared by `restore`, `verify` and `saml audit`. Lists only what it must: the
//! streams the archive's own folders show (and those sync recorded in watermarks),
//! narrowed to the selected accounts, regions and days.

use std::collections::BTreeSet;

use crate::cloudtrail::StreamPrefix;
use crate::cloudtrail::{AccountId, CtKey, FileKind, Region, TimeRange};
use futures::TryStreamExt;

use crate::storage::streams::{discover_streams, find_trail_prefixes};
use crate::storage::{BlobInfo, BlobStore, BlobStoreExt, StateBlobStore, StorageError};

use super::watermark::source_docs;

#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub sources: Vec<String>,
    pub accounts: BTreeSet<AccountId>,
    pub regions: BTreeSet<Region>,
    pub range: TimeRange,
    pub digests: bool,
}

impl Selection {
    pub fn wants(&self, key: &CtKey) -> bool {
        (self.accounts.is_empty() || self.accounts.contains(&key.stream.account))
            && (self.regions.is_empty() || self.regions.contains(&key.stream.region))
            && (self.digests || key.stream.kind != FileKind::Digest)
            && self.range.contains(key)
    }
}

/// One archived CloudTrail file.
#[derive(Debug, Clone)]
pub struct Selected {
    pub source: String,
    /// The original S3 key.
    pub key: String,
    pub blob: BlobInfo,
    pub ct: CtKey,
}

/// A key's CloudTrail shape, read through `//`, `/./` and a leading `/`: a non-canonical
/// name (forged, or an odd S3 key) is selected beside the file it imitates, for the
/// caller to report as a conflict or a problem, never skipped.
pub fn ct_key(key: &str) -> Result<CtKey, crate::cloudtrail::key::KeyError> {
    CtKey::parse_any(key).or_else(|e| CtKey::parse_any(&crate::archive::collapsed_key(key)).map_err(|_| e))
}

/// What a selection found: the archived CloudTrail files it wants, and the keys under the
/// listed folders that are not CloudTrail-shaped at all (reported, never silently passed).
#[derive(Debug, Default)]
pub struct Picked {
    /// Sorted by source and key.
    pub files: Vec<Selected>,
    pub unrecognized: Vec<String>,
    /// Archived streams (`{source}/{stream prefix}`) sync never wrote a watermark for (a
    /// first run killed, a state write that failed): read all the same, and named.
    pub without_watermark: Vec<String>,
}

/// The selected archived files, sorted by source and key.
pub async fn select(
    archive: &dyn BlobStore,
    state: Option<&dyn StateBlobStore>,
    selection: &Selection,
) -> Result<Picked, StorageError> {
    let mut picked = Picked::default();
    for source in &selection.sources {
        // Per source: the same foreign key in two sources is two files.
        let mut seen = BTreeSet::new();
        let mut foreign = BTreeSet::new();
        let source_prefix = format!("{source}/");
        for prefix in prefixes(archive, state, selection, source, &mut picked.without_watermark).await? {
            let mut blobs = archive.list(&prefix);
            while let Some(blob) = blobs.try_next().await? {
                let Some(key) = blob.name.strip_prefix(&source_prefix).map(str::to_string) else {
                    continue;
                };
                let Ok(ct) = ct_key(&key) else {
                    foreign.insert(key);
                    continue;
                };
                if selection.wants(&ct) && seen.insert(key.clone()) {
                    picked.files.push(Selected {
                        source: source.clone(),
                        key,
                        blob,
                        ct,
                    });
                }
            }
        }
        picked.unrecognized.extend(foreign);
    }
    picked
        .files
        .sort_by(|a, b| (&a.source, &a.key).cmp(&(&b.source, &b.key)));
    Ok(picked)
}

/// Every stream the archive holds for `source`, found by listing its folders (any trail
/// prefix): what was archived is found even where no watermark records it.
pub async fn archived_streams(archive: &dyn BlobStore, source: &str) -> Result<Vec<StreamPrefix>, StorageError> {
    let base = format!("{source}/");
    let mut streams = Vec::new();
    for trail_prefix in find_trail_prefixes(archive, &base).await? {
        streams.extend(discover_streams(archive, &base, &trail_prefix).await?);
    }
    Ok(streams)
}

/// The streams sync recorded a watermark for (key prefixes). Unreadable documents cost
/// nothing here: the archive's own folders are what is read.
async fn watermarked_streams(state: &dyn BlobStore, source: &str) -> BTreeSet<String> {
    let docs = match source_docs(state, source).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(source, error = %e, "watermarks unreadable; reading the archive's own folders");
            return BTreeSet::new();
        }
    };
    docs.into_iter()
        .filter_map(|entry| entry.doc.ok())
        .flat_map(|doc| doc.streams.into_keys())
        .collect()
}

/// Archive prefixes to list: each archived stream narrowed to the selected accounts,
/// regions and days; the whole source when neither a range nor the state narrows it.
async fn prefixes(
    archive: &dyn BlobStore,
    state: Option<&dyn StateBlobStore>,
    selection: &Selection,
    source: &str,
    without_watermark: &mut Vec<String>,
) -> Result<Vec<String>, StorageError> {
    let Some(state) = state else {
        if selection.range.days().is_none() {
            return Ok(vec![format!("{source}/")]);
        }
        let streams = archived_streams(archive, source).await?;
        return Ok(narrowed(
            source,
            selection,
            streams.iter().map(|p| (p.key_prefix(), p.clone())),
        ));
    };
    let marked = watermarked_streams(state, source).await;
    let mut streams: std::collections::BTreeMap<String, StreamPrefix> = marked
        .iter()
        .filter_map(|s| StreamPrefix::parse(s).map(|p| (s.clone(), p)))
        .collect();
    for stream in archived_streams(archive, source).await? {
        let key_prefix = stream.key_prefix();
        if !marked.contains(&key_prefix) {
            tracing::warn!(
                source,
                stream = key_prefix,
                "archived stream has no watermark; read from the archive's folders"
            );
            without_watermark.push(format!("{source}/{key_prefix}"));
        }
        streams.insert(key_prefix, stream);
    }
    Ok(narrowed(source, selection, streams.into_iter()))
}

/// The listing prefixes of the streams a selection wants: their selected days, or each
/// whole stream without a range.
fn narrowed(source: &str, selection: &Selection, streams: impl Iterator<Item = (String, StreamPrefix)>) -> Vec<String> {
    let mut out = Vec::new();
    for (stream, parsed) in streams {
        if !selection.accounts.is_empty() && !selection.accounts.contains(&parsed.account)
            || !selection.regions.is_empty() && !selection.regions.contains(&parsed.region)
            || !selection.digests && parsed.kind == FileKind::Digest
        {
            continue;
        }
        match selection.range.days() {
            Some(days) => out.extend(
                days.iter()
                    .map(|d| format!("{source}/{stream}{}/", d.format("%Y/%m/%d"))),
            ),
            None => out.push(format!("{source}/{stream}")),
        }
    }
    out
}

/// The regions the archive holds for these sources: from its own folders and from the
/// streams sync recorded. An unreadable container is an error, never "no regions".
pub async fn archived_regions(
    archive: &dyn BlobStore,
    state: &dyn BlobStore,
    sources: &[String],
) -> Result<BTreeSet<Region>, StorageError> {
    let mut regions = BTreeSet::new();
    for source in sources {
        regions.extend(archived_streams(archive, source).await?.into_iter().map(|p| p.region));
        for entry in source_docs(state, source).await? {
            match entry.doc {
                Ok(doc) => regions.extend(
                    doc.streams
                        .keys()
                        .filter_map(|s| StreamPrefix::parse(s))
                        .map(|p| p.region),
                ),
                // The file name still names the region.
                Err(e) => {
                    tracing::warn!(source, error = %e, "a watermark is unreadable");
                    regions.extend(Region::parse(&entry.region).ok());
                }
            }
        }
    }
    Ok(regions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_prefixes_parse_with_prefixes_and_organizations() {
        let p = StreamPrefix::parse("p/q/AWSLogs/o-abc/111122223333/CloudTrail-Digest/eu-west-1/").unwrap();
        assert_eq!(
            (
                p.trail_prefix.as_str(),
                p.org.as_deref(),
                p.account.as_str(),
                p.kind,
                p.region.as_str()
            ),
            ("p/q", Some("o-abc"), "111122223333", FileKind::Digest, "eu-west-1")
        );
        let p = StreamPrefix::parse("AWSLogs/111122223333/CloudTrail/us-east-1/").unwrap();
        assert_eq!((p.trail_prefix.as_str(), p.kind), ("", FileKind::Log));
        assert_eq!(p.key_prefix(), "AWSLogs/111122223333/CloudTrail/us-east-1/");
        assert_eq!(StreamPrefix::parse("elsewhere/"), None);
    }

    #[test]
    fn a_trail_prefix_may_contain_awslogs() {
        let s = "x/AWSLogs/y/AWSLogs/111122223333/CloudTrail/us-east-1/";
        let p = StreamPrefix::parse(s).unwrap();
        assert_eq!(p.trail_prefix, "x/AWSLogs/y");
        assert_eq!(p.key_prefix(), s);
    }
}
