//! Origin signatures verified again by an auditor, through offline bundles: the records are real
//! prost-encoded `hazchem.v1.Record`s, and the hostile party is whoever wrote them into the log before the
//! checkpoint was signed (a compromised gateway or bus operator), so every bundle here verifies by the
//! log key alone and fails only when origin signatures are checked with the auditor's key registry,
//! naming the leaf. Also: the wire reader agrees with prost, and a rotated key verifies what it signed in
//! its time only.

#![allow(clippy::disallowed_methods)] // tests: a bundle's createdAt is descriptive

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use hazchem_domain::Department;
use hazchem_proto::v1;
use hazchem_verify::bundle::{self, BundleRecord, BundleWriter};
use hazchem_verify::ed25519_dalek::{Signer as _, SigningKey};
use hazchem_verify::merkle::{self, MemoryTree};
use hazchem_verify::note::{Checkpoint, NoteSigner};
use hazchem_verify::origin::{OriginCheck, SignatureRules};
use hazchem_verify::record::{self, Publisher};
use hazchem_verify::registry::{KeyRegistry, OriginKey, origin_key_id};
use hazchem_verify::verify::{ProblemKind, Requirements, Verified, VerifyFailure};
use hazchem_verify::{PublicKey, VerifierKey};
use proptest::prelude::*;
use prost::Message as _;

const ORIGIN: &str = "hazchem.example/ledger";

fn fixture(token: &str) -> v1::Event {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/events")
        .join(format!("{token}.json"));
    hazchem_proto::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn id_of(department: Department, key: &SigningKey) -> String {
    origin_key_id(department, &PublicKey::from(key))
}

/// The policy's rules: these four types must be signed, by whoever publishes them.
fn rules() -> SignatureRules {
    SignatureRules::new(
        [],
        [
            "credit_listing_decided",
            "credit_repair_decided",
            "credit_repair_revoked",
            "highly_toxic_purchase_permit_issued",
        ],
    )
    .unwrap()
}

/// A stored record as the gateway writes it: the fixture of `token` (id `ev-<n>`), published by its
/// department, accepted at `accepted`, signed with `signature` if given (key id, signing key).
fn record(
    n: u64,
    token: &str,
    accepted: DateTime<Utc>,
    signature: Option<(&str, &SigningKey)>,
) -> Vec<u8> {
    let mut event = fixture(token);
    event.id = format!("ev-{n}");
    let bytes = event.encode_to_vec();
    v1::Record {
        signature: signature.map(|(id, k)| v1::OriginSignature {
            key_id: id.to_owned(),
            signature: k.sign(&bytes).to_bytes().to_vec(),
        }),
        event: bytes,
        publisher: Some(v1::Publisher {
            principal: Some(v1::publisher::Principal::Department(event.department)),
        }),
        accepted_at: Some(hazchem_proto::time::timestamp(accepted)),
    }
    .encode_to_vec()
}

/// A log of 40 records: waybills by transport (unsigned, as the policy allows), and every fifth a credit
/// listing by emergency, signed with emergency's key.
fn honest_log() -> Vec<Vec<u8>> {
    let emergency = key(5);
    let id = id_of(Department::Emergency, &emergency);
    (0..40)
        .map(|n| {
            if n % 5 == 0 {
                record(
                    n,
                    "credit_listing_decided",
                    at(1_790_000_000 + n as i64),
                    Some((&id, &emergency)),
                )
            } else {
                record(n, "waybill_issued", at(1_790_000_000 + n as i64), None)
            }
        })
        .collect()
}

fn registry() -> KeyRegistry {
    let mut registry = KeyRegistry::new();
    registry.insert(Department::Emergency, PublicKey::from(&key(5)));
    registry.insert(Department::Psb, PublicKey::from(&key(2)));
    registry
}

fn log_signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, key(200)).unwrap()
}

/// Writes a bundle of `records` with a checkpoint over them (signed by the log's key), carrying
/// `offered` as its signing-keys.toml.
fn export(dir: &Path, records: &[Vec<u8>], offered: &KeyRegistry) -> PathBuf {
    let tree = MemoryTree::from_leaf_hashes(records.iter().map(|r| merkle::leaf_hash(r)));
    let size = records.len() as u64;
    let mut writer = BundleWriter::create(dir).unwrap();
    for (i, r) in records.iter().enumerate() {
        writer
            .write_record(&BundleRecord {
                index: i as u64,
                record: r.clone(),
                proof: Some(merkle::inclusion_proof(&tree, i as u64, size).unwrap()),
            })
            .unwrap();
    }
    writer.write_origin_keys(offered).unwrap();
    let note = log_signer().sign_checkpoint(&Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: tree.root(),
    });
    writer
        .finish(&note, Some(&log_signer().verifier()), None, Utc::now())
        .unwrap()
}

