//! The registry of credit listings: domain types only, no protobuf, no I/O.
//!
//! # What it holds
//!
//! Every listing decision on the record ([`Listing`]), with its changes in stream order (repairs and
//! revocations of repairs), the penalties on the record (for the authority rule), and the event ids of every
//! credit decision seen (so that a publisher's retry of an accepted decision is not refused).
//!
//! # Time: effective and recorded (bitemporal)
//!
//! Every fact has two times: when it takes effect (`listed_at`, `repaired_at`, `revoked_at` in the
//! payload) and when the record accepted it (`Record.accepted_at`, the gateway's clock). A query "as of"
//! an instant `t` answers what the registry said at `t`: it uses only the facts that were **both effective
//! and recorded** at or before `t`. So a listing decided on 1 March but recorded on 3 March is not active
//! as of 2 March (on 2 March nobody could have known), and is active as of 3 March; a licence office
//! asking "what did the registry say on the day we issued this licence" gets exactly that answer, before
//! and after any later correction.
//!
//! A listing is **active** at `t` iff it is known at `t`, `listed_at ≤ t < expires_at`, and the last of
//! its changes known at `t` is not a repair. `expires_at` is `listed_at` plus the list type's term in
//! calendar months, counted in China Standard Time (UTC+8, the contract's calendar), so a 3-year
//! serious-dishonest listing is active at `listed_at + 3 years − 1 ns` and expired at `listed_at + 3 years`
//! (a listing made on 29 February ends on 28 February).
//!
//! Changes of one listing are kept in effective order: a repair or revocation must not take effect
//! before the listing's previous change ([`Refusal`] `DECISION_OUT_OF_ORDER`), so "the last change known
//! at `t`" is well defined.
//!
//! Conflict checks of grants ([`Registry::apply`] of a [`Grant`]) use a different cut: everything the
//! registry has applied before the grant in stream order, evaluated at the grant's effective time. A
//! rebuild applies the stream in the same order and reaches the same verdicts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Months, TimeDelta, Utc};
use hazchem_domain::{Department, Uscc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::catalogue::{LicenceKind, MeasureCatalogue};

#[cfg(test)]
mod tests;

/// The four list types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListType {
    /// 严重失信主体名单.
    SeriousDishonest,
    /// 重点监管 / 重点关注名单.
    KeySupervision,
    /// 公开曝光.
    PublicExposure,
    /// 联合惩戒.
    JointPunishment,
}

impl ListType {
    pub const ALL: [ListType; 4] = [
        Self::SeriousDishonest,
        Self::KeySupervision,
        Self::PublicExposure,
        Self::JointPunishment,
    ];

    /// `serious_dishonest`, `key_supervision`, `public_exposure`, `joint_punishment`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::SeriousDishonest => "serious_dishonest",
            Self::KeySupervision => "key_supervision",
            Self::PublicExposure => "public_exposure",
            Self::JointPunishment => "joint_punishment",
        }
    }

    /// The Chinese name of the list.
    #[must_use]
    pub const fn name_zh(self) -> &'static str {
        match self {
            Self::SeriousDishonest => "严重失信主体名单",
            Self::KeySupervision => "重点监管名单",
            Self::PublicExposure => "公开曝光",
            Self::JointPunishment => "联合惩戒",
        }
    }
}

impl fmt::Display for ListType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for ListType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.code() == s)
            .ok_or_else(|| format!("unknown list type {s:?}: expected serious_dishonest, key_supervision, public_exposure or joint_punishment"))
    }
}

/// Whether a listing is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    /// Its term ended.
    Expired,
    /// Removed early by credit repair.
    Repaired,
}

/// The legal instrument a decision rests on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LegalBasis {
    pub instrument: String,
    pub article: String,
    pub version: String,
}

/// A measure a listing imposes on other departments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measure {
    /// A code of the measure catalogue.
    pub code: String,
    /// The departments that must apply it; empty means every department.
    pub applies_to: Vec<Department>,
    pub description: String,
}

impl Measure {
    /// Whether `department` must apply it.
    #[must_use]
    pub fn binds(&self, department: Department) -> bool {
        self.applies_to.is_empty() || self.applies_to.contains(&department)
    }
}

/// Who may read an event, as far as the registry cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Public,
    Shared,
    /// Only the publisher and its audience: unfit for a listing every department must honour.
    Restricted,
}

/// `credit_listing_decided`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingDecision {
    pub event_id: String,
    pub listing_id: String,
    pub enterprise: Uscc,
    pub enterprise_name: String,
    pub list_type: ListType,
    pub department: Department,
    pub legal_basis: Option<LegalBasis>,
    pub classification: Classification,
    pub reason: String,
    pub penalty_decision_number: Option<String>,
    pub measures: Vec<Measure>,
    pub listed_at: DateTime<Utc>,
}

/// `credit_repair_decided`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairDecision {
    pub event_id: String,
    pub listing_id: String,
    pub department: Department,
    pub legal_basis: Option<LegalBasis>,
    pub reason: String,
    pub repaired_at: DateTime<Utc>,
}

/// `credit_repair_revoked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationDecision {
    pub event_id: String,
    pub listing_id: String,
    pub department: Department,
    pub legal_basis: Option<LegalBasis>,
    pub reason: String,
    pub revoked_at: DateTime<Utc>,
}

/// A credit decision by a department: what the guard reviews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Listing(ListingDecision),
    Repair(RepairDecision),
    Revocation(RevocationDecision),
}

