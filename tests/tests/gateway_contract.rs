//! The gateway contract: one suite, run against the embedded bus and against JetStream (a real
//! `nats-server` per test). Each `async fn` below takes the [`BusKind`]; the `contract!` macro
//! instantiates it as `embedded::<name>` and `jetstream::<name>`.
//!
//! Covered: publish (sequence, exact bytes, publisher), deduplication (retry, reused id, across
//! publishers), batch and stream publishing (per-event results in order), ordering under
//! concurrent publishers, start positions and durable cursors, filters, read entitlement, invalid
//! filters, and that every fixture is admitted.

#![allow(clippy::disallowed_methods)] // tests: events are stamped with wall time for gateways on the system clock

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use hazchem_domain::Department;
use hazchem_proto::v1;
use hazchem_proto::v1::event::Payload;
use hazchem_proto::v1::publish_result::Outcome;
use hazchem_proto::v1::start_position::Position;
use hazchem_tests::{
    BusKind, TestBus, TestGateway, assert_serving, assert_status, auditor, delivered_event,
    delivered_ids, deliveries_until, dept, error_info, fixture_tokens, fresh, from_sequence,
    next_delivery, service, set_department, signed, status_from_rpc, subscribe_request,
    take_deliveries, token_of, unique_id,
};
use prost::Message as _;
use tonic::Code;

