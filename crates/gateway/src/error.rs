//! Errors starting or serving the gateway. Errors of a single call are `tonic::Status` values.

/// Why the gateway could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] hazchem_kit::ConfigError),
    #[error("policy: {0}")]
    Policy(#[from] hazchem_admission::PolicyError),
    #[error("keys and certificates: {0}")]
    Pki(#[from] hazchem_pki::PkiError),
    #[error("serving: {0}")]
    Serve(#[from] hazchem_kit::ServeError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