fn verify_with(dir: &Path, check: Option<OriginCheck>) -> Result<Verified, VerifyFailure> {
    let requirements = Requirements {
        origin: check,
        ..Requirements::default()
    };
    bundle::verify_bundle(dir, log_signer().verifier(), &requirements)
}

/// The bundle verifies by the log key alone, and fails with origin signatures checked, its first
/// problem an origin signature problem at `leaf` containing `needle`.
fn fails_only_by_origin(dir: &Path, registry: KeyRegistry, leaf: u64, needle: &str) {
    let by_log_key = verify_with(dir, None).expect("the log key alone vouches for it");
    assert_eq!(by_log_key.origin, None);
    let failure = verify_with(dir, Some(OriginCheck::new(registry, rules())))
        .expect_err("origin signatures must not verify");
    let first = failure.first();
    assert_eq!(first.kind, ProblemKind::OriginSignature, "{failure}");
    assert_eq!(first.index, Some(leaf), "{failure}");
    assert!(
        first.message.starts_with(&format!("leaf {leaf}: ")) && first.message.contains(needle),
        "{needle:?} not in {failure}"
    );
    assert_eq!(failure.problems.len(), 1, "{:?}", failure.problems);
}

#[test]
fn an_honest_bundle_verifies_every_origin_signature() {
    let dir = tempfile::tempdir().unwrap();
    let path = export(&dir.path().join("b"), &honest_log(), &registry());
    let verified = verify_with(&path, Some(OriginCheck::new(registry(), rules()))).unwrap();
    let origin = verified.origin.clone().unwrap();
    assert_eq!(origin.signed(), 8);
    assert_eq!(origin.unsigned, 32);
    assert_eq!(
        origin.verified.keys().collect::<Vec<_>>(),
        [&id_of(Department::Emergency, &key(5))]
    );
    let text = verified.to_string();
    assert!(
        text.contains(&format!(
            "origin signatures: 8 good ({}: 8); 32 records unsigned (none of a type that must be signed)",
            id_of(Department::Emergency, &key(5))
        )),
        "{text}"
    );
}

#[test]
fn a_tampered_signature_names_the_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = honest_log();
    // Leaf 15's stored signature with one bit flipped, written before the checkpoint was signed.
    let mut stored = v1::Record::decode(records[15].as_slice()).unwrap();
    stored.signature.as_mut().unwrap().signature[7] ^= 0x01;
    records[15] = stored.encode_to_vec();
    let path = export(&dir.path().join("flip"), &records, &registry());
    fails_only_by_origin(
        &path,
        registry(),
        15,
        "the origin signature is not good: the signature does not verify against the registered public \
         key emergency+",
    );

    // The sanction changed after it was signed (the event bytes, not the signature).
    let mut records = honest_log();
    let mut stored = v1::Record::decode(records[20].as_slice()).unwrap();
    let mut event = v1::Event::decode(stored.event.as_slice()).unwrap();
    event.subject = "another enterprise".into();
    stored.event = event.encode_to_vec();
    records[20] = stored.encode_to_vec();
    let path = export(&dir.path().join("changed"), &records, &registry());
    fails_only_by_origin(&path, registry(), 20, "does not verify");

    // A signature by another department's key under emergency's key id.
    let mut records = honest_log();
    let id = id_of(Department::Emergency, &key(5));
    records[25] = record(
        25,
        "credit_listing_decided",
        at(1_790_000_025),
        Some((&id, &key(2))),
    );
    let path = export(&dir.path().join("other"), &records, &registry());
    fails_only_by_origin(&path, registry(), 25, "does not verify");
}

#[test]
fn a_removed_signature_names_the_leaf_where_the_rules_require_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = honest_log();
    let mut stored = v1::Record::decode(records[10].as_slice()).unwrap();
    stored.signature = None;
    records[10] = stored.encode_to_vec();
    let path = export(&dir.path().join("removed"), &records, &registry());
    fails_only_by_origin(
        &path,
        registry(),
        10,
        "a credit_listing_decided event of department `emergency` carries no origin signature, but the \
         signature rules require one",
    );
    // An empty signature message is no signature either.
    let mut records = honest_log();
    let mut stored = v1::Record::decode(records[10].as_slice()).unwrap();
    stored.signature = Some(v1::OriginSignature::default());
    records[10] = stored.encode_to_vec();
    let path = export(&dir.path().join("empty"), &records, &registry());
    fails_only_by_origin(&path, registry(), 10, "carries no origin signature");
    // A credit listing that claims to be a waybill in its `type` attribute is still a credit listing.
    let mut records = honest_log();
    let mut stored = v1::Record::decode(records[10].as_slice()).unwrap();
    let mut event = v1::Event::decode(stored.event.as_slice()).unwrap();
    event.r#type = "cn.hazchem.v1.waybill_issued".into();
    stored.event = event.encode_to_vec();
    stored.signature = None;
    records[10] = stored.encode_to_vec();
    let path = export(&dir.path().join("retyped"), &records, &registry());
    fails_only_by_origin(&path, registry(), 10, "a credit_listing_decided event");
    // Published as a service, which has no key: still refused.
    let mut records = honest_log();
    let mut stored = v1::Record::decode(records[10].as_slice()).unwrap();
    stored.signature = None;
    stored.publisher = Some(v1::Publisher {
        principal: Some(v1::publisher::Principal::Service("credit".into())),
    });
    records[10] = stored.encode_to_vec();
    let path = export(&dir.path().join("service"), &records, &registry());
    fails_only_by_origin(
        &path,
        registry(),
        10,
        "of service `credit` carries no origin signature",
    );
}

