//! What trailvault's integration tests share, as a crate of its own (a dev-dependency of
//! the root package) rather than a module each test binary compiles again.
//!
//! Here: the emulator harness (a `World` is one Azurite, one moto, a bucket, a config
//! file, and helpers to seed, run the real binary and check with rclone). The CloudTrail
//! generator, a served process seen from outside, the storage contract, the fault proxy
//! and the SAML fixtures are modules.

pub mod ctgen;
pub mod daemon;
pub mod emulators;
pub mod proxy;
pub mod saml;
pub mod store_suite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use emulators::{Process, AZURITE_KEY};
use trailvault::config::AzureAuth;
use trailvault::secret::Secret;
use trailvault::storage::blob::AzureBlobStore;
use trailvault::storage::{BlobStore, BlobStoreExt, StateBlobStore};

pub const SOURCE: &str = "main";
pub const ARCHIVE: &str = "cloudtrail-archive";
pub const STATE: &str = "trailvault-state";

pub struct World {
    pub azurite: Process,
    pub moto: Process,
    pub dir: tempfile::TempDir,
    pub bucket: String,
    pub s3: aws_sdk_s3::Client,
    pub archive: Arc<dyn BlobStore>,
    pub state: Arc<dyn StateBlobStore>,
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `cmd` to its end and keeps what it said.
pub async fn output(cmd: &mut tokio::process::Command) -> Run {
    let out = cmd.output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn shared_key() -> AzureAuth {
    AzureAuth::SharedKey {
        account: emulators::AZURITE_ACCOUNT.into(),
        key: Secret::new(AZURITE_KEY.into()),
    }
}

impl World {
    /// None when the emulators are missing outside CI (the test then returns early).
    pub async fn new(bucket: &str) -> Option<World> {
        let azurite = emulators::start_azurite()?;
        let moto = emulators::start_moto()?;
        let s3 = s3_client(moto.port);
        s3.create_bucket().bucket(bucket).send().await.expect("create bucket");
        let url = url::Url::parse(&blob_url(azurite.port)).unwrap();
        let archive: Arc<dyn BlobStore> =
            Arc::new(AzureBlobStore::open(&url, ARCHIVE, &shared_key(), std::time::Duration::from_secs(30)).unwrap());
        let state: Arc<dyn StateBlobStore> =
            Arc::new(AzureBlobStore::open(&url, STATE, &shared_key(), std::time::Duration::from_secs(30)).unwrap());
        Some(World {
            azurite,
            moto,
            dir: tempfile::tempdir().unwrap(),
            bucket: bucket.into(),
            s3,
            archive,
            state,
        })
    }

    pub fn blob_url(&self) -> String {
        blob_url(self.azurite.port)
    }

    pub fn s3_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto.port)
    }

    /// A contract config: one source on `s3_port` (moto, or a proxy in front of it).
    pub fn config(&self, s3_port: u16, prefix: &str, extra: &str) -> PathBuf {
        self.config_with_target(s3_port, prefix, &self.blob_url(), "shared-key", extra)
    }

    pub fn config_with_target(
        &self,
        s3_port: u16,
        prefix: &str,
        account_url: &str,
        auth: &str,
        extra: &str,
    ) -> PathBuf {
        let text = format!(
            r#"
[[source]]
name = "{SOURCE}"
bucket = "{bucket}"
region = "us-east-1"
prefix = "{prefix}"
endpoint = "http://127.0.0.1:{s3_port}"

[target]
account_url = "{account_url}"
container = "{ARCHIVE}"
state_container = "{STATE}"
auth = "{auth}"
create_containers = true

{extra}
"#,
            bucket = self.bucket
        );
        let path = self
            .dir
            .path()
            .join(format!("trailvault-{}.toml", rand::random::<u32>()));
        std::fs::write(&path, text).unwrap();
        path
    }

    pub async fn seed(&self, files: &[ctgen::GenFile]) {
        for f in files {
            self.put(&f.key, f.body.clone(), &f.metadata).await;
        }
    }

    pub async fn put(&self, key: &str, body: Vec<u8>, metadata: &BTreeMap<String, String>) {
        let mut req = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .content_encoding("gzip")
            .body(ByteStream::from(body));
        for (k, v) in metadata {
            req = req.metadata(k, v);
        }
        req.send().await.unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    pub async fn delete(&self, key: &str) {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }

    /// Uploads `body` in parts of `part` bytes, so the ETag is `md5-of-md5s-N`, not an MD5.
    pub async fn put_multipart(&self, key: &str, body: &[u8], part: usize) -> String {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let up = self
            .s3
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap().to_string();
        let mut parts = Vec::new();
        for (i, chunk) in body.chunks(part).enumerate() {
            let n = i as i32 + 1;
            let r = self
                .s3
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await
                .unwrap();
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(r.e_tag().unwrap())
                    .build(),
            );
        }
        let done = self
            .s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .unwrap();
        done.e_tag().unwrap().trim_matches('"').to_string()
    }

