//! Strict TOML configuration, validated into typed structs before any network call.
//!
//! Raw structs mirror the file (`deny_unknown_fields` at every level); [`Config::load`]
//! turns them into checked values and reads secrets from the environment, so a
//! mistake is reported as exit 2 with nothing touched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::secret::Secret;

pub const ENV_AZURE_SAS: &str = "TRAILVAULT_AZURE_SAS";
pub const ENV_AZURE_ACCOUNT_KEY: &str = "TRAILVAULT_AZURE_ACCOUNT_KEY";

/// Staged-block size; also the largest object sent as a single Put Blob.
pub const BLOCK_SIZE: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}. Pass --config PATH or set TRAILVAULT_CONFIG")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "config file {path} is not valid TOML: {message}. Fix the file at that line (text values need quotes, like lookback = \"72h\"; each key once per table)"
    )]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}{}", list(.problems))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

/// One problem on the same line; several as a list, one a line.
fn list(problems: &[String]) -> String {
    match problems {
        [one] => format!(": {one}"),
        many => {
            const SHOWN: usize = 100;
            let mut out = format!(" has {} problems:", many.len());
            for p in many.iter().take(SHOWN) {
                out.push_str("\n  - ");
                out.push_str(p);
            }
            if many.len() > SHOWN {
                out.push_str(&format!("\n  - ... and {} more", many.len() - SHOWN));
            }
            out
        }
    }
}

impl crate::fault::Classify for ConfigError {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Config
    }
}

// ---------- the file as written ----------
//
// The text is parsed into a `toml::Table` first and then read field by field, so that
// one wrong type, bad value or unknown key does not hide the others: every problem is
// collected with its path and reported together.

struct RawConfig {
    source: Vec<RawSource>,
    target: Option<RawTarget>,
    sync: RawSync,
    schedule: RawSchedule,
    health: RawHealth,
    federation: Option<RawFederation>,
    log_analytics: Option<RawLogAnalytics>,
    aws: Option<RawAws>,
}

/// Required fields are `None` when absent or of the wrong type (already reported).
struct RawSource {
    name: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    prefix: String,
    endpoint: Option<String>,
    role_arn: Option<String>,
}

struct RawTarget {
    account_url: Option<String>,
    container: Option<String>,
    state_container: Option<String>,
    state_account_url: String,
    auth: Option<String>,
    managed_identity_client_id: String,
    create_containers: bool,
}

struct RawSync {
    concurrency: i64,
    max_requests: i64,
    in_flight_bytes: u64,
    lookback: Duration,
    max_gap: Duration,
    retries: i64,
    retry_max_delay: Duration,
}

/// Twice the default files in flight: every copy holds a read open while it writes.
pub const DEFAULT_MAX_REQUESTS: usize = 64;

fn default_retries() -> u32 {
    6
}
fn default_retry_max_delay() -> Duration {
    Duration::from_secs(30)
}

const DAY: u64 = 24 * 3600;
/// The longest duration any setting takes: ten years (longer values are typos, and some
/// overflow date arithmetic).
const LONGEST: Duration = Duration::from_secs(3650 * DAY);

struct RawSchedule {
    cron: String,
    timezone: String,
    verify_cron: String,
}

struct RawHealth {
    probe_timeout: Duration,
    degraded_after: i64,
    outage_after: i64,
}

struct RawFederation {
    idp_metadata: Option<String>,
    tenant_id: Option<String>,
    audiences: Vec<String>,
    role_mapping: Option<String>,
    allow_sha1: bool,
    clock_skew: Duration,
    trusted_issuers: Vec<String>,
}

fn default_audiences() -> Vec<String> {
    vec![
        "https://signin.aws.amazon.com/saml".into(),
        "urn:amazon:webservices".into(),
    ]
}

struct RawLogAnalytics {
    ingestion_endpoint: Option<String>,
    dcr_immutable_id: Option<String>,
    stream: Option<String>,
    workspace_id: String,
    auth: Option<String>,
}

struct RawAws {
    auth: Option<String>,
    role_arn: Option<String>,
    azure_credential: Option<String>,
    token_audience: Option<String>,
    session_name: Option<String>,
}

/// The audience Entra issues federation tokens for by default (AWS's OIDC provider
/// for the tenant lists it as its client ID).
pub const DEFAULT_TOKEN_AUDIENCE: &str = "api://AzureADTokenExchange";
pub const DEFAULT_SESSION_NAME: &str = "trailvault";

/// The problems found so far, shared by every reader.
#[derive(Default)]
struct Problems(std::cell::RefCell<Vec<String>>);

