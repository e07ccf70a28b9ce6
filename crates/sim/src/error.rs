//! Errors of the simulator, the driver and the benchmark.

/// Why a simulation or a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The city or traffic configuration is impossible (too few enterprises, a bad injection).
    #[error("configuration: {0}")]
    Config(String),
    /// Development PKI files missing or unreadable.
    #[error("keys and certificates: {0}")]
    Pki(#[from] hazchem_pki::PkiError),
    /// Connecting to the gateway failed.
    #[error("connecting to the gateway at {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    /// A gRPC call failed as a whole (not a per-event rejection, which is counted instead).
    #[error("gateway call failed: {0}")]
    Call(#[from] tonic::Status),
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] hazchem_bus::Error),
    /// Starting or talking to `nats-server` failed.
    #[error("nats-server: {0}")]
    Nats(String),
    /// The gateway failed to start.
    #[error("gateway: {0}")]
    Gateway(#[from] hazchem_gateway::Error),
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Anything else during a benchmark.
    #[error("benchmark: {0}")]
    Bench(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
