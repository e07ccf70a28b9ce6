//! The gateway harness: a bus under test ([`TestBus`], embedded or a real JetStream), a development
//! PKI in a temporary directory ([`TestPki`]), and an in-process gateway served over mTLS on
//! `127.0.0.1:0` ([`TestGateway`]), with clients for any principal, and helpers to read the stream
//! and the standard error details of a status.
//!
//! ```no_run
//! # async fn demo() {
//! use hazchem_tests::{TestBus, TestGateway, dept, fresh};
//!
//! let gateway = TestGateway::start(TestBus::embedded().await).await;
//! let accepted = gateway.publish_event(&fresh("waybill_issued")).await.unwrap();
//! assert_eq!(gateway.bus().last_sequence().await, accepted.sequence);
//! let _fire = gateway.subscriptions(&dept("fire")).await;
//! # }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use hazchem_bus::{Bus, JetStreamConfig};
use hazchem_domain::Department;
use hazchem_gateway::{Gateway, GatewayConfig, Metrics, Publisher};
use hazchem_kit::{EventGuard, EventSink, ServerTlsFiles, SharedClock};
use hazchem_pki::{ClientTls, DevPki, Principal, SigningKey};
use hazchem_proto::v1;
use hazchem_proto::v1::publish_service_client::PublishServiceClient;
use hazchem_proto::v1::subscription_service_client::SubscriptionServiceClient;
use prost::Message as _;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};
use tonic_types::StatusExt;

use crate::NatsServer;
use crate::fixtures::{department_of, publisher_for, signed};

/// Longest wait for something that should happen (a connection, a delivery, a server).
pub const ARRIVE: Duration = Duration::from_secs(15);

/// Which bus a [`TestBus`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BusKind {
    /// The embedded (sled) bus in a temporary directory.
    Embedded,
    /// JetStream on a `nats-server` the [`TestBus`] owns.
    JetStream,
}

/// A bus under test, empty when made: embedded in a temporary directory, or JetStream on its own
/// `nats-server` (started here, killed on drop).
#[derive(Debug)]
pub struct TestBus {
    kind: BusKind,
    bus: Bus,
    config: Option<JetStreamConfig>,
    // Dropped after the bus (fields drop in order): the server outlives the client.
    nats: Option<NatsServer>,
    dir: TempDir,
}

impl TestBus {
    /// A new embedded bus in a temporary directory.
    pub async fn embedded() -> TestBus {
        TestBus::new(BusKind::Embedded).await
    }

    /// A new JetStream bus on a `nats-server` of its own (random port, temporary store).
    pub async fn jetstream() -> TestBus {
        TestBus::new(BusKind::JetStream).await
    }

    /// A new bus of `kind`.
    ///
    /// # Panics
    /// If the bus cannot be opened (for JetStream: `nats-server` missing or not starting).
    pub async fn new(kind: BusKind) -> TestBus {
        crate::init_tracing();
        let dir = tempfile::Builder::new()
            .prefix("hazchem-bus-")
            .tempdir()
            .expect("create a temporary directory for the bus");
        match kind {
            BusKind::Embedded => {
                let bus = Bus::embedded(&dir.path().join("bus"))
                    .await
                    .expect("open the embedded bus");
                TestBus {
                    kind,
                    bus,
                    config: None,
                    nats: None,
                    dir,
                }
            }
            BusKind::JetStream => {
                let nats = tokio::task::spawn_blocking(NatsServer::start)
                    .await
                    .expect("start nats-server");
                let mut config = JetStreamConfig::new(nats.url());
                // Readers notice a restarted server within about a second.
                config.reader_pull_expiry = Duration::from_secs(1);
                let bus = Bus::jetstream(&config)
                    .await
                    .unwrap_or_else(|e| panic!("connect to JetStream: {e}; log:\n{}", nats.log()));
                TestBus {
                    kind,
                    bus,
                    config: Some(config),
                    nats: Some(nats),
                    dir,
                }
            }
        }
    }

    /// Which bus this is.
    pub fn kind(&self) -> BusKind {
        self.kind
    }

    /// The bus (cheap to clone).
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The JetStream configuration the bus connected with (JetStream only).
    pub fn jetstream_config(&self) -> Option<&JetStreamConfig> {
        self.config.as_ref()
    }

    /// The `nats-server` (JetStream only).
    pub fn nats(&self) -> Option<&NatsServer> {
        self.nats.as_ref()
    }