impl Decision {
    #[must_use]
    pub fn event_id(&self) -> &str {
        match self {
            Decision::Listing(d) => &d.event_id,
            Decision::Repair(d) => &d.event_id,
            Decision::Revocation(d) => &d.event_id,
        }
    }

    #[must_use]
    pub fn listing_id(&self) -> &str {
        match self {
            Decision::Listing(d) => &d.listing_id,
            Decision::Repair(d) => &d.listing_id,
            Decision::Revocation(d) => &d.listing_id,
        }
    }

    #[must_use]
    pub fn department(&self) -> Department {
        match self {
            Decision::Listing(d) => d.department,
            Decision::Repair(d) => d.department,
            Decision::Revocation(d) => d.department,
        }
    }

    /// The event type token.
    #[must_use]
    pub fn token(&self) -> &'static str {
        match self {
            Decision::Listing(_) => "credit_listing_decided",
            Decision::Repair(_) => "credit_repair_decided",
            Decision::Revocation(_) => "credit_repair_revoked",
        }
    }
}

/// A penalty on the record (`penalty_decided`, or `task_penalty_decided` with its acting department).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Penalty {
    pub event_id: String,
    pub department: Department,
    pub decision_number: String,
    pub enterprise: Uscc,
    pub decided_at: DateTime<Utc>,
}

/// What a grant event grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    LicenceIssued,
    LicenceRenewed,
    ApplicationApproved,
}

impl GrantKind {
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            GrantKind::LicenceIssued => "licence issued",
            GrantKind::LicenceRenewed => "licence renewed",
            GrantKind::ApplicationApproved => "application approved",
        }
    }
}

/// A grant to an enterprise: checked against its active listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub event_id: String,
    pub kind: GrantKind,
    pub licence_kind: LicenceKind,
    /// The licence or application number.
    pub number: String,
    pub holder: Uscc,
    pub holder_name: String,
    /// The publishing department.
    pub department: Department,
    /// The department whose duty the grant is (differs when 行政审批 grants on its behalf).
    pub competent_department: Department,
    /// When it was granted (the event's time).
    pub time: DateTime<Utc>,
}

/// A fact of the stream the registry derives from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fact {
    Decision(Decision),
    Penalty(Penalty),
    /// The credit service announced that a listing's term ended (`credit_listing_expired`).
    ExpiryAnnounced {
        event_id: String,
        listing_id: String,
    },
    Grant(Grant),
}

/// A fact with its place in the stream and the instant the record accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub sequence: u64,
    pub recorded_at: DateTime<Utc>,
    pub fact: Fact,
}

/// The term and the repair waiting period of one list type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermRule {
    /// How long a listing lasts, in calendar months.
    pub term_months: u32,
    /// How long after listing a credit repair may take effect, in calendar months.
    pub repair_after_months: u32,
}

/// How the authority to list is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authority {
    /// The listing names its penalty (`penalty_decision_number`), and that penalty is on the record,
    /// decided by the listing department against the same enterprise (应急管理部令第11号: the department
    /// that imposed the penalty decides the listing).
    #[default]
    PenaltyOnRecord,
    /// The listing department is a sanctioning department (the policy lets it publish `penalty_decided`);
    /// the penalty number is kept but not looked up (for penalties decided before the bus existed).
    SanctioningDepartment,
}

/// The rules the registry applies: configuration, fixed while the service runs.
#[derive(Debug, Clone)]
pub struct Rules {
    pub terms: BTreeMap<ListType, TermRule>,
    pub catalogue: MeasureCatalogue,
    pub authority: Authority,
    /// The departments that impose penalties (from the publish policy).
    pub sanctioning: BTreeSet<Department>,
}

impl Rules {
    /// The defaults: see [`default_terms`], the default catalogue, [`Authority::PenaltyOnRecord`], and
    /// the seven departments the default policy lets publish penalties.
    #[must_use]
    pub fn defaults() -> Self {
        Rules {
            terms: default_terms(),
            catalogue: MeasureCatalogue::default_catalogue(),
            authority: Authority::PenaltyOnRecord,
            sanctioning: [
                Department::Psb,
                Department::Eeb,
                Department::Transport,
                Department::Emergency,
                Department::Samr,
                Department::Msa,
                Department::Fire,
            ]
            .into_iter()
            .collect(),
        }
    }

    /// The rule of a list type.
    #[must_use]
    pub fn term(&self, list_type: ListType) -> TermRule {
        self.terms
            .get(&list_type)
            .copied()
            .unwrap_or(default_terms()[&list_type])
    }
}

/// The default terms:
///
/// | list type | term | repair after | source |
/// | --- | --- | --- | --- |
/// | serious_dishonest | 36 months | 12 months | 应急管理部令第11号 (3 years; repair no sooner than 12 months) |
/// | key_supervision | 12 months | 6 months | project default |
/// | public_exposure | 12 months | 3 months | project default |
/// | joint_punishment | 36 months | 12 months | follows the serious-dishonest list it usually accompanies |
#[must_use]
pub fn default_terms() -> BTreeMap<ListType, TermRule> {
    BTreeMap::from([
        (
            ListType::SeriousDishonest,
            TermRule {
                term_months: 36,
                repair_after_months: 12,
            },
        ),
        (
            ListType::KeySupervision,
            TermRule {
                term_months: 12,
                repair_after_months: 6,
            },
        ),
        (
            ListType::PublicExposure,
            TermRule {
                term_months: 12,
                repair_after_months: 3,
            },
        ),
        (
            ListType::JointPunishment,
            TermRule {
                term_months: 36,
                repair_after_months: 12,
            },
        ),
    ])
}