macro_rules! contract {
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

contract!(
    the_gateway_reports_its_health_and_offers_reflection,
    publish_returns_the_sequence_and_stores_the_exact_bytes,
    a_retry_is_a_duplicate_with_the_original_sequence,
    an_id_reused_with_different_bytes_is_already_exists,
    batch_results_come_in_order,
    a_batch_again_is_all_duplicates,
    publish_stream_results_come_in_order,
    publish_stream_appends_in_send_order,
    concurrent_publishers_are_delivered_once_each_in_sequence_order,
    subscribe_from_a_sequence_catches_up_then_follows,
    subscribe_from_a_time,
    subscribe_new_only,
    a_durable_subscription_resumes_after_its_acknowledged_cursor,
    acknowledge_cursor_checks_its_arguments,
    filters_select_exactly_the_matching_events,
    restricted_events_reach_the_publisher_and_the_audience_only,
    a_narrowed_read_policy_is_enforced,
    invalid_filters_are_invalid_argument_naming_each_value,
    an_invalid_batch_code_filter_is_invalid_argument,
    every_fixture_is_admitted_and_delivered,
);

async fn gateway(kind: BusKind) -> TestGateway {
    TestGateway::start(TestBus::new(kind).await).await
}

async fn the_gateway_reports_its_health_and_offers_reflection(kind: BusKind) {
    let gw = gateway(kind).await;
    assert_serving(
        gw.client(&dept("fire")).await,
        &[
            "hazchem.v1.PublishService",
            "hazchem.v1.SubscriptionService",
        ],
    )
    .await;
    gw.stop().await;
}

fn waybill_with(change: impl FnOnce(&mut v1::WaybillIssued)) -> v1::Event {
    let mut event = fresh("waybill_issued");
    let Some(Payload::WaybillIssued(waybill)) = event.payload.as_mut() else {
        unreachable!("the waybill fixture carries a waybill")
    };
    change(waybill);
    event
}

fn ts(text: &str) -> prost_types::Timestamp {
    hazchem_proto::time::timestamp(
        DateTime::parse_from_rfc3339(text)
            .expect("RFC 3339")
            .with_timezone(&Utc),
    )
}

fn accepted(outcome: &v1::PublishResult) -> &v1::Accepted {
    match &outcome.outcome {
        Some(Outcome::Accepted(a)) => a,
        other => panic!("expected an accepted event, got {other:?}"),
    }
}

fn rejected(outcome: &v1::PublishResult) -> tonic::Status {
    match &outcome.outcome {
        Some(Outcome::Rejected(status)) => status_from_rpc(status),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

async fn publish_ok(gw: &TestGateway, event: &v1::Event) -> v1::Accepted {
    gw.publish_event(event)
        .await
        .unwrap_or_else(|status| panic!("{} was refused: {status:?}", event.id))
}

// ---------------------------------------------------------------------------------------------
// Publish and deduplication

async fn publish_returns_the_sequence_and_stores_the_exact_bytes(kind: BusKind) {
    let gw = gateway(kind).await;
    assert_eq!(gw.bus().last_sequence().await, 0);

    let waybill = fresh("waybill_issued");
    let sent = signed(&waybill, None);
    let first = gw
        .publish_as(&dept("transport"), sent.clone())
        .await
        .unwrap();
    assert_eq!(first.event_id, waybill.id);
    assert_eq!(first.sequence, 1);
    assert!(!first.duplicate);

    // A signed event: the signature travels with the bytes.
    let permit = fresh("highly_toxic_purchase_permit_issued");
    let key = gw.signing_key(Department::Psb);
    let signed_permit = signed(&permit, Some(&key));
    let second = gw
        .publish_as(&dept("psb"), signed_permit.clone())
        .await
        .unwrap();
    assert_eq!((second.sequence, second.duplicate), (2, false));
    assert_eq!(gw.bus().last_sequence().await, 2);

    let records = gw.bus().records().await;
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0].record.event, sent.event,
        "the publisher's exact bytes"
    );
    assert_eq!(records[0].record.signature, None);
    assert_eq!(
        records[0].subject,
        format!("hazchem.ev.transport.waybill_issued.{}", waybill.id)
    );
    assert_eq!(
        records[0].record.publisher,
        Some(v1::Publisher {
            principal: Some(v1::publisher::Principal::Department(
                v1::Department::Transport as i32
            ))
        })
    );
    assert!(records[0].record.accepted_at.is_some());
    assert_eq!(records[1].record.event, signed_permit.event);
    assert_eq!(records[1].record.signature, signed_permit.signature);
    assert_eq!(
        records[1].subject,
        format!(
            "hazchem.ev.psb.highly_toxic_purchase_permit_issued.{}",
            permit.id
        )
    );

    // A service publishes in its own name, without a department.
    let warning = fresh("warning_raised");
    let third = gw.publish_event(&warning).await.unwrap();
    assert_eq!((third.sequence, third.duplicate), (3, false));
    let records = gw.bus().records().await;
    assert!(
        records[2]
            .subject
            .starts_with("hazchem.ev.warning.warning_raised.")
            || records[2]
                .subject
                .starts_with("hazchem.ev.credit.warning_raised."),
        "{}",
        records[2].subject
    );
    assert!(matches!(
        records[2].record.publisher,
        Some(v1::Publisher {
            principal: Some(v1::publisher::Principal::Service(_))
        })
    ));
}

async fn a_retry_is_a_duplicate_with_the_original_sequence(kind: BusKind) {
    let gw = gateway(kind).await;
    publish_ok(&gw, &fresh("production_recorded")).await;
    let before = gw.bus().last_sequence().await;

    let event = fresh("waybill_issued");
    let sent = signed(&event, None);
    let first = gw
        .publish_as(&dept("transport"), sent.clone())
        .await
        .unwrap();
    assert_eq!((first.sequence, first.duplicate), (before + 1, false));
    for _ in 0..3 {
        let retry = gw
            .publish_as(&dept("transport"), sent.clone())
            .await
            .unwrap();
        assert_eq!(retry.event_id, event.id);
        assert_eq!(retry.sequence, first.sequence, "the original position");
        assert!(retry.duplicate);
    }
    assert_eq!(
        gw.bus().last_sequence().await,
        before + 1,
        "the stream grew by one"
    );
    // Through a batch and a stream too.
    let batch = gw
        .publisher_client(&dept("transport"))
        .await
        .publish_batch(v1::PublishBatchRequest {
            events: vec![sent.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let a = accepted(&batch.results[0]);
    assert_eq!((a.sequence, a.duplicate), (first.sequence, true));
    assert_eq!(gw.bus().last_sequence().await, before + 1);
    let records = gw.bus().records().await;
    assert_eq!(
        records.iter().filter(|r| r.event.id == event.id).count(),
        1,
        "one record per id"
    );
}

async fn an_id_reused_with_different_bytes_is_already_exists(kind: BusKind) {
    let gw = gateway(kind).await;
    let original = fresh("waybill_issued");
    let first = publish_ok(&gw, &original).await;

    let mut changed = original.clone();
    changed.subject = "WB-SOMETHING-ELSE".into();
    let status = gw
        .publish_event(&changed)
        .await
        .expect_err("a reused id is refused");
    assert_status(&status, Code::AlreadyExists, &[("id", "id.reused")]);
    let info = error_info(&status).expect("ErrorInfo");
    assert_eq!(info.reason, "EVENT_ID_REUSED");
    assert_eq!(info.domain, "hazchem.v1");
    assert_eq!(info.metadata["event_id"], original.id);
    assert_eq!(info.metadata["sequence"], first.sequence.to_string());

    // The same department, another type, the same id: still the same id.
    let mut trip = fresh("trip_started");
    trip.id = original.id.clone();
    let status = gw
        .publish_event(&trip)
        .await
        .expect_err("a reused id is refused under any type");
    assert_status(&status, Code::AlreadyExists, &[("id", "id.reused")]);

    // The original bytes again, with the stored signature, are a retry.
    let retry = gw.publish_event(&original).await.unwrap();
    assert_eq!((retry.sequence, retry.duplicate), (first.sequence, true));
    assert_eq!(gw.bus().last_sequence().await, first.sequence);

    // Ids are scoped by publisher: another department's event with the same id is its own, and
    // neither occupies nor learns anything about transport's.
    let mut licence = fresh("licence_issued");
    licence.id = original.id.clone();
    let theirs = gw
        .publish_event(&licence)
        .await
        .expect("another publisher's id is its own");
    assert_eq!(
        (theirs.sequence, theirs.duplicate),
        (first.sequence + 1, false)
    );
    let again = gw.publish_event(&licence).await.unwrap();
    assert_eq!((again.sequence, again.duplicate), (theirs.sequence, true));
    let retry = gw.publish_event(&original).await.unwrap();
    assert_eq!((retry.sequence, retry.duplicate), (first.sequence, true));
}

async fn batch_results_come_in_order(kind: BusKind) {
    let gw = gateway(kind).await;
    let transport = dept("transport");
    let earlier = fresh("waybill_issued");
    // Published signed with transport's key (as `publish_event` does); its retry carries the same
    // signature.
    let earlier_ack = publish_ok(&gw, &earlier).await;
    let key = gw.signing_key(Department::Transport);

    let a = fresh("waybill_issued");
    let invalid = waybill_with(|w| w.shipper.as_mut().unwrap().uscc = "91320623MA1P8RK2X9".into());
    let c = fresh("trip_started");
    let mut not_permitted = fresh("production_recorded");
    set_department(&mut not_permitted, Some(Department::Transport));
    let mut reused = a.clone();
    reused.subject = "different".into();
    let events = vec![
        signed(&a, None),             // 0 new
        signed(&invalid, None),       // 1 invalid
        signed(&a, None),             // 2 a again in the same batch: duplicate
        signed(&earlier, Some(&key)), // 3 published before (signed): duplicate
        signed(&c, None),             // 4 new
        signed(&not_permitted, None), // 5 permission denied
        signed(&reused, None),        // 6 id reused with other bytes
        v1::SignedEvent::default(),   // 7 empty
    ];
    let response = gw
        .publisher_client(&transport)
        .await
        .publish_batch(v1::PublishBatchRequest { events })
        .await
        .unwrap()
        .into_inner();
    let results = response.results;
    assert_eq!(results.len(), 8, "one result per event");

    let first = accepted(&results[0]);
    assert_eq!(first.event_id, a.id);
    assert!(!first.duplicate);
    assert!(first.sequence > earlier_ack.sequence);

    let status = rejected(&results[1]);
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("waybill_issued.shipper.uscc", "uscc.check_character")],
    );
    assert_eq!(error_info(&status).unwrap().reason, "FIELD_VIOLATIONS");

    let again = accepted(&results[2]);
    assert_eq!(
        (again.event_id.as_str(), again.sequence, again.duplicate),
        (a.id.as_str(), first.sequence, true)
    );

    let old = accepted(&results[3]);
    assert_eq!((old.sequence, old.duplicate), (earlier_ack.sequence, true));

    let fourth = accepted(&results[4]);
    assert_eq!(fourth.event_id, c.id);
    assert!(!fourth.duplicate);
    assert!(fourth.sequence > first.sequence, "appended in batch order");

    let status = rejected(&results[5]);
    assert_status(&status, Code::PermissionDenied, &[]);
    let info = error_info(&status).unwrap();
    assert_eq!(info.reason, "PUBLISH_NOT_PERMITTED");
    assert_eq!(info.metadata["department"], "transport");
    assert_eq!(info.metadata["event_type"], "production_recorded");

    let status = rejected(&results[6]);
    assert_status(&status, Code::AlreadyExists, &[("id", "id.reused")]);

    let status = rejected(&results[7]);
    assert_status(&status, Code::InvalidArgument, &[("event", "required")]);

    assert_eq!(
        gw.bus().last_sequence().await,
        earlier_ack.sequence + 2,
        "two new events"
    );
    let ids: Vec<String> = gw
        .bus()
        .records()
        .await
        .into_iter()
        .map(|r| r.event.id)
        .collect();
    assert_eq!(ids, [earlier.id, a.id, c.id]);
}

async fn a_batch_again_is_all_duplicates(kind: BusKind) {
    let gw = gateway(kind).await;
    let events: Vec<v1::Event> = (0..50).map(|_| fresh("waybill_issued")).collect();
    let request = v1::PublishBatchRequest {
        events: events.iter().map(|e| signed(e, None)).collect(),
    };
    let mut client = gw.publisher_client(&dept("transport")).await;
    let first = client
        .publish_batch(request.clone())
        .await
        .unwrap()
        .into_inner();
    let sequences: Vec<u64> = first.results.iter().map(|r| accepted(r).sequence).collect();
    assert_eq!(
        sequences,
        (1..=50).collect::<Vec<_>>(),
        "in batch order, gapless"
    );
    let again = client.publish_batch(request).await.unwrap().into_inner();
    for (i, result) in again.results.iter().enumerate() {
        let a = accepted(result);
        assert_eq!(a.event_id, events[i].id);
        assert_eq!((a.sequence, a.duplicate), (sequences[i], true));
    }
    assert_eq!(gw.bus().last_sequence().await, 50);
}

/// Sends `events` on one `PublishStream` as `principal` and returns the results.
async fn publish_stream(
    gw: &TestGateway,
    principal: &hazchem_pki::Principal,
    events: Vec<v1::SignedEvent>,
) -> Vec<v1::PublishResult> {
    let n = events.len();
    let requests = futures::stream::iter(
        events
            .into_iter()
            .map(|event| v1::PublishStreamRequest { event: Some(event) }),
    );
    let mut responses = gw
        .publisher_client(principal)
        .await
        .publish_stream(requests)
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::with_capacity(n);
    while let Some(item) = tokio::time::timeout(hazchem_tests::ARRIVE, responses.next())
        .await
        .expect("stream results within the deadline")
    {
        out.push(item.unwrap().result.expect("a result"));
    }
    out
}

async fn publish_stream_results_come_in_order(kind: BusKind) {
    let gw = gateway(kind).await;
    let events: Vec<v1::Event> = (0..300).map(|_| fresh("waybill_issued")).collect();
    let mut sent: Vec<v1::SignedEvent> = events.iter().map(|e| signed(e, None)).collect();
    // An invalid event and a repeat in the middle do not disturb the rest.
    let invalid = waybill_with(|w| w.goods[0].chemical.as_mut().unwrap().cas = "108-88-4".into());
    sent.insert(100, signed(&invalid, None));
    sent.insert(200, signed(&events[10], None));

    let results = publish_stream(&gw, &dept("transport"), sent.clone()).await;
    assert_eq!(results.len(), sent.len(), "one result per event");
    let mut sequences = BTreeMap::new();
    for (i, result) in results.iter().enumerate() {
        let id = v1::Event::decode(sent[i].event.as_slice()).unwrap().id;
        match i {
            100 => assert_status(
                &rejected(result),
                Code::InvalidArgument,
                &[(
                    "waybill_issued.goods[0].chemical.cas",
                    "cas.check_character",
                )],
            ),
            200 => {
                let a = accepted(result);
                assert_eq!(a.event_id, events[10].id);
                assert!(a.duplicate);
                assert_eq!(Some(&a.sequence), sequences.get(&events[10].id));
            }
            _ => {
                let a = accepted(result);
                assert_eq!(a.event_id, id, "result {i} belongs to event {i}");
                assert!(!a.duplicate);
                assert!(sequences.insert(id, a.sequence).is_none());
            }
        }
    }
    let distinct: BTreeSet<u64> = sequences.values().copied().collect();
    assert_eq!(distinct.len(), 300);
    assert_eq!(gw.bus().last_sequence().await, 300);
    for record in gw.bus().records().await {
        assert_eq!(sequences[&record.event.id], record.sequence);
    }
}

/// One publisher's stream is one ordered sequence of facts (a trip starts before it completes):
/// the record keeps the order in which the events were sent.
async fn publish_stream_appends_in_send_order(kind: BusKind) {
    let gw = gateway(kind).await;
    let events: Vec<v1::Event> = (0..300).map(|_| fresh("waybill_issued")).collect();
    let results = publish_stream(
        &gw,
        &dept("transport"),
        events.iter().map(|e| signed(e, None)).collect(),
    )
    .await;
    let sequences: Vec<u64> = results.iter().map(|r| accepted(r).sequence).collect();
    assert_eq!(
        sequences,
        (1..=300).collect::<Vec<_>>(),
        "events sent on one stream are stored in the order sent"
    );
}

async fn concurrent_publishers_are_delivered_once_each_in_sequence_order(kind: BusKind) {
    let gw = std::sync::Arc::new(gateway(kind).await);
    // Follow from the start as an auditor (reads everything).
    let mut stream = gw
        .subscribe(
            &auditor(),
            subscribe_request(v1::EventFilter::default(), None),
        )
        .await
        .unwrap();
    const PER_PUBLISHER: usize = 30;
    let kinds: [(&str, &str); 6] = [
        ("waybill_issued", "transport"),
        ("production_recorded", "emergency"),
        ("ship_declaration_submitted", "msa"),
        ("waste_manifest_created", "eeb"),
        ("theft_or_loss_reported", "psb"),
        ("incident_reported", "fire"),
    ];
    let mut tasks = Vec::new();
    for (token, code) in kinds {
        for lane in 0..2 {
            let gw = gw.clone();
            tasks.push(tokio::spawn(async move {
                let mut acks = Vec::new();
                for _ in 0..PER_PUBLISHER / 2 {
                    let mut event = fresh(token);
                    set_department(&mut event, Some(hazchem_tests::department(code)));
                    event.id = unique_id(&format!("{code}-{lane}"));
                    let a = gw.publish_event(&event).await.unwrap();
                    assert!(!a.duplicate);
                    acks.push((a.event_id, a.sequence));
                }
                acks
            }));
        }
    }
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        for (id, sequence) in task.await.unwrap() {
            assert!(acked.insert(id, sequence).is_none());
        }
    }
    let total = kinds.len() * PER_PUBLISHER;
    assert_eq!(acked.len(), total);
    let delivered = take_deliveries(&mut stream, total).await;
    let sequences: Vec<u64> = delivered.iter().map(|d| d.sequence).collect();
    assert_eq!(
        sequences,
        (1..=total as u64).collect::<Vec<_>>(),
        "every event once, in increasing sequence order, no gap"
    );
    for item in &delivered {
        let id = delivered_event(item).id;
        assert_eq!(
            acked.get(&id),
            Some(&item.sequence),
            "{id}: delivered where acked"
        );
    }
    let ids: BTreeSet<String> = delivered_ids(&delivered).into_iter().collect();
    assert_eq!(ids.len(), total, "no event twice");
}

// ---------------------------------------------------------------------------------------------
// Start positions and cursors

/// Publishes `n` fresh waybills; returns their ids.
async fn publish_waybills(gw: &TestGateway, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let event = fresh("waybill_issued");
        publish_ok(gw, &event).await;
        ids.push(event.id);
    }
    ids
}

