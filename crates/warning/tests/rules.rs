//! Each rule fires exactly once on its condition, not on the compliant twin, and its warning is closed by
//! the rule when the condition clears. Real embedded bus, real gateway publishing core.

mod common;

use chrono::TimeDelta;
use common::*;
use hazchem_domain::Department;
use hazchem_proto::v1;
use hazchem_proto::v1::event::Payload as P;
use hazchem_warning::State;

fn readings(
    h: &mut Harness,
    uscc: &str,
    sensor: &str,
    kind: v1::SensorKind,
    value: f64,
) -> v1::Event {
    let at = h.now();
    h.event("sensor_readings_recorded", |e| {
        let Some(P::SensorReadingsRecorded(r)) = &mut e.payload else {
            unreachable!()
        };
        r.enterprise = enterprise(uscc, "示例化工");
        r.readings = vec![v1::SensorReading {
            sensor_id: sensor.into(),
            kind: kind as i32,
            value,
            measured_at: ts(at),
        }];
    })
}

#[tokio::test]
async fn gas_set_points_raise_once_with_hysteresis_and_clear_below_the_margin() {
    let mut h = Harness::new().await;
    h.start().await;
    let site = uscc(1);
    let twin = uscc(2);
    // The compliant twin: readings below every set point.
    for v in [3.0, 12.0, 24.9] {
        let e = readings(&mut h, &twin, "GT-1", v1::SensorKind::FlammableGas, v);
        h.publish(&e).await;
    }
    // At the set point, hovering around it: one warning.
    for v in [25.0, 24.0, 26.0, 25.1, 21.0] {
        h.advance(TimeDelta::seconds(10));
        let e = readings(&mut h, &site, "GT-1", v1::SensorKind::FlammableGas, v);
        h.publish(&e).await;
    }
    h.settle().await;
    let raised = h.raised("gas.flammable.level1").await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].enterprise.as_ref().unwrap().uscc, site);
    assert_eq!(raised[0].level, v1::WarningLevel::Yellow as i32);
    assert!(h.raised("gas.flammable.level2").await.is_empty());
    let id = raised[0].warning_id.clone();
    assert!(h.closed(&id).await.is_empty(), "21 is not below 25 - 5");
    assert_eq!(h.service().warning(&id).unwrap().state(), State::Open);

    // Below the set point minus the margin: the rule closes it.
    let e = readings(&mut h, &site, "GT-1", v1::SensorKind::FlammableGas, 19.9);
    h.publish(&e).await;
    h.settle().await;
    let closed = h.closed(&id).await;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].closed_by, 0, "closed by the rule");
    assert_eq!(closed[0].cleared_by_event_id, e.id);
    let w = h.service().warning(&id).unwrap();
    assert_eq!(w.state(), State::Closed);
    assert!(w.closed.unwrap().by.is_none());

    // Oxygen: below 19.5 raises (orange); 19.8 is still within the margin; 20.1 clears.
    for v in [20.9, 19.4, 19.3, 19.8, 20.1] {
        let e = readings(&mut h, &site, "O2-1", v1::SensorKind::Oxygen, v);
        h.publish(&e).await;
    }
    for v in [20.9, 21.0] {
        let e = readings(&mut h, &twin, "O2-1", v1::SensorKind::Oxygen, v);
        h.publish(&e).await;
    }
    h.settle().await;
    let low = h.raised("gas.oxygen.low").await;
    assert_eq!(low.len(), 1);
    assert_eq!(low[0].enterprise.as_ref().unwrap().uscc, site);
    assert_eq!(h.closed(&low[0].warning_id).await.len(), 1);
    assert!(h.raised("gas.oxygen.high").await.is_empty());

    // Toxic gas at 210 %OEL: level 1 and level 2 each once.
    for v in [210.0, 205.0] {
        let e = readings(&mut h, &site, "GT-CL2", v1::SensorKind::ToxicGas, v);
        h.publish(&e).await;
    }
    h.settle().await;
    assert_eq!(h.raised("gas.toxic.level1").await.len(), 1);
    let l2 = h.raised("gas.toxic.level2").await;
    assert_eq!(l2.len(), 1);
    assert_eq!(l2[0].level, v1::WarningLevel::Orange as i32);
    h.stop().await;
}