/// `t` plus `months` calendar months, counted in China Standard Time (a month after 31 January is the
/// last day of February). Saturates at the end of time.
#[must_use]
pub fn add_months(t: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    let cst = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    t.with_timezone(&cst)
        .checked_add_months(Months::new(months))
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.with_timezone(&Utc))
}

/// The id of the `credit_listing_expired` event of a listing: the same whenever it is computed, so that
/// publishing it again deduplicates.
#[must_use]
pub fn expiry_event_id(listing_id: &str) -> String {
    derived_id("credit-expired", "expired", listing_id)
}

/// The id of the `credit.conflict` warning about a grant event: one warning per grant, forever.
#[must_use]
pub fn conflict_warning_id(grant_event_id: &str) -> String {
    derived_id("credit-conflict", "conflict", grant_event_id)
}

fn derived_id(prefix: &str, domain: &str, key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    hasher.update([0]);
    hasher.update(key.as_bytes());
    format!("{prefix}-{}", hex::encode(&hasher.finalize()[..16]))
}

/// A change in a listing's life after it was listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// 信用修复: removed early.
    Repaired,
    /// The repair was revoked (obtained by fraud): the listing is restored.
    RepairRevoked,
}

/// A repair or a revocation, as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// When it takes effect.
    pub at: DateTime<Utc>,
    /// When the record accepted it.
    pub recorded_at: DateTime<Utc>,
    pub sequence: u64,
    pub department: Department,
    pub legal_basis: LegalBasis,
    pub reason: String,
    pub event_id: String,
}

impl Change {
    fn known_at(&self, t: DateTime<Utc>) -> bool {
        self.at <= t && self.recorded_at <= t
    }
}

/// A listing as applied: the decision, its term, and its changes in stream order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub id: String,
    pub event_id: String,
    pub sequence: u64,
    pub recorded_at: DateTime<Utc>,
    pub enterprise: Uscc,
    pub enterprise_name: String,
    pub list_type: ListType,
    pub department: Department,
    pub legal_basis: LegalBasis,
    pub reason: String,
    pub penalty_decision_number: Option<String>,
    pub measures: Vec<Measure>,
    pub listed_at: DateTime<Utc>,
    pub term_months: u32,
    pub expires_at: DateTime<Utc>,
    pub changes: Vec<Change>,
    /// Whether its `credit_listing_expired` event is on the record.
    pub expiry_announced: bool,
}

impl Listing {
    /// Known as of `t`: listed and recorded at or before `t`.
    #[must_use]
    pub fn known_at(&self, t: DateTime<Utc>) -> bool {
        self.listed_at <= t && self.recorded_at <= t
    }

    /// The status at `at`, from the changes effective at `at` and, if `recorded_by` is given, recorded by
    /// then; `None` if the listing is not in force yet (listed after `at`). Known-ness of the listing itself
    /// is the caller's concern.
    fn status_at(&self, at: DateTime<Utc>, recorded_by: Option<DateTime<Utc>>) -> Option<Status> {
        if at < self.listed_at {
            return None;
        }
        let last = self
            .changes
            .iter()
            .rev()
            .find(|c| c.at <= at && recorded_by.is_none_or(|r| c.recorded_at <= r));
        Some(match last.map(|c| c.kind) {
            Some(ChangeKind::Repaired) => Status::Repaired,
            _ if at >= self.expires_at => Status::Expired,
            _ => Status::Active,
        })
    }

    /// The status as of `t` (bitemporal: effective and recorded at or before `t`); `None` if not known.
    #[must_use]
    pub fn status_as_of(&self, t: DateTime<Utc>) -> Option<Status> {
        if !self.known_at(t) {
            return None;
        }
        self.status_at(t, Some(t))
    }

    /// The status after every change applied so far.
    #[must_use]
    pub fn current_status(&self, at: DateTime<Utc>) -> Option<Status> {
        self.status_at(at, None)
    }

    fn last_change_at(&self) -> DateTime<Utc> {
        self.changes.last().map_or(self.listed_at, |c| c.at)
    }

    /// The listing as the registry knew it at `t`: its status, and its history (listed, then each change,
    /// then the end of its term) as far as known at `t`. `None` if unknown at `t`.
    #[must_use]
    pub fn view_as_of(&self, t: DateTime<Utc>) -> Option<ListingView> {
        let status = self.status_as_of(t)?;
        let mut history = vec![HistoryEntry {
            status: Status::Active,
            at: self.listed_at,
            department: self.department,
            reason: self.reason.clone(),
            event_id: self.event_id.clone(),
        }];
        for change in self.changes.iter().filter(|c| c.known_at(t)) {
            history.push(HistoryEntry {
                status: match change.kind {
                    ChangeKind::Repaired => Status::Repaired,
                    ChangeKind::RepairRevoked => Status::Active,
                },
                at: change.at,
                department: change.department,
                reason: change.reason.clone(),
                event_id: change.event_id.clone(),
            });
        }
        if t >= self.expires_at
            && let Some(before) = self
                .expires_at
                .checked_sub_signed(TimeDelta::nanoseconds(1))
            && self.status_at(before, Some(t)) == Some(Status::Active)
        {
            history.push(HistoryEntry {
                status: Status::Expired,
                at: self.expires_at,
                department: self.department,
                reason: format!(
                    "the {}-month term of the {} listing ended",
                    self.term_months,
                    self.list_type.name_zh()
                ),
                event_id: expiry_event_id(&self.id),
            });
        }
        let mut listing = self.clone();
        listing.changes.retain(|c| c.known_at(t));
        Some(ListingView {
            listing,
            status,
            history,
        })
    }
}

