//! Every rejection class of the gateway, over gRPC, against both buses: the exact status code, the
//! `BadRequest` field paths and rules (or the `ErrorInfo` of a denial), and that nothing reached
//! the stream (the last sequence is unchanged, and the next accepted event takes the next
//! sequence).

#![allow(clippy::disallowed_methods)] // tests: events are stamped with wall time for gateways on the system clock

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hazchem_domain::{
    CasNumber, Department, IdentifierError, ImoNumber, PlateColour, UnNumber, Uscc, VehiclePlate,
};
use hazchem_kit::{Clock as _, ManualClock};
use hazchem_pki::Principal;
use hazchem_proto::v1;
use hazchem_proto::v1::event::Payload;
use hazchem_proto::v1::publish_service_client::PublishServiceClient;
use hazchem_proto::v1::subscription_service_client::SubscriptionServiceClient;
use hazchem_tests::{
    BusKind, TestBus, TestGateway, TestPki, assert_status, auditor, dept, error_info, fresh,
    service, set_department, signed, signed_bytes, subscribe_request,
};
use prost::Message as _;
use tonic::Code;

macro_rules! both_buses {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::BusKind::Embedded).await;
                }
            )*
        }
        mod jetstream {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::BusKind::JetStream).await;
                }
            )*
        }
    };
}

both_buses!(
    no_certificate_is_unauthenticated,
    a_certificate_from_another_ca_is_refused,
    a_department_publishes_only_the_types_its_duties_cover,
    licences_are_published_by_their_issuers_or_on_their_behalf,
    the_event_department_must_be_the_certificates,
    each_invalid_identifier_kind_is_named,
    several_invalid_identifiers_are_named_together,
    missing_required_fields_are_all_named,
    a_missing_payload_is_named,
    an_oversize_event_is_refused_before_anything_else,
    a_future_timestamp_beyond_the_skew_is_refused,
    a_future_timestamp_is_admitted_once_the_gateways_clock_catches_up,
    attributes_must_agree_with_the_payload,
    undecodable_and_malformed_bytes_are_refused,
    origin_signatures_are_verified_and_required,
    a_source_outside_the_publishers_namespace_is_refused,
    a_retry_may_not_add_remove_or_change_the_signature,
    a_batch_carries_at_most_1000_events,
);

/// A gateway with one event already stored (sequence 1).
async fn gateway(kind: BusKind) -> TestGateway {
    let gw = TestGateway::start(TestBus::new(kind).await).await;
    let a = gw.publish_event(&fresh("waybill_issued")).await.unwrap();
    assert_eq!(a.sequence, 1);
    gw
}

/// Publishes `event` as `who`, expects a refusal, and checks that the stream did not change.
async fn refuse(gw: &TestGateway, who: &Principal, event: v1::SignedEvent) -> tonic::Status {
    let before = gw.bus().last_sequence().await;
    let status = gw
        .publish_as(who, event)
        .await
        .expect_err("the event is refused");
    assert_eq!(
        gw.bus().last_sequence().await,
        before,
        "nothing reached the stream ({status:?})"
    );
    status
}

/// Publishes a valid event and checks that it takes the next sequence (no rejected event took a
/// position), and that the stream holds only accepted events.
async fn nothing_was_stored(gw: &TestGateway, accepted_ids: &[String]) {
    let before = gw.bus().last_sequence().await;
    let probe = fresh("trip_started");
    let a = gw.publish_event(&probe).await.unwrap();
    assert_eq!((a.sequence, a.duplicate), (before + 1, false));
    let ids: Vec<String> = gw
        .bus()
        .records()
        .await
        .into_iter()
        .skip(1)
        .map(|r| r.event.id)
        .collect();
    let mut expected = accepted_ids.to_vec();
    expected.push(probe.id);
    assert_eq!(ids, expected, "only accepted events are in the stream");
}

fn unsigned(event: &v1::Event) -> v1::SignedEvent {
    signed(event, None)
}

fn rule(error: IdentifierError) -> String {
    format!("{}.{}", error.kind.as_str(), error.rule.as_str())
}

fn waybill_with(change: impl FnOnce(&mut v1::WaybillIssued)) -> v1::Event {
    let mut event = fresh("waybill_issued");
    let Some(Payload::WaybillIssued(waybill)) = event.payload.as_mut() else {
        unreachable!()
    };
    change(waybill);
    event
}

fn licence(publisher: Department, kind: v1::LicenceKind, competent: Department) -> v1::Event {
    let mut event = fresh("licence_issued");
    set_department(&mut event, Some(publisher));
    let Some(Payload::LicenceIssued(issued)) = event.payload.as_mut() else {
        unreachable!()
    };
    let licence = issued.licence.as_mut().unwrap();
    licence.kind = kind as i32;
    licence.competent_department = v1::Department::from(competent) as i32;
    event
}

fn metadata(status: &tonic::Status) -> (String, HashMap<String, String>) {
    let info = error_info(status).unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "hazchem.v1");
    (info.reason, info.metadata)
}

