//! The bus's error type.

/// Everything that can go wrong on the bus.
///
/// The validation variants (`InvalidSubject`, `InvalidEventId`, `IdMismatch`, `InvalidFilter`,
/// `InvalidCursorName`) mean the request was refused before anything was written; retrying it
/// unchanged will fail again. The others are failures of the store or the connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A subject (or one of its tokens) breaks the subject scheme.
    #[error("invalid subject {subject:?}: {reason}")]
    InvalidSubject {
        /// The offending subject or token.
        subject: String,
        /// The rule it breaks.
        reason: String,
    },

    /// An event id breaks `[A-Za-z0-9_-]{1,128}`.
    #[error("invalid event id {id:?}: must match [A-Za-z0-9_-]{{1,128}}")]
    InvalidEventId {
        /// The offending id.
        id: String,
    },

    /// The event id is not the last token of the subject.
    #[error("event id {id:?} is not the last token of subject {subject:?}")]
    IdMismatch {
        /// The subject of the message.
        subject: String,
        /// The id of the message.
        id: String,
    },

    /// A subject filter pattern is malformed or can never match an event subject.
    #[error("invalid subject filter {pattern:?}: {reason}")]
    InvalidFilter {
        /// The offending pattern.
        pattern: String,
        /// The rule it breaks.
        reason: String,
    },

    /// A cursor name breaks `[A-Za-z0-9_-]{1,128}`.
    #[error("invalid cursor name {name:?}: must match [A-Za-z0-9_-]{{1,128}}")]
    InvalidCursorName {
        /// The offending name.
        name: String,
    },

    /// The embedded store (sled) failed.
    #[error("embedded store: {0}")]
    Storage(#[from] sled::Error),

    /// The embedded store holds something this version cannot decode.
    #[error("embedded store is corrupt: {0}")]
    Corrupt(String),

    /// An earlier flush failed, so the embedded bus no longer knows what is durable and refuses
    /// further writes. Reopen the directory to recover.
    #[error("embedded bus stopped after a storage failure: {0}")]
    Poisoned(String),

    /// Could not connect to the NATS server.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The server URL tried.
        url: String,
        /// Why.
        #[source]
        source: async_nats::Error,
    },

    /// A JetStream request failed.
    #[error("JetStream {operation}: {source}")]
    JetStream {
        /// What the bus was doing.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: async_nats::Error,
    },

    /// The NATS server refused a principal's publish or read: its NATS user's permissions (see
    /// [`crate::permissions`]) do not allow it, or no credentials are configured for it.
    #[error("NATS refused {operation} for principal {principal:?}: {detail}")]
    PermissionDenied {
        /// The principal (department code or service name) the view acts as.
        principal: String,
        /// What the bus was doing: `publish`, `read` or `connect`.
        operation: &'static str,
        /// The server's words (e.g. `Permissions Violation for Publish to "..."`).
        detail: String,
    },

    /// The runtime is shutting down and a background bus task was cancelled.
    #[error("bus task cancelled (runtime shutting down)")]
    Cancelled,

    /// An I/O error outside the stores (e.g. reading a credentials file).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn jetstream(operation: &'static str, source: impl Into<async_nats::Error>) -> Self {
        Error::JetStream {
            operation,
            source: source.into(),
        }
    }

    /// True for errors caused by the request itself (bad subject, id, filter or cursor name):
    /// nothing was written and retrying unchanged cannot succeed.
    pub fn is_invalid_request(&self) -> bool {
        matches!(
            self,
            Error::InvalidSubject { .. }
                | Error::InvalidEventId { .. }
                | Error::IdMismatch { .. }
                | Error::InvalidFilter { .. }
                | Error::InvalidCursorName { .. }
        )
    }
}

/// The bus's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
