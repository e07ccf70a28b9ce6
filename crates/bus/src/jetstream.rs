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
//!
//! # Connections
//!
//! One *shared* connection (the admin or service NATS user of [`JetStreamConfig`]) creates or
//! looks up the stream and the cursor bucket and serves `get`, `last_sequence` and the cursors.
//! [`JetStreamBus::for_principal`] gives a view whose `publish`, `publish_many` and `read` go
//! over that principal's own connection (its NATS user, from
//! [`JetStreamConfig::principal_credentials`]), so that the NATS server checks the same policy
//! the gateway does: see [`crate::permissions`] for what each user is granted. Principal
//! connections are opened on first use and cached; their inboxes are `_INBOX.<principal>`.
//!
//! NATS cannot scope a consumer with several filter subjects by permission (its create request
//! carries no filter in its subject), so a principal view reads a filter of several patterns by
//! first having the principal's connection create (and delete) a single-filter consumer for each
//! pattern, which the server allows only within the principal's read permissions, and then
//! reading the union in order over the shared connection.

use std::collections::{BTreeMap, HashMap};
use std::future::IntoFuture;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{self, RawMessageErrorKind, StorageType};
use async_nats::jetstream::{self, kv};
use async_nats::{HeaderMap, ServerError, header};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast;

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
    /// A NATS `.creds` file (user JWT and nkey seed) to authenticate the shared connection with.
    pub credentials_file: Option<PathBuf>,
    /// A file holding an nkey seed (`SU...`, as `hazchem deploy nats` writes them) to
    /// authenticate the shared connection with, for servers configured with nkey users.
    pub nkey_seed_file: Option<PathBuf>,
    /// The shared connection's inbox prefix. The generated NATS permissions let each user
    /// subscribe only to its own inboxes, `_INBOX.<user>.>`, so a connection as a generated user
    /// sets this to `_INBOX.<user>` ([`crate::permissions::inbox_prefix`]). Default: `_INBOX`.
    pub inbox_prefix: Option<String>,
    /// Per-principal credentials: principal name (a department code or service name) → file
    /// holding that principal's nkey seed. Empty: every principal view uses the shared
    /// connection. Non-empty: a view of a principal missing here refuses to publish and read
    /// (fail closed).
    pub principal_credentials: BTreeMap<String, PathBuf>,
    /// Whether `connect` creates or updates the stream and the cursor bucket (`true`, the
    /// default: the admin user) or only looks them up (`false`: service users, which may not
    /// manage streams).
    pub manage: bool,
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
            nkey_seed_file: None,
            inbox_prefix: None,
            principal_credentials: BTreeMap::new(),
            manage: true,
            tls_ca_file: None,
            tls_client_cert: None,
            client_name: "hazchem-bus".to_owned(),
            reader_pull_expiry: DEFAULT_READER_PULL_EXPIRY,
        }
    }
}

/// The JetStream bus. Cheap to clone; clones share one connection (and the cached principal
/// connections).
#[derive(Clone)]
pub struct JetStreamBus {
    inner: Arc<Inner>,
    /// `Some` for a view from [`JetStreamBus::for_principal`] with credentials configured.
    principal: Option<Arc<PrincipalSlot>>,
}

struct Inner {
    client: async_nats::Client,
    shared: Route,
    cursors: kv::Store,
    stream_name: String,
    reader_pull_expiry: Duration,
    config: JetStreamConfig,
    principals: std::sync::Mutex<HashMap<String, Arc<PrincipalSlot>>>,
}

/// Where publishes and reads go: a connection's JetStream context and stream handle.
#[derive(Clone)]
struct Route {
    js: jetstream::Context,
    stream: stream::Stream<()>,
    /// Who the connection acts as (a principal, or the shared connection's client name), and
    /// the permission violations the server reports on it.
    watch: Option<(String, broadcast::Sender<String>)>,
    /// True for a principal's own connection.
    principal: bool,
}

/// A principal's connection, opened on first use.
struct PrincipalSlot {
    name: String,
    seed_file: Option<PathBuf>,
    route: tokio::sync::OnceCell<Route>,
}

impl std::fmt::Debug for JetStreamBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamBus")
            .field("stream", &self.inner.stream_name)
            .field(
                "principal",
                &self.principal.as_ref().map(|p| p.name.as_str()),
            )
            .field("state", &self.inner.client.connection_state())
            .finish()
    }
}