/// One line of a listing's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The status from this instant on.
    pub status: Status,
    pub at: DateTime<Utc>,
    pub department: Department,
    pub reason: String,
    pub event_id: String,
}

/// A listing as known at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingView {
    /// The listing with only the changes known at that instant.
    pub listing: Listing,
    pub status: Status,
    pub history: Vec<HistoryEntry>,
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckResult {
    /// The listings active at the instant.
    pub active: Vec<ListingView>,
    /// The measures of those listings that bind the asking department, one per code.
    pub measures: Vec<Measure>,
}

/// What [`Registry::list`] selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub department: Option<Department>,
    pub list_type: Option<ListType>,
    pub status: Option<Status>,
    pub as_of: DateTime<Utc>,
    pub page_size: usize,
    /// Continue after the listing recorded at this sequence.
    pub after: u64,
}

/// One page of listings, in the order they were recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub listings: Vec<ListingView>,
    /// The sequence to continue after, if there are more.
    pub next_after: Option<u64>,
}

/// A problem with one field of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field path, as the gateway names fields (`credit_listing_decided.measures[1].code`).
    pub field: String,
    /// The rule broken (`required`, `measure.unknown`, ...).
    pub rule: String,
    /// The machine-readable reason (`UNKNOWN_MEASURE`, ...).
    pub reason: &'static str,
    pub description: String,
}

/// Why a credit decision is refused. Each kind maps to one gRPC code (see the `grpc` module): `Invalid`
/// INVALID_ARGUMENT, `NotFound` NOT_FOUND, `Denied` PERMISSION_DENIED, `Precondition`
/// FAILED_PRECONDITION, `Exists` ALREADY_EXISTS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Fields that break the credit rules (every one found).
    Invalid(Vec<Violation>),
    /// The decision names something the record does not hold.
    NotFound {
        reason: &'static str,
        /// `credit_listing` or `penalty_decision`.
        resource_type: &'static str,
        resource_name: String,
        message: String,
    },
    /// The department may not take this decision.
    Denied {
        reason: &'static str,
        message: String,
    },
    /// The record's state does not allow the decision (yet).
    Precondition {
        reason: &'static str,
        /// PreconditionFailure type, e.g. `REPAIR_WAITING_PERIOD`.
        kind: &'static str,
        /// What it is about, e.g. `credit_listing/CL-1`.
        subject: String,
        message: String,
    },
    /// What the decision names exists already: a listing with this id, or a decision with this event id
    /// and other content.
    Exists {
        reason: &'static str,
        /// `credit_listing` or `event`.
        resource_type: &'static str,
        resource_name: String,
        /// The field that names it, and the rule broken (`id`, `id.reused`).
        field: &'static str,
        rule: &'static str,
        message: String,
    },
}

impl Refusal {
    /// The machine-readable reason (`ErrorInfo.reason`).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Invalid(v) => v.first().map_or("FIELD_VIOLATIONS", |v| v.reason),
            Refusal::NotFound { reason, .. }
            | Refusal::Denied { reason, .. }
            | Refusal::Precondition { reason, .. }
            | Refusal::Exists { reason, .. } => reason,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Invalid(violations) => {
                let parts: Vec<String> = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect();
                write!(
                    f,
                    "the credit decision breaks the credit rules: {}",
                    parts.join("; ")
                )
            }
            Refusal::NotFound { message, .. }
            | Refusal::Denied { message, .. }
            | Refusal::Precondition { message, .. }
            | Refusal::Exists { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Refusal {}

/// A credit conflict: a grant to an enterprise whose active measures forbid it to the granting department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub grant: Grant,
    /// When the record accepted the grant.
    pub recorded_at: DateTime<Utc>,
    pub listings: Vec<ConflictingListing>,
    /// Red when a serious-dishonest listing is among them, orange otherwise.
    pub severe: bool,
    /// The granting department, the competent department, and emergency management.
    pub addressed_to: Vec<Department>,
}

impl Conflict {
    /// The warning's deterministic id.
    #[must_use]
    pub fn warning_id(&self) -> String {
        conflict_warning_id(&self.grant.event_id)
    }
}

/// A listing whose measures forbid a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictingListing {
    pub listing_id: String,
    pub event_id: String,
    pub list_type: ListType,
    pub department: Department,
    /// The codes of the measures that forbid the grant.
    pub measures: Vec<String>,
}

/// A listing whose term ended and whose end is not announced yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryDue {
    pub listing_id: String,
    pub enterprise: Uscc,
    pub enterprise_name: String,
    pub department: Department,
    pub expires_at: DateTime<Utc>,
}

/// What applying a fact did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The registry changed (or a grant was fine).
    Applied,
    /// Already applied (its sequence is not after the registry's position).
    Skipped,
    /// A decision on the record that breaks the credit rules (it bypassed the guard): ignored, as a
    /// rebuild ignores it.
    Refused(Refusal),
    /// A grant that conflicts with active listings.
    Conflict(Conflict),
}

/// The registry. Not synchronised: the service keeps it behind a lock.
#[derive(Debug, Clone)]
pub struct Registry {
    rules: Arc<Rules>,
    listings: HashMap<String, Listing>,
    by_enterprise: HashMap<Uscc, Vec<String>>,
    by_sequence: BTreeMap<u64, String>,
    penalties: HashMap<(Department, String), Penalty>,
    /// Every decision on the record (applied or refused), by deciding department and event id: event ids
    /// are scoped by publisher, and a retry is the same decision, not merely the same id.
    decision_events: HashMap<(Department, String), Decision>,
    /// Listings whose term end is not announced, by end.
    pending_expiry: BTreeSet<(DateTime<Utc>, String)>,
    position: u64,
}

