//! The JetStream bus: the log is one JetStream stream, cursors a JetStream KV bucket.
//!
//! Deduplication forever: every publish carries
//! - `Nats-Msg-Id: <id>`: inside the stream's duplicate window the server answers a repeat with
//!   a duplicate PubAck naming the original sequence (the fast path);
//! - `Nats-Expected-Last-Subject-Sequence: 0` with
//!   `Nats-Expected-Last-Subject-Sequence-Subject: hazchem.ev.*.*.<id>` (nats-server 2.11+): the
//!   server stores the message only if no message with this id exists yet under any publisher or
//!   type, checked and stored atomically. A repeat after the window is refused with JetStream
//!   error 10071 ("wrong last sequence: N"), and the bus answers it as a duplicate of N.
//!
//! In a cluster the leader also refuses a publish while another one for the same id is still
//! being replicated (errors 10164 and 10158, no sequence given); the bus then looks the id up and,
//! if the first one has not landed yet, publishes again, so the caller still gets one record and
//! a duplicate ack.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{self, RawMessageErrorKind, StorageType};
use async_nats::jetstream::{self, kv};
use async_nats::{HeaderMap, header};
use bytes::Bytes;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::stream::MessageStream;
use crate::subject::{STREAM_SUBJECTS, id_pattern, validate_cursor_name, validate_outgoing};
use crate::{Ack, Filter, Message, Outgoing, Start};

/// The stream's default name.
pub const DEFAULT_STREAM: &str = "HAZCHEM_EVENTS";
/// The cursor bucket's default name.
pub const DEFAULT_CURSOR_BUCKET: &str = "hazchem-cursors";
/// JetStream's in-window deduplication; forever-deduplication does not depend on it.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Default [`JetStreamConfig::reader_pull_expiry`].
pub const DEFAULT_READER_PULL_EXPIRY: Duration = Duration::from_secs(5);

const EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
/// How many messages `publish_many` keeps awaiting acks at once (below async-nats' 5000 permits).
const PIPELINE_WINDOW: usize = 1024;
/// Republish attempts while a concurrent publish of the same id is still in flight (clusters).
const CONFLICT_ATTEMPTS: u32 = 8;

/// How to reach JetStream and which stream and bucket to use.
#[derive(Clone, Debug)]
pub struct JetStreamConfig {
    /// Server URL(s), comma-separated, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Stream name; default [`DEFAULT_STREAM`].
    pub stream: String,
    /// Replicas of the stream and the cursor bucket (1, or 3 on a 3-node cluster).
    pub replicas: usize,
    /// JetStream's duplicate window. Only a fast path: ids are deduplicated forever regardless.
    pub duplicate_window: Duration,
    /// Cursor KV bucket name; default [`DEFAULT_CURSOR_BUCKET`].
    pub cursor_bucket: String,
    /// A NATS `.creds` file (user JWT and nkey seed) to authenticate with.
    pub credentials_file: Option<PathBuf>,
    /// PEM root certificates to trust for the server's TLS certificate (enables TLS).
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS.
    pub tls_client_cert: Option<(PathBuf, PathBuf)>,
    /// Client connection name, shown in server monitoring.
    pub client_name: String,
    /// How long a reader's pull requests last; the server heartbeats idle readers at half this,
    /// and a reader that misses two heartbeats (server restart, failover) recreates its consumer
    /// where it left off. So this bounds how long a reader stalls after such an event; each idle
    /// reader costs one small request per period.
    pub reader_pull_expiry: Duration,
}

impl JetStreamConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        JetStreamConfig {
            url: url.into(),
            stream: DEFAULT_STREAM.to_owned(),
            replicas: 1,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            cursor_bucket: DEFAULT_CURSOR_BUCKET.to_owned(),
            credentials_file: None,
            tls_ca_file: None,
            tls_client_cert: None,
            client_name: "hazchem-bus".to_owned(),
            reader_pull_expiry: DEFAULT_READER_PULL_EXPIRY,
        }
    }
}

/// The JetStream bus. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct JetStreamBus {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream<()>,
    cursors: kv::Store,
    stream_name: String,
    reader_pull_expiry: Duration,
}

impl std::fmt::Debug for JetStreamBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamBus")
            .field("stream", &self.inner.stream_name)
            .field("state", &self.inner.client.connection_state())
            .finish()
    }
}

/// True for nats-server 2.11 and later (or an unparsable version: let the server decide).
fn supports_subject_scoped_expectations(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u64>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (2, 11),
        _ => true,
    }
}