impl Problems {
    fn push(&self, problem: String) {
        self.0.borrow_mut().push(problem);
    }
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number with a fraction",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// A short, printable rendering of a value for messages (never the whole of a huge one).
fn shown(v: &toml::Value) -> String {
    let s = match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Table(_) => "{...}".into(),
        toml::Value::Array(a) => format!("[{} items]", a.len()),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

/// Reads one table of the file; keys nobody asked for are reported by [`Fields::finish`].
struct Fields<'a> {
    path: String,
    table: &'a toml::Table,
    known: Vec<&'static str>,
    problems: &'a Problems,
}

impl<'a> Fields<'a> {
    fn new(path: impl Into<String>, table: &'a toml::Table, problems: &'a Problems) -> Self {
        Self {
            path: path.into(),
            table,
            known: Vec::new(),
            problems,
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn value(&mut self, key: &'static str) -> Option<&'a toml::Value> {
        self.known.push(key);
        self.table.get(key)
    }

    fn wrong_type(&self, key: &str, v: &toml::Value, want: &str) {
        self.problems.push(format!(
            "{} must be {want}, got {} {}",
            self.at(key),
            type_name(v),
            shown(v)
        ));
    }

    fn missing(&self, key: &str, what: &str) {
        self.problems
            .push(format!("{} is missing: set it to {what}", self.at(key)));
    }

    /// A string, or None when absent or of another type (reported).
    fn opt_string(&mut self, key: &'static str) -> Option<String> {
        match self.value(key)? {
            toml::Value::String(s) => Some(s.clone()),
            v => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    fn string_or(&mut self, key: &'static str, default: &str) -> String {
        self.opt_string(key).unwrap_or_else(|| default.to_string())
    }

    /// A string the section cannot do without (`what` says what to write).
    fn required(&mut self, key: &'static str, what: &str) -> Option<String> {
        if self.table.get(key).is_none() {
            self.known.push(key);
            self.missing(key, what);
            return None;
        }
        self.opt_string(key)
    }

    fn integer(&mut self, key: &'static str, default: i64, range: std::ops::RangeInclusive<i64>, what: &str) -> i64 {
        match self.value(key) {
            None => default,
            Some(toml::Value::Integer(n)) if range.contains(n) => *n,
            Some(toml::Value::Integer(n)) => {
                self.problems.push(format!(
                    "{} = {n} is out of range: it must be between {} and {} ({what})",
                    self.at(key),
                    range.start(),
                    range.end()
                ));
                default
            }
            Some(v) => {
                self.wrong_type(key, v, &format!("a whole number ({what})"));
                default
            }
        }
    }

    fn boolean(&mut self, key: &'static str, default: bool) -> bool {
        match self.value(key) {
            None => default,
            Some(toml::Value::Boolean(b)) => *b,
            Some(v) => {
                self.wrong_type(key, v, "true or false");
                default
            }
        }
    }

    fn strings(&mut self, key: &'static str, default: Vec<String>) -> Vec<String> {
        match self.value(key) {
            None => default,
            Some(toml::Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        toml::Value::String(s) => out.push(s.clone()),
                        v => self.wrong_type(&format!("{key}[{i}]"), v, "a string"),
                    }
                }
                out
            }
            Some(v) => {
                self.wrong_type(key, v, "an array of strings");
                default
            }
        }
    }

    /// A humantime duration (`90s`, `30m`, `8h`) within `min..=max`.
    fn duration(&mut self, key: &'static str, default: Duration, min: Duration, max: Duration) -> Duration {
        let text = match self.value(key) {
            None => return default,
            Some(toml::Value::String(s)) => s,
            Some(v) => {
                self.wrong_type(key, v, "a duration string like \"90s\", \"30m\" or \"8h\"");
                return default;
            }
        };
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d >= min && d <= max => d,
            Ok(_) => {
                self.problems.push(format!(
                    "{} = {} is out of range: it must be between {} and {}",
                    self.at(key),
                    shown(&toml::Value::String(text.clone())),
                    show_duration(min),
                    show_duration(max)
                ));
                default
            }
            Err(e) => {
                self.problems.push(format!(
                    "{} = {} is not a duration ({e}): write it like \"90s\", \"30m\", \"8h\" or \"3days\"",
                    self.at(key),
                    shown(&toml::Value::String(text.clone()))
                ));
                default
            }
        }
    }

    /// A byte size: a string like `32MiB`, or a whole number of bytes, within `min..=max`.
    fn size(&mut self, key: &'static str, default: u64, min: u64, max: u64) -> u64 {
        let parsed = match self.value(key) {
            None => return default,
            Some(toml::Value::String(s)) => parse_bytes(s),
            Some(toml::Value::Integer(n)) => u64::try_from(*n).map_err(|_| format!("{n} is negative")),
            Some(v) => {
                self.wrong_type(key, v, "a size like \"32MiB\"");
                return default;
            }
        };
        match parsed {
            Ok(n) if (min..=max).contains(&n) => n,
            Ok(n) => {
                self.problems.push(format!(
                    "{} = {n} bytes is out of range: it must be between {} and {}",
                    self.at(key),
                    show_size(min),
                    show_size(max)
                ));
                default
            }
            Err(m) => {
                self.problems.push(format!("{}: {m}", self.at(key)));
                default
            }
        }
    }

    /// A sub-table, or None when absent or not a table (reported).
    fn table(&mut self, key: &'static str) -> Option<&'a toml::Table> {
        match self.value(key)? {
            toml::Value::Table(t) => Some(t),
            v => {
                self.wrong_type(key, v, &format!("a table (a [{key}] section)"));
                None
            }
        }
    }

    /// Every key of the table that no reader asked for is a problem of its own.
    fn finish(self) {
        for key in self.table.keys() {
            if self.known.contains(&key.as_str()) {
                continue;
            }
            let hint = self
                .known
                .iter()
                .filter(|k| similar(k, key))
                .map(|k| format!(" (did you mean `{}`?)", self.at(k)))
                .next()
                .unwrap_or_default();
            let place = if self.path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{}]", self.path)
            };
            self.problems.push(format!(
                "unknown key `{}` {place}{hint}: remove it; the keys allowed there are {}",
                self.at(key),
                self.known.join(", ")
            ));
        }
    }
}

/// A bound as a person writes it: `3650days`, `10m`, `100ms`.
fn show_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs >= DAY && secs.is_multiple_of(DAY) {
        format!("{}days", secs / DAY)
    } else {
        humantime::format_duration(d).to_string()
    }
}

fn show_size(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{}GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else {
        format!("{n}B")
    }
}

/// A likely misspelling: the same letters but for one edit, a swap of two, or a case change.
fn similar(known: &str, typed: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (known.chars().collect(), typed.to_lowercase().chars().collect());
    if a.len().abs_diff(b.len()) > 1 || b.len() > 64 {
        return false;
    }
    // Levenshtein distance, at most 2.
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

fn read_raw(doc: &toml::Table, problems: &Problems) -> RawConfig {
    let mut top = Fields::new("", doc, problems);

    let mut source = Vec::new();
    match top.value("source") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    toml::Value::Table(t) => source.push(read_source(&format!("source[{i}]"), t, problems)),
                    v => problems.push(format!(
                        "source[{i}] must be a table ([[source]] with name, bucket, region), got {} {}",
                        type_name(v),
                        shown(v)
                    )),
                }
            }
        }
        Some(toml::Value::Table(_)) => {
            problems.push("`source` must be an array of tables: write [[source]] (two brackets), not [source]".into())
        }
        Some(v) => top.wrong_type("source", v, "an array of [[source]] tables"),
    }

    let target = top.table("target").map(|t| {
        let mut f = Fields::new("target", t, problems);
        let raw = RawTarget {
            account_url: f.required(
                "account_url",
                "the storage account URL, like \"https://acct.blob.core.windows.net\"",
            ),
            container: f.required("container", "the archive container's name"),
            state_container: f.required("state_container", "the state container's name"),
            state_account_url: f.string_or("state_account_url", ""),
            auth: f.required(
                "auth",
                "one of managed-identity, workload-identity, client-secret, developer-tools, sas, shared-key",
            ),
            managed_identity_client_id: f.string_or("managed_identity_client_id", ""),
            create_containers: f.boolean("create_containers", false),
        };
        f.finish();
        raw
    });

    let empty = toml::Table::new();
    let sync = {
        let mut f = Fields::new("sync", top.table("sync").unwrap_or(&empty), problems);
        let raw = RawSync {
            concurrency: f.integer("concurrency", 32, 1..=1024, "files in flight"),
            max_requests: f.integer(
                "max_requests",
                DEFAULT_MAX_REQUESTS as i64,
                1..=4096,
                "requests in flight to each service",
            ),
            in_flight_bytes: f.size("in_flight_bytes", 32 << 20, BLOCK_SIZE, 64 << 30),
            lookback: f.duration("lookback", Duration::from_secs(72 * 3600), Duration::ZERO, LONGEST),
            max_gap: f.duration(
                "max_gap",
                Duration::from_secs(8 * 3600),
                Duration::from_secs(1),
                LONGEST,
            ),
            retries: f.integer(
                "retries",
                default_retries().into(),
                1..=20,
                "attempts per file, the first included",
            ),
            retry_max_delay: f.duration(
                "retry_max_delay",
                default_retry_max_delay(),
                Duration::from_millis(10),
                Duration::from_secs(600),
            ),
        };
        f.finish();
        raw
    };

    let schedule = {
        let mut f = Fields::new("schedule", top.table("schedule").unwrap_or(&empty), problems);
        let raw = RawSchedule {
            cron: f.string_or("cron", "0 0 */8 * * *"),
            timezone: f.string_or("timezone", "UTC"),
            verify_cron: f.string_or("verify_cron", "0 30 1 * * *"),
        };
        f.finish();
        raw
    };

    let health = {
        let mut f = Fields::new("health", top.table("health").unwrap_or(&empty), problems);
        let raw = RawHealth {
            probe_timeout: f.duration(
                "probe_timeout",
                Duration::from_secs(10),
                Duration::from_millis(100),
                Duration::from_secs(600),
            ),
            degraded_after: f.integer("degraded_after", 1, 1..=1000, "consecutive failed probes"),
            outage_after: f.integer("outage_after", 3, 1..=1000, "consecutive failed probes"),
        };
        f.finish();
        raw
    };

    let federation = top.table("federation").map(|t| {
        let mut f = Fields::new("federation", t, problems);
        let raw = RawFederation {
            idp_metadata: f.required("idp_metadata", "the Entra federation metadata (a file or an https URL)"),
            tenant_id: f.required("tenant_id", "the Entra tenant GUID"),
            audiences: f.strings("audiences", default_audiences()),
            role_mapping: f.required("role_mapping", "the role mapping file (roles.toml)"),
            allow_sha1: f.boolean("allow_sha1", false),
            clock_skew: f.duration(
                "clock_skew",
                Duration::from_secs(180),
                Duration::ZERO,
                Duration::from_secs(3600),
            ),
            trusted_issuers: f.strings("trusted_issuers", Vec::new()),
        };
        f.finish();
        raw
    });

    let log_analytics = top.table("log_analytics").map(|t| {
        let mut f = Fields::new("log_analytics", t, problems);
        let raw = RawLogAnalytics {
            ingestion_endpoint: f.required(
                "ingestion_endpoint",
                "the data collection endpoint, like \"https://NAME.REGION.ingest.monitor.azure.com\"",
            ),
            dcr_immutable_id: f.required("dcr_immutable_id", "the data collection rule's immutable ID (dcr-...)"),
            stream: f.required("stream", "the DCR's stream, like \"Custom-TrailVault_CL\""),
            workspace_id: f.string_or("workspace_id", ""),
            auth: f.opt_string("auth"),
        };
        f.finish();
        raw
    });
    let aws = top.table("aws").map(|t| {
        let mut f = Fields::new("aws", t, problems);
        let raw = RawAws {
            auth: f.opt_string("auth"),
            role_arn: f.opt_string("role_arn"),
            azure_credential: f.opt_string("azure_credential"),
            token_audience: f.opt_string("token_audience"),
            session_name: f.opt_string("session_name"),
        };
        f.finish();
        raw
    });
    top.finish();

    RawConfig {
        aws,
        source,
        target,
        sync,
        schedule,
        health,
        federation,
        log_analytics,
    }
}