const MEASURE_FIELD: &str = "credit_listing_decided.measures";

impl Registry {
    #[must_use]
    pub fn new(rules: Arc<Rules>) -> Self {
        Registry {
            rules,
            listings: HashMap::new(),
            by_enterprise: HashMap::new(),
            by_sequence: BTreeMap::new(),
            penalties: HashMap::new(),
            decision_events: HashMap::new(),
            pending_expiry: BTreeSet::new(),
            position: 0,
        }
    }

    #[must_use]
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The last stream sequence applied.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Moves the position over messages that carry no fact.
    pub fn advance(&mut self, sequence: u64) {
        self.position = self.position.max(sequence);
    }

    /// How many listings the registry holds (in any status).
    #[must_use]
    pub fn len(&self) -> usize {
        self.listings.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.listings.is_empty()
    }

    /// How many enterprises have at least one listing.
    #[must_use]
    pub fn enterprises(&self) -> usize {
        self.by_enterprise.len()
    }

    /// The listing with this id, with every change applied.
    #[must_use]
    pub fn listing(&self, id: &str) -> Option<&Listing> {
        self.listings.get(id)
    }

    /// Whether the guard should let `decision` through: it is a retry of a decision on the record, the
    /// same department's decision with the same event id and the same content (the bus answers it with the
    /// original position), or it keeps every credit rule ([`Registry::check`]). The same department's event
    /// id with other content is refused (`ALREADY_EXISTS`, `EVENT_ID_REUSED`); another department's use of
    /// the id is its own decision, checked like any other.
    ///
    /// # Errors
    /// The [`Refusal`] the publisher gets.
    pub fn review(&self, decision: &Decision) -> Result<(), Refusal> {
        let key = (decision.department(), decision.event_id().to_owned());
        if let Some(recorded) = self.decision_events.get(&key) {
            if recorded == decision {
                return Ok(());
            }
            return Err(Refusal::Exists {
                reason: "EVENT_ID_REUSED",
                resource_type: "event",
                resource_name: decision.event_id().to_owned(),
                field: "id",
                rule: "id.reused",
                message: format!(
                    "event id `{}` of {} is already on the record with other content (a {} of listing {}); \
                     a different decision needs a new id",
                    decision.event_id(),
                    decision.department(),
                    recorded.token(),
                    recorded.listing_id()
                ),
            });
        }
        self.check(decision)
    }

    /// Checks a decision against the credit rules and the registry's state. In order: the fields
    /// (INVALID_ARGUMENT, every violation at once), what it names (NOT_FOUND, ALREADY_EXISTS), who decides
    /// (PERMISSION_DENIED), then the state (FAILED_PRECONDITION).
    ///
    /// # Errors
    /// The first [`Refusal`] met.
    pub fn check(&self, decision: &Decision) -> Result<(), Refusal> {
        match decision {
            Decision::Listing(d) => self.check_listing(d),
            Decision::Repair(d) => self.check_repair(d),
            Decision::Revocation(d) => self.check_revocation(d),
        }
    }

