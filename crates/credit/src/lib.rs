//! Credit constraint (诚信约束): sanction flags issued by one department and honoured by all.
//!
//! A department that imposed a penalty lists the enterprise (serious-dishonest list 严重失信主体名单, key
//! supervision 重点监管, public exposure 公开曝光, joint punishment 联合惩戒) with the measures the other
//! departments must apply. This crate derives the registry of those listings from the record and makes
//! every department honour it:
//!
//! - [`registry`]: the domain (no protobuf, no I/O): listings, their terms (3 years for the serious-
//!   dishonest list, configurable per type, counted in calendar months of China Standard Time), credit
//!   repair (not before 12 months) and its revocation, bitemporal as-of queries (a fact counts at `t` if it
//!   was both effective and recorded by `t`), the checks a decision must pass ([`Refusal`]), and the
//!   conflict between a grant and the grantee's active measures.
//! - [`catalogue`]: the measure catalogue (configuration, default `deploy/credit-measures.toml`): what each
//!   measure code means and which grants it forbids.
//! - [`Credit`] (`service`): the registry in memory behind a lock, following the stream from its
//!   position, durable in a sled [`store`] (facts and position in one flushed batch), rebuilt from the
//!   stream when lost; raises `credit.conflict` warnings for grants to listed enterprises and announces
//!   the end of terms (`credit_listing_expired`), both with deterministic ids.
//! - [`grpc`]: `hazchem.v1.CreditService` (`Check` — the hot path, from memory —, `GetHistory`,
//!   `ListListings`, `ReviewDecision`) over mTLS; [`CreditGuard`] and [`RemoteCreditGuard`], the gateway's
//!   [`hazchem_kit::EventGuard`]s that refuse a bad credit decision before it is appended, with a
//!   precise status, in one process or across two.
//!
//! # The authority rule
//!
//! By default ([`Authority::PenaltyOnRecord`]) a listing must name its penalty decision
//! (`penalty_decision_number`), and that penalty must be on the record (`penalty_decided`, or
//! `task_penalty_decided` with the acting department) by the listing department against the same
//! enterprise, decided no later than the listing takes effect: the department that imposed the penalty
//! decides the listing (应急管理部令第11号). `credit.authority = "sanctioning_department"` relaxes this to
//! "the listing department is one the publish policy lets publish penalties", for penalties decided before
//! the bus existed. Repairs and revocations are decided by the listing department only.
//!
//! Architecture invariant: the credit store is derived state. The stream is the record; the store is
//! rebuilt from it when lost, when it does not match the stream, or when the rules changed, and every query
//! answers the same after a restart or a rebuild.

pub mod catalogue;
mod config;
mod error;
pub mod fixtures;
pub mod grpc;
pub mod launch;
pub mod registry;
mod service;
pub mod store;

pub use catalogue::{DEFAULT_CATALOGUE, Forbids, LicenceKind, MeasureCatalogue, MeasureSpec};
pub use config::{CreditConfig, RemoteGuardConfig, Terms};
pub use error::{Error, Result};
pub use grpc::{
    CreditGuard, CreditServer, RemoteCreditGuard, SERVICE_NAME, review_event, run_service,
};
pub use registry::{
    Authority, CheckResult, Decision, ListQuery, ListType, Listing, ListingView, Refusal, Registry,
    Rules, Status, TermRule,
};
pub use service::{Credit, ReviewError, rules_fingerprint, rules_from};
