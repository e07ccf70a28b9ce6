//! The lifecycle: acknowledgement only by addressed departments (precise statuses otherwise), escalation
//! when the clock passes the deadline, closing, the credit service's warnings tracked alike, and the same
//! warnings after the store is deleted and rebuilt from the stream.

mod common;

use std::collections::HashMap;

use chrono::TimeDelta;
use common::*;
use hazchem_domain::Department;
use hazchem_proto::v1;
use hazchem_proto::v1::event::Payload as P;
use hazchem_warning::{Level, State, status};
use tonic::Code;
use tonic_types::StatusExt as _;

/// A highly toxic sale without a permit: a warning addressed to psb and emergency (orange).
async fn toxic_warning(h: &mut Harness, buyer: &str) -> String {
    let at = h.now();
    let e = h.event("sale_recorded", |e| {
        let Some(P::SaleRecorded(s)) = &mut e.payload else {
            unreachable!()
        };
        s.buyer = enterprise(buyer, "买方");
        s.chemical.as_mut().unwrap().cas = HCN.into();
        s.chemical.as_mut().unwrap().un_number = String::new();
        s.sold_at = ts(at);
    });
    h.publish(&e).await;
    h.settle().await;
    let raised = h.raised("sale.highly_toxic_without_permit").await;
    raised
        .iter()
        .find(|r| r.enterprise.as_ref().unwrap().uscc == buyer)
        .unwrap()
        .warning_id
        .clone()
}

fn info(status: &tonic::Status) -> (String, HashMap<String, String>) {
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    (info.reason.clone(), info.metadata.clone())
}

#[tokio::test]
async fn only_addressed_departments_acknowledge_and_close_with_precise_refusals() {
    let mut h = Harness::new().await;
    let service = h.start().await;
    let id = toxic_warning(&mut h, &uscc(41)).await;
    let w = service.warning(&id).unwrap();
    assert_eq!(w.state(), State::Open);
    assert_eq!(
        w.may_acknowledge(),
        [Department::Psb, Department::Emergency]
    );

    // Not addressed: refused, naming who may act.
    let error = service
        .acknowledge(Department::Fire, &id, "seen".into())
        .await
        .unwrap_err();
    let s = status(error);
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    let (reason, meta) = info(&s);
    assert_eq!(reason, "WARNING_NOT_ADDRESSED");
    assert_eq!(meta["warning_id"], id);
    assert_eq!(meta["department"], "fire");
    assert_eq!(meta["addressed_to"], "psb,emergency");
    // Unknown: NOT_FOUND on the field.
    let s = status(
        service
            .acknowledge(Department::Psb, "wrn-nope", String::new())
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code(), Code::NotFound);
    assert_eq!(info(&s).0, "WARNING_NOT_FOUND");
    let bad = s.get_error_details();
    assert_eq!(
        bad.bad_request().unwrap().field_violations[0].field,
        "warning_id"
    );
    // Nothing was published by the refusals.
    assert!(h.events("warning_acknowledged").await.is_empty());

    // psb acknowledges: still awaiting emergency.
    let w = service
        .acknowledge(Department::Psb, &id, "已核查".into())
        .await
        .unwrap();
    assert_eq!(w.state(), State::Open);
    assert_eq!(w.awaiting(), [Department::Emergency]);
    let acks = h.events("warning_acknowledged").await;
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].0, "warning", "published by the service");
    assert_eq!(acks[0].1.id, hazchem_warning::ack_id(&id, Department::Psb));
    // Twice: FAILED_PRECONDITION.
    let s = status(
        service
            .acknowledge(Department::Psb, &id, String::new())
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert_eq!(info(&s).0, "WARNING_ALREADY_ACKNOWLEDGED");
    let w = service
        .acknowledge(Department::Emergency, &id, String::new())
        .await
        .unwrap();
    assert_eq!(w.state(), State::Acknowledged);

    // Closing: refused to a department not addressed; done by an addressed one; then nothing more.
    let s = status(
        service
            .close(Department::Transport, &id, "不相关".into())
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code(), Code::PermissionDenied);
    let w = service
        .close(Department::Psb, &id, "已立案调查".into())
        .await
        .unwrap();
    assert_eq!(w.state(), State::Closed);
    assert_eq!(w.closed.as_ref().unwrap().by, Some(Department::Psb));
    let s = status(
        service
            .acknowledge(Department::Emergency, &id, String::new())
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert_eq!(info(&s).0, "WARNING_CLOSED");
    let history: Vec<String> = service
        .warning(&id)
        .unwrap()
        .history
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        history,
        [
            "warning_raised",
            "warning_acknowledged",
            "warning_acknowledged",
            "warning_closed"
        ]
    );
    h.stop().await;
}