    fn check_listing(&self, d: &ListingDecision) -> Result<(), Refusal> {
        let mut violations = Vec::new();
        legal_basis_violation(d.legal_basis.as_ref(), &mut violations);
        if d.classification == Classification::Restricted {
            violations.push(Violation {
                field: "classification".into(),
                rule: "classification.restricted".into(),
                reason: "CLASSIFICATION_RESTRICTED",
                description:
                    "a credit listing binds every department, so it cannot be RESTRICTED: \
                              classify it SHARED or PUBLIC"
                        .into(),
            });
        }
        let mut seen = BTreeSet::new();
        for (i, m) in d.measures.iter().enumerate() {
            if self.rules.catalogue.get(&m.code).is_none() {
                let known: Vec<&str> = self.rules.catalogue.codes().collect();
                violations.push(Violation {
                    field: format!("{MEASURE_FIELD}[{i}].code"),
                    rule: "measure.unknown".into(),
                    reason: "UNKNOWN_MEASURE",
                    description: format!(
                        "measure {:?} is not in the measure catalogue; known measures: {}",
                        m.code,
                        known.join(", ")
                    ),
                });
            } else if !seen.insert(m.code.as_str()) {
                violations.push(Violation {
                    field: format!("{MEASURE_FIELD}[{i}].code"),
                    rule: "measure.duplicate".into(),
                    reason: "DUPLICATE_MEASURE",
                    description: format!("measure {:?} is named twice", m.code),
                });
            }
        }
        let penalty_number = d
            .penalty_decision_number
            .as_deref()
            .filter(|n| !n.trim().is_empty());
        if self.rules.authority == Authority::PenaltyOnRecord && penalty_number.is_none() {
            violations.push(Violation {
                field: "credit_listing_decided.penalty_decision_number".into(),
                rule: "required".into(),
                reason: "PENALTY_REQUIRED",
                description: "required: a listing is decided by the department that imposed the \
                              penalty it rests on (应急管理部令第11号); name that penalty decision"
                    .into(),
            });
        }
        if !violations.is_empty() {
            return Err(Refusal::Invalid(violations));
        }
        if let Some(existing) = self.listings.get(&d.listing_id) {
            return Err(Refusal::Exists {
                reason: "LISTING_EXISTS",
                resource_type: "credit_listing",
                resource_name: format!("credit_listing/{}", d.listing_id),
                field: "credit_listing_decided.listing_id",
                rule: "listing_id.reused",
                message: format!(
                    "listing {} exists already (event {}, by {}); a listing id is used once",
                    d.listing_id, existing.event_id, existing.department
                ),
            });
        }
        if !self.rules.sanctioning.contains(&d.department) {
            return Err(Refusal::Denied {
                reason: "NOT_SANCTIONING_DEPARTMENT",
                message: format!(
                    "department {} imposes no penalties, so it cannot decide a credit listing",
                    d.department
                ),
            });
        }
        if self.rules.authority == Authority::SanctioningDepartment {
            return Ok(());
        }
        let number = penalty_number.expect("checked above");
        let Some(penalty) = self.penalties.get(&(d.department, number.to_owned())) else {
            let others: Vec<&str> = Department::ALL
                .into_iter()
                .filter(|o| self.penalties.contains_key(&(*o, number.to_owned())))
                .map(Department::code)
                .collect();
            if others.is_empty() {
                return Err(Refusal::NotFound {
                    reason: "PENALTY_NOT_FOUND",
                    resource_type: "penalty_decision",
                    resource_name: number.to_owned(),
                    message: format!(
                        "no penalty decision {number:?} by {} is on the record: a listing rests on a \
                         penalty the listing department published (penalty_decided)",
                        d.department
                    ),
                });
            }
            return Err(Refusal::Denied {
                reason: "NOT_SANCTIONING_DEPARTMENT",
                message: format!(
                    "penalty decision {number:?} was imposed by {}, not by {}: only the department that \
                     imposed the penalty decides the listing (应急管理部令第11号)",
                    others.join(", "),
                    d.department
                ),
            });
        };
        if penalty.enterprise != d.enterprise {
            return Err(Refusal::Precondition {
                reason: "PENALTY_ENTERPRISE_MISMATCH",
                kind: "PENALTY_ENTERPRISE",
                subject: format!("penalty_decision/{number}"),
                message: format!(
                    "penalty decision {number:?} was imposed on {}, not on {}",
                    penalty.enterprise, d.enterprise
                ),
            });
        }
        if d.listed_at < penalty.decided_at {
            return Err(Refusal::Precondition {
                reason: "LISTED_BEFORE_PENALTY",
                kind: "PENALTY_DATE",
                subject: format!("penalty_decision/{number}"),
                message: format!(
                    "the listing takes effect at {}, before penalty decision {number:?} ({})",
                    rfc3339(d.listed_at),
                    rfc3339(penalty.decided_at)
                ),
            });
        }
        Ok(())
    }

    /// The listing a repair or revocation names, if it exists and belongs to the deciding department.
    fn listing_of(
        &self,
        listing_id: &str,
        department: Department,
        what: &str,
    ) -> Result<&Listing, Refusal> {
        let Some(listing) = self.listings.get(listing_id) else {
            return Err(Refusal::NotFound {
                reason: "LISTING_NOT_FOUND",
                resource_type: "credit_listing",
                resource_name: listing_id.to_owned(),
                message: format!("no credit listing {listing_id:?} is on the record"),
            });
        };
        if listing.department != department {
            return Err(Refusal::Denied {
                reason: "NOT_LISTING_DEPARTMENT",
                message: format!(
                    "listing {listing_id} was decided by {}: only that department decides its {what}, not {department}",
                    listing.department
                ),
            });
        }
        Ok(listing)
    }

    fn check_repair(&self, d: &RepairDecision) -> Result<(), Refusal> {
        let mut violations = Vec::new();
        legal_basis_violation(d.legal_basis.as_ref(), &mut violations);
        if !violations.is_empty() {
            return Err(Refusal::Invalid(violations));
        }
        let listing = self.listing_of(&d.listing_id, d.department, "credit repair")?;
        let subject = format!("credit_listing/{}", d.listing_id);
        match listing.current_status(d.repaired_at) {
            Some(Status::Active) => {}
            Some(status) => {
                return Err(Refusal::Precondition {
                    reason: "LISTING_NOT_ACTIVE",
                    kind: "LISTING_STATUS",
                    subject,
                    message: format!(
                        "listing {} is {} at {}: only an active listing can be repaired",
                        d.listing_id,
                        status_word(status),
                        rfc3339(d.repaired_at)
                    ),
                });
            }
            None => {}
        }
        let rule = self.rules.term(listing.list_type);
        let earliest = add_months(listing.listed_at, rule.repair_after_months);
        if d.repaired_at < earliest {
            return Err(Refusal::Precondition {
                reason: "REPAIR_TOO_EARLY",
                kind: "REPAIR_WAITING_PERIOD",
                subject,
                message: format!(
                    "a credit repair of a {} listing takes effect no sooner than {} months after listing: \
                     listing {} was listed at {}, so not before {}; the repair is dated {}",
                    listing.list_type.name_zh(),
                    rule.repair_after_months,
                    d.listing_id,
                    rfc3339(listing.listed_at),
                    rfc3339(earliest),
                    rfc3339(d.repaired_at)
                ),
            });
        }
        let last = listing.last_change_at();
        if d.repaired_at < last {
            return Err(out_of_order(&d.listing_id, d.repaired_at, last));
        }
        Ok(())
    }

