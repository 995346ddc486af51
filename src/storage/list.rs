//! Listings as streams. A store answers one page per request (`list_page`), so the
//! decorators — retry, count, limit — see a listing as the requests it really is: a
//! throttled third page is retried alone, not the whole listing. The stream of items a
//! caller walks is built here, once, on extension traits, so no implementation writes
//! its own paging loop and no caller holds a whole listing it does not need.

use std::future::Future;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::{BlobInfo, BlobStore, ErrorKind, Source, SourceObject, StorageError, StorageResult};

/// Where the next page of a listing starts: the service's continuation token (S3's
/// `ContinuationToken`, Azure's `NextMarker`), opaque to everything above the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageToken(String);

impl PageToken {
    /// `None` for an absent or empty token: Azure ends a listing with `<NextMarker />`.
    pub fn from_service(token: Option<String>) -> Option<PageToken> {
        token.filter(|t| !t.is_empty()).map(PageToken)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of a listing, in key order, and where the next one starts.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<PageToken>,
}

impl<T> Page<T> {
    pub fn last(items: Vec<T>) -> Self {
        Page { items, next: None }
    }
}

/// Items of a listing, fetched a page at a time as the caller walks them.
pub type ListStream<'a, T> = BoxStream<'a, StorageResult<T>>;

/// Environment: the most pages one listing may take (default [`DEFAULT_MAX_PAGES`]).
pub const ENV_MAX_PAGES: &str = "TRAILVAULT_LIST_MAX_PAGES";
/// 100,000 pages: 100 million keys at S3's 1,000 a page, far beyond any CloudTrail stream
/// a run lists (about 110,000 keys a year per account, region and kind).
pub const DEFAULT_MAX_PAGES: u64 = 100_000;

/// The page budget of every listing: [`ENV_MAX_PAGES`] when set to a positive number.
pub fn max_pages() -> u64 {
    std::env::var(ENV_MAX_PAGES)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_PAGES)
}

/// The one loop guard every paged listing goes through (object and folder listings,
/// S3 and Azure): a listing that repeats a continuation token, or that has not ended
/// within its page budget, is an error, never a hang. Tokens seen are kept as 128-bit
/// digests, not as text, so a service handing out a fresh megabyte token per page
/// cannot grow memory beyond a few bytes a page.
pub struct ListGuard {
    operation: &'static str,
    target: String,
    seen: std::collections::HashSet<[u8; 16]>,
    pages: u64,
    max_pages: u64,
}

impl ListGuard {
    pub fn new(operation: &'static str, target: String) -> Self {
        Self::with_budget(operation, target, max_pages())
    }

    pub fn with_budget(operation: &'static str, target: String, max_pages: u64) -> Self {
        Self {
            operation,
            target,
            seen: std::collections::HashSet::new(),
            pages: 0,
            max_pages: max_pages.max(1),
        }
    }

    fn error(&self, message: String) -> StorageError {
        StorageError::new(ErrorKind::Other, self.operation, self.target.clone(), message)
    }

    /// Accounts for one page that ended with `next`: the token to ask with next, None when
    /// the listing is complete, or the listing error.
    pub fn next(&mut self, next: Option<PageToken>) -> StorageResult<Option<PageToken>> {
        self.pages += 1;
        let Some(token) = next else { return Ok(None) };
        let digest = {
            use sha2::Digest;
            let full = sha2::Sha256::digest(token.as_str().as_bytes());
            let mut d = [0u8; 16];
            d.copy_from_slice(&full[..16]);
            d
        };
        if !self.seen.insert(digest) {
            return Err(self.error(
                "the service returned a continuation token it gave before; the listing would never end".into(),
            ));
        }
        if self.pages >= self.max_pages {
            return Err(self.error(format!(
                "the listing did not end within its budget of {} pages (set {ENV_MAX_PAGES} for a larger one)",
                self.max_pages
            )));
        }
        Ok(Some(token))
    }
}

/// A continuation token as a service sent it, refused when it is longer than `limit`
/// (the service's own): a longer one is not the service's, and sending it back would
/// build a URL the HTTP stack cannot hold.
pub fn checked_token(
    token: Option<String>,
    limit: usize,
    operation: &'static str,
    target: &str,
) -> StorageResult<Option<PageToken>> {
    match PageToken::from_service(token) {
        Some(t) if t.as_str().len() > limit => Err(StorageError::new(
            ErrorKind::Other,
            operation,
            target,
            format!(
                "the service returned a continuation token of {} bytes, longer than its limit of {limit}",
                t.as_str().len()
            ),
        )),
        t => Ok(t),
    }
}

