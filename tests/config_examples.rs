//! The configuration as shipped and as checked: every example configuration in the
//! repository parses and validates, the Functions deployment files match the handler, and
//! `config check` through the binary lists every problem at once (exit 2, never a panic).
//! The KQL, Terraform and S3-addressing checks live in `kql.rs`, `terraform.rs` and
//! `s3_addressing.rs`.

use std::path::Path;

use trailvault::config::Config;
use trailvault::files::read_config;

const ENV: [(&str, &str); 5] = [
    ("TRAILVAULT_AZURE_SAS", "sv=2022-11-02&sig=x"),
    ("TRAILVAULT_AZURE_ACCOUNT_KEY", "a2V5"),
    ("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000000"),
    ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000000"),
    ("AZURE_CLIENT_SECRET", "s"),
];

#[test]
fn every_example_config_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = 0;
    for dir in [root.to_path_buf(), root.join("examples"), root.join("deploy")] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".toml") && name.contains("trailvault") {
                read_config(&path, &ENV).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                found += 1;
            }
        }
    }
    assert!(found >= 1, "no example config found");
}

#[test]
fn the_contract_example_parses() {
    // The configuration block of the contract, verbatim apart from the auth comment.
    let text = r#"
[[source]]
name = "seoul"
bucket = "org-trail-logs"
region = "ap-northeast-2"
prefix = ""
endpoint = "http://127.0.0.1:9000"

[target]
account_url = "https://acct.blob.core.windows.net"
container = "cloudtrail-archive"
state_container = "trailvault-state"
state_account_url = ""
auth = "managed-identity"
managed_identity_client_id = ""

[sync]
concurrency = 32
in_flight_bytes = "32MiB"
lookback = "72h"
max_gap = "8h"

[schedule]
cron = "0 0 */8 * * *"
timezone = "UTC"
verify_cron = "0 30 1 * * *"

[health]
probe_timeout = "10s"
degraded_after = 1
outage_after = 3

[federation]
idp_metadata = "entra-metadata.xml"
tenant_id = "00000000-0000-0000-0000-000000000000"
audiences = ["https://signin.aws.amazon.com/saml", "urn:amazon:webservices"]
role_mapping = "roles.toml"
allow_sha1 = false
clock_skew = "3m"

[log_analytics]
ingestion_endpoint = "https://NAME.REGION.ingest.monitor.azure.com"
dcr_immutable_id = "dcr-0123456789abcdef0123456789abcdef"
stream = "Custom-TrailVault_CL"
workspace_id = "00000000-0000-0000-0000-000000000000"
auth = "managed-identity"
"#;
    let c = Config::parse(text, Path::new("/etc/trailvault/trailvault.toml"), &ENV).unwrap();
    assert_eq!(
        c.sources[0].endpoint.as_ref().unwrap().as_str(),
        "http://127.0.0.1:9000/"
    );
    assert!(c.federation.is_some() && c.log_analytics.is_some());
}

#[test]
fn the_example_role_mapping_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("roles.example.toml");
    let m =
        trailvault::federation::roles::RoleMapping::parse(&trailvault::federation_io::read_role_file(&path).unwrap())
            .unwrap();
    assert_eq!(m.grants.len(), 2);
    let c = read_config(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("trailvault.example.toml"),
        &ENV,
    )
    .unwrap();
    assert_eq!(c.federation.unwrap().role_mapping, path);
}

