//! Entra ID SAML validation, role mapping and federated-login audit (issue 4).
//!
//! Not built yet: the config section `[federation]` is parsed and validated by
//! `config.rs`, and no command uses it so far.