// ---------------------------------------------------------------------------------------------

async fn no_certificate_is_unauthenticated(kind: BusKind) {
    let gw = gateway(kind).await;
    let channel = gw.anonymous_client().await;
    let event = unsigned(&fresh("waybill_issued"));
    let mut publish = PublishServiceClient::new(channel.clone());
    let mut statuses = vec![
        publish
            .publish(v1::PublishRequest {
                event: Some(event.clone()),
            })
            .await
            .expect_err("Publish"),
        publish
            .publish_batch(v1::PublishBatchRequest {
                events: vec![event.clone()],
            })
            .await
            .expect_err("PublishBatch"),
        publish
            .publish_stream(futures::stream::iter(vec![v1::PublishStreamRequest {
                event: Some(event.clone()),
            }]))
            .await
            .expect_err("PublishStream"),
    ];
    let mut subscriptions = SubscriptionServiceClient::new(channel);
    statuses.push(
        subscriptions
            .subscribe(subscribe_request(v1::EventFilter::default(), None))
            .await
            .expect_err("Subscribe"),
    );
    statuses.push(
        subscriptions
            .acknowledge_cursor(v1::AcknowledgeCursorRequest {
                durable_name: "c".into(),
                sequence: 1,
            })
            .await
            .expect_err("AcknowledgeCursor"),
    );
    for status in statuses {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(
            status.message().contains("no client certificate"),
            "the message says why: {status:?}"
        );
    }
    assert_eq!(
        gw.bus().last_sequence().await,
        1,
        "nothing reached the stream"
    );
    nothing_was_stored(&gw, &[]).await;
}

async fn a_certificate_from_another_ca_is_refused(kind: BusKind) {
    let gw = gateway(kind).await;
    let stranger = TestPki::generate();
    // Trusts our server's CA, presents a certificate of another CA.
    let mut tls = stranger.client_tls(&dept("transport"));
    tls.ca_pem = gw.pki().dev().ca_pem().unwrap();
    let endpoint = tonic::transport::Endpoint::from_shared(gw.endpoint())
        .unwrap()
        .tls_config(tls.config())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    // The handshake or the first call fails; either way nothing is published.
    if let Ok(channel) = endpoint.connect().await {
        let result = PublishServiceClient::new(channel)
            .publish(v1::PublishRequest {
                event: Some(unsigned(&fresh("waybill_issued"))),
            })
            .await;
        let status = result.expect_err("a foreign certificate is refused");
        assert_ne!(status.code(), Code::Ok);
    }
    assert_eq!(gw.bus().last_sequence().await, 1);
    nothing_was_stored(&gw, &[]).await;
}

async fn a_department_publishes_only_the_types_its_duties_cover(kind: BusKind) {
    let gw = gateway(kind).await;

    // Public security issuing a waybill: only transport does.
    let mut waybill = fresh("waybill_issued");
    set_department(&mut waybill, Some(Department::Psb));
    let status = refuse(&gw, &dept("psb"), unsigned(&waybill)).await;
    assert_status(&status, Code::PermissionDenied, &[]);
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "PUBLISH_NOT_PERMITTED");
    assert_eq!(meta["department"], "psb");
    assert_eq!(meta["event_type"], "waybill_issued");
    assert!(status.message().contains("psb") && status.message().contains("waybill_issued"));

    // Transport issuing a highly toxic purchase permit (even properly signed): only psb does.
    let mut permit = fresh("highly_toxic_purchase_permit_issued");
    set_department(&mut permit, Some(Department::Transport));
    let key = gw.signing_key(Department::Transport);
    let status = refuse(&gw, &dept("transport"), signed(&permit, Some(&key))).await;
    assert_status(&status, Code::PermissionDenied, &[]);
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "PUBLISH_NOT_PERMITTED");
    assert_eq!(meta["department"], "transport");
    assert_eq!(meta["event_type"], "highly_toxic_purchase_permit_issued");

    // An auditor publishes nothing.
    let mut relocation = fresh("relocation_ordered");
    set_department(&mut relocation, None);
    let status = refuse(&gw, &auditor(), unsigned(&relocation)).await;
    assert_status(&status, Code::PermissionDenied, &[]);
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "PUBLISH_NOT_PERMITTED");
    assert_eq!(meta["auditor"], hazchem_pki::dev::DEV_AUDITOR);

    // A service publishes only its own types.
    let status = refuse(&gw, &service("ledger"), unsigned(&relocation)).await;
    assert_status(&status, Code::PermissionDenied, &[]);
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "PUBLISH_NOT_PERMITTED");
    assert_eq!(meta["service"], "ledger");
    assert_eq!(meta["event_type"], "relocation_ordered");

    // An invalid event of a type the department may not publish is denied, not validated.
    let mut invalid = waybill_with(|w| w.shipper.as_mut().unwrap().uscc = "nonsense".into());
    set_department(&mut invalid, Some(Department::Psb));
    let status = refuse(&gw, &dept("psb"), unsigned(&invalid)).await;
    assert_status(&status, Code::PermissionDenied, &[]);

    nothing_was_stored(&gw, &[]).await;
}

