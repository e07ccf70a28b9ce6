//! The Hazchem event bus: the system of record.
//!
//! Nine city departments and the Hazchem services share hazardous-chemical events through one
//! append-only, ordered, durable log of opaque byte payloads, each with a subject and a unique
//! event id. This crate is that log, with two implementations of identical semantics behind one
//! enum, [`Bus`]:
//!
//! - [`Bus::embedded`]: a directory on local disk (sled). A product feature, used by
//!   `hazchem dev` to run everything in one process with zero external services.
//! - [`Bus::jetstream`]: one NATS JetStream stream (default [`DEFAULT_STREAM`], file storage, no
//!   limits, kept forever) plus a KV bucket for cursors. Used in the distributed deployment.
//!
//! Payloads are opaque here; the protobuf envelope is decoded by the services.
//!
//! # Subjects
//!
//! Every event lives at `hazchem.ev.<publisher>.<type>.<event-id>` ([`event_subject`]):
//!
//! | token | rule |
//! | --- | --- |
//! | `publisher` | a department code ([`DEPARTMENTS`]: miit, psb, eeb, transport, emergency, samr, approval, msa, fire) or a service name; `[a-z0-9][a-z0-9_-]{0,63}` |
//! | `type` | the snake_case event type token, `[a-z][a-z0-9]*(_[a-z0-9]+)*`, at most 64 bytes |
//! | `event-id` | the event's unique id, `[A-Za-z0-9_-]{1,128}`; always [`Outgoing::id`] |
//!
//! The stream captures `hazchem.ev.>` ([`STREAM_SUBJECTS`]). Readers select with a [`Filter`] of
//! NATS patterns (`*` one token, `>` one or more trailing tokens).
//!
//! # The contract (both implementations, checked by one contract test suite)
//!
//! - Sequences start at 1, are gapless and strictly increasing in append order.
//! - [`Bus::read`] delivers in sequence order with no gaps (with a filter: the matching subset,
//!   in order) and no duplicates, across the switch from catching up to following live appends.
//! - **One event id gives at most one record per publisher, forever** (not just within
//!   JetStream's duplicate window): a publisher publishing an id it already stored appends nothing
//!   and gets `Ack { sequence: <the original>, duplicate: true }`, also for concurrent publishes of
//!   one id, and whatever event type the repeat carries. Ids are scoped by publisher (the subject's
//!   publisher token): the same id from another publisher is another event, so no principal can
//!   occupy, or learn about, an id of another's.
//! - An [`Ack`] means durable:
//!   - embedded: after sled has flushed ([`flush_sled`]), shared by concurrent publishers (group
//!     commit); readers see only flushed messages, so nothing they saw can vanish in a crash;
//!   - JetStream: after the server's PubAck, i.e. stored by the stream (on a quorum of replicas
//!     in a cluster). When it reaches the disk is the server's `jetstream { sync_interval }`:
//!     the default (2 minutes) can lose the last acknowledged messages if the *machine* (not just
//!     the process) dies, on the replicas that acknowledged them (a quorum: two of three) at
//!     once; `sync_interval: always` fsyncs each message
//!     before the ack at a cost in throughput. The generated cluster configuration
//!     (`hazchem deploy nats`, `docs/DEPLOY.md`) sets `always`: the stream is a system of record.
//! - Stored times ([`Message::time`]) are the bus's clock at append. Embedded times never
//!   decrease; JetStream's are the stream leader's clock.
//! - Cursors ([`Bus::store_cursor`]) are a small durable name → sequence map for readers to
//!   remember where they are.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> hazchem_bus::Result<()> {
//! use futures::StreamExt;
//! use hazchem_bus::{Bus, Filter, Outgoing, Start};
//!
//! let bus = Bus::embedded(std::path::Path::new(".hazchem/bus")).await?;
//! let ack = bus
//!     .publish(Outgoing::event("miit", "licence_issued", "01J0EXAMPLE", "payload")?)
//!     .await?;
//! let mut reader = bus.read(Start::Sequence(ack.sequence), Filter::subject("hazchem.ev.miit.>")?);
//! let first = reader.next().await.expect("the stream follows forever")?;
//! assert_eq!(first.sequence, ack.sequence);
//! # Ok(())
//! # }
//! ```

mod embedded;
mod error;
mod jetstream;
pub mod permissions;
mod stream;
mod subject;

use std::path::Path;

pub use bytes::Bytes;
use chrono::{DateTime, Utc};

