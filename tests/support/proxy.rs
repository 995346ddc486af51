//! A fault-injecting TCP proxy on loopback (after the truncating and byte-flipping
//! backends of restic and rclone). It sits between trailvault and an emulator and
//! acts on a marker byte string in the traffic, so only the chosen object is hit. It
//! also keeps a copy of the relayed traffic (up to a cap) so a test can read what was
//! sent: the credentials on each request, an STS answer.

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
    storm: Arc<Mutex<Option<Storm>>>,
    injections: Arc<Mutex<Vec<Inject>>>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Counters {
    get_objects: AtomicUsize,
    faults_applied: AtomicUsize,
    /// How many more times the fault applies; `usize::MAX`: always.
    once_left: AtomicUsize,
    storm_errors: AtomicUsize,
    storm_resets: AtomicUsize,
    injected: AtomicUsize,
    requests: AtomicUsize,
    /// A copy of the relayed traffic (up to [`RECORD_CAP`] each way).
    sent: Mutex<Vec<u8>>,
    received: Mutex<Vec<u8>>,
}

/// Traffic kept per direction, at most.
const RECORD_CAP: usize = 32 << 20;

fn record(into: &Mutex<Vec<u8>>, bytes: &[u8]) {
    let mut v = into.lock().unwrap();
    let room = RECORD_CAP.saturating_sub(v.len());
    v.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl Counters {
    /// Whether a matched fault applies now (and counts it).
    fn take_fault(&self) -> bool {
        let taken = self
            .once_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                usize::MAX => Some(n),
                0 => None,
                n => Some(n - 1),
            })
            .is_ok();
        if taken {
            self.faults_applied.fetch_add(1, Ordering::SeqCst);
        }
        taken
    }
}

