//! The write path: admit, record, append, acknowledge.

use std::sync::Arc;
use std::time::Instant;

use hazchem_admission::{Admission, Admitted, Limits, Policy, SignatureChange};
use hazchem_bus::{Bus, Outgoing};
use hazchem_pki::{KeyRegistry, Principal};
use hazchem_proto::v1;
use prost::Message;
use tonic::Status;
use tracing::Instrument as _;

use crate::config::GatewayConfig;
use crate::metrics::Metrics;
use hazchem_kit::{Accepted, EventGuard, SharedClock, SystemClock};

/// The gateway's publishing core, shared by the gRPC service and by in-process services (which publish
/// through it as their service principal, so that their events pass the same checks).
#[derive(Clone)]
pub struct Publisher {
    bus: Bus,
    admission: Arc<Admission>,
    metrics: Metrics,
    guards: Vec<Arc<dyn EventGuard>>,
    /// Held from a guarded event's review until its append, so reviews see every earlier guarded event.
    guarded: Arc<tokio::sync::Mutex<()>>,
    /// The gateway's clock: admission's "now" (the `not_future` rule) and each record's `accepted_at`.
    clock: SharedClock,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

/// One event on its way to the bus: admitted, with its record bytes built.
struct Prepared {
    admitted: Admitted,
    outgoing: Outgoing,
}

impl Publisher {
    pub fn new(bus: Bus, admission: Admission, metrics: Metrics) -> Self {
        Publisher {
            bus,
            admission: Arc::new(admission),
            metrics,
            guards: Vec::new(),
            guarded: Arc::default(),
            clock: SystemClock::shared(),
        }
    }

    /// Takes the time from `clock` instead of the system clock (tests move a
    /// [`hazchem_kit::ManualClock`]).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock admission and `accepted_at` read.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Adds a guard that must approve events of its types before they are appended.
    pub fn with_guard(mut self, guard: Arc<dyn EventGuard>) -> Self {
        self.guards.push(guard);
        self
    }

    fn guard_for(&self, token: &str) -> Option<&Arc<dyn EventGuard>> {
        self.guards.iter().find(|g| g.tokens().contains(&token))
    }