pub use crate::embedded::EmbeddedBus;
pub use crate::error::{Error, Result};
pub use crate::jetstream::{
    DEFAULT_CURSOR_BUCKET, DEFAULT_DUPLICATE_WINDOW, DEFAULT_READER_PULL_EXPIRY, DEFAULT_STREAM,
    JetStreamBus, JetStreamConfig,
};
pub use crate::stream::MessageStream;
pub use crate::subject::{
    DEPARTMENTS, EventSubject, Filter, STREAM_SUBJECTS, SUBJECT_PREFIX, dedup_key, event_subject,
    id_pattern, patterns_overlap, subject_matches, validate_cursor_name, validate_event_id,
    validate_pattern, validate_publisher, validate_type_token,
};

/// A message to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// `hazchem.ev.<publisher>.<type>.<event-id>`; its last token must be `id`.
    pub subject: String,
    /// The event id, deduplicated forever.
    pub id: String,
    /// Opaque bytes.
    pub payload: Bytes,
}

impl Outgoing {
    /// A message for an already-built subject (validated when published).
    pub fn new(
        subject: impl Into<String>,
        id: impl Into<String>,
        payload: impl Into<Bytes>,
    ) -> Self {
        Outgoing {
            subject: subject.into(),
            id: id.into(),
            payload: payload.into(),
        }
    }

    /// The publisher token of the subject (empty if the subject is malformed; publishing refuses it).
    pub fn publisher(&self) -> &str {
        self.subject.split('.').nth(2).unwrap_or_default()
    }

    /// The key the bus deduplicates this message by: see [`dedup_key`].
    pub fn dedup_key(&self) -> String {
        dedup_key(self.publisher(), &self.id)
    }

    /// Builds the subject from its tokens, validating them.
    pub fn event(
        publisher: &str,
        type_token: &str,
        id: &str,
        payload: impl Into<Bytes>,
    ) -> Result<Self> {
        validate_publisher(publisher)?;
        validate_type_token(type_token)?;
        validate_event_id(id)?;
        Ok(Outgoing::new(
            event_subject(publisher, type_token, id),
            id,
            payload,
        ))
    }
}

/// The bus's answer to a publish: where the event is in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The event's sequence: new, or the original one for a duplicate.
    pub sequence: u64,
    /// True if the id was already stored and nothing was appended.
    pub duplicate: bool,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its position in the log, from 1.
    pub sequence: u64,
    /// Its subject; the event id is the last token.
    pub subject: String,
    /// When the bus stored it.
    pub time: DateTime<Utc>,
    /// Opaque bytes as published.
    pub payload: Bytes,
}

impl Message {
    /// The event id (the subject's last token).
    pub fn id(&self) -> &str {
        self.subject.rsplit('.').next().unwrap_or_default()
    }

    /// The publisher token of the subject: with [`Message::id`], what identifies the event.
    pub fn publisher(&self) -> &str {
        self.subject.split('.').nth(2).unwrap_or_default()
    }
}

/// Where a reader starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The first message.
    Beginning,
    /// The first message with a sequence at or after this one (0 behaves as 1).
    Sequence(u64),
    /// The first message stored at or after this time.
    Time(DateTime<Utc>),
    /// Only messages appended after the reader starts: nothing appended before `read` was
    /// called, everything appended after [`MessageStream::ready`] returned (or the stream was
    /// first polled). The embedded bus fixes the position inside `read` itself.
    New,
}

/// The bus: embedded (sled) or JetStream, with identical semantics. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Bus {
    /// A local directory; see [`EmbeddedBus`].
    Embedded(EmbeddedBus),
    /// A JetStream stream; see [`JetStreamBus`].
    JetStream(JetStreamBus),
}

impl Bus {
    /// Opens (creating if needed) an embedded bus in `dir`. Everything acknowledged before a
    /// close or a crash is there after reopening.
    ///
    /// The directory is locked while any clone of the bus or any reader stream is alive; opening
    /// it again meanwhile fails.
    pub async fn embedded(dir: &Path) -> Result<Bus> {
        EmbeddedBus::open(dir).await.map(Bus::Embedded)
    }

    /// Connects to JetStream, then creates the stream and the cursor bucket or updates them to
    /// `config`.
    pub async fn jetstream(config: &JetStreamConfig) -> Result<Bus> {
        JetStreamBus::connect(config).await.map(Bus::JetStream)
    }