async fn licences_are_published_by_their_issuers_or_on_their_behalf(kind: BusKind) {
    use v1::LicenceKind as K;
    let gw = gateway(kind).await;

    // Ecology and environment issuing a safety production licence: emergency management does.
    let eeb = licence(Department::Eeb, K::SafetyProduction, Department::Emergency);
    let status = refuse(&gw, &dept("eeb"), unsigned(&eeb)).await;
    assert_status(&status, Code::PermissionDenied, &[]);
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "LICENCE_ISSUER_NOT_PERMITTED");
    assert_eq!(meta["department"], "eeb");
    assert_eq!(meta["event_type"], "licence_issued");
    assert_eq!(meta["licence_kind"], "safety_production");
    assert_eq!(meta["issuers"], "emergency");
    assert_eq!(meta["on_behalf"], "approval");

    // Naming a competent department that does not issue the kind.
    let wrong_competent = licence(Department::Approval, K::SafetyProduction, Department::Eeb);
    let status = refuse(&gw, &dept("approval"), unsigned(&wrong_competent)).await;
    let (reason, meta) = metadata(&status);
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason, "LICENCE_ISSUER_NOT_PERMITTED");
    assert_eq!(meta["competent_department"], "eeb");

    // An issuer naming another department as competent (only approval issues on behalf).
    let transport = licence(Department::Transport, K::RoadTransport, Department::Samr);
    let status = refuse(&gw, &dept("transport"), unsigned(&transport)).await;
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "LICENCE_ISSUER_NOT_PERMITTED");
    assert_eq!(meta["competent_department"], "samr");

    // Accepted: the issuer itself, and approval on its behalf.
    let own = licence(
        Department::Emergency,
        K::SafetyProduction,
        Department::Emergency,
    );
    gw.publish_event(&own).await.unwrap();
    let on_behalf = licence(
        Department::Approval,
        K::SafetyProduction,
        Department::Emergency,
    );
    gw.publish_event(&on_behalf).await.unwrap();
    nothing_was_stored(&gw, &[own.id, on_behalf.id]).await;
}

async fn the_event_department_must_be_the_certificates(kind: BusKind) {
    let gw = gateway(kind).await;
    // Transport's certificate, an event in emergency management's name.
    let production = fresh("production_recorded");
    let status = refuse(&gw, &dept("transport"), unsigned(&production)).await;
    assert_status(&status, Code::PermissionDenied, &[]);
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "DEPARTMENT_MISMATCH");
    assert_eq!(meta["department"], "transport");
    assert_eq!(meta["event_department"], "emergency");

    // Even for a type the certificate's department may publish.
    let mut waybill = fresh("waybill_issued");
    set_department(&mut waybill, Some(Department::Emergency));
    let status = refuse(&gw, &dept("transport"), unsigned(&waybill)).await;
    assert_eq!(metadata(&status).0, "DEPARTMENT_MISMATCH");

    // No department at all.
    set_department(&mut waybill, None);
    let status = refuse(&gw, &dept("transport"), unsigned(&waybill)).await;
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "DEPARTMENT_MISMATCH");
    assert_eq!(meta["event_department"], "unspecified");

    // A service naming a department.
    let mut warning = fresh("warning_raised");
    set_department(&mut warning, Some(Department::Emergency));
    let status = refuse(&gw, &service("warning"), unsigned(&warning)).await;
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "DEPARTMENT_MISMATCH");
    assert_eq!(meta["service"], "warning");
    nothing_was_stored(&gw, &[]).await;
}