/// Walks pages from `fetch` until one has no continuation, through a [`ListGuard`].
fn paged<'a, T, F, Fut>(operation: &'static str, target: String, fetch: F) -> ListStream<'a, T>
where
    T: Send + 'a,
    F: Fn(Option<PageToken>) -> Fut + Send + 'a,
    Fut: Future<Output = StorageResult<Page<T>>> + Send + 'a,
{
    enum Next {
        First,
        After(PageToken),
        Done,
    }
    let start = (Next::First, ListGuard::new(operation, target));
    let pages = stream::try_unfold(start, move |(next, mut guard)| {
        let request = match next {
            Next::First => Some(fetch(None)),
            Next::After(token) => Some(fetch(Some(token))),
            Next::Done => None,
        };
        async move {
            let Some(request) = request else { return Ok(None) };
            let page = request.await?;
            let next = match guard.next(page.next)? {
                Some(token) => Next::After(token),
                None => Next::Done,
            };
            Ok(Some((page.items, (next, guard))))
        }
    });
    pages
        .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// A listing entry outside the prefix asked for is a listing error: a hostile or broken
/// service could otherwise slip another account's key into a stream (and move its
/// watermark), or make a reader trust a name it never asked for.
fn within_prefix(name: &str, prefix: &str, target: &str) -> StorageResult<()> {
    if name.starts_with(prefix) {
        return Ok(());
    }
    let shown: String = name.chars().take(200).collect();
    Err(StorageError::new(
        ErrorKind::Other,
        "list",
        target,
        format!("the service listed {shown:?}, which is outside the prefix asked for; the listing cannot be trusted"),
    ))
}

/// Listing helpers every [`Source`] has.
pub trait SourceExt: Source {
    /// Every object under `prefix` whose key sorts after `start_after`, in key order.
    fn list<'a>(&'a self, prefix: &'a str, start_after: Option<&'a str>) -> ListStream<'a, SourceObject> {
        let target = format!("s3://{}/{prefix}", self.bucket());
        paged("list", target.clone(), move |token| {
            self.list_page(prefix, start_after, token)
        })
        .map(move |item| item.and_then(|o| within_prefix(o.key.as_str(), prefix, &target).map(|()| o)))
        .boxed()
    }
}

impl<S: Source + ?Sized> SourceExt for S {}

/// Listing helpers every [`BlobStore`] has.
pub trait BlobStoreExt: BlobStore {
    /// Every blob whose name starts with `prefix`, in name order.
    fn list<'a>(&'a self, prefix: &'a str) -> ListStream<'a, BlobInfo> {
        let target = format!("{}/{prefix}", self.describe());
        paged("list", target.clone(), move |token| self.list_page(prefix, token))
            .map(move |item| item.and_then(|b| within_prefix(b.name.as_str(), prefix, &target).map(|()| b)))
            .boxed()
    }

    /// The folders directly under `prefix` (accounts, regions: few), in name order.
    fn list_folders<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, StorageResult<Vec<String>>> {
        let target = format!("{}/{prefix}", self.describe());
        paged("list folders", target.clone(), move |token| {
            self.list_folders_page(prefix, token)
        })
        .map(move |item| item.and_then(|f| within_prefix(&f, prefix, &target).map(|()| f)))
        .try_collect()
        .boxed()
    }

    /// How many blobs are under `prefix`, without holding their list.
    fn count<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, StorageResult<u64>> {
        self.list(prefix)
            .try_fold(0u64, |n, _| async move { Ok(n + 1) })
            .boxed()
    }

    /// The whole listing, for the few callers that sort or index it.
    fn list_all<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, StorageResult<Vec<BlobInfo>>> {
        self.list(prefix).try_collect().boxed()
    }
}

impl<S: BlobStore + ?Sized> BlobStoreExt for S {}