    /// A view of the bus that publishes and reads as `principal` (a department code or a
    /// service name), so the transport can enforce that principal's own permissions as well:
    ///
    /// - embedded: the bus itself (the gateway's checks are the only ones);
    /// - JetStream without [`JetStreamConfig::principal_credentials`]: the bus itself (the
    ///   shared connection);
    /// - JetStream with them: `publish`, `publish_many` and `read` go over the principal's own
    ///   NATS connection (opened lazily, cached), whose user has only the permissions the policy
    ///   gives it ([`permissions`]); a refusal is [`Error::PermissionDenied`]. `get`,
    ///   `last_sequence` and the cursors stay on the shared connection.
    pub fn for_principal(&self, principal: &str) -> Bus {
        match self {
            Bus::Embedded(bus) => Bus::Embedded(bus.clone()),
            Bus::JetStream(bus) => Bus::JetStream(bus.for_principal(principal)),
        }
    }

    /// Appends one message; returns once it is durable. A repeated id appends nothing and
    /// returns the original sequence with `duplicate: true`.
    ///
    /// Fails without writing if the subject breaks the scheme or its last token is not the id.
    pub async fn publish(&self, msg: Outgoing) -> Result<Ack> {
        match self {
            Bus::Embedded(bus) => bus.publish(msg).await,
            Bus::JetStream(bus) => bus.publish(msg).await,
        }
    }

    /// Appends many messages, pipelined and in the given order; one result per message, in
    /// order. Each result means what [`Bus::publish`]'s would.
    pub async fn publish_many(&self, msgs: Vec<Outgoing>) -> Vec<Result<Ack>> {
        match self {
            Bus::Embedded(bus) => bus.publish_many(msgs).await,
            Bus::JetStream(bus) => bus.publish_many(msgs).await,
        }
    }

    /// Reads from `start`, in sequence order, the messages passing `filter`: catches up, then
    /// follows live appends until the stream is dropped. See [`MessageStream`].
    pub fn read(&self, start: Start, filter: Filter) -> MessageStream {
        match self {
            Bus::Embedded(bus) => bus.read(start, filter),
            Bus::JetStream(bus) => bus.read(start, filter),
        }
    }

    /// The message at `sequence`, if there is one.
    pub async fn get(&self, sequence: u64) -> Result<Option<Message>> {
        match self {
            Bus::Embedded(bus) => bus.get(sequence).await,
            Bus::JetStream(bus) => bus.get(sequence).await,
        }
    }

    /// The sequence of the last message; 0 when the log is empty.
    pub async fn last_sequence(&self) -> Result<u64> {
        match self {
            Bus::Embedded(bus) => bus.last_sequence().await,
            Bus::JetStream(bus) => bus.last_sequence().await,
        }
    }

    /// The sequence stored under cursor `name`, if any.
    pub async fn load_cursor(&self, name: &str) -> Result<Option<u64>> {
        match self {
            Bus::Embedded(bus) => bus.load_cursor(name).await,
            Bus::JetStream(bus) => bus.load_cursor(name).await,
        }
    }

    /// Stores `sequence` under cursor `name` (`[A-Za-z0-9_-]{1,128}`), durably, replacing any
    /// previous value.
    pub async fn store_cursor(&self, name: &str, sequence: u64) -> Result<()> {
        match self {
            Bus::Embedded(bus) => bus.store_cursor(name, sequence).await,
            Bus::JetStream(bus) => bus.store_cursor(name, sequence).await,
        }
    }
}

/// Opens (creating) the sled database in `dir`: the one way every Hazchem store opens sled.
///
/// sled takes an exclusive lock on its files, and releases it only once its background threads have
/// let go of a database that was just closed, a moment after the last handle dropped. A service that
/// stops and starts again in one process (a restart, a rebuild) would then see "could not acquire
/// lock". So a lock held by someone else is waited for, up to [`SLED_LOCK_WAIT`]; if another process
/// really holds it, the error after that names the path.
pub fn open_sled(dir: &std::path::Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + SLED_LOCK_WAIT;
    loop {
        match sled::Config::new().path(dir).open() {
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}

/// Makes everything written to `db` so far durable: the one way every Hazchem store flushes sled.
///
/// sled's own `flush_async` (0.34.7, its latest release) can lose its wake-up when several databases
/// in one process flush at the same time (sled issues 1241 and 1308): the future never completes and
/// the flushing service hangs. sled's blocking `flush` has no such fault, so it runs here on tokio's
/// blocking pool; concurrent calls each return once everything written before them is on disk.
pub async fn flush_sled(db: &sled::Db) -> sled::Result<()> {
    let db = db.clone();
    match tokio::task::spawn_blocking(move || db.flush()).await {
        Ok(flushed) => flushed.map(drop),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(sled::Error::Io(std::io::Error::other(format!(
            "the flush was cancelled: {join}"
        )))),
    }
}

/// How long [`open_sled`] waits for a lock on the database.
pub const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