fn read_source(at: &str, t: &toml::Table, problems: &Problems) -> RawSource {
    let mut f = Fields::new(at, t, problems);
    let raw = RawSource {
        name: f.required(
            "name",
            "a short name of [a-z0-9-] (the first segment of every archived blob)",
        ),
        bucket: f.required("bucket", "the S3 bucket the trail delivers to"),
        region: f.required("region", "the bucket's region, like \"us-east-1\""),
        prefix: f.string_or("prefix", ""),
        endpoint: f.opt_string("endpoint"),
        role_arn: f.opt_string("role_arn"),
    };
    f.finish();
    raw
}

// ---------- validated ----------

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub sources: Vec<SourceConfig>,
    pub target: Option<TargetConfig>,
    pub sync: SyncSettings,
    /// `[sync] retries` and `retry_max_delay`: one policy for every read and write.
    pub retry: RetrySettings,
    pub schedule: ScheduleConfig,
    pub health: HealthConfig,
    pub federation: Option<FederationConfig>,
    pub log_analytics: Option<LogAnalyticsConfig>,
    /// How AWS calls get credentials (`[aws]`; the SDK's default chain without it).
    pub aws: AwsAuth,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub bucket: String,
    pub region: String,
    /// The trail's key prefix without leading or trailing `/` (empty for none).
    pub prefix: String,
    pub endpoint: Option<Url>,
    /// The role this source's S3 is read with under `azure-federated` (`[aws] role_arn` when unset).
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub account_url: Url,
    pub container: String,
    pub state_container: String,
    pub state_account_url: Url,
    pub auth: AzureAuth,
    /// `sync` creates a missing archive or state container only when this is set.
    pub create_containers: bool,
}

/// How trailvault authenticates to Azure Storage. Secrets are read from the
/// environment at load time and wrapped so they cannot be printed.
#[derive(Debug, Clone, PartialEq)]
pub enum AzureAuth {
    ManagedIdentity {
        client_id: Option<String>,
    },
    WorkloadIdentity,
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Secret<String>,
    },
    DeveloperTools,
    Sas(Secret<String>),
    SharedKey {
        account: String,
        key: Secret<String>,
    },
}

impl AzureAuth {
    pub fn kind(&self) -> &'static str {
        match self {
            AzureAuth::ManagedIdentity { .. } => "managed-identity",
            AzureAuth::WorkloadIdentity => "workload-identity",
            AzureAuth::ClientSecret { .. } => "client-secret",
            AzureAuth::DeveloperTools => "developer-tools",
            AzureAuth::Sas(_) => "sas",
            AzureAuth::SharedKey { .. } => "shared-key",
        }
    }

    pub fn is_token(&self) -> bool {
        !matches!(self, AzureAuth::Sas(_) | AzureAuth::SharedKey { .. })
    }
}

/// An Entra app registration's client secret from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
/// `AZURE_CLIENT_SECRET` (secrets never come from the file); each missing one is a
/// problem worded by `missing`.
fn client_secret_from_env(env: &dyn Env, problems: &mut Vec<String>, missing: impl Fn(&str) -> String) -> AzureAuth {
    let mut get = |v: &str| {
        env.var(v).or_else(|| {
            problems.push(missing(v));
            None
        })
    };
    let (tenant, client, secret) = (
        get("AZURE_TENANT_ID"),
        get("AZURE_CLIENT_ID"),
        get("AZURE_CLIENT_SECRET"),
    );
    AzureAuth::ClientSecret {
        tenant_id: tenant.unwrap_or_default(),
        client_id: client.unwrap_or_default(),
        secret: Secret::new(secret.unwrap_or_default()),
    }
}

/// The Entra identity a setting names (`aws.azure_credential`, `log_analytics.auth`):
/// the target's own when it is the same kind (one managed identity, with its client id,
/// serves every use), else the kind built afresh, a client secret from the environment.
/// Unset means the target's, which must then be a token kind.
fn token_identity(
    setting: &str,
    kind: Option<String>,
    target: Option<&TargetConfig>,
    env: &dyn Env,
    problems: &mut Vec<String>,
) -> AzureAuth {
    const KINDS: &str = "managed-identity, workload-identity, client-secret, developer-tools";
    let kind = kind.or_else(|| target.filter(|t| t.auth.is_token()).map(|t| t.auth.kind().to_string()));
    let Some(kind) = kind else {
        problems.push(format!(
            "{setting} must name the Azure identity to use ({KINDS}): target.auth is not a token kind"
        ));
        return AzureAuth::ManagedIdentity { client_id: None };
    };
    if let Some(same) = target.map(|t| &t.auth).filter(|a| a.kind() == kind) {
        return same.clone();
    }
    match kind.as_str() {
        "managed-identity" => AzureAuth::ManagedIdentity { client_id: None },
        "workload-identity" => AzureAuth::WorkloadIdentity,
        "developer-tools" => AzureAuth::DeveloperTools,
        "client-secret" => client_secret_from_env(env, problems, |v| {
            format!("{setting} = \"client-secret\" needs the environment variable {v}")
        }),
        other => {
            problems.push(format!("{setting} {other:?} is not one of {KINDS}"));
            AzureAuth::ManagedIdentity { client_id: None }
        }
    }
}

/// How trailvault gets AWS credentials.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AwsAuth {
    /// The SDK's default chain: environment, profile (SSO, `credential_process`), web
    /// identity, ECS, IMDS.
    #[default]
    Default,
    /// An Entra token from an Azure credential, exchanged with STS
    /// `AssumeRoleWithWebIdentity` for short-lived role credentials: no AWS key stored.
    AzureFederated(AzureFederated),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AzureFederated {
    /// `[aws] role_arn`: the default role (sources may name their own; restore may too).
    pub role_arn: Option<String>,
    /// The Azure identity whose token is exchanged (a token kind).
    pub azure_credential: AzureAuth,
    /// The token's audience; the scope asked for is `{token_audience}/.default`.
    pub token_audience: String,
    pub session_name: String,
}

impl AzureFederated {
    pub fn scope(&self) -> String {
        format!("{}/.default", self.token_audience)
    }
}

