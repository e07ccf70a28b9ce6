//! `Admission::admit`: every event type for its publishers, and each rejection class with exactly the
//! expected field path and rule.

mod common;

use chrono::Duration as ChronoDuration;
use common::*;
use hazchem_admission::{
    Admission, Admitted, DenialReason, Limits, Policy, Rejection, admit::DEFAULT_MAX_EVENT_BYTES,
};
use hazchem_domain::Department;
use hazchem_pki::{KeyRegistry, Principal};
use hazchem_proto::v1;
use prost::Message as _;

fn admit(principal: &Principal, signed: &v1::SignedEvent) -> Result<Admitted, Rejection> {
    admission().admit(principal, signed, now())
}

fn transport() -> Principal {
    dept("transport")
}

fn waybill() -> v1::Event {
    make_event("waybill_issued", Some(Department::Transport))
}

fn waybill_payload(event: &mut v1::Event) -> &mut v1::WaybillIssued {
    match event.payload.as_mut() {
        Some(v1::event::Payload::WaybillIssued(w)) => w,
        _ => panic!("not a waybill"),
    }
}

/// A waybill changed by `change`, rejected as Invalid; the (field, rule) pairs.
fn waybill_violations(change: impl FnOnce(&mut v1::Event)) -> Vec<(String, String)> {
    let mut event = waybill();
    change(&mut event);
    violations(&admit(&transport(), &unsigned(&event)).unwrap_err())
}

fn invalid_only(change: impl FnOnce(&mut v1::Event), expected: &[(&str, &str)]) {
    assert_eq!(waybill_violations(change), pairs(expected));
}

fn denial(rejection: Rejection) -> hazchem_admission::Denial {
    match rejection {
        Rejection::PermissionDenied(d) => d,
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap(),
    }
}

// ---- Every event type ----

#[test]
fn every_event_type_is_admitted_for_exactly_its_departments() {
    let admission = admission();
    let policy = Policy::default_policy();
    let mut admitted = 0;
    for token in tokens() {
        for d in Department::ALL {
            let principal = Principal::Department(d);
            let event = make_event(&token, Some(d));
            let result = admission.admit(&principal, &signed_by(&event, d), now());
            if policy.may_publish(&principal, &token) {
                let a = result.unwrap_or_else(|r| panic!("{} publishing {token}: {r}", d.code()));
                assert_eq!(a.token, token);
                assert_eq!(a.id, format!("ev-{token}"));
                assert_eq!(a.department, Some(d));
                assert_eq!(a.service, None);
                assert!(a.signed);
                assert_eq!(a.event, event);
                admitted += 1;
            } else {
                let denial = denial(result.unwrap_err());
                assert_eq!(denial.reason, DenialReason::PublishNotPermitted, "{token}");
                assert_eq!(denial.metadata["department"], d.code());
                assert_eq!(denial.metadata["event_type"], token);
            }
        }
    }
    assert!(admitted > 60);
}

#[test]
fn every_service_event_type_is_admitted_for_its_service() {
    let admission = admission();
    for (name, tokens) in [
        ("ledger", vec!["checkpoint_published"]),
        ("credit", vec!["credit_listing_expired", "warning_raised"]),
        (
            "warning",
            vec!["warning_raised", "warning_escalated", "warning_closed"],
        ),
        (
            "enforcement",
            vec![
                "task_opened",
                "task_drawn",
                "task_advanced",
                "task_findings_recorded",
                "task_rectification_ordered",
                "task_rechecked",
                "task_penalty_decided",
                "task_case_transferred",
                "task_transfer_answered",
                "task_closed",
                "task_escalated",
            ],
        ),
    ] {
        for token in tokens {
            let a = admission
                .admit(
                    &service(name),
                    &unsigned(&service_event(token, name)),
                    now(),
                )
                .unwrap_or_else(|r| panic!("{name} publishing {token}: {r}"));
            assert_eq!(a.service.as_deref(), Some(name));
            assert_eq!(a.department, None);
            assert!(!a.signed);
        }
    }
}

#[test]
fn admitted_events_carry_what_the_gateway_established() {
    let mut event = waybill();
    event.classification = v1::DataClassification::Restricted as i32;
    event.audience = vec![
        v1::Department::Fire as i32,
        v1::Department::Emergency as i32,
        v1::Department::Fire as i32,
    ];
    let a = admit(&transport(), &unsigned(&event)).unwrap();
    assert_eq!(a.schema, "hazchem.v1.WaybillIssued");
    assert_eq!(a.classification, v1::DataClassification::Restricted);
    assert_eq!(a.audience, [Department::Emergency, Department::Fire]);
    assert_eq!(a.time, now() - ChronoDuration::seconds(60));
    assert_eq!(a.keys.enterprises, [USCC]);
    assert_eq!(a.keys.chemicals, [CAS]);
    assert_eq!(a.keys.batch_codes, [BATCH]);
    assert!(!a.signed);
    // The same keys from stored bytes.
    assert_eq!(
        admission().index_keys(&event.encode_to_vec()).unwrap(),
        a.keys
    );
}