    /// The `nats-server`, to kill or restart it (JetStream only).
    pub fn nats_mut(&mut self) -> Option<&mut NatsServer> {
        self.nats.as_mut()
    }

    /// A scratch directory that lives as long as the bus (the embedded bus is in `bus/` under it).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The last sequence in the stream (0 when empty).
    pub async fn last_sequence(&self) -> u64 {
        self.bus
            .last_sequence()
            .await
            .expect("read the last sequence")
    }

    /// Every record in the stream, in order (read directly from the bus, as an auditor would).
    pub async fn records(&self) -> Vec<StoredEvent> {
        stored_events(&self.bus).await
    }
}

/// One message of the stream, decoded.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Its sequence.
    pub sequence: u64,
    /// `hazchem.ev.<publisher>.<type>.<id>`.
    pub subject: String,
    /// When the bus stored it.
    pub stored_at: DateTime<Utc>,
    /// The record as stored.
    pub record: v1::Record,
    /// The event in the record, decoded.
    pub event: v1::Event,
}

/// Every message in `bus`, from sequence 1 to the last, decoded as records.
///
/// # Panics
/// If a message is missing (a gap) or does not decode.
pub async fn stored_events(bus: &Bus) -> Vec<StoredEvent> {
    let last = bus.last_sequence().await.expect("read the last sequence");
    let mut out = Vec::new();
    for sequence in 1..=last {
        let message = bus
            .get(sequence)
            .await
            .expect("read a message")
            .unwrap_or_else(|| panic!("the stream has a gap at sequence {sequence}"));
        let (record, event) =
            hazchem_proto::open_record(message.payload.as_ref()).expect("a stored Record");
        out.push(StoredEvent {
            sequence,
            subject: message.subject,
            stored_at: message.time,
            record,
            event,
        });
    }
    out
}

/// A development PKI (CA, server certificate for `localhost`/`127.0.0.1`, a client certificate
/// for every department, service and the development auditor, department signing keys) in a
/// temporary directory, removed on drop.
#[derive(Debug)]
pub struct TestPki {
    pki: DevPki,
    /// Held while issuing a certificate for a principal the development PKI does not cover.
    issuing: Mutex<()>,
    _dir: TempDir,
}

impl TestPki {
    /// Generates a new PKI.
    pub fn generate() -> TestPki {
        let dir = tempfile::Builder::new()
            .prefix("hazchem-pki-")
            .tempdir()
            .expect("create a temporary directory for the PKI");
        let pki = DevPki::generate(dir.path()).expect("generate the development PKI");
        TestPki {
            pki,
            issuing: Mutex::new(()),
            _dir: dir,
        }
    }

    /// The PKI shared by everything in this process that holds it at the same time: generated when
    /// nobody holds one, removed when the last holder drops it. (Generating one takes a noticeable
    /// fraction of a short test; the PKI is read-only, so tests running at once can share it.)
    pub fn shared() -> Arc<TestPki> {
        static SHARED: Mutex<Weak<TestPki>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pki) = slot.upgrade() {
            return pki;
        }
        let pki = Arc::new(TestPki::generate());
        *slot = Arc::downgrade(&pki);
        pki
    }

    /// The development PKI (paths of every file).
    pub fn dev(&self) -> &DevPki {
        &self.pki
    }

    /// What a gateway (or any service) serves with: this PKI's server certificate, client CA.
    pub fn server_tls_files(&self) -> ServerTlsFiles {
        ServerTlsFiles {
            cert: self.pki.server_cert_path(),
            key: self.pki.server_key_path(),
            client_ca: self.pki.ca_cert_path(),
        }
    }

    /// A principal's client TLS material; principals the development PKI does not cover (another
    /// auditor or service name) get a certificate issued on first use.
    pub fn client_tls(&self, principal: &Principal) -> ClientTls {
        let _issuing = self.issuing.lock().unwrap_or_else(|p| p.into_inner());
        if !self.pki.cert_path(principal).exists() {
            self.pki
                .issue_client(principal)
                .expect("issue a client certificate");
        }
        self.pki
            .client_tls(principal)
            .expect("read client TLS files")
    }

    /// A department's origin-signing key (registered in the gateway's key registry).
    pub fn signing_key(&self, department: Department) -> SigningKey {
        self.pki
            .signing_key(department)
            .expect("read a signing key")
    }

    /// An mTLS channel to a server of this PKI at `addr`, as `principal`.
    pub async fn channel(&self, addr: SocketAddr, principal: &Principal) -> Channel {
        connect(addr, self.client_tls(principal).config()).await
    }

    /// A TLS channel to `addr` that trusts this PKI's CA but presents no client certificate.
    pub async fn anonymous_channel(&self, addr: SocketAddr) -> Channel {
        let ca = self.pki.ca_pem().expect("read the CA");
        connect(addr, ClientTls::anonymous_config(&ca)).await
    }
}

