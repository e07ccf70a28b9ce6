//! Early-warning response (预警响应): rules over the stream raise warnings at four levels (red, orange,
//! yellow, blue) addressed to the responsible departments, who acknowledge them; unacknowledged warnings
//! escalate; a department, or the rule when its condition clears, closes them.
//!
//! Warnings live on the bus: every raise, acknowledgement, escalation and closing is a `warning_*` event
//! published through the gateway's admission as service `warning` (with deterministic ids), and the
//! service's state is the fold of the stream. A lost store is rebuilt from the stream and gives the same
//! warnings. The credit service's conflict warnings (`credit.conflict`) are tracked the same way.
//!
//! - [`rules`]: the rules as data (`deploy/warning-rules.toml`).
//! - [`state`]: the deterministic fold (rule state and warnings) and the events it derives.
//! - [`store`]: its sled store.
//! - [`Warnings`]: the service core (commands, escalation); [`WarningServer`]: the gRPC
//!   `hazchem.v1.WarningService`.
//!
//! `docs/WARNINGS.md` is the rule catalogue and the lifecycle.

mod config;
mod error;
mod grpc;
pub mod launch;
pub mod rules;
mod service;
pub mod state;
pub mod store;

pub use config::WarningConfig;
pub use error::{Error, Result};
pub use grpc::{
    DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, WarningServer, run_service, status, warning_view,
};
pub use rules::{Level, RuleSet};
pub use service::{WarningQuery, Warnings};
pub use state::{SERVICE_NAME, State, Warning, ack_id, close_id, escalation_id, raise_id};
