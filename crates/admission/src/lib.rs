//! Admission of events at the gateway: whether an event is admitted, and who may read it.
//!
//! Everything here is pure and fast (the only I/O is [`Policy::load`]); the gateway calls it for every
//! event it is offered and every event it delivers.
//!
//! - [`policy`]: the declarative publish and read policy ([`Policy`], default `deploy/policy.toml`,
//!   embedded as [`DEFAULT_POLICY`]): which department or service may publish which event types, who
//!   issues which licence kinds, who reads what (with the RESTRICTED classification rule), which events
//!   must carry an origin signature, and the per-publisher NATS permissions derived from it. Loading
//!   validates every entry against the contract.
//! - [`read`]: the one read filter ([`EventFilter`]) that Subscribe, Replay and every query service
//!   apply: the read entitlement of the policy, then what the reader asked for.
//! - [`validate`]: the contract's own field rules (`(hazchem.v1.rules)`), checked by walking a decoded
//!   message; every violation is collected with its path, its rule and a sentence, and the index keys
//!   (enterprises, chemicals, batch codes) are gathered on the way.
//! - [`admit`]: [`Admission::admit`] runs the checks in a documented order (size, decoding, one payload;
//!   authorisation; attributes, field rules and origin signature together) and returns an [`Admitted`]
//!   event or a [`Rejection`].
//! - [`status`]: the one conversion of a [`Rejection`] into a `tonic::Status` with standard error details
//!   (`BadRequest`, `ErrorInfo`), and of a status into a `google.rpc.Status` for batch results.
//!
//! ```
//! use chrono::Utc;
//! use hazchem_admission::{Admission, Limits, Policy};
//! use hazchem_pki::{KeyRegistry, Principal};
//! use hazchem_proto::v1;
//!
//! let admission = Admission::new(Policy::default_policy(), KeyRegistry::new(), Limits::default());
//! let principal = Principal::Department("transport".parse().unwrap());
//! let rejection = admission
//!     .admit(&principal, &v1::SignedEvent::default(), Utc::now())
//!     .unwrap_err();
//! let status = tonic::Status::from(rejection);
//! assert_eq!(status.code(), tonic::Code::InvalidArgument);
//! ```

pub mod admit;
pub mod policy;
pub mod read;
pub mod status;
pub mod validate;

pub use admit::{
    Admission, Admitted, DEFAULT_MAX_CLOCK_SKEW, DEFAULT_MAX_EVENT_BYTES, Denial, DenialReason,
    Limits, Rejection, SignatureChange, source_namespace,
};
pub use policy::{
    DEFAULT_POLICY, LICENCE_EVENT_TYPES, NatsPermissions, Policy, PolicyError, PolicyProblem,
    event_type_tokens, is_event_type, licence_kind_name,
};
pub use read::{EventFilter, Selected};
pub use status::{ERROR_DOMAIN, id_reused, signature_differs, to_rpc_status};
pub use validate::{FieldRules, FieldViolation, IndexKeys, Report, field_rules, index_keys};
