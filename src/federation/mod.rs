//! Entra ID SAML for AWS console sign-in: validation of SAMLResponses (signature
//! through samael/xmlsec, everything AWS and Entra need on top of it), the role
//! mapping as code, and the audit of federated sign-ins in archived CloudTrail logs.

pub mod audit;
pub mod metadata;
pub mod prescreen;
pub mod replay;
pub mod roles;
pub mod validate;
pub mod xml;
pub mod xmlsec_guard;
