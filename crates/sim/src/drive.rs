//! Driving traffic through the gateway as the nine department systems would: one mTLS connection per
//! department with its own client certificate, origin signatures where the policy requires them, batch
//! (or single) publishes per department, all departments concurrently, rate-limited by a token bucket.
//!
//! Order: a department's events reach the record in the order generated (one call in flight per
//! department, and a batch keeps its order); phase 0 is on the record before phase 1 starts; an event
//! with [`SimEvent::after`] waits until those events were answered.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hazchem_admission::Policy;
use hazchem_domain::Department;
use hazchem_pki::{DevPki, Principal, SigningKey};
use hazchem_proto::v1;
use hazchem_proto::v1::publish_service_client::PublishServiceClient;
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use crate::traffic::SimEvent;

/// An event ready to send: encoded, signed where required.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub index: usize,
    pub department: Department,
    pub phase: u8,
    pub after: Vec<usize>,
    pub id: String,
    pub token: String,
    pub signed: v1::SignedEvent,
}

/// Encodes every event and signs those the policy requires signed (or all, with `sign_all`) with the
/// publishing department's key.
pub fn prepare(
    events: &[SimEvent],
    keys: &BTreeMap<Department, SigningKey>,
    policy: &Policy,
    sign_all: bool,
) -> Vec<Prepared> {
    events
        .iter()
        .map(|e| {
            let bytes = e.event.encode_to_vec();
            let signature = (sign_all || policy.signature_required(e.department, &e.token))
                .then(|| keys.get(&e.department))
                .flatten()
                .map(|key| v1::OriginSignature {
                    key_id: key.origin_key_id(e.department),
                    signature: key.sign(&bytes).to_vec(),
                });
            Prepared {
                index: e.index,
                department: e.department,
                phase: e.phase,
                after: e.after.clone(),
                id: e.event.id.clone(),
                token: e.token.clone(),
                signed: v1::SignedEvent {
                    event: bytes,
                    signature,
                },
            }
        })
        .collect()
}

/// The nine departments' origin-signing keys from a development PKI.
pub fn dev_signing_keys(pki: &DevPki) -> Result<BTreeMap<Department, SigningKey>> {
    Department::ALL
        .into_iter()
        .map(|d| Ok((d, pki.signing_key(d)?)))
        .collect()
}

/// Opens one channel per department, each with that department's client certificate.
pub async fn connect_departments(
    endpoint: &str,
    pki: &DevPki,
) -> Result<BTreeMap<Department, Channel>> {
    let mut out = BTreeMap::new();
    for d in Department::ALL {
        let tls = pki.client_tls(&Principal::Department(d))?;
        out.insert(d, connect(endpoint, tls.config()).await?);
    }
    Ok(out)
}

/// Connects to `endpoint` with `tls`, retrying for a few seconds (a gateway that is just starting).
pub async fn connect(endpoint: &str, tls: tonic::transport::ClientTlsConfig) -> Result<Channel> {
    let failed = |message: String| Error::Connect {
        endpoint: endpoint.to_owned(),
        message,
    };
    let endpoint_cfg = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| failed(format!("not a URL: {e}")))?
        .tls_config(tls)
        .map_err(|e| failed(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match endpoint_cfg.connect().await {
            Ok(channel) => return Ok(channel),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(failed(format!("{e:?}"))),
        }
    }
}

/// How to drive.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveOptions {
    /// Events per second over all departments; `None`: as fast as the gateway answers.
    pub rate: Option<f64>,
    /// Events per call; 1 uses the single `Publish` call.
    pub batch: usize,
    /// Stop after this long even if events are left.
    pub duration: Option<Duration>,
}

impl Default for DriveOptions {
    fn default() -> Self {
        DriveOptions {
            rate: None,
            batch: 200,
            duration: None,
        }
    }
}

/// One rejected event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionReport {
    pub event_id: String,
    pub department: String,
    pub event_type: String,
    pub code: String,
    pub message: String,
}

/// What a department's system saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentSummary {
    pub published: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// What the run saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub departments: BTreeMap<String, DepartmentSummary>,
    pub published: u64,
    /// Newly stored.
    pub accepted: u64,
    /// Answered as already stored (an earlier run with the same seed and epoch).
    pub duplicates: u64,
    pub rejected: u64,
    /// Rejections by reason (`<code>: <message>`, first 200 characters).
    pub rejections_by_reason: BTreeMap<String, u64>,
    /// The first 100 rejections in full.
    pub rejections: Vec<RejectionReport>,
    pub elapsed_seconds: f64,
    pub events_per_second: f64,
    /// The duration ran out before every event was published.
    pub stopped_early: bool,
}

