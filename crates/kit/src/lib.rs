//! The service kit: what every Hazchem Bus service shares, so that a service is its domain logic and
//! nothing else.
//!
//! - [`projection`]: the one way to derive state from the stream. A service implements [`Projection`]
//!   (fold a batch of records into its store, durably, with the new position; say whether a stored
//!   message is the one its store was derived from; forget everything) and [`follow`] does the rest:
//!   resuming from the stored position, the startup check against the stream, rebuilding a store that
//!   belongs to another stream, retrying reads with backoff, gap detection, [`Progress`] for callers
//!   that wait for a position, a tracing span per apply, metrics and shutdown.
//! - [`serve`]: serving gRPC ([`serve_grpc`]: TLS, `TCP_NODELAY`, health, reflection), running a server
//!   and its follower together ([`run_together`]), and the TLS files a server is configured with.
//! - [`sink`]: how a service publishes its own events ([`EventSink`]): through the same admission as a
//!   department, behind the [`Publish`] trait that the gateway's publishing core implements, so no
//!   service depends on the gateway.
//! - [`launch`]: [`Launch`], what a service crate implements so that the `hazchem` binary runs it
//!   (`hazchem dev`, `hazchem serve`) with no code of its own for it.
//! - [`guard`]: [`EventGuard`], a service that must approve events of some types before they are
//!   appended (the credit service guards credit decisions).
//! - [`checkpoint`]: the stream checked against the ledger's signed checkpoints
//!   ([`checkpoint::verify_stream`]), which `follow` runs at start when given the ledger's key.
//! - [`clock`]: [`Clock`], injected wherever a rule depends on the time, so that tests move time.
//!
//! Architecture invariant: every derived service is a projection built with this kit: one follow loop,
//! one store check, one way to serve.

pub mod checkpoint;
pub mod clock;
mod error;
pub mod guard;
pub mod launch;
pub mod metrics;
mod observe;
pub mod projection;
pub mod serve;
pub mod sink;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{ConfigError, ServeError};
pub use guard::EventGuard;
pub use hazchem_verify::note::VerifierKey;
pub use launch::{Dev, Launch, LaunchError, Opened, Serve, Shared};
pub use metrics::{GrpcMetrics, ProjectionMetrics};
pub use projection::{FollowError, FollowOptions, OnMismatch, Progress, Projection, follow};
pub use serve::{ServerTlsFiles, run_together, seconds, serve_grpc};
pub use sink::{Accepted, EventSink, Publish, PublishError};