/// Pages of at most `page_size` items from an ordered in-memory listing, continued after
/// the last name returned: how the in-memory stores page, so tests walk real continuations.
pub fn page_after<T>(items: impl Iterator<Item = (String, T)>, token: Option<&PageToken>, page_size: usize) -> Page<T> {
    let mut items = items.skip_while(|(name, _)| token.is_some_and(|t| name.as_str() <= t.as_str()));
    let page: Vec<(String, T)> = items.by_ref().take(page_size.max(1)).collect();
    let next = match (page.last(), items.next()) {
        (Some((last, _)), Some(_)) => Some(PageToken(last.clone())),
        _ => None,
    };
    Page {
        items: page.into_iter().map(|(_, item)| item).collect(),
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_listing_walks_every_page_in_order() {
        let names: Vec<String> = (0..7).map(|i| format!("n{i}")).collect();
        let calls = AtomicU32::new(0);
        let listed: Vec<String> = paged("list", "t".into(), |token| {
            calls.fetch_add(1, Ordering::Relaxed);
            let page = page_after(names.iter().map(|n| (n.clone(), n.clone())), token.as_ref(), 3);
            async move { Ok(page) }
        })
        .try_collect()
        .await
        .unwrap();
        assert_eq!(listed, names);
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn tokens_that_cycle_are_an_error_not_a_loop() {
        let result: StorageResult<Vec<u32>> = paged("list", "t".into(), |token| async move {
            let next = match token.as_ref().map(PageToken::as_str) {
                None | Some("b") => "a",
                Some(_) => "b",
            };
            Ok(Page {
                items: vec![1],
                next: Some(PageToken(next.into())),
            })
        })
        .try_collect()
        .await;
        assert!(result.unwrap_err().message.contains("continuation token"));
    }

    #[tokio::test]
    async fn a_token_handed_back_unchanged_is_an_error_not_a_loop() {
        let result: StorageResult<Vec<u32>> = paged("list", "t".into(), |_| async {
            Ok(Page {
                items: vec![1],
                next: Some(PageToken("same".into())),
            })
        })
        .try_collect()
        .await;
        let err = result.unwrap_err();
        assert!(err.message.contains("continuation token"), "{err}");
    }

    #[tokio::test]
    async fn a_failed_page_ends_the_listing_with_its_error() {
        let result: StorageResult<Vec<u32>> = paged("list", "t".into(), |token| async move {
            match token {
                None => Ok(Page {
                    items: vec![1, 2],
                    next: Some(PageToken("p2".into())),
                }),
                Some(_) => Err(StorageError::new(ErrorKind::Unavailable, "list", "t", "503")),
            }
        })
        .try_collect()
        .await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn a_fresh_token_on_every_page_ends_at_the_page_budget() {
        let mut guard = ListGuard::with_budget("list", "t".into(), 50);
        let mut err = None;
        for i in 0..1_000u32 {
            match guard.next(Some(PageToken(format!("{i}{}", "x".repeat(1000))))) {
                Ok(_) => {}
                Err(e) => {
                    err = Some((i, e));
                    break;
                }
            }
        }
        let (at, e) = err.expect("the budget ends the listing");
        assert_eq!(at, 49, "stopped at the 50th page");
        assert!(e.message.contains("budget of 50 pages"), "{e}");
        // 16-byte digests, one per page: not the 1 kB tokens.
        assert!(guard.seen.len() <= 50, "{}", guard.seen.len());
    }

    #[test]
    fn a_last_page_ends_the_guard_without_error() {
        let mut guard = ListGuard::with_budget("list", "t".into(), 1);
        assert_eq!(
            guard.next(None).unwrap(),
            None,
            "a one-page listing fits a budget of one"
        );
    }

    #[test]
    fn a_token_longer_than_the_limit_is_an_error() {
        assert!(checked_token(Some("a".repeat(1024)), 1024, "list", "t")
            .unwrap()
            .is_some());
        let e = checked_token(Some("a".repeat(1025)), 1024, "list", "t").unwrap_err();
        assert!(e.message.contains("longer than its limit"), "{e}");
        assert!(checked_token(Some(String::new()), 1, "list", "t").unwrap().is_none());
    }

    #[test]
    fn empty_service_tokens_end_a_listing() {
        assert_eq!(PageToken::from_service(Some(String::new())), None);
        assert_eq!(PageToken::from_service(None), None);
        assert!(PageToken::from_service(Some("x".into())).is_some());
    }

    #[test]
    fn in_memory_pages_continue_after_the_last_name() {
        let items = || ["a", "b", "c"].into_iter().map(|n| (n.to_string(), n));
        let first = page_after(items(), None, 2);
        assert_eq!(first.items, ["a", "b"]);
        let second = page_after(items(), first.next.as_ref(), 2);
        assert_eq!(second.items, ["c"]);
        assert!(second.next.is_none());
        let exact = page_after(items().take(2), None, 2);
        assert!(exact.next.is_none(), "a full last page has no continuation");
    }
}
