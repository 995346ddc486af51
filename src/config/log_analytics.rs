//! `[log_analytics]`: where run records go through the Logs Ingestion API.

use url::Url;

use super::env::Env;
use super::fields::{Fields, Problems};
use super::resolve::token_identity;
use super::target::{AzureAuth, TargetConfig};
use super::url::parse_http_url;

pub(super) struct RawLogAnalytics {
    ingestion_endpoint: Option<String>,
    dcr_immutable_id: Option<String>,
    stream: Option<String>,
    workspace_id: String,
    auth: Option<String>,
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

pub(super) fn read(t: &toml::Table, problems: &Problems) -> RawLogAnalytics {
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
}

/// Checks the section; its identity is the target's unless it names another.
pub(super) fn validate(
    la: RawLogAnalytics,
    target: Option<&TargetConfig>,
    env: &dyn Env,
    problems: &Problems,
) -> Option<LogAnalyticsConfig> {
    let auth = token_identity("log_analytics.auth", la.auth, target, env, problems);
    if la.dcr_immutable_id.as_deref().is_some_and(|d| d.trim().is_empty()) {
        problems.push("log_analytics.dcr_immutable_id is empty: set the data collection rule's immutable ID (dcr-...)");
    }
    if la.stream.as_deref().is_some_and(|d| d.trim().is_empty()) {
        problems.push("log_analytics.stream is empty: set the DCR's stream, like \"Custom-TrailVault_CL\"");
    }
    let endpoint = parse_http_url(la.ingestion_endpoint.as_deref()?)
        .map_err(|m| problems.push(format!("log_analytics.ingestion_endpoint {m}")))
        .ok()?;
    if endpoint.scheme() != "https" {
        problems.push("log_analytics.ingestion_endpoint must be https (bearer tokens are never sent over http)");
    }
    Some(LogAnalyticsConfig {
        ingestion_endpoint: endpoint,
        dcr_immutable_id: la.dcr_immutable_id.unwrap_or_default(),
        stream: la.stream.unwrap_or_default(),
        workspace_id: la.workspace_id,
        auth,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

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
}