impl Config {
    /// The role a source is read with under `azure-federated` (None with the default chain).
    pub fn source_role(&self, source: &SourceConfig) -> Option<String> {
        match &self.aws {
            AwsAuth::Default => None,
            AwsAuth::AzureFederated(f) => source.role_arn.clone().or_else(|| f.role_arn.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub concurrency: usize,
    /// Requests in flight to each service (the S3 bucket, the archive, the state
    /// container), whatever planning and copying fan out; lease calls excepted.
    pub max_requests: usize,
    pub in_flight_bytes: u64,
    pub lookback: Duration,
    pub max_gap: Duration,
}

/// Attempts per file or request (the first included) and the longest wait between two,
/// stacked on the SDKs' own per-request retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub attempts: u32,
    pub max_delay: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            attempts: default_retries(),
            max_delay: default_retry_max_delay(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub cron: String,
    pub timezone: String,
    pub verify_cron: String,
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub probe_timeout: Duration,
    pub degraded_after: u32,
    pub outage_after: u32,
}

#[derive(Debug, Clone)]
pub struct FederationConfig {
    pub idp_metadata: String,
    pub tenant_id: String,
    pub audiences: Vec<String>,
    pub role_mapping: PathBuf,
    pub allow_sha1: bool,
    pub clock_skew: Duration,
    /// `trusted_issuers`: further SAML issuers (IAM Identity Center, for example) whose
    /// sign-ins `saml audit` does not call `foreign_idp`.
    pub trusted_issuers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LogAnalyticsConfig {
    pub ingestion_endpoint: Url,
    pub dcr_immutable_id: String,
    pub stream: String,
    pub workspace_id: String,
    /// A token identity, resolved once like `aws.azure_credential`.
    pub auth: AzureAuth,
}

/// Where a command gets environment variables from; tests pass a map.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }
}

impl Config {
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path, env)
    }

    pub fn parse(text: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let read = Problems::default();
        let raw = read_raw(&doc, &read);
        let mut problems = read.0.into_inner();
        let config = validate(raw, path, base, env, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The `[target]` section, or an error naming the command that needs it.
    pub fn require_target(&self, command: &str) -> Result<&TargetConfig, ConfigError> {
        self.target.as_ref().ok_or_else(|| ConfigError::Invalid {
            path: self.path.clone(),
            problems: vec![format!("`{command}` needs a [target] section")],
        })
    }

    pub fn require_sources(&self, command: &str) -> Result<(), ConfigError> {
        if self.sources.is_empty() {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                problems: vec![format!("`{command}` needs at least one [[source]]")],
            });
        }
        Ok(())
    }
}

fn validate(raw: RawConfig, path: &Path, base: &Path, env: &dyn Env, problems: &mut Vec<String>) -> Config {
    let mut names = BTreeSet::new();
    let mut sources = Vec::new();
    for (i, s) in raw.source.into_iter().enumerate() {
        let at = match &s.name {
            Some(name) => format!("source[{i}] ({name})"),
            None => format!("source[{i}]"),
        };
        if let Some(name) = &s.name {
            if !is_source_name(name) {
                problems.push(format!(
                    "{at}: name {name:?} must be 1-63 characters of [a-z0-9-] (it is used in blob names)"
                ));
            }
            if !names.insert(name.clone()) {
                problems.push(format!(
                    "{at}: name is used by more than one source; give each a name of its own"
                ));
            }
        }
        if let (Some(bucket), Some(region)) = (&s.bucket, &s.region) {
            if let Some(why) = bucket_name_problem(bucket, region) {
                problems.push(format!("{at}: bucket {bucket:?} is not a valid S3 bucket name: {why}"));
            }
        }
        match s.region.as_deref() {
            Some("") => problems.push(format!(
                "{at}: region is empty: set the bucket's region, like \"us-east-1\""
            )),
            Some(region) if !is_region(region) => problems.push(format!(
                "{at}: region {region:?} is not an AWS region name (lowercase letters, digits and '-', like \"eu-west-1\")"
            )),
            _ => {}
        }
        let endpoint = s.endpoint.as_deref().filter(|e| !e.is_empty()).and_then(|e| {
            parse_http_url(e)
                .map_err(|m| problems.push(format!("{at}: endpoint {m}")))
                .ok()
        });
        let role_arn = s.role_arn.filter(|r| !r.is_empty());
        if let Some(r) = &role_arn {
            if !is_role_arn(r) {
                problems.push(format!(
                    "{at}: role_arn {r:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
                ));
            }
        }
        sources.push(SourceConfig {
            name: s.name.unwrap_or_default(),
            bucket: s.bucket.unwrap_or_default(),
            region: s.region.unwrap_or_default(),
            prefix: s.prefix.trim_matches('/').to_string(),
            endpoint,
            role_arn,
        });
    }

    let target = raw.target.and_then(|t| validate_target(t, env, problems));
    let aws = validate_aws(raw.aws, &sources, target.as_ref(), env, problems);

    // Sizes, counts and duration ranges were checked as they were read.
    for problem in check_schedule(&raw.schedule.cron, &raw.schedule.timezone, &raw.schedule.verify_cron) {
        problems.push(problem);
    }
    if raw.health.outage_after < raw.health.degraded_after {
        problems.push(format!(
            "health.outage_after = {} must be at least health.degraded_after = {} (an outage follows degradation)",
            raw.health.outage_after, raw.health.degraded_after
        ));
    }

    let federation = raw.federation.map(|f| {
        if f.audiences.is_empty() {
            problems.push("federation.audiences must name at least one audience".into());
        }
        for (i, a) in f.audiences.iter().enumerate() {
            if a.trim().is_empty() {
                problems.push(format!("federation.audiences[{i}] is empty: name an audience or remove it"));
            }
        }
        if let Some(tenant) = f.tenant_id.as_deref().filter(|t| !is_guid(t)) {
            problems.push(format!(
                "federation.tenant_id {tenant:?} must be the Entra tenant GUID (00000000-0000-0000-0000-000000000000)"
            ));
        }
        for (key, value) in [("idp_metadata", &f.idp_metadata), ("role_mapping", &f.role_mapping)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                problems.push(format!("federation.{key} is empty: name a file (relative to the config file) or, for idp_metadata, an https URL"));
            }
        }
        for (i, issuer) in f.trusted_issuers.iter().enumerate() {
            if issuer.is_empty() || issuer.len() > 1024 || issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push(format!(
                    "federation.trusted_issuers[{i}] {issuer:?} must be a SAML issuer exactly as the IdP sends it (1-1024 characters, no spaces), like \"https://portal.sso.us-east-1.amazonaws.com/saml/assertion/...\""
                ));
            }
        }
        let idp_metadata = f.idp_metadata.unwrap_or_default();
        FederationConfig {
            idp_metadata: if idp_metadata.starts_with("https://") {
                idp_metadata
            } else {
                base.join(&idp_metadata).to_string_lossy().into_owned()
            },
            tenant_id: f.tenant_id.unwrap_or_default(),
            audiences: f.audiences,
            role_mapping: base.join(f.role_mapping.unwrap_or_default()),
            allow_sha1: f.allow_sha1,
            clock_skew: f.clock_skew,
            trusted_issuers: f.trusted_issuers,
        }
    });

    let log_analytics = raw.log_analytics.and_then(|la| {
        let auth = token_identity("log_analytics.auth", la.auth, target.as_ref(), env, problems);
        if la.dcr_immutable_id.as_deref().is_some_and(|d| d.trim().is_empty()) {
            problems.push(
                "log_analytics.dcr_immutable_id is empty: set the data collection rule's immutable ID (dcr-...)".into(),
            );
        }
        if la.stream.as_deref().is_some_and(|d| d.trim().is_empty()) {
            problems.push("log_analytics.stream is empty: set the DCR's stream, like \"Custom-TrailVault_CL\"".into());
        }
        let endpoint = parse_http_url(la.ingestion_endpoint.as_deref()?)
            .map_err(|m| problems.push(format!("log_analytics.ingestion_endpoint {m}")))
            .ok()?;
        if endpoint.scheme() != "https" {
            problems
                .push("log_analytics.ingestion_endpoint must be https (bearer tokens are never sent over http)".into());
        }
        Some(LogAnalyticsConfig {
            ingestion_endpoint: endpoint,
            dcr_immutable_id: la.dcr_immutable_id.unwrap_or_default(),
            stream: la.stream.unwrap_or_default(),
            workspace_id: la.workspace_id,
            auth,
        })
    });

    Config {
        path: path.to_path_buf(),
        sources,
        target,
        sync: SyncSettings {
            concurrency: usize::try_from(raw.sync.concurrency.clamp(1, 1024)).unwrap_or(32),
            max_requests: usize::try_from(raw.sync.max_requests.clamp(1, 4096)).unwrap_or(DEFAULT_MAX_REQUESTS),
            in_flight_bytes: raw.sync.in_flight_bytes,
            lookback: raw.sync.lookback,
            max_gap: raw.sync.max_gap,
        },
        retry: RetrySettings {
            attempts: u32::try_from(raw.sync.retries.clamp(1, 20)).unwrap_or(6),
            max_delay: raw.sync.retry_max_delay,
        },
        schedule: ScheduleConfig {
            cron: raw.schedule.cron,
            timezone: raw.schedule.timezone,
            verify_cron: raw.schedule.verify_cron,
        },
        health: HealthConfig {
            probe_timeout: raw.health.probe_timeout,
            degraded_after: u32::try_from(raw.health.degraded_after.clamp(1, 1000)).unwrap_or(1),
            outage_after: u32::try_from(raw.health.outage_after.clamp(1, 1000)).unwrap_or(3),
        },
        federation,
        log_analytics,
        aws,
    }
}

