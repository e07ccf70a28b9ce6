//! Prometheus metrics of every service, kept once per process and exported by [`register`]:
//!
//! - every projection, labelled by its name: position, lag behind the stream, apply latency, messages
//!   applied, errors by reason ([`ProjectionMetrics`]);
//! - every gRPC call to every server (queries, commands, publishes), labelled by server, method and
//!   status code: count and latency ([`GrpcMetrics`], recorded by [`crate::serve_grpc`]);
//! - every event a service publishes of its own, labelled by service and outcome ([`SinkMetrics`],
//!   recorded by [`crate::EventSink`]); `id_reused` is an alarm: the record holds other content under
//!   an id the service derived.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectionLabel {
    projection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    projection: String,
    reason: String,
}

/// The projections' metrics; cheap to clone (clones share the series).
#[derive(Clone, Debug)]
pub struct ProjectionMetrics {
    position: Family<ProjectionLabel, Gauge>,
    lag: Family<ProjectionLabel, Gauge>,
    applied: Family<ProjectionLabel, Counter>,
    apply_seconds: Family<ProjectionLabel, Histogram>,
    errors: Family<ErrorLabels, Counter>,
    following: Family<ProjectionLabel, Gauge>,
}

impl Default for ProjectionMetrics {
    fn default() -> Self {
        ProjectionMetrics {
            position: Family::default(),
            lag: Family::default(),
            applied: Family::default(),
            // 50 µs .. ~1.6 s
            apply_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.00005, 2.0, 16))
            }),
            errors: Family::default(),
            following: Family::default(),
        }
    }
}

static PROJECTIONS: LazyLock<ProjectionMetrics> = LazyLock::new(ProjectionMetrics::default);
static GRPC: LazyLock<GrpcMetrics> = LazyLock::new(GrpcMetrics::default);
static SINK: LazyLock<SinkMetrics> = LazyLock::new(SinkMetrics::default);

/// Registers the process's projection, gRPC and sink metrics in `registry` (once per registry).
pub fn register(registry: &mut Registry) {
    PROJECTIONS.register(registry);
    GRPC.register(registry);
    SINK.register(registry);
}

impl ProjectionMetrics {
    /// The process's projection metrics (what [`register`] exports).
    pub fn global() -> Self {
        PROJECTIONS.clone()
    }

    /// Metrics that are kept but exported nowhere (tests, tools).
    pub fn unregistered() -> Self {
        Self::default()
    }

    fn register(&self, registry: &mut Registry) {
        let metrics = self;
        let registry = registry.sub_registry_with_prefix("hazchem_projection");
        registry.register(
            "position",
            "The last stream sequence the projection's store holds",
            metrics.position.clone(),
        );
        registry.register(
            "lag",
            "How many messages the projection is behind the stream's last sequence, as last seen",
            metrics.lag.clone(),
        );
        registry.register(
            "applied_messages",
            "Messages folded into the projection",
            metrics.applied.clone(),
        );
        registry.register(
            "apply_seconds",
            "Time to fold one batch durably",
            metrics.apply_seconds.clone(),
        );
        registry.register(
            "errors",
            "Errors following the stream, by reason",
            metrics.errors.clone(),
        );
        registry.register(
            "following",
            "1 while the projection follows the stream, 0 once it has stopped",
            metrics.following.clone(),
        );
    }

    fn label(name: &str) -> ProjectionLabel {
        ProjectionLabel {
            projection: name.to_owned(),
        }
    }

    pub(crate) fn applied(&self, name: &str, messages: u64, position: u64, took: Duration) {
        let label = Self::label(name);
        self.applied.get_or_create(&label).inc_by(messages);
        self.position
            .get_or_create(&label)
            .set(i64::try_from(position).unwrap_or(i64::MAX));
        self.apply_seconds
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    pub(crate) fn following(&self, name: &str, following: bool) {
        self.following
            .get_or_create(&Self::label(name))
            .set(i64::from(following));
    }

    pub(crate) fn lag(&self, name: &str, lag: u64) {
        self.lag
            .get_or_create(&Self::label(name))
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    pub(crate) fn error(&self, name: &str, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                projection: name.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    server: String,
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    server: String,
    method: String,
}

/// Counts and latency of gRPC calls, by server, method and status code.
#[derive(Clone, Debug)]
pub struct GrpcMetrics {
    calls: Family<CallLabels, Counter>,
    seconds: Family<MethodLabels, Histogram>,
}

impl Default for GrpcMetrics {
    fn default() -> Self {
        GrpcMetrics {
            calls: Family::default(),
            // 50 µs .. ~1.6 s
            seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.00005, 2.0, 16))
            }),
        }
    }
}

impl GrpcMetrics {
    /// The process's gRPC metrics (what [`register`] exports).
    pub fn global() -> Self {
        GRPC.clone()
    }

    fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("hazchem_grpc");
        registry.register(
            "calls",
            "gRPC calls answered, by server, method and status code",
            self.calls.clone(),
        );
        registry.register(
            "call_seconds",
            "Time to answer a gRPC call (to the response headers), by server and method",
            self.seconds.clone(),
        );
    }

    /// Records one call.
    pub fn call(&self, server: &str, method: &str, code: &str, took: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                server: server.to_owned(),
                method: method.to_owned(),
                code: code.to_owned(),
            })
            .inc();
        self.seconds
            .get_or_create(&MethodLabels {
                server: server.to_owned(),
                method: method.to_owned(),
            })
            .observe(took.as_secs_f64());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    service: String,
    outcome: String,
}

/// What became of the events services published of their own, by service and outcome (`stored`,
/// `duplicate`, `refused`, `id_reused`, `retry`).
#[derive(Clone, Debug, Default)]
pub struct SinkMetrics {
    published: Family<SinkLabels, Counter>,
}

impl SinkMetrics {
    /// The process's sink metrics (what [`register`] exports).
    pub fn global() -> Self {
        SINK.clone()
    }

    fn register(&self, registry: &mut Registry) {
        registry.sub_registry_with_prefix("hazchem_sink").register(
            "events",
            "Events the services published of their own, by service and outcome (id_reused is an alarm)",
            self.published.clone(),
        );
    }

    /// Counts one publish of `service` with `outcome`.
    pub fn published(&self, service: &str, outcome: &str) {
        self.published
            .get_or_create(&SinkLabels {
                service: service.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// How many publishes of `service` had `outcome`.
    pub fn count(&self, service: &str, outcome: &str) -> u64 {
        self.published
            .get_or_create(&SinkLabels {
                service: service.to_owned(),
                outcome: outcome.to_owned(),
            })
            .get()
    }
}