#[test]
fn index_keys_are_collected_everywhere_sorted_and_deduplicated() {
    let mut event = waybill();
    let w = waybill_payload(&mut event);
    w.consignee.as_mut().unwrap().uscc = USCC_2.into();
    let mut line = w.goods[0].clone();
    line.chemical.as_mut().unwrap().cas = "7732-18-5".into();
    line.batch_code = "A-1".into();
    w.goods.push(line.clone());
    w.goods.push(line);
    let a = admit(&transport(), &unsigned(&event)).unwrap();
    assert_eq!(a.keys.enterprises, [USCC, USCC_2]);
    assert_eq!(a.keys.chemicals, ["7664-41-7", "7732-18-5"]);
    assert_eq!(a.keys.batch_codes, ["A-1", BATCH]);
}

// ---- Identifiers ----

#[test]
fn an_invalid_uscc_names_the_field_and_the_check_character() {
    let mut event = waybill();
    waybill_payload(&mut event).carrier.as_mut().unwrap().uscc = "91350100M000100Y4Z".into();
    let rejection = admit(&transport(), &unsigned(&event)).unwrap_err();
    let Rejection::Invalid(v) = &rejection else {
        panic!()
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "waybill_issued.carrier.uscc");
    assert_eq!(v[0].rule, "uscc.check_character");
    assert_eq!(
        v[0].description,
        "USCC \"91350100M000100Y4Z\": wrong check character: expected '3', found 'Z'"
    );
}

#[test]
fn an_invalid_cas_number_deep_in_a_list() {
    let mut event = waybill();
    let w = waybill_payload(&mut event);
    let line = w.goods[0].clone();
    w.goods.push(line.clone());
    w.goods.push(line);
    w.goods[2].chemical.as_mut().unwrap().cas = "7664-41-8".into();
    let got = violations(&admit(&transport(), &unsigned(&event)).unwrap_err());
    assert_eq!(
        got,
        pairs(&[(
            "waybill_issued.goods[2].chemical.cas",
            "cas.check_character"
        )])
    );
    invalid_only(
        |e| waybill_payload(e).goods[0].chemical.as_mut().unwrap().cas = "7664418".into(),
        &[("waybill_issued.goods[0].chemical.cas", "cas.format")],
    );
}

#[test]
fn an_invalid_un_number() {
    invalid_only(
        |e| {
            waybill_payload(e).goods[0]
                .chemical
                .as_mut()
                .unwrap()
                .un_number = "UN105".into()
        },
        &[("waybill_issued.goods[0].chemical.un_number", "un.format")],
    );
    // Optional: empty is not checked.
    let mut event = waybill();
    waybill_payload(&mut event).goods[0]
        .chemical
        .as_mut()
        .unwrap()
        .un_number
        .clear();
    admit(&transport(), &unsigned(&event)).unwrap();
}

#[test]
fn an_invalid_imo_number() {
    let mut event = make_event("ship_declaration_submitted", Some(Department::Msa));
    let Some(v1::event::Payload::ShipDeclarationSubmitted(s)) = event.payload.as_mut() else {
        panic!()
    };
    s.ship.as_mut().unwrap().imo = "8814274".into();
    let got = violations(&admit(&dept("msa"), &unsigned(&event)).unwrap_err());
    assert_eq!(
        got,
        pairs(&[("ship_declaration_submitted.ship.imo", "imo.check_character")])
    );
}

#[test]
fn an_invalid_plate_and_plate_colour() {
    invalid_only(
        |e| waybill_payload(e).tractor.as_mut().unwrap().plate = "XF12345".into(),
        &[("waybill_issued.tractor.plate", "vehicle_plate.charset")],
    );
    invalid_only(
        |e| waybill_payload(e).tractor.as_mut().unwrap().plate = "苏F1234".into(),
        &[("waybill_issued.tractor.plate", "vehicle_plate.length")],
    );
    invalid_only(
        |e| waybill_payload(e).trailer.as_mut().unwrap().plate_colour = 7,
        &[(
            "waybill_issued.trailer.plate_colour",
            "plate_colour.unknown",
        )],
    );
    // A trailer plate is valid with its yellow colour.
    let mut event = waybill();
    waybill_payload(&mut event).trailer.as_mut().unwrap().plate = "苏F1234挂".into();
    admit(&transport(), &unsigned(&event)).unwrap();
}

#[test]
fn invalid_tokens_and_batch_codes() {
    invalid_only(|e| e.id = "ev 1".into(), &[("id", "token.charset")]);
    invalid_only(
        |e| waybill_payload(e).waybill_number = "w".repeat(129),
        &[("waybill_issued.waybill_number", "token.length")],
    );
    invalid_only(
        |e| waybill_payload(e).goods[0].batch_code = "lot 7".into(),
        &[("waybill_issued.goods[0].batch_code", "batch_code.charset")],
    );
    invalid_only(
        |e| e.correlation_id = "a/b".into(),
        &[("correlation_id", "token.charset")],
    );
}

// ---- Required, lengths, bounds ----

#[test]
fn missing_envelope_fields_are_each_required() {
    invalid_only(
        |e| {
            e.spec_version.clear();
            e.id.clear();
            e.source.clear();
            e.r#type.clear();
            e.time = None;
            e.data_content_type.clear();
            e.data_schema.clear();
            e.classification = 0;
        },
        &[
            ("spec_version", "required"),
            ("id", "required"),
            ("source", "required"),
            ("type", "required"),
            ("time", "required"),
            ("data_content_type", "required"),
            ("data_schema", "required"),
            ("classification", "required"),
        ],
    );
}