async fn each_invalid_identifier_kind_is_named(kind: BusKind) {
    let gw = gateway(kind).await;
    let transport = dept("transport");
    let long_batch = "B".repeat(65);
    let cases: Vec<(&str, Principal, v1::Event, &str, String)> = vec![
        (
            "USCC",
            transport.clone(),
            waybill_with(|w| w.shipper.as_mut().unwrap().uscc = "91320623MA1P8RK2X9".into()),
            "waybill_issued.shipper.uscc",
            rule(Uscc::parse("91320623MA1P8RK2X9").unwrap_err()),
        ),
        (
            "USCC charset",
            transport.clone(),
            waybill_with(|w| w.carrier.as_mut().unwrap().uscc = "91320613MA1WQ5TB3O".into()),
            "waybill_issued.carrier.uscc",
            rule(Uscc::parse("91320613MA1WQ5TB3O").unwrap_err()),
        ),
        (
            "CAS",
            transport.clone(),
            waybill_with(|w| w.goods[0].chemical.as_mut().unwrap().cas = "108-88-4".into()),
            "waybill_issued.goods[0].chemical.cas",
            rule(CasNumber::parse("108-88-4").unwrap_err()),
        ),
        (
            "UN number",
            transport.clone(),
            waybill_with(|w| w.goods[0].chemical.as_mut().unwrap().un_number = "UN129".into()),
            "waybill_issued.goods[0].chemical.un_number",
            rule(UnNumber::parse("UN129").unwrap_err()),
        ),
        (
            "vehicle plate",
            transport.clone(),
            waybill_with(|w| w.tractor.as_mut().unwrap().plate = "XF12345".into()),
            "waybill_issued.tractor.plate",
            rule(VehiclePlate::new("XF12345", PlateColour::Yellow).unwrap_err()),
        ),
        (
            "plate colour",
            transport.clone(),
            waybill_with(|w| w.trailer.as_mut().unwrap().plate_colour = 7),
            "waybill_issued.trailer.plate_colour",
            rule(PlateColour::from_code(7).unwrap_err()),
        ),
        (
            "event id",
            transport.clone(),
            {
                let mut e = fresh("waybill_issued");
                e.id = "fx waybill #1".into();
                e
            },
            "id",
            "token.charset".into(),
        ),
        (
            "token in a payload",
            transport.clone(),
            waybill_with(|w| w.waybill_number = "WB/3206/0017".into()),
            "waybill_issued.waybill_number",
            "token.charset".into(),
        ),
        (
            "correlation id",
            transport.clone(),
            {
                let mut e = fresh("waybill_issued");
                e.correlation_id = "x".repeat(129);
                e
            },
            "correlation_id",
            "token.length".into(),
        ),
        (
            "batch code charset",
            transport.clone(),
            waybill_with(|w| w.goods[0].batch_code = "批次-2026-1".into()),
            "waybill_issued.goods[0].batch_code",
            "batch_code.charset".into(),
        ),
        (
            "batch code length",
            transport.clone(),
            waybill_with(|w| w.goods[0].batch_code = long_batch.clone()),
            "waybill_issued.goods[0].batch_code",
            "batch_code.length".into(),
        ),
        (
            "IMO number",
            dept("msa"),
            {
                let mut e = fresh("ship_declaration_submitted");
                let Some(Payload::ShipDeclarationSubmitted(d)) = e.payload.as_mut() else {
                    unreachable!()
                };
                d.ship.as_mut().unwrap().imo = "9319467".into();
                e
            },
            "ship_declaration_submitted.ship.imo",
            rule(ImoNumber::parse("9319467").unwrap_err()),
        ),
    ];
    for (what, who, event, field, expected_rule) in cases {
        let status = refuse(&gw, &who, unsigned(&event)).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_status(&status, Code::InvalidArgument, &[(field, &expected_rule)]);
        let (reason, meta) = metadata(&status);
        assert_eq!(reason, "FIELD_VIOLATIONS", "{what}");
        assert_eq!(meta["violations"], "1", "{what}");
    }
    nothing_was_stored(&gw, &[]).await;
}

async fn several_invalid_identifiers_are_named_together(kind: BusKind) {
    let gw = gateway(kind).await;
    let mut event = waybill_with(|w| {
        w.shipper.as_mut().unwrap().uscc = "91320623MA1P8RK2X9".into();
        w.goods[0].chemical.as_mut().unwrap().cas = "108-88-4".into();
        w.goods[0].chemical.as_mut().unwrap().un_number = "1294".into();
        w.tractor.as_mut().unwrap().plate_colour = 8;
        w.goods[0].batch_code = "lot 1".into();
    });
    event.causation_id = "a b".into();
    let status = refuse(&gw, &dept("transport"), unsigned(&event)).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[
            ("causation_id", "token.charset"),
            (
                "waybill_issued.shipper.uscc",
                &rule(Uscc::parse("91320623MA1P8RK2X9").unwrap_err()),
            ),
            (
                "waybill_issued.goods[0].chemical.cas",
                &rule(CasNumber::parse("108-88-4").unwrap_err()),
            ),
            (
                "waybill_issued.goods[0].chemical.un_number",
                &rule(UnNumber::parse("1294").unwrap_err()),
            ),
            (
                "waybill_issued.tractor.plate_colour",
                &rule(PlateColour::from_code(8).unwrap_err()),
            ),
            ("waybill_issued.goods[0].batch_code", "batch_code.charset"),
        ],
    );
    let (_, meta) = metadata(&status);
    assert_eq!(meta["violations"], "6");
    nothing_was_stored(&gw, &[]).await;
}

async fn missing_required_fields_are_all_named(kind: BusKind) {
    let gw = gateway(kind).await;
    let mut event = waybill_with(|w| {
        w.shipper = None;
        w.goods.clear();
        w.tractor.as_mut().unwrap().plate = String::new();
        w.driver.as_mut().unwrap().name = String::new();
        w.carrier_licence_number = String::new();
    });
    event.source = String::new();
    event.time = None;
    event.classification = 0;
    event.spec_version = String::new();
    let status = refuse(&gw, &dept("transport"), unsigned(&event)).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[
            ("spec_version", "required"),
            ("source", "required"),
            ("time", "required"),
            ("classification", "required"),
            ("waybill_issued.shipper", "required"),
            ("waybill_issued.carrier_licence_number", "required"),
            ("waybill_issued.tractor.plate", "required"),
            ("waybill_issued.driver.name", "required"),
            ("waybill_issued.goods", "required"),
        ],
    );
    // Also the rest of the envelope.
    let mut event = fresh("waybill_issued");
    event.id = String::new();
    event.r#type = String::new();
    event.data_schema = String::new();
    event.data_content_type = String::new();
    let status = refuse(&gw, &dept("transport"), unsigned(&event)).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[
            ("id", "required"),
            ("type", "required"),
            ("data_content_type", "required"),
            ("data_schema", "required"),
        ],
    );
    nothing_was_stored(&gw, &[]).await;
}

