//! A fault-injecting TCP proxy on loopback (after the truncating and byte-flipping
//! backends of restic and rclone). It sits between trailvault and an emulator and
//! acts on a marker byte string in the traffic, so only the chosen object is hit. It also
//! keeps a copy of the traffic (up to a cap) so a test can read what was sent: the
//! credentials on each request, an STS answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Pass,
    /// Flip one bit of the first byte of `marker` in responses (server -> client).
    FlipResponse(Vec<u8>),
    /// Forward responses up to `marker`, then drop the connection.
    TruncateResponse(Vec<u8>),
    /// Flip one bit of the first byte of `marker` in requests (client -> server).
    FlipRequest(Vec<u8>),
    /// Wait this long before forwarding each chunk from the server.
    SlowResponses(Duration),
}

pub struct Proxy {
    pub port: u16,
    fault: Arc<Mutex<Fault>>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Counters {
    get_objects: AtomicUsize,
    faults_applied: AtomicUsize,
    requests: Mutex<Vec<u8>>,
    responses: Mutex<Vec<u8>>,
}

/// Traffic kept per direction, at most.
const RECORD_CAP: usize = 32 << 20;

fn record(into: &Mutex<Vec<u8>>, bytes: &[u8]) {
    let mut v = into.lock().unwrap();
    let room = RECORD_CAP.saturating_sub(v.len());
    v.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl Proxy {
    pub async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let counters = Arc::new(Counters::default());
        let (f, c) = (fault.clone(), counters.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (f, c) = (f.clone(), c.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await {
                        relay(client, server, f, c).await;
                    }
                });
            }
        });
        Proxy {
            port,
            fault,
            counters,
            task,
        }
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// S3 GetObject requests seen (the Rust SDK tags them `x-id=GetObject`).
    pub fn get_objects(&self) -> usize {
        self.counters.get_objects.load(Ordering::SeqCst)
    }

    pub fn faults_applied(&self) -> usize {
        self.counters.faults_applied.load(Ordering::SeqCst)
    }

    /// Everything clients sent through the proxy so far (as text, lossy).
    pub fn requests_text(&self) -> String {
        self.requests_since(0)
    }

    /// Everything the upstream answered so far (as text, lossy).
    pub fn responses_text(&self) -> String {
        self.responses_since(0)
    }

    /// Bytes recorded so far in each direction (requests, responses): marks for `*_since`.
    pub fn recorded(&self) -> (usize, usize) {
        (
            self.counters.requests.lock().unwrap().len(),
            self.counters.responses.lock().unwrap().len(),
        )
    }

    pub fn requests_since(&self, offset: usize) -> String {
        let v = self.counters.requests.lock().unwrap();
        String::from_utf8_lossy(&v[offset.min(v.len())..]).into_owned()
    }

    pub fn responses_since(&self, offset: usize) -> String {
        let v = self.counters.responses.lock().unwrap();
        String::from_utf8_lossy(&v[offset.min(v.len())..]).into_owned()
    }

    /// The access key id of every SigV4-signed request (`Credential=AKID/date/...`).
    pub fn signing_keys(&self) -> Vec<String> {
        let text = self.requests_text();
        text.match_indices("Credential=")
            .map(|(i, m)| {
                text[i + m.len()..]
                    .chars()
                    .take_while(|c| *c != '/')
                    .collect::<String>()
            })
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Finds `marker` across chunk boundaries; `carry` holds the tail of the previous chunk.
fn find_marker(carry: &[u8], chunk: &[u8], marker: &[u8]) -> Option<usize> {
    if marker.is_empty() {
        return None;
    }
    let mut joined = carry.to_vec();
    joined.extend_from_slice(chunk);
    joined
        .windows(marker.len())
        .position(|w| w == marker)
        .and_then(|i| i.checked_sub(carry.len()).or(Some(0)))
}

async fn relay(client: TcpStream, server: TcpStream, fault: Arc<Mutex<Fault>>, counters: Arc<Counters>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (f1, c1) = (fault.clone(), counters.clone());
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &mut buf[..n];
            record(&c1.requests, chunk);
            c1.get_objects
                .fetch_add(count(&carry, chunk, b"x-id=GetObject"), Ordering::SeqCst);
            let current = f1.lock().unwrap().clone();
            if let Fault::FlipRequest(marker) = &current {
                if let Some(i) = find_marker(&carry, chunk, marker) {
                    chunk[i] ^= 0x01;
                    c1.faults_applied.fetch_add(1, Ordering::SeqCst);
                }
            }
            carry = chunk[chunk.len().saturating_sub(64)..].to_vec();
            if sw.write_all(chunk).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let downstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &mut buf[..n];
            record(&counters.responses, chunk);
            let current = fault.lock().unwrap().clone();
            match &current {
                Fault::FlipResponse(marker) => {
                    if let Some(i) = find_marker(&carry, chunk, marker) {
                        chunk[i] ^= 0x01;
                        counters.faults_applied.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Fault::TruncateResponse(marker) => {
                    if let Some(i) = find_marker(&carry, chunk, marker) {
                        counters.faults_applied.fetch_add(1, Ordering::SeqCst);
                        let _ = cw.write_all(&chunk[..i]).await;
                        break;
                    }
                }
                Fault::SlowResponses(d) => tokio::time::sleep(*d).await,
                _ => {}
            }
            carry = chunk[chunk.len().saturating_sub(64)..].to_vec();
            if cw.write_all(chunk).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    // Either side closing ends the pair: a truncated response must not be followed by more bytes.
    tokio::select! {
        _ = upstream => {},
        _ = downstream => {},
    }
}

fn count(carry: &[u8], chunk: &[u8], needle: &[u8]) -> usize {
    let mut joined = carry.to_vec();
    joined.extend_from_slice(chunk);
    let in_carry = carry.windows(needle.len()).filter(|w| *w == needle).count();
    joined.windows(needle.len()).filter(|w| *w == needle).count() - in_carry
}
