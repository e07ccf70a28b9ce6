//! The embedded bus: the same log on local disk in sled, zero external services.
//!
//! Layout: three sled trees.
//! - `log`: big-endian sequence → record (format version, stored time in Unix nanoseconds,
//!   subject, payload).
//! - `ids`: deduplication key (`<publisher>.<event id>`, [`crate::dedup_key`]) → big-endian
//!   sequence, written in the same sled transaction as the log entry, so a crash can never keep one
//!   without the other. Derived from the log: a store whose index is of an older layout (keyed by
//!   the id alone, before ids were scoped by publisher) is re-indexed from the log when opened.
//! - `cursors`: cursor name → big-endian sequence.
//!
//! Writes are serialised by one mutex that assigns sequences and stored times. Durability uses
//! group commit: after its write a publisher waits for a flush ([`crate::flush_sled`]) that covers it; one
//! publisher at a time leads a flush, covering every write made before it started, so a crowd of
//! concurrent publishers shares a few fsyncs. Each write runs in its own spawned task, so a
//! publisher that gives up waiting never leaves a write half done.
//!
//! Readers see only the *committed* prefix, the messages a flush has made durable, published
//! through a `tokio::sync::watch` that wakes live followers. A reader can therefore never see a
//! message that a crash could take back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::stream::MessageStream;
use crate::subject::{validate_cursor_name, validate_outgoing};
use crate::{Ack, Filter, Message, Outgoing, Start};

const RECORD_VERSION: u8 = 1;
/// How many messages a catching-up reader takes from sled at a time.
const READ_CHUNK: usize = 256;

/// The embedded bus. Cheap to clone; clones share one store.
///
/// The directory stays open (and locked against other processes) while any clone or any reader
/// stream is alive.
#[derive(Clone)]
pub struct EmbeddedBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EmbeddedBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBus")
            .field("dir", &self.shared.dir)
            .field("committed", &*self.shared.committed.borrow())
            .finish()
    }
}

struct Shared {
    dir: PathBuf,
    db: sled::Db,
    log: sled::Tree,
    ids: sled::Tree,
    cursors: sled::Tree,
    writer: Mutex<WriterState>,
    /// Held by the publisher leading a flush; the others queue behind it.
    flush_lead: tokio::sync::Mutex<()>,
    /// The highest write ticket known durable.
    flushed_ticket: AtomicU64,
    /// The highest sequence known durable: what readers may see.
    committed: watch::Sender<u64>,
    /// Set when a flush failed; the store no longer knows what is durable.
    poisoned: OnceLock<String>,
}

struct WriterState {
    /// The last sequence written (maybe not yet durable).
    last_seq: u64,
    /// The stored time of the last message, Unix nanoseconds; times never go backwards.
    last_time: i64,
    /// Counts every write (messages and cursors), so a flush knows what it covers.
    ticket: u64,
}

struct Record {
    time: i64,
    subject: String,
    payload: Bytes,
}

impl Record {
    fn encode(time: i64, subject: &str, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(1 + 8 + 2 + subject.len() + payload.len());
        buf.push(RECORD_VERSION);
        buf.extend_from_slice(&time.to_be_bytes());
        // Subjects are at most a few hundred bytes (validated), so u16 is plenty.
        buf.extend_from_slice(&(subject.len() as u16).to_be_bytes());
        buf.extend_from_slice(subject.as_bytes());
        buf.extend_from_slice(payload);
        buf
    }

    fn decode(seq: u64, raw: &sled::IVec) -> Result<Record> {
        let corrupt = |what: &str| Error::Corrupt(format!("log entry {seq}: {what}"));
        let bytes: &[u8] = raw;
        if bytes.len() < 11 {
            return Err(corrupt("too short"));
        }
        if bytes[0] != RECORD_VERSION {
            return Err(corrupt(&format!("unknown record version {}", bytes[0])));
        }
        let time = i64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
        let len = u16::from_be_bytes(bytes[9..11].try_into().expect("2 bytes")) as usize;
        let subject = bytes
            .get(11..11 + len)
            .ok_or_else(|| corrupt("subject runs past the end"))?;
        let subject = std::str::from_utf8(subject)
            .map_err(|_| corrupt("subject is not UTF-8"))?
            .to_owned();
        Ok(Record {
            time,
            subject,
            payload: Bytes::copy_from_slice(&bytes[11 + len..]),
        })
    }