/// `[aws]`: the default chain, or `azure-federated` with a role for every source and an
/// Azure token credential (named, or the target's when it is a token kind).
fn validate_aws(
    raw: Option<RawAws>,
    sources: &[SourceConfig],
    target: Option<&TargetConfig>,
    env: &dyn Env,
    problems: &mut Vec<String>,
) -> AwsAuth {
    let raw = raw.unwrap_or(RawAws {
        auth: None,
        role_arn: None,
        azure_credential: None,
        token_audience: None,
        session_name: None,
    });
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let role_arn = nonempty(raw.role_arn);
    match raw.auth.as_deref().unwrap_or("default") {
        "default" => {
            for (key, set) in [
                ("role_arn", role_arn.is_some()),
                ("azure_credential", raw.azure_credential.is_some()),
                ("token_audience", raw.token_audience.is_some()),
                ("session_name", raw.session_name.is_some()),
            ] {
                if set {
                    problems.push(format!(
                        "aws.{key} is used only with aws.auth = \"azure-federated\" (aws.auth is \"default\": the SDK's credential chain)"
                    ));
                }
            }
            for s in sources.iter().filter(|s| s.role_arn.is_some()) {
                problems.push(format!(
                    "source {}: role_arn needs [aws] auth = \"azure-federated\" (with the SDK's default chain, name the role in an AWS profile)",
                    s.name
                ));
            }
            AwsAuth::Default
        }
        "azure-federated" => {
            if let Some(r) = &role_arn {
                if !is_role_arn(r) {
                    problems.push(format!(
                        "aws.role_arn {r:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
                    ));
                }
            }
            for s in sources.iter().filter(|s| s.role_arn.is_none() && role_arn.is_none()) {
                problems.push(format!(
                    "source {}: no role to assume: set aws.role_arn or the source's role_arn",
                    s.name
                ));
            }
            let kind = raw.azure_credential;
            let azure_credential = token_identity("aws.azure_credential", kind, target, env, problems);
            let token_audience = nonempty(raw.token_audience)
                .map(|a| a.trim_end_matches("/.default").to_string())
                .unwrap_or_else(|| DEFAULT_TOKEN_AUDIENCE.to_string());
            if token_audience.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push(format!("aws.token_audience {token_audience:?} must not contain spaces"));
            }
            let session_name = nonempty(raw.session_name).unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string());
            if !is_session_name(&session_name) {
                problems.push(format!(
                    "aws.session_name {session_name:?} must be 2-64 characters of [A-Za-z0-9+=,.@_-]"
                ));
            }
            AwsAuth::AzureFederated(AzureFederated {
                role_arn,
                azure_credential,
                token_audience,
                session_name,
            })
        }
        other => {
            problems.push(format!(
                "aws.auth {other:?} is not one of \"default\" (the SDK's credential chain) or \"azure-federated\""
            ));
            AwsAuth::Default
        }
    }
}

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
pub fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return false;
    };
    let Some(name) = resource.strip_prefix("role/") else {
        return false;
    };
    *arn == "arn"
        && matches!(
            *partition,
            "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b" | "aws-iso-e" | "aws-iso-f" | "aws-eusc"
        )
        && *service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
        && !name.ends_with('/')
}

fn is_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn validate_target(t: RawTarget, env: &dyn Env, problems: &mut Vec<String>) -> Option<TargetConfig> {
    // Every check runs even when an earlier one failed, so that all problems show at once.
    let account_url = t.account_url.as_deref().and_then(|u| {
        parse_http_url(u)
            .map_err(|m| problems.push(format!("target.account_url {m}")))
            .ok()
    });
    let state_account_url = if t.state_account_url.is_empty() {
        account_url.clone()
    } else {
        parse_http_url(&t.state_account_url)
            .map_err(|m| problems.push(format!("target.state_account_url {m}")))
            .ok()
    };
    for (key, name) in [("container", &t.container), ("state_container", &t.state_container)] {
        if let Some(name) = name.as_deref().filter(|n| !is_container_name(n)) {
            problems.push(format!(
                "target.{key} {name:?} is not a valid container name (3-63 of [a-z0-9-], starting and ending with a letter or digit, no \"--\")"
            ));
        }
    }
    if t.container.is_some() && t.container == t.state_container && account_url == state_account_url {
        problems.push(
            "target.state_container must differ from target.container (the archive is write-once, state is mutable)"
                .into(),
        );
    }
    let kind = t.auth.clone()?;
    let missing = |var: &str| format!("target.auth = {kind:?} needs the environment variable {var}: set it");
    let auth = match kind.as_str() {
        "managed-identity" => AzureAuth::ManagedIdentity {
            client_id: Some(t.managed_identity_client_id.clone()).filter(|s| !s.is_empty()),
        },
        "workload-identity" => AzureAuth::WorkloadIdentity,
        "developer-tools" => AzureAuth::DeveloperTools,
        "client-secret" => client_secret_from_env(env, problems, missing),
        "sas" => {
            let sas = env.var(ENV_AZURE_SAS).unwrap_or_else(|| {
                problems.push(missing(ENV_AZURE_SAS));
                String::new()
            });
            AzureAuth::Sas(Secret::new(sas.trim_start_matches('?').to_string()))
        }
        "shared-key" => {
            let key = env.var(ENV_AZURE_ACCOUNT_KEY).unwrap_or_else(|| {
                problems.push(missing(ENV_AZURE_ACCOUNT_KEY));
                String::new()
            });
            if !key.is_empty() && base64_decodes(&key).is_none() {
                problems.push(format!(
                    "{ENV_AZURE_ACCOUNT_KEY} is not base64: copy the account key as the portal shows it"
                ));
            }
            let account = account_url.as_ref().and_then(account_name).unwrap_or_default();
            if account_url.is_some() && account.is_empty() {
                problems.push(
                    "target.account_url does not name a storage account: use https://ACCOUNT.blob.core.windows.net or http://HOST:PORT/ACCOUNT".into(),
                );
            }
            AzureAuth::SharedKey {
                account,
                key: Secret::new(key),
            }
        }
        other => {
            problems.push(format!(
                "target.auth {other:?} is not one of managed-identity, workload-identity, client-secret, developer-tools, sas, shared-key"
            ));
            return None;
        }
    };
    if auth.is_token() && account_url.as_ref().is_some_and(|u| u.scheme() != "https") {
        problems.push(format!(
            "target.auth = {:?} sends bearer tokens and needs an https account_url",
            auth.kind()
        ));
    }
    Some(TargetConfig {
        account_url: account_url?,
        container: t.container?,
        state_container: t.state_container?,
        state_account_url: state_account_url?,
        auth,
        create_containers: t.create_containers,
    })
}

/// Checks `[schedule]` as the daemon and the Functions timers read it: both expressions
/// with the daemon's own cron parser (seconds first), and a timezone the scheduler
/// supports. Every problem is returned; the daemon runs the same check before it starts.
pub fn check_schedule(cron: &str, timezone: &str, verify_cron: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, expr) in [("schedule.cron", cron), ("schedule.verify_cron", verify_cron)] {
        if let Err(why) = parse_cron(expr) {
            problems.push(format!(
                "{key} = {expr:?} is not a cron expression the scheduler accepts ({why}): write six fields, seconds first, like \"0 0 */8 * * *\""
            ));
        }
    }
    if !timezone.eq_ignore_ascii_case("UTC") {
        problems.push(format!(
            "schedule.timezone = {timezone:?} is not supported: the daemon and Azure Functions schedule in UTC only; set timezone = \"UTC\" and write the cron in UTC"
        ));
    }
    problems
}

/// Parses a cron expression exactly as tokio-cron-scheduler does (croner, seconds
/// required, day-of-month and day-of-week both applying), and refuses one that never fires.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    if expr.len() > 256 {
        return Err("longer than 256 characters".into());
    }
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())?;
    let from = chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    cron.find_next_occurrence(&from, false)
        .map_err(|_| "it never fires".to_string())?;
    Ok(cron)
}

/// The storage account name: the first label of `acct.blob.core.windows.net`, or the
/// first path segment of an emulator URL (`http://127.0.0.1:10000/devstoreaccount1`).
pub fn account_name(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let first_segment = url.path_segments().and_then(|mut s| s.next()).filter(|s| !s.is_empty());
    if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
        first_segment.map(str::to_string)
    } else {
        host.split('.').next().map(str::to_string)
    }
}

fn parse_http_url(s: &str) -> Result<Url, String> {
    // A trailing slash on a path-style emulator URL makes the SDK build `//container`.
    let url = Url::parse(s.trim_end_matches('/')).map_err(|e| {
        format!("{s:?} is not a URL ({e}): write a full URL like \"https://host\" or \"http://127.0.0.1:PORT\"")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{s:?} must be an http:// or https:// URL"));
    }
    if url.query().is_some() {
        return Err(format!(
            "must not carry a query string (put a SAS in {ENV_AZURE_SAS}, never in the config file)"
        ));
    }
    Ok(url)
}

pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size like 32MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => {
            return Err(format!(
                "{s:?} has an unknown unit (use B, KiB, MiB, GiB, like \"32MiB\")"
            ))
        }
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

fn is_source_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_container_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Why `bucket` cannot be an S3 bucket name in `region`, if it cannot. Buckets created in
/// us-east-1 before March 2018 may have capitals and underscores and up to 255
/// characters; everywhere else (and for new buckets) the DNS-compatible rules hold.
pub fn bucket_name_problem(bucket: &str, region: &str) -> Option<String> {
    let strict = || {
        let b = bucket.as_bytes();
        if !(3..=63).contains(&b.len()) {
            return Some("it must be 3-63 characters long".to_string());
        }
        if !b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        {
            return Some("only lowercase letters, digits, '.' and '-' are allowed".into());
        }
        if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
            return Some("it must start and end with a letter or digit".into());
        }
        if bucket.contains("..") {
            return Some("two periods may not be adjacent".into());
        }
        if bucket.parse::<std::net::Ipv4Addr>().is_ok() {
            return Some("it must not look like an IP address".into());
        }
        None
    };
    let why = strict()?;
    if region == "us-east-1" {
        let legacy = (3..=255).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
        if legacy {
            return None;
        }
        return Some(format!(
            "{why}; a legacy us-east-1 bucket may also have capitals and '_' (3-255 characters of letters, digits, '.', '-', '_')"
        ));
    }
    Some(format!(
        "{why} (capitals and '_' are allowed only in legacy us-east-1 buckets); copy the name from the trail's settings"
    ))
}

