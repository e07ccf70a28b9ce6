//! The simulator's traffic: deterministic, admitted by the default policy, from all nine departments,
//! with balanced batches and a ground truth that names events that exist.

#![allow(clippy::disallowed_methods)] // tests: default traffic ends at wall time, so it is admitted at wall time

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use hazchem_admission::{Admission, Limits, Policy};
use hazchem_domain::Department;
use hazchem_pki::{DevPki, Principal};
use hazchem_proto::v1;
use hazchem_proto::v1::event::Payload;
use hazchem_sim::drive::{dev_signing_keys, prepare};
use hazchem_sim::{City, CityConfig, Injections, Traffic, TrafficConfig, ViolationKind};
use prost::Message;

fn epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn traffic(seed: u64, events: usize, inject: Injections) -> Traffic {
    let city = City::generate(seed, CityConfig::default()).unwrap();
    let config = TrafficConfig {
        seed,
        epoch: epoch(),
        events,
        window: Duration::days(30),
        inject,
    };
    Traffic::generate(&city, &config).unwrap()
}

fn encoded(t: &Traffic) -> Vec<Vec<u8>> {
    t.events.iter().map(|e| e.event.encode_to_vec()).collect()
}

#[test]
fn same_seed_same_traffic_different_seed_different_traffic() {
    let a = traffic(42, 1500, Injections::all());
    let b = traffic(42, 1500, Injections::all());
    assert_eq!(encoded(&a), encoded(&b));
    assert_eq!(a.truth, b.truth);
    let c = traffic(43, 1500, Injections::all());
    assert_ne!(encoded(&a), encoded(&c));
    let city_a = City::generate(42, CityConfig::default()).unwrap();
    let city_c = City::generate(43, CityConfig::default()).unwrap();
    assert_ne!(city_a.enterprises[0].uscc, city_c.enterprises[0].uscc);
    // Another epoch: fresh ids, same city.
    let city = City::generate(42, CityConfig::default()).unwrap();
    let mut config = TrafficConfig::new(42, 300);
    config.epoch = epoch() + Duration::hours(1);
    let d = Traffic::generate(&city, &config).unwrap();
    assert_ne!(d.events[0].event.id, a.events[0].event.id);
}

