//! Azure Storage authentication: Entra ID credentials through azure_identity, an
//! account SAS carried in the URL, or a SharedKey signing policy (azure_storage_blob
//! 1.x has none by design; Azurite and key-only deployments need it).

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::AzureAuth;
use crate::secret::Secret;

/// How a client authenticates: a bearer credential, or a per-try signing policy.
pub enum ClientAuth {
    Token(Arc<dyn TokenCredential>),
    Policy(Arc<dyn Policy>),
    /// The SAS is already in the URL.
    None,
}

/// Why an Azure credential cannot be set up (nothing was sent yet).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot set up Azure credential {kind:?}: {source}")]
    Setup {
        kind: &'static str,
        #[source]
        source: azure_core::Error,
    },
    #[error("the account key is not base64")]
    KeyNotBase64(#[source] base64::DecodeError),
}

/// `max_delay` (`[sync] retry_max_delay`) bounds every wait of the credential's own retries.
pub fn client_auth(auth: &AzureAuth, max_delay: std::time::Duration) -> Result<ClientAuth, CredentialError> {
    use azure_identity::*;
    remember_secrets(auth);
    let client_options = || super::azure_http::credential_options(max_delay);
    let token = |r: azure_core::Result<Arc<dyn TokenCredential>>| {
        r.map(ClientAuth::Token).map_err(|source| CredentialError::Setup {
            kind: auth.kind(),
            source,
        })
    };
    match auth {
        AzureAuth::ManagedIdentity { client_id } => token(
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                client_options: client_options(),
            }))
            .map(|c| c as Arc<dyn TokenCredential>),
        ),
        AzureAuth::WorkloadIdentity => token(
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: client_options(),
                },
                ..Default::default()
            }))
            .map(|c| c as Arc<dyn TokenCredential>),
        ),
        AzureAuth::ClientSecret {
            tenant_id,
            client_id,
            secret,
        } => token(
            ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                azure_core::credentials::Secret::new(secret.expose().clone()),
                Some(ClientSecretCredentialOptions {
                    client_options: client_options(),
                }),
            )
            .map(|c| c as Arc<dyn TokenCredential>),
        ),
        AzureAuth::DeveloperTools => token(DeveloperToolsCredential::new(None).map(|c| c as Arc<dyn TokenCredential>)),
        AzureAuth::Sas(_) => Ok(ClientAuth::None),
        AzureAuth::SharedKey { account, key } => {
            let key = base64::engine::general_purpose::STANDARD
                .decode(key.expose())
                .map_err(CredentialError::KeyNotBase64)?;
            Ok(ClientAuth::Policy(Arc::new(SharedKeyPolicy {
                account: account.clone(),
                key: Secret::new(key),
            })))
        }
    }
}

/// Hands the configured secrets to [`crate::secret::remember`], so an error that echoes
/// one (a service quoting a request, a URL, a header) is scrubbed whatever its shape.
fn remember_secrets(auth: &AzureAuth) {
    match auth {
        AzureAuth::Sas(sas) => {
            // The signature is the secret part; the other parameters are not.
            for (k, v) in url::form_urlencoded::parse(sas.expose().as_bytes()) {
                if k == "sig" {
                    crate::secret::remember_configured(&v);
                    crate::secret::remember_configured(
                        &url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>(),
                    );
                }
            }
        }
        AzureAuth::SharedKey { key, .. } => crate::secret::remember_configured(key.expose()),
        AzureAuth::ClientSecret { secret, .. } => crate::secret::remember_configured(secret.expose()),
        _ => {}
    }
}

/// Signs each attempt with `Authorization: SharedKey account:signature`.
#[derive(Debug)]
pub struct SharedKeyPolicy {
    account: String,
    key: Secret<Vec<u8>>,
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        request.insert_header("x-ms-date", date);
        let to_sign = string_to_sign(&self.account, request);
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose())
            .map_err(|e| azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.to_string()))?;
        mac.update(to_sign.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        request.insert_header("authorization", format!("SharedKey {}:{}", self.account, sig));
        next[0].send(ctx, request, &next[1..]).await
    }
}

fn string_to_sign(account: &str, request: &Request) -> String {
    let headers = request.headers();
    let get = |name: &str| -> String {
        headers
            .iter()
            .find(|(k, _)| k.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str().to_string())
            .unwrap_or_default()
    };
    // Some calls (Put Block List) leave content-length to the transport; sign what it will send.
    let content_length = match get("content-length") {
        l if !l.is_empty() => l,
        _ => request
            .body()
            .len()
            .filter(|l| *l > 0)
            .map(|l| l.to_string())
            .unwrap_or_default(),
    };
    let content_length = if content_length == "0" {
        String::new()
    } else {
        content_length
    };
    let mut ms_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.as_str().to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.as_str().trim().to_string()))
        .collect();
    ms_headers.sort();
    let mut s = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        request.method().as_ref(),
        get("content-encoding"),
        get("content-language"),
        content_length,
        get("content-md5"),
        get("content-type"),
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
    );
    for (k, v) in &ms_headers {
        s.push_str(k);
        s.push(':');
        s.push_str(v);
        s.push('\n');
    }
    let url = request.url();
    s.push('/');
    s.push_str(account);
    s.push_str(url.path());
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect();
    query.sort();
    let mut i = 0;
    while i < query.len() {
        let name = query[i].0.clone();
        let mut values = Vec::new();
        while i < query.len() && query[i].0 == name {
            values.push(query[i].1.clone());
            i += 1;
        }
        values.sort();
        s.push('\n');
        s.push_str(&name);
        s.push(':');
        s.push_str(&values.join(","));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_secrets_are_scrubbed_from_any_later_text() {
        let sas = AzureAuth::Sas(Secret::new("sv=2022-11-02&ss=b&sig=CanarySasSig0001%2Babc%3D".into()));
        client_auth(&sas, std::time::Duration::from_secs(1)).unwrap();
        let echoed = "the service quoted CanarySasSig0001+abc= and CanarySasSig0001%2Babc%3D";
        let red = crate::secret::redact_text(echoed);
        assert!(!red.contains("CanarySasSig0001"), "{red}");
    }
}
