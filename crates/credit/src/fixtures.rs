//! Builders of the events the credit service reads, for tests, benchmarks and simulators: penalties,
//! listings, repairs, revocations and licence grants, valid under the contract's field rules, and signed
//! publish requests. Not used by the service itself.

use chrono::{DateTime, TimeDelta, Utc};
use hazchem_domain::{Department, Uscc};
use hazchem_pki::SigningKey;
use hazchem_proto::v1;
use prost::Message as _;

use hazchem_proto::time::timestamp;

/// A valid USCC made from a number (the same number gives the same code).
#[must_use]
pub fn uscc(n: u64) -> Uscc {
    Uscc::with_check(&format!("9132060{:010}", n % 10_000_000_000))
        .expect("digits are valid USCC characters")
}

/// The legal basis of credit decisions: 应急管理部令第11号.
#[must_use]
pub fn legal_basis() -> v1::LegalBasis {
    v1::LegalBasis {
        instrument: "《安全生产严重失信主体名单管理办法》(应急管理部令第11号)".to_owned(),
        article: "第六条".to_owned(),
        version: "2023-08-08".to_owned(),
    }
}

fn source(department: Department) -> String {
    format!("/departments/{}/credit", department.code())
}

fn enterprise(u: &Uscc) -> v1::EnterpriseRef {
    v1::EnterpriseRef {
        uscc: u.as_str().to_owned(),
        name: format!("测试化工有限公司 {}", &u.as_str()[8..17]),
    }
}

fn event(
    id: &str,
    department: Department,
    time: DateTime<Utc>,
    subject: &Uscc,
    payload: v1::event::Payload,
) -> v1::Event {
    let mut e = hazchem_proto::build_event(
        id,
        source(department),
        Some(v1::Department::from(department)),
        timestamp(time),
        payload,
    );
    e.subject = subject.as_str().to_owned();
    e.legal_basis = Some(legal_basis());
    e
}

/// `penalty_decided` by `department` against `enterprise`.
#[must_use]
pub fn penalty(
    id: &str,
    department: Department,
    number: &str,
    enterprise_: &Uscc,
    at: DateTime<Utc>,
) -> v1::Event {
    event(
        id,
        department,
        at,
        enterprise_,
        v1::event::Payload::PenaltyDecided(v1::PenaltyDecided {
            decision_number: number.to_owned(),
            enterprise: Some(enterprise(enterprise_)),
            reason: "未按规定落实安全生产主体责任".to_owned(),
            fine_yuan: 50_000.0,
            task_id: String::new(),
            decided_at: Some(timestamp(at)),
        }),
    )
}

/// A measure: code and the departments it binds (empty: all).
#[must_use]
pub fn measure(code: &str, applies_to: &[Department]) -> v1::Measure {
    v1::Measure {
        code: code.to_owned(),
        applies_to: applies_to
            .iter()
            .map(|d| v1::Department::from(*d) as i32)
            .collect(),
        description: String::new(),
    }
}

/// The usual measures of a serious-dishonest listing: stricter inspection by everyone, licence restriction
/// by emergency management and the approval office, a procurement ban.
#[must_use]
pub fn usual_measures() -> Vec<v1::Measure> {
    vec![
        measure("stricter_inspection", &[]),
        measure(
            "licence_restriction",
            &[Department::Emergency, Department::Approval],
        ),
        measure("procurement_ban", &[]),
    ]
}

/// `credit_listing_decided`.
#[must_use]
#[allow(clippy::too_many_arguments)]
pub fn listing(
    id: &str,
    department: Department,
    listing_id: &str,
    enterprise_: &Uscc,
    list_type: v1::ListType,
    penalty_number: &str,
    measures: Vec<v1::Measure>,
    listed_at: DateTime<Utc>,
) -> v1::Event {
    event(
        id,
        department,
        listed_at,
        enterprise_,
        v1::event::Payload::CreditListingDecided(v1::CreditListingDecided {
            listing_id: listing_id.to_owned(),
            enterprise: Some(enterprise(enterprise_)),
            list_type: list_type as i32,
            reason: "受到行政处罚，情节严重".to_owned(),
            penalty_decision_number: penalty_number.to_owned(),
            measures,
            listed_at: Some(timestamp(listed_at)),
        }),
    )
}

/// `credit_repair_decided`.
#[must_use]
pub fn repair(
    id: &str,
    department: Department,
    listing_id: &str,
    subject: &Uscc,
    at: DateTime<Utc>,
) -> v1::Event {
    event(
        id,
        department,
        at,
        subject,
        v1::event::Payload::CreditRepairDecided(v1::CreditRepairDecided {
            listing_id: listing_id.to_owned(),
            reason: "已完成整改，经核查符合信用修复条件".to_owned(),
            repaired_at: Some(timestamp(at)),
        }),
    )
}

/// `credit_repair_revoked`.
#[must_use]
pub fn revocation(
    id: &str,
    department: Department,
    listing_id: &str,
    subject: &Uscc,
    at: DateTime<Utc>,
) -> v1::Event {
    event(
        id,
        department,
        at,
        subject,
        v1::event::Payload::CreditRepairRevoked(v1::CreditRepairRevoked {
            listing_id: listing_id.to_owned(),
            reason: "信用修复材料系伪造，撤销修复决定".to_owned(),
            revoked_at: Some(timestamp(at)),
        }),
    )
}

/// `licence_issued` by `department` (also the competent department) of `kind` to `holder`.
#[must_use]
pub fn licence_issued(
    id: &str,
    department: Department,
    kind: v1::LicenceKind,
    holder: &Uscc,
    at: DateTime<Utc>,
) -> v1::Event {
    let mut e = event(
        id,
        department,
        at,
        holder,
        v1::event::Payload::LicenceIssued(v1::LicenceIssued {
            licence: Some(v1::Licence {
                licence_number: format!("LIC-{id}"),
                kind: kind as i32,
                holder: Some(enterprise(holder)),
                competent_department: v1::Department::from(department) as i32,
                scope: vec![],
                chemicals: vec![],
                validity: Some(v1::Validity {
                    valid_from: Some(timestamp(at)),
                    valid_until: Some(timestamp(at + TimeDelta::days(3 * 365))),
                }),
                practitioner: None,
                vehicle: None,
            }),
        }),
    );
    e.legal_basis = Some(v1::LegalBasis {
        instrument: "《安全生产许可证条例》".to_owned(),
        article: "第二条".to_owned(),
        version: "2014-07-29".to_owned(),
    });
    e
}

/// A publish request for `event`, signed with `key` when given (key id: the key's, `<code>+<hex>`).
#[must_use]
pub fn signed(event: &v1::Event, key: Option<(&SigningKey, Department)>) -> v1::SignedEvent {
    let bytes = event.encode_to_vec();
    let signature = key.map(|(k, d)| v1::OriginSignature {
        key_id: k.origin_key_id(d),
        signature: k.sign(&bytes).to_vec(),
    });
    v1::SignedEvent {
        event: bytes,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usccs_are_valid_and_distinct() {
        assert_ne!(uscc(1), uscc(2));
        assert_eq!(uscc(99_999), uscc(99_999));
        assert_eq!(uscc(7).as_str().len(), 18);
    }
}
