//! Choosing archived files by source, account, region, kind and time: shared by
//! `restore` and `verify`. Lists only what it must: the streams sync has recorded
//! (watermarks), narrowed to the selected accounts, regions and days.

use std::collections::BTreeSet;

use crate::cloudtrail::{CtKey, FileKind, TimeRange};
use crate::storage::{read_all, BlobInfo, BlobStore, StorageError};
use crate::sync::watermark::WatermarkDoc;

#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub sources: Vec<String>,
    pub accounts: BTreeSet<String>,
    pub regions: BTreeSet<String>,
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

/// The selected archived files, sorted by source and key.
pub async fn select(
    archive: &dyn BlobStore,
    state: Option<&dyn BlobStore>,
    selection: &Selection,
) -> Result<Vec<Selected>, StorageError> {
    let mut out = Vec::new();
    for source in &selection.sources {
        let mut seen = BTreeSet::new();
        let source_prefix = format!("{source}/");
        for prefix in prefixes(state, selection, source).await {
            for blob in archive.list(&prefix).await? {
                let Some(key) = blob.name.strip_prefix(&source_prefix).map(str::to_string) else {
                    continue;
                };
                let Ok(ct) = CtKey::parse_any(&key) else { continue };
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
    }
    out.sort_by(|a, b| (&a.source, &a.key).cmp(&(&b.source, &b.key)));
    Ok(out)
}

/// Archive prefixes to list: each known stream narrowed to the selected accounts,
/// regions and days; the whole source when the state container has nothing to say.
async fn prefixes(state: Option<&dyn BlobStore>, selection: &Selection, source: &str) -> Vec<String> {
    let whole = vec![format!("{source}/")];
    let Some(state) = state else { return whole };
    let docs = match state.list(&format!("watermarks/{source}/")).await {
        Ok(d) if !d.is_empty() => d,
        _ => return whole,
    };
    let mut streams = BTreeSet::new();
    for d in docs {
        let Ok(Some((bytes, _))) = read_all(state, &d.name).await else {
            return whole;
        };
        let Ok(doc) = serde_json::from_slice::<WatermarkDoc>(&bytes) else {
            return whole;
        };
        streams.extend(doc.streams.into_keys());
    }
    let mut out = Vec::new();
    for stream in streams {
        let Some((account, kind, region)) = stream_parts(&stream) else {
            return whole;
        };
        if !selection.accounts.is_empty() && !selection.accounts.contains(&account)
            || !selection.regions.is_empty() && !selection.regions.contains(&region)
            || !selection.digests && kind == FileKind::Digest.folder()
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
pub async fn archived_regions(state: &dyn BlobStore, sources: &[String]) -> Result<BTreeSet<String>, StorageError> {
    let mut regions = BTreeSet::new();
    for source in sources {
        for d in state.list(&format!("watermarks/{source}/")).await? {
            let Some((bytes, _)) = read_all(state, &d.name).await? else {
                continue;
            };
            let Ok(doc) = serde_json::from_slice::<WatermarkDoc>(&bytes) else {
                continue;
            };
            regions.extend(doc.streams.keys().filter_map(|s| stream_parts(s)).map(|(_, _, r)| r));
        }
    }
    Ok(regions)
}

/// (account, kind folder, region) of a stream prefix `[p/]AWSLogs/[o-org/]acct/Kind/region/`.
fn stream_parts(stream: &str) -> Option<(String, String, String)> {
    let at = if stream.starts_with("AWSLogs/") {
        0
    } else {
        stream.find("/AWSLogs/")? + 1
    };
    let parts: Vec<&str> = stream[at + "AWSLogs/".len()..].split('/').collect();
    let parts = if parts.first()?.starts_with("o-") {
        &parts[1..]
    } else {
        &parts[..]
    };
    Some((
        parts.first()?.to_string(),
        parts.get(1)?.to_string(),
        parts.get(2)?.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_parts_handle_prefixes_and_organizations() {
        assert_eq!(
            stream_parts("p/q/AWSLogs/o-abc/111122223333/CloudTrail-Digest/eu-west-1/"),
            Some(("111122223333".into(), "CloudTrail-Digest".into(), "eu-west-1".into()))
        );
        assert_eq!(
            stream_parts("AWSLogs/111122223333/CloudTrail/us-east-1/"),
            Some(("111122223333".into(), "CloudTrail".into(), "us-east-1".into()))
        );
        assert_eq!(stream_parts("elsewhere/"), None);
    }
}
