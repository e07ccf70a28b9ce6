//! The stream against the ledger's signed checkpoints: the system of record itself, which every service
//! derives its state from, checked with nothing but the ledger's public key.
//!
//! The ledger publishes each checkpoint it signs into the stream as a `checkpoint_published` event
//! (subject `hazchem.ev.ledger.checkpoint_published.<id>`). [`verify_stream`] finds the latest one whose
//! note verifies with the trusted key (one signed by anyone else, or of another log, is ignored) and
//! checks the stream's messages `1..=size`, byte for byte, as the leaves of that checkpoint. `follow`
//! runs it before a projection folds anything when [`crate::FollowOptions::checkpoints`] names the key,
//! and `hazchem audit verify --stream` runs it for an auditor.

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use hazchem_bus::{Bus, Filter, Message, Start};
use hazchem_proto::v1;
use hazchem_verify::note::VerifierKey;
use hazchem_verify::verify::{Requirements, Verified, Verifier, VerifyFailure};

/// The ledger's name in the service table: the publisher of checkpoints.
pub const LEDGER: &str = "ledger";

/// The checkpoint a stored record publishes, with the event's time, if it is a `checkpoint_published`
/// event published by the ledger service.
pub fn published_checkpoint(record: &[u8]) -> Option<(v1::CheckpointPublished, DateTime<Utc>)> {
    let (record, event) = hazchem_proto::open_record(record).ok()?;
    let by_ledger = matches!(
        record.publisher.as_ref().and_then(|p| p.principal.as_ref()),
        Some(v1::publisher::Principal::Service(name)) if name == LEDGER
    );
    if !by_ledger {
        return None;
    }
    let time = event
        .time
        .as_ref()
        .and_then(hazchem_proto::time::datetime)
        .unwrap_or_default();
    match event.payload {
        Some(v1::event::Payload::CheckpointPublished(c)) => Some((c, time)),
        _ => None,
    }
}

/// What [`verify_stream`] found.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one value per verification, returned once
pub enum StreamVerdict {
    /// The stream holds no checkpoint of the key's origin signed by the key (the ledger has not
    /// published one yet, or they are all forged): nothing can be checked.
    NoCheckpoint { messages: u64 },
    /// The stream's first `size` messages were checked against the latest good checkpoint, `note`.
    Checked {
        note: String,
        result: Result<Verified, VerifyFailure>,
    },
}

/// Verifies the stream in `bus` against the latest checkpoint in it that `key` signed, with what
/// `requirements` asks (that it extends an earlier checkpoint an auditor saved, that witnesses cosigned
/// the checkpoint, origin signatures). Reads the stream twice: once for the
/// ledger's checkpoints (other messages are passed over by subject, undecoded), then its first `size`
/// messages as leaves, keeping 32 bytes a message.
pub async fn verify_stream(
    bus: &Bus,
    key: VerifierKey,
    requirements: &Requirements,
) -> Result<StreamVerdict, hazchem_bus::Error> {
    let last = bus.last_sequence().await?;
    let mut latest: Option<(u64, String)> = None;
    let mut messages = std::pin::pin!(read_upto(bus, last));
    while let Some(message) = messages.next().await {
        let message = message?;
        if !is_checkpoint_subject(&message.subject) {
            continue;
        }
        let Some((published, _)) = published_checkpoint(&message.payload) else {
            continue;
        };
        let Ok(checkpoint) = key.open_checkpoint(&published.signed_note) else {
            tracing::warn!(
                sequence = message.sequence,
                "a checkpoint in the stream does not verify with the key; ignored"
            );
            continue;
        };
        let newest = latest
            .as_ref()
            .is_none_or(|(size, _)| checkpoint.size >= *size);
        if newest && checkpoint.size <= last {
            latest = Some((checkpoint.size, published.signed_note));
        }
    }
    let Some((_, note)) = latest else {
        return Ok(StreamVerdict::NoCheckpoint { messages: last });
    };
    let result = check_prefix(bus, key, &note, requirements).await?;
    Ok(StreamVerdict::Checked { note, result })
}

/// The stream's first messages as the leaves of the checkpoint `note`, with `requirements`.
async fn check_prefix(
    bus: &Bus,
    key: VerifierKey,
    note: &str,
    requirements: &Requirements,
) -> Result<Result<Verified, VerifyFailure>, hazchem_bus::Error> {
    let mut verifier = match Verifier::with_requirements(key, note, requirements) {
        Ok(v) => v,
        Err(failure) => return Ok(Err(failure)),
    };
    let size = verifier.checkpoint().size;
    let mut messages = std::pin::pin!(read_upto(bus, size));
    while let Some(message) = messages.next().await {
        let message = message?;
        verifier.push(message.sequence - 1, &message.payload, None);
    }
    Ok(verifier.finish())
}

/// Whether a subject is `hazchem.ev.ledger.checkpoint_published.<id>` (checked before decoding anything).
pub fn is_checkpoint_subject(subject: &str) -> bool {
    let mut tokens = subject.split('.').skip(2);
    tokens.next() == Some(LEDGER) && tokens.next() == Some("checkpoint_published")
}

/// Every message of `bus` with a sequence up to `last`, in order, then the end.
fn read_upto(
    bus: &Bus,
    last: u64,
) -> impl futures::Stream<Item = Result<Message, hazchem_bus::Error>> + use<> {
    let stream = bus.read(Start::Beginning, Filter::all());
    futures::stream::unfold((stream, last == 0), move |(mut stream, done)| async move {
        if done {
            return None;
        }
        match stream.next().await? {
            Ok(message) => {
                let done = message.sequence >= last;
                Some((Ok(message), (stream, done)))
            }
            Err(error) => Some((Err(error), (stream, true))),
        }
    })
}