#[test]
fn a_key_the_bundle_carries_but_the_registry_lacks_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    // Leaf 30 signed with a key the operator slipped in, and the bundle lists it for emergency.
    let mut records = honest_log();
    let intruder = key(66);
    let intruder_id = id_of(Department::Emergency, &intruder);
    records[30] = record(
        30,
        "credit_listing_decided",
        at(1_790_000_030),
        Some((&intruder_id, &intruder)),
    );
    let mut offered = registry();
    offered
        .add(OriginKey::new(
            Department::Emergency,
            PublicKey::from(&intruder),
        ))
        .unwrap();
    let path = export(&dir.path().join("intruder"), &records, &offered);
    fails_only_by_origin(
        &path,
        registry(),
        30,
        &format!(
            "signed with key {intruder_id} of `emergency`, which the bundle carries but the trusted key \
             registry does not list"
        ),
    );
    // The same record in a bundle that does not offer the key.
    let path = export(&dir.path().join("plain"), &records, &registry());
    fails_only_by_origin(
        &path,
        registry(),
        30,
        &format!("signed with key {intruder_id}, which the trusted key registry does not list"),
    );
    // With the auditor's registry listing it, it verifies.
    verify_with(&path, Some(OriginCheck::new(offered, rules()))).unwrap();
    // A department the registry has no key for at all.
    let mut records = honest_log();
    let id = id_of(Department::Psb, &key(2));
    records[3] = record(
        3,
        "highly_toxic_purchase_permit_issued",
        at(1_790_000_003),
        Some((&id, &key(2))),
    );
    let mut without_psb = KeyRegistry::new();
    without_psb.insert(Department::Emergency, PublicKey::from(&key(5)));
    let path = export(&dir.path().join("psb"), &records, &without_psb);
    fails_only_by_origin(
        &path,
        without_psb,
        3,
        "no origin-signing public key is registered for department `psb`",
    );
}

#[test]
fn a_rotated_key_verifies_what_it_signed_in_its_time_only() {
    let dir = tempfile::tempdir().unwrap();
    let rotation = at(1_790_000_020);
    let (old, new) = (key(5), key(55));
    let (old_id, new_id) = (
        id_of(Department::Emergency, &old),
        id_of(Department::Emergency, &new),
    );
    let mut rotated = KeyRegistry::new();
    rotated
        .add(OriginKey::new(Department::Emergency, PublicKey::from(&old)).not_after(rotation))
        .unwrap();
    rotated
        .add(OriginKey::new(Department::Emergency, PublicKey::from(&new)).not_before(rotation))
        .unwrap();
    // Before the rotation the old key signs, from it on the new one; and one record each in the older
    // key id form (the bare department code).
    let mut records: Vec<Vec<u8>> = (0..40)
        .map(|n| {
            let accepted = at(1_790_000_000 + n as i64);
            let signer = if accepted < rotation {
                (old_id.as_str(), &old)
            } else {
                (new_id.as_str(), &new)
            };
            record(n, "credit_listing_decided", accepted, Some(signer))
        })
        .collect();
    records[4] = record(
        4,
        "credit_listing_decided",
        at(1_790_000_004),
        Some(("emergency", &old)),
    );
    records[34] = record(
        34,
        "credit_listing_decided",
        at(1_790_000_034),
        Some(("emergency", &new)),
    );
    let path = export(&dir.path().join("rotated"), &records, &rotated);
    let verified = verify_with(&path, Some(OriginCheck::new(rotated.clone(), rules()))).unwrap();
    let origin = verified.origin.unwrap();
    assert_eq!(origin.verified[&old_id], 20);
    assert_eq!(origin.verified[&new_id], 20);

    // The old key used after its not_after (a key stolen when it was retired).
    let mut late = records.clone();
    late[25] = record(
        25,
        "credit_listing_decided",
        at(1_790_000_025),
        Some((&old_id, &old)),
    );
    let path = export(&dir.path().join("late"), &late, &rotated);
    fails_only_by_origin(
        &path,
        rotated.clone(),
        25,
        &format!("key {old_id} is not valid from 2026-09-21T"),
    );
    // The new key used before its not_before.
    let mut early = records.clone();
    early[12] = record(
        12,
        "credit_listing_decided",
        at(1_790_000_012),
        Some((&new_id, &new)),
    );
    let path = export(&dir.path().join("early"), &early, &rotated);
    fails_only_by_origin(
        &path,
        rotated.clone(),
        12,
        &format!("key {new_id} is not valid before 2026-09-21T"),
    );
    // In the older key id form, the key valid at the time must verify.
    let mut legacy = records;
    legacy[30] = record(
        30,
        "credit_listing_decided",
        at(1_790_000_030),
        Some(("emergency", &old)),
    );
    let path = export(&dir.path().join("legacy"), &legacy, &rotated);
    fails_only_by_origin(&path, rotated, 30, "does not verify");
}

