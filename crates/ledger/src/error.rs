//! The ledger's error type. Failures of one gRPC call are `tonic::Status` values built in `grpc.rs`;
//! failures of an offline verification are [`crate::verify::VerifyFailure`]s; the verifier crate's
//! errors become the ledger's of the same meaning.

/// Everything that can stop the ledger or fail one of its operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable; the message names the setting.
    #[error("configuration: {0}")]
    Config(#[from] hazchem_kit::ConfigError),

    /// The local store (sled) failed.
    #[error("ledger store: {0}")]
    Storage(#[from] sled::Error),

    /// The local store holds something it should not, or lacks something it should.
    #[error("ledger store is corrupt: {0}")]
    Corrupt(String),

    /// A perfect-subtree hash that the tree size implies is not in the store.
    #[error("ledger store lacks the hash of node (level {level}, index {index})")]
    MissingNode { level: u8, index: u64 },

    /// The store does not agree with the last checkpoint it signed: refuse to serve.
    #[error(
        "the ledger store disagrees with its last checkpoint (tree size {size}): {what}; \
         move the store away to rebuild it from the stream, and investigate"
    )]
    StoreDisagrees { size: u64, what: String },

    /// The store does not belong to this stream, or the stream lost messages the ledger holds.
    #[error("the ledger store does not match the stream: {0}")]
    StreamMismatch(String),

    /// The same publisher's event id arrived twice at different sequences: the bus broke "one id, one
    /// record".
    #[error(
        "event id {id:?} of {publisher} is already leaf {first_index}, and arrived again at sequence \
         {sequence}: one publisher's event id is one leaf, forever; the ledger stops"
    )]
    DuplicateEventId {
        publisher: String,
        id: String,
        first_index: u64,
        sequence: u64,
    },

    /// A checkpoint found in the stream does not match the tree rebuilt from the stream.
    #[error(
        "checkpoint for tree size {size} in the stream (sequence {sequence}) does not match the log: {what}"
    )]
    CheckpointMismatch {
        size: u64,
        sequence: u64,
        what: String,
    },

    /// A size or index is out of range for the tree.
    #[error("{0}")]
    OutOfRange(String),

    /// A checkpoint note is malformed or does not verify.
    #[error("checkpoint: {0}")]
    Note(#[from] crate::note::NoteError),

    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] hazchem_bus::Error),

    /// Keys or certificates could not be loaded.
    #[error("keys and certificates: {0}")]
    Pki(#[from] hazchem_pki::PkiError),

    /// The policy could not be loaded.
    #[error("policy: {0}")]
    Policy(Box<hazchem_admission::PolicyError>),

    /// A key or a bundle the verifier was given is unusable.
    #[error("{0}")]
    Verify(hazchem_verify::Error),

    /// [`crate::Ledger::run`] was called a second time on the same ledger.
    #[error("the ledger is already running")]
    AlreadyRunning,

    /// Serving gRPC failed.
    #[error("serving: {0}")]
    Serve(#[from] hazchem_kit::ServeError),

    /// The ledger stopped following the stream.
    #[error("{0}")]
    Follow(Box<hazchem_kit::FollowError<Error>>),

    /// File I/O (bundles).
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The verifier's errors, each as the ledger's error of the same meaning (so that `status` maps an
/// out-of-range proof request to `OUT_OF_RANGE`, and a file error to `UNAVAILABLE`, as before).
impl From<hazchem_verify::Error> for Error {
    fn from(error: hazchem_verify::Error) -> Self {
        use hazchem_verify::Error as V;
        // No catch-all: a new verifier error must be given its meaning here.
        match error {
            V::OutOfRange(message) => Error::OutOfRange(message),
            V::MissingNode { level, index } => Error::MissingNode { level, index },
            V::Note(error) => Error::Note(error),
            V::Io { path, source } => Error::Io { path, source },
            other @ (V::Key { .. }
            | V::KeyFile { .. }
            | V::Registry { .. }
            | V::BundleDirNotEmpty { .. }) => Error::Verify(other),
        }
    }
}

impl From<hazchem_admission::PolicyError> for Error {
    fn from(error: hazchem_admission::PolicyError) -> Self {
        Error::Policy(Box::new(error))
    }
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The ledger's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