async fn subscribe_from_a_sequence_catches_up_then_follows(kind: BusKind) {
    let gw = gateway(kind).await;
    let ids = publish_waybills(&gw, 5).await;
    let mut stream = gw
        .subscribe(
            &dept("fire"),
            subscribe_request(v1::EventFilter::default(), from_sequence(3)),
        )
        .await
        .unwrap();
    let caught_up = take_deliveries(&mut stream, 3).await;
    assert_eq!(
        caught_up.iter().map(|d| d.sequence).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert_eq!(delivered_ids(&caught_up), ids[2..]);
    let item = &caught_up[0];
    assert_eq!(
        item.subject,
        format!("hazchem.ev.transport.waybill_issued.{}", ids[2])
    );
    assert!(item.stored_at.is_some());
    // Live: what is published next arrives next.
    let later = publish_waybills(&gw, 2).await;
    let live = take_deliveries(&mut stream, 2).await;
    assert_eq!(live.iter().map(|d| d.sequence).collect::<Vec<_>>(), [6, 7]);
    assert_eq!(delivered_ids(&live), later);
    // Sequence 0 behaves as the beginning.
    let mut stream = gw
        .subscribe(
            &dept("fire"),
            subscribe_request(v1::EventFilter::default(), from_sequence(0)),
        )
        .await
        .unwrap();
    assert_eq!(next_delivery(&mut stream).await.sequence, 1);
}

async fn subscribe_from_a_time(kind: BusKind) {
    let gw = gateway(kind).await;
    publish_waybills(&gw, 2).await;
    // Every record stored before this instant was acknowledged before it; every later one after.
    let from = Utc::now();
    let later = publish_waybills(&gw, 2).await;
    let mut stream = gw
        .subscribe(
            &dept("fire"),
            subscribe_request(
                v1::EventFilter::default(),
                Some(Position::Time(hazchem_proto::time::timestamp(from))),
            ),
        )
        .await
        .unwrap();
    let delivered = take_deliveries(&mut stream, 2).await;
    assert_eq!(
        delivered.iter().map(|d| d.sequence).collect::<Vec<_>>(),
        [3, 4]
    );
    assert_eq!(delivered_ids(&delivered), later);
    for d in &delivered {
        let stored = d.stored_at.as_ref().unwrap();
        assert!(
            (stored.seconds, stored.nanos)
                >= (from.timestamp(), from.timestamp_subsec_nanos() as i32),
            "stored at or after the start time"
        );
    }
    // A time in the future delivers only what comes after it.
    let future = Utc::now() + chrono::Duration::milliseconds(1);
    let mut stream = gw
        .subscribe(
            &dept("fire"),
            subscribe_request(
                v1::EventFilter::default(),
                Some(Position::Time(hazchem_proto::time::timestamp(future))),
            ),
        )
        .await
        .unwrap();
    // Publish only once the start time has passed.
    while Utc::now() <= future {
        tokio::task::yield_now().await;
    }
    let next = publish_waybills(&gw, 1).await;
    assert_eq!(delivered_ids(&[next_delivery(&mut stream).await]), next);
}

async fn subscribe_new_only(kind: BusKind) {
    let gw = gateway(kind).await;
    publish_waybills(&gw, 3).await;
    let mut stream = gw
        .subscribe(
            &dept("fire"),
            subscribe_request(
                v1::EventFilter::default(),
                Some(Position::NewOnly(v1::NewOnly {})),
            ),
        )
        .await
        .unwrap();
    // The call returned: the start position is fixed, so what comes now is delivered.
    let next = publish_waybills(&gw, 2).await;
    let delivered = take_deliveries(&mut stream, 2).await;
    assert_eq!(
        delivered.iter().map(|d| d.sequence).collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!(delivered_ids(&delivered), next);
}

fn durable(name: &str) -> Option<Position> {
    Some(Position::DurableName(name.to_owned()))
}

async fn acknowledge(gw: &TestGateway, who: &hazchem_pki::Principal, name: &str, sequence: u64) {
    gw.subscriptions(who)
        .await
        .acknowledge_cursor(v1::AcknowledgeCursorRequest {
            durable_name: name.to_owned(),
            sequence,
        })
        .await
        .unwrap_or_else(|s| panic!("acknowledge {name} at {sequence}: {s:?}"));
}

async fn a_durable_subscription_resumes_after_its_acknowledged_cursor(kind: BusKind) {
    let gw = gateway(kind).await;
    let fire = dept("fire");
    let ids = publish_waybills(&gw, 5).await;

    // A new durable name starts at the beginning.
    let mut stream = gw
        .subscribe(
            &fire,
            subscribe_request(v1::EventFilter::default(), durable("coordination")),
        )
        .await
        .unwrap();
    let first = take_deliveries(&mut stream, 5).await;
    assert_eq!(delivered_ids(&first), ids);
    acknowledge(&gw, &fire, "coordination", 3).await;
    drop(stream);

    let more = publish_waybills(&gw, 2).await;
    let mut stream = gw
        .subscribe(
            &fire,
            subscribe_request(v1::EventFilter::default(), durable("coordination")),
        )
        .await
        .unwrap();
    let resumed = take_deliveries(&mut stream, 4).await;
    assert_eq!(
        resumed.iter().map(|d| d.sequence).collect::<Vec<_>>(),
        [4, 5, 6, 7],
        "continues right after the acknowledged sequence: no gap, no duplicate"
    );
    assert_eq!(delivered_ids(&resumed)[2..], more[..]);
    acknowledge(&gw, &fire, "coordination", 7).await;
    drop(stream);

    let mut stream = gw
        .subscribe(
            &fire,
            subscribe_request(v1::EventFilter::default(), durable("coordination")),
        )
        .await
        .unwrap();
    let last = publish_waybills(&gw, 1).await;
    let item = next_delivery(&mut stream).await;
    assert_eq!(
        (item.sequence, delivered_event(&item).id),
        (8, last[0].clone())
    );

    // Durable names belong to their principal: the same name as another department is new.
    let mut other = gw
        .subscribe(
            &dept("emergency"),
            subscribe_request(v1::EventFilter::default(), durable("coordination")),
        )
        .await
        .unwrap();
    assert_eq!(next_delivery(&mut other).await.sequence, 1);
    // Acknowledging backwards moves the cursor back.
    acknowledge(&gw, &fire, "coordination", 2).await;
    let mut stream = gw
        .subscribe(
            &fire,
            subscribe_request(v1::EventFilter::default(), durable("coordination")),
        )
        .await
        .unwrap();
    assert_eq!(next_delivery(&mut stream).await.sequence, 3);
}

async fn acknowledge_cursor_checks_its_arguments(kind: BusKind) {
    let gw = gateway(kind).await;
    publish_waybills(&gw, 2).await;
    let mut client = gw.subscriptions(&dept("fire")).await;
    for (name, sequence, field, rule) in [
        ("c1", 0, "sequence", "sequence.out_of_range"),
        ("c1", 3, "sequence", "sequence.out_of_range"),
        ("not a name!", 1, "durable_name", "token.format"),
        ("", 1, "durable_name", "token.format"),
    ] {
        let status = client
            .acknowledge_cursor(v1::AcknowledgeCursorRequest {
                durable_name: name.into(),
                sequence,
            })
            .await
            .expect_err(&format!("acknowledging {name:?} at {sequence} is refused"));
        assert_status(&status, Code::InvalidArgument, &[(field, rule)]);
    }
    let status = gw
        .subscribe(
            &dept("fire"),
            subscribe_request(v1::EventFilter::default(), durable("a b")),
        )
        .await
        .expect_err("an invalid durable name is refused");
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("durable_name", "token.format")],
    );
    // None of it moved a cursor: the name still starts at the beginning.
    let mut stream = gw
        .subscribe(
            &dept("fire"),
            subscribe_request(v1::EventFilter::default(), durable("c1")),
        )
        .await
        .unwrap();
    assert_eq!(next_delivery(&mut stream).await.sequence, 1);
}