#[test]
fn the_payload_table_and_department_numbers_are_the_contracts() {
    let descriptor = hazchem_proto::event_descriptor();
    let oneof = descriptor.oneofs().find(|o| o.name() == "payload").unwrap();
    let mut count = 0;
    for field in oneof.fields() {
        assert_eq!(
            record::payload_token(field.number()),
            Some(field.name()),
            "{}",
            field.name()
        );
        count += 1;
    }
    assert!(count > 40);
    for d in Department::ALL {
        let number = v1::Department::from(d) as i64;
        assert_eq!(record::department_of_number(number), Some(d));
    }
    assert_eq!(record::department_of_number(0), None);
    assert_eq!(record::department_of_number(10), None);
    assert!(SignatureRules::new([], ["not_a_type"]).is_err());
}

proptest! {
    /// Whatever prost encodes, the wire reader reads the same fields.
    #[test]
    fn the_wire_reader_agrees_with_prost(
        event in proptest::collection::vec(any::<u8>(), 0..64),
        signature in proptest::option::of((".{0,20}", proptest::collection::vec(any::<u8>(), 0..70))),
        publisher in 0u8..4,
        department in 0i32..12,
        service in "[a-z]{0,12}",
        seconds in proptest::option::of(-62_135_596_800i64..253_402_300_799),
        nanos in 0i32..1_000_000_000,
    ) {
        let stored = v1::Record {
            event: event.clone(),
            signature: signature.clone().map(|(key_id, signature)| v1::OriginSignature { key_id, signature }),
            publisher: match publisher {
                0 => None,
                1 => Some(v1::Publisher { principal: None }),
                2 => Some(v1::Publisher { principal: Some(v1::publisher::Principal::Department(department)) }),
                _ => Some(v1::Publisher { principal: Some(v1::publisher::Principal::Service(service.clone())) }),
            },
            accepted_at: seconds.map(|seconds| prost_types::Timestamp { seconds, nanos }),
        };
        let bytes = stored.encode_to_vec();
        let read = record::read_record(&bytes).unwrap();
        prop_assert_eq!(read.event, event.as_slice());
        let expected_signature = signature
            .as_ref()
            .filter(|(k, s)| !(k.is_empty() && s.is_empty()))
            .map(|(k, s)| (k.as_str(), s.as_slice()));
        prop_assert_eq!(read.signature.map(|s| (s.key_id, s.signature)), expected_signature);
        let expected_publisher = match publisher {
            0 | 1 => Publisher::None,
            2 => match record::department_of_number(i64::from(department)) {
                Some(d) => Publisher::Department(d),
                None => Publisher::UnknownDepartment(i64::from(department)),
            },
            _ => Publisher::Service(service.as_str()),
        };
        prop_assert_eq!(read.publisher, expected_publisher);
        prop_assert_eq!(
            read.accepted_at,
            seconds.map(|s| DateTime::from_timestamp(s, nanos as u32).unwrap())
        );
    }

    /// Any bytes: an answer, never a panic.
    #[test]
    fn the_wire_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = record::read_record(&bytes);
        let _ = record::payload_types(&bytes);
    }
}

#[test]
fn the_check_uses_the_verifier_key_type_of_this_crate() {
    // A VerifierKey and an OriginKey share the one key id format (C2SP's): `<name>+<8 hex>`.
    let k = PublicKey::from(&key(5));
    assert_eq!(
        VerifierKey::new("emergency", k).unwrap().to_string(),
        origin_key_id(Department::Emergency, &k)
    );
}
