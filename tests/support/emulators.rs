//! Starts Azurite and moto on free loopback ports, one pair per test, and stops them
//! by PID when dropped. Under CI (`CI=true`) a missing emulator fails the test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Azurite's published well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The repository: this crate lives at `tests/support` in it.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

fn tool(env_var: &str, default: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env_var) {
        return Some(PathBuf::from(p));
    }
    default.exists().then(|| default.to_path_buf())
}

pub fn azurite_bin() -> Option<PathBuf> {
    tool(
        "TRAILVAULT_AZURITE",
        &repo_root().join("tools/emulators/node_modules/.bin/azurite-blob"),
    )
}

pub fn moto_bin() -> Option<PathBuf> {
    tool("TRAILVAULT_MOTO", &repo_root().join(".tools/venv/bin/moto_server"))
}

/// Emulators are required under CI; elsewhere a test without them says why and returns.
pub fn require(what: &str, found: bool) -> bool {
    if found {
        return true;
    }
    let msg = format!("{what} is not installed: run `make deps` (CI installs it through .ci/run)");
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

pub struct Process {
    child: Child,
    pub port: u16,
    pub name: &'static str,
}

impl Process {
    /// Starts `cmd`, waits for a line containing `marker` followed by a port number.
    fn start(name: &'static str, mut cmd: Command, marker: &str) -> Process {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
                if let Ok(Some(status)) = child.try_wait() {
                    let _ = child.wait();
                    panic!("{name} exited with {status}: {}", seen.join("\n"));
                }
                continue;
            };
            if let Some(i) = line.find(marker) {
                let rest = &line[i + marker.len()..];
                let port: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                if let Ok(port) = port.parse() {
                    let p = Process { child, port, name };
                    p.wait_http();
                    return p;
                }
            }
            seen.push(line);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{name} did not report its port: {}", seen.join("\n"));
    }

    fn wait_http(&self) {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} does not accept connections on {}", self.name, self.port);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn start_azurite() -> Option<Process> {
    let bin = azurite_bin();
    if !require("Azurite (azurite-blob)", bin.is_some()) {
        return None;
    }
    let mut cmd = Command::new(bin.unwrap());
    cmd.args([
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        "0",
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--skipApiVersionCheck",
    ]);
    Some(Process::start(
        "azurite",
        cmd,
        "successfully listens on http://127.0.0.1:",
    ))
}

pub fn start_moto() -> Option<Process> {
    let bin = moto_bin();
    if !require("moto_server", bin.is_some()) {
        return None;
    }
    let mut cmd = Command::new(bin.unwrap());
    cmd.args(["-H", "127.0.0.1", "-p", "0"]);
    // Multipart parts may be small, so tests can make non-MD5 ETags cheaply.
    cmd.env("S3_UPLOAD_PART_MIN_SIZE", "1024");
    Some(Process::start("moto", cmd, "Running on http://127.0.0.1:"))
}
