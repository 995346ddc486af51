//! The daemon's HTTP server under load (contract v4, "Daemon under load"): at most
//! [`Limits::max_connections`] connections are held at once; one that has not sent a
//! complete request head within [`Limits::request_timeout`] is closed; and when the limit
//! is reached, the oldest connection that has not yet sent a request is closed to make
//! room, so slow or idle clients can never keep `/healthz` out.
//!
//! Each connection serves one request (no keep-alive): probes and scrapes reconnect, and
//! a connection never sits between requests holding a slot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Connections held now, oldest first.
#[derive(Default)]
struct Registry {
    conns: Mutex<BTreeMap<u64, Conn>>,
    ended: tokio::sync::Notify,
    next_id: AtomicU64,
}

struct Conn {
    /// A complete request head arrived: the connection is working, not waiting.
    requested: Arc<AtomicBool>,
    close: CancellationToken,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Conn>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Closes the oldest connection that has not sent a request (none when every held
    /// connection is serving one).
    fn evict_oldest_idle(&self) {
        let conns = self.lock();
        if let Some(c) = conns
            .values()
            .find(|c| !c.requested.load(Ordering::SeqCst) && !c.close.is_cancelled())
        {
            c.close.cancel();
        }
    }

    fn add(&self) -> (u64, Arc<AtomicBool>, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let requested = Arc::new(AtomicBool::new(false));
        let close = CancellationToken::new();
        self.lock().insert(
            id,
            Conn {
                requested: requested.clone(),
                close: close.clone(),
            },
        );
        (id, requested, close)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.ended.notify_waiters();
    }

    fn close_all(&self) {
        for c in self.lock().values() {
            c.close.cancel();
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in progress
/// finish (up to `limits.request_timeout`) and closes the rest.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // At the limit: make room by closing the oldest connection that has sent nothing
        // yet, or wait for one that is serving a request to end.
        while registry.len() >= limits.max_connections.max(1) {
            let ended = registry.ended.notified();
            registry.evict_oldest_idle();
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = &mut shutdown => return drain(registry, tasks, limits).await,
            }
        }
        let stream = tokio::select! {
            _ = &mut shutdown => return drain(registry, tasks, limits).await,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like pass; spinning on them would
                    // starve the connections being served.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (id, requested, close) = registry.add();
        let registry = registry.clone();
        let app = app.clone();
        tasks.spawn(async move {
            serve_one(stream, app, requested, close, limits.request_timeout).await;
            registry.remove(id);
        });
        // Reap finished tasks so the set does not grow with every connection ever served.
        while tasks.try_join_next().is_some() {}
    }
}

async fn serve_one(
    stream: tokio::net::TcpStream,
    app: Router,
    requested: Arc<AtomicBool>,
    close: CancellationToken,
    request_timeout: Duration,
) {
    let inner = TowerToHyperService::new(app);
    let flag = requested.clone();
    let service = hyper::service::service_fn(move |req| {
        flag.store(true, Ordering::SeqCst);
        hyper::service::Service::call(&inner, req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    // Our own bound as well as hyper's: hyper's header timer guards the head's bytes,
    // this one the connection as a whole until its request arrived.
    let no_request = async {
        tokio::time::sleep(request_timeout).await;
        if requested.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = conn => {}
        _ = close.cancelled() => {}
        _ = no_request => {}
    }
}

async fn drain(registry: Arc<Registry>, mut tasks: tokio::task::JoinSet<()>, limits: Limits) -> std::io::Result<()> {
    let _ = tokio::time::timeout(limits.request_timeout, async {
        // Connections that never sent a request are not waited for.
        registry.evict_all_idle();
        while tasks.join_next().await.is_some() {}
    })
    .await;
    registry.close_all();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

impl Registry {
    fn evict_all_idle(&self) {
        for c in self.lock().values() {
            if !c.requested.load(Ordering::SeqCst) {
                c.close.cancel();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(port: u16, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn silent_clients_neither_fill_the_server_nor_stay_beyond_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let limits = Limits {
            max_connections: 8,
            request_timeout: Duration::from_millis(500),
        };
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, app, limits, stop.clone().cancelled_owned()));
        // Twenty silent connections: more than the server holds.
        let mut silent = Vec::new();
        for _ in 0..20 {
            silent.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        let start = std::time::Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(1), get(port, "/healthz"))
            .await
            .expect("answered within 1 s");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
        assert!(start.elapsed() < Duration::from_secs(1));
        // A silent connection is closed by the server (read gives EOF) after the timeout.
        let mut last = silent.pop().unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(3), last.read(&mut buf))
            .await
            .expect("closed by the server")
            .unwrap_or(0);
        assert_eq!(n, 0);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(3), server)
            .await
            .expect("stops")
            .unwrap()
            .unwrap();
    }
}