#[test]
fn missing_payload_fields_are_each_required() {
    invalid_only(
        |e| {
            let w = waybill_payload(e);
            w.shipper = None;
            w.driver.as_mut().unwrap().name.clear();
            w.goods.clear();
            w.tractor.as_mut().unwrap().plate_colour = 0;
        },
        &[
            ("waybill_issued.shipper", "required"),
            ("waybill_issued.tractor.plate_colour", "required"),
            ("waybill_issued.driver.name", "required"),
            ("waybill_issued.goods", "required"),
        ],
    );
    // A required enum names the values it expects.
    let mut event = waybill();
    waybill_payload(&mut event).goods[0]
        .quantity
        .as_mut()
        .unwrap()
        .unit = 0;
    let rejection = admit(&transport(), &unsigned(&event)).unwrap_err();
    let v = &rejection.violations()[0];
    assert_eq!(
        (v.field.as_str(), v.rule.as_str()),
        ("waybill_issued.goods[0].quantity.unit", "required")
    );
    assert!(
        v.description.contains("QUANTITY_UNIT_KILOGRAM"),
        "{}",
        v.description
    );
}

#[test]
fn max_len_counts_characters_and_items() {
    // A source in the publisher's namespace, one character too long.
    let long = format!("/departments/transport/{}", "s".repeat(257 - 23));
    assert_eq!(long.len(), 257);
    invalid_only(|e| e.source = long, &[("source", "max_len")]);
    // 100 Chinese characters are 300 bytes but within max_len 100.
    let mut event = waybill();
    waybill_payload(&mut event).driver.as_mut().unwrap().name = "张".repeat(100);
    admit(&transport(), &unsigned(&event)).unwrap();
    invalid_only(
        |e| waybill_payload(e).driver.as_mut().unwrap().name = "张".repeat(101),
        &[("waybill_issued.driver.name", "max_len")],
    );
    invalid_only(
        |e| {
            let w = waybill_payload(e);
            let line = w.goods[0].clone();
            w.goods = vec![line; 101];
        },
        &[("waybill_issued.goods", "max_len")],
    );
    invalid_only(
        |e| e.audience = vec![v1::Department::Fire as i32; 10],
        &[("audience", "max_len")],
    );
}

#[test]
fn numbers_out_of_bounds() {
    invalid_only(
        |e| {
            waybill_payload(e).goods[0].quantity.as_mut().unwrap().value = -1.0;
        },
        &[("waybill_issued.goods[0].quantity.value", "min")],
    );
    invalid_only(
        |e| {
            let route = waybill_payload(e).route.as_mut().unwrap();
            route
                .origin
                .as_mut()
                .unwrap()
                .point
                .as_mut()
                .unwrap()
                .latitude = 90.5;
            route
                .destination
                .as_mut()
                .unwrap()
                .point
                .as_mut()
                .unwrap()
                .longitude = -181.0;
        },
        &[
            ("waybill_issued.route.origin.point.latitude", "max"),
            ("waybill_issued.route.destination.point.longitude", "min"),
        ],
    );
    invalid_only(
        |e| {
            waybill_payload(e).goods[0].quantity.as_mut().unwrap().value = f64::NAN;
        },
        &[("waybill_issued.goods[0].quantity.value", "finite")],
    );
    // Bounds are inclusive.
    let mut event = waybill();
    waybill_payload(&mut event)
        .route
        .as_mut()
        .unwrap()
        .origin
        .as_mut()
        .unwrap()
        .point
        .as_mut()
        .unwrap()
        .latitude = 90.0;
    admit(&transport(), &unsigned(&event)).unwrap();
}

// ---- Time ----

#[test]
fn future_timestamps_beyond_the_skew_are_rejected_within_it_accepted() {
    for (ahead, ok) in [
        (0, true),
        (240, true),
        (300, true),
        (301, false),
        (600, false),
    ] {
        let mut event = waybill();
        event.time = Some(timestamp(now() + ChronoDuration::seconds(ahead)));
        let result = admit(&transport(), &unsigned(&event));
        if ok {
            result.unwrap_or_else(|r| panic!("{ahead} s ahead: {r}"));
        } else {
            let rejection = result.unwrap_err();
            assert_eq!(violations(&rejection), pairs(&[("time", "not_future")]));
            assert!(
                rejection.violations()[0]
                    .description
                    .contains("300 s of skew")
            );
        }
    }
    // The skew is configurable.
    let strict = admission_with(Limits {
        max_clock_skew: std::time::Duration::from_secs(10),
        ..Limits::default()
    });
    let mut event = waybill();
    event.time = Some(timestamp(now() + ChronoDuration::seconds(60)));
    assert!(
        strict
            .admit(&transport(), &unsigned(&event), now())
            .is_err()
    );
    // Payload timestamps too; a planned departure in the future is fine (no not_future rule).
    let mut trip = make_event("trip_started", Some(Department::Transport));
    let Some(v1::event::Payload::TripStarted(t)) = trip.payload.as_mut() else {
        panic!()
    };
    t.started_at = Some(timestamp(now() + ChronoDuration::hours(1)));
    assert_eq!(
        violations(&admit(&transport(), &unsigned(&trip)).unwrap_err()),
        pairs(&[("trip_started.started_at", "not_future")])
    );
    let mut event = waybill();
    waybill_payload(&mut event)
        .route
        .as_mut()
        .unwrap()
        .planned_departure = Some(timestamp(now() + ChronoDuration::days(2)));
    admit(&transport(), &unsigned(&event)).unwrap();
}

