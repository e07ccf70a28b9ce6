//! The benchmark suite behind `hazchem bench`: how fast the bus really is, on one machine, in one run.
//!
//! # What is measured
//!
//! Everything runs in this process against one `nats-server -js` it starts ([`NatsProcess`], the
//! JetStream `sync_interval` stated) and a gateway it serves on `127.0.0.1:0` over mTLS with a temporary
//! development PKI. The payloads are the simulator's traffic (sensor batches, waybills, licences, ...),
//! re-identified for each measurement so that every publish stores a new message.
//!
//! 1. **Ingest** — events per second stored in JetStream and acknowledged, for four shapes (single
//!    publishes awaiting each ack with 1 and with 16 publishers in flight; batches of 500 with 1 and 4 in
//!    flight), three ways:
//!    - **raw**: `async_nats::jetstream::Context::publish_with_headers` of the exact `Record` bytes the
//!      gateway would store, on the same subjects with the same headers the bus sends (`Nats-Msg-Id`,
//!      `Nats-Expected-Last-Subject-Sequence: 0` and its subject); a batch is sent pipelined and its acks
//!      awaited together;
//!    - **bus**: `hazchem_bus::Bus::publish` / `publish_many` of the same bytes;
//!    - **gateway**: gRPC `Publish` / `PublishBatch` over mTLS as the nine departments (admission: policy,
//!      every field rule, origin signatures where required), the figure that matters.
//!
//!    The ratio gateway / raw is the headline of each row.
//! 2. **Latency** — publish (gateway `Publish`) to delivery (gateway `Subscribe`, as another department)
//!    at a fixed rate: p50, p99, p99.9, max; and publish to ack.
//! 3. **Ledger** — the audit ledger ingesting everything the run stored (read from JetStream, hashed,
//!    appended durably to its sled store), then `audit verify` of an exported bundle of all of it.
//! 4. **Headline** — Nantong's yearly intake, 10.97 million records: ingest time at the measured batch
//!    rate, plus verify time at the measured verify rate (the ledger follows the stream while it is
//!    ingested). Extrapolated from measured rates, with the sample sizes stated.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use hazchem_admission::Policy;
use hazchem_bus::{Bus, JetStreamConfig, Outgoing};
use hazchem_domain::Department;
use hazchem_gateway::{Gateway, GatewayConfig, Metrics, Publisher};
use hazchem_kit::ServerTlsFiles;
use hazchem_pki::{DevPki, Principal};
use hazchem_proto::v1;
use hazchem_proto::v1::publish_service_client::PublishServiceClient;
use hazchem_proto::v1::subscription_service_client::SubscriptionServiceClient;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::city::{City, CityConfig};
use crate::drive::{connect, dev_signing_keys, prepare};
use crate::error::{Error, Result};
use crate::nats::{NatsProcess, SyncInterval};
use crate::traffic::{Traffic, TrafficConfig};

/// Nantong's command centre's yearly intake (records).
pub const NANTONG_YEARLY_RECORDS: u64 = 10_970_000;

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Tiny sizes: checks the code path (tests); the figures mean nothing.
    Smoke,
    /// A few minutes on a 2-core machine, default `sync_interval` only.
    Quick,
    /// About 2.5 times the samples, and the ingest again with `sync_interval: always`.
    Full,
}

impl Profile {
    /// "smoke", "quick" or "full".
    pub fn name(self) -> &'static str {
        match self {
            Profile::Smoke => "smoke",
            Profile::Quick => "quick",
            Profile::Full => "full",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "smoke" => Ok(Profile::Smoke),
            "quick" => Ok(Profile::Quick),
            "full" => Ok(Profile::Full),
            _ => Err(Error::Config(format!(
                "profile {s:?}: one of quick, full, smoke"
            ))),
        }
    }
}

/// Sample sizes of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sizes {
    /// Distinct simulated events the payloads are drawn from.
    pub corpus: usize,
    pub single_c1: usize,
    pub single_cn: usize,
    pub single_concurrency: usize,
    pub batch_c1: usize,
    pub batch_cn: usize,
    pub batch_concurrency: usize,
    pub batch_size: usize,
    pub latency_rate: f64,
    pub latency_seconds: f64,
}

