//! Conversions between the generated types and the registry's domain types: stream records into facts,
//! credit decisions into [`Decision`]s, requests into queries, and back into responses and the service's
//! own events. Nothing else in the crate touches `hazchem_proto::v1`.

use chrono::{DateTime, TimeDelta, Utc};
use hazchem_bus::{EventSubject, Message};
use hazchem_domain::{Department, Uscc};
use hazchem_proto::time::{datetime as from_timestamp, timestamp};
use hazchem_proto::{department_from_i32, v1};

use crate::catalogue::LicenceKind;
use crate::registry::{
    Classification, Conflict, Decision, ExpiryDue, Fact, Grant, GrantKind, HistoryEntry,
    LegalBasis, ListType, ListingDecision, ListingView, Measure, Penalty, Recorded, RepairDecision,
    RevocationDecision, Status, Violation, rfc3339,
};

/// The service name the credit service publishes as (`hazchem://service/credit`).
pub const SERVICE_NAME: &str = "credit";

/// The event types a credit decision comes as: what the guard reviews.
pub const DECISION_TOKENS: [&str; 3] = [
    "credit_listing_decided",
    "credit_repair_decided",
    "credit_repair_revoked",
];

/// The event types the registry derives from; everything else only moves its position.
pub const FACT_TOKENS: [&str; 9] = [
    "credit_listing_decided",
    "credit_repair_decided",
    "credit_repair_revoked",
    "credit_listing_expired",
    "penalty_decided",
    "task_penalty_decided",
    "licence_issued",
    "licence_renewed",
    "application_decided",
];

fn violation(field: &str, rule: &str, description: impl Into<String>) -> Violation {
    Violation {
        field: field.to_owned(),
        rule: rule.to_owned(),
        reason: "FIELD_VIOLATIONS",
        description: description.into(),
    }
}

fn time_of(t: Option<&prost_types::Timestamp>, field: &str) -> Result<DateTime<Utc>, Violation> {
    t.and_then(from_timestamp)
        .ok_or_else(|| violation(field, "required", "required: a valid timestamp"))
}

fn department_of(value: i32, field: &str) -> Result<Department, Violation> {
    department_from_i32(value).map_err(|e| violation(field, "department.unknown", e.to_string()))
}

fn uscc_of(
    enterprise: Option<&v1::EnterpriseRef>,
    field: &str,
) -> Result<(Uscc, String), Violation> {
    let enterprise = enterprise.ok_or_else(|| violation(field, "required", "required"))?;
    let uscc = Uscc::parse(&enterprise.uscc).map_err(|e| {
        violation(
            &format!("{field}.uscc"),
            &format!("{}.{}", e.kind.as_str(), e.rule.as_str()),
            e.to_string(),
        )
    })?;
    Ok((uscc, enterprise.name.clone()))
}

fn legal_basis_of(event: &v1::Event) -> Option<LegalBasis> {
    event.legal_basis.as_ref().map(|b| LegalBasis {
        instrument: b.instrument.clone(),
        article: b.article.clone(),
        version: b.version.clone(),
    })
}

fn classification_of(event: &v1::Event) -> Classification {
    match event.classification() {
        v1::DataClassification::Public => Classification::Public,
        v1::DataClassification::Shared => Classification::Shared,
        // Unspecified is treated as restricted, as the read policy does (fail closed).
        v1::DataClassification::Restricted | v1::DataClassification::Unspecified => {
            Classification::Restricted
        }
    }
}

/// The domain list type of a wire value.
pub fn list_type_of(value: i32) -> Option<ListType> {
    match v1::ListType::try_from(value).ok()? {
        v1::ListType::Unspecified => None,
        v1::ListType::SeriousDishonest => Some(ListType::SeriousDishonest),
        v1::ListType::KeySupervision => Some(ListType::KeySupervision),
        v1::ListType::PublicExposure => Some(ListType::PublicExposure),
        v1::ListType::JointPunishment => Some(ListType::JointPunishment),
    }
}

fn list_type_to_proto(t: ListType) -> v1::ListType {
    match t {
        ListType::SeriousDishonest => v1::ListType::SeriousDishonest,
        ListType::KeySupervision => v1::ListType::KeySupervision,
        ListType::PublicExposure => v1::ListType::PublicExposure,
        ListType::JointPunishment => v1::ListType::JointPunishment,
    }
}

