//! The crate's error type: failures of an operation (reading a key file, writing a bundle, asking a tree for
//! a proof it cannot give). A log that does not verify is not an error of this kind but a verdict, a
//! [`crate::verify::VerifyFailure`]; a refused note is a [`crate::note::NoteError`]; a proof that does not
//! hold is a [`crate::merkle::ProofError`].

use std::path::Path;

use crate::note::NoteError;

/// Everything that can fail an operation of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A size or index is out of range for the tree.
    #[error("{0}")]
    OutOfRange(String),

    /// A perfect-subtree hash that the tree size implies is not in the tree.
    #[error("the tree lacks the hash of node (level {level}, index {index})")]
    MissingNode { level: u8, index: u64 },

    /// A checkpoint note is malformed or does not verify.
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),

    /// A public key could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Key { what: String, reason: String },

    /// A key file does not hold a verifier key.
    #[error("{path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: NoteError,
    },

    /// A key registry (`signing-keys.toml`) is malformed.
    #[error("invalid key registry{}: {reason}", path.as_ref().map(|p| format!(" {p}")).unwrap_or_default())]
    Registry {
        /// The file, when the registry was read from one.
        path: Option<String>,
        /// What is wrong, naming the entry concerned.
        reason: String,
    },

    /// A bundle is to be written into a directory that already holds something.
    #[error("{path} exists and is not empty; choose a new directory for the bundle")]
    BundleDirNotEmpty { path: String },

    /// File I/O (key files, bundles).
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn registry(reason: impl Into<String>) -> Self {
        Error::Registry {
            path: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn key(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Key {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
