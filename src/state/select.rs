//! Choosing archived files by source, account, region, kind and time: the archive
//! reader shared by `restore`, `verify` and `saml audit`. Lists only what it must: the
//! streams sync has recorded (watermarks, so it lives beside them), narrowed to the
//! selected accounts, regions and days.

use std::collections::BTreeSet;

use crate::cloudtrail::StreamPrefix;
use crate::cloudtrail::{AccountId, CtKey, FileKind, Region, TimeRange};
use futures::TryStreamExt;

use crate::storage::{BlobInfo, BlobStore, BlobStoreExt, StorageError};

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
}

/// The selected archived files, sorted by source and key.
pub async fn select(
    archive: &dyn BlobStore,
    state: Option<&dyn BlobStore>,
    selection: &Selection,
) -> Result<Picked, StorageError> {
    let mut out = Vec::new();
    let mut unrecognized = Vec::new();
    for source in &selection.sources {
        // Per source: the same foreign key in two sources is two files.
        let mut seen = BTreeSet::new();
        let mut foreign = BTreeSet::new();
        let source_prefix = format!("{source}/");
        for prefix in prefixes(state, selection, source).await {
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
                    out.push(Selected {
                        source: source.clone(),
                        key,
                        blob,
                        ct,
                    });
                }
            }
        }
        unrecognized.extend(foreign);
    }
    out.sort_by(|a, b| (&a.source, &a.key).cmp(&(&b.source, &b.key)));
    Ok(Picked {
        files: out,
        unrecognized,
    })
}

/// Archive prefixes to list: each known stream narrowed to the selected accounts,
/// regions and days; the whole source when the state container has nothing to say.
async fn prefixes(state: Option<&dyn BlobStore>, selection: &Selection, source: &str) -> Vec<String> {
    let whole = vec![format!("{source}/")];
    let Some(state) = state else { return whole };
    let docs = match source_docs(state, source).await {
        Ok(d) if !d.is_empty() => d,
        Ok(_) => return whole,
        Err(e) => {
            tracing::warn!(source, error = %e, "watermarks unreadable; listing the whole source");
            return whole;
        }
    };
    let mut streams = BTreeSet::new();
    for entry in docs {
        let doc = match entry.doc {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(source, error = %e, "a watermark is unreadable; listing the whole source");
                return whole;
            }
        };
        for stream in doc.streams.into_keys() {
            match StreamPrefix::parse(&stream) {
                Some(p) => {
                    streams.insert((stream, p));
                }
                None => return whole,
            }
        }
    }
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

/// The regions the archive holds for these sources, from the streams sync recorded.
/// An unreadable state container is an error, never "no regions".
pub async fn archived_regions(state: &dyn BlobStore, sources: &[String]) -> Result<BTreeSet<Region>, StorageError> {
    let mut regions = BTreeSet::new();
    for source in sources {
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