async fn a_missing_payload_is_named(kind: BusKind) {
    let gw = gateway(kind).await;
    let mut event = fresh("waybill_issued");
    event.payload = None;
    let status = refuse(&gw, &dept("transport"), unsigned(&event)).await;
    assert_status(&status, Code::InvalidArgument, &[("payload", "required")]);
    nothing_was_stored(&gw, &[]).await;
}

/// A waybill whose encoding is exactly `size` bytes (padding its subject).
fn waybill_of_size(size: usize) -> v1::Event {
    let mut event = fresh("waybill_issued");
    event.subject = String::new();
    let base = event.encode_to_vec().len();
    let mut pad = size.saturating_sub(base + 4);
    loop {
        event.subject = "x".repeat(pad);
        let len = event.encode_to_vec().len();
        match len.cmp(&size) {
            std::cmp::Ordering::Equal => return event,
            std::cmp::Ordering::Less => pad += 1,
            std::cmp::Ordering::Greater => pad -= 1,
        }
    }
}

async fn an_oversize_event_is_refused_before_anything_else(kind: BusKind) {
    let gw = gateway(kind).await;
    let limit = gw.config().max_event_bytes;
    assert_eq!(limit, hazchem_admission::DEFAULT_MAX_EVENT_BYTES);

    let big = waybill_of_size(limit + 1);
    // From the wrong department too: size comes first.
    let status = refuse(&gw, &dept("psb"), unsigned(&big)).await;
    assert_status(&status, Code::InvalidArgument, &[("event", "max_size")]);
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "EVENT_TOO_LARGE");
    assert_eq!(meta["size"], (limit + 1).to_string());
    assert_eq!(meta["limit"], limit.to_string());

    // At the limit, the size is fine (this one is refused for its oversized subject only).
    let at_limit = waybill_of_size(limit);
    let status = refuse(&gw, &dept("transport"), unsigned(&at_limit)).await;
    assert_status(&status, Code::InvalidArgument, &[("subject", "max_len")]);

    // Far beyond it.
    let huge = waybill_of_size(3 * limit);
    let status = refuse(&gw, &dept("transport"), unsigned(&huge)).await;
    assert_status(&status, Code::InvalidArgument, &[("event", "max_size")]);
    nothing_was_stored(&gw, &[]).await;
}

async fn a_future_timestamp_beyond_the_skew_is_refused(kind: BusKind) {
    let gw = gateway(kind).await;
    let skew = chrono::Duration::from_std(gw.config().max_clock_skew).unwrap();

    let mut event = fresh("waybill_issued");
    event.time = Some(hazchem_proto::time::timestamp(
        Utc::now() + skew + chrono::Duration::minutes(5),
    ));
    let status = refuse(&gw, &dept("transport"), unsigned(&event)).await;
    assert_status(&status, Code::InvalidArgument, &[("time", "not_future")]);

    // In a payload field with the rule.
    let mut trip = fresh("trip_started");
    let Some(Payload::TripStarted(t)) = trip.payload.as_mut() else {
        unreachable!()
    };
    t.started_at = Some(hazchem_proto::time::timestamp(
        Utc::now() + chrono::Duration::hours(2),
    ));
    let status = refuse(&gw, &dept("transport"), unsigned(&trip)).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("trip_started.started_at", "not_future")],
    );

    // Within the skew: a clock slightly ahead is accepted.
    let mut ahead = fresh("waybill_issued");
    ahead.time = Some(hazchem_proto::time::timestamp(
        Utc::now() + skew - chrono::Duration::seconds(30),
    ));
    gw.publish_event(&ahead).await.unwrap();
    nothing_was_stored(&gw, &[ahead.id]).await;
}