#[test]
fn every_event_is_admitted_by_the_default_policy() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let keys = dev_signing_keys(&pki).unwrap();
    let admission = Admission::new(
        Policy::default_policy(),
        pki.key_registry().unwrap(),
        Limits::default(),
    );
    let policy = Policy::default_policy();
    let now = Utc::now();
    for seed in [1, 2] {
        let city = City::generate(seed, CityConfig::default()).unwrap();
        let mut config = TrafficConfig::new(seed, 3000);
        config.inject = Injections::parse(&["all=2"]).unwrap();
        let traffic = Traffic::generate(&city, &config).unwrap();
        let prepared = prepare(&traffic.events, &keys, &policy, false);
        let mut failures = Vec::new();
        for p in &prepared {
            if let Err(rejection) =
                admission.admit(&Principal::Department(p.department), &p.signed, now)
            {
                failures.push(format!(
                    "{} {} ({}): {rejection}",
                    p.id,
                    p.token,
                    p.department.code()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "seed {seed}: {} of {} rejected, first: {:#?}",
            failures.len(),
            prepared.len(),
            &failures[..failures.len().min(10)]
        );
    }
}

#[test]
fn all_departments_and_lifecycle_stages_appear() {
    let t = traffic(7, 300, Injections::all());
    let departments: BTreeSet<Department> = t.events.iter().map(|e| e.department).collect();
    assert_eq!(departments.len(), 9, "{departments:?}");
    let t = traffic(7, 3000, Injections::default());
    let tokens: BTreeSet<&str> = t.events.iter().map(|e| e.token.as_str()).collect();
    for token in [
        "production_recorded",
        "storage_recorded",
        "major_hazard_source_registered",
        "sale_recorded",
        "highly_toxic_purchase_permit_issued",
        "explosive_precursor_filed",
        "waybill_issued",
        "trip_started",
        "trip_completed",
        "road_pass_issued",
        "ship_declaration_submitted",
        "ship_declaration_decided",
        "usage_recorded",
        "waste_manifest_created",
        "waste_manifest_received",
        "licence_issued",
        "application_decided",
        "relocation_ordered",
        "sensor_readings_recorded",
        "sensor_alarm_raised",
        "sensor_alarm_cleared",
        "inspection_recorded",
        "penalty_decided",
    ] {
        assert!(tokens.contains(token), "no {token} in {tokens:?}");
    }
    // Event times never pass the epoch, and ids are unique.
    let ids: BTreeSet<&str> = t.events.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(ids.len(), t.events.len());
    for e in &t.events {
        assert!(e.event.time.as_ref().unwrap().seconds <= epoch().timestamp());
    }
}

#[test]
fn ground_truth_names_each_violation_with_events_that_exist() {
    let t = traffic(
        11,
        2000,
        Injections::parse(&["all", "alarm-storm=2"]).unwrap(),
    );
    let by_id: HashMap<&str, &hazchem_sim::SimEvent> =
        t.events.iter().map(|e| (e.event.id.as_str(), e)).collect();
    let kinds: BTreeMap<ViolationKind, usize> =
        t.truth.violations.iter().fold(BTreeMap::new(), |mut m, v| {
            *m.entry(v.kind).or_default() += 1;
            m
        });
    assert_eq!(kinds.len(), 5);
    assert_eq!(kinds[&ViolationKind::AlarmStorm], 3);
    for v in &t.truth.violations {
        assert!(!v.event_ids.is_empty(), "{v:?}");
        assert!(v.event_ids.contains(&v.violating_event_id));
        for id in &v.event_ids {
            assert!(
                by_id.contains_key(id.as_str()),
                "{} names unknown event {id}",
                v.kind
            );
        }
        assert!(!v.expected_detection.is_empty());
        let violating = by_id[v.violating_event_id.as_str()];
        match v.kind {
            ViolationKind::ListedLicence => {
                assert_eq!(violating.token, "licence_issued");
                assert_eq!(violating.department, Department::Samr);
                // The grant waits for the listing, which rests on a penalty by the same department.
                let listing = by_id[v.event_ids[v.event_ids.len() - 2].as_str()];
                assert_eq!(listing.token, "credit_listing_decided");
                assert_eq!(violating.after, vec![listing.index]);
            }
            ViolationKind::ToxicSaleWithoutPermit => {
                let Some(Payload::SaleRecorded(sale)) = &violating.event.payload else {
                    panic!("not a sale");
                };
                assert!(sale.purchase_permit_number.is_empty());
                assert!(violating.after.is_empty());
            }
            ViolationKind::UnlicensedCarrierWaybill => {
                assert_eq!(violating.token, "waybill_issued");
            }
            ViolationKind::UnbalancedBatch => assert_eq!(violating.token, "sale_recorded"),
            ViolationKind::AlarmStorm => assert_eq!(v.event_ids.len(), 20),
        }
    }
    // The truth serialises with kebab-case kinds.
    let json = serde_json::to_value(&t.truth).unwrap();
    assert_eq!(json["violations"][0]["kind"], "listed-licence");
}

/// Produced = stored in = sold = shipped for every batch but the injected unbalanced ones; every
/// highly toxic sale but the injected ones names a permit issued before it.
#[test]
fn batches_balance_and_toxic_sales_have_permits() {
    let t = traffic(5, 6000, Injections::all());
    let unbalanced: BTreeSet<String> = t
        .truth
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::UnbalancedBatch)
        .map(|v| v.violating_event_id.clone())
        .collect();
    let without_permit: BTreeSet<String> = t
        .truth
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::ToxicSaleWithoutPermit)
        .map(|v| v.violating_event_id.clone())
        .collect();
    #[derive(Default)]
    struct Batch {
        produced: f64,
        stored_in_at_producer: f64,
        sold: f64,
        shipped: f64,
        sale_ids: Vec<String>,
    }
    let mut batches: BTreeMap<String, Batch> = BTreeMap::new();
    let mut producer_of: HashMap<String, String> = HashMap::new();
    let mut permits: HashMap<String, usize> = HashMap::new();
    let mut checked_toxic = 0;
    for e in &t.events {
        match &e.event.payload {
            Some(Payload::ProductionRecorded(p)) => {
                let b = batches.entry(p.batch_code.clone()).or_default();
                b.produced += p.quantity.unwrap().value;
                producer_of.insert(p.batch_code.clone(), p.producer.clone().unwrap().uscc);
            }
            Some(Payload::StorageRecorded(s))
                if s.movement == v1::StorageMovement::In as i32
                    && producer_of.get(&s.batch_code) == Some(&s.holder.clone().unwrap().uscc) =>
            {
                batches
                    .get_mut(&s.batch_code)
                    .unwrap()
                    .stored_in_at_producer += s.quantity.unwrap().value;
            }
            Some(Payload::HighlyToxicPurchasePermitIssued(p)) => {
                permits.insert(p.permit_number.clone(), e.index);
            }
            Some(Payload::SaleRecorded(s)) => {
                let b = batches.get_mut(&s.batch_code).unwrap();
                b.sold += s.quantity.unwrap().value;
                b.sale_ids.push(e.event.id.clone());
                let chemical = hazchem_domain::Catalogue::sample()
                    .by_cas(&s.chemical.clone().unwrap().cas.parse().unwrap())
                    .unwrap()
                    .is_on("highly_toxic");
                if chemical && !without_permit.contains(&e.event.id) {
                    let permit = permits[&s.purchase_permit_number];
                    assert!(permit < e.index);
                    assert_eq!(e.after, vec![permit]);
                    checked_toxic += 1;
                }
            }
            Some(Payload::WaybillIssued(w)) => {
                for g in &w.goods {
                    batches.get_mut(&g.batch_code).unwrap().shipped += g.quantity.unwrap().value;
                }
            }
            _ => {}
        }
    }
    assert!(checked_toxic > 0, "no highly toxic sale in the traffic");
    let mut unbalanced_seen = 0;
    for (code, b) in &batches {
        assert_eq!(b.produced, b.stored_in_at_producer, "batch {code}");
        assert_eq!(b.sold, b.shipped, "batch {code}");
        if b.sale_ids.iter().any(|id| unbalanced.contains(id)) {
            assert!(b.sold > b.produced, "batch {code} should be oversold");
            unbalanced_seen += 1;
        } else {
            assert!(
                (b.sold - b.produced).abs() < 1e-9,
                "batch {code}: {} vs {}",
                b.sold,
                b.produced
            );
        }
    }
    assert_eq!(unbalanced_seen, unbalanced.len());
}

#[test]
fn small_cities_are_refused_and_identifiers_are_valid() {
    assert!(
        City::generate(
            1,
            CityConfig {
                enterprises: 3,
                ..CityConfig::default()
            }
        )
        .is_err()
    );
    let city = City::generate(9, CityConfig::default()).unwrap();
    for e in &city.enterprises {
        hazchem_domain::Uscc::parse(e.uscc.as_str()).unwrap();
    }
    for v in &city.vehicles {
        assert!(v.trailer.plate().ends_with('挂'));
        assert_eq!(v.tractor.colour().code(), 2);
    }
    for s in &city.ships {
        hazchem_domain::ImoNumber::parse(s.imo.as_str()).unwrap();
    }
    assert!(city.unlicensed_carrier().is_some());
}