/// Connects to `https://127.0.0.1:<port>` (the certificate names `localhost`, which the TLS
/// configuration expects), retrying until [`ARRIVE`].
pub async fn connect(addr: SocketAddr, tls: tonic::transport::ClientTlsConfig) -> Channel {
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .expect("a URL")
        .tls_config(tls)
        .expect("TLS configuration")
        .connect_timeout(Duration::from_secs(5));
    let deadline = tokio::time::Instant::now() + ARRIVE;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return channel,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("cannot connect to {addr} within {ARRIVE:?}: {error:?}"),
        }
    }
}

/// How to build a [`TestGateway`]: policy, limits, guards. Made by [`TestGateway::builder`].
pub struct TestGatewayBuilder {
    bus: TestBus,
    config: GatewayConfig,
    policy: Option<String>,
    guards: Vec<Arc<dyn EventGuard>>,
    pki: Option<Arc<TestPki>>,
    clock: Option<SharedClock>,
}

impl std::fmt::Debug for TestGatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGatewayBuilder")
            .field("bus", &self.bus)
            .field("config", &self.config)
            .field("policy", &self.policy.is_some())
            .field("guards", &self.guards.len())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl TestGatewayBuilder {
    /// Uses this policy (TOML, the format of `deploy/policy.toml`) instead of the default.
    pub fn policy(mut self, toml: impl Into<String>) -> Self {
        self.policy = Some(toml.into());
        self
    }

    /// Changes the configuration (limits; `listen`, `tls`, `signing_keys` and `policy` are set by
    /// the harness).
    pub fn configure(mut self, change: impl FnOnce(&mut GatewayConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Adds a guard to the publisher (see [`Publisher::with_guard`]).
    pub fn guard(mut self, guard: Arc<dyn EventGuard>) -> Self {
        self.guards.push(guard);
        self
    }

    /// Uses this PKI instead of [`TestPki::shared`] (a `TestPki`, or an `Arc` of one to share
    /// with another server of the test).
    pub fn pki(mut self, pki: impl Into<Arc<TestPki>>) -> Self {
        self.pki = Some(pki.into());
        self
    }

    /// Admits and stamps `accepted_at` by this clock instead of the system clock (see
    /// [`Publisher::with_clock`]); in-process services publishing through [`TestGateway::sink`] share it.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Builds the publisher and the gateway and serves on `127.0.0.1:0`.
    ///
    /// # Panics
    /// If the configuration is refused or the gateway cannot listen.
    pub async fn start(self) -> TestGateway {
        let TestGatewayBuilder {
            bus,
            mut config,
            policy,
            guards,
            pki,
            clock,
        } = self;
        let pki = pki.unwrap_or_else(TestPki::shared);
        if let Some(text) = &policy {
            let path = bus.dir().join("policy.toml");
            std::fs::write(&path, text).expect("write the policy");
            config.policy = Some(path);
        }
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.tls = Some(pki.server_tls_files());
        config.signing_keys = Some(pki.dev().key_registry_path());
        let mut publisher =
            Publisher::from_config(&config, bus.bus().clone(), Metrics::unregistered())
                .unwrap_or_else(|e| panic!("the gateway configuration is refused: {e}"));
        for guard in guards {
            publisher = publisher.with_guard(guard);
        }
        if let Some(clock) = clock {
            publisher = publisher.with_clock(clock);
        }
        let shutdown = CancellationToken::new();
        let gateway = Gateway::new(&config, publisher.clone(), shutdown.clone())
            .unwrap_or_else(|e| panic!("the gateway does not start: {e}"));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        config.listen = addr;
        let task = tokio::spawn(gateway.serve(listener, shutdown.clone()));
        TestGateway {
            bus,
            pki,
            config,
            publisher,
            addr,
            shutdown,
            task: Some(task),
            channels: Mutex::default(),
        }
    }
}

/// A gateway served in this process over mTLS on `127.0.0.1:<random port>`, on a [`TestBus`] it
/// owns, with a development PKI ([`TestPki::shared`] unless given one). Stopped when dropped (or by
/// [`TestGateway::stop`]).
pub struct TestGateway {
    // Dropped in order: the server stops before the bus and its nats-server go away.
    shutdown: CancellationToken,
    task: Option<JoinHandle<hazchem_gateway::Result<()>>>,
    channels: Mutex<HashMap<Principal, Channel>>,
    publisher: Publisher,
    config: GatewayConfig,
    addr: SocketAddr,
    pki: Arc<TestPki>,
    bus: TestBus,
}

impl std::fmt::Debug for TestGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGateway")
            .field("addr", &self.addr)
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}

impl TestGateway {
    /// A gateway with the default policy and limits on `bus`.
    pub async fn start(bus: TestBus) -> TestGateway {
        TestGateway::builder(bus).start().await
    }

    /// A gateway to configure before starting.
    pub fn builder(bus: TestBus) -> TestGatewayBuilder {
        TestGatewayBuilder {
            bus,
            config: GatewayConfig::default(),
            policy: None,
            guards: Vec::new(),
            pki: None,
            clock: None,
        }
    }

    /// The bus under the gateway.
    pub fn bus(&self) -> &TestBus {
        &self.bus
    }

    /// The bus under the gateway, to kill or restart its server.
    pub fn bus_mut(&mut self) -> &mut TestBus {
        &mut self.bus
    }

    /// The PKI the gateway trusts and serves with (clone the `Arc` to serve another service of
    /// the test with it).
    pub fn pki(&self) -> &Arc<TestPki> {
        &self.pki
    }

    /// The publishing core (for in-process services: [`TestGateway::sink`]).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The configuration the gateway runs with (its `listen` is the bound address).
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Where the gateway listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The token that stops the gateway (and its subscriptions) when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// An [`EventSink`] publishing in-process as the service `name` (through the same admission).
    pub fn sink(&self, name: &str) -> EventSink {
        EventSink::new(self.publisher.clone(), crate::fixtures::service(name))
    }

    /// An mTLS channel as `principal` (a department, service or auditor; cached per principal).
    pub async fn client(&self, principal: &Principal) -> Channel {
        if let Some(channel) = self.channels.lock().expect("channels").get(principal) {
            return channel.clone();
        }
        let channel = self.pki.channel(self.addr, principal).await;
        self.channels
            .lock()
            .expect("channels")
            .insert(principal.clone(), channel.clone());
        channel
    }

    /// A TLS channel that trusts the CA but presents no client certificate.
    pub async fn anonymous_client(&self) -> Channel {
        self.pki.anonymous_channel(self.addr).await
    }

    /// A department's origin-signing key (registered with this gateway).
    pub fn signing_key(&self, department: Department) -> SigningKey {
        self.pki.signing_key(department)
    }

    /// The publish service as `principal`.
    pub async fn publisher_client(&self, principal: &Principal) -> PublishServiceClient<Channel> {
        PublishServiceClient::new(self.client(principal).await)
    }

    /// The subscription service as `principal`.
    pub async fn subscriptions(&self, principal: &Principal) -> SubscriptionServiceClient<Channel> {
        SubscriptionServiceClient::new(self.client(principal).await)
    }

    /// `Publish` as `principal`.
    pub async fn publish_as(
        &self,
        principal: &Principal,
        event: v1::SignedEvent,
    ) -> Result<v1::Accepted, Status> {
        let response = self
            .publisher_client(principal)
            .await
            .publish(v1::PublishRequest { event: Some(event) })
            .await?;
        Ok(response.into_inner().accepted.expect("an accepted event"))
    }

    /// `Publish` of `event` as whoever may publish it ([`publisher_for`]: its department, or a
    /// service for department-less events), signed with the department's key if it names one.
    pub async fn publish_event(&self, event: &v1::Event) -> Result<v1::Accepted, Status> {
        let key = department_of(event).map(|d| self.signing_key(d));
        self.publish_as(&publisher_for(event), signed(event, key.as_ref()))
            .await
    }

    /// `Subscribe` as `principal`.
    pub async fn subscribe(
        &self,
        principal: &Principal,
        request: v1::SubscribeRequest,
    ) -> Result<Streaming<v1::SubscribeResponse>, Status> {
        Ok(self
            .subscriptions(principal)
            .await
            .subscribe(request)
            .await?
            .into_inner())
    }

    /// Stops the gateway gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(ARRIVE, task).await {
                Ok(joined) => joined
                    .expect("the gateway task panicked")
                    .expect("the gateway failed"),
                Err(_) => panic!("the gateway did not stop within {ARRIVE:?}"),
            }
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A subscription request from `start` with `filter`.
pub fn subscribe_request(
    filter: v1::EventFilter,
    start: Option<v1::start_position::Position>,
) -> v1::SubscribeRequest {
    v1::SubscribeRequest {
        filter: Some(filter),
        start: start.map(|p| v1::StartPosition { position: Some(p) }),
    }
}

/// Start at sequence `n`.
pub fn from_sequence(n: u64) -> Option<v1::start_position::Position> {
    Some(v1::start_position::Position::Sequence(n))
}

/// The next delivery, within [`ARRIVE`].
///
/// # Panics
/// On a timeout, the end of the stream or an error status.
pub async fn next_delivery(stream: &mut Streaming<v1::SubscribeResponse>) -> v1::SubscribeResponse {
    match tokio::time::timeout(ARRIVE, stream.next()).await {
        Ok(Some(Ok(item))) => item,
        Ok(Some(Err(status))) => panic!("the subscription failed: {status:?}"),
        Ok(None) => panic!("the subscription ended"),
        Err(_) => panic!("nothing delivered within {ARRIVE:?}"),
    }
}

/// The next `n` deliveries.
pub async fn take_deliveries(
    stream: &mut Streaming<v1::SubscribeResponse>,
    n: usize,
) -> Vec<v1::SubscribeResponse> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_delivery(stream).await);
    }
    out
}

