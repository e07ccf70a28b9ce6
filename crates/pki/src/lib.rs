//! Identity and keys for the Hazchem Bus.
//!
//! Nine city departments, the bus's own services and auditors talk to the gateway over gRPC with
//! mutual TLS. This crate holds everything about *who* they are and *what they signed*:
//!
//! - **Development PKI** ([`DevPki`]): a throw-away CA ("Hazchem Bus development CA — not for
//!   production"), a server certificate for `localhost`, a client certificate for every
//!   department, service and a development auditor, an Ed25519 origin-signing key per department
//!   with the public registry `signing-keys.toml`, and the ledger's checkpoint key. Idempotent:
//!   an existing directory is loaded, not regenerated.
//! - **Authentication** ([`Principal`], [`authenticate`]): reads the caller's principal from the
//!   verified client certificate of a tonic request.
//! - **TLS configuration** ([`ServerTls`], [`ClientTls`]): tonic server and client configs from PEM
//!   files, including a server mode where the client certificate is optional so that the service
//!   answers `UNAUTHENTICATED` itself instead of failing the handshake.
//! - **The service table** ([`services::SERVICES`]): every service of the bus, its default port, whether
//!   `hazchem dev` runs it, whether it has a NATS user and publishes events; the development PKI,
//!   `hazchem dev`/`serve` and `hazchem deploy nats` take their lists of services from it.
//! - **Origin signatures** ([`SigningKey`], [`PublicKey`], [`KeyRegistry`]): Ed25519 signing and
//!   strict verification against the registered key a signature's key id names, valid when the event
//!   was accepted (the registry is `hazchem_verify`'s, re-exported).
//!
//! # Identity encoding
//!
//! A client certificate names its principal in **exactly one URI subject alternative name**:
//!
//! | principal | URI SAN | subject CN (for humans) |
//! | --- | --- | --- |
//! | department | `hazchem://department/<code>` — `miit`, `psb`, `eeb`, `transport`, `emergency`, `samr`, `approval`, `msa`, `fire` | `department <code>` |
//! | service | `hazchem://service/<name>` — the names of the service table, [`services::SERVICES`] | `service <name>` |
//! | auditor | `hazchem://auditor/<name>` | `auditor <name>` |
//!
//! Authentication uses the URI SAN only, never the CN. A certificate with no `hazchem://` URI, with
//! several, or with an unknown department code is refused with a precise [`AuthError`]. URI SANs of
//! other schemes are ignored, so a certificate may also carry, say, a SPIFFE ID. Client
//! certificates carry the `clientAuth` extended key usage.
//!
//! **Production CAs issue certificates with the same URI SAN.** The gateway trusts whatever CA it
//! is configured with ([`ServerTls::client_ca_pem`]); the chain is verified by the TLS handshake,
//! and this crate only maps the verified leaf to a [`Principal`].
//!
//! # Secrets
//!
//! Private keys are written with mode 0600 and never printed: the `Debug` impls of [`SigningKey`],
//! [`ServerTls`] and [`ClientTls`] redact them, and no error message quotes key material.
//!
//! # Example
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hazchem_pki::{ClientAuth, DevPki, Principal};
//!
//! let pki = DevPki::generate(std::path::Path::new("target/dev-pki"))?;
//! let server_tls = pki.server_tls()?.config(ClientAuth::Optional);
//! let miit = Principal::Department("miit".parse()?);
//! let client_tls = pki.client_tls(&miit)?.config();
//! let registry = pki.key_registry()?;
//! let key = pki.signing_key("miit".parse()?)?;
//! let signature = key.sign(b"event");
//! let accepted_at = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
//! let key_id = key.origin_key_id("miit".parse()?);
//! registry.verify("miit".parse()?, &key_id, b"event", &signature, accepted_at)?;
//! # let _ = (server_tls, client_tls);
//! # Ok(())
//! # }
//! ```

pub mod dev;
pub mod error;
mod fsutil;
pub mod identity;
pub mod services;
pub mod signing;
pub mod tls;

pub use dev::DevPki;
pub use error::{AuthError, PkiError};
pub use identity::{Principal, auth_interceptor, authenticate, principal_of};
pub use signing::{
    KeyRegistry, OriginKey, PublicKey, SIGNATURE_LENGTH, SignatureError, SigningKey,
    load_key_registry, origin_key_id,
};
pub use tls::{ClientAuth, ClientTls, ServerTls};
