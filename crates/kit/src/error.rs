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