    fn into_message(self, sequence: u64) -> Message {
        Message {
            sequence,
            subject: self.subject,
            time: DateTime::from_timestamp_nanos(self.time),
            payload: self.payload,
        }
    }
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn decode_seq(raw: &[u8]) -> Result<u64> {
    raw.try_into().map(u64::from_be_bytes).map_err(|_| {
        Error::Corrupt(format!(
            "expected an 8-byte sequence, found {} bytes",
            raw.len()
        ))
    })
}

#[allow(clippy::disallowed_methods)] // the bus's clock at append is part of the bus contract (Message::time)
fn now_nanos() -> i64 {
    // chrono's nanosecond range ends in 2262.
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn nanos(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt()
        .unwrap_or(if time.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
}

/// Runs a write on its own task so that it completes (and gets flushed) even if the caller stops
/// waiting.
async fn detached<T: Send + 'static>(
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(fut).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => Err(Error::Cancelled),
    }
}

/// The layout of the `ids` tree this code writes, recorded under [`IDS_LAYOUT_KEY`] in the default tree.
const IDS_LAYOUT: &[u8] = b"publisher.id";
const IDS_LAYOUT_KEY: &[u8] = b"ids-layout";

/// Rebuilds the id index from the log if it was written in an older layout (or not recorded), then
/// records the layout. Runs before any publish, on open.
fn reindex_if_older(db: &sled::Db, log: &sled::Tree, ids: &sled::Tree) -> Result<()> {
    if db.get(IDS_LAYOUT_KEY)?.as_deref() == Some(IDS_LAYOUT) {
        return Ok(());
    }
    ids.clear()?;
    for item in log.iter() {
        let (key, value) = item?;
        let seq = decode_seq(&key)?;
        let record = Record::decode(seq, &value)?;
        let parsed = crate::EventSubject::parse(&record.subject)?;
        let dedup_key = crate::dedup_key(parsed.publisher, parsed.id);
        // The first record of a key is the one a duplicate answers with.
        if ids.get(dedup_key.as_bytes())?.is_none() {
            ids.insert(dedup_key.as_bytes(), &key)?;
        }
    }
    db.insert(IDS_LAYOUT_KEY, IDS_LAYOUT)?;
    db.flush()?;
    tracing::info!(
        messages = log.len(),
        "re-indexed the embedded bus's event ids by publisher"
    );
    Ok(())
}

/// What one message's write did.
enum Written {
    New(u64),
    Duplicate(u64),
}

impl EmbeddedBus {
    /// Opens (creating if needed) the store in `dir`.
    pub async fn open(dir: &Path) -> Result<EmbeddedBus> {
        let dir = dir.to_path_buf();
        let path = dir.clone();
        let db = tokio::task::spawn_blocking(move || crate::open_sled(&path))
            .await
            .map_err(|_| Error::Cancelled)??;
        let log = db.open_tree("log")?;
        let ids = db.open_tree("ids")?;
        let cursors = db.open_tree("cursors")?;
        reindex_if_older(&db, &log, &ids)?;
        let (last_seq, last_time) = match log.last()? {
            None => (0, i64::MIN),
            Some((key, value)) => {
                let seq = decode_seq(&key)?;
                (seq, Record::decode(seq, &value)?.time)
            }
        };
        // What survived the last close or crash is durable by definition now.
        let (committed, _) = watch::channel(last_seq);
        tracing::debug!(dir = %dir.display(), last_seq, "opened embedded bus");
        Ok(EmbeddedBus {
            shared: Arc::new(Shared {
                dir,
                db,
                log,
                ids,
                cursors,
                writer: Mutex::new(WriterState {
                    last_seq,
                    last_time,
                    ticket: 0,
                }),
                flush_lead: tokio::sync::Mutex::new(()),
                flushed_ticket: AtomicU64::new(0),
                committed,
                poisoned: OnceLock::new(),
            }),
        })
    }

