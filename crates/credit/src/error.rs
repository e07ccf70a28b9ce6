//! Errors starting or running the credit service. A refused decision is a [`crate::Refusal`], and errors of
//! a single gRPC call are `tonic::Status` values (see the `grpc` module).

use std::path::{Path, PathBuf};

/// Why the credit service could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] hazchem_kit::ConfigError),
    #[error("measure catalogue: {0}")]
    Catalogue(String),
    #[error("policy: {0}")]
    Policy(#[from] hazchem_admission::PolicyError),
    #[error("keys and certificates: {0}")]
    Pki(#[from] hazchem_pki::PkiError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credit store: {0}")]
    Storage(#[from] sled::Error),
    #[error("credit store is corrupt: {0}")]
    Corrupt(String),
    #[error("the bus: {0}")]
    Bus(#[from] hazchem_bus::Error),
    #[error("publishing {what}: {status}")]
    Publish { what: String, status: String },
    #[error("serving: {0}")]
    Serve(#[from] hazchem_kit::ServeError),
    #[error("{0}")]
    Follow(Box<hazchem_kit::FollowError<Error>>),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