/// The gateway takes "now" from its clock: with a manual clock, an event a minute beyond the skew is
/// refused, the same event is admitted once the clock has moved two minutes (nobody waits for them), and
/// its record is stamped `accepted_at` with the clock's time.
async fn a_future_timestamp_is_admitted_once_the_gateways_clock_catches_up(kind: BusKind) {
    let clock = ManualClock::new("2026-11-20T08:00:00Z".parse().unwrap());
    let gw = TestGateway::builder(TestBus::new(kind).await)
        .clock(Arc::new(clock.clone()))
        .start()
        .await;
    let skew = chrono::Duration::from_std(gw.config().max_clock_skew).unwrap();
    let mut event = fresh("waybill_issued");
    event.time = Some(hazchem_proto::time::timestamp(
        clock.now() + skew + chrono::Duration::minutes(1),
    ));
    let status = refuse(&gw, &dept("transport"), unsigned(&event)).await;
    assert_status(&status, Code::InvalidArgument, &[("time", "not_future")]);

    clock.advance(chrono::Duration::minutes(2));
    let accepted = gw.publish_event(&event).await.unwrap();
    assert_eq!((accepted.sequence, accepted.duplicate), (1, false));
    let records = gw.bus().records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event.id, event.id);
    assert_eq!(
        records[0].record.accepted_at,
        Some(hazchem_proto::time::timestamp(clock.now()))
    );
}

async fn attributes_must_agree_with_the_payload(kind: BusKind) {
    let gw = gateway(kind).await;
    let mut event = fresh("waybill_issued");
    event.r#type = "cn.hazchem.v1.licence_issued".into();
    let status = refuse(&gw, &dept("transport"), unsigned(&event)).await;
    assert_status(&status, Code::InvalidArgument, &[("type", "envelope.type")]);

    let mut event = fresh("waybill_issued");
    event.data_schema = "hazchem.v1.LicenceIssued".into();
    let status = refuse(&gw, &dept("transport"), unsigned(&event)).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("data_schema", "envelope.data_schema")],
    );

    let mut event = fresh("waybill_issued");
    event.r#type = "waybill_issued".into();
    event.data_schema = "WaybillIssued".into();
    event.spec_version = "0.3".into();
    event.data_content_type = "application/json".into();
    let status = refuse(&gw, &dept("transport"), unsigned(&event)).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[
            ("spec_version", "envelope.spec_version"),
            ("type", "envelope.type"),
            ("data_content_type", "envelope.data_content_type"),
            ("data_schema", "envelope.data_schema"),
        ],
    );
    nothing_was_stored(&gw, &[]).await;
}

async fn undecodable_and_malformed_bytes_are_refused(kind: BusKind) {
    let gw = gateway(kind).await;
    let transport = dept("transport");

    let status = refuse(&gw, &transport, signed_bytes(vec![0xff, 0xff, 0xff], None)).await;
    assert_status(&status, Code::InvalidArgument, &[("event", "decode")]);

    let status = refuse(&gw, &transport, signed_bytes(Vec::new(), None)).await;
    assert_status(&status, Code::InvalidArgument, &[("event", "required")]);

    let status = refuse(&gw, &transport, v1::SignedEvent::default()).await;
    assert_status(&status, Code::InvalidArgument, &[("event", "required")]);

    // Two payloads in one encoding (protobuf would silently keep the last).
    let waybill = fresh("waybill_issued");
    let mut trip = fresh("trip_started");
    trip.id = waybill.id.clone();
    let mut bytes = waybill.encode_to_vec();
    bytes.extend(trip.encode_to_vec());
    let status = refuse(&gw, &transport, signed_bytes(bytes, None)).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("payload", "payload.multiple")],
    );

    // A field this version of the contract does not know.
    let mut bytes = fresh("waybill_issued").encode_to_vec();
    bytes.extend([0xb8, 0x3e, 0x01]); // field 999, varint 1
    let status = refuse(&gw, &transport, signed_bytes(bytes, None)).await;
    assert_status(&status, Code::InvalidArgument, &[("#999", "unknown_field")]);
    nothing_was_stored(&gw, &[]).await;
}