#[test]
fn timestamps_out_of_range() {
    invalid_only(
        |e| e.time.as_mut().unwrap().nanos = -1,
        &[("time", "timestamp.range")],
    );
    invalid_only(
        |e| e.time.as_mut().unwrap().seconds = 253_402_300_800,
        &[("time", "timestamp.range")],
    );
}

// ---- Well-formedness beyond the declared rules ----

#[test]
fn undefined_enum_numbers() {
    invalid_only(
        |e| e.classification = 99,
        &[("classification", "enum.undefined")],
    );
    invalid_only(
        |e| waybill_payload(e).goods[0].packing_group = 9,
        &[("waybill_issued.goods[0].packing_group", "enum.undefined")],
    );
    invalid_only(
        |e| e.audience = vec![v1::Department::Fire as i32, 42],
        &[("audience[1]", "enum.undefined")],
    );
    invalid_only(
        |e| e.audience = vec![0],
        &[("audience[0]", "envelope.audience")],
    );
}

#[test]
fn control_characters_are_rejected_but_line_breaks_allowed_in_text() {
    invalid_only(
        |e| waybill_payload(e).driver.as_mut().unwrap().name = "张\u{7}三".into(),
        &[("waybill_issued.driver.name", "control_character")],
    );
    invalid_only(
        |e| e.subject = "a\r\nb".into(),
        &[("subject", "control_character")],
    );
    let mut event = waybill();
    event.subject = "line one\nline two\twith a tab".into();
    admit(&transport(), &unsigned(&event)).unwrap();
}

#[test]
fn unknown_fields_are_rejected() {
    let mut bytes = waybill().encode_to_vec();
    bytes.extend([0x98, 0x06, 0x01]); // field 99, varint 1
    let rejection = admit(
        &transport(),
        &v1::SignedEvent {
            event: bytes,
            signature: None,
        },
    )
    .unwrap_err();
    assert_eq!(violations(&rejection), pairs(&[("#99", "unknown_field")]));
}

// ---- Structure: bytes, decoding, payload ----

#[test]
fn empty_and_undecodable_bytes() {
    let empty = admit(&transport(), &v1::SignedEvent::default()).unwrap_err();
    assert_eq!(violations(&empty), pairs(&[("event", "required")]));
    let garbage = v1::SignedEvent {
        event: vec![0xff, 0xff, 0xff],
        signature: None,
    };
    assert_eq!(
        violations(&admit(&transport(), &garbage).unwrap_err()),
        pairs(&[("event", "decode")])
    );
    // Invalid UTF-8 in a string field is a decode error.
    let bad_utf8 = v1::SignedEvent {
        event: vec![0x12, 0x02, 0xc3, 0x28],
        signature: None,
    };
    assert_eq!(
        violations(&admit(&transport(), &bad_utf8).unwrap_err()),
        pairs(&[("event", "decode")])
    );
}

#[test]
fn exactly_one_payload() {
    let mut event = waybill();
    event.payload = None;
    assert_eq!(
        violations(&admit(&transport(), &unsigned(&event)).unwrap_err()),
        pairs(&[("payload", "required")])
    );
    // Two payload fields in one encoding: protobuf keeps the last, the gateway refuses both.
    let mut bytes = waybill().encode_to_vec();
    let second = v1::Event {
        payload: make_event("trip_started", Some(Department::Transport)).payload,
        ..Default::default()
    };
    bytes.extend(second.encode_to_vec());
    let rejection = admit(
        &transport(),
        &v1::SignedEvent {
            event: bytes,
            signature: None,
        },
    )
    .unwrap_err();
    assert_eq!(
        violations(&rejection),
        pairs(&[("payload", "payload.multiple")])
    );
    assert!(
        rejection
            .to_string()
            .contains("waybill_issued, trip_started")
    );
}

#[test]
fn attributes_must_agree_with_the_payload() {
    invalid_only(
        |e| e.r#type = "cn.hazchem.v1.trip_started".into(),
        &[("type", "envelope.type")],
    );
    invalid_only(
        |e| e.data_schema = "hazchem.v1.TripStarted".into(),
        &[("data_schema", "envelope.data_schema")],
    );
    invalid_only(
        |e| e.spec_version = "0.3".into(),
        &[("spec_version", "envelope.spec_version")],
    );
    invalid_only(
        |e| e.data_content_type = "application/json".into(),
        &[("data_content_type", "envelope.data_content_type")],
    );
    let mut event = waybill();
    event.r#type = "cn.hazchem.v1.trip_started".into();
    let rejection = admit(&transport(), &unsigned(&event)).unwrap_err();
    assert_eq!(
        rejection.violations()[0].description,
        "type must be \"cn.hazchem.v1.waybill_issued\" for a waybill_issued payload, found \
         \"cn.hazchem.v1.trip_started\""
    );
}