impl Profile {
    pub fn sizes(self) -> Sizes {
        match self {
            Profile::Smoke => Sizes {
                corpus: 400,
                single_c1: 40,
                single_cn: 80,
                single_concurrency: 4,
                batch_c1: 200,
                batch_cn: 400,
                batch_concurrency: 2,
                batch_size: 100,
                latency_rate: 100.0,
                latency_seconds: 1.0,
            },
            Profile::Quick => Sizes {
                corpus: 10_000,
                single_c1: 2_000,
                single_cn: 10_000,
                single_concurrency: 16,
                batch_c1: 20_000,
                batch_cn: 40_000,
                batch_concurrency: 4,
                batch_size: 500,
                latency_rate: 500.0,
                latency_seconds: 10.0,
            },
            Profile::Full => Sizes {
                corpus: 20_000,
                single_c1: 5_000,
                single_cn: 20_000,
                single_concurrency: 16,
                batch_c1: 50_000,
                batch_cn: 100_000,
                batch_concurrency: 4,
                batch_size: 500,
                latency_rate: 1000.0,
                latency_seconds: 20.0,
            },
        }
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    pub profile: Profile,
    pub seed: u64,
    /// Sizes (default: the profile's).
    pub sizes: Sizes,
    /// Measure the ledger (append and verify).
    pub ledger: bool,
    /// The `nats-server` to run (default: `$NATS_SERVER_BIN`, or the first on `PATH`).
    pub nats_server: Option<std::path::PathBuf>,
}

impl BenchConfig {
    pub fn new(profile: Profile) -> Self {
        BenchConfig {
            profile,
            seed: 1,
            sizes: profile.sizes(),
            ledger: true,
            nats_server: None,
        }
    }
}

/// One rate measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub events: u64,
    pub seconds: f64,
    pub per_second: f64,
    /// Events not stored as new (should be 0).
    pub failed: u64,
}

impl Rate {
    fn new(events: u64, failed: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        Rate {
            events,
            seconds,
            per_second: if seconds > 0.0 {
                events as f64 / seconds
            } else {
                0.0
            },
            failed,
        }
    }
}

/// One row of the ingest table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestRow {
    /// "single" or "batch <n>".
    pub mode: String,
    /// Calls (or batches) in flight at once.
    pub concurrency: usize,
    pub raw: Rate,
    pub bus: Rate,
    pub gateway: Rate,
    /// gateway / raw.
    pub gateway_ratio: f64,
    /// bus / raw.
    pub bus_ratio: f64,
}

/// The ingest table at one sync interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ingest {
    pub sync_interval: SyncInterval,
    pub rows: Vec<IngestRow>,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Publish-to-subscriber latency at a fixed rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub sync_interval: SyncInterval,
    pub rate_per_second: f64,
    pub seconds: f64,
    /// Publish call sent → the subscriber received the event.
    pub publish_to_delivery: Percentiles,
    /// Publish call sent → ack received.
    pub publish_to_ack: Percentiles,
    /// Events published but not delivered within the wait.
    pub lost: usize,
}

/// The ledger's rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRates {
    /// Records the ledger ingested from JetStream (read, hashed, appended durably).
    pub append: Rate,
    /// `audit verify` of a bundle of every record (read, Merkle root recomputed, checkpoint checked).
    pub verify: Rate,
    pub bundle_bytes: u64,
}

/// The extrapolation to a city's year, from one ingest table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// The JetStream setting of the ingest table the rates come from.
    pub sync_interval: SyncInterval,
    pub records: u64,
    /// From the gateway batch rate (the best batch row).
    pub ingest_rate: f64,
    pub ingest_seconds: f64,
    pub ingest_sample: u64,
    pub ledger_append_rate: Option<f64>,
    pub ledger_append_seconds: Option<f64>,
    pub verify_rate: Option<f64>,
    pub verify_seconds: Option<f64>,
    pub verify_sample: Option<u64>,
    /// max(ingest, ledger append) + verify: the ledger follows the stream while it is ingested, the
    /// audit verifies afterwards.
    pub end_to_end_seconds: Option<f64>,
    pub note: String,
}

/// The machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub os: String,
    pub nats_server: String,
    /// "release" or "debug": only release figures mean anything.
    pub build: String,
}

/// The payloads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payloads {
    pub corpus_events: usize,
    pub mean_event_bytes: f64,
    pub mean_record_bytes: f64,
    /// Share of the corpus by event type, largest first (top 10).
    pub mix: Vec<(String, f64)>,
}

/// Everything `hazchem bench` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub profile: Profile,
    pub started_at: chrono::DateTime<Utc>,
    pub total_seconds: f64,
    pub machine: Machine,
    pub sizes: Sizes,
    pub payloads: Payloads,
    pub ingest: Vec<Ingest>,
    pub latency: Latency,
    /// `None` with the reason in `ledger_note` when it was not measured.
    pub ledger: Option<LedgerRates>,
    pub ledger_note: String,
    /// One per ingest table, in the same order.
    pub headlines: Vec<Headline>,
}

/// One payload, in every form the measurements need.
#[derive(Clone)]
struct Item {
    department: Department,
    id: String,
    subject: String,
    /// The encoded `Record`, as the gateway stores it.
    record: Bytes,
    /// What a department sends.
    signed: v1::SignedEvent,
}

/// A template: the simulator's event, to be re-identified.
struct Template {
    department: Department,
    token: String,
    event: v1::Event,
}

struct Corpus {
    templates: Vec<Template>,
    keys: BTreeMap<Department, hazchem_pki::SigningKey>,
    policy: Policy,
}

