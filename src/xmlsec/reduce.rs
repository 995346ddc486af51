//! samael's signature reduction, hardened (see `guard`) and with its panics caught.

use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode};

use super::{guard, ReduceError};

pub(super) fn reduce(xml: &str, certs: &[Vec<u8>], allow_sha1: bool) -> Result<String, ReduceError> {
    guard::harden();
    let certs: Vec<CertificateDer> = certs.iter().cloned().map(CertificateDer::from).collect();
    // SHA-1 is not in samael's allow-list; the caller's own check already limited the algorithms.
    let allowed: Option<&[AllowedSignatureAlgorithm]> = if allow_sha1 {
        None
    } else {
        Some(&[AllowedSignatureAlgorithm::RsaSha256])
    };
    let text = xml.to_string();
    // samael may panic on hostile input in versions before its fix; never let it take us down.
    let result = guard::guarded(move || {
        Crypto::reduce_xml_to_signed_with_allowed_algorithms(
            &text,
            &certs,
            ReduceMode::ValidateAndMarkNoAncestors,
            allowed,
        )
    });
    match result {
        Ok(Ok(signed)) => Ok(signed),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "xmlsec refused the signature");
            Err(ReduceError::Invalid)
        }
        Err(_) => Err(ReduceError::Panicked),
    }
}