#[test]
fn oversize_events_are_refused_before_decoding() {
    let event = waybill();
    let size = event.encoded_len();
    let small = admission_with(Limits {
        max_event_bytes: size - 1,
        ..Limits::default()
    });
    assert_eq!(
        small
            .admit(&transport(), &unsigned(&event), now())
            .unwrap_err(),
        Rejection::TooLarge {
            size,
            limit: size - 1
        }
    );
    assert!(
        admission_with(Limits {
            max_event_bytes: size,
            ..Limits::default()
        })
        .admit(&transport(), &unsigned(&event), now())
        .is_ok()
    );
    // The default limit is 256 KiB; garbage of that size is refused without being decoded.
    let huge = v1::SignedEvent {
        event: vec![0xff; DEFAULT_MAX_EVENT_BYTES + 1],
        signature: None,
    };
    assert!(matches!(
        admit(&transport(), &huge),
        Err(Rejection::TooLarge {
            limit: DEFAULT_MAX_EVENT_BYTES,
            ..
        })
    ));
}

#[test]
fn several_violations_are_reported_together() {
    invalid_only(
        |e| {
            e.r#type = "cn.hazchem.v1.trip_started".into();
            e.time = Some(timestamp(now() + ChronoDuration::hours(1)));
            let w = waybill_payload(e);
            w.carrier.as_mut().unwrap().uscc = "91350100M000100Y4Z".into();
            w.goods[0].chemical.as_mut().unwrap().cas = "50-00-1".into();
            w.tractor.as_mut().unwrap().plate = "XF12345".into();
            w.escort = None;
        },
        &[
            ("type", "envelope.type"),
            ("time", "not_future"),
            ("waybill_issued.carrier.uscc", "uscc.check_character"),
            ("waybill_issued.tractor.plate", "vehicle_plate.charset"),
            ("waybill_issued.escort", "required"),
            (
                "waybill_issued.goods[0].chemical.cas",
                "cas.check_character",
            ),
        ],
    );
}

// ---- Department and authorisation ----

#[test]
fn the_department_must_be_the_authenticated_one() {
    let event = make_event("waybill_issued", Some(Department::Emergency));
    let d = denial(admit(&transport(), &unsigned(&event)).unwrap_err());
    assert_eq!(d.reason, DenialReason::DepartmentMismatch);
    assert_eq!(d.metadata["department"], "transport");
    assert_eq!(d.metadata["event_department"], "emergency");
    assert!(
        d.message.contains("`transport`") && d.message.contains("`emergency`"),
        "{}",
        d.message
    );

    let mut unnamed = waybill();
    unnamed.department = 0;
    let d = denial(admit(&transport(), &unsigned(&unnamed)).unwrap_err());
    assert_eq!(d.reason, DenialReason::DepartmentMismatch);
    assert_eq!(d.metadata["event_department"], "unspecified");
}

#[test]
fn services_publish_without_a_department_and_auditors_not_at_all() {
    let mut event = make_event("warning_raised", None);
    event.department = v1::Department::Emergency as i32;
    let d = denial(admit(&service("warning"), &unsigned(&event)).unwrap_err());
    assert_eq!(d.reason, DenialReason::DepartmentMismatch);
    assert_eq!(d.metadata["service"], "warning");

    let d = denial(
        admit(
            &service("credit"),
            &unsigned(&make_event("task_opened", None)),
        )
        .unwrap_err(),
    );
    assert_eq!(d.reason, DenialReason::PublishNotPermitted);
    assert_eq!(d.metadata["service"], "credit");
    assert_eq!(d.metadata["event_type"], "task_opened");

    let d = denial(
        admit(
            &Principal::Auditor("court".into()),
            &unsigned(&make_event("task_opened", None)),
        )
        .unwrap_err(),
    );
    assert_eq!(d.reason, DenialReason::PublishNotPermitted);

    // Departments do not raise warnings; the warning service does.
    let d = denial(
        admit(
            &dept("emergency"),
            &unsigned(&make_event("warning_raised", Some(Department::Emergency))),
        )
        .unwrap_err(),
    );
    assert_eq!(d.reason, DenialReason::PublishNotPermitted);
    assert!(
        d.message
            .contains("department `emergency` may not publish warning_raised events")
    );
}