impl Corpus {
    /// `n` fresh items for measurement `tag`, cycling through the templates.
    fn items(&self, tag: &str, n: usize) -> Vec<Item> {
        #[allow(clippy::disallowed_methods)]
        // measured live: the gateway under test admits by wall time
        let now = hazchem_proto::time::timestamp(Utc::now());
        let mut out = Vec::with_capacity(n);
        let mut events = Vec::with_capacity(n);
        for i in 0..n {
            let t = &self.templates[i % self.templates.len()];
            let mut event = t.event.clone();
            event.id = format!("{tag}-{i:08}");
            events.push(crate::traffic::SimEvent {
                index: i,
                department: t.department,
                phase: 1,
                after: Vec::new(),
                token: t.token.clone(),
                event,
            });
        }
        for p in prepare(&events, &self.keys, &self.policy, false) {
            let record = v1::Record {
                event: p.signed.event.clone(),
                signature: p.signed.signature.clone(),
                publisher: Some(v1::Publisher {
                    principal: Some(v1::publisher::Principal::Department(v1::Department::from(
                        p.department,
                    )
                        as i32)),
                }),
                accepted_at: Some(now),
            };
            out.push(Item {
                department: p.department,
                subject: hazchem_bus::event_subject(p.department.code(), &p.token, &p.id),
                id: p.id,
                record: Bytes::from(record.encode_to_vec()),
                signed: p.signed,
            });
        }
        out
    }
}

/// Everything a measurement talks to.
struct Rig {
    js: async_nats::jetstream::Context,
    bus: Bus,
    clients: BTreeMap<Department, PublishServiceClient<Channel>>,
    subscriber: SubscriptionServiceClient<Channel>,
    shutdown: CancellationToken,
    gateway: tokio::task::JoinHandle<()>,
    pki_dir: tempfile::TempDir,
    nats: NatsProcess,
}

impl Rig {
    async fn start(sync: SyncInterval, binary: Option<std::path::PathBuf>) -> Result<Rig> {
        let nats = tokio::task::spawn_blocking(move || NatsProcess::start(sync, binary))
            .await
            .map_err(|e| Error::Nats(e.to_string()))??;
        let url = nats.url();
        let bus = Bus::jetstream(&JetStreamConfig::new(url.clone())).await?;
        let client = async_nats::connect(&url)
            .await
            .map_err(|e| Error::Nats(format!("connecting to {url}: {e}")))?;
        let js = async_nats::jetstream::new(client);
        let pki_dir = tempfile::Builder::new()
            .prefix("hazchem-bench-pki-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let pki = DevPki::generate(pki_dir.path())?;
        let config = GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: Some(ServerTlsFiles {
                cert: pki.server_cert_path(),
                key: pki.server_key_path(),
                client_ca: pki.ca_cert_path(),
            }),
            signing_keys: Some(pki.key_registry_path()),
            ..GatewayConfig::default()
        };
        let publisher = Publisher::from_config(&config, bus.clone(), Metrics::unregistered())?;
        let shutdown = CancellationToken::new();
        let gateway = Gateway::new(&config, publisher, shutdown.clone())?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::io("127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("listener", e))?;
        let serve_shutdown = shutdown.clone();
        let gateway = tokio::spawn(async move {
            if let Err(error) = gateway.serve(listener, serve_shutdown).await {
                tracing::error!(%error, "the benchmark's gateway failed");
            }
        });
        let endpoint = format!("https://127.0.0.1:{}", addr.port());
        let mut clients = BTreeMap::new();
        for d in Department::ALL {
            let tls = pki.client_tls(&Principal::Department(d))?;
            clients.insert(
                d,
                PublishServiceClient::new(connect(&endpoint, tls.config()).await?),
            );
        }
        let fire = pki.client_tls(&Principal::Department(Department::Fire))?;
        let subscriber = SubscriptionServiceClient::new(connect(&endpoint, fire.config()).await?);
        Ok(Rig {
            js,
            bus,
            clients,
            subscriber,
            shutdown,
            gateway,
            pki_dir,
            nats,
        })
    }

    async fn stop(self) {
        let Rig {
            js,
            bus,
            clients,
            subscriber,
            shutdown,
            gateway,
            pki_dir,
            nats,
        } = self;
        shutdown.cancel();
        drop((clients, subscriber));
        let _ = tokio::time::timeout(Duration::from_secs(5), gateway).await;
        // Clients first, so that none of them reports the server going away.
        drop((js, bus, pki_dir));
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(nats);
    }
}

/// The bus's headers for one message (see `hazchem_bus` JetStream: deduplication forever).
fn bus_headers(publisher: &str, id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        hazchem_bus::dedup_key(publisher, id).as_str(),
    );
    headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
    headers.insert(
        "Nats-Expected-Last-Subject-Sequence-Subject",
        hazchem_bus::id_pattern(publisher, id).as_str(),
    );
    headers
}