// ---------------------------------------------------------------------------------------------
// Filters

const USCC_A: &str = "91350200776049653A";
const USCC_B: &str = "91440101MA5CJQ4N59";
const USCC_ABSENT: &str = "91320600MA1N2K3P9E";
const CAS_A: &str = "7732-18-5";
const CAS_B: &str = "7664-41-7";
const LOT_A: &str = "GW-LOT-A";
const LOT_B: &str = "GW-LOT-B";

/// What the test knows about one published event: everything a filter looks at, with only the
/// identifiers this test put in (the fixtures' own identifiers are never filtered on).
#[derive(Debug, Clone)]
struct Published {
    sequence: u64,
    id: String,
    department: Department,
    token: String,
    time: DateTime<Utc>,
    enterprises: BTreeSet<&'static str>,
    chemicals: BTreeSet<&'static str>,
    batches: BTreeSet<&'static str>,
}

#[derive(Debug, Default, Clone)]
struct Filter {
    departments: Vec<Department>,
    types: Vec<&'static str>,
    enterprises: Vec<&'static str>,
    chemicals: Vec<&'static str>,
    batches: Vec<&'static str>,
    from: Option<&'static str>,
    until: Option<&'static str>,
}

impl Filter {
    fn proto(&self) -> v1::EventFilter {
        v1::EventFilter {
            departments: self
                .departments
                .iter()
                .map(|d| v1::Department::from(*d) as i32)
                .collect(),
            event_types: self.types.iter().map(|t| (*t).to_owned()).collect(),
            enterprises: self.enterprises.iter().map(|t| (*t).to_owned()).collect(),
            chemicals: self.chemicals.iter().map(|t| (*t).to_owned()).collect(),
            batch_codes: self.batches.iter().map(|t| (*t).to_owned()).collect(),
            time_from: self.from.map(ts),
            time_until: self.until.map(ts),
        }
    }