#[test]
fn the_source_lies_in_the_publishers_own_namespace() {
    // Emergency management claiming public security's system (finding 7).
    let mut forged = make_event("production_recorded", Some(Department::Emergency));
    forged.source = "/departments/psb/forged".into();
    let rejection = admit(
        &dept("emergency"),
        &signed_by(&forged, Department::Emergency),
    )
    .unwrap_err();
    assert_eq!(
        violations(&rejection),
        pairs(&[("source", "source.namespace")])
    );
    let message = rejection.to_string();
    assert!(
        message.contains("/departments/emergency") && message.contains("/departments/psb/forged"),
        "{message}"
    );
    let status = tonic::Status::from(rejection);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // A department posing as a service, a service as another service or a department, a path that
    // climbs out of the namespace, a prefix that is not a path segment.
    for (principal, source, event) in [
        (
            dept("emergency"),
            "/services/ledger",
            make_event("production_recorded", Some(Department::Emergency)),
        ),
        (
            dept("emergency"),
            "/departments/emergency/../psb",
            make_event("production_recorded", Some(Department::Emergency)),
        ),
        (
            dept("emergency"),
            "/departments/emergencyx/system",
            make_event("production_recorded", Some(Department::Emergency)),
        ),
        (
            service("credit"),
            "/services/warning",
            service_event("warning_raised", "credit"),
        ),
        (
            service("warning"),
            "/departments/emergency/hazard-platform",
            service_event("warning_raised", "warning"),
        ),
    ] {
        let mut event = event;
        event.source = source.into();
        let signed = match principal.department() {
            Some(d) => signed_by(&event, d),
            None => unsigned(&event),
        };
        let rejection = admit(&principal, &signed).unwrap_err();
        assert_eq!(
            violations(&rejection),
            pairs(&[("source", "source.namespace")]),
            "{} with source {source}",
            principal.uri()
        );
    }

    // The namespace itself and any path below it are the publisher's own.
    for source in [
        "/departments/emergency",
        "/departments/emergency/a/b-c_d.e~f",
    ] {
        let mut own = make_event("production_recorded", Some(Department::Emergency));
        own.source = source.into();
        admit(&dept("emergency"), &signed_by(&own, Department::Emergency)).unwrap();
    }
    let mut own = service_event("warning_raised", "credit");
    own.source = "/services/credit/conflicts".into();
    admit(&service("credit"), &unsigned(&own)).unwrap();
}

#[test]
fn authorisation_comes_before_validation() {
    let mut event = make_event("waybill_issued", Some(Department::Psb));
    waybill_payload(&mut event).carrier = None;
    let d = denial(admit(&dept("psb"), &unsigned(&event)).unwrap_err());
    assert_eq!(d.reason, DenialReason::PublishNotPermitted);
}

#[test]
fn psb_issues_purchase_permits_and_emergency_does_not() {
    let permit = make_event("highly_toxic_purchase_permit_issued", Some(Department::Psb));
    admit(&dept("psb"), &signed_by(&permit, Department::Psb)).unwrap();
    let elsewhere = make_event(
        "highly_toxic_purchase_permit_issued",
        Some(Department::Emergency),
    );
    let d = denial(
        admit(
            &dept("emergency"),
            &signed_by(&elsewhere, Department::Emergency),
        )
        .unwrap_err(),
    );
    assert_eq!(d.reason, DenialReason::PublishNotPermitted);
}

// ---- Licences ----

fn licence_event(
    token: &str,
    publisher: Department,
    kind: v1::LicenceKind,
    competent: Department,
) -> v1::Event {
    let mut e = make_event(token, Some(publisher));
    set_licence(&mut e, kind, competent);
    e
}

#[test]
fn approval_issues_on_behalf_of_the_competent_department() {
    for token in ["licence_issued", "licence_renewed", "application_decided"] {
        for (kind, competent) in [
            (v1::LicenceKind::SafetyProduction, Department::Emergency),
            (v1::LicenceKind::HazardousWaste, Department::Eeb),
            (v1::LicenceKind::Business, Department::Samr),
        ] {
            let e = licence_event(token, Department::Approval, kind, competent);
            admit(&dept("approval"), &unsigned(&e))
                .unwrap_or_else(|r| panic!("{token} {kind:?}: {r}"));
        }
    }
    let e = licence_event(
        "licence_issued",
        Department::Emergency,
        v1::LicenceKind::SafetyProduction,
        Department::Emergency,
    );
    admit(&dept("emergency"), &unsigned(&e)).unwrap();
}

#[test]
fn eeb_may_not_issue_a_safety_production_licence() {
    let e = licence_event(
        "licence_issued",
        Department::Eeb,
        v1::LicenceKind::SafetyProduction,
        Department::Emergency,
    );
    let d = denial(admit(&dept("eeb"), &unsigned(&e)).unwrap_err());
    assert_eq!(d.reason, DenialReason::LicenceIssuerNotPermitted);
    assert_eq!(d.metadata["department"], "eeb");
    assert_eq!(d.metadata["event_type"], "licence_issued");
    assert_eq!(d.metadata["licence_kind"], "safety_production");
    assert_eq!(d.metadata["issuers"], "emergency");
    assert_eq!(d.metadata["on_behalf"], "approval");
    assert!(
        d.message.contains(
            "department `eeb` may not publish licence_issued for licence kind `safety_production`"
        ),
        "{}",
        d.message
    );
    // Suspending, revoking, expiring: the kind decides too.
    for token in ["licence_suspended", "licence_revoked", "licence_expired"] {
        let ok = licence_event(
            token,
            Department::Eeb,
            v1::LicenceKind::HazardousWaste,
            Department::Eeb,
        );
        admit(&dept("eeb"), &unsigned(&ok)).unwrap();
        let bad = licence_event(
            token,
            Department::Eeb,
            v1::LicenceKind::SafeUse,
            Department::Eeb,
        );
        assert_eq!(
            denial(admit(&dept("eeb"), &unsigned(&bad)).unwrap_err()).reason,
            DenialReason::LicenceIssuerNotPermitted
        );
    }
}