/// Runs `work(chunk)` on `concurrency` tasks pulling chunks from a shared list; returns the total of
/// what the work reported as failed and the elapsed time.
async fn pool<T, F, Fut>(chunks: Vec<T>, concurrency: usize, work: F) -> (u64, Duration)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<Vec<T>>, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let chunks = Arc::new(chunks);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let chunks = chunks.clone();
        let next = next.clone();
        let work = work.clone();
        tasks.spawn(async move {
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= chunks.len() {
                    break;
                }
                failed += work(chunks.clone(), i).await;
            }
            failed
        });
    }
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        failed += done.unwrap_or(1);
    }
    (failed, started.elapsed())
}

/// Chunks of `size`; for the gateway, each chunk holds one department's events.
fn chunks(items: Vec<Item>, size: usize, by_department: bool) -> Vec<Vec<Item>> {
    if !by_department {
        return items.chunks(size).map(<[Item]>::to_vec).collect();
    }
    let mut per: BTreeMap<Department, Vec<Item>> = BTreeMap::new();
    for item in items {
        per.entry(item.department).or_default().push(item);
    }
    // Interleave the departments' chunks so that concurrent calls come from different departments.
    let mut lists: Vec<Vec<Vec<Item>>> = per
        .into_values()
        .map(|v| v.chunks(size).map(<[Item]>::to_vec).collect())
        .collect();
    let mut out = Vec::new();
    let mut round = 0;
    loop {
        let mut any = false;
        for list in &mut lists {
            if round < list.len() {
                out.push(std::mem::take(&mut list[round]));
                any = true;
            }
        }
        if !any {
            break;
        }
        round += 1;
    }
    out
}

async fn raw(rig: &Rig, items: Vec<Item>, batch: usize, concurrency: usize) -> Rate {
    let n = items.len() as u64;
    let js = rig.js.clone();
    let (failed, elapsed) = pool(
        chunks(items, batch, false),
        concurrency,
        move |chunks, i| {
            let js = js.clone();
            async move {
                let mut acks = Vec::with_capacity(chunks[i].len());
                let mut failed = 0;
                for item in &chunks[i] {
                    match js
                        .publish_with_headers(
                            item.subject.clone(),
                            bus_headers(item.department.code(), &item.id),
                            item.record.clone(),
                        )
                        .await
                    {
                        Ok(ack) => acks.push(ack),
                        Err(_) => failed += 1,
                    }
                }
                for ack in acks {
                    match ack.await {
                        Ok(a) if !a.duplicate => {}
                        _ => failed += 1,
                    }
                }
                failed
            }
        },
    )
    .await;
    Rate::new(n, failed, elapsed)
}

async fn bus(rig: &Rig, items: Vec<Item>, batch: usize, concurrency: usize) -> Rate {
    let n = items.len() as u64;
    let bus = rig.bus.clone();
    let (failed, elapsed) = pool(
        chunks(items, batch, false),
        concurrency,
        move |chunks, i| {
            let bus = bus.clone();
            async move {
                let chunk = &chunks[i];
                let outgoing: Vec<Outgoing> = chunk
                    .iter()
                    .map(|item| {
                        Outgoing::new(item.subject.clone(), item.id.clone(), item.record.clone())
                    })
                    .collect();
                let results = if outgoing.len() == 1 {
                    vec![bus.publish(outgoing.into_iter().next().expect("one")).await]
                } else {
                    bus.publish_many(outgoing).await
                };
                results
                    .into_iter()
                    .filter(|r| !matches!(r, Ok(a) if !a.duplicate))
                    .count() as u64
            }
        },
    )
    .await;
    Rate::new(n, failed, elapsed)
}

async fn gateway(rig: &Rig, items: Vec<Item>, batch: usize, concurrency: usize) -> Rate {
    let n = items.len() as u64;
    let clients = rig.clients.clone();
    let (failed, elapsed) = pool(chunks(items, batch, true), concurrency, move |chunks, i| {
        let clients = clients.clone();
        async move {
            let chunk = &chunks[i];
            let Some(first) = chunk.first() else {
                return 0;
            };
            let mut client = clients[&first.department].clone();
            if chunk.len() == 1 {
                let request = v1::PublishRequest {
                    event: Some(first.signed.clone()),
                };
                return match client.publish(request).await {
                    Ok(r) if r.get_ref().accepted.as_ref().is_some_and(|a| !a.duplicate) => 0,
                    Ok(_) => 1,
                    Err(status) => {
                        tracing::warn!(%status, "benchmark publish refused");
                        1
                    }
                };
            }
            let request = v1::PublishBatchRequest {
                events: chunk.iter().map(|i| i.signed.clone()).collect(),
            };
            match client.publish_batch(request).await {
                Ok(response) => response
                    .into_inner()
                    .results
                    .iter()
                    .filter(|r| {
                        !matches!(&r.outcome, Some(v1::publish_result::Outcome::Accepted(a)) if !a.duplicate)
                    })
                    .count() as u64,
                Err(status) => {
                    tracing::warn!(%status, "benchmark batch refused");
                    chunk.len() as u64
                }
            }
        }
    })
    .await;
    Rate::new(n, failed, elapsed)
}