/// The domain status of a wire value (`None` for unspecified or unknown).
pub fn status_of(value: i32) -> Option<Status> {
    match v1::ListingStatus::try_from(value).ok()? {
        v1::ListingStatus::Unspecified => None,
        v1::ListingStatus::Active => Some(Status::Active),
        v1::ListingStatus::Expired => Some(Status::Expired),
        v1::ListingStatus::Repaired => Some(Status::Repaired),
    }
}

fn status_to_proto(s: Status) -> v1::ListingStatus {
    match s {
        Status::Active => v1::ListingStatus::Active,
        Status::Expired => v1::ListingStatus::Expired,
        Status::Repaired => v1::ListingStatus::Repaired,
    }
}

fn licence_kind_of(value: i32) -> Option<LicenceKind> {
    Some(match v1::LicenceKind::try_from(value).ok()? {
        v1::LicenceKind::Unspecified => return None,
        v1::LicenceKind::SafetyProduction => LicenceKind::SafetyProduction,
        v1::LicenceKind::SafeUse => LicenceKind::SafeUse,
        v1::LicenceKind::Operation => LicenceKind::Operation,
        v1::LicenceKind::HazardousWaste => LicenceKind::HazardousWaste,
        v1::LicenceKind::RoadTransport => LicenceKind::RoadTransport,
        v1::LicenceKind::PortOperation => LicenceKind::PortOperation,
        v1::LicenceKind::IndustrialProduct => LicenceKind::IndustrialProduct,
        v1::LicenceKind::Business => LicenceKind::Business,
        v1::LicenceKind::VehicleCertificate => LicenceKind::VehicleCertificate,
        v1::LicenceKind::PractitionerQualification => LicenceKind::PractitionerQualification,
    })
}

fn take<T>(result: Result<T, Violation>, violations: &mut Vec<Violation>) -> Option<T> {
    result.map_err(|v| violations.push(v)).ok()
}

