//! A witness a department runs itself (`hazchem serve witness`), so that no single operator holds every
//! witness's key.
//!
//! A witness (C2SP tlog-witness) remembers, for each log it knows, the last checkpoint it cosigned, and
//! cosigns a new one only if it is consistent with that one: two forks of the ledger's log can never both
//! collect the cosignature of the same honest witness. The checks and the state are
//! [`hazchem_verify::witness::Witness`]'s; this crate puts them behind the protocol's HTTP interface and
//! gives the ledger its client:
//!
//! - [`server`]: `POST <prefix>/add-checkpoint` (body: `old <size>`, consistency proof lines, an empty
//!   line, the signed checkpoint) answered `200` with the cosignature line, `400` (malformed, or an old
//!   size beyond the checkpoint), `403` (not signed by the log's key), `404` (an unknown log), `409`
//!   (`text/x.tlog.size`: the size the witness recorded, when the old size is not it, or a fork at that
//!   size), `422` (the consistency proof does not hold); HTTP/1.1 with keep-alive, over TLS
//!   ([`WitnessServiceConfig::tls`]) or plain HTTP behind the department's own TLS terminator;
//! - [`client`]: [`RemoteWitness`], what the ledger calls for each checkpoint, which keeps only the
//!   cosignatures that verify with the witness key it was configured with;
//! - [`config`]: the `[witness]` section of the service configuration.

pub mod client;
pub mod config;
mod error;
pub mod server;
mod tls;

pub use client::{CallError, RemoteWitness};
pub use config::{LogConfig, TlsFiles, WitnessServiceConfig};
pub use error::Error;
pub use server::WitnessServer;

/// The service name in the service table (`hazchem_pki::services`), the choice of `hazchem serve`.
pub const SERVICE_NAME: &str = "witness";