async fn ingest(
    rig: &Rig,
    corpus: &Corpus,
    sizes: &Sizes,
    sync: SyncInterval,
    label: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Ingest {
    let shapes = [
        ("single".to_owned(), 1, 1, sizes.single_c1),
        (
            "single".to_owned(),
            1,
            sizes.single_concurrency,
            sizes.single_cn,
        ),
        (
            format!("batch {}", sizes.batch_size),
            sizes.batch_size,
            1,
            sizes.batch_c1,
        ),
        (
            format!("batch {}", sizes.batch_size),
            sizes.batch_size,
            sizes.batch_concurrency,
            sizes.batch_cn,
        ),
    ];
    let mut rows = Vec::new();
    for (n, (mode, batch, concurrency, count)) in shapes.into_iter().enumerate() {
        progress(&format!(
            "ingest {mode}, {concurrency} in flight, {count} events ({})",
            sync.describe()
        ));
        let raw_rate = raw(
            rig,
            corpus.items(&format!("{label}r{n}"), count),
            batch,
            concurrency,
        )
        .await;
        let bus_rate = bus(
            rig,
            corpus.items(&format!("{label}b{n}"), count),
            batch,
            concurrency,
        )
        .await;
        let gw_rate = gateway(
            rig,
            corpus.items(&format!("{label}g{n}"), count),
            batch,
            concurrency,
        )
        .await;
        let ratio = |a: &Rate| {
            if raw_rate.per_second > 0.0 {
                a.per_second / raw_rate.per_second
            } else {
                0.0
            }
        };
        rows.push(IngestRow {
            mode,
            concurrency,
            gateway_ratio: ratio(&gw_rate),
            bus_ratio: ratio(&bus_rate),
            raw: raw_rate,
            bus: bus_rate,
            gateway: gw_rate,
        });
    }
    Ingest {
        sync_interval: sync,
        rows,
    }
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    Percentiles {
        samples: samples.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: samples.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    }
}

async fn latency(rig: &Rig, corpus: &Corpus, sizes: &Sizes, sync: SyncInterval) -> Result<Latency> {
    let count = (sizes.latency_rate * sizes.latency_seconds).round() as usize;
    let items = corpus.items("lat", count.max(1));
    let mut subscriber = rig.subscriber.clone();
    let request = v1::SubscribeRequest {
        filter: Some(v1::EventFilter {
            event_types: Vec::new(),
            ..Default::default()
        }),
        start: Some(v1::StartPosition {
            position: Some(v1::start_position::Position::NewOnly(v1::NewOnly {})),
        }),
    };
    let mut stream = subscriber.subscribe(request).await?.into_inner();
    let sent: Arc<std::sync::Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let wanted: std::collections::HashSet<String> = items.iter().map(|i| i.id.clone()).collect();
    let total = wanted.len();
    let stop = CancellationToken::new();
    let receiver = {
        let sent = sent.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total);
            let mut early: BTreeMap<String, Instant> = BTreeMap::new();
            loop {
                let next = tokio::select! {
                    next = stream.next() => next,
                    () = stop.cancelled() => break,
                };
                let Some(Ok(item)) = next else { break };
                let received = Instant::now();
                let id = item
                    .subject
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if !wanted.contains(&id) {
                    continue;
                }
                let start = sent.lock().expect("not poisoned").get(&id).copied();
                match start {
                    Some(start) => latencies.push(received.duration_since(start)),
                    // Delivered before the sender recorded its start: count it as ~0.
                    None => {
                        early.insert(id, received);
                    }
                }
                if latencies.len() + early.len() >= total {
                    break;
                }
            }
            for _ in early {
                latencies.push(Duration::ZERO);
            }
            latencies
        })
    };
    // Open loop: one publish per tick, whatever the previous ones are doing.
    let interval = Duration::from_secs_f64(1.0 / sizes.latency_rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let acks: Arc<std::sync::Mutex<Vec<Duration>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for item in items {
        ticker.tick().await;
        let mut client = rig.clients[&item.department].clone();
        let sent = sent.clone();
        let acks = acks.clone();
        tasks.spawn(async move {
            let start = Instant::now();
            sent.lock()
                .expect("not poisoned")
                .insert(item.id.clone(), start);
            let request = v1::PublishRequest {
                event: Some(item.signed),
            };
            if client.publish(request).await.is_ok() {
                acks.lock().expect("not poisoned").push(start.elapsed());
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    // Whatever has not arrived 10 s after the last publish is lost.
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            stop.cancel();
        })
    };
    let latencies = receiver.await.unwrap_or_default();
    stopper.abort();
    let lost = total.saturating_sub(latencies.len());
    let acks = std::mem::take(&mut *acks.lock().expect("not poisoned"));
    Ok(Latency {
        sync_interval: sync,
        rate_per_second: sizes.latency_rate,
        seconds,
        publish_to_delivery: percentiles(latencies),
        publish_to_ack: percentiles(acks),
        lost,
    })
}

async fn ledger(rig: &Rig) -> std::result::Result<LedgerRates, String> {
    use hazchem_ledger::bundle::{BundleRecord, BundleWriter, verify_bundle};
    use hazchem_ledger::{Ledger, LedgerConfig};
    let size = rig.bus.last_sequence().await.map_err(|e| e.to_string())?;
    let dir = tempfile::Builder::new()
        .prefix("hazchem-bench-ledger-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let config = LedgerConfig {
        store: dir.path().join("store"),
        ..LedgerConfig::default()
    };
    let key = hazchem_pki::SigningKey::generate();
    let ledger = Ledger::open(&config, key, Policy::default_policy()).map_err(|e| e.to_string())?;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let running = {
        let ledger = ledger.clone();
        let bus = rig.bus.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { ledger.run(bus, None, shutdown).await })
    };
    tokio::select! {
        () = ledger.wait_for_size(size) => {}
        finished = running => {
            return Err(format!("the ledger stopped before ingesting: {finished:?}"));
        }
    }
    let append = Rate::new(size, 0, started.elapsed());
    let checkpoint = ledger.checkpoint(true).await.map_err(|e| e.to_string())?;
    shutdown.cancel();
    // Export a bundle of every leaf (as `hazchem audit export` does), then verify it.
    let bundle = dir.path().join("bundle");
    let mut writer = BundleWriter::create(&bundle).map_err(|e| e.to_string())?;
    for leaf in ledger.store().leaves(0, checkpoint.size) {
        let (index, bytes) = leaf.map_err(|e| e.to_string())?;
        writer
            .write_record(&BundleRecord {
                index,
                record: bytes.to_vec(),
                proof: None,
            })
            .map_err(|e| e.to_string())?;
    }
    let key = ledger.verifier_key().clone();
    #[allow(clippy::disallowed_methods)]
    // the bundle's descriptive creation time, as `audit export` stamps it
    let created_at = Utc::now();
    writer
        .finish(&checkpoint.note, Some(&key), None, created_at)
        .map_err(|e| e.to_string())?;
    let bundle_bytes = std::fs::metadata(bundle.join(hazchem_ledger::bundle::RECORDS))
        .map(|m| m.len())
        .unwrap_or(0);
    let started = Instant::now();
    let verified =
        tokio::task::spawn_blocking(move || verify_bundle(&bundle, key, &Default::default()))
            .await
            .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    verified.map_err(|e| format!("verify failed: {:?}", e.first()))?;
    Ok(LedgerRates {
        append,
        verify: Rate::new(checkpoint.size, 0, elapsed),
        bundle_bytes,
    })
}