/// Deliveries up to and including the first whose event has id `id`.
pub async fn deliveries_until(
    stream: &mut Streaming<v1::SubscribeResponse>,
    id: &str,
) -> Vec<v1::SubscribeResponse> {
    let mut out = Vec::new();
    loop {
        let item = next_delivery(stream).await;
        let done = delivered_event(&item).id == id;
        out.push(item);
        if done {
            return out;
        }
    }
}

/// The event of a delivery, decoded.
pub fn delivered_event(item: &v1::SubscribeResponse) -> v1::Event {
    let record = item.record.as_ref().expect("a delivery carries its record");
    v1::Event::decode(record.event.as_slice()).expect("the delivered event decodes")
}

/// The event ids of deliveries, in order.
pub fn delivered_ids(items: &[v1::SubscribeResponse]) -> Vec<String> {
    items.iter().map(|i| delivered_event(i).id).collect()
}

/// A `google.rpc.Status` (a batch or stream result) as a `tonic::Status` with the same details.
pub fn status_from_rpc(status: &hazchem_proto::google::rpc::Status) -> Status {
    Status::with_details(
        Code::from_i32(status.code),
        status.message.clone(),
        status.encode_to_vec().into(),
    )
}

/// The `BadRequest` field violations of a status as `(field, reason)` pairs, in order.
pub fn violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.reason.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `ErrorInfo` of a status, if any.
pub fn error_info(status: &Status) -> Option<tonic_types::ErrorInfo> {
    status.get_error_details().error_info().cloned()
}