/// A token bucket shared by the departments' workers.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    state: tokio::sync::Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// `rate` tokens a second, holding at most a twentieth of a second's worth (at least one).
    pub fn new(rate: f64) -> Self {
        let capacity = (rate / 20.0).max(1.0);
        TokenBucket {
            rate,
            capacity,
            state: tokio::sync::Mutex::new((capacity, Instant::now())),
        }
    }

    /// Takes between 1 and `want` tokens (no more than the capacity), waiting for the first.
    pub async fn take(&self, want: usize) -> usize {
        let want = (want.max(1) as f64).min(self.capacity);
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let (tokens, last) = &mut *state;
                *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate)
                    .min(self.capacity);
                *last = now;
                if *tokens >= 1.0 {
                    let granted = tokens.min(want).floor();
                    *tokens -= granted;
                    return granted as usize;
                }
                Duration::from_secs_f64((1.0 - *tokens) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

struct Shared {
    done: Vec<AtomicBool>,
    bucket: Option<TokenBucket>,
    deadline: Option<Instant>,
    options: DriveOptions,
    progress: Box<dyn Fn(u64) + Send + Sync>,
}

#[derive(Default)]
struct Tally {
    summary: DepartmentSummary,
    rejections: Vec<RejectionReport>,
    stopped: bool,
}

/// Publishes `events` through the gateway; `clients` holds one channel per department that publishes.
/// `progress` is called with the number of events answered by each call.
pub async fn drive(
    events: Vec<Prepared>,
    channels: &BTreeMap<Department, Channel>,
    options: DriveOptions,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<Summary> {
    if options.batch == 0 || options.batch > hazchem_gateway::MAX_BATCH {
        return Err(Error::Config(format!(
            "batch size: between 1 and {}",
            hazchem_gateway::MAX_BATCH
        )));
    }
    if options.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(Error::Config(
            "rate: a positive number of events a second".into(),
        ));
    }
    let size = events.iter().map(|e| e.index + 1).max().unwrap_or(0);
    let started = Instant::now();
    let shared = Arc::new(Shared {
        done: (0..size).map(|_| AtomicBool::new(false)).collect(),
        bucket: options.rate.map(TokenBucket::new),
        deadline: options.duration.map(|d| started + d),
        options,
        progress: Box::new(progress),
    });
    let mut phases: BTreeMap<u8, BTreeMap<Department, VecDeque<Prepared>>> = BTreeMap::new();
    for e in events {
        phases
            .entry(e.phase)
            .or_default()
            .entry(e.department)
            .or_default()
            .push_back(e);
    }
    let mut summary = Summary::default();
    let mut tallies: BTreeMap<Department, Tally> = BTreeMap::new();
    'phases: for (_, departments) in phases {
        let mut workers = tokio::task::JoinSet::new();
        for (department, queue) in departments {
            let channel = channels.get(&department).cloned().ok_or_else(|| {
                Error::Config(format!(
                    "no connection for department {}",
                    department.code()
                ))
            })?;
            let shared = shared.clone();
            workers.spawn(async move {
                let tally = worker(
                    department,
                    queue,
                    PublishServiceClient::new(channel),
                    &shared,
                )
                .await;
                (department, tally)
            });
        }
        let mut stopped = false;
        while let Some(joined) = workers.join_next().await {
            let (department, tally) =
                joined.map_err(|e| Error::Bench(format!("a department worker failed: {e}")))?;
            let tally = tally?;
            stopped |= tally.stopped;
            let total = tallies.entry(department).or_default();
            total.summary.published += tally.summary.published;
            total.summary.accepted += tally.summary.accepted;
            total.summary.duplicates += tally.summary.duplicates;
            total.summary.rejected += tally.summary.rejected;
            total.rejections.extend(tally.rejections);
        }
        if stopped {
            summary.stopped_early = true;
            break 'phases;
        }
    }
    for (department, tally) in tallies {
        summary.published += tally.summary.published;
        summary.accepted += tally.summary.accepted;
        summary.duplicates += tally.summary.duplicates;
        summary.rejected += tally.summary.rejected;
        for r in tally.rejections {
            let reason: String = format!("{}: {}", r.code, r.message)
                .chars()
                .take(200)
                .collect();
            *summary.rejections_by_reason.entry(reason).or_default() += 1;
            if summary.rejections.len() < 100 {
                summary.rejections.push(r);
            }
        }
        summary
            .departments
            .insert(department.code().to_owned(), tally.summary);
    }
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    summary.events_per_second = if summary.elapsed_seconds > 0.0 {
        (summary.accepted + summary.duplicates) as f64 / summary.elapsed_seconds
    } else {
        0.0
    };
    Ok(summary)
}