fn machine(nats: &NatsProcess) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or_else(
            || "unknown".to_owned(),
            |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0),
        );
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| format!("{} {}", std::env::consts::OS, r.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_owned());
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        cpu_model,
        memory,
        os,
        nats_server: NatsProcess::version(nats.binary_path()).unwrap_or_default(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_owned(),
    }
}

fn corpus(config: &BenchConfig) -> Result<Corpus> {
    let city = City::generate(config.seed, CityConfig::default())?;
    let traffic = Traffic::generate(&city, &TrafficConfig::new(config.seed, config.sizes.corpus))?;
    // Credit decisions need the credit service's guard; the corpus has none (nothing is injected).
    let templates: Vec<Template> = traffic
        .events
        .into_iter()
        .filter(|e| !e.token.starts_with("credit_"))
        .map(|e| Template {
            department: e.department,
            token: e.token,
            event: e.event,
        })
        .collect();
    // The signing keys are the rig's (each rig has its own PKI): set when the rig is up.
    Ok(Corpus {
        templates,
        keys: BTreeMap::new(),
        policy: Policy::default_policy(),
    })
}

/// Sizes and mix of the payloads (signed as they will be sent).
fn payloads(corpus: &Corpus) -> Payloads {
    let sample = corpus.items("size", corpus.templates.len());
    let mean_event = sample.iter().map(|i| i.signed.event.len()).sum::<usize>() as f64
        / sample.len().max(1) as f64;
    let mean_record =
        sample.iter().map(|i| i.record.len()).sum::<usize>() as f64 / sample.len().max(1) as f64;
    let mut mix: BTreeMap<String, usize> = BTreeMap::new();
    for t in &corpus.templates {
        *mix.entry(t.token.clone()).or_default() += 1;
    }
    let mut mix: Vec<(String, f64)> = mix
        .into_iter()
        .map(|(k, n)| (k, n as f64 / corpus.templates.len().max(1) as f64))
        .collect();
    mix.sort_by(|a, b| b.1.total_cmp(&a.1));
    mix.truncate(10);
    Payloads {
        corpus_events: corpus.templates.len(),
        mean_event_bytes: mean_event,
        mean_record_bytes: mean_record,
        mix,
    }
}

