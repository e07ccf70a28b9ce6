//! Prometheus metrics of the gateway: events accepted and rejected (by department and reason), publish
//! latency, open subscriptions.

use std::time::Duration;

use hazchem_pki::Principal;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AcceptedLabels {
    publisher: String,
    event_type: String,
    duplicate: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectedLabels {
    publisher: String,
    reason: String,
}

/// The gateway's metrics; cheap to clone (clones share the counters).
#[derive(Clone, Debug)]
pub struct Metrics {
    accepted: Family<AcceptedLabels, Counter>,
    rejected: Family<RejectedLabels, Counter>,
    latency: Histogram,
    subscribers: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them under `hazchem_gateway_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            accepted: Family::default(),
            rejected: Family::default(),
            // 100 µs .. ~3.3 s
            latency: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 2.0, 16,
            )),
            subscribers: Gauge::default(),
        };
        let registry = registry.sub_registry_with_prefix("hazchem_gateway");
        registry.register(
            "events_accepted",
            "Events acknowledged to publishers (durable in the stream)",
            metrics.accepted.clone(),
        );
        registry.register(
            "events_rejected",
            "Events refused, by reason",
            metrics.rejected.clone(),
        );
        registry.register(
            "publish_latency_seconds",
            "Time from receiving an event to acknowledging it",
            metrics.latency.clone(),
        );
        registry.register(
            "subscriptions",
            "Subscriptions being served",
            metrics.subscribers.clone(),
        );
        metrics
    }

    /// Metrics registered nowhere (tests, embedded callers that do not export metrics).
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    pub(crate) fn accepted(
        &self,
        principal: &Principal,
        event_type: &str,
        duplicate: bool,
        latency: Duration,
    ) {
        self.accepted
            .get_or_create(&AcceptedLabels {
                publisher: principal.name().to_owned(),
                event_type: event_type.to_owned(),
                duplicate,
            })
            .inc();
        self.latency.observe(latency.as_secs_f64());
    }

    pub(crate) fn rejected(&self, principal: &Principal, reason: &str) {
        self.rejected
            .get_or_create(&RejectedLabels {
                publisher: principal.name().to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn subscribers_inc(&self) {
        self.subscribers.inc();
    }

    pub(crate) fn subscribers_dec(&self) {
        self.subscribers.dec();
    }
}
