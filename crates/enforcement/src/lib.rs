//! Joint enforcement (联动执法): coordinators open joint tasks, draw targets and inspectors at random in a way
//! anyone can later reproduce (双随机), and follow each task from plan to closure, including the transfer of
//! a suspected crime to public security (两法衔接).
//!
//! Tasks live on the bus: every command that succeeds becomes one `task_*` event, published through the
//! gateway's admission as service `enforcement`, and the service's state is the fold of those events (plus
//! what the record says about enterprises' risk). A lost store is rebuilt from the stream and gives the
//! same tasks.
//!
//! - [`task`]: the domain, no protobuf: [`TaskState`], the transition table [`TRANSITIONS`] with the duty
//!   of each transition, [`decide`] (command → event or [`Refusal`]), [`apply`] (event → task), deadlines
//!   ([`due_escalations`]).
//! - [`draw`]: the `hazchem-draw-v1` algorithm, specified for independent re-implementation; [`draw::verify`]
//!   re-runs a recorded draw.
//! - [`registers`]: the candidate enterprises and inspectors (TOML, default `deploy/enforcement-registers.toml`)
//!   and the documented weight rule.
//! - [`projection`] and [`store`]: the state derived from the stream and its sled store.
//! - [`Enforcement`]: the service core (commands serialised, idempotent by command id, escalations).
//! - [`EnforcementServer`]: the gRPC `hazchem.v1.EnforcementService`; [`wire`]: the conversions between
//!   generated types and the domain.
//!
//! `docs/ENFORCEMENT.md` has the transition table, the draw specification and the weight rule.

mod config;
pub mod draw;
mod error;
mod grpc;
pub mod launch;
pub mod projection;
pub mod registers;
mod service;
pub mod store;
pub mod task;
pub mod wire;

pub use config::EnforcementConfig;
pub use draw::{DrawRecord, Inspector};
pub use error::{Error, Result};
pub use grpc::{DEFAULT_PAGE_SIZE, EnforcementServer, MAX_PAGE_SIZE, run_service, status};
pub use registers::Registers;
pub use service::{Enforcement, TaskQuery, command_event_id, escalation_event_id};
pub use task::{
    Command, CommandKind, Duty, Refusal, Request, TRANSITIONS, Task, TaskState, apply, decide,
    due_escalations,
};
pub use wire::SERVICE_NAME;
