//! Whole-config tests: defaults, every problem at once, hostile input.

use std::time::Duration;

use super::test_support::*;

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
fn secrets_do_not_show_in_debug() {
    let c = parse(MINIMAL, &[(ENV_AZURE_ACCOUNT_KEY, KEY)]).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(&KEY[..20]), "{dbg}");
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
