//! The guard on credit decisions, through the gateway's publishing core: every bad decision is refused with
//! a precise status and appends nothing; good ones and retries go through.

#![allow(clippy::disallowed_methods)] // tests: the scenario is dated from wall time, as the gateway it publishes through

mod common;

use chrono::{TimeDelta, Utc};
use common::Harness;
use hazchem_credit::fixtures::{self, uscc};
use hazchem_credit::registry::add_months;
use hazchem_domain::Department;
use hazchem_proto::v1;
use tonic::Code;
use tonic_types::StatusExt;

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn bad_credit_decisions_are_refused_precisely_and_append_nothing() {
    let mut h = Harness::new().await;
    h.start_credit().await;
    let e1 = uscc(1);
    let listed_at = Utc::now() - TimeDelta::days(400);
    h.publish(
        Department::Emergency,
        &fixtures::penalty("pen-1", Department::Emergency, "P-1", &e1, listed_at),
    )
    .await
    .unwrap();
    let listing = fixtures::listing(
        "lst-1",
        Department::Emergency,
        "CL-1",
        &e1,
        v1::ListType::SeriousDishonest,
        "P-1",
        fixtures::usual_measures(),
        listed_at,
    );
    let first = h.publish(Department::Emergency, &listing).await.unwrap();
    assert!(!first.duplicate);
    h.settle().await;
    let before = h.bus.last_sequence().await.unwrap();
    let now = Utc::now();
    let answer = h.credit().check(&e1, Department::Emergency, now);
    assert_eq!(answer.active.len(), 1);

    // A repair of a listing that does not exist.
    let s = h
        .publish(
            Department::Emergency,
            &fixtures::repair("rep-404", Department::Emergency, "CL-404", &e1, now),
        )
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    assert_eq!(reason(&s), "LISTING_NOT_FOUND");
    let info = s.get_error_details().resource_info().cloned().unwrap();
    assert_eq!(
        (info.resource_type.as_str(), info.resource_name.as_str()),
        ("credit_listing", "CL-404")
    );

    // A listing by a department without the authority: transport citing emergency's penalty.
    let s = h
        .publish(
            Department::Transport,
            &fixtures::listing(
                "lst-t",
                Department::Transport,
                "CL-T",
                &e1,
                v1::ListType::JointPunishment,
                "P-1",
                fixtures::usual_measures(),
                listed_at,
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert_eq!(reason(&s), "NOT_SANCTIONING_DEPARTMENT");

    // A measure unknown to the catalogue.
    let mut measures = fixtures::usual_measures();
    measures.push(fixtures::measure("public_flogging", &[]));
    let s = h
        .publish(
            Department::Emergency,
            &fixtures::listing(
                "lst-m",
                Department::Emergency,
                "CL-M",
                &e1,
                v1::ListType::SeriousDishonest,
                "P-1",
                measures,
                listed_at,
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert_eq!(reason(&s), "UNKNOWN_MEASURE");
    let bad = s.get_error_details().bad_request().cloned().unwrap();
    assert_eq!(
        bad.field_violations[0].field,
        "credit_listing_decided.measures[3].code"
    );
    assert_eq!(bad.field_violations[0].reason, "measure.unknown");

    // No legal basis.
    let mut no_basis = fixtures::listing(
        "lst-b",
        Department::Emergency,
        "CL-B",
        &e1,
        v1::ListType::SeriousDishonest,
        "P-1",
        fixtures::usual_measures(),
        listed_at,
    );
    no_basis.legal_basis = None;
    let s = h
        .publish(Department::Emergency, &no_basis)
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(reason(&s), "LEGAL_BASIS_REQUIRED");
    assert_eq!(
        s.get_error_details()
            .bad_request()
            .unwrap()
            .field_violations[0]
            .field,
        "legal_basis"
    );

    // A repair before twelve months.
    let earliest = add_months(listed_at, 12);
    let s = h
        .publish(
            Department::Emergency,
            &fixtures::repair(
                "rep-early",
                Department::Emergency,
                "CL-1",
                &e1,
                earliest - TimeDelta::seconds(1),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert_eq!(reason(&s), "REPAIR_TOO_EARLY");
    let pf = s
        .get_error_details()
        .precondition_failure()
        .cloned()
        .unwrap();
    assert_eq!(pf.violations[0].r#type, "REPAIR_WAITING_PERIOD");
    assert_eq!(pf.violations[0].subject, "credit_listing/CL-1");

    // A repair by another department than the listing's.
    let s = h
        .publish(
            Department::Fire,
            &fixtures::repair("rep-fire", Department::Fire, "CL-1", &e1, earliest),
        )
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    assert_eq!(reason(&s), "NOT_LISTING_DEPARTMENT");

    // A revocation of a repair that was never made.
    let s = h
        .publish(
            Department::Emergency,
            &fixtures::revocation("rev-0", Department::Emergency, "CL-1", &e1, earliest),
        )
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert_eq!(reason(&s), "LISTING_NOT_REPAIRED");

    // Nothing was appended and nothing changed.
    assert_eq!(h.bus.last_sequence().await.unwrap(), before);
    assert_eq!(h.credit().check(&e1, Department::Emergency, now), answer);

    // A retry of the accepted listing is answered as a duplicate, not refused.
    let again = h.publish(Department::Emergency, &listing).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.sequence, first.sequence);

    // The accepted listing's event id on another decision: the guard compares the decision, not only its
    // id, and refuses it naming the id.
    let reused = fixtures::listing(
        "lst-1",
        Department::Emergency,
        "CL-9",
        &e1,
        v1::ListType::SeriousDishonest,
        "P-1",
        fixtures::usual_measures(),
        listed_at,
    );
    let s = h.publish(Department::Emergency, &reused).await.unwrap_err();
    assert_eq!(s.code(), Code::AlreadyExists, "{s:?}");
    assert_eq!(reason(&s), "EVENT_ID_REUSED");
    let bad = s.get_error_details().bad_request().cloned().unwrap();
    assert_eq!(
        (
            bad.field_violations[0].field.as_str(),
            bad.field_violations[0].reason.as_str()
        ),
        ("id", "id.reused")
    );
    // Another department's decision under the same id is its own (ids are scoped by publisher), and is
    // reviewed like any other: without the penalty's authority, transport lists nothing. (The guard's
    // shortcut on the id alone let this one onto the record.)
    let s = h
        .publish(
            Department::Transport,
            &fixtures::listing(
                "lst-1",
                Department::Transport,
                "CL-T2",
                &e1,
                v1::ListType::JointPunishment,
                "P-1",
                fixtures::usual_measures(),
                listed_at,
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert_eq!(reason(&s), "NOT_SANCTIONING_DEPARTMENT");
    assert_eq!(h.bus.last_sequence().await.unwrap(), before);

    // The repair from twelve months on goes through, and the revocation after it.
    h.publish(
        Department::Emergency,
        &fixtures::repair("rep-ok", Department::Emergency, "CL-1", &e1, earliest),
    )
    .await
    .unwrap();
    h.settle().await;
    assert!(
        h.credit()
            .check(&e1, Department::Emergency, Utc::now())
            .active
            .is_empty()
    );
    h.publish(
        Department::Emergency,
        &fixtures::revocation("rev-1", Department::Emergency, "CL-1", &e1, Utc::now()),
    )
    .await
    .unwrap();
    h.settle().await;
    assert_eq!(
        h.credit()
            .check(&e1, Department::Emergency, Utc::now())
            .active
            .len(),
        1
    );
    h.stop_credit().await;
}

#[tokio::test]
async fn the_remote_guard_fails_closed_and_only_departments_decide() {
    use hazchem_kit::EventGuard as _;
    let pki = common::pki();
    let gateway = hazchem_pki::Principal::service("gateway").unwrap();
    let (cert, key) = if pki.cert_path(&gateway).exists() {
        (pki.cert_path(&gateway), pki.key_path(&gateway))
    } else {
        pki.issue_client(&gateway).unwrap()
    };
    // Nothing listens on port 1: the credit service is unreachable.
    let guard = hazchem_credit::RemoteCreditGuard::connect(&hazchem_credit::RemoteGuardConfig {
        endpoint: "https://127.0.0.1:1".into(),
        ca: pki.ca_cert_path(),
        cert,
        key,
        timeout: std::time::Duration::from_secs(2),
    })
    .unwrap();
    let event = fixtures::repair("rep-x", Department::Emergency, "CL-1", &uscc(1), Utc::now());
    let s = guard
        .review(
            &hazchem_pki::Principal::Department(Department::Emergency),
            &event,
            0,
        )
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    let s = guard
        .review(
            &hazchem_pki::Principal::service("warning").unwrap(),
            &event,
            0,
        )
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    assert_eq!(reason(&s), "NOT_A_DEPARTMENT");
}
