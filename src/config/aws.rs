//! `[aws]`: how AWS calls get credentials: the SDK's default chain, or an Entra token
//! exchanged with STS for a role's short-lived credentials.

use super::defaults::{SESSION_NAME, TOKEN_AUDIENCE};
use super::env::Env;
use super::fields::{Fields, Problems};
use super::resolve::token_identity;
use super::source::SourceRole;
use super::target::{AzureAuth, TargetConfig};

#[derive(Default)]
pub(super) struct RawAws {
    auth: Option<String>,
    role_arn: Option<String>,
    azure_credential: Option<String>,
    token_audience: Option<String>,
    session_name: Option<String>,
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

pub(super) fn read(t: &toml::Table, problems: &Problems) -> RawAws {
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
}

/// `[aws]`: the default chain, or `azure-federated` with a role for every source and an
/// Azure token credential (named, or the target's when it is a token kind).
pub(super) fn validate(
    raw: Option<RawAws>,
    sources: &[SourceRole],
    target: Option<&TargetConfig>,
    env: &dyn Env,
    problems: &Problems,
) -> AwsAuth {
    let mut raw = raw.unwrap_or_default();
    let role_arn = nonempty(raw.role_arn.take());
    let auth = raw.auth.take();
    match auth.as_deref().unwrap_or("default") {
        "default" => {
            default_chain(&raw, role_arn.is_some(), sources, problems);
            AwsAuth::Default
        }
        "azure-federated" => AwsAuth::AzureFederated(azure_federated(raw, role_arn, sources, target, env, problems)),
        other => {
            problems.push(format!(
                "aws.auth {other:?} is not one of \"default\" (the SDK's credential chain) or \"azure-federated\""
            ));
            AwsAuth::Default
        }
    }
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// The default chain takes no role and no Entra settings: naming one is a mistake.
fn default_chain(raw: &RawAws, role_arn: bool, sources: &[SourceRole], problems: &Problems) {
    for (key, set) in [
        ("role_arn", role_arn),
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
    for s in sources.iter().filter(|s| s.has_role) {
        problems.push(format!(
            "source {}: role_arn needs [aws] auth = \"azure-federated\" (with the SDK's default chain, name the role in an AWS profile)",
            s.name
        ));
    }
}

fn azure_federated(
    raw: RawAws,
    role_arn: Option<String>,
    sources: &[SourceRole],
    target: Option<&TargetConfig>,
    env: &dyn Env,
    problems: &Problems,
) -> AzureFederated {
    if let Some(r) = &role_arn {
        if !is_role_arn(r) {
            problems.push(format!(
                "aws.role_arn {r:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
            ));
        }
    }
    for s in sources.iter().filter(|s| !s.has_role && role_arn.is_none()) {
        problems.push(format!(
            "source {}: no role to assume: set aws.role_arn or the source's role_arn",
            s.name
        ));
    }
    let azure_credential = token_identity("aws.azure_credential", raw.azure_credential, target, env, problems);
    let token_audience = nonempty(raw.token_audience)
        .map(|a| a.trim_end_matches("/.default").to_string())
        .unwrap_or_else(|| TOKEN_AUDIENCE.to_string());
    if token_audience.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problems.push(format!("aws.token_audience {token_audience:?} must not contain spaces"));
    }
    let session_name = nonempty(raw.session_name).unwrap_or_else(|| SESSION_NAME.to_string());
    if !is_session_name(&session_name) {
        problems.push(format!(
            "aws.session_name {session_name:?} must be 2-64 characters of [A-Za-z0-9+=,.@_-]"
        ));
    }
    AzureFederated {
        role_arn,
        azure_credential,
        token_audience,
        session_name,
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

impl super::Config {
    /// The role a source is read with under `azure-federated` (None with the default chain).
    pub fn source_role(&self, source: &super::SourceConfig) -> Option<String> {
        match &self.aws {
            AwsAuth::Default => None,
            AwsAuth::AzureFederated(f) => source.role_arn.clone().or_else(|| f.role_arn.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::config::defaults::TOKEN_AUDIENCE as DEFAULT_TOKEN_AUDIENCE;

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
}
