//! The crate's error type: a witness server that cannot start, or a client that cannot be built.

/// Why a witness server or client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is unusable.
    #[error(transparent)]
    Config(#[from] hazchem_kit::ConfigError),
    /// A key file could not be read.
    #[error(transparent)]
    Pki(#[from] hazchem_pki::PkiError),
    /// A verifier error (a log key, the witness's state file).
    #[error(transparent)]
    Verify(#[from] hazchem_verify::Error),
    /// A TLS certificate, key or CA file is unusable.
    #[error("{what}: {reason}")]
    Tls { what: String, reason: String },
    /// Listening or accepting failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}
