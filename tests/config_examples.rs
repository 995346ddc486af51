//! Every example configuration in the repository parses and validates.

use std::path::Path;

use trailvault::config::Config;

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
                Config::load(&path, &ENV).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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
    let m = trailvault::federation::roles::RoleMapping::load(&path).unwrap();
    assert_eq!(m.grants.len(), 2);
    let c = Config::load(
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