    /// The directory this bus stores its data in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// See [`crate::Bus::publish`].
    pub async fn publish(&self, msg: Outgoing) -> Result<Ack> {
        validate_outgoing(&msg.subject, &msg.id)?;
        let shared = self.shared.clone();
        detached(async move {
            let (written, ticket) = shared.write_messages(std::slice::from_ref(&msg))?;
            let ack = to_ack(written.into_iter().next().expect("one result per message"));
            shared.make_durable(ticket, ack.sequence).await?;
            Ok(ack)
        })
        .await
    }

    /// See [`crate::Bus::publish_many`]. Sequences are assigned in the order given, and one group
    /// commit covers the whole batch.
    pub async fn publish_many(&self, msgs: Vec<Outgoing>) -> Vec<Result<Ack>> {
        let n = msgs.len();
        let mut results: Vec<Option<Result<Ack>>> = Vec::with_capacity(n);
        let mut valid = Vec::with_capacity(n);
        for msg in msgs {
            match validate_outgoing(&msg.subject, &msg.id) {
                Ok(()) => {
                    results.push(None);
                    valid.push(msg);
                }
                Err(err) => results.push(Some(Err(err))),
            }
        }
        if !valid.is_empty() {
            let shared = self.shared.clone();
            let outcome = detached(async move {
                let (written, ticket) = shared.write_messages(&valid)?;
                let acks: Vec<Ack> = written.into_iter().map(to_ack).collect();
                let highest = acks.iter().map(|a| a.sequence).max().unwrap_or(0);
                shared.make_durable(ticket, highest).await?;
                Ok(acks)
            })
            .await;
            match outcome {
                Ok(acks) => {
                    let mut acks = acks.into_iter();
                    for slot in results.iter_mut().filter(|r| r.is_none()) {
                        *slot = Some(Ok(acks.next().expect("one ack per valid message")));
                    }
                }
                Err(err) => {
                    // The same failure hit every valid message of the batch.
                    let text = err.to_string();
                    let mut first = Some(err);
                    for slot in results.iter_mut().filter(|r| r.is_none()) {
                        *slot = Some(Err(first
                            .take()
                            .unwrap_or_else(|| Error::Poisoned(text.clone()))));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every slot filled"))
            .collect()
    }

    /// See [`crate::Bus::read`]. The start position is fixed here, synchronously.
    pub fn read(&self, start: Start, filter: Filter) -> MessageStream {
        let shared = self.shared.clone();
        let mut committed_rx = shared.committed.subscribe();
        let committed_now = *committed_rx.borrow_and_update();
        // For `Time`, messages before the first one stored at or after the time are skipped.
        let (mut next, mut time_gate) = match start {
            Start::Beginning => (1, None),
            Start::Sequence(n) => (n.max(1), None),
            Start::New => (committed_now + 1, None),
            Start::Time(t) => {
                let t = nanos(t);
                match shared.first_at_or_after(t, committed_now) {
                    Ok(seq) => (seq, Some(t)),
                    Err(err) => {
                        return MessageStream::running(
                            futures::stream::once(async { Err(err) }).boxed(),
                        );
                    }
                }
            }
        };
        let stream = async_stream::stream! {
            loop {
                let committed = *committed_rx.borrow_and_update();
                while next <= committed {
                    let upto = committed.min(next.saturating_add(READ_CHUNK as u64 - 1));
                    let chunk = match shared.read_range(next, upto) {
                        Ok(chunk) => chunk,
                        Err(err) => {
                            yield Err(err);
                            return;
                        }
                    };
                    for (seq, record) in chunk {
                        if let Some(gate) = time_gate {
                            if record.time < gate {
                                continue;
                            }
                            time_gate = None;
                        }
                        if filter.matches(&record.subject) {
                            yield Ok(record.into_message(seq));
                        }
                    }
                    next = upto + 1;
                }
                if committed_rx.changed().await.is_err() {
                    // Unreachable while we hold `shared`, which owns the sender.
                    return;
                }
            }
        };
        MessageStream::running(stream.boxed())
    }

    /// See [`crate::Bus::get`].
    pub async fn get(&self, sequence: u64) -> Result<Option<Message>> {
        if sequence == 0 || sequence > *self.shared.committed.borrow() {
            return Ok(None);
        }
        match self.shared.log.get(seq_key(sequence))? {
            None => Ok(None),
            Some(raw) => Ok(Some(Record::decode(sequence, &raw)?.into_message(sequence))),
        }
    }

    /// See [`crate::Bus::last_sequence`].
    pub async fn last_sequence(&self) -> Result<u64> {
        Ok(*self.shared.committed.borrow())
    }

    /// See [`crate::Bus::load_cursor`].
    pub async fn load_cursor(&self, name: &str) -> Result<Option<u64>> {
        validate_cursor_name(name)?;
        self.shared
            .cursors
            .get(name.as_bytes())?
            .map(|raw| decode_seq(&raw))
            .transpose()
    }

    /// See [`crate::Bus::store_cursor`].
    pub async fn store_cursor(&self, name: &str, sequence: u64) -> Result<()> {
        validate_cursor_name(name)?;
        let shared = self.shared.clone();
        let name = name.to_owned();
        detached(async move {
            let ticket = {
                let mut writer = shared.lock_writer()?;
                shared.cursors.insert(name.as_bytes(), &seq_key(sequence))?;
                writer.ticket += 1;
                writer.ticket
            };
            shared.make_durable(ticket, 0).await
        })
        .await
    }
}

fn to_ack(written: Written) -> Ack {
    match written {
        Written::New(sequence) => Ack {
            sequence,
            duplicate: false,
        },
        Written::Duplicate(sequence) => Ack {
            sequence,
            duplicate: true,
        },
    }
}

impl Shared {
    fn lock_writer(&self) -> Result<std::sync::MutexGuard<'_, WriterState>> {
        if let Some(reason) = self.poisoned.get() {
            return Err(Error::Poisoned(reason.clone()));
        }
        // A panic while holding the lock cannot leave sled half-written (each message is one
        // transaction) and the state is re-read below, so a poisoned mutex is still usable.
        Ok(self.writer.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Writes the messages in order (or finds their ids already stored); returns what happened
    /// to each and the write ticket a flush must cover (0 if nothing was written: duplicates
    /// only need their original sequence committed).
    fn write_messages(&self, msgs: &[Outgoing]) -> Result<(Vec<Written>, u64)> {
        let mut writer = self.lock_writer()?;
        let mut out = Vec::with_capacity(msgs.len());
        let mut need_ticket = 0;
        for msg in msgs {
            let dedup_key = msg.dedup_key();
            if let Some(existing) = self.ids.get(dedup_key.as_bytes())? {
                out.push(Written::Duplicate(decode_seq(&existing)?));
                continue;
            }
            let seq = writer.last_seq + 1;
            let time = now_nanos().max(writer.last_time);
            let record = Record::encode(time, &msg.subject, &msg.payload);
            let key = seq_key(seq);
            (&self.log, &self.ids)
                .transaction(|(log, ids)| {
                    log.insert(&key, record.as_slice())?;
                    ids.insert(dedup_key.as_bytes(), &key)?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(|err| match err {
                    TransactionError::Storage(err) => Error::Storage(err),
                    TransactionError::Abort(()) => unreachable!("the transaction never aborts"),
                })?;
            writer.last_seq = seq;
            writer.last_time = time;
            writer.ticket += 1;
            need_ticket = writer.ticket;
            out.push(Written::New(seq));
        }
        Ok((out, need_ticket))
    }

    /// Returns once write `ticket` and message `seq` are durable, leading a flush if nobody else
    /// is covering them (group commit).
    async fn make_durable(&self, ticket: u64, seq: u64) -> Result<()> {
        if self.flushed_ticket.load(Ordering::Acquire) >= ticket && *self.committed.borrow() >= seq
        {
            return Ok(());
        }
        let _lead = self.flush_lead.lock().await;
        if self.flushed_ticket.load(Ordering::Acquire) >= ticket && *self.committed.borrow() >= seq
        {
            return Ok(());
        }
        // Everything written before this snapshot is covered by the flush that follows it.
        let (cover_ticket, cover_seq) = {
            let writer = self.lock_writer()?;
            (writer.ticket, writer.last_seq)
        };
        if let Err(err) = crate::flush_sled(&self.db).await {
            let reason = err.to_string();
            let _ = self.poisoned.set(reason.clone());
            tracing::error!(dir = %self.dir.display(), error = %reason, "embedded bus flush failed; refusing further writes");
            return Err(Error::Storage(err));
        }
        self.flushed_ticket
            .fetch_max(cover_ticket, Ordering::AcqRel);
        self.committed.send_if_modified(|committed| {
            if cover_seq > *committed {
                *committed = cover_seq;
                true
            } else {
                false
            }
        });
        Ok(())
    }

    fn read_range(&self, from: u64, to: u64) -> Result<Vec<(u64, Record)>> {
        let mut out = Vec::with_capacity((to - from + 1) as usize);
        for entry in self.log.range(seq_key(from)..=seq_key(to)) {
            let (key, value) = entry?;
            let seq = decode_seq(&key)?;
            out.push((seq, Record::decode(seq, &value)?));
        }
        Ok(out)
    }

    fn time_of(&self, seq: u64) -> Result<i64> {
        let raw = self
            .log
            .get(seq_key(seq))?
            .ok_or_else(|| Error::Corrupt(format!("log entry {seq} is missing")))?;
        Ok(Record::decode(seq, &raw)?.time)
    }

    /// The first committed sequence stored at or after `time`, or `committed + 1`. Binary search:
    /// stored times never decrease.
    fn first_at_or_after(&self, time: i64, committed: u64) -> Result<u64> {
        let (mut lo, mut hi) = (1, committed + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time_of(mid)? >= time {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose id index predates ids scoped by publisher (keyed by the bare id, no layout
    /// recorded) is re-indexed from the log when opened: duplicates are still found, per publisher.
    #[tokio::test]
    async fn an_id_index_of_the_older_layout_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = EmbeddedBus::open(dir.path()).await.unwrap();
            for (publisher, id) in [("psb", "a"), ("fire", "b")] {
                bus.publish(Outgoing::event(publisher, "alarm", id, "x").unwrap())
                    .await
                    .unwrap();
            }
            // Rewrite the index as the older layout had it.
            let shared = &bus.shared;
            shared.ids.clear().unwrap();
            shared.ids.insert("a", &seq_key(1)).unwrap();
            shared.ids.insert("b", &seq_key(2)).unwrap();
            shared.db.remove(IDS_LAYOUT_KEY).unwrap();
            shared.db.flush().unwrap();
        }
        let bus = EmbeddedBus::open(dir.path()).await.unwrap();
        let again = bus
            .publish(Outgoing::event("psb", "alarm", "a", "y").unwrap())
            .await
            .unwrap();
        assert_eq!((again.sequence, again.duplicate), (1, true));
        let theirs = bus
            .publish(Outgoing::event("fire", "alarm", "a", "z").unwrap())
            .await
            .unwrap();
        assert_eq!((theirs.sequence, theirs.duplicate), (3, false));
        assert!(
            bus.shared.ids.get("a").unwrap().is_none(),
            "no bare-id key is left"
        );
    }
}
