//! The command line as a script meets it: a closed stdout ends the output quietly and
//! the exit code still says what the command found; exit codes follow the error's kind.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

extern "C" {
    fn pipe(fds: *mut i32) -> i32;
}

/// A pipe whose read end is already closed: every write to it fails with EPIPE.
fn broken_pipe() -> OwnedFd {
    let mut fds = [0i32; 2];
    // SAFETY: `pipe` fills two new descriptors, each owned exactly once below.
    let rc = unsafe { pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe()");
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

fn example_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("trailvault.example.toml")
}

fn trailvault() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailvault"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["--log-format", "json", "--config"])
        .arg(example_config());
    cmd
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    for json in [true, false] {
        let mut cmd = trailvault();
        cmd.args(["config", "check"]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .stdout(Stdio::from(broken_pipe()))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("Broken pipe"), "{stderr}");
    }
}

#[test]
fn a_closed_stdout_keeps_an_error_code_and_says_nothing_about_the_pipe() {
    let out = Command::new(env!("CARGO_BIN_EXE_trailvault"))
        .args(["--config", "/nonexistent/trailvault.toml", "status", "--json"])
        .stdout(Stdio::from(broken_pipe()))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("stdout"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

/// `/dev/full`: every write fails with ENOSPC, as on a full disk.
fn full_disk() -> Stdio {
    Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap())
}

#[test]
fn output_that_cannot_be_written_is_a_failure_said_on_stderr() {
    for json in [true, false] {
        let mut cmd = trailvault();
        cmd.args(["config", "check"]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.stdout(full_disk()).stderr(Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "json {json}: {stderr}");
        assert!(stderr.contains("could not be written"), "json {json}: {stderr}");
        assert!(stderr.contains("No space left on device"), "json {json}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn output_that_cannot_be_written_keeps_a_more_serious_code() {
    // A configuration error (2) outranks the failed write of its error document (1).
    let out = Command::new(env!("CARGO_BIN_EXE_trailvault"))
        .args(["--config", "/nonexistent/trailvault.toml", "status", "--json"])
        .stdout(full_disk())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("could not be written"), "{stderr}");
}

#[test]
fn exit_codes_follow_the_kind_of_error() {
    // A missing config file: configuration, exit 2, with an {"error", "exit_code"} document.
    let out = Command::new(env!("CARGO_BIN_EXE_trailvault"))
        .args(["--config", "/nonexistent/trailvault.toml", "status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["exit_code"], 2);
    assert!(
        doc["error"].as_str().unwrap().contains("/nonexistent/trailvault.toml"),
        "{doc}"
    );

    // A bad flag value: usage, exit 2, before anything is touched.
    let out = trailvault()
        .args(["restore", "--to", "/tmp/x", "--account", "12345", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["error"].as_str().unwrap().contains("12 digits"), "{doc}");
}

/// Runs `cmd` to its end, or kills it after `limit` (a server that started by mistake).
fn output_within(cmd: &mut Command, limit: std::time::Duration) -> std::process::Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_listen_port_already_taken_is_a_failure_not_a_configuration_error() {
    // Held for the whole test: both servers must meet a port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let limit = std::time::Duration::from_secs(20);

    let out = output_within(trailvault().args(["daemon", "--listen", &addr.to_string()]), limit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&addr.to_string()), "{stderr}");

    let out = output_within(
        trailvault()
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", addr.port().to_string())
            .arg("functions"),
        limit,
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(&addr.to_string()), "{all}");

    // The host's variable that is not a port stays a configuration error.
    let out = output_within(
        trailvault()
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", "eighty")
            .arg("functions"),
        limit,
    );
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