fn ready(shared: &Shared, event: &Prepared, in_batch: &[Prepared]) -> bool {
    event.after.iter().all(|&a| {
        shared.done.get(a).is_none_or(|d| d.load(Ordering::Acquire))
            || in_batch.iter().any(|b| b.index == a)
    })
}

async fn worker(
    department: Department,
    mut queue: VecDeque<Prepared>,
    mut client: PublishServiceClient<Channel>,
    shared: &Shared,
) -> Result<Tally> {
    let mut tally = Tally::default();
    let max = shared.options.batch;
    while !queue.is_empty() {
        if shared.deadline.is_some_and(|d| Instant::now() >= d) {
            tally.stopped = true;
            break;
        }
        // Wait until the head may go.
        while !ready(shared, &queue[0], &[]) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut want = max.min(queue.len());
        if let Some(bucket) = &shared.bucket {
            want = bucket.take(want).await;
        }
        let mut batch: Vec<Prepared> = Vec::with_capacity(want);
        while batch.len() < want {
            match queue.front() {
                Some(next) if ready(shared, next, &batch) => {
                    batch.push(queue.pop_front().expect("front exists"));
                }
                _ => break,
            }
        }
        let results = send(&mut client, &batch, max == 1).await?;
        for (event, result) in batch.iter().zip(results) {
            tally.summary.published += 1;
            match result {
                Ok(duplicate) => {
                    if duplicate {
                        tally.summary.duplicates += 1;
                    } else {
                        tally.summary.accepted += 1;
                    }
                }
                Err((code, message)) => {
                    tally.summary.rejected += 1;
                    tally.rejections.push(RejectionReport {
                        event_id: event.id.clone(),
                        department: department.code().to_owned(),
                        event_type: event.token.clone(),
                        code,
                        message,
                    });
                }
            }
            if let Some(flag) = shared.done.get(event.index) {
                flag.store(true, Ordering::Release);
            }
        }
        (shared.progress)(batch.len() as u64);
    }
    Ok(tally)
}

type Outcome = std::result::Result<bool, (String, String)>;

/// Sends a batch (or its events one call each with `single`), retrying a call that failed as a whole
/// (event ids make retries safe: a stored event is answered as a duplicate).
async fn send(
    client: &mut PublishServiceClient<Channel>,
    batch: &[Prepared],
    single: bool,
) -> Result<Vec<Outcome>> {
    if single {
        let mut out = Vec::with_capacity(batch.len());
        for event in batch {
            let answer = retry(|| {
                let mut client = client.clone();
                let request = v1::PublishRequest {
                    event: Some(event.signed.clone()),
                };
                async move { client.publish(request).await }
            })
            .await;
            out.push(match answer {
                Ok(response) => Ok(response.into_inner().accepted.is_some_and(|a| a.duplicate)),
                Err(status) if is_transport(&status) => return Err(Error::Call(status)),
                Err(status) => Err((format!("{:?}", status.code()), status.message().to_owned())),
            });
        }
        return Ok(out);
    }
    let events: Vec<v1::SignedEvent> = batch.iter().map(|e| e.signed.clone()).collect();
    let response = retry(|| {
        let mut client = client.clone();
        let request = v1::PublishBatchRequest {
            events: events.clone(),
        };
        async move { client.publish_batch(request).await }
    })
    .await?;
    Ok(response
        .into_inner()
        .results
        .into_iter()
        .map(|r| match r.outcome {
            Some(v1::publish_result::Outcome::Accepted(a)) => Ok(a.duplicate),
            Some(v1::publish_result::Outcome::Rejected(s)) => {
                Err((format!("{:?}", tonic::Code::from_i32(s.code)), s.message))
            }
            None => Err(("Unknown".into(), "empty result".into())),
        })
        .collect())
}

async fn retry<T, F, Fut>(mut call: F) -> std::result::Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
{
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        match call().await {
            Err(status) if attempt < 5 && is_transport(&status) => {
                tracing::warn!(attempt, error = %status, "publish call failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// A failure of the call (or of the bus behind the gateway) that a retry with the same ids may fix.
fn is_transport(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::DeadlineExceeded
    )
}