    fn check_revocation(&self, d: &RevocationDecision) -> Result<(), Refusal> {
        let mut violations = Vec::new();
        legal_basis_violation(d.legal_basis.as_ref(), &mut violations);
        if !violations.is_empty() {
            return Err(Refusal::Invalid(violations));
        }
        let listing = self.listing_of(&d.listing_id, d.department, "repairs")?;
        let subject = format!("credit_listing/{}", d.listing_id);
        let repaired = listing
            .changes
            .last()
            .filter(|c| c.kind == ChangeKind::Repaired);
        let Some(repair) = repaired else {
            return Err(Refusal::Precondition {
                reason: "LISTING_NOT_REPAIRED",
                kind: "LISTING_STATUS",
                subject,
                message: format!(
                    "listing {} has no credit repair in force to revoke",
                    d.listing_id
                ),
            });
        };
        if d.revoked_at < repair.at {
            return Err(out_of_order(&d.listing_id, d.revoked_at, repair.at));
        }
        if d.revoked_at >= listing.expires_at {
            return Err(Refusal::Precondition {
                reason: "LISTING_TERM_ENDED",
                kind: "LISTING_TERM",
                subject,
                message: format!(
                    "listing {}'s term ended at {}: a revocation dated {} would restore nothing",
                    d.listing_id,
                    rfc3339(listing.expires_at),
                    rfc3339(d.revoked_at)
                ),
            });
        }
        Ok(())
    }

    /// Applies one fact of the stream, in stream order. Decisions that break the rules are ignored (and
    /// reported); a grant is checked for conflicts with the listings active at its time.
    pub fn apply(&mut self, recorded: Recorded) -> Outcome {
        if recorded.sequence <= self.position {
            return Outcome::Skipped;
        }
        self.position = recorded.sequence;
        let Recorded {
            sequence,
            recorded_at,
            fact,
        } = recorded;
        match fact {
            Fact::Decision(decision) => {
                let checked = self.check(&decision);
                self.decision_events
                    .entry((decision.department(), decision.event_id().to_owned()))
                    .or_insert_with(|| decision.clone());
                if let Err(refusal) = checked {
                    return Outcome::Refused(refusal);
                }
                self.apply_decision(sequence, recorded_at, decision);
                Outcome::Applied
            }
            Fact::Penalty(p) => {
                self.penalties
                    .entry((p.department, p.decision_number.clone()))
                    .or_insert(p);
                Outcome::Applied
            }
            Fact::ExpiryAnnounced { listing_id, .. } => {
                if let Some(listing) = self.listings.get_mut(&listing_id) {
                    listing.expiry_announced = true;
                    self.pending_expiry
                        .remove(&(listing.expires_at, listing_id));
                }
                Outcome::Applied
            }
            Fact::Grant(grant) => match self.conflict(&grant, recorded_at) {
                Some(conflict) => Outcome::Conflict(conflict),
                None => Outcome::Applied,
            },
        }
    }

    fn apply_decision(&mut self, sequence: u64, recorded_at: DateTime<Utc>, decision: Decision) {
        match decision {
            Decision::Listing(d) => {
                let term_months = self.rules.term(d.list_type).term_months;
                let expires_at = add_months(d.listed_at, term_months);
                let listing = Listing {
                    id: d.listing_id.clone(),
                    event_id: d.event_id,
                    sequence,
                    recorded_at,
                    enterprise: d.enterprise.clone(),
                    enterprise_name: d.enterprise_name,
                    list_type: d.list_type,
                    department: d.department,
                    legal_basis: d.legal_basis.unwrap_or_default(),
                    reason: d.reason,
                    penalty_decision_number: d.penalty_decision_number,
                    measures: d.measures,
                    listed_at: d.listed_at,
                    term_months,
                    expires_at,
                    changes: Vec::new(),
                    expiry_announced: false,
                };
                self.pending_expiry
                    .insert((expires_at, d.listing_id.clone()));
                self.by_enterprise
                    .entry(d.enterprise)
                    .or_default()
                    .push(d.listing_id.clone());
                self.by_sequence.insert(sequence, d.listing_id.clone());
                self.listings.insert(d.listing_id, listing);
            }
            Decision::Repair(d) => {
                if let Some(listing) = self.listings.get_mut(&d.listing_id) {
                    listing.changes.push(Change {
                        kind: ChangeKind::Repaired,
                        at: d.repaired_at,
                        recorded_at,
                        sequence,
                        department: d.department,
                        legal_basis: d.legal_basis.unwrap_or_default(),
                        reason: d.reason,
                        event_id: d.event_id,
                    });
                }
            }
            Decision::Revocation(d) => {
                if let Some(listing) = self.listings.get_mut(&d.listing_id) {
                    listing.changes.push(Change {
                        kind: ChangeKind::RepairRevoked,
                        at: d.revoked_at,
                        recorded_at,
                        sequence,
                        department: d.department,
                        legal_basis: d.legal_basis.unwrap_or_default(),
                        reason: d.reason,
                        event_id: d.event_id,
                    });
                    if !listing.expiry_announced {
                        self.pending_expiry
                            .insert((listing.expires_at, d.listing_id));
                    }
                }
            }
        }
    }