impl Proxy {
    pub async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let storm: Arc<Mutex<Option<Storm>>> = Arc::new(Mutex::new(None));
        let injections: Arc<Mutex<Vec<Inject>>> = Arc::new(Mutex::new(Vec::new()));
        let counters = Arc::new(Counters {
            once_left: AtomicUsize::new(usize::MAX),
            ..Default::default()
        });
        let (f, st, c, inj) = (fault.clone(), storm.clone(), counters.clone(), injections.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (f, c, inj) = (f.clone(), c.clone(), inj.clone());
                let storm = *st.lock().unwrap();
                let injecting = !inj.lock().unwrap().is_empty();
                tokio::spawn(async move {
                    match storm {
                        _ if injecting => inject_one(client, upstream_port, inj, f, c).await,
                        Some(storm) => storm_one(client, upstream_port, storm, f, c).await,
                        None => {
                            if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await {
                                relay(client, server, f, c, Vec::new()).await;
                            }
                        }
                    }
                });
            }
        });
        Proxy {
            port,
            fault,
            storm,
            injections,
            counters,
            task,
        }
    }

    pub fn set(&self, fault: Fault) {
        self.counters.once_left.store(usize::MAX, Ordering::SeqCst);
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
            self.counters.sent.lock().unwrap().len(),
            self.counters.received.lock().unwrap().len(),
        )
    }

    pub fn requests_since(&self, offset: usize) -> String {
        let v = self.counters.sent.lock().unwrap();
        String::from_utf8_lossy(&v[offset.min(v.len())..]).into_owned()
    }

    pub fn responses_since(&self, offset: usize) -> String {
        let v = self.counters.received.lock().unwrap();
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

/// Relays both ways, applying the current fault; `initial` goes to the server first
/// (a request head the proxy already read).
async fn relay(
    client: TcpStream,
    server: TcpStream,
    fault: Arc<Mutex<Fault>>,
    counters: Arc<Counters>,
    initial: Vec<u8>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (f1, c1) = (fault.clone(), counters.clone());
    let upstream = async move {
        record(&c1.sent, &initial);
        if !initial.is_empty() && sw.write_all(&initial).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &mut buf[..n];
            record(&c1.sent, chunk);
            c1.get_objects
                .fetch_add(count(&carry, chunk, b"x-id=GetObject"), Ordering::SeqCst);
            let current = f1.lock().unwrap().clone();
            if let Fault::FlipRequest(marker) = &current {
                if let Some(i) = find_marker(&carry, chunk, marker) {
                    if c1.take_fault() {
                        chunk[i] ^= 0x01;
                    }
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
            record(&counters.received, chunk);
            let current = fault.lock().unwrap().clone();
            match &current {
                Fault::FlipResponse(marker) => {
                    if let Some(i) = find_marker(&carry, chunk, marker) {
                        if counters.take_fault() {
                            chunk[i] ^= 0x01;
                        }
                    }
                }
                Fault::TruncateResponse(marker) => {
                    if let Some(i) = find_marker(&carry, chunk, marker) {
                        if counters.take_fault() {
                            let _ = cw.write_all(&chunk[..i]).await;
                            break;
                        }
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

/// Which service's error shape a storm answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    S3,
    Azure,
}

/// A storm: each request on its own connection (the proxy adds `Connection: close`),
/// and each one, by chance, answered 503/500/429 by the proxy itself, reset, or passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Storm {
    pub cloud: Cloud,
    /// Share of requests answered with an error status (Retry-After on 429 and 503).
    pub errors: f64,
    /// Share of connections reset (RST) before any answer.
    pub resets: f64,
    /// Only requests whose request line starts with this (`"PUT /devstoreaccount1/archive/"`)
    /// meet the storm; the rest pass.
    pub only: Option<&'static str>,
}

impl Proxy {
    /// Turns the storm on (`None`: off). Faults set with [`Proxy::set_once`] still apply
    /// to the requests the storm lets through.
    pub fn storm(&self, storm: Option<Storm>) {
        *self.storm.lock().unwrap() = storm;
    }

    /// Applies `fault` to the first `times` responses (or requests) it matches, then
    /// stops: a damaged first attempt that a retry must get past.
    pub fn set_once(&self, fault: Fault, times: usize) {
        self.counters.once_left.store(times, Ordering::SeqCst);
        *self.fault.lock().unwrap() = fault;
    }

    pub fn storm_errors(&self) -> usize {
        self.counters.storm_errors.load(Ordering::SeqCst)
    }

    pub fn storm_resets(&self) -> usize {
        self.counters.storm_resets.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request head (to `\r\n\r\n`); returns the bytes read so far and the head's end.
async fn read_head(client: &mut TcpStream) -> Option<(Vec<u8>, usize)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some((buf, i + 4));
        }
        if buf.len() > 256 * 1024 {
            return None;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The head with `Connection: close`, so the server ends the connection after its answer.
fn close_after(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    lines.join("\r\n") + "\r\n\r\n"
}

fn error_response(cloud: Cloud, n: usize) -> Vec<u8> {
    let (status, reason, s3_code, azure_code, retry_after) = match n % 3 {
        0 => (503, "Service Unavailable", "SlowDown", "ServerBusy", Some(1)),
        1 => (500, "Internal Server Error", "InternalError", "InternalError", None),
        _ => (429, "Too Many Requests", "SlowDown", "ServerBusy", Some(0)),
    };
    let code = match cloud {
        Cloud::S3 => s3_code,
        Cloud::Azure => azure_code,
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>storm from the test proxy</Message></Error>"
    );
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if cloud == Cloud::Azure {
        head.push_str(&format!("x-ms-error-code: {code}\r\n"));
    }
    if let Some(s) = retry_after {
        head.push_str(&format!("Retry-After: {s}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// One request of a storm: answered by the proxy, reset, or passed with the once-faults.
async fn storm_one(
    mut client: TcpStream,
    upstream_port: u16,
    storm: Storm,
    fault: Arc<Mutex<Fault>>,
    counters: Arc<Counters>,
) {
    let Some((buf, head_end)) = read_head(&mut client).await else {
        return;
    };
    counters.requests.fetch_add(1, Ordering::SeqCst);
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let spared = storm.only.is_some_and(|line| !head.starts_with(line));
    let roll: f64 = if spared { 1.0 } else { rand::random() };
    if roll < storm.resets {
        counters.storm_resets.fetch_add(1, Ordering::SeqCst);
        // A zero linger resets at once (RST); only a non-zero one blocks on drop.
        #[allow(deprecated)]
        let _ = client.set_linger(Some(Duration::ZERO));
        drop(client);
        return;
    }
    if roll < storm.resets + storm.errors {
        // Take the whole request first: an answer before the body is read is not what services do.
        let mut left = content_length(&head).saturating_sub(buf.len() - head_end);
        let mut sink = vec![0u8; 64 * 1024];
        while left > 0 {
            match client.read(&mut sink[..left.min(64 * 1024)]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left -= n,
            }
        }
        let n = counters.storm_errors.fetch_add(1, Ordering::SeqCst);
        let _ = client.write_all(&error_response(storm.cloud, n)).await;
        let _ = client.shutdown().await;
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    let mut first = close_after(&head).into_bytes();
    first.extend_from_slice(&buf[head_end..]);
    // The body's first bytes came with the head: a request fault applies to them too.
    let current = fault.lock().unwrap().clone();
    if let Fault::FlipRequest(marker) = &current {
        if let Some(i) = find_marker(&[], &first, marker) {
            if counters.take_fault() {
                first[i] ^= 0x01;
            }
        }
    }
    relay(client, server, fault, counters, first).await;
}

/// A scripted answer, given by the proxy itself, to requests whose head (request line and
/// headers) contains every string of `matches`: a status with headers and a body, after `delay`, for the
/// first `times` such requests. While any is set, each request goes on its own connection.
#[derive(Debug, Clone)]
pub struct Inject {
    pub matches: Vec<String>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
    /// How many requests it answers; `usize::MAX`: all.
    pub times: usize,
}

impl Inject {
    /// Azure's answer when it is busy (503 `ServerBusy`), with `header: value` asking for a wait.
    pub fn azure_busy(matches: &[&str], header: &str, value: &str, times: usize) -> Inject {
        Inject {
            matches: matches.iter().map(|m| m.to_string()).collect(),
            status: 503,
            headers: vec![
                ("x-ms-error-code".into(), "ServerBusy".into()),
                ("Content-Type".into(), "application/xml".into()),
                (header.into(), value.into()),
            ],
            body: "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>injected by the test proxy</Message></Error>".into(),
            delay: Duration::ZERO,
            times,
        }
    }
}

impl Proxy {
    /// Answers matching requests as the injections say (none: relay everything again).
    pub fn inject(&self, injections: Vec<Inject>) {
        *self.injections.lock().unwrap() = injections;
    }

    /// Requests answered by an injection so far.
    pub fn injected(&self) -> usize {
        self.counters.injected.load(Ordering::SeqCst)
    }
}

/// One request while injections are set: answered by the first matching injection with
/// answers left, else passed on (with `Connection: close`).
async fn inject_one(
    mut client: TcpStream,
    upstream_port: u16,
    injections: Arc<Mutex<Vec<Inject>>>,
    fault: Arc<Mutex<Fault>>,
    counters: Arc<Counters>,
) {
    let Some((buf, head_end)) = read_head(&mut client).await else {
        return;
    };
    counters.requests.fetch_add(1, Ordering::SeqCst);
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let chosen = {
        let mut all = injections.lock().unwrap();
        all.iter_mut()
            .find(|i| i.times > 0 && i.matches.iter().all(|m| head.contains(m.as_str())))
            .map(|i| {
                if i.times != usize::MAX {
                    i.times -= 1;
                }
                i.clone()
            })
    };
    if let Some(answer) = chosen {
        let mut left = content_length(&head).saturating_sub(buf.len() - head_end);
        let mut sink = vec![0u8; 64 * 1024];
        while left > 0 {
            match client.read(&mut sink[..left.min(64 * 1024)]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left -= n,
            }
        }
        counters.injected.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(answer.delay).await;
        let mut out = format!(
            "HTTP/1.1 {} Injected\r\nContent-Length: {}\r\nConnection: close\r\n",
            answer.status,
            answer.body.len()
        );
        for (k, v) in &answer.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&answer.body);
        let _ = client.write_all(out.as_bytes()).await;
        let _ = client.shutdown().await;
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    let mut first = close_after(&head).into_bytes();
    first.extend_from_slice(&buf[head_end..]);
    relay(client, server, fault, counters, first).await;
}