/// Runs the benchmark. `progress` is told what is being measured.
pub async fn run(config: &BenchConfig, progress: &(dyn Fn(&str) + Sync)) -> Result<BenchReport> {
    #[allow(clippy::disallowed_methods)] // the report states when the run started, in wall time
    let started_at = Utc::now();
    let started = Instant::now();
    progress("generating the payloads from the simulator");
    let mut corpus = corpus(config)?;

    progress("starting nats-server (sync_interval default) and the gateway");
    let rig = Rig::start(SyncInterval::Default, config.nats_server.clone()).await?;
    let machine = machine(&rig.nats);
    corpus.keys = rig_keys(&rig)?;
    let payloads = payloads(&corpus);
    let mut ingests = vec![
        ingest(
            &rig,
            &corpus,
            &config.sizes,
            SyncInterval::Default,
            "d",
            progress,
        )
        .await,
    ];
    progress(&format!(
        "latency at {} events/s for {} s",
        config.sizes.latency_rate, config.sizes.latency_seconds
    ));
    let latency = latency(&rig, &corpus, &config.sizes, SyncInterval::Default).await?;
    let (ledger_rates, ledger_note) = if config.ledger {
        progress("ledger: ingesting everything stored, then verifying an exported bundle");
        match ledger(&rig).await {
            Ok(rates) => (Some(rates), String::new()),
            Err(e) => (None, format!("ledger not measured: {e}")),
        }
    } else {
        (None, "ledger not measured (disabled)".to_owned())
    };
    rig.stop().await;

    if config.profile == Profile::Full {
        progress("starting nats-server with sync_interval: always");
        let rig = Rig::start(SyncInterval::Always, config.nats_server.clone()).await?;
        corpus.keys = rig_keys(&rig)?;
        let mut sizes = config.sizes;
        // fsync per message is slow: a fifth of the samples.
        for n in [
            &mut sizes.single_c1,
            &mut sizes.single_cn,
            &mut sizes.batch_c1,
            &mut sizes.batch_cn,
        ] {
            *n = (*n / 5).max(100);
        }
        ingests.push(ingest(&rig, &corpus, &sizes, SyncInterval::Always, "a", progress).await);
        rig.stop().await;
    }

    let headlines = ingests
        .iter()
        .map(|ingest| headline(ingest, ledger_rates.as_ref()))
        .collect();
    Ok(BenchReport {
        profile: config.profile,
        started_at,
        total_seconds: started.elapsed().as_secs_f64(),
        machine,
        sizes: config.sizes,
        payloads,
        ingest: ingests,
        latency,
        ledger: ledger_rates,
        ledger_note,
        headlines,
    })
}

/// The rig's department signing keys (its PKI is in its temporary directory).
fn rig_keys(rig: &Rig) -> Result<BTreeMap<Department, hazchem_pki::SigningKey>> {
    let pki = DevPki::load(rig.pki_dir.path())?;
    dev_signing_keys(&pki)
}

/// The headline of one ingest table: its best gateway batch row, and the ledger's rates.
fn headline(ingest: &Ingest, ledger: Option<&LedgerRates>) -> Headline {
    let batch = ingest
        .rows
        .iter()
        .filter(|r| r.mode.starts_with("batch"))
        .max_by(|a, b| a.gateway.per_second.total_cmp(&b.gateway.per_second));
    let records = NANTONG_YEARLY_RECORDS;
    let (ingest_rate, ingest_sample) =
        batch.map_or((0.0, 0), |r| (r.gateway.per_second, r.gateway.events));
    let ingest_seconds = if ingest_rate > 0.0 {
        records as f64 / ingest_rate
    } else {
        f64::INFINITY
    };
    let append_rate = ledger.map(|l| l.append.per_second);
    let verify_rate = ledger.map(|l| l.verify.per_second);
    let append_seconds = append_rate.filter(|r| *r > 0.0).map(|r| records as f64 / r);
    let verify_seconds = verify_rate.filter(|r| *r > 0.0).map(|r| records as f64 / r);
    let end_to_end = verify_seconds.map(|v| ingest_seconds.max(append_seconds.unwrap_or(0.0)) + v);
    Headline {
        sync_interval: ingest.sync_interval,
        records,
        ingest_rate,
        ingest_seconds,
        ingest_sample,
        ledger_append_rate: append_rate,
        ledger_append_seconds: append_seconds,
        verify_rate,
        verify_seconds,
        verify_sample: ledger.map(|l| l.verify.events),
        end_to_end_seconds: end_to_end,
        note: format!(
            "extrapolated from measured rates: ingest from {} events through the gateway ({}), \
             verify from {} records; end to end = max(ingest, ledger append) + verify",
            ingest_sample,
            batch.map_or("-".to_owned(), |r| format!(
                "{}, {} in flight",
                r.mode, r.concurrency
            )),
            ledger.map_or("-".to_owned(), |l| l.verify.events.to_string()),
        ),
    }
}