/// Permission violations the server reported on one connection, as they arrive.
struct Denials {
    rx: broadcast::Receiver<String>,
    seen: Vec<String>,
}

impl Denials {
    fn new(route: &Route) -> Option<(String, Denials)> {
        Denials::on(&route.watch)
    }

    fn on(watch: &Option<(String, broadcast::Sender<String>)>) -> Option<(String, Denials)> {
        watch.as_ref().map(|(name, tx)| {
            (
                name.clone(),
                Denials {
                    rx: tx.subscribe(),
                    seen: Vec::new(),
                },
            )
        })
    }

    /// Waits for a violation naming `needle`, or for any subscription violation (which breaks
    /// every reply to the connection); pends forever if none comes.
    async fn concerning(&mut self, needle: &str) -> String {
        loop {
            if let Some(v) = self
                .seen
                .iter()
                .find(|v| v.contains(needle) || v.to_ascii_lowercase().contains("subscription"))
            {
                return v.clone();
            }
            match self.rx.recv().await {
                Ok(v) => self.seen.push(v),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

/// Awaits `fut`, unless the server reports first that it refused what `fut` waits for.
async fn unless_denied<T>(
    denials: Option<&mut (String, Denials)>,
    operation: &'static str,
    needle: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T> {
    match denials {
        None => Ok(fut.await),
        Some((principal, denials)) => tokio::select! {
            out = fut => Ok(out),
            violation = denials.concerning(needle) => Err(Error::PermissionDenied {
                principal: principal.clone(),
                operation,
                detail: violation,
            }),
        },
    }
}

/// An event callback that passes the server's permission violations on to `tx`.
fn report_violations(
    tx: broadcast::Sender<String>,
) -> impl Fn(async_nats::Event) -> std::future::Ready<()> + Send + Sync + 'static {
    move |event| {
        if let async_nats::Event::ServerError(ServerError::Other(text)) = event
            && text.to_ascii_lowercase().contains("permissions violation")
        {
            let _ = tx.send(text);
        }
        std::future::ready(())
    }
}

/// Connection options common to every connection of the bus: name and TLS.
fn base_options(
    mut options: async_nats::ConnectOptions,
    config: &JetStreamConfig,
    name: &str,
) -> async_nats::ConnectOptions {
    options = options.name(name);
    if let Some(ca) = &config.tls_ca_file {
        options = options.require_tls(true).add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &config.tls_client_cert {
        options = options
            .require_tls(true)
            .add_client_certificate(cert.clone(), key.clone());
    }
    options
}

/// Reads an nkey seed file (never logged; errors name the file only).
async fn read_seed(path: &std::path::Path) -> Result<String> {
    let text = tokio::fs::read_to_string(path).await.map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("reading nkey seed file {}: {e}", path.display()),
        ))
    })?;
    let seed = text.trim().to_owned();
    if !seed.starts_with("SU") {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} does not hold an nkey user seed (SU...)", path.display()),
        )));
    }
    Ok(seed)
}