/// The credit decision an event carries: `Ok(None)` if it carries none; the violations if it does but
/// cannot be read (the gateway's field rules make that rare).
pub fn decision_of(event: &v1::Event) -> Result<Option<Decision>, Vec<Violation>> {
    use v1::event::Payload;
    let mut violations = Vec::new();
    let department = take(
        department_of(event.department, "department"),
        &mut violations,
    );
    let legal_basis = legal_basis_of(event);
    let decision = match &event.payload {
        Some(Payload::CreditListingDecided(p)) => {
            let f = "credit_listing_decided";
            let enterprise = take(
                uscc_of(p.enterprise.as_ref(), &format!("{f}.enterprise")),
                &mut violations,
            );
            let list_type = list_type_of(p.list_type);
            if list_type.is_none() {
                violations.push(violation(
                    &format!("{f}.list_type"),
                    "required",
                    "required: one of the four list types",
                ));
            }
            let listed_at = take(
                time_of(p.listed_at.as_ref(), &format!("{f}.listed_at")),
                &mut violations,
            );
            let mut measures = Vec::new();
            for (i, m) in p.measures.iter().enumerate() {
                let mut applies_to = Vec::new();
                for (j, d) in m.applies_to.iter().enumerate() {
                    match department_from_i32(*d) {
                        Ok(d) => applies_to.push(d),
                        Err(e) => violations.push(violation(
                            &format!("{f}.measures[{i}].applies_to[{j}]"),
                            "department.unknown",
                            e.to_string(),
                        )),
                    }
                }
                applies_to.sort_unstable();
                applies_to.dedup();
                measures.push(Measure {
                    code: m.code.clone(),
                    applies_to,
                    description: m.description.clone(),
                });
            }
            match (department, enterprise, list_type, listed_at) {
                (
                    Some(department),
                    Some((enterprise, enterprise_name)),
                    Some(list_type),
                    Some(listed_at),
                ) if violations.is_empty() => Decision::Listing(ListingDecision {
                    event_id: event.id.clone(),
                    listing_id: p.listing_id.clone(),
                    enterprise,
                    enterprise_name,
                    list_type,
                    department,
                    legal_basis,
                    classification: classification_of(event),
                    reason: p.reason.clone(),
                    penalty_decision_number: Some(p.penalty_decision_number.clone())
                        .filter(|n| !n.is_empty()),
                    measures,
                    listed_at,
                }),
                _ => return Err(violations),
            }
        }
        Some(Payload::CreditRepairDecided(p)) => {
            let repaired_at = take(
                time_of(p.repaired_at.as_ref(), "credit_repair_decided.repaired_at"),
                &mut violations,
            );
            match (department, repaired_at) {
                (Some(department), Some(repaired_at)) => Decision::Repair(RepairDecision {
                    event_id: event.id.clone(),
                    listing_id: p.listing_id.clone(),
                    department,
                    legal_basis,
                    reason: p.reason.clone(),
                    repaired_at,
                }),
                _ => return Err(violations),
            }
        }
        Some(Payload::CreditRepairRevoked(p)) => {
            let revoked_at = take(
                time_of(p.revoked_at.as_ref(), "credit_repair_revoked.revoked_at"),
                &mut violations,
            );
            match (department, revoked_at) {
                (Some(department), Some(revoked_at)) => Decision::Revocation(RevocationDecision {
                    event_id: event.id.clone(),
                    listing_id: p.listing_id.clone(),
                    department,
                    legal_basis,
                    reason: p.reason.clone(),
                    revoked_at,
                }),
                _ => return Err(violations),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(decision))
}

/// Why a stored message gives no fact although its type is one the registry reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fact a stored message carries: `Ok(None)` for event types the registry does not read, and for
/// grants that grant nothing (a rejected application).
pub fn fact_of(message: &Message) -> Result<Option<Recorded>, Unreadable> {
    let subject = EventSubject::parse(&message.subject).map_err(|e| Unreadable(e.to_string()))?;
    if !FACT_TOKENS.contains(&subject.type_token) {
        return Ok(None);
    }
    let (record, event) = hazchem_proto::open_record(message.payload.as_ref())
        .map_err(|e| Unreadable(format!("the record does not decode: {e}")))?;
    let recorded_at = record
        .accepted_at
        .as_ref()
        .and_then(from_timestamp)
        .unwrap_or(message.time);
    let unreadable = |violations: Vec<Violation>| {
        let parts: Vec<String> = violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect();
        Unreadable(parts.join("; "))
    };
    let one = |v: Violation| unreadable(vec![v]);
    use v1::event::Payload;
    let fact = match &event.payload {
        Some(
            Payload::CreditListingDecided(_)
            | Payload::CreditRepairDecided(_)
            | Payload::CreditRepairRevoked(_),
        ) => match decision_of(&event).map_err(unreadable)? {
            Some(d) => Fact::Decision(d),
            None => return Ok(None),
        },
        Some(Payload::CreditListingExpired(p)) => {
            // Only the credit service announces the end of a term.
            if subject.publisher != SERVICE_NAME {
                return Ok(None);
            }
            Fact::ExpiryAnnounced {
                event_id: event.id.clone(),
                listing_id: p.listing_id.clone(),
            }
        }
        Some(Payload::PenaltyDecided(p)) => {
            let department = department_of(event.department, "department").map_err(one)?;
            penalty(&event.id, department, p, "penalty_decided")?
        }
        Some(Payload::TaskPenaltyDecided(p)) => {
            let department = department_of(p.actor, "task_penalty_decided.actor").map_err(one)?;
            let penalty_msg = p
                .penalty
                .as_ref()
                .ok_or_else(|| Unreadable("task_penalty_decided.penalty: required".into()))?;
            penalty(
                &event.id,
                department,
                penalty_msg,
                "task_penalty_decided.penalty",
            )?
        }
        Some(Payload::LicenceIssued(p)) => grant_of(
            &event,
            p.licence.as_ref(),
            GrantKind::LicenceIssued,
            "licence_issued",
        )?,
        Some(Payload::LicenceRenewed(p)) => grant_of(
            &event,
            p.licence.as_ref(),
            GrantKind::LicenceRenewed,
            "licence_renewed",
        )?,
        Some(Payload::ApplicationDecided(p)) => {
            if p.decision() != v1::Decision::Approved {
                return Ok(None);
            }
            let f = "application_decided";
            let (holder, holder_name) =
                uscc_of(p.applicant.as_ref(), &format!("{f}.applicant")).map_err(one)?;
            Fact::Grant(Grant {
                event_id: event.id.clone(),
                kind: GrantKind::ApplicationApproved,
                licence_kind: licence_kind_of(p.kind)
                    .ok_or_else(|| Unreadable(format!("{f}.kind: required")))?,
                number: if p.licence_number.is_empty() {
                    p.application_number.clone()
                } else {
                    p.licence_number.clone()
                },
                holder,
                holder_name,
                department: department_of(event.department, "department").map_err(one)?,
                competent_department: department_of(
                    p.competent_department,
                    &format!("{f}.competent_department"),
                )
                .map_err(one)?,
                time: time_of(event.time.as_ref(), "time").map_err(one)?,
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(Recorded {
        sequence: message.sequence,
        recorded_at,
        fact,
    }))
}

fn penalty(
    event_id: &str,
    department: Department,
    p: &v1::PenaltyDecided,
    field: &str,
) -> Result<Fact, Unreadable> {
    let (enterprise, _) = uscc_of(p.enterprise.as_ref(), &format!("{field}.enterprise"))
        .map_err(|v| Unreadable(format!("{}: {}", v.field, v.description)))?;
    let decided_at = time_of(p.decided_at.as_ref(), &format!("{field}.decided_at"))
        .map_err(|v| Unreadable(format!("{}: {}", v.field, v.description)))?;
    Ok(Fact::Penalty(Penalty {
        event_id: event_id.to_owned(),
        department,
        decision_number: p.decision_number.clone(),
        enterprise,
        decided_at,
    }))
}

fn grant_of(
    event: &v1::Event,
    licence: Option<&v1::Licence>,
    kind: GrantKind,
    field: &str,
) -> Result<Fact, Unreadable> {
    let unreadable = |v: Violation| Unreadable(format!("{}: {}", v.field, v.description));
    let licence = licence.ok_or_else(|| Unreadable(format!("{field}.licence: required")))?;
    let (holder, holder_name) =
        uscc_of(licence.holder.as_ref(), &format!("{field}.licence.holder")).map_err(unreadable)?;
    Ok(Fact::Grant(Grant {
        event_id: event.id.clone(),
        kind,
        licence_kind: licence_kind_of(licence.kind)
            .ok_or_else(|| Unreadable(format!("{field}.licence.kind: required")))?,
        number: licence.licence_number.clone(),
        holder,
        holder_name,
        department: department_of(event.department, "department").map_err(unreadable)?,
        competent_department: department_of(
            licence.competent_department,
            &format!("{field}.licence.competent_department"),
        )
        .map_err(unreadable)?,
        time: time_of(event.time.as_ref(), "time").map_err(unreadable)?,
    }))
}

fn measure_to_proto(m: &Measure) -> v1::Measure {
    v1::Measure {
        code: m.code.clone(),
        applies_to: m
            .applies_to
            .iter()
            .map(|d| v1::Department::from(*d) as i32)
            .collect(),
        description: m.description.clone(),
    }
}

/// The measures of a check, for the response.
#[must_use]
pub fn measures_to_proto(measures: &[Measure]) -> Vec<v1::Measure> {
    measures.iter().map(measure_to_proto).collect()
}

fn change_to_proto(h: &HistoryEntry) -> v1::ListingChange {
    v1::ListingChange {
        status: status_to_proto(h.status) as i32,
        at: Some(timestamp(h.at)),
        department: v1::Department::from(h.department) as i32,
        reason: h.reason.clone(),
        event_id: h.event_id.clone(),
    }
}

/// A listing as known at an instant, for a response.
#[must_use]
pub fn listing_to_proto(view: &ListingView) -> v1::CreditListing {
    let l = &view.listing;
    v1::CreditListing {
        listing_id: l.id.clone(),
        enterprise: Some(v1::EnterpriseRef {
            uscc: l.enterprise.as_str().to_owned(),
            name: l.enterprise_name.clone(),
        }),
        list_type: list_type_to_proto(l.list_type) as i32,
        department: v1::Department::from(l.department) as i32,
        legal_basis: Some(legal_basis_to_proto(&l.legal_basis)),
        reason: l.reason.clone(),
        measures: l.measures.iter().map(measure_to_proto).collect(),
        listed_at: Some(timestamp(l.listed_at)),
        expires_at: Some(timestamp(l.expires_at)),
        status: status_to_proto(view.status) as i32,
        history: view.history.iter().map(change_to_proto).collect(),
    }
}

fn legal_basis_to_proto(b: &LegalBasis) -> v1::LegalBasis {
    v1::LegalBasis {
        instrument: b.instrument.clone(),
        article: b.article.clone(),
        version: b.version.clone(),
    }
}

/// The `credit_listing_expired` event announcing that a listing's term ended. Deterministic: the same
/// listing gives the same bytes, so a re-publication after a crash is a duplicate, not a conflict.
#[must_use]
pub fn expiry_event(due: &ExpiryDue, legal_basis: &LegalBasis) -> v1::Event {
    let payload = v1::event::Payload::CreditListingExpired(v1::CreditListingExpired {
        listing_id: due.listing_id.clone(),
        enterprise: Some(v1::EnterpriseRef {
            uscc: due.enterprise.as_str().to_owned(),
            name: due.enterprise_name.clone(),
        }),
        expired_at: Some(timestamp(due.expires_at)),
    });
    let mut event = hazchem_proto::build_event(
        crate::registry::expiry_event_id(&due.listing_id),
        format!("/services/{SERVICE_NAME}"),
        None,
        timestamp(due.expires_at),
        payload,
    );
    event.subject = due.enterprise.as_str().to_owned();
    event.legal_basis =
        Some(legal_basis_to_proto(legal_basis)).filter(|b| !b.instrument.is_empty());
    event
}

/// The `warning_raised` event of a credit conflict. Deterministic (its instant is when the record accepted
/// the grant), so that a rebuild that meets the grant again publishes the same event, which the bus
/// deduplicates.
#[must_use]
pub fn conflict_warning(conflict: &Conflict, acknowledge_hours: u32) -> v1::Event {
    let grant = &conflict.grant;
    let id = conflict.warning_id();
    let raised_at = conflict.recorded_at;
    let lists: Vec<String> = conflict
        .listings
        .iter()
        .map(|l| {
            format!(
                "{} ({}, {})",
                l.listing_id,
                l.list_type.name_zh(),
                l.department.name_zh()
            )
        })
        .collect();
    let title = format!(
        "信用冲突 credit conflict: {} ({}) to an enterprise on a credit list",
        grant.kind.describe(),
        grant.licence_kind
    );
    let mut description = format!(
        "{} {} of kind {} (number {:?}) granted by {} (competent department {}) at {} to {} {}, whose active \
         credit listings forbid it: ",
        grant.kind.describe(),
        grant.event_id,
        grant.licence_kind,
        grant.number,
        grant.department,
        grant.competent_department,
        rfc3339(grant.time),
        grant.holder,
        grant.holder_name,
    );
    let details: Vec<String> = conflict
        .listings
        .iter()
        .zip(&lists)
        .map(|(l, name)| format!("{name}: measures {}", l.measures.join(", ")))
        .collect();
    description.push_str(&details.join("; "));
    description
        .push_str(". The granting department reviews the grant; emergency management is informed.");
    let description: String = description.chars().take(4000).collect();
    let mut related = vec![grant.event_id.clone()];
    related.extend(conflict.listings.iter().map(|l| l.event_id.clone()));
    related.truncate(100);
    let level = if conflict.severe {
        v1::WarningLevel::Red
    } else {
        v1::WarningLevel::Orange
    };
    let payload = v1::event::Payload::WarningRaised(v1::WarningRaised {
        warning_id: id.clone(),
        level: level as i32,
        rule_id: "credit.conflict".to_owned(),
        title: title.chars().take(200).collect(),
        description,
        addressed_to: conflict
            .addressed_to
            .iter()
            .map(|d| v1::Department::from(*d) as i32)
            .collect(),
        enterprise: Some(v1::EnterpriseRef {
            uscc: grant.holder.as_str().to_owned(),
            name: grant.holder_name.clone(),
        }),
        related_event_ids: related,
        raised_at: Some(timestamp(raised_at)),
        acknowledge_by: Some(timestamp(
            raised_at + TimeDelta::hours(i64::from(acknowledge_hours)),
        )),
    });
    let mut event = hazchem_proto::build_event(
        id,
        format!("/services/{SERVICE_NAME}"),
        None,
        timestamp(raised_at),
        payload,
    );
    event.subject = grant.holder.as_str().to_owned();
    event.causation_id = grant.event_id.clone();
    event
}