#[test]
fn the_competent_department_must_issue_the_kind() {
    // approval on behalf of a department that does not issue the kind.
    let e = licence_event(
        "licence_issued",
        Department::Approval,
        v1::LicenceKind::SafetyProduction,
        Department::Eeb,
    );
    let d = denial(admit(&dept("approval"), &unsigned(&e)).unwrap_err());
    assert_eq!(d.reason, DenialReason::LicenceIssuerNotPermitted);
    assert_eq!(d.metadata["competent_department"], "eeb");
    // An issuer naming a department that does not issue the kind.
    let e = licence_event(
        "application_decided",
        Department::Emergency,
        v1::LicenceKind::SafeUse,
        Department::Samr,
    );
    assert_eq!(
        denial(admit(&dept("emergency"), &unsigned(&e)).unwrap_err()).reason,
        DenialReason::LicenceIssuerNotPermitted
    );
}

#[test]
fn only_on_behalf_departments_issue_in_another_departments_name() {
    let policy = Policy::from_toml_str(
        "[publish]\nemergency = [\"licence_issued\"]\ntransport = [\"licence_issued\"]\n\
         [licence_issuers]\nroad_transport = [\"transport\", \"emergency\"]\n",
    )
    .unwrap();
    let admission = Admission::new(policy, KeyRegistry::new(), Limits::default());
    let own = licence_event(
        "licence_issued",
        Department::Emergency,
        v1::LicenceKind::RoadTransport,
        Department::Emergency,
    );
    admission
        .admit(&dept("emergency"), &unsigned(&own), now())
        .unwrap();
    let other = licence_event(
        "licence_issued",
        Department::Emergency,
        v1::LicenceKind::RoadTransport,
        Department::Transport,
    );
    let d = denial(
        admission
            .admit(&dept("emergency"), &unsigned(&other), now())
            .unwrap_err(),
    );
    assert_eq!(d.reason, DenialReason::LicenceIssuerNotPermitted);
    assert!(d.message.contains("only in its own name"), "{}", d.message);
}

#[test]
fn a_licence_without_a_kind_is_invalid_not_denied() {
    let mut e = licence_event(
        "licence_issued",
        Department::Emergency,
        v1::LicenceKind::SafetyProduction,
        Department::Emergency,
    );
    let Some(v1::event::Payload::LicenceIssued(p)) = e.payload.as_mut() else {
        panic!()
    };
    p.licence.as_mut().unwrap().kind = 0;
    p.licence.as_mut().unwrap().competent_department = 0;
    assert_eq!(
        violations(&admit(&dept("emergency"), &unsigned(&e)).unwrap_err()),
        pairs(&[
            ("licence_issued.licence.kind", "required"),
            ("licence_issued.licence.competent_department", "required"),
        ])
    );
}

// ---- Origin signatures ----

fn permit() -> v1::Event {
    make_event("highly_toxic_purchase_permit_issued", Some(Department::Psb))
}

#[test]
fn a_valid_signature_is_verified() {
    let a = admit(&dept("psb"), &signed_by(&permit(), Department::Psb)).unwrap();
    assert!(a.signed);
    let a = admit(&transport(), &signed_by(&waybill(), Department::Transport)).unwrap();
    assert!(a.signed, "optional signatures are verified too");
}

#[test]
fn a_signature_over_other_bytes_is_invalid() {
    let mut signed = signed_by(&permit(), Department::Psb);
    let mut changed = permit();
    changed.subject = "tampered".into();
    signed.event = changed.encode_to_vec();
    assert_eq!(
        violations(&admit(&dept("psb"), &signed).unwrap_err()),
        pairs(&[("signature.signature", "signature.invalid")])
    );
}

#[test]
fn a_signature_by_another_key_is_invalid() {
    // Emergency's signature under psb's key id, and under the bare code `psb` (the older key id form).
    let psb_id = signing_key(Department::Psb).origin_key_id(Department::Psb);
    for key_id in [psb_id.as_str(), "psb"] {
        let signed = signed_with(&permit(), signing_key(Department::Emergency), key_id);
        assert_eq!(
            violations(&admit(&dept("psb"), &signed).unwrap_err()),
            pairs(&[("signature.signature", "signature.invalid")]),
            "{key_id}"
        );
    }
}

#[test]
fn the_older_key_id_form_the_department_code_is_still_accepted() {
    let signed = signed_with(&permit(), signing_key(Department::Psb), "psb");
    assert!(admit(&dept("psb"), &signed).unwrap().signed);
}

#[test]
fn a_key_id_other_than_the_publishers_keys_is_refused() {
    let emergency_id = signing_key(Department::Emergency).origin_key_id(Department::Emergency);
    let unregistered = hazchem_pki::SigningKey::generate().origin_key_id(Department::Psb);
    for (key_id, field, rule) in [
        ("emergency", "signature.key_id", "signature.key_id"),
        (
            emergency_id.as_str(),
            "signature.key_id",
            "signature.key_id",
        ),
        ("psb-2026", "signature.key_id", "signature.key_id"),
        ("psb+0123456", "signature.key_id", "signature.key_id"),
        (
            unregistered.as_str(),
            "signature.key_id",
            "signature.unknown_key",
        ),
    ] {
        let signed = signed_with(&permit(), signing_key(Department::Psb), key_id);
        let rejection = admit(&dept("psb"), &signed).unwrap_err();
        assert_eq!(violations(&rejection), pairs(&[(field, rule)]), "{key_id}");
    }
}