/// An AWS region name (`us-east-1`, `us-gov-west-1`, `cn-north-1`) or an S3-compatible
/// store's name of the same shape.
fn is_region(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn base64_decodes(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn parse(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/trailvault/trailvault.toml"), env)
    }

    const MINIMAL: &str = r#"
[[source]]
name = "seoul"
bucket = "org-trail-logs"
region = "ap-northeast-2"

[target]
account_url = "http://127.0.0.1:10000/devstoreaccount1/"
container = "cloudtrail-archive"
state_container = "trailvault-state"
auth = "shared-key"
"#;

    #[test]
    fn minimal_config_gets_contract_defaults() {
        let c = parse(MINIMAL, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(c.sync.concurrency, 32);
        assert_eq!(c.sync.max_requests, 64);
        assert_eq!(c.sync.in_flight_bytes, 32 << 20);
        assert_eq!(c.sync.lookback, Duration::from_secs(72 * 3600));
        assert_eq!(c.sync.max_gap, Duration::from_secs(8 * 3600));
        let t = c.target.unwrap();
        assert_eq!(t.account_url.as_str(), "http://127.0.0.1:10000/devstoreaccount1");
        match t.auth {
            AzureAuth::SharedKey { account, .. } => assert_eq!(account, "devstoreaccount1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let text = MINIMAL.replace("region = \"ap-northeast-2\"", "region = \"x\"\nregoin = \"y\"");
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("regoin"), "{err}");
    }

    #[test]
    fn create_containers_defaults_to_false_and_must_be_a_boolean() {
        let c = parse(MINIMAL, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert!(!c.target.unwrap().create_containers);
        let text = MINIMAL.replace(
            "auth = \"shared-key\"",
            "auth = \"shared-key\"\ncreate_containers = true",
        );
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert!(c.target.unwrap().create_containers);
        let text = MINIMAL.replace(
            "auth = \"shared-key\"",
            "auth = \"shared-key\"\ncreate_containers = \"yes\"",
        );
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("create_containers"), "{err}");
    }

    #[test]
    fn missing_secret_is_named() {
        let err = parse(MINIMAL, &[]).unwrap_err().to_string();
        assert!(err.contains(ENV_AZURE_ACCOUNT_KEY), "{err}");
    }

    #[test]
    fn several_problems_are_reported_together() {
        let text = r#"
[[source]]
name = "Bad_Name"
bucket = "B"
region = ""
[[source]]
name = "Bad_Name"
bucket = "ok-bucket"
region = "us-east-1"
[target]
account_url = "https://acct.blob.core.windows.net?sv=1&sig=x"
container = "archive"
state_container = "state"
auth = "sas"
[sync]
in_flight_bytes = "1MiB"
concurrency = 0
"#;
        let err = parse(text, &[(ENV_AZURE_SAS, "sv=1&sig=SECRET")])
            .unwrap_err()
            .to_string();
        for needle in [
            "[a-z0-9-]",
            "more than one source",
            "bucket",
            "region",
            "query string",
            "4MiB",
            "concurrency",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
        assert!(!err.contains("SECRET"));
    }

    #[test]
    fn token_auth_needs_https() {
        let text = MINIMAL.replace("\"shared-key\"", "\"managed-identity\"");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("https"), "{err}");
    }

    #[test]
    fn log_analytics_needs_https_and_a_token_kind() {
        let text = format!(
            "{MINIMAL}\n[log_analytics]\ningestion_endpoint = \"http://x.ingest.monitor.azure.com\"\ndcr_immutable_id = \"dcr-1\"\nstream = \"Custom-TrailVault_CL\"\n"
        );
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("https"), "{err}");
        // shared-key is not a token kind, so log_analytics.auth must be named.
        assert!(err.contains("token kind"), "{err}");
    }

    #[test]
    fn log_analytics_auth_is_resolved_once_into_an_identity() {
        let la = "\n[log_analytics]\ningestion_endpoint = \"https://x.ingest.monitor.azure.com\"\ndcr_immutable_id = \"dcr-1\"\nstream = \"Custom-TrailVault_CL\"\n";
        // Unset: the target's identity, its client id included.
        let mi = MINIMAL.replace(
            "auth = \"shared-key\"",
            "auth = \"managed-identity\"\nmanaged_identity_client_id = \"11111111-2222-3333-4444-555555555555\"",
        );
        let mi = mi.replace(
            "http://127.0.0.1:10000/devstoreaccount1/",
            "https://acct.blob.core.windows.net/",
        );
        let c = parse(&format!("{mi}{la}"), &[]).unwrap();
        assert_eq!(
            c.log_analytics.unwrap().auth,
            AzureAuth::ManagedIdentity {
                client_id: Some("11111111-2222-3333-4444-555555555555".into())
            }
        );
        // Named: a client secret from the environment, each missing variable reported.
        let named = format!("{MINIMAL}{la}auth = \"client-secret\"\n");
        let err = parse(&named, &[(ENV_AZURE_ACCOUNT_KEY, KEY), ("AZURE_TENANT_ID", "t")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("log_analytics.auth = \"client-secret\" needs the environment variable AZURE_CLIENT_ID"),
            "{err}"
        );
        assert!(
            err.contains("AZURE_CLIENT_SECRET") && !err.contains("variable AZURE_TENANT_ID"),
            "{err}"
        );
        // Not a token kind, or empty: refused, naming the setting.
        for bad in ["sas", ""] {
            let text = format!("{MINIMAL}{la}auth = \"{bad}\"\n");
            let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("log_analytics.auth \"{bad}\" is not one of")),
                "{err}"
            );
            // The same for the other setting that names an identity: a blank (a template
            // that rendered nothing) is refused, not read as "the target's".
            let text = format!(
                "{MINIMAL}\n[aws]\nauth = \"azure-federated\"\nrole_arn = \"arn:aws:iam::111122223333:role/r\"\nazure_credential = \"{bad}\"\n"
            );
            let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("aws.azure_credential \"{bad}\" is not one of")),
                "{err}"
            );
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = parse(MINIMAL, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(&KEY[..20]), "{dbg}");
    }

    const FEDERATED: &str = "\n[aws]\nauth = \"azure-federated\"\nrole_arn = \"arn:aws:iam::111122223333:role/trailvault-reader\"\nazure_credential = \"managed-identity\"\n";

    #[test]
    fn no_aws_section_keeps_the_default_chain() {
        let c = parse(MINIMAL, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(c.aws, AwsAuth::Default);
        assert_eq!(c.source_role(&c.sources[0]), None);
    }

    #[test]
    fn azure_federated_gets_contract_defaults_and_per_source_roles() {
        let text = MINIMAL.replace(
            "region = \"ap-northeast-2\"",
            "region = \"ap-northeast-2\"\nrole_arn = \"arn:aws:iam::444455556666:role/path/seoul-reader\"",
        ) + "[[source]]\nname = \"other\"\nbucket = \"other-bucket\"\nregion = \"us-east-1\"\n"
            + FEDERATED;
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        let AwsAuth::AzureFederated(f) = &c.aws else {
            panic!("{:?}", c.aws)
        };
        assert_eq!(f.token_audience, DEFAULT_TOKEN_AUDIENCE);
        assert_eq!(f.scope(), "api://AzureADTokenExchange/.default");
        assert_eq!(f.session_name, "trailvault");
        assert_eq!(f.azure_credential, AzureAuth::ManagedIdentity { client_id: None });
        assert_eq!(
            c.source_role(&c.sources[0]).as_deref(),
            Some("arn:aws:iam::444455556666:role/path/seoul-reader")
        );
        assert_eq!(
            c.source_role(&c.sources[1]).as_deref(),
            Some("arn:aws:iam::111122223333:role/trailvault-reader")
        );
    }

    #[test]
    fn azure_federated_defaults_to_the_targets_token_identity() {
        let text = MINIMAL
            .replace("http://127.0.0.1:10000/devstoreaccount1/", "https://acct.blob.core.windows.net")
            .replace("\"shared-key\"", "\"managed-identity\"\nmanaged_identity_client_id = \"abc\"")
            + "\n[aws]\nauth = \"azure-federated\"\nrole_arn = \"arn:aws:iam::111122223333:role/r\"\ntoken_audience = \"api://custom/.default\"\n";
        let c = parse(&text, &[]).unwrap();
        let AwsAuth::AzureFederated(f) = &c.aws else {
            panic!("{:?}", c.aws)
        };
        assert_eq!(
            f.azure_credential,
            AzureAuth::ManagedIdentity {
                client_id: Some("abc".into())
            }
        );
        assert_eq!(f.scope(), "api://custom/.default");
    }

    #[test]
    fn aws_section_problems_are_named_before_any_network_call() {
        // shared-key target, no azure_credential, a bad ARN, a bad session name, an unknown key.
        let text = format!(
            "{MINIMAL}\n[aws]\nauth = \"azure-federated\"\nrole_arn = \"arn:aws:iam::1111:user/x\"\nsession_name = \"a b\"\n"
        );
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        for needle in ["aws.azure_credential", "aws.role_arn", "aws.session_name"] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
        let unknown = format!("{MINIMAL}\n[aws]\nauth = \"azure-federated\"\nrole = \"x\"\n");
        let err = parse(&unknown, &[(ENV_AZURE_ACCOUNT_KEY, KEY)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("role"), "{err}");
        let kind = format!("{MINIMAL}\n[aws]\nauth = \"keys\"\n");
        let err = parse(&kind, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("aws.auth"), "{err}");
        // No role for a source at all.
        let norole =
            format!("{MINIMAL}\n[aws]\nauth = \"azure-federated\"\nazure_credential = \"workload-identity\"\n");
        let err = parse(&norole, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("no role to assume"), "{err}");
        // client-secret needs its environment.
        let cs = format!("{MINIMAL}{}", FEDERATED.replace("managed-identity", "client-secret"));
        let err = parse(&cs, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(err.contains("AZURE_CLIENT_SECRET"), "{err}");
        // Federated-only keys and per-source roles are refused with the default chain.
        let dflt = MINIMAL.replace(
            "region = \"ap-northeast-2\"",
            "region = \"ap-northeast-2\"\nrole_arn = \"arn:aws:iam::111122223333:role/r\"",
        ) + "\n[aws]\nauth = \"default\"\ntoken_audience = \"x\"\n";
        let err = parse(&dflt, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(
            err.contains("aws.token_audience") && err.contains("role_arn needs"),
            "{err}"
        );
    }

    #[test]
    fn role_arns_are_checked() {
        assert!(is_role_arn("arn:aws:iam::111122223333:role/trailvault-reader"));
        assert!(is_role_arn("arn:aws-us-gov:iam::111122223333:role/a/b/c"));
        assert!(!is_role_arn("arn:aws:iam::111122223333:user/x"));
        assert!(!is_role_arn("arn:aws:iam:us-east-1:111122223333:role/x"));
        assert!(!is_role_arn("arn:aws:iam::11112222333:role/x"));
        assert!(!is_role_arn("arn:aws:iam::111122223333:role/"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_in_every_section_are_all_reported() {
        let text = r#"
colour = "blue"
[[source]]
name = "seoul"
bucket = "org-trail-logs"
region = "ap-northeast-2"
regoin = "x"
[target]
account_url = "http://127.0.0.1:10000/devstoreaccount1"
container = "cloudtrail-archive"
state_container = "trailvault-state"
auth = "shared-key"
contianer = "typo"
[sync]
concurrency = "lots"
lookback = "300000years"
max_gap = 8
in_flight_bytes = "32 parsecs"
retries = -1
[schedule]
cron = "a b c d e f"
timezone = "Mars/Olympus"
verify_cron = "0 30 1 * *"
[health]
probe_timeout = "10s"
degraded_after = 5
outage_after = 2
extra = true
[federation]
idp_metadata = "entra.xml"
tenant_id = "not-a-guid"
role_mapping = "roles.toml"
allow_sha1 = "no"
trusted_issuers = ["https://portal.sso.us-east-1.amazonaws.com/saml/assertion/X", 7]
"#;
        let p = problems(text);
        let all = p.join("\n");
        for needle in [
            "unknown key `colour`",
            "unknown key `source[0].regoin` in [source[0]] (did you mean `source[0].region`?)",
            "unknown key `target.contianer` in [target] (did you mean `target.container`?)",
            "sync.concurrency must be a whole number",
            "sync.lookback = \"300000years\" is out of range",
            "sync.max_gap must be a duration string",
            "sync.in_flight_bytes",
            "sync.retries = -1 is out of range",
            "schedule.cron = \"a b c d e f\"",
            "schedule.verify_cron = \"0 30 1 * *\"",
            "schedule.timezone = \"Mars/Olympus\" is not supported",
            "health.outage_after = 2 must be at least health.degraded_after = 5",
            "unknown key `health.extra`",
            "federation.tenant_id \"not-a-guid\"",
            "federation.allow_sha1 must be true or false",
            "federation.trusted_issuers[1] must be a string",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        assert_eq!(p.len(), 16, "{all}");
        // Each problem says what to do, not only what is wrong.
        for problem in &p {
            assert!(
                [": ", "must", "set ", "write", "remove"]
                    .iter()
                    .any(|w| problem.contains(w)),
                "{problem}"
            );
        }
        let shown = parse(text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(shown.contains("has 16 problems:\n  - "), "{shown}");
    }

    #[test]
    fn aws_section_problems_are_reported_with_the_rest() {
        let text =
            format!("{MINIMAL}\n[aws]\nauht = \"azure-federated\"\nrole_arn = 7\n[sync]\nlookback = \"300000years\"\n")
                .replace(
                    "region = \"ap-northeast-2\"",
                    "region = \"ap-northeast-2\"\nrole_arn = []",
                );
        let all = problems(&text).join("\n");
        for needle in [
            "unknown key `aws.auht` in [aws] (did you mean `aws.auth`?)",
            "aws.role_arn must be a string",
            "source[0].role_arn must be a string",
            "sync.lookback",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn missing_required_keys_are_named_once_each() {
        let p = problems("[[source]]\nname = \"a\"\n[target]\nauth = \"shared-key\"\n");
        let all = p.join("\n");
        for needle in [
            "source[0].bucket is missing",
            "source[0].region is missing",
            "target.account_url is missing",
            "target.container is missing",
            "target.state_container is missing",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        assert_eq!(p.len(), 5, "{all}");
    }

    #[test]
    fn cron_and_timezone_are_checked_as_the_daemon_schedules() {
        assert!(parse_cron("0 0 */8 * * *").is_ok());
        assert!(parse_cron("0 30 1 * * *").is_ok());
        assert!(parse_cron("0 0 9 * * Mon-Fri").is_ok());
        for bad in [
            "a b c d e f",
            "0 0 * * *",
            "",
            "0 0 0 30 2 *",
            "61 0 0 * * *",
            "* * * * * * * *",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_schedule("0 0 */8 * * *", "UTC", "0 30 1 * * *").is_empty());
        assert!(check_schedule("0 0 */8 * * *", "utc", "0 30 1 * * *").is_empty());
        let p = check_schedule("0 0 */8 * * *", "Mars/Olympus", "0 30 1 * * *");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("UTC"), "{p:?}");
        // Every expression croner accepts is one tokio-cron-scheduler accepts.
        for expr in ["0 0 */8 * * *", "0 30 1 * * *", "0 0 9 * * Mon-Fri", "*/10 * * * * *"] {
            assert!(tokio_cron_scheduler::Job::new(expr, |_, _| {}).is_ok(), "{expr}");
        }
        assert!(tokio_cron_scheduler::Job::new("a b c d e f", |_, _| {}).is_err());
    }

    #[test]
    fn durations_sizes_and_counts_have_ranges() {
        for (section, key, value, needle) in [
            ("sync", "lookback", "\"300000years\"", "out of range"),
            ("sync", "lookback", "\"99999999999999999999999h\"", "not a duration"),
            ("sync", "lookback", "\"-5s\"", "not a duration"),
            ("sync", "max_gap", "\"0s\"", "out of range"),
            ("sync", "in_flight_bytes", "\"1MiB\"", "out of range"),
            ("sync", "in_flight_bytes", "\"99999999999999GiB\"", "too large"),
            ("sync", "in_flight_bytes", "-4", "negative"),
            ("sync", "concurrency", "0", "out of range"),
            ("sync", "concurrency", "9223372036854775807", "out of range"),
            ("sync", "max_requests", "0", "out of range"),
            ("sync", "max_requests", "\"many\"", "whole number"),
            ("sync", "retry_max_delay", "\"1ns\"", "out of range"),
            ("health", "probe_timeout", "\"20years\"", "out of range"),
            ("health", "degraded_after", "0", "out of range"),
            ("schedule", "cron", "7", "must be a string"),
        ] {
            let text = format!("{MINIMAL}\n[{section}]\n{key} = {value}\n");
            let p = problems(&text);
            assert_eq!(p.len(), 1, "{section}.{key} = {value}: {p:?}");
            assert!(
                p[0].contains(&format!("{section}.{key}")) && p[0].contains(needle),
                "{p:?}"
            );
        }
        let text = format!("{MINIMAL}\n[sync]\nlookback = \"3650days\"\nin_flight_bytes = 8388608\n");
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(c.sync.in_flight_bytes, 8 << 20);
        assert_eq!(c.sync.lookback, Duration::from_secs(3650 * DAY));
    }

    #[test]
    fn legacy_us_east_1_bucket_names_keep_their_capitals() {
        for ok in ["org-trail-logs", "my.trail.logs", "a1b"] {
            assert_eq!(bucket_name_problem(ok, "eu-west-1"), None, "{ok}");
        }
        for legacy in ["CloudTrail_Logs", "MyCompany-Trail", "Org.Trail_2016"] {
            assert_eq!(bucket_name_problem(legacy, "us-east-1"), None, "{legacy}");
            let why = bucket_name_problem(legacy, "eu-west-1").expect(legacy);
            assert!(why.contains("us-east-1"), "{why}");
        }
        let long = "A".repeat(255);
        assert_eq!(bucket_name_problem(&long, "us-east-1"), None);
        for bad in [
            "ab",
            "-trail",
            "trail-",
            "tr..ail",
            "192.168.1.1",
            "Trail_Logs",
            "trail logs",
            "tráil",
        ] {
            assert!(bucket_name_problem(bad, "eu-west-1").is_some(), "{bad}");
        }
        for bad in ["ab", "trail logs", "tráil", "a/b", &"A".repeat(256)] {
            assert!(bucket_name_problem(bad, "us-east-1").is_some(), "{bad}");
        }
        let text = MINIMAL.replace("org-trail-logs", "CloudTrail_Logs");
        let err = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap_err().to_string();
        assert!(
            err.contains("CloudTrail_Logs") && err.contains("legacy us-east-1"),
            "{err}"
        );
        let text = text.replace("ap-northeast-2", "us-east-1");
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(c.sources[0].bucket, "CloudTrail_Logs");
    }

    #[test]
    fn trusted_issuers_are_read_and_checked() {
        let fed = "[federation]\nidp_metadata = \"entra.xml\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nrole_mapping = \"roles.toml\"\n";
        let c = parse(&format!("{MINIMAL}\n{fed}"), &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert!(c.federation.unwrap().trusted_issuers.is_empty());
        let issuer = "https://portal.sso.eu-west-1.amazonaws.com/saml/assertion/MTExMTIyMjIzMzMzX2lucy1hYmM=";
        let text = format!("{MINIMAL}\n{fed}trusted_issuers = [\"{issuer}\"]\n");
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        assert_eq!(c.federation.unwrap().trusted_issuers, vec![issuer.to_string()]);
        let p = problems(&format!("{MINIMAL}\n{fed}trusted_issuers = [\"\", \"a b\"]\n"));
        assert_eq!(p.len(), 2, "{p:?}");
    }

    /// Hostile inputs: never a panic, always a refusal with problems (exit 2).
    #[test]
    fn hostile_configs_are_refused_without_a_panic() {
        let deep_array = format!("x = {}{}", "[".repeat(5000), "]".repeat(5000));
        let deep_inline = format!("x = {}1{}", "{a=".repeat(5000), "}".repeat(5000));
        let deep_header = format!("[{}]\n", vec!["a"; 5000].join("."));
        let big = format!("{MINIMAL}\n[sync]\nlookback = \"{}s\"\n", "9".repeat(10_000));
        // (An empty file is a valid config: each command asks for the sections it needs.)
        let hostile: Vec<String> = vec![
            "\u{0}".into(),
            "[[source]]".into(),
            "source = 5".into(),
            "source = [1, \"x\", true]".into(),
            "[source]\nname = \"a\"".into(),
            "target = []".into(),
            "[target]\naccount_url = 1\ncontainer = []\nstate_container = {}\nauth = 2.5".into(),
            format!("{MINIMAL}\n[sync]\nconcurrency = -9223372036854775808\nlookback = 1e308\nmax_gap = \"\"\nin_flight_bytes = \"\""),
            format!("{MINIMAL}\n[sync]\nconcurrency = 99999999999\nretries = 4294967297\nin_flight_bytes = 18446744073709551615"),
            format!("{MINIMAL}\n[health]\ndegraded_after = -1\noutage_after = 9223372036854775807\nprobe_timeout = \"18446744073709551615s\""),
            format!("{MINIMAL}\n[schedule]\ncron = \"\"\ntimezone = \"\"\nverify_cron = \"{}\"", "* ".repeat(10_000)),
            format!("{MINIMAL}\n[schedule]\ncron = \"0 0 0 31 2 *\"\ntimezone = \"Europe/Berlin\""),
            format!("{MINIMAL}\n[federation]\nidp_metadata = \"\"\ntenant_id = \"\"\nrole_mapping = \"\"\naudiences = []\nclock_skew = \"9999999999999999d\""),
            format!("{MINIMAL}\n[log_analytics]\ningestion_endpoint = \"\"\ndcr_immutable_id = \"\"\nstream = \"\""),
            format!("{MINIMAL}\n[log_analytics]\ningestion_endpoint = \"https://x\"\ndcr_immutable_id = 1\nstream = \"s\"\nauth = \"sas\""),
            MINIMAL.replace("seoul", "").replace("org-trail-logs", "").replace("ap-northeast-2", ""),
            MINIMAL.replace("seoul", "서울").replace("org-trail-logs", "버킷").replace("ap-northeast-2", "🌏"),
            MINIMAL.replace("\"ap-northeast-2\"", "2026-11-25T00:00:00Z"),
            MINIMAL.replace("http://127.0.0.1:10000/devstoreaccount1/", "http://[::1"),
            MINIMAL.replace("http://127.0.0.1:10000/devstoreaccount1/", "").replace("cloudtrail-archive", "").replace("trailvault-state", ""),
            format!("{MINIMAL}\n[sync.deeper]\na = 1"),
            format!("{MINIMAL}\n[[sync]]\na = 1"),
            format!("{MINIMAL}\n[sync]\n\"\u{202e}lookback\" = \"1h\""),
            format!("{MINIMAL}\n{}", (0..2000).map(|i| format!("k{i} = {i}\n")).collect::<String>()),
            deep_array,
            deep_inline,
            deep_header,
            big,
        ];
        for (i, text) in hostile.iter().enumerate() {
            let result = std::panic::catch_unwind(|| parse(text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]));
            let result = result.unwrap_or_else(|_| panic!("config {i} panicked"));
            let err = match result {
                Err(e) => e,
                Ok(c) => panic!("config {i} accepted: {c:?}"),
            };
            assert_eq!(crate::fault::Classify::fault(&err), crate::fault::Fault::Config, "{i}");
            let shown = err.to_string();
            assert!(shown.len() < 64 * 1024, "config {i}: message of {} bytes", shown.len());
        }
    }

    #[test]
    fn relative_paths_resolve_from_the_config_folder() {
        let text = format!(
            "{MINIMAL}\n[federation]\nidp_metadata = \"entra.xml\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nrole_mapping = \"roles.toml\"\n"
        );
        let c = parse(&text, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
        let f = c.federation.unwrap();
        assert_eq!(f.role_mapping, PathBuf::from("/etc/trailvault/roles.toml"));
        assert_eq!(f.idp_metadata, "/etc/trailvault/entra.xml");
    }
}