/// A fresh consumer name: the random part of a new inbox of `client`.
fn consumer_name(client: &async_nats::Client) -> String {
    let inbox = client.new_inbox();
    let unique = inbox.rsplit('.').next().unwrap_or_default();
    format!("hz_{unique}")
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
    /// Connects, then creates or updates the stream and the cursor bucket (or, with
    /// [`JetStreamConfig::manage`] off, looks them up).
    pub async fn connect(config: &JetStreamConfig) -> Result<JetStreamBus> {
        let mut options = match (&config.credentials_file, &config.nkey_seed_file) {
            (Some(path), _) => async_nats::ConnectOptions::with_credentials_file(path).await?,
            (None, Some(path)) => async_nats::ConnectOptions::with_nkey(read_seed(path).await?),
            (None, None) => async_nats::ConnectOptions::new(),
        };
        if let Some(prefix) = &config.inbox_prefix {
            options = options.custom_inbox_prefix(prefix.clone());
        }
        let (violations, _) = broadcast::channel(256);
        options = options.event_callback(report_violations(violations.clone()));
        let client = base_options(options, config, &config.client_name)
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
        let watch = Some((config.client_name.clone(), violations));
        let mut denials = Denials::on(&watch);
        let setup = unless_denied(denials.as_mut(), "connect", "$JS.API.", async {
            Self::set_up(&js, config).await
        });
        let cursors = setup.await??;
        let stream = js
            .get_stream_no_info(&config.stream)
            .await
            .map_err(|e| Error::jetstream("get stream", e))?;
        Ok(JetStreamBus {
            inner: Arc::new(Inner {
                client,
                shared: Route {
                    js,
                    stream,
                    watch,
                    principal: false,
                },
                cursors,
                stream_name: config.stream.clone(),
                reader_pull_expiry: config.reader_pull_expiry,
                config: config.clone(),
                principals: std::sync::Mutex::default(),
            }),
            principal: None,
        })
    }

    /// Creates or updates the stream and the cursor bucket, or (not managing) looks them up.
    async fn set_up(js: &jetstream::Context, config: &JetStreamConfig) -> Result<kv::Store> {
        Ok(if config.manage {
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
            js.create_or_update_key_value(kv::Config {
                bucket: config.cursor_bucket.clone(),
                description: "Hazchem Bus reader cursors".to_owned(),
                history: 1,
                storage: StorageType::File,
                num_replicas: config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::jetstream("create or update cursor bucket", e))?
        } else {
            js.get_stream(&config.stream)
                .await
                .map_err(|e| Error::jetstream("look up stream", e))?;
            js.get_key_value(&config.cursor_bucket)
                .await
                .map_err(|e| Error::jetstream("look up cursor bucket", e))?
        })
    }

    /// A view of the bus whose `publish`, `publish_many` and `read` use `principal`'s own NATS
    /// connection (opened on first use, then shared by every view of that principal), so the
    /// server enforces that principal's permissions; everything else uses the shared
    /// connection. Without [`JetStreamConfig::principal_credentials`] this is the bus itself.
    /// A principal with no credentials configured (when others have some) gets a view whose
    /// publishes and reads fail with [`Error::PermissionDenied`].
    pub fn for_principal(&self, principal: &str) -> JetStreamBus {
        let credentials = &self.inner.config.principal_credentials;
        if credentials.is_empty() {
            return JetStreamBus {
                inner: self.inner.clone(),
                principal: None,
            };
        }
        let slot = self
            .inner
            .principals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(principal.to_owned())
            .or_insert_with(|| {
                Arc::new(PrincipalSlot {
                    name: principal.to_owned(),
                    seed_file: credentials.get(principal).cloned(),
                    route: tokio::sync::OnceCell::new(),
                })
            })
            .clone();
        JetStreamBus {
            inner: self.inner.clone(),
            principal: Some(slot),
        }
    }

    /// The principal this view publishes and reads as, if it has its own connection.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.name.as_str())
    }

    /// The route for publishes and reads: the principal's connection, or the shared one.
    async fn route(&self) -> Result<Route> {
        let Some(slot) = &self.principal else {
            return Ok(self.inner.shared.clone());
        };
        slot.route
            .get_or_try_init(|| self.connect_principal(slot))
            .await
            .cloned()
    }

    async fn connect_principal(&self, slot: &PrincipalSlot) -> Result<Route> {
        let config = &self.inner.config;
        let Some(seed_file) = &slot.seed_file else {
            return Err(Error::PermissionDenied {
                principal: slot.name.clone(),
                operation: "connect",
                detail: "no NATS credentials are configured for this principal".to_owned(),
            });
        };
        let seed = read_seed(seed_file).await?;
        let (tx, _) = broadcast::channel(256);
        let events = tx.clone();
        let options = async_nats::ConnectOptions::with_nkey(seed)
            .custom_inbox_prefix(crate::permissions::inbox_prefix(&slot.name))
            .event_callback(report_violations(events));
        let name = format!("{}-{}", config.client_name, slot.name);
        let client = base_options(options, config, &name)
            .connect(config.url.as_str())
            .await
            .map_err(|err| Error::Connect {
                url: config.url.clone(),
                source: err.into(),
            })?;
        tracing::debug!(principal = %slot.name, "opened the principal's NATS connection");
        let js = jetstream::new(client);
        let stream = js
            .get_stream_no_info(&config.stream)
            .await
            .map_err(|e| Error::jetstream("get stream", e))?;
        Ok(Route {
            js,
            stream,
            watch: Some((slot.name.clone(), tx)),
            principal: true,
        })
    }

    /// The underlying NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    async fn send(
        js: &jetstream::Context,
        msg: &Outgoing,
    ) -> Result<PublishAckFuture, PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::NATS_MESSAGE_ID, msg.dedup_key().as_str());
        headers.insert(header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
        headers.insert(
            EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT,
            id_pattern(msg.publisher(), &msg.id).as_str(),
        );
        js.send_publish(
            msg.subject.clone(),
            PublishMessage::build()
                .payload(msg.payload.clone())
                .headers(headers),
        )
        .await
    }

    /// Sends `msg` on `route` and awaits its ack, failing fast if the server refuses it.
    async fn send_and_ack(
        route: &Route,
        denials: Option<&mut (String, Denials)>,
        msg: &Outgoing,
    ) -> Result<Result<PublishAck, PublishError>> {
        let needle = format!("\"{}\"", msg.subject);
        unless_denied(denials, "publish", &needle, async {
            match Self::send(&route.js, msg).await {
                Ok(ack) => ack.await,
                Err(err) => Err(err),
            }
        })
        .await
    }

    /// Turns a publish outcome into an ack, resolving refusals of repeated ids into duplicate
    /// acks (republishing on `route` while a concurrent first publish is still in flight). Ids
    /// are looked up over the shared connection.
    async fn settle(
        &self,
        route: &Route,
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
            if let Some(sequence) = self.sequence_of_id(msg.publisher(), &msg.id).await? {
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
            outcome = match Self::send(&route.js, msg).await {
                Ok(ack) => ack.await,
                Err(err) => Err(err),
            };
        }
    }

    /// The sequence of the message `publisher` published with event id `id`, asking the stream leader.
    async fn sequence_of_id(&self, publisher: &str, id: &str) -> Result<Option<u64>> {
        match self
            .inner
            .shared
            .stream
            .get_last_raw_message_by_subject(&id_pattern(publisher, id))
            .await
        {
            Ok(message) => Ok(Some(message.sequence)),
            Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(err) => Err(Error::jetstream("look up event id", err)),
        }
    }

    /// See [`crate::Bus::publish`]. A principal view publishes over the principal's connection;
    /// a subject its NATS user may not publish to fails with [`Error::PermissionDenied`].
    pub async fn publish(&self, msg: Outgoing) -> Result<Ack> {
        validate_outgoing(&msg.subject, &msg.id)?;
        let route = self.route().await?;
        let mut denials = Denials::new(&route);
        let outcome = Self::send_and_ack(&route, denials.as_mut(), &msg).await?;
        self.settle(&route, &msg, outcome).await
    }

    /// See [`crate::Bus::publish_many`]. Messages are sent in order on one connection without
    /// waiting for each ack (up to a window of unacknowledged ones), so the server sequences them
    /// in the order given.
    pub async fn publish_many(&self, msgs: Vec<Outgoing>) -> Vec<Result<Ack>> {
        let route = match self.route().await {
            Ok(route) => route,
            Err(err) => {
                let text = err.to_string();
                let principal = self.principal().unwrap_or_default().to_owned();
                return msgs
                    .iter()
                    .map(|_| {
                        Err(Error::PermissionDenied {
                            principal: principal.clone(),
                            operation: "connect",
                            detail: text.clone(),
                        })
                    })
                    .collect();
            }
        };
        let mut denials = Denials::new(&route);
        let mut results: Vec<Option<Result<Ack>>> = (0..msgs.len()).map(|_| None).collect();
        let mut in_flight: std::collections::VecDeque<(usize, PublishAckFuture)> =
            std::collections::VecDeque::new();
        let mut settled: Vec<(usize, Result<Result<PublishAck, PublishError>>)> = Vec::new();
        for (i, msg) in msgs.iter().enumerate() {
            if let Err(err) = validate_outgoing(&msg.subject, &msg.id) {
                results[i] = Some(Err(err));
                continue;
            }
            if in_flight.len() >= PIPELINE_WINDOW {
                let (j, ack) = in_flight.pop_front().expect("window is full");
                let needle = format!("\"{}\"", msgs[j].subject);
                settled.push((
                    j,
                    unless_denied(denials.as_mut(), "publish", &needle, ack.into_future()).await,
                ));
            }
            match Self::send(&route.js, msg).await {
                Ok(ack) => in_flight.push_back((i, ack)),
                Err(err) => settled.push((i, Ok(Err(err)))),
            }
        }
        for (j, ack) in in_flight {
            let needle = format!("\"{}\"", msgs[j].subject);
            settled.push((
                j,
                unless_denied(denials.as_mut(), "publish", &needle, ack.into_future()).await,
            ));
        }
        for (i, outcome) in settled {
            results[i] = Some(match outcome {
                Ok(outcome) => self.settle(&route, &msgs[i], outcome).await,
                Err(denied) => Err(denied),
            });
        }
        results
            .into_iter()
            .map(|r| r.expect("every slot filled"))
            .collect()
    }

    /// See [`crate::Bus::read`]. The ordered consumer is created when the stream is first polled
    /// or [`MessageStream::ready`] is awaited.
    ///
    /// Its consumer is named, and a filter of one pattern goes into the create request's subject
    /// (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`), so NATS permissions can allow it. A
    /// principal view reads over the principal's connection; for a filter of several patterns it
    /// first has that connection create a consumer for each pattern (see the module docs).
    pub fn read(&self, start: Start, filter: Filter) -> MessageStream {
        let this = self.clone();
        MessageStream::starting(Box::pin(async move {
            let patterns = filter.subjects();
            let route = this.route().await?;
            let route = if route.principal && patterns.len() > 1 {
                for pattern in patterns {
                    Self::authorise_read(&route, pattern).await?;
                }
                this.inner.shared.clone()
            } else {
                route
            };
            open_reader(route, start, filter, this.inner.reader_pull_expiry).await
        }))
    }

    /// Asks the server whether the route's principal may read `pattern`: creates a consumer
    /// filtered to it (allowed only by a matching `$JS.API.CONSUMER.CREATE` permission) and
    /// deletes it again.
    async fn authorise_read(route: &Route, pattern: &str) -> Result<()> {
        let mut denials = Denials::new(route);
        let name = consumer_name(&route.js.client());
        let created = unless_denied(
            denials.as_mut(),
            "read",
            &name,
            route
                .stream
                .create_consumer(jetstream::consumer::pull::Config {
                    name: Some(name.clone()),
                    filter_subject: pattern.to_owned(),
                    deliver_policy: DeliverPolicy::New,
                    ack_policy: jetstream::consumer::AckPolicy::None,
                    inactive_threshold: Duration::from_secs(5),
                    num_replicas: 1,
                    memory_storage: true,
                    ..Default::default()
                }),
        )
        .await?
        .map_err(|e| Error::jetstream("authorise read", e))?;
        drop(created);
        if let Err(error) = route.stream.delete_consumer(&name).await {
            tracing::debug!(%error, "deleting an authorisation consumer failed; it expires by itself");
        }
        Ok(())
    }

    /// See [`crate::Bus::get`]. Asks the stream leader, so it sees every acknowledged message.
    pub async fn get(&self, sequence: u64) -> Result<Option<Message>> {
        if sequence == 0 {
            return Ok(None);
        }
        match self.inner.shared.stream.get_raw_message(sequence).await {
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
            .shared
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

/// Creates an ordered consumer on `route` and turns its messages into the reader's stream.
async fn open_reader(
    route: Route,
    start: Start,
    filter: Filter,
    max_expires: Duration,
) -> Result<futures::stream::BoxStream<'static, Result<Message>>> {
    let deliver_policy = match start {
        Start::Beginning => DeliverPolicy::All,
        Start::Sequence(n) => DeliverPolicy::ByStartSequence {
            start_sequence: n.max(1),
        },
        Start::Time(t) => DeliverPolicy::ByStartTime { start_time: t },
        Start::New => DeliverPolicy::New,
    };
    // The server refuses overlapping filter subjects; then take everything and filter here. One
    // pattern goes in `filter_subject`, so that it is part of the create request's subject.
    let (filter_subject, filter_subjects) = match filter.server_side() {
        Some(mut patterns) if patterns.len() == 1 => (patterns.remove(0), Vec::new()),
        Some(patterns) => (String::new(), patterns),
        None => (String::new(), Vec::new()),
    };
    let name = consumer_name(&route.js.client());
    let mut denials = Denials::new(&route);
    let consumer = unless_denied(
        denials.as_mut(),
        "read",
        &name,
        route.stream.create_consumer(OrderedConfig {
            name: Some(name.clone()),
            deliver_policy,
            filter_subject,
            filter_subjects,
            max_expires,
            ..Default::default()
        }),
    )
    .await?
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
    let mut messages = unless_denied(denials.as_mut(), "read", &name, consumer.messages())
        .await?
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