/// Asserts `status` has `code` and, if given, exactly these `(field, reason)` violations (in any
/// order); returns the violations.
///
/// # Panics
/// With the whole status when it does not match.
#[track_caller]
pub fn assert_status(status: &Status, code: Code, expected: &[(&str, &str)]) {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let mut got = violations(status);
    got.sort();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(f, r)| ((*f).to_owned(), (*r).to_owned()))
        .collect();
    want.sort();
    assert_eq!(got, want, "violations of {status:?}");
}

/// Asserts that the server behind `channel` serves what every Hazchem Bus server offers: gRPC health
/// answering SERVING for each of `services` (and NOT_FOUND for a name it does not serve), and
/// reflection listing each of them with the health and reflection services.
pub async fn assert_serving(channel: Channel, services: &[&str]) {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let mut health = HealthClient::new(channel.clone());
    for service in services {
        let status = health
            .check(HealthCheckRequest {
                service: (*service).to_owned(),
            })
            .await
            .unwrap_or_else(|s| panic!("health of {service}: {s:?}"))
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "hazchem.v1.NoSuchService".to_owned(),
        })
        .await
        .expect_err("an unknown service has no health");
    assert_eq!(unknown.code(), Code::NotFound);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::once(request))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("a reflection answer")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let listed: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in services.iter().copied().chain([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ]) {
        assert!(listed.contains(&expected), "{expected} not in {listed:?}");
    }
}
