//! The warning service's error type. [`crate::grpc::status`] turns each into a `tonic::Status`.

use hazchem_domain::Department;

/// Everything that can stop the service or fail one of its operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("warning rules: {0}")]
    Rules(String),
    #[error("no warning {warning_id:?}")]
    NotFound { warning_id: String },
    #[error(
        "{department} may not {action} warning {warning_id:?}: it is addressed to {}; only an addressed \
         department may {action} it", codes(.addressed)
    )]
    NotAddressed {
        warning_id: String,
        department: Department,
        action: &'static str,
        addressed: Vec<Department>,
    },
    #[error("warning {warning_id:?} is closed; nothing more may be done to it")]
    Closed { warning_id: String },
    #[error("{department} already acknowledged warning {warning_id:?}")]
    AlreadyAcknowledged {
        warning_id: String,
        department: Department,
    },
    #[error("publishing the warning event: {0}")]
    Publish(#[from] hazchem_kit::PublishError),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("warning store: {0}")]
    Storage(#[from] sled::Error),
    #[error("warning store is corrupt: {0}")]
    Corrupt(String),
    #[error("bus: {0}")]
    Bus(#[from] hazchem_bus::Error),
    #[error("keys and certificates: {0}")]
    Pki(#[from] hazchem_pki::PkiError),
    #[error("serving: {0}")]
    Serve(#[from] hazchem_kit::ServeError),
    #[error("{0}")]
    Follow(Box<hazchem_kit::FollowError<Error>>),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn codes(list: &[Department]) -> String {
    list.iter().map(|d| d.code()).collect::<Vec<_>>().join(",")
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