    pub fn command(&self, config: &PathBuf, args: &[&str]) -> tokio::process::Command {
        self.command_under(&[], config, args)
    }

    /// The binary started by `wrapper` (for example `unshare --pid --fork`, so that it is
    /// PID 1 of a new PID namespace, as in a container).
    pub fn command_under(&self, wrapper: &[&str], config: &PathBuf, args: &[&str]) -> tokio::process::Command {
        let binary = binary();
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(rest).arg(binary);
                c
            }
            None => tokio::process::Command::new(binary),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("TRAILVAULT_AZURE_ACCOUNT_KEY", AZURITE_KEY)
            .env("TRAILVAULT_AZURE_MAX_RETRIES", "1")
            .env("AWS_MAX_ATTEMPTS", "2")
            .arg("--config")
            .arg(config)
            .arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, config: &PathBuf, args: &[&str]) -> Run {
        let run = output(&mut self.command(config, args)).await;
        if std::env::var("TRAILVAULT_TEST_VERBOSE").is_ok() {
            eprintln!(
                "--- trailvault {args:?} exit {}\n{}\n{}",
                run.code, run.stdout, run.stderr
            );
        }
        run
    }

    pub async fn sync(&self, config: &PathBuf) -> Run {
        self.run(config, &["sync", "--json"]).await
    }

    /// `restore --to <dir> --json` and `extra`.
    pub async fn restore_to(&self, config: &PathBuf, dir: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["restore", "--to", dir.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        self.run(config, &args).await
    }

    fn rclone_conf(&self) -> PathBuf {
        let path = self.dir.path().join("rclone.conf");
        std::fs::write(
            &path,
            format!(
                "[s3]\ntype = s3\nprovider = Other\naccess_key_id = test\nsecret_access_key = test\nregion = us-east-1\nendpoint = {}\nforce_path_style = true\n\n[azure]\ntype = azureblob\nuse_emulator = true\nendpoint = {}\n",
                self.s3_url(),
                self.blob_url()
            ),
        )
        .unwrap();
        path
    }

    /// `rclone check --one-way --download` of the bucket (or a prefix) against the
    /// archive: every source file present and byte-identical. Returns (ok, output).
    pub fn rclone_check(&self, prefix: &str) -> (bool, String) {
        let conf = self.rclone_conf();
        let src = format!("s3:{}/{}", self.bucket, prefix);
        let dst = format!("azure:{ARCHIVE}/{SOURCE}/{prefix}");
        let out = std::process::Command::new("rclone")
            .env_remove("AWS_CA_BUNDLE")
            .arg("--config")
            .arg(&conf)
            .args(["check", &src, &dst, "--one-way", "--download"])
            .output()
            .expect("rclone is not installed: run `make deps`");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Names of archived blobs under `{SOURCE}/`.
    /// The archived blob names of the test source; an error is the test's to judge.
    pub async fn archived(&self) -> trailvault::storage::StorageResult<Vec<String>> {
        Ok(self
            .archive
            .list_all(&format!("{SOURCE}/"))
            .await?
            .into_iter()
            .map(|b| b.name)
            .collect())
    }

    /// How many blobs are archived while a run is going: none while the run has not
    /// created the container yet; any other error fails the test.
    pub async fn archived_so_far(&self) -> usize {
        match self.archived().await {
            Ok(v) => v.len(),
            Err(e) if e.kind == trailvault::storage::ErrorKind::NotFound => 0,
            Err(e) => panic!("listing the archive: {e}"),
        }
    }

    /// Every run record in the state container, each as written: its records, the run's
    /// own first.
    pub async fn run_records(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for r in self.state.list_all("runs/").await.unwrap() {
            out.push(self.read_json(&r.name).await);
        }
        out
    }

    /// The records of run `run_id`.
    pub async fn run_record(&self, run_id: &str) -> serde_json::Value {
        self.read_json(&format!("runs/{run_id}.json")).await
    }

    async fn read_json(&self, name: &str) -> serde_json::Value {
        let (bytes, _) = trailvault::storage::read_all(self.state.as_ref(), name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no {name} in the state container"));
        serde_json::from_slice(&bytes).unwrap()
    }

    pub async fn archived_bytes(&self, key: &str) -> Vec<u8> {
        let (bytes, _) = trailvault::storage::read_all(self.archive.as_ref(), &format!("{SOURCE}/{key}"))
            .await
            .unwrap()
            .expect("blob exists");
        bytes.to_vec()
    }
}

/// Every file under `root`, relative, sorted; none when `root` does not exist.
pub fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// A Logs Ingestion client for a DCR that sends to a local server on `port` (with the
/// token `FixedToken` hands out) and is otherwise built with `options`.
pub fn logs_ingestion(port: u16, mut options: azure_core::http::ClientOptions) -> trailvault::monitor::LogsIngestion {
    options.transport = Some(azure_core::http::Transport::new(Arc::new(ToLoopback {
        port,
        inner: azure_core::http::new_http_client(None),
    })));
    let endpoint = url::Url::parse("https://trailvault-dce.westeurope-1.ingest.monitor.azure.com").unwrap();
    trailvault::monitor::LogsIngestion::new(
        &endpoint,
        "dcr-0123",
        "Custom-TrailVault_CL",
        Arc::new(FixedToken),
        options,
    )
    .unwrap()
}

/// The `trailvault` binary cargo built for the running test. This crate is compiled once,
/// not per test binary, so the path is looked up when the test runs: from the variable
/// cargo sets for it, or beside the test binary, where cargo puts both.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CARGO_BIN_EXE_trailvault") {
        return p.into();
    }
    let test = std::env::current_exe().unwrap();
    let dir = test
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let binary = dir.join("trailvault");
    assert!(
        binary.exists(),
        "no trailvault binary at {}: run through `cargo test`",
        binary.display()
    );
    binary
}