    fn matches(&self, p: &Published) -> bool {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        (self.departments.is_empty() || self.departments.contains(&p.department))
            && (self.types.is_empty() || self.types.contains(&p.token.as_str()))
            && (self.enterprises.is_empty()
                || self.enterprises.iter().any(|e| p.enterprises.contains(e)))
            && (self.chemicals.is_empty() || self.chemicals.iter().any(|c| p.chemicals.contains(c)))
            && (self.batches.is_empty() || self.batches.iter().any(|b| p.batches.contains(b)))
            && self.from.is_none_or(|f| p.time >= at(f))
            && self.until.is_none_or(|u| p.time < at(u))
    }
}

struct Record<'a> {
    gw: &'a TestGateway,
    published: Vec<Published>,
}

impl Record<'_> {
    async fn publish(
        &mut self,
        mut event: v1::Event,
        time: &str,
        enterprises: &[&'static str],
        chemicals: &[&'static str],
        batches: &[&'static str],
    ) {
        event.time = Some(ts(time));
        let a = publish_ok(self.gw, &event).await;
        self.published.push(Published {
            sequence: a.sequence,
            id: event.id.clone(),
            department: hazchem_tests::department_of(&event).expect("a department's event"),
            token: token_of(&event),
            time: DateTime::parse_from_rfc3339(time)
                .unwrap()
                .with_timezone(&Utc),
            enterprises: enterprises.iter().copied().collect(),
            chemicals: chemicals.iter().copied().collect(),
            batches: batches.iter().copied().collect(),
        });
    }

    /// Subscribes with `filter` from the first sequence, then publishes `sentinel` (which must
    /// match it) and checks that exactly the matching events arrived before it, in order.
    async fn check(&mut self, name: &str, filter: Filter, sentinel: (v1::Event, &str, Tags)) {
        let mut stream = self
            .gw
            .subscribe(
                &dept("fire"),
                subscribe_request(filter.proto(), from_sequence(1)),
            )
            .await
            .unwrap_or_else(|s| panic!("{name}: {s:?}"));
        let (event, time, (enterprises, chemicals, batches)) = sentinel;
        let id = event.id.clone();
        self.publish(event, time, enterprises, chemicals, batches)
            .await;
        let sentinel = self.published.last().unwrap().clone();
        assert!(
            filter.matches(&sentinel),
            "{name}: the sentinel must match the filter"
        );
        let delivered = deliveries_until(&mut stream, &id).await;
        let expected: Vec<(u64, String)> = self
            .published
            .iter()
            .filter(|p| filter.matches(p))
            .map(|p| (p.sequence, p.id.clone()))
            .collect();
        let got: Vec<(u64, String)> = delivered
            .iter()
            .map(|d| (d.sequence, delivered_event(d).id))
            .collect();
        assert_eq!(got, expected, "{name}: {filter:?}");
    }
}

type Tags = (
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);
const NO_TAGS: Tags = (&[], &[], &[]);

fn waybill_keyed(uscc: &str, cas: &str, lot: &str) -> v1::Event {
    waybill_with(|w| {
        w.shipper.as_mut().unwrap().uscc = uscc.into();
        w.goods[0].chemical.as_mut().unwrap().cas = cas.into();
        w.goods[0].batch_code = lot.into();
    })
}

fn licence_held_by(uscc: &str) -> v1::Event {
    let mut event = fresh("licence_issued");
    let Some(Payload::LicenceIssued(l)) = event.payload.as_mut() else {
        unreachable!()
    };
    l.licence.as_mut().unwrap().holder.as_mut().unwrap().uscc = uscc.into();
    event
}

fn declaration_of(cas: &str) -> v1::Event {
    let mut event = fresh("ship_declaration_submitted");
    let Some(Payload::ShipDeclarationSubmitted(d)) = event.payload.as_mut() else {
        unreachable!()
    };
    d.goods[0].chemical.as_mut().unwrap().cas = cas.into();
    event
}

async fn filters_select_exactly_the_matching_events(kind: BusKind) {
    let gw = gateway(kind).await;
    let mut record = Record {
        gw: &gw,
        published: Vec::new(),
    };
    let (a, b) = (&[USCC_A][..], &[USCC_B][..]);
    record
        .publish(
            waybill_keyed(USCC_A, CAS_A, LOT_A),
            "2026-11-10T00:00:00Z",
            a,
            &[CAS_A],
            &[LOT_A],
        )
        .await;
    record
        .publish(
            waybill_keyed(USCC_B, CAS_B, LOT_B),
            "2026-11-12T00:00:00Z",
            b,
            &[CAS_B],
            &[LOT_B],
        )
        .await;
    record
        .publish(licence_held_by(USCC_A), "2026-11-14T00:00:00Z", a, &[], &[])
        .await;
    record
        .publish(
            declaration_of(CAS_A),
            "2026-11-16T00:00:00Z",
            &[],
            &[CAS_A],
            &[],
        )
        .await;
    record
        .publish(
            fresh("theft_or_loss_reported"),
            "2026-11-18T00:00:00Z",
            &[],
            &[],
            &[],
        )
        .await;

    let transport = Filter {
        departments: vec![Department::Transport],
        ..Filter::default()
    };
    record
        .check(
            "department",
            transport,
            (fresh("trip_started"), "2026-11-19T00:00:00Z", NO_TAGS),
        )
        .await;
    record
        .check(
            "department without events",
            Filter {
                departments: vec![Department::Miit],
                ..Filter::default()
            },
            (fresh("relocation_ordered"), "2026-11-19T00:00:00Z", NO_TAGS),
        )
        .await;
    record
        .check(
            "two departments",
            Filter {
                departments: vec![Department::Msa, Department::Psb],
                ..Filter::default()
            },
            (
                fresh("ship_declaration_decided"),
                "2026-11-19T00:00:00Z",
                NO_TAGS,
            ),
        )
        .await;
    record
        .check(
            "event types",
            Filter {
                types: vec!["waybill_issued", "licence_issued"],
                ..Filter::default()
            },
            (
                licence_held_by(USCC_B),
                "2026-11-19T00:00:00Z",
                (&[USCC_B], &[], &[]),
            ),
        )
        .await;
    record
        .check(
            "department and type",
            Filter {
                departments: vec![Department::Emergency],
                types: vec!["licence_issued"],
                ..Filter::default()
            },
            (
                licence_held_by(USCC_B),
                "2026-11-19T00:00:00Z",
                (&[USCC_B], &[], &[]),
            ),
        )
        .await;
    record
        .check(
            "enterprise",
            Filter {
                enterprises: vec![USCC_A],
                ..Filter::default()
            },
            (
                licence_held_by(USCC_A),
                "2026-11-19T00:00:00Z",
                (&[USCC_A], &[], &[]),
            ),
        )
        .await;
    record
        .check(
            "enterprise nobody names",
            Filter {
                enterprises: vec![USCC_ABSENT],
                ..Filter::default()
            },
            (
                licence_held_by(USCC_ABSENT),
                "2026-11-19T00:00:00Z",
                (&[USCC_ABSENT], &[], &[]),
            ),
        )
        .await;
    record
        .check(
            "chemical",
            Filter {
                chemicals: vec![CAS_A],
                ..Filter::default()
            },
            (
                declaration_of(CAS_A),
                "2026-11-19T00:00:00Z",
                (&[], &[CAS_A], &[]),
            ),
        )
        .await;
    record
        .check(
            "batch code",
            Filter {
                batches: vec![LOT_B],
                ..Filter::default()
            },
            (
                waybill_keyed(USCC_B, CAS_B, LOT_B),
                "2026-11-19T00:00:00Z",
                (&[USCC_B], &[CAS_B], &[LOT_B]),
            ),
        )
        .await;
    record
        .check(
            "batch code nobody uses",
            Filter {
                batches: vec!["GW-LOT-NONE"],
                ..Filter::default()
            },
            (
                waybill_keyed(USCC_B, CAS_B, "GW-LOT-NONE"),
                "2026-11-19T00:00:00Z",
                (&[USCC_B], &[CAS_B], &["GW-LOT-NONE"]),
            ),
        )
        .await;
    record
        .check(
            "enterprise and type",
            Filter {
                enterprises: vec![USCC_A],
                types: vec!["waybill_issued"],
                ..Filter::default()
            },
            (
                waybill_keyed(USCC_A, CAS_B, LOT_B),
                "2026-11-19T00:00:00Z",
                (&[USCC_A], &[CAS_B], &[LOT_B]),
            ),
        )
        .await;
    record
        .check(
            "time range (from inclusive, until exclusive)",
            Filter {
                from: Some("2026-11-12T00:00:00Z"),
                until: Some("2026-11-16T00:00:00Z"),
                ..Filter::default()
            },
            (
                fresh("theft_or_loss_reported"),
                "2026-11-15T00:00:00Z",
                NO_TAGS,
            ),
        )
        .await;
    record
        .check(
            "time range before everything",
            Filter {
                until: Some("2026-11-01T00:00:00Z"),
                ..Filter::default()
            },
            (
                fresh("theft_or_loss_reported"),
                "2026-10-01T00:00:00Z",
                NO_TAGS,
            ),
        )
        .await;
    record
        .check(
            "everything at once",
            Filter {
                departments: vec![Department::Transport],
                types: vec!["waybill_issued"],
                enterprises: vec![USCC_A, USCC_B],
                chemicals: vec![CAS_A],
                batches: vec![LOT_A],
                from: Some("2026-11-01T00:00:00Z"),
                until: Some("2026-11-21T00:00:00Z"),
            },
            (
                waybill_keyed(USCC_B, CAS_A, LOT_A),
                "2026-11-20T00:00:00Z",
                (&[USCC_B], &[CAS_A], &[LOT_A]),
            ),
        )
        .await;
}

// ---------------------------------------------------------------------------------------------
// Read entitlement

/// The first delivery to `who` from `sequence`: its event id.
async fn first_seen_by(gw: &TestGateway, who: &hazchem_pki::Principal, sequence: u64) -> String {
    let mut stream = gw
        .subscribe(
            who,
            subscribe_request(v1::EventFilter::default(), from_sequence(sequence)),
        )
        .await
        .unwrap();
    delivered_event(&next_delivery(&mut stream).await).id
}

async fn restricted_events_reach_the_publisher_and_the_audience_only(kind: BusKind) {
    let gw = gateway(kind).await;
    let mut restricted = fresh("incident_reported");
    restricted.classification = v1::DataClassification::Restricted as i32;
    restricted.audience = vec![v1::Department::Fire as i32, v1::Department::Psb as i32];
    let at = publish_ok(&gw, &restricted).await.sequence;
    // A shared event after it: whoever may not read the restricted one sees this first.
    let marker = fresh("production_recorded");
    publish_ok(&gw, &marker).await;

    for (who, sees) in [
        (dept("emergency"), true), // the publisher
        (dept("fire"), true),      // audience
        (dept("psb"), true),       // audience
        (dept("transport"), false),
        (dept("miit"), false),
        (dept("eeb"), false),
        (auditor(), true),
        (service("ledger"), true),
    ] {
        let first = first_seen_by(&gw, &who, at).await;
        let expected = if sees { &restricted.id } else { &marker.id };
        assert_eq!(
            &first, expected,
            "{who:?} sees the restricted event: {sees}"
        );
    }

    // Filters do not widen entitlement: transport asking for exactly that type and department
    // still does not get it (the next one it may read comes first).
    let filter = v1::EventFilter {
        event_types: vec!["incident_reported".into()],
        ..Default::default()
    };
    let mut stream = gw
        .subscribe(
            &dept("transport"),
            subscribe_request(filter, from_sequence(1)),
        )
        .await
        .unwrap();
    let shared = fresh("incident_reported");
    publish_ok(&gw, &shared).await;
    assert_eq!(
        delivered_event(&next_delivery(&mut stream).await).id,
        shared.id
    );
}

async fn a_narrowed_read_policy_is_enforced(kind: BusKind) {
    // miit reads only relocation orders and warning acknowledgements.
    let policy = hazchem_admission::DEFAULT_POLICY.replace(
        "[read]\nmiit = [\"*\"]",
        "[read]\nmiit = [\"relocation_ordered\", \"warning_*\"]",
    );
    assert_ne!(
        policy,
        hazchem_admission::DEFAULT_POLICY,
        "the read rule was narrowed"
    );
    let gw = TestGateway::builder(TestBus::new(kind).await)
        .policy(policy)
        .start()
        .await;
    let waybill = fresh("waybill_issued");
    let at = publish_ok(&gw, &waybill).await.sequence;
    // Restricted, naming miit in its audience: the type is still not miit's to read.
    let mut restricted = fresh("waybill_issued");
    restricted.classification = v1::DataClassification::Restricted as i32;
    restricted.audience = vec![v1::Department::Miit as i32];
    publish_ok(&gw, &restricted).await;
    let relocation = fresh("relocation_ordered");
    publish_ok(&gw, &relocation).await;

    assert_eq!(first_seen_by(&gw, &dept("miit"), at).await, relocation.id);
    assert_eq!(first_seen_by(&gw, &dept("transport"), at).await, waybill.id);
    assert_eq!(first_seen_by(&gw, &dept("fire"), at).await, waybill.id);
    // The restricted waybill: its publisher reads it, fire does not.
    assert_eq!(
        first_seen_by(&gw, &dept("transport"), at + 1).await,
        restricted.id
    );
    assert_eq!(
        first_seen_by(&gw, &dept("fire"), at + 1).await,
        relocation.id
    );
    // Asking for the type explicitly does not help miit.
    let filter = v1::EventFilter {
        event_types: vec!["waybill_issued".into(), "relocation_ordered".into()],
        ..Default::default()
    };
    let mut stream = gw
        .subscribe(&dept("miit"), subscribe_request(filter, from_sequence(1)))
        .await
        .unwrap();
    assert_eq!(
        delivered_event(&next_delivery(&mut stream).await).id,
        relocation.id
    );
}

// ---------------------------------------------------------------------------------------------
// Invalid subscriptions

async fn invalid_filters_are_invalid_argument_naming_each_value(kind: BusKind) {
    let gw = gateway(kind).await;
    publish_waybills(&gw, 1).await;
    let uscc_rule = {
        let e = hazchem_domain::Uscc::parse("91350200776049653B").unwrap_err();
        format!("{}.{}", e.kind.as_str(), e.rule.as_str())
    };
    let filter = v1::EventFilter {
        departments: vec![v1::Department::Fire as i32, 99, 0],
        event_types: vec!["waybill_issued".into(), "no_such_event".into()],
        enterprises: vec!["91350200776049653B".into()],
        chemicals: vec![CAS_A.into(), "7664-41-8".into()],
        batch_codes: vec![],
        time_from: Some(ts("2026-11-20T00:00:00Z")),
        time_until: Some(ts("2026-11-10T00:00:00Z")),
    };
    let status = gw
        .subscribe(&dept("fire"), subscribe_request(filter, None))
        .await
        .expect_err("an invalid filter is refused");
    assert_status(
        &status,
        Code::InvalidArgument,
        &[
            ("filter.departments[1]", "department.unknown"),
            ("filter.departments[2]", "department.unknown"),
            ("filter.event_types[1]", "event_type.unknown"),
            ("filter.enterprises[0]", &uscc_rule),
            ("filter.chemicals[1]", "cas.check_character"),
            ("filter.time_until", "time_range.empty"),
        ],
    );
    assert_eq!(error_info(&status).unwrap().reason, "FIELD_VIOLATIONS");

    // An empty range (from = until) too.
    let filter = v1::EventFilter {
        time_from: Some(ts("2026-11-10T00:00:00Z")),
        time_until: Some(ts("2026-11-10T00:00:00Z")),
        ..Default::default()
    };
    let status = gw
        .subscribe(&dept("fire"), subscribe_request(filter, None))
        .await
        .expect_err("an empty range is refused");
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("filter.time_until", "time_range.empty")],
    );

    // An invalid start time.
    let status = gw
        .subscribe(
            &dept("fire"),
            subscribe_request(
                v1::EventFilter::default(),
                Some(Position::Time(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                })),
            ),
        )
        .await
        .expect_err("an invalid start time is refused");
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("start.time", "timestamp.range")],
    );
}

