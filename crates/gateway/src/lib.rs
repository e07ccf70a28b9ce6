//! The gateway: the one door through which department systems and the bus's own services put events on
//! the record, and through which coordinators follow it.
//!
//! - [`Publisher`] (write path): authenticates the caller by its client certificate, admits the event
//!   (policy, field rules, origin signature; see `hazchem-admission`), wraps the publisher's exact bytes in
//!   a `Record`, appends it to the bus and acknowledges only once it is durable, with its sequence. An id
//!   seen before returns the original position and `duplicate = true`; an id reused for different bytes is
//!   refused.
//! - [`Subscriptions`] (read path): server-streaming delivery in stream order, filtered by department,
//!   type, enterprise, chemical, batch and time, restricted to what the read policy entitles, resumable
//!   from a sequence, a time or a durable cursor.
//! - [`Gateway`] serves both over gRPC with mTLS, plus health and reflection; [`Metrics`] exports counts
//!   and latency to Prometheus.

mod config;
mod error;
mod grpc;
mod metrics;
mod publish;
mod server;
mod subscribe;

pub use config::{GatewayConfig, SERVICE_NAME};
pub use error::{Error, Result};
pub use grpc::MAX_BATCH;
pub use metrics::Metrics;
pub use publish::Publisher;
pub use server::Gateway;
pub use subscribe::{SubscriptionStream, Subscriptions, subjects, subjects_within};