/// psb rotated its key at `rotation`: the old key is valid until then (exclusive), the new one from then
/// on. Each is accepted only for events the gateway accepts in its time.
#[test]
fn a_rotated_key_is_refused_after_its_not_after_and_a_new_one_before_its_not_before() {
    let rotation = now() + ChronoDuration::hours(1);
    let old = signing_key(Department::Psb);
    let new = hazchem_pki::SigningKey::generate();
    let mut rotated = KeyRegistry::new();
    for d in Department::ALL
        .into_iter()
        .filter(|d| *d != Department::Psb)
    {
        rotated.insert(d, signing_key(d).public_key());
    }
    rotated
        .add(
            hazchem_pki::OriginKey::new(Department::Psb, old.public_key().into())
                .not_after(rotation),
        )
        .unwrap();
    rotated
        .add(
            hazchem_pki::OriginKey::new(Department::Psb, new.public_key().into())
                .not_before(rotation),
        )
        .unwrap();
    let admission = Admission::new(Policy::default_policy(), rotated, Limits::default());
    let by_old = signed_by(&permit(), Department::Psb);
    let by_new = signed_with(&permit(), &new, &new.origin_key_id(Department::Psb));
    let admit_at = |signed: &v1::SignedEvent, at| admission.admit(&dept("psb"), signed, at);

    // Before the rotation: the old key, not the new one.
    assert!(admit_at(&by_old, now()).unwrap().signed);
    let rejection = admit_at(&by_new, now()).unwrap_err();
    assert_eq!(
        violations(&rejection),
        pairs(&[("signature.key_id", "signature.key_not_valid")])
    );
    assert!(
        rejection.to_string().contains("is not valid before"),
        "{rejection}"
    );
    // From the rotation on: the new key, not the old one (at the instant itself, and later).
    for at in [rotation, rotation + ChronoDuration::days(30)] {
        assert!(admit_at(&by_new, at).unwrap().signed);
        let rejection = admit_at(&by_old, at).unwrap_err();
        assert_eq!(
            violations(&rejection),
            pairs(&[("signature.key_id", "signature.key_not_valid")])
        );
        assert!(
            rejection.to_string().contains("rotated or retired"),
            "{rejection}"
        );
        // The bare code picks the key valid then: the new one's signature passes, the old one's fails.
        let legacy_new = signed_with(&permit(), &new, "psb");
        assert!(admit_at(&legacy_new, at).unwrap().signed);
        let legacy_old = signed_with(&permit(), old, "psb");
        assert_eq!(
            violations(&admit_at(&legacy_old, at).unwrap_err()),
            pairs(&[("signature.signature", "signature.invalid")])
        );
    }
}

#[test]
fn an_unregistered_key_and_a_malformed_signature() {
    let mut registry = KeyRegistry::new();
    registry.insert(
        Department::Emergency,
        signing_key(Department::Emergency).public_key(),
    );
    let admission = Admission::new(Policy::default_policy(), registry, Limits::default());
    let rejection = admission
        .admit(&dept("psb"), &signed_by(&permit(), Department::Psb), now())
        .unwrap_err();
    assert_eq!(
        violations(&rejection),
        pairs(&[("signature.key_id", "signature.unknown_key")])
    );

    let mut signed = signed_by(&permit(), Department::Psb);
    signed.signature.as_mut().unwrap().signature.truncate(10);
    assert_eq!(
        violations(&admit(&dept("psb"), &signed).unwrap_err()),
        pairs(&[("signature.signature", "signature.malformed")])
    );
}

#[test]
fn a_missing_signature_where_the_policy_requires_one() {
    for (token, d) in [
        ("highly_toxic_purchase_permit_issued", Department::Psb),
        ("credit_listing_decided", Department::Emergency),
        ("credit_repair_decided", Department::Samr),
        ("credit_repair_revoked", Department::Fire),
    ] {
        let e = make_event(token, Some(d));
        let rejection = admit(&Principal::Department(d), &unsigned(&e)).unwrap_err();
        assert_eq!(
            violations(&rejection),
            pairs(&[("signature", "signature.required")]),
            "{token}"
        );
        // An empty OriginSignature is absent.
        let mut empty = unsigned(&e);
        empty.signature = Some(v1::OriginSignature::default());
        assert_eq!(
            violations(&admit(&Principal::Department(d), &empty).unwrap_err()),
            pairs(&[("signature", "signature.required")])
        );
    }
    // Field violations and the signature are reported together.
    let mut e = permit();
    e.id.clear();
    assert_eq!(
        violations(&admit(&dept("psb"), &unsigned(&e)).unwrap_err()),
        pairs(&[("id", "required"), ("signature", "signature.required")])
    );
}

#[test]
fn services_have_no_origin_keys() {
    let mut signed = unsigned(&service_event("checkpoint_published", "ledger"));
    signed.signature = Some(v1::OriginSignature {
        key_id: "ledger".into(),
        signature: vec![0; 64],
    });
    assert_eq!(
        violations(&admit(&service("ledger"), &signed).unwrap_err()),
        pairs(&[("signature.key_id", "signature.unknown_key")])
    );
}