/// The report as a terminal table.
pub fn render(report: &BenchReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let m = &report.machine;
    let _ = writeln!(
        out,
        "hazchem bench --profile {} ({} build) on {} CPUs, {}, {}; {}; {}",
        report.profile.name(),
        m.build,
        m.cpus,
        m.cpu_model,
        m.memory,
        m.os,
        m.nats_server
    );
    let p = &report.payloads;
    let _ = writeln!(
        out,
        "payloads: simulator traffic, {} distinct events, mean event {:.0} B, mean record {:.0} B; mix: {}",
        p.corpus_events,
        p.mean_event_bytes,
        p.mean_record_bytes,
        p.mix
            .iter()
            .take(6)
            .map(|(t, s)| format!("{t} {:.0}%", s * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for ingest in &report.ingest {
        let _ = writeln!(
            out,
            "\ningest, JetStream sync_interval {} (events/s stored and acknowledged)",
            ingest.sync_interval.describe()
        );
        let _ = writeln!(
            out,
            "{:<11} {:>8} {:>9} {:>12} {:>12} {:>12} {:>9} {:>9}",
            "mode", "inflight", "events", "raw JS", "hazchem-bus", "gateway", "bus/raw", "gw/raw"
        );
        for r in &ingest.rows {
            let failed = r.raw.failed + r.bus.failed + r.gateway.failed;
            let _ = writeln!(
                out,
                "{:<11} {:>8} {:>9} {:>12.0} {:>12.0} {:>12.0} {:>9.2} {:>9.2}{}",
                r.mode,
                r.concurrency,
                r.gateway.events,
                r.raw.per_second,
                r.bus.per_second,
                r.gateway.per_second,
                r.bus_ratio,
                r.gateway_ratio,
                if failed > 0 {
                    format!("  ({failed} failed)")
                } else {
                    String::new()
                }
            );
        }
    }
    let l = &report.latency;
    let _ = writeln!(
        out,
        "\nlatency at {:.0} events/s for {:.1} s (gateway Publish -> gateway Subscribe, sync_interval {})",
        l.rate_per_second,
        l.seconds,
        l.sync_interval.describe()
    );
    for (name, p) in [
        ("publish -> delivery", &l.publish_to_delivery),
        ("publish -> ack", &l.publish_to_ack),
    ] {
        let _ = writeln!(
            out,
            "  {name:<20} p50 {:>7.2} ms   p99 {:>7.2} ms   p99.9 {:>7.2} ms   max {:>7.2} ms   ({} samples)",
            p.p50_ms, p.p99_ms, p.p999_ms, p.max_ms, p.samples
        );
    }
    if l.lost > 0 {
        let _ = writeln!(out, "  {} events not delivered within the wait", l.lost);
    }
    match &report.ledger {
        Some(ledger) => {
            let _ = writeln!(
                out,
                "\nledger: append {:.0} records/s ({} records from JetStream, durable), audit verify {:.0} records/s ({} records, bundle {:.1} MB)",
                ledger.append.per_second,
                ledger.append.events,
                ledger.verify.per_second,
                ledger.verify.events,
                ledger.bundle_bytes as f64 / 1e6
            );
        }
        None => {
            let _ = writeln!(out, "\nledger: {}", report.ledger_note);
        }
    }
    for h in &report.headlines {
        render_headline(&mut out, h);
    }
    let _ = writeln!(out, "\ntotal {:.0} s", report.total_seconds);
    out
}

fn render_headline(out: &mut String, h: &Headline) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "\nheadline: Nantong's yearly intake, {:.2} million records (ingest with sync_interval {})",
        h.records as f64 / 1e6,
        h.sync_interval.describe()
    );
    let _ = writeln!(
        out,
        "  ingest through the gateway  {:>9}  at {:.0} events/s",
        duration(h.ingest_seconds),
        h.ingest_rate
    );
    if let (Some(s), Some(r)) = (h.ledger_append_seconds, h.ledger_append_rate) {
        let _ = writeln!(
            out,
            "  ledger append               {:>9}  at {r:.0} records/s (follows the ingest)",
            duration(s)
        );
    }
    match (h.verify_seconds, h.verify_rate, h.end_to_end_seconds) {
        (Some(v), Some(r), Some(e)) => {
            let _ = writeln!(
                out,
                "  audit verify                {:>9}  at {r:.0} records/s",
                duration(v)
            );
            let _ = writeln!(out, "  end to end                  {:>9}", duration(e));
        }
        _ => {
            let _ = writeln!(out, "  audit verify: not measured (see ledger above)");
        }
    }
    let _ = writeln!(out, "  ({})", h.note);
}

fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "-".into();
    }
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{seconds:.1}s")
    }
}