    /// The conflict a grant makes with the listings applied so far that are active at the grant's time.
    fn conflict(&self, grant: &Grant, recorded_at: DateTime<Utc>) -> Option<Conflict> {
        let ids = self.by_enterprise.get(&grant.holder)?;
        let mut listings = Vec::new();
        for id in ids {
            let listing = &self.listings[id];
            if listing.current_status(grant.time) != Some(Status::Active) {
                continue;
            }
            let forbidding: Vec<String> = listing
                .measures
                .iter()
                .filter(|m| m.binds(grant.department) || m.binds(grant.competent_department))
                .filter(|m| {
                    self.rules
                        .catalogue
                        .get(&m.code)
                        .is_some_and(|spec| spec.forbids.forbids(grant.licence_kind))
                })
                .map(|m| m.code.clone())
                .collect();
            if !forbidding.is_empty() {
                listings.push(ConflictingListing {
                    listing_id: listing.id.clone(),
                    event_id: listing.event_id.clone(),
                    list_type: listing.list_type,
                    department: listing.department,
                    measures: forbidding,
                });
            }
        }
        if listings.is_empty() {
            return None;
        }
        let severe = listings
            .iter()
            .any(|l| l.list_type == ListType::SeriousDishonest);
        let addressed_to: BTreeSet<Department> = [
            grant.department,
            grant.competent_department,
            Department::Emergency,
        ]
        .into_iter()
        .collect();
        Some(Conflict {
            grant: grant.clone(),
            recorded_at,
            listings,
            severe,
            addressed_to: addressed_to.into_iter().collect(),
        })
    }

    /// The check at `at` (as-of semantics): the active listings of `enterprise`, and their measures that
    /// bind `department`. `O(listings of the enterprise)`.
    #[must_use]
    pub fn check_at(
        &self,
        enterprise: &Uscc,
        department: Department,
        at: DateTime<Utc>,
    ) -> CheckResult {
        let Some(ids) = self.by_enterprise.get(enterprise) else {
            return CheckResult::default();
        };
        let mut result = CheckResult::default();
        let mut codes = BTreeSet::new();
        for id in ids {
            let listing = &self.listings[id];
            if listing.status_as_of(at) != Some(Status::Active) {
                continue;
            }
            for m in &listing.measures {
                if m.binds(department) && codes.insert(m.code.as_str()) {
                    result.measures.push(m.clone());
                }
            }
            if let Some(view) = listing.view_as_of(at) {
                result.active.push(view);
            }
        }
        result
    }

    /// Every listing of `enterprise` known at `as_of`, in the order recorded.
    #[must_use]
    pub fn history(&self, enterprise: &Uscc, as_of: DateTime<Utc>) -> Vec<ListingView> {
        self.by_enterprise
            .get(enterprise)
            .into_iter()
            .flatten()
            .filter_map(|id| self.listings[id].view_as_of(as_of))
            .collect()
    }

    /// Listings by department, type and status as of an instant, a page at a time, in the order recorded.
    #[must_use]
    pub fn list(&self, query: &ListQuery) -> Page {
        let mut listings = Vec::new();
        let mut next_after = None;
        let start = query.after.saturating_add(1);
        for id in self.by_sequence.range(start..).map(|(_, id)| id) {
            let listing = &self.listings[id];
            if query.department.is_some_and(|d| d != listing.department)
                || query.list_type.is_some_and(|t| t != listing.list_type)
            {
                continue;
            }
            let Some(view) = listing.view_as_of(query.as_of) else {
                continue;
            };
            if query.status.is_some_and(|s| s != view.status) {
                continue;
            }
            if listings.len() == query.page_size {
                next_after = listings.last().map(|v: &ListingView| v.listing.sequence);
                break;
            }
            listings.push(view);
        }
        Page {
            listings,
            next_after,
        }
    }

    /// Listings whose term ended by `now` while active and whose end is not announced yet. Listings that
    /// were repaired before their term ended are dropped from the schedule (a revocation puts them back).
    pub fn due_expiries(&mut self, now: DateTime<Utc>) -> Vec<ExpiryDue> {
        let due: Vec<(DateTime<Utc>, String)> = self
            .pending_expiry
            .iter()
            .take_while(|(t, _)| *t <= now)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for key in due {
            let listing = &self.listings[&key.1];
            let before = listing
                .expires_at
                .checked_sub_signed(TimeDelta::nanoseconds(1))
                .unwrap_or(listing.expires_at);
            if listing.expiry_announced || listing.current_status(before) != Some(Status::Active) {
                self.pending_expiry.remove(&key);
                continue;
            }
            out.push(ExpiryDue {
                listing_id: listing.id.clone(),
                enterprise: listing.enterprise.clone(),
                enterprise_name: listing.enterprise_name.clone(),
                department: listing.department,
                expires_at: listing.expires_at,
            });
        }
        out
    }

    /// When the next unannounced term ends, if any.
    #[must_use]
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.pending_expiry.first().map(|(t, _)| *t)
    }
}

fn legal_basis_violation(basis: Option<&LegalBasis>, violations: &mut Vec<Violation>) {
    if basis.is_none_or(|b| b.instrument.trim().is_empty()) {
        violations.push(Violation {
            field: "legal_basis".into(),
            rule: "required".into(),
            reason: "LEGAL_BASIS_REQUIRED",
            description: "required: a credit decision names the legal instrument it rests on \
                          (Event.legal_basis.instrument)"
                .into(),
        });
    }
}

fn out_of_order(listing_id: &str, at: DateTime<Utc>, last: DateTime<Utc>) -> Refusal {
    Refusal::Precondition {
        reason: "DECISION_OUT_OF_ORDER",
        kind: "LISTING_CHANGE_ORDER",
        subject: format!("credit_listing/{listing_id}"),
        message: format!(
            "the decision takes effect at {}, before listing {listing_id}'s last change ({}): changes of a \
             listing take effect in the order they are decided",
            rfc3339(at),
            rfc3339(last)
        ),
    }
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Active => "active",
        Status::Expired => "expired",
        Status::Repaired => "repaired",
    }
}

/// An instant as RFC 3339 in UTC.
#[must_use]
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}