fn alarm(h: &mut Harness, uscc: &str, alarm_id: &str) -> v1::Event {
    let at = h.now();
    h.event("sensor_alarm_raised", |e| {
        let Some(P::SensorAlarmRaised(a)) = &mut e.payload else {
            unreachable!()
        };
        a.enterprise = enterprise(uscc, "示例化工");
        a.alarm_id = alarm_id.into();
        a.raised_at = ts(at);
    })
}

fn cleared(h: &mut Harness, uscc: &str, alarm_id: &str) -> v1::Event {
    let at = h.now();
    h.event("sensor_alarm_cleared", |e| {
        let Some(P::SensorAlarmCleared(c)) = &mut e.payload else {
            unreachable!()
        };
        c.enterprise = enterprise(uscc, "示例化工");
        c.alarm_id = alarm_id.into();
        c.cleared_at = ts(at);
    })
}

#[tokio::test]
async fn an_alarm_storm_raises_once_and_clears_when_its_alarms_clear() {
    let mut h = Harness::new().await;
    h.start().await;
    let site = uscc(11);
    let twin = uscc(12);
    // The twin: five alarms, a minute apart (never five within two minutes).
    for i in 0..5 {
        h.advance(TimeDelta::seconds(60));
        let e = alarm(&mut h, &twin, &format!("B-{i}"));
        h.publish(&e).await;
    }
    // The storm: seven alarms five seconds apart.
    for i in 0..7 {
        h.advance(TimeDelta::seconds(5));
        let e = alarm(&mut h, &site, &format!("A-{i}"));
        h.publish(&e).await;
    }
    h.settle().await;
    let raised = h.raised("alarm.storm").await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].enterprise.as_ref().unwrap().uscc, site);
    assert_eq!(raised[0].related_event_ids.len(), 5);
    assert_eq!(
        raised[0].addressed_to,
        vec![dept(Department::Emergency), dept(Department::Fire)]
    );
    let id = raised[0].warning_id.clone();
    // Six of seven cleared: still open; the seventh closes it.
    for i in 0..6 {
        let e = cleared(&mut h, &site, &format!("A-{i}"));
        h.publish(&e).await;
    }
    h.settle().await;
    assert!(h.closed(&id).await.is_empty());
    let e = cleared(&mut h, &site, "A-6");
    h.publish(&e).await;
    h.settle().await;
    assert_eq!(h.closed(&id).await.len(), 1);
    assert_eq!(h.service().warning(&id).unwrap().state(), State::Closed);
    h.stop().await;
}

fn sale(h: &mut Harness, buyer: &str, cas: &str) -> v1::Event {
    let at = h.now();
    h.event("sale_recorded", |e| {
        let Some(P::SaleRecorded(s)) = &mut e.payload else {
            unreachable!()
        };
        s.buyer = enterprise(buyer, "买方");
        s.chemical.as_mut().unwrap().cas = cas.into();
        s.chemical.as_mut().unwrap().un_number = String::new();
        s.sold_at = ts(at);
    })
}

fn permit(h: &mut Harness, buyer: &str, cas: &str, number: &str) -> v1::Event {
    let at = h.now();
    h.event("highly_toxic_purchase_permit_issued", |e| {
        let Some(P::HighlyToxicPurchasePermitIssued(p)) = &mut e.payload else {
            unreachable!()
        };
        p.permit_number = number.into();
        p.purchaser = enterprise(buyer, "买方");
        p.chemical.as_mut().unwrap().cas = cas.into();
        p.chemical.as_mut().unwrap().un_number = String::new();
        p.validity = Some(v1::Validity {
            valid_from: ts(at - TimeDelta::days(1)),
            valid_until: ts(at + TimeDelta::days(90)),
        });
    })
}

