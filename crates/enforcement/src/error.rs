//! The enforcement service's error type. [`crate::grpc::status`] turns each into a `tonic::Status`, in one
//! place.

use hazchem_domain::Department;

use crate::task::Refusal;

/// Everything that can stop the service or fail one of its operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable; the message names the setting.
    #[error("configuration: {0}")]
    Config(#[from] hazchem_kit::ConfigError),

    /// A registers file is unusable; the message names the file and the entry.
    #[error("registers: {0}")]
    Registers(String),

    /// The command is refused by the rules of joint enforcement (state, duty, content).
    #[error("{0}")]
    Refused(#[from] Refusal),

    /// The command id was used before, by the same department, for a different command.
    #[error(
        "command id {command_id:?} of {department} was already used for a different command (on task \
         {task_id:?}); a retry must repeat the original command exactly, a new command needs a new id"
    )]
    CommandIdReused {
        department: Department,
        command_id: String,
        task_id: String,
    },

    /// The gateway refused or could not store the task event.
    #[error("publishing the task event: {0}")]
    Publish(#[from] hazchem_kit::PublishError),

    /// The service cannot answer now (still catching up with the stream, or stopped).
    #[error("unavailable: {0}")]
    Unavailable(String),

    /// The local store (sled) failed.
    #[error("enforcement store: {0}")]
    Storage(#[from] sled::Error),

    /// The local store holds something it should not.
    #[error("enforcement store is corrupt: {0}")]
    Corrupt(String),

    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] hazchem_bus::Error),

    /// Keys or certificates could not be loaded.
    #[error("keys and certificates: {0}")]
    Pki(#[from] hazchem_pki::PkiError),

    /// Serving gRPC failed.
    #[error("serving: {0}")]
    Serve(#[from] hazchem_kit::ServeError),

    /// The projection stopped following the stream.
    #[error("{0}")]
    Follow(Box<hazchem_kit::FollowError<Error>>),

    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The enforcement service's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