#[test]
fn the_functions_deployment_matches_the_handler() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/azure-functions");
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(p)).unwrap()).unwrap()
    };
    let host = read("host.json");
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "trailvault"
    );
    assert!(host["customHandler"]["description"]["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "functions"));
    assert_eq!(host["customHandler"]["enableProxyingHttpRequest"], true);
    assert!(host["extensionBundle"]["id"]
        .as_str()
        .unwrap()
        .contains("ExtensionBundle"));
    for timer in ["sync", "verify"] {
        let f = read(&format!("{timer}/function.json"));
        assert_eq!(f["bindings"][0]["type"], "timerTrigger");
        assert_eq!(f["bindings"][0]["runOnStartup"], false);
    }
    let status = read("status/function.json");
    assert_eq!(status["bindings"][0]["route"], "status");
    let settings = read("local.settings.example.json");
    assert_eq!(settings["Values"]["FUNCTIONS_WORKER_RUNTIME"], "Custom");
    // Six-field NCRONTAB, as the timer trigger needs.
    for key in ["TRAILVAULT_SYNC_SCHEDULE", "TRAILVAULT_VERIFY_SCHEDULE"] {
        assert_eq!(settings["Values"][key].as_str().unwrap().split_whitespace().count(), 6);
    }
}

// ---------- config check through the binary: every problem at once, exit 2 ----------

const VALID: &str = r#"
[[source]]
name = "org-trail"
bucket = "org-trail-logs"
region = "eu-west-1"

[target]
account_url = "http://127.0.0.1:9/devstoreaccount1"
container = "cloudtrail-archive"
state_container = "trailvault-state"
auth = "shared-key"
"#;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `trailvault ARGS` on a config written from `text`, with only the account key set.
fn trailvault(text: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailvault.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailvault"))
        .arg("--config")
        .arg(&path)
        .args(["--log-format", "json"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TRAILVAULT_AZURE_ACCOUNT_KEY", "a2V5")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn check(text: &str) -> Run {
    trailvault(text, &["config", "check", "--json"])
}

#[test]
fn config_check_accepts_the_valid_base() {
    let run = check(VALID);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn config_check_lists_every_problem_across_sections_at_once() {
    let text = VALID.replace("region = \"eu-west-1\"", "region = \"eu-west-1\"\nregoin = \"x\"")
        + "\n[sync]\nlookback = \"300000years\"\nconcurrency = -3\nin_flight_bytes = \"lots\"\n"
        + "\n[schedule]\ncron = \"a b c d e f\"\ntimezone = \"Mars/Olympus\"\n"
        + "\n[health]\noutage_after = \"three\"\nprobe_timeout = \"10 parsecs\"\n"
        + "\n[federaton]\nidp_metadata = \"x\"\n";
    let run = check(&text);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(doc["exit_code"], 2);
    let error = doc["error"].as_str().unwrap();
    let problems = doc["problems"].as_array().expect("problems, one by one");
    assert_eq!(problems.len(), 9, "{doc}");
    for needle in [
        "has 9 problems",
        "unknown key `source[0].regoin`",
        "sync.lookback = \"300000years\" is out of range",
        "sync.concurrency = -3 is out of range",
        "sync.in_flight_bytes",
        "schedule.cron = \"a b c d e f\"",
        "schedule.timezone = \"Mars/Olympus\"",
        "health.outage_after must be a whole number",
        "health.probe_timeout = \"10 parsecs\" is not a duration",
        "unknown key `federaton` at the top level (did you mean `federation`?)",
    ] {
        assert!(error.contains(needle), "missing {needle:?} in\n{error}");
    }
}

#[test]
fn config_check_refuses_a_cron_and_a_timezone_the_daemon_refuses() {
    for (schedule, needle) in [
        ("cron = \"a b c d e f\"", "schedule.cron"),
        ("verify_cron = \"0 0 0 31 2 *\"", "never fires"),
        ("cron = \"0 0 */8 * *\"", "schedule.cron"),
        ("timezone = \"Mars/Olympus\"", "UTC"),
        ("timezone = \"Europe/Berlin\"", "UTC"),
    ] {
        let run = check(&format!("{VALID}\n[schedule]\n{schedule}\n"));
        assert_eq!(run.code, 2, "{schedule}: {}", run.stdout);
        assert!(run.stdout.contains(needle), "{schedule}: {}", run.stdout);
    }
    let run = check(&format!(
        "{VALID}\n[schedule]\ncron = \"0 15 */6 * * Mon-Fri\"\nverify_cron = \"0 30 1 * * *\"\ntimezone = \"UTC\"\n"
    ));
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn a_lookback_of_300000_years_is_refused_before_sync_touches_anything() {
    let text = format!("{VALID}\n[sync]\nlookback = \"300000years\"\n");
    let run = check(&text);
    assert_eq!(run.code, 2);
    assert!(
        run.stdout.contains("at most") || run.stdout.contains("between"),
        "{}",
        run.stdout
    );
    // sync loads the same config: exit 2 before any network call (the endpoint is closed).
    let run = trailvault(&text, &["sync", "--json"]);
    assert_eq!(run.code, 2, "{} {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("sync.lookback"), "{}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn legacy_us_east_1_bucket_names_pass_config_check_and_others_do_not() {
    let legacy = VALID.replace("org-trail-logs", "CloudTrail_Logs_2016");
    let run = check(&legacy.replace("eu-west-1", "us-east-1"));
    assert_eq!(run.code, 0, "{}", run.stdout);
    let run = check(&legacy);
    assert_eq!(run.code, 2);
    assert!(run.stdout.contains("legacy us-east-1"), "{}", run.stdout);
    let run = check(&VALID.replace("org-trail-logs", "-bad..name"));
    assert_eq!(run.code, 2);
}

/// A batch of hostile configs through the binary: each is refused with exit 2 and a
/// message, never a panic (exit 101) or a hang.
#[test]
fn hostile_configs_exit_2_without_a_panic() {
    let mut batch: Vec<String> = vec![
        "\u{0}\u{1}".into(),
        "[[source]]\n".into(),
        "source = \"x\"\n".into(),
        "[source]\nname = \"a\"\n".into(),
        format!("{VALID}\n[sync]\nconcurrency = 18446744073709551615\n"),
        format!("{VALID}\n[sync]\nconcurrency = -9223372036854775808\nretries = 4294967297\n"),
        format!("{VALID}\n[sync]\nlookback = \"18446744073709551615s\"\nmax_gap = \"584942417355years\"\n"),
        format!("{VALID}\n[sync]\nin_flight_bytes = \"18446744073709551615GiB\"\n"),
        format!("{VALID}\n[sync]\nlookback = -1\nmax_gap = 1.5\nin_flight_bytes = true\n"),
        format!("{VALID}\n[health]\ndegraded_after = 0\noutage_after = -1\nprobe_timeout = \"0s\"\n"),
        format!("{VALID}\n[schedule]\ncron = \"\"\nverify_cron = \"{}\"\ntimezone = \"\"\n", "* ".repeat(5000)),
        format!("{VALID}\n[schedule]\ncron = [\"0 0 * * * *\"]\n"),
        format!("{VALID}\n[federation]\nidp_metadata = \"\"\ntenant_id = \"\"\nrole_mapping = \"\"\naudiences = [\"\"]\ntrusted_issuers = [\"\", \" \", 3]\n"),
        format!("{VALID}\n[log_analytics]\ningestion_endpoint = \"\"\ndcr_immutable_id = \"\"\nstream = {{}}\n"),
        VALID.replace("org-trail", "").replace("org-trail-logs", "").replace("eu-west-1", ""),
        VALID.replace("org-trail", "트레일").replace("eu-west-1", "🌍"),
        VALID.replace("http://127.0.0.1:9/devstoreaccount1", "\u{202e}http://x"),
        VALID.replace("\"shared-key\"", "\"\""),
        format!("{VALID}\n[sync.a.b.c.d.e.f]\nx = 1\n"),
        format!("x = {}1{}\n", "[".repeat(3000), "]".repeat(3000)),
        format!("x = {}1{}\n", "{a=".repeat(3000), "}".repeat(3000)),
        format!("[{}]\n", vec!["a"; 3000].join(".")),
        format!("{VALID}\n{}", (0..500).map(|i| format!("unknown{i} = {i}\n")).collect::<String>()),
        "a = \"\u{fffd}\u{10ffff}\"\n".repeat(10),
    ];
    batch.push(format!("{VALID}\n[sync]\nlookback = \"{}h\"\n", "9".repeat(5000)));
    for (i, text) in batch.iter().enumerate() {
        let run = check(text);
        assert_eq!(
            run.code, 2,
            "config {i}:\n{text:.200}\nstdout {}\nstderr {}",
            run.stdout, run.stderr
        );
        let doc: serde_json::Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("config {i}: {e}: {}", run.stdout));
        assert!(!doc["error"].as_str().unwrap_or_default().is_empty(), "config {i}");
        assert!(!run.stderr.contains("panicked"), "config {i}: {}", run.stderr);
    }
}