#[tokio::test]
async fn an_unacknowledged_warning_escalates_when_the_clock_passes_its_deadline() {
    let mut h = Harness::new().await;
    let service = h.start().await;
    let id = toxic_warning(&mut h, &uscc(51)).await;
    // Orange: 60 minutes to acknowledge. At 59 nothing is due.
    h.advance(TimeDelta::minutes(59));
    assert_eq!(service.raise_escalations().await.unwrap(), 0);
    service
        .acknowledge(Department::Psb, &id, String::new())
        .await
        .unwrap();
    // Past the deadline with emergency not acknowledging: one escalation, to red, wider audience.
    h.advance(TimeDelta::minutes(2));
    assert_eq!(service.raise_escalations().await.unwrap(), 1);
    let w = service.warning(&id).unwrap();
    assert_eq!(w.level, Level::Red);
    assert_eq!(w.state(), State::Escalated);
    assert_eq!(w.escalations, 1);
    assert_eq!(w.acknowledge_by, Some(h.now() + TimeDelta::minutes(30)));
    let escalated = h.events("warning_escalated").await;
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0].1.id, hazchem_warning::escalation_id(&id, 1));
    assert_eq!(service.raise_escalations().await.unwrap(), 0, "once");
    // At red, escalated once already: the next deadline passes without another.
    h.advance(TimeDelta::minutes(31));
    assert_eq!(service.raise_escalations().await.unwrap(), 0);
    assert!(w.overdue(h.now()));
    // Acknowledged by every addressed department: no longer overdue.
    let w = service
        .acknowledge(Department::Emergency, &id, String::new())
        .await
        .unwrap();
    assert_eq!(w.state(), State::Acknowledged);
    assert!(!w.overdue(h.now()));

    // A yellow gas warning escalates to orange and is addressed also to fire (its path) .
    let at = h.now();
    let e = h.event("sensor_readings_recorded", |e| {
        let Some(P::SensorReadingsRecorded(r)) = &mut e.payload else {
            unreachable!()
        };
        r.enterprise = enterprise(&uscc(52), "示例化工");
        r.readings = vec![v1::SensorReading {
            sensor_id: "GT-9".into(),
            kind: v1::SensorKind::FlammableGas as i32,
            value: 30.0,
            measured_at: ts(at),
        }];
    });
    h.publish(&e).await;
    h.settle().await;
    let gas = h.raised("gas.flammable.level1").await;
    h.advance(TimeDelta::minutes(241));
    assert_eq!(service.raise_escalations().await.unwrap(), 1);
    let w = service.warning(&gas[0].warning_id).unwrap();
    assert_eq!(w.level, Level::Orange);
    assert_eq!(w.addressed, [Department::Emergency, Department::Fire]);
    h.stop().await;
}

#[tokio::test]
async fn the_credit_services_warnings_are_acknowledged_through_this_service() {
    let mut h = Harness::new().await;
    let service = h.start().await;
    let at = h.now();
    let mut event = h.event("warning_raised", |e| {
        let Some(P::WarningRaised(r)) = &mut e.payload else {
            unreachable!()
        };
        r.warning_id = "credit-conflict-test-1".into();
        r.rule_id = "credit.conflict".into();
        r.raised_at = ts(at);
        r.acknowledge_by = ts(at + TimeDelta::hours(24));
        r.addressed_to = vec![dept(Department::Emergency), dept(Department::Samr)];
    });
    event.id = "credit-conflict-test-1".into();
    event.source = "/services/credit".into();
    h.sink("credit").publish(&event).await.unwrap();
    h.settle().await;
    let w = service.warning("credit-conflict-test-1").unwrap();
    assert_eq!(w.raised_by, "credit");
    assert_eq!(w.state(), State::Open);
    let w = service
        .acknowledge(Department::Samr, &w.id, String::new())
        .await
        .unwrap();
    assert_eq!(w.awaiting(), [Department::Emergency]);
    let w = service
        .close(Department::Emergency, &w.id, "授予已撤销".into())
        .await
        .unwrap();
    assert_eq!(w.state(), State::Closed);
    h.stop().await;
}

#[tokio::test]
async fn a_deleted_store_is_rebuilt_from_the_stream_with_identical_warnings() {
    let mut h = Harness::new().await;
    let service = h.start().await;
    let first = toxic_warning(&mut h, &uscc(61)).await;
    let _second = toxic_warning(&mut h, &uscc(62)).await;
    service
        .acknowledge(Department::Psb, &first, "ok".into())
        .await
        .unwrap();
    for (i, v) in [30.0, 55.0, 10.0].into_iter().enumerate() {
        h.advance(TimeDelta::seconds(10));
        let at = h.now();
        let e = h.event("sensor_readings_recorded", |e| {
            let Some(P::SensorReadingsRecorded(r)) = &mut e.payload else {
                unreachable!()
            };
            r.enterprise = enterprise(&uscc(63), "示例化工");
            r.readings = vec![v1::SensorReading {
                sensor_id: format!("GT-{}", i / 10),
                kind: v1::SensorKind::FlammableGas as i32,
                value: v,
                measured_at: ts(at),
            }];
        });
        h.publish(&e).await;
    }
    h.settle().await;
    h.advance(TimeDelta::minutes(61));
    assert!(service.raise_escalations().await.unwrap() >= 1);
    h.settle().await;
    let before: Vec<_> = service
        .warnings(
            &hazchem_pki::Principal::Auditor("a".into()),
            &hazchem_warning::WarningQuery {
                limit: 1000,
                ..Default::default()
            },
        )
        .0;
    assert!(before.len() >= 4, "{}", before.len());
    let events_before = h.bus.last_sequence().await.unwrap();
    h.stop().await;

    std::fs::remove_dir_all(h.store_dir()).unwrap();
    let service = h.start().await;
    h.settle().await;
    let after = service
        .warnings(
            &hazchem_pki::Principal::Auditor("a".into()),
            &hazchem_warning::WarningQuery {
                limit: 1000,
                ..Default::default()
            },
        )
        .0;
    assert_eq!(after, before);
    assert_eq!(
        h.bus.last_sequence().await.unwrap(),
        events_before,
        "the rebuild re-derived only duplicates"
    );
    h.stop().await;
}