/// The JetStream error code inside a publish error, if the server sent one.
fn api_error_code(err: &PublishError) -> Option<ErrorCode> {
    let source = std::error::Error::source(err)?;
    source
        .downcast_ref::<jetstream::Error>()
        .map(|e| e.error_code())
}

/// The existing sequence named by "wrong last sequence: N".
fn sequence_in(err: &PublishError) -> Option<u64> {
    let text = std::error::Error::source(err)?.to_string();
    let rest = text.split("wrong last sequence:").nth(1)?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|&seq| seq > 0)
}

impl JetStreamBus {
    /// Connects, then creates or updates the stream and the cursor bucket.
    pub async fn connect(config: &JetStreamConfig) -> Result<JetStreamBus> {
        let mut options = match &config.credentials_file {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path).await?,
            None => async_nats::ConnectOptions::new(),
        };
        options = options.name(&config.client_name);
        if let Some(ca) = &config.tls_ca_file {
            options = options.require_tls(true).add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &config.tls_client_cert {
            options = options
                .require_tls(true)
                .add_client_certificate(cert.clone(), key.clone());
        }
        let client = options
            .connect(config.url.as_str())
            .await
            .map_err(|err| Error::Connect {
                url: config.url.clone(),
                source: err.into(),
            })?;
        let version = client.server_info().version;
        if !supports_subject_scoped_expectations(&version) {
            return Err(Error::jetstream(
                "connect",
                format!(
                    "nats-server {version} is too old: forever-deduplication needs \
                     Nats-Expected-Last-Subject-Sequence-Subject, from nats-server 2.11"
                ),
            ));
        }
        let js = jetstream::new(client.clone());
        js.create_or_update_stream(stream::Config {
            name: config.stream.clone(),
            description: Some("Hazchem Bus events: the system of record".to_owned()),
            subjects: vec![STREAM_SUBJECTS.to_owned()],
            storage: StorageType::File,
            num_replicas: config.replicas,
            duplicate_window: config.duplicate_window,
            allow_direct: true,
            // No limits: the stream keeps everything forever.
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            max_age: Duration::ZERO,
            deny_delete: true,
            deny_purge: true,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::jetstream("create or update stream", e))?;
        let stream = js
            .get_stream_no_info(&config.stream)
            .await
            .map_err(|e| Error::jetstream("get stream", e))?;
        let cursors = js
            .create_or_update_key_value(kv::Config {
                bucket: config.cursor_bucket.clone(),
                description: "Hazchem Bus reader cursors".to_owned(),
                history: 1,
                storage: StorageType::File,
                num_replicas: config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::jetstream("create or update cursor bucket", e))?;
        Ok(JetStreamBus {
            inner: std::sync::Arc::new(Inner {
                client,
                js,
                stream,
                cursors,
                stream_name: config.stream.clone(),
                reader_pull_expiry: config.reader_pull_expiry,
            }),
        })
    }

    /// The underlying NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    async fn send(&self, msg: &Outgoing) -> Result<PublishAckFuture, PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::NATS_MESSAGE_ID, msg.id.as_str());
        headers.insert(header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
        headers.insert(
            EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT,
            id_pattern(&msg.id).as_str(),
        );
        self.inner
            .js
            .send_publish(
                msg.subject.clone(),
                PublishMessage::build()
                    .payload(msg.payload.clone())
                    .headers(headers),
            )
            .await
    }

    /// Turns a publish outcome into an ack, resolving refusals of repeated ids into duplicate
    /// acks (republishing while a concurrent first publish is still in flight).
    async fn settle(
        &self,
        msg: &Outgoing,
        mut outcome: Result<PublishAck, PublishError>,
    ) -> Result<Ack> {
        let mut attempt = 0;
        loop {
            let err = match outcome {
                Ok(ack) if ack.sequence > 0 => {
                    return Ok(Ack {
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                    });
                }
                // A duplicate whose original is still in process (no sequence yet).
                Ok(_) => None,
                Err(err) => Some(err),
            };
            let (refused, named) = match &err {
                Some(err) => {
                    let code = api_error_code(err);
                    let refused = err.kind() == PublishErrorKind::WrongLastSequence
                        || code == Some(ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT)
                        || code == Some(ErrorCode::STREAM_DUPLICATE_MESSAGE_CONFLICT);
                    (refused, sequence_in(err))
                }
                None => (true, None),
            };
            if let Some(sequence) = named {
                return Ok(Ack {
                    sequence,
                    duplicate: true,
                });
            }
            if !refused {
                let err = err.expect("only errors are refused");
                return Err(Error::jetstream("publish", err));
            }
            if let Some(sequence) = self.sequence_of_id(&msg.id).await? {
                return Ok(Ack {
                    sequence,
                    duplicate: true,
                });
            }
            attempt += 1;
            if attempt >= CONFLICT_ATTEMPTS {
                return Err(match err {
                    Some(err) => Error::jetstream("publish (id conflict kept recurring)", err),
                    None => Error::jetstream(
                        "publish",
                        "duplicate ack without a sequence kept recurring",
                    ),
                });
            }
            // The first publish of this id is still being replicated: no event tells us when it
            // lands, so back off briefly and try again.
            tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
            outcome = match self.send(msg).await {
                Ok(ack) => ack.await,
                Err(err) => Err(err),
            };
        }
    }

    /// The sequence of the message carrying event id `id`, asking the stream leader.
    async fn sequence_of_id(&self, id: &str) -> Result<Option<u64>> {
        match self
            .inner
            .stream
            .get_last_raw_message_by_subject(&id_pattern(id))
            .await
        {
            Ok(message) => Ok(Some(message.sequence)),
            Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(err) => Err(Error::jetstream("look up event id", err)),
        }
    }

    /// See [`crate::Bus::publish`].
    pub async fn publish(&self, msg: Outgoing) -> Result<Ack> {
        validate_outgoing(&msg.subject, &msg.id)?;
        let outcome = match self.send(&msg).await {
            Ok(ack) => ack.await,
            Err(err) => Err(err),
        };
        self.settle(&msg, outcome).await
    }

    /// See [`crate::Bus::publish_many`]. Messages are sent in order on one connection without
    /// waiting for each ack (up to a window of unacknowledged ones), so the server sequences them
    /// in the order given.
    pub async fn publish_many(&self, msgs: Vec<Outgoing>) -> Vec<Result<Ack>> {
        let mut results: Vec<Option<Result<Ack>>> = (0..msgs.len()).map(|_| None).collect();
        let mut in_flight: std::collections::VecDeque<(usize, PublishAckFuture)> =
            std::collections::VecDeque::new();
        let mut settled: Vec<(usize, Result<PublishAck, PublishError>)> = Vec::new();
        for (i, msg) in msgs.iter().enumerate() {
            if let Err(err) = validate_outgoing(&msg.subject, &msg.id) {
                results[i] = Some(Err(err));
                continue;
            }
            if in_flight.len() >= PIPELINE_WINDOW {
                let (j, ack) = in_flight.pop_front().expect("window is full");
                settled.push((j, ack.await));
            }
            match self.send(msg).await {
                Ok(ack) => in_flight.push_back((i, ack)),
                Err(err) => settled.push((i, Err(err))),
            }
        }
        for (j, ack) in in_flight {
            settled.push((j, ack.await));
        }
        for (i, outcome) in settled {
            results[i] = Some(self.settle(&msgs[i], outcome).await);
        }
        results
            .into_iter()
            .map(|r| r.expect("every slot filled"))
            .collect()
    }

    /// See [`crate::Bus::read`]. The ordered consumer is created when the stream is first polled
    /// or [`MessageStream::ready`] is awaited.
    pub fn read(&self, start: Start, filter: Filter) -> MessageStream {
        let stream = self.inner.stream.clone();
        let max_expires = self.inner.reader_pull_expiry;
        MessageStream::starting(Box::pin(async move {
            let deliver_policy = match start {
                Start::Beginning => DeliverPolicy::All,
                Start::Sequence(n) => DeliverPolicy::ByStartSequence {
                    start_sequence: n.max(1),
                },
                Start::Time(t) => DeliverPolicy::ByStartTime { start_time: t },
                Start::New => DeliverPolicy::New,
            };
            // The server refuses overlapping filter subjects; then take everything and filter
            // here.
            let filter_subjects = filter.server_side().unwrap_or_default();
            let consumer = stream
                .create_consumer(OrderedConfig {
                    deliver_policy,
                    filter_subjects,
                    max_expires,
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::jetstream("create ordered consumer", e))?;
            // Where the server put the start. async-nats recreates an ordered consumer that has
            // delivered nothing yet with DeliverPolicy::All (after a reconnect, say), so older
            // messages are dropped here; this also guards against any redelivery.
            let mut next = consumer.cached_info().delivered.stream_sequence + 1;
            // The server starts ByStartTime at the first message at or after the time, but when
            // the time is in the future it starts at the next message whatever its time.
            let mut time_gate = match start {
                Start::Time(t) => Some(t),
                _ => None,
            };
            let mut messages = consumer
                .messages()
                .await
                .map_err(|e| Error::jetstream("start ordered consumer", e))?;
            // async-nats 0.51's ordered stream loses its wake-up after the first missed
            // heartbeat (it returns Pending with no timer armed), so a reader idle across a
            // server restart would never notice the second miss and never recreate its
            // consumer. Re-polling it once per pull period re-arms the timer.
            let mut repoll = tokio::time::interval(max_expires.max(Duration::from_millis(100)));
            repoll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let live = async_stream::stream! {
                loop {
                    let item = tokio::select! {
                        item = messages.next() => item,
                        _ = repoll.tick() => continue,
                    };
                    let Some(item) = item else { break };
                    let message = match item {
                        Ok(message) => message,
                        Err(err) => {
                            // The ordered consumer resumes after the last message it delivered.
                            tracing::warn!(error = %err, "JetStream reader error; it recovers by itself");
                            continue;
                        }
                    };
                    let info = match message.info() {
                        Ok(info) => (info.stream_sequence, info.published),
                        Err(err) => {
                            tracing::warn!(error = %err, "JetStream message without metadata; skipped");
                            continue;
                        }
                    };
                    let (sequence, time) = info;
                    if sequence < next {
                        continue;
                    }
                    next = sequence + 1;
                    if let Some(gate) = time_gate {
                        if time < gate {
                            continue;
                        }
                        time_gate = None;
                    }
                    let subject = message.subject.to_string();
                    if !filter.matches(&subject) {
                        continue;
                    }
                    yield Ok(Message {
                        sequence,
                        subject,
                        time,
                        payload: message.payload.clone(),
                    });
                }
            };
            Ok(live.boxed())
        }))
    }

    /// See [`crate::Bus::get`]. Asks the stream leader, so it sees every acknowledged message.
    pub async fn get(&self, sequence: u64) -> Result<Option<Message>> {
        if sequence == 0 {
            return Ok(None);
        }
        match self.inner.stream.get_raw_message(sequence).await {
            Ok(message) => Ok(Some(Message {
                sequence: message.sequence,
                subject: message.subject.to_string(),
                time: message.time,
                payload: message.payload,
            })),
            Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(err) => Err(Error::jetstream("get message", err)),
        }
    }

    /// See [`crate::Bus::last_sequence`].
    pub async fn last_sequence(&self) -> Result<u64> {
        let info = self
            .inner
            .stream
            .get_info()
            .await
            .map_err(|e| Error::jetstream("stream info", e))?;
        Ok(info.state.last_sequence)
    }

    /// See [`crate::Bus::load_cursor`].
    pub async fn load_cursor(&self, name: &str) -> Result<Option<u64>> {
        validate_cursor_name(name)?;
        let Some(value) = self
            .inner
            .cursors
            .get(name)
            .await
            .map_err(|e| Error::jetstream("load cursor", e))?
        else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&value).map_err(|_| {
            Error::jetstream("load cursor", format!("cursor {name:?} is not UTF-8"))
        })?;
        text.parse().map(Some).map_err(|_| {
            Error::jetstream(
                "load cursor",
                format!("cursor {name:?} holds {text:?}, not a sequence"),
            )
        })
    }

    /// See [`crate::Bus::store_cursor`].
    pub async fn store_cursor(&self, name: &str, sequence: u64) -> Result<()> {
        validate_cursor_name(name)?;
        self.inner
            .cursors
            .put(name, Bytes::from(sequence.to_string()))
            .await
            .map_err(|e| Error::jetstream("store cursor", e))?;
        Ok(())
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.inner.stream_name
    }

    /// Flushes anything the client still buffers.
    pub async fn close(&self) -> Result<()> {
        self.inner
            .client
            .flush()
            .await
            .map_err(|e| Error::jetstream("flush", e))
    }
}

#[cfg(test)]
mod tests {
    use super::supports_subject_scoped_expectations as ok;

    #[test]
    fn server_version_gate() {
        assert!(ok("2.11.0"));
        assert!(ok("2.15.1"));
        assert!(ok("v2.12.0-RC.1"));
        assert!(ok("3.0.0"));
        assert!(!ok("2.10.24"));
        assert!(!ok("2.9.25"));
        assert!(ok(""));
    }
}