#[tokio::test]
async fn a_highly_toxic_sale_without_a_permit_raises_once_and_a_permit_clears_it() {
    let mut h = Harness::new().await;
    h.start().await;
    let permitted = uscc(21);
    let unpermitted = uscc(22);
    let e = permit(&mut h, &permitted, HCN, "GA-2026-001");
    h.publish(&e).await;
    h.advance(TimeDelta::minutes(1));
    // The twin: a permitted buyer; and an ordinary chemical needs no permit.
    let e = sale(&mut h, &permitted, HCN);
    h.publish(&e).await;
    let e = sale(&mut h, &unpermitted, AMMONIA);
    h.publish(&e).await;
    // The violation.
    let violating = sale(&mut h, &unpermitted, HCN);
    h.publish(&violating).await;
    h.settle().await;
    let raised = h.raised("sale.highly_toxic_without_permit").await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].related_event_ids, vec![violating.id.clone()]);
    assert_eq!(raised[0].enterprise.as_ref().unwrap().uscc, unpermitted);
    assert_eq!(
        raised[0].addressed_to,
        vec![dept(Department::Psb), dept(Department::Emergency)]
    );
    let id = raised[0].warning_id.clone();
    // A permit for the buyer and the chemical clears it.
    h.advance(TimeDelta::minutes(1));
    let e = permit(&mut h, &unpermitted, HCN, "GA-2026-002");
    h.publish(&e).await;
    h.settle().await;
    assert_eq!(h.closed(&id).await.len(), 1);
    h.stop().await;
}

fn road_licence(h: &mut Harness, holder: &str, number: &str) -> v1::Event {
    let at = h.now();
    h.event("licence_issued", |e| {
        e.department = dept(Department::Transport);
        e.source = "/departments/transport/licensing".into();
        let Some(P::LicenceIssued(l)) = &mut e.payload else {
            unreachable!()
        };
        let l = l.licence.as_mut().unwrap();
        l.licence_number = number.into();
        l.kind = v1::LicenceKind::RoadTransport as i32;
        l.competent_department = dept(Department::Transport);
        l.holder = enterprise(holder, "承运人");
        l.validity = Some(v1::Validity {
            valid_from: ts(at - TimeDelta::days(1)),
            valid_until: ts(at + TimeDelta::days(365)),
        });
    })
}

fn waybill(h: &mut Harness, carrier: &str, number: &str) -> v1::Event {
    h.event("waybill_issued", |e| {
        let Some(P::WaybillIssued(w)) = &mut e.payload else {
            unreachable!()
        };
        w.waybill_number = number.into();
        w.carrier = enterprise(carrier, "承运人");
    })
}

#[tokio::test]
async fn a_waybill_of_an_unlicensed_carrier_raises_once_and_a_licence_clears_it() {
    let mut h = Harness::new().await;
    h.start().await;
    let licensed = uscc(31);
    let unlicensed = uscc(32);
    let e = road_licence(&mut h, &licensed, "苏交运管许可通字320600300001号");
    h.publish(&e).await;
    h.advance(TimeDelta::minutes(1));
    let e = waybill(&mut h, &licensed, "WB-OK-1");
    h.publish(&e).await;
    let violating = waybill(&mut h, &unlicensed, "WB-BAD-1");
    h.publish(&violating).await;
    h.settle().await;
    let raised = h.raised("transport.unlicensed_carrier").await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].related_event_ids, vec![violating.id.clone()]);
    assert_eq!(raised[0].enterprise.as_ref().unwrap().uscc, unlicensed);
    let id = raised[0].warning_id.clone();
    h.advance(TimeDelta::minutes(1));
    let e = road_licence(&mut h, &unlicensed, "苏交运管许可通字320600300002号");
    h.publish(&e).await;
    h.settle().await;
    assert_eq!(h.closed(&id).await.len(), 1);
    // With its licence on the record, the carrier's next waybill raises nothing.
    let e = waybill(&mut h, &unlicensed, "WB-OK-2");
    h.publish(&e).await;
    h.settle().await;
    assert_eq!(h.raised("transport.unlicensed_carrier").await.len(), 1);
    h.stop().await;
}