    /// Appends one prepared event, first asking its guard if it has one.
    #[tracing::instrument(name = "append", level = "debug", skip_all, fields(event_id = %prepared.admitted.id, sequence))]
    async fn append(
        &self,
        principal: &Principal,
        prepared: &Prepared,
    ) -> Result<hazchem_bus::Result<hazchem_bus::Ack>, Status> {
        let appended = |ack: hazchem_bus::Result<hazchem_bus::Ack>| {
            if let Ok(ack) = &ack {
                tracing::Span::current().record("sequence", ack.sequence);
            }
            ack
        };
        let Some(guard) = self.guard_for(&prepared.admitted.token) else {
            return Ok(appended(
                self.bus_as(principal)
                    .publish(prepared.outgoing.clone())
                    .await,
            ));
        };
        let _serial = self.guarded.lock().await;
        let up_to =
            self.bus.last_sequence().await.map_err(|e| {
                Status::unavailable(format!("cannot read the stream position: {e}"))
            })?;
        if let Err(status) = guard
            .review(principal, &prepared.admitted.event, up_to)
            .await
        {
            self.metrics.rejected(principal, "guard_refused");
            return Err(status);
        }
        Ok(appended(
            self.bus_as(principal)
                .publish(prepared.outgoing.clone())
                .await,
        ))
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The bus as `principal` publishes on it: over its own NATS connection when the bus has
    /// per-principal credentials, so NATS checks its publish permissions as well.
    fn bus_as(&self, principal: &Principal) -> Bus {
        self.bus.for_principal(principal.name())
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    pub(crate) fn admission_arc(&self) -> Arc<Admission> {
        self.admission.clone()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The publishing core a configuration describes: its policy (or the default), the registered
    /// department signing keys (none for a process that only runs services), and its limits.
    pub fn from_config(config: &GatewayConfig, bus: Bus, metrics: Metrics) -> crate::Result<Self> {
        let policy = match &config.policy {
            Some(path) => Policy::load(path)?,
            None => Policy::default_policy(),
        };
        let keys = match &config.signing_keys {
            Some(path) => hazchem_pki::load_key_registry(path)?,
            None => KeyRegistry::new(),
        };
        let limits = Limits {
            max_event_bytes: config.max_event_bytes,
            max_clock_skew: config.max_clock_skew,
        };
        Ok(Publisher::new(
            bus,
            Admission::new(policy, keys, limits),
            metrics,
        ))
    }

    /// Publishes one event: the ack means it is durable in the stream.
    #[tracing::instrument(name = "publish", skip_all, fields(principal = %principal.uri(), event_id, sequence))]
    pub async fn publish(
        &self,
        principal: &Principal,
        signed: &v1::SignedEvent,
    ) -> Result<Accepted, Status> {
        let started = Instant::now();
        let prepared = self.prepare(principal, signed)?;
        let span = tracing::Span::current();
        span.record("event_id", prepared.admitted.id.as_str());
        let result = self.append(principal, &prepared).await?;
        let accepted = self.finish(principal, prepared, result, started).await?;
        span.record("sequence", accepted.sequence);
        Ok(accepted)
    }

    /// Publishes many events; each gets its own result, in order, and the stream keeps the batch's order.
    /// Admitted events are appended together (pipelined), so a batch costs about one round trip to the
    /// stream; a batch that holds a guarded event is appended one event at a time instead.
    #[tracing::instrument(name = "publish_batch", skip_all, fields(principal = %principal.uri(), events = events.len()))]
    pub async fn publish_batch(
        &self,
        principal: &Principal,
        events: &[v1::SignedEvent],
    ) -> Vec<Result<Accepted, Status>> {
        let started = Instant::now();
        let prepared: Vec<Result<Prepared, Status>> =
            events.iter().map(|s| self.prepare(principal, s)).collect();
        let guarded = prepared
            .iter()
            .flatten()
            .any(|p| self.guard_for(&p.admitted.token).is_some());
        let mut results = Vec::with_capacity(events.len());
        if guarded {
            for p in prepared {
                results.push(match p {
                    Ok(p) => match self.append(principal, &p).await {
                        Ok(ack) => self.finish(principal, p, ack, started).await,
                        Err(status) => Err(status),
                    },
                    Err(status) => Err(status),
                });
            }
            return results;
        }
        let outgoing = prepared
            .iter()
            .flatten()
            .map(|p| p.outgoing.clone())
            .collect();
        let mut acks = self
            .bus_as(principal)
            .publish_many(outgoing)
            .instrument(tracing::debug_span!(
                "append_batch",
                events = prepared.iter().flatten().count()
            ))
            .await
            .into_iter();
        for p in prepared {
            results.push(match p {
                Ok(p) => {
                    let ack = acks.next().expect("one ack per appended event");
                    self.finish(principal, p, ack, started).await
                }
                Err(status) => Err(status),
            });
        }
        results
    }

    #[tracing::instrument(name = "admit", level = "debug", skip_all, fields(principal = %principal.uri(), event_id, event_type))]
    fn prepare(&self, principal: &Principal, signed: &v1::SignedEvent) -> Result<Prepared, Status> {
        let now = self.clock.now();
        let admitted = self
            .admission
            .admit(principal, signed, now)
            .inspect(|admitted| {
                let span = tracing::Span::current();
                span.record("event_id", admitted.id.as_str());
                span.record("event_type", admitted.token.as_str());
            })
            .map_err(|rejection| {
                self.metrics.rejected(principal, rejection.reason());
                tracing::info!(
                    principal = %principal.uri(),
                    reason = rejection.reason(),
                    error = %rejection,
                    "event rejected"
                );
                Status::from(rejection)
            })?;
        let record = v1::Record {
            event: signed.event.clone(),
            signature: signed.signature.clone(),
            publisher: Some(publisher_of(principal)),
            accepted_at: Some(hazchem_proto::time::timestamp(now)),
        };
        let outgoing = Outgoing::event(
            principal.name(),
            &admitted.token,
            &admitted.id,
            record.encode_to_vec(),
        )
        .map_err(|e| Status::internal(format!("cannot address the event on the bus: {e}")))?;
        Ok(Prepared { admitted, outgoing })
    }

    async fn finish(
        &self,
        principal: &Principal,
        prepared: Prepared,
        ack: hazchem_bus::Result<hazchem_bus::Ack>,
        started: Instant,
    ) -> Result<Accepted, Status> {
        let Prepared { admitted, outgoing } = prepared;
        let ack = ack.map_err(|error| {
            if let hazchem_bus::Error::PermissionDenied { .. } = error {
                // The gateway admitted it but NATS refused: the NATS configuration and the policy
                // disagree (regenerate it with `hazchem deploy nats`).
                self.metrics.rejected(principal, "bus_permission_denied");
                tracing::error!(event_id = %admitted.id, %error, "NATS refused an admitted event");
                return Status::permission_denied(format!(
                    "the bus refused event {}: {error}",
                    admitted.id
                ));
            }
            self.metrics.rejected(principal, "bus_unavailable");
            tracing::error!(event_id = %admitted.id, %error, "the bus did not store the event");
            Status::unavailable(format!(
                "the bus did not acknowledge event {}; retry with the same id: {error}",
                admitted.id
            ))
        })?;
        if ack.duplicate {
            self.check_same_content(principal, &admitted, &outgoing, ack.sequence)
                .await?;
        }
        self.metrics
            .accepted(principal, &admitted.token, ack.duplicate, started.elapsed());
        tracing::debug!(
            event_id = %admitted.id,
            event_type = %admitted.token,
            sequence = ack.sequence,
            duplicate = ack.duplicate,
            "event accepted"
        );
        Ok(Accepted {
            event_id: admitted.id,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// A retry must carry the same event: an id reused for different bytes is refused, not silently
    /// answered with someone else's position; and the same bytes with another origin signature than the
    /// stored one (added, removed or changed) are refused too, since the stored record never changes and a
    /// duplicate answer would let the publisher believe its signature is on the record.
    async fn check_same_content(
        &self,
        principal: &Principal,
        admitted: &Admitted,
        outgoing: &Outgoing,
        sequence: u64,
    ) -> Result<(), Status> {
        let stored = self
            .bus
            .get(sequence)
            .await
            .map_err(|e| Status::unavailable(format!("cannot read the original event: {e}")))?
            .ok_or_else(|| {
                Status::internal(format!(
                    "the bus reported sequence {sequence} but has no such message"
                ))
            })?;
        let original = v1::Record::decode(stored.payload.as_ref()).map_err(|e| {
            Status::internal(format!("stored record {sequence} does not decode: {e}"))
        })?;
        let new = v1::Record::decode(outgoing.payload.as_ref())
            .map_err(|e| Status::internal(format!("record does not decode: {e}")))?;
        if original.event != new.event {
            self.metrics.rejected(principal, "EVENT_ID_REUSED");
            return Err(hazchem_admission::id_reused(&admitted.id, sequence));
        }
        if let Some(change) =
            SignatureChange::between(original.signature.as_ref(), new.signature.as_ref())
        {
            self.metrics.rejected(principal, "EVENT_SIGNATURE_DIFFERS");
            tracing::info!(
                principal = %principal.uri(),
                event_id = %admitted.id,
                sequence,
                change = change.as_str(),
                "retry refused: its origin signature differs from the stored record's"
            );
            return Err(hazchem_admission::signature_differs(
                &admitted.id,
                sequence,
                change,
            ));
        }
        Ok(())
    }
}

fn publisher_of(principal: &Principal) -> v1::Publisher {
    let principal = match principal.department() {
        Some(d) => v1::publisher::Principal::Department(v1::Department::from(d) as i32),
        None => v1::publisher::Principal::Service(principal.name().to_owned()),
    };
    v1::Publisher {
        principal: Some(principal),
    }
}

#[tonic::async_trait]
impl hazchem_kit::Publish for Publisher {
    async fn publish(
        &self,
        principal: &Principal,
        signed: &v1::SignedEvent,
    ) -> Result<Accepted, Status> {
        Publisher::publish(self, principal, signed).await
    }
}
