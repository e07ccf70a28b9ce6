//! The audit ledger: a tamper-evident record of everything the nine departments and the bus's services
//! published, which an auditor can check trusting nothing but one public key.
//!
//! - [`merkle`]: the RFC 6962 / RFC 9162 Merkle tree over the stored records in stream order (leaf index =
//!   stream sequence − 1): hashing, roots, inclusion and consistency proofs generated from a store of
//!   perfect-subtree hashes in `O(log² n)`, and their verification from hashes alone.
//! - [`note`]: checkpoints in the C2SP tlog-checkpoint signed-note format, Ed25519-signed; verifier keys.
//! - [`store`]: the sled store (leaf bytes, perfect-subtree hashes, event ids, checkpoints, cursor), one
//!   atomic batch per append.
//! - [`Ledger`]: the service core: ingests the stream durably and exactly once, issues checkpoints
//!   periodically and on demand and publishes them to the bus, rebuilds a lost store from the stream
//!   (checking every checkpoint it meets), and refuses to serve a store that disagrees with its last
//!   checkpoint.
//! - [`AuditServer`]: the gRPC `hazchem.v1.AuditService` (checkpoint, proofs, filtered and entitled
//!   Replay) over mTLS.
//! - [`verify`] and [`bundle`]: the offline verifier and the bundle format behind `hazchem audit verify`
//!   and `hazchem audit export`; they name the first index where anything disagrees. [`online`] runs the
//!   same verifier over a running audit service's replay.
//!
//! [`merkle`], [`note`], [`verify`], [`bundle`], [`witness`], [`origin`] and [`registry`] live in `hazchem-verify`, which has no store, bus or
//! gRPC dependencies so that an auditor's tool can depend on it alone; they are re-exported here under
//! the same paths. The ledger's [`Error`] takes that crate's errors (`From<hazchem_verify::Error>`).
//!
//! Architecture invariant: the ledger's store is derived state. The stream is the record; the store is
//! rebuilt from it when lost and is never trusted over the checkpoints the ledger signed.

mod config;
mod error;
mod grpc;
pub mod launch;
mod ledger;
pub mod online;
pub mod store;
mod witnesses;

pub use hazchem_verify::{bundle, merkle, note, origin, record, registry, verify, witness};

pub use config::{LedgerConfig, StartupCheck, WitnessConfig};
pub use error::{Error, Result};
pub use grpc::{AuditServer, run_service, status};
pub use ledger::{InclusionProof, Ledger, SERVICE_NAME, checkpoint_event, checkpoint_event_id};
pub use merkle::Hash;
pub use note::{Checkpoint, DEFAULT_ORIGIN, NoteSigner, VerifierKey};
pub use witnesses::WitnessPeer;