pub fn blob_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/{}", emulators::AZURITE_ACCOUNT)
}

pub fn s3_client(port: u16) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// An account SAS for Azurite, signed with the well-known key (services b, types sco).
pub fn account_sas(account: &str, key_b64: &str, permissions: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let key = base64::engine::general_purpose::STANDARD.decode(key_b64).unwrap();
    let start = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let expiry = (chrono::Utc::now() + chrono::Duration::hours(2))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let version = "2022-11-02";
    let to_sign = format!("{account}\n{permissions}\nb\nsco\n{start}\n{expiry}\n\nhttp,https\n{version}\n\n");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "sv={version}&ss=b&srt=sco&sp={permissions}&st={}&se={}&spr=http,https&sig={}",
        enc(&start),
        enc(&expiry),
        enc(&sig)
    )
}

/// How many committed blocks a blob has (1 block list of N, or 0 for a single Put Blob).
pub async fn committed_blocks(w: &World, name: &str) -> usize {
    use azure_storage_blob::models::BlockListType;
    use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
    use trailvault::storage::azure_auth::{client_auth, ClientAuth};
    let mut options = BlobContainerClientOptions::default();
    if let ClientAuth::Policy(p) = client_auth(&shared_key(), std::time::Duration::from_secs(30)).unwrap() {
        options.client_options.per_try_policies.push(p);
    }
    let url = url::Url::parse(&format!("{}/{ARCHIVE}", w.blob_url())).unwrap();
    let container = BlobContainerClient::new(url, None, Some(options)).unwrap();
    let list = container
        .blob_client(name)
        .block_blob_client()
        .get_block_list(BlockListType::Committed, None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    list.committed_blocks.map(|b| b.len()).unwrap_or(0)
}

#[async_trait::async_trait]
impl store_suite::Bucket for World {
    async fn put_object(&self, key: &str, body: Vec<u8>, metadata: BTreeMap<String, String>) {
        self.put(key, body, &metadata).await;
    }
}

/// A credential that hands out a fixed token, as Entra would.
#[derive(Debug)]
pub struct FixedToken;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for FixedToken {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        assert!(scopes.iter().all(|s| s.ends_with("/.default")), "{scopes:?}");
        Ok(azure_core::credentials::AccessToken::new(
            "test-token",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// Sends the (https) requests to a local http server: bearer tokens stay https-only in
/// the code under test, and the test still sees every request.
#[derive(Debug)]
pub struct ToLoopback {
    pub port: u16,
    pub inner: std::sync::Arc<dyn azure_core::http::HttpClient>,
}

#[async_trait::async_trait]
impl azure_core::http::HttpClient for ToLoopback {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<azure_core::http::AsyncRawResponse> {
        let mut r = request.clone();
        let url = r.url_mut();
        url.set_scheme("http").unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        self.inner.execute_request(&r).await
    }
}

/// Runs a command to its end and returns its output and its peak resident memory in
/// KiB, read from `/proc/{pid}/status` `VmHWM` (the kernel's high-water mark) while it
/// runs; the last reading before exit is the peak, give or take the final 20 ms.
pub async fn run_measured(mut cmd: tokio::process::Command) -> (std::process::Output, u64) {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id().unwrap();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (p, done) = (
        peak.clone(),
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let d = done.clone();
    let watcher = tokio::spawn(async move {
        while !d.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let hwm = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .unwrap_or(0);
                p.fetch_max(hwm, std::sync::atomic::Ordering::SeqCst);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let out = child.wait_with_output().await.unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watcher.await;
    (out, peak.load(std::sync::atomic::Ordering::SeqCst))
}