/// A batch code that can never match (it breaks the batch code rule) is a mistake to report, like
/// an invalid USCC or CAS number, not a subscription that silently never delivers.
async fn an_invalid_batch_code_filter_is_invalid_argument(kind: BusKind) {
    let gw = gateway(kind).await;
    let filter = v1::EventFilter {
        batch_codes: vec![LOT_A.into(), "lot 7/2026".into()],
        ..Default::default()
    };
    let status = gw
        .subscribe(&dept("fire"), subscribe_request(filter, None))
        .await
        .expect_err("an invalid batch code is refused");
    assert_status(
        &status,
        Code::InvalidArgument,
        &[("filter.batch_codes[1]", "batch_code.charset")],
    );
}

// ---------------------------------------------------------------------------------------------
// Fixtures

async fn every_fixture_is_admitted_and_delivered(kind: BusKind) {
    let gw = gateway(kind).await;
    let tokens = fixture_tokens();
    assert!(tokens.len() >= 49, "a fixture per event type: {tokens:?}");
    let mut ids = Vec::new();
    for token in &tokens {
        let event = fresh(token);
        let a = gw
            .publish_event(&event)
            .await
            .unwrap_or_else(|s| panic!("fixture {token} is refused: {s:?}"));
        assert!(!a.duplicate);
        ids.push(event.id);
    }
    let mut stream = gw
        .subscribe(
            &auditor(),
            subscribe_request(v1::EventFilter::default(), None),
        )
        .await
        .unwrap();
    let delivered = take_deliveries(&mut stream, ids.len()).await;
    assert_eq!(delivered_ids(&delivered), ids);
}
