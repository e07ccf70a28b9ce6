//! Why a server could not start or keep serving.

/// A gRPC server failed to start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener's address could not be read.
    #[error("{what}: the listener: {source}")]
    Listener {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The reflection service could not be built from the contract's descriptors.
    #[error("{what}: reflection: {source}")]
    Reflection {
        what: String,
        #[source]
        source: tonic_reflection::server::Error,
    },
    /// The transport (TLS configuration, accepting, serving) failed.
    #[error("{what}: {source}")]
    Transport {
        what: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// A setting of a service's configuration is unusable. Bad configuration exits with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    /// The setting, as written in the configuration file (`ledger.max_batch`).
    pub setting: String,
    /// What is wrong with it, and what it must be.
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}