async fn origin_signatures_are_verified_and_required(kind: BusKind) {
    let gw = gateway(kind).await;
    let psb = dept("psb");
    let psb_key = gw.signing_key(Department::Psb);
    let emergency_key = gw.signing_key(Department::Emergency);
    let permit = fresh("highly_toxic_purchase_permit_issued");
    let bytes = permit.encode_to_vec();

    // Required and missing.
    let status = refuse(&gw, &psb, unsigned(&permit)).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("signature", "signature.required")],
    );
    let listing = fresh("credit_listing_decided");
    let status = refuse(&gw, &dept("emergency"), unsigned(&listing)).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("signature", "signature.required")],
    );

    // Signed with another department's key.
    let status = refuse(
        &gw,
        &psb,
        signed_bytes(bytes.clone(), Some(("psb", &emergency_key))),
    )
    .await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("signature.signature", "signature.invalid")],
    );
    // Naming another department's key.
    let status = refuse(
        &gw,
        &psb,
        signed_bytes(bytes.clone(), Some(("emergency", &emergency_key))),
    )
    .await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("signature.key_id", "signature.key_id")],
    );
    // Over other bytes.
    let mut other = permit.clone();
    other.subject = "changed after signing".into();
    let mut tampered = signed(&permit, Some(&psb_key));
    tampered.event = other.encode_to_vec();
    let status = refuse(&gw, &psb, tampered).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("signature.signature", "signature.invalid")],
    );
    // Not an Ed25519 signature at all.
    let mut malformed = signed(&permit, Some(&psb_key));
    malformed.signature.as_mut().unwrap().signature = vec![1; 10];
    let status = refuse(&gw, &psb, malformed).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("signature.signature", "signature.malformed")],
    );
    // An optional signature is still verified when present: under transport's key id, by another key.
    let waybill = fresh("waybill_issued");
    let transport_id = gw
        .signing_key(Department::Transport)
        .origin_key_id(Department::Transport);
    let status = refuse(
        &gw,
        &dept("transport"),
        signed_bytes(
            waybill.encode_to_vec(),
            Some((&transport_id, &emergency_key)),
        ),
    )
    .await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("signature.signature", "signature.invalid")],
    );
    // Under a key id the registry does not list (the signer's own key, unregistered for transport).
    let status = refuse(
        &gw,
        &dept("transport"),
        signed(&waybill, Some(&emergency_key)),
    )
    .await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("signature.key_id", "signature.unknown_key")],
    );
    // Services have no origin keys.
    let warning = fresh("warning_raised");
    let mut from_service = signed(&warning, None);
    from_service.signature = Some(v1::OriginSignature {
        key_id: "warning".into(),
        signature: psb_key.sign(&from_service.event).to_vec(),
    });
    let status = refuse(&gw, &service("warning"), from_service).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("signature.key_id", "signature.unknown_key")],
    );
    // Rule violations and a bad signature are reported together.
    let mut both = permit.clone();
    both.source = String::new();
    let status = refuse(
        &gw,
        &psb,
        signed_bytes(both.encode_to_vec(), Some(("psb", &emergency_key))),
    )
    .await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[
            ("source", "required"),
            ("signature.signature", "signature.invalid"),
        ],
    );

    // Properly signed: accepted.
    gw.publish_as(&psb, signed(&permit, Some(&psb_key)))
        .await
        .unwrap();
    gw.publish_event(&listing).await.unwrap();
    nothing_was_stored(&gw, &[permit.id, listing.id]).await;
}

async fn a_source_outside_the_publishers_namespace_is_refused(kind: BusKind) {
    let gw = gateway(kind).await;
    let emergency = dept("emergency");
    let key = gw.signing_key(Department::Emergency);

    // Emergency management publishing, properly signed, as if from public security's system.
    let mut forged = fresh("production_recorded");
    forged.source = "/departments/psb/forged".into();
    let status = refuse(&gw, &emergency, signed(&forged, Some(&key))).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("source", "source.namespace")],
    );
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "FIELD_VIOLATIONS");
    assert_eq!(meta["rules"], "source.namespace");
    assert!(
        status.message().contains("/departments/emergency")
            && status.message().contains("/departments/psb/forged"),
        "{}",
        status.message()
    );

    // As a service, and climbing out of its own namespace.
    for source in ["/services/ledger", "/departments/emergency/../psb"] {
        let mut event = fresh("production_recorded");
        event.source = source.into();
        let status = refuse(&gw, &emergency, signed(&event, Some(&key))).await;
        assert_status(
            &status,
            Code::InvalidArgument,
            &[("source", "source.namespace")],
        );
    }

    // A service posing as another service (the credit service may raise warnings, but not as `warning`).
    let warning = fresh("warning_raised");
    assert_eq!(warning.source, "/services/warning");
    let status = refuse(&gw, &service("credit"), unsigned(&warning)).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("source", "source.namespace")],
    );
    assert!(
        status.message().contains("service `credit`"),
        "{}",
        status.message()
    );

    // In a batch, the forged event is refused and the others are stored.
    let own = fresh("production_recorded");
    let batch = gw
        .publisher_client(&emergency)
        .await
        .publish_batch(v1::PublishBatchRequest {
            events: vec![signed(&forged, Some(&key)), signed(&own, Some(&key))],
        })
        .await
        .unwrap()
        .into_inner();
    match &batch.results[0].outcome {
        Some(v1::publish_result::Outcome::Rejected(rpc)) => assert_status(
            &hazchem_tests::status_from_rpc(rpc),
            Code::InvalidArgument,
            &[("source", "source.namespace")],
        ),
        other => panic!("the forged event is refused: {other:?}"),
    }
    assert!(matches!(
        batch.results[1].outcome,
        Some(v1::publish_result::Outcome::Accepted(_))
    ));
    nothing_was_stored(&gw, &[own.id]).await;
}

/// A second valid Ed25519 signature by `key` over `message`: another nonce than the deterministic one
/// (`R = rB` for a random `r`, `s = r + H(R ‖ A ‖ M)·a`), which any Ed25519 verifier accepts.
fn another_signature(key: hazchem_pki::SigningKey, message: &[u8]) -> Vec<u8> {
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use rand::RngCore as _;
    use sha2::{Digest as _, Sha512};
    let key = ed25519_dalek::SigningKey::from(key);
    let a = key.to_scalar();
    let public = key.verifying_key().to_bytes();
    let mut wide = [0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut wide);
    let r = Scalar::from_bytes_mod_order_wide(&wide);
    let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(big_r)
            .chain_update(public)
            .chain_update(message)
            .finalize()
            .into(),
    );
    let s = r + k * a;
    let mut signature = big_r.to_vec();
    signature.extend_from_slice(s.as_bytes());
    signature
}

