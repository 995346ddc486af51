//! A served process (`trailvault daemon`, the Functions handler) seen from outside: started
//! until it says where it listens, asked over plain HTTP/1.1, its metrics read, signalled.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// What a loopback server answered; `code` is 0 when nothing answered (not listening yet,
/// or gone).
#[derive(Debug)]
pub struct Answer {
    pub code: u16,
    pub head: String,
    pub body: String,
}

/// Sends one request (`Connection: close` is added) and reads the whole answer.
async fn exchange(port: u16, method: &str, path: &str, headers: &str, body: &str) -> Answer {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return Answer {
            code: 0,
            head: String::new(),
            body: String::new(),
        };
    };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n{body}");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        code,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// `GET path`: the status and the body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let a = exchange(port, "GET", path, "", "").await;
    (a.code, a.body)
}

/// `GET path` with an `Authorization` header when one is given.
pub async fn http_get_authorized(port: u16, path: &str, authorization: Option<&str>) -> Answer {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    exchange(port, "GET", path, &auth, "").await
}

/// `POST path` of a JSON body as the Functions host sends it: the status and the body.
pub async fn http_post(port: u16, path: &str, body: &str) -> (u16, String) {
    let headers = format!(
        "Content-Type: application/json\r\nX-Azure-Functions-InvocationId: 6b1c\r\nContent-Length: {}\r\n",
        body.len()
    );
    let a = exchange(port, "POST", path, &headers, body).await;
    (a.code, a.body)
}

/// Polls `/metrics` until `pred` holds; the text that satisfied it.
pub async fn wait_for_metrics(port: u16, pred: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..600 {
        let (code, body) = http_get(port, "/metrics").await;
        if code == 200 && pred(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("metrics never matched:\n{last}");
}

/// The value of `series` (a metric name with its labels, as exposed) in a Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `kill -<signal> <pid>`, which must succeed.
pub fn kill(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// A daemon started with `--listen 127.0.0.1:0`: the port it chose, and its logs after it
/// said so, read all along so that it never blocks on a full pipe.
pub struct Daemon {
    pub child: tokio::process::Child,
    pub port: u16,
    logs: tokio::task::JoinHandle<String>,
}

impl Daemon {
    /// Spawns `cmd` (JSON logs on a piped stderr) and waits for its `listening` line.
    pub async fn start(cmd: &mut tokio::process::Command) -> Daemon {
        let mut child = cmd.spawn().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["message"] == "listening" {
                    let addr = v["addr"].as_str().unwrap();
                    return addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
                }
            }
            panic!("the daemon exited before listening");
        })
        .await
        .expect("the daemon did not report its address");
        let logs = tokio::spawn(async move {
            let mut all = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                all.push_str(&l);
                all.push('\n');
            }
            all
        });
        Daemon { child, port, logs }
    }

    pub fn signal(&self, signal: &str) {
        kill(self.child.id().expect("the daemon is running"), signal);
    }

    /// SIGTERM, then how it exited (within 30 s) and what it logged after `listening`.
    pub async fn stop(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the daemon did not stop after SIGTERM")
            .unwrap();
        (status, self.logs.await.unwrap())
    }
}

/// A loopback port free now, for a server that is told its port rather than choosing one
/// (the Functions handler, a daemon whose port is needed before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (10 s at most) for `GET /` to answer 200, as the Functions host waits for its
/// handler; whether it did.
pub async fn answers_get(port: u16) -> bool {
    for _ in 0..100 {
        if http_get(port, "/").await.0 == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
