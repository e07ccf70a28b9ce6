//! The offline audit verifier of the Hazchem Bus: what an auditor's tool depends on to check the ledger's
//! record trusting nothing but the ledger's public key.
//!
//! The ledger (`hazchem-ledger`) writes the log; this crate only checks it. It has no bus, store, gRPC or
//! async runtime in its dependencies (`tests/dependencies.rs` holds it to that), so a tool built on it
//! needs nothing of the running system: a key, a signed checkpoint, and the records (from a bundle, or
//! from wherever the tool fetched them).
//!
//! - [`merkle`]: the RFC 6962 / RFC 9162 Merkle tree: hashing, roots, inclusion and consistency proofs
//!   generated from any store of perfect-subtree hashes ([`merkle::NodeSource`]), and their verification
//!   from hashes alone.
//! - [`note`]: checkpoints in the C2SP tlog-checkpoint signed-note format, Ed25519-signed; verifier keys,
//!   and the signer (a witness cosigns with it).
//! - [`key`]: the Ed25519 public key the note format needs (SPKI PEM or base64, weak keys refused, strict
//!   verification).
//! - [`verify`]: the [`Verifier`] over a checkpoint and records in leaf order, which names the first index
//!   where anything disagrees, and [`verify::locate_divergence`], which finds an altered leaf with
//!   `O(log n)` consistency proofs from any source (an async closure; no runtime is assumed).
//! - [`witness`]: C2SP cosignature/v1 cosignatures, witness keys, and the [`Witness`] that cosigns a
//!   checkpoint only if it is consistent with the last one it cosigned.
//! - [`registry`]: the departments' origin-signing keys with their key ids and validity periods
//!   (`signing-keys.toml`), by which origin signatures are checked at publish time and again by auditors.
//! - [`origin`]: origin signatures verified again by an auditor, with the few record fields they need
//!   read by a small protobuf wire reader ([`record`]), so that this crate needs no protobuf code.
//! - [`bundle`]: the offline bundle format behind `hazchem audit export` and `hazchem audit verify
//!   --bundle`.
//!
//! `hazchem-ledger` re-exports these modules under the same names (`hazchem_ledger::merkle` and so on).

pub mod bundle;
mod error;
pub mod key;
pub mod merkle;
pub mod note;
pub mod origin;
pub mod record;
pub mod registry;
pub mod verify;
pub mod witness;

/// The Ed25519 implementation the keys are made of, so a tool can build a [`NoteSigner`] from an
/// `ed25519_dalek::SigningKey` of the same version.
pub use ed25519_dalek;

pub use error::{Error, Result};
pub use key::PublicKey;
pub use merkle::Hash;
pub use note::{Checkpoint, DEFAULT_ORIGIN, NoteSigner, VerifierKey};
pub use registry::{KeyRegistry, OriginKey, SignatureError, origin_key_id};
pub use verify::{Requirements, Verified, Verifier, VerifyFailure, Witnesses};
pub use witness::{Cosigner, Witness, WitnessKey, verify_cosignatures};