async fn a_retry_may_not_add_remove_or_change_the_signature(kind: BusKind) {
    let gw = gateway(kind).await;
    let transport = dept("transport");
    let key = gw.signing_key(Department::Transport);

    // Stored unsigned; the retry of the same bytes adds a signature (finding 6).
    let waybill = fresh("waybill_issued");
    let first = gw.publish_as(&transport, unsigned(&waybill)).await.unwrap();
    let status = refuse(&gw, &transport, signed(&waybill, Some(&key))).await;
    assert_status(
        &status,
        Code::AlreadyExists,
        &[("signature", "signature.differs")],
    );
    let (reason, meta) = metadata(&status);
    assert_eq!(reason, "EVENT_SIGNATURE_DIFFERS");
    assert_eq!(meta["event_id"], waybill.id);
    assert_eq!(meta["sequence"], first.sequence.to_string());
    assert_eq!(meta["change"], "added");
    // The same bytes as stored are still a retry.
    let retry = gw.publish_as(&transport, unsigned(&waybill)).await.unwrap();
    assert_eq!((retry.sequence, retry.duplicate), (first.sequence, true));

    // Stored signed; the retry drops the signature, or carries another valid one by the same key.
    let trip = fresh("trip_started");
    let signed_trip = signed(&trip, Some(&key));
    let stored = gw
        .publish_as(&transport, signed_trip.clone())
        .await
        .unwrap();
    let status = refuse(&gw, &transport, unsigned(&trip)).await;
    assert_status(
        &status,
        Code::AlreadyExists,
        &[("signature", "signature.differs")],
    );
    assert_eq!(metadata(&status).1["change"], "removed");
    let mut resigned = signed_trip.clone();
    resigned.signature.as_mut().unwrap().signature =
        another_signature(gw.signing_key(Department::Transport), &signed_trip.event);
    assert_ne!(resigned.signature, signed_trip.signature);
    // (It verifies: admission would refuse it as `signature.invalid` otherwise.)
    let status = refuse(&gw, &transport, resigned.clone()).await;
    assert_status(
        &status,
        Code::AlreadyExists,
        &[("signature", "signature.differs")],
    );
    assert_eq!(metadata(&status).1["change"], "changed");
    // In a batch too.
    let batch = gw
        .publisher_client(&transport)
        .await
        .publish_batch(v1::PublishBatchRequest {
            events: vec![resigned, signed_trip.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    match &batch.results[0].outcome {
        Some(v1::publish_result::Outcome::Rejected(rpc)) => assert_status(
            &hazchem_tests::status_from_rpc(rpc),
            Code::AlreadyExists,
            &[("signature", "signature.differs")],
        ),
        other => panic!("the re-signed retry is refused: {other:?}"),
    }
    match &batch.results[1].outcome {
        Some(v1::publish_result::Outcome::Accepted(a)) => {
            assert_eq!((a.sequence, a.duplicate), (stored.sequence, true));
        }
        other => panic!("the same signature is a retry: {other:?}"),
    }
    // The same signature again: a duplicate.
    let retry = gw
        .publish_as(&transport, signed_trip.clone())
        .await
        .unwrap();
    assert_eq!((retry.sequence, retry.duplicate), (stored.sequence, true));

    // The stored records are unchanged: the waybill unsigned, the trip with its first signature.
    let records = gw.bus().records().await;
    let record = |id: &str| {
        records
            .iter()
            .find(|r| r.event.id == id)
            .map(|r| r.record.clone())
            .unwrap()
    };
    assert_eq!(record(&waybill.id).signature, None);
    assert_eq!(record(&trip.id).signature, signed_trip.signature);
    nothing_was_stored(&gw, &[waybill.id, trip.id]).await;
}

async fn a_batch_carries_at_most_1000_events(kind: BusKind) {
    let gw = gateway(kind).await;
    let mut client = gw.publisher_client(&dept("transport")).await;
    let events: Vec<v1::SignedEvent> = (0..=hazchem_gateway::MAX_BATCH)
        .map(|_| unsigned(&fresh("waybill_issued")))
        .collect();
    assert_eq!(events.len(), 1001);
    let status = client
        .publish_batch(v1::PublishBatchRequest {
            events: events.clone(),
        })
        .await
        .expect_err("1001 events are too many");
    assert_status(&status, Code::InvalidArgument, &[("events", "max_len")]);
    assert_eq!(
        gw.bus().last_sequence().await,
        1,
        "nothing reached the stream"
    );

    // 1000 are fine.
    let response = client
        .publish_batch(v1::PublishBatchRequest {
            events: events[..1000].to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.results.len(), 1000);
    assert_eq!(gw.bus().last_sequence().await, 1001);
}
