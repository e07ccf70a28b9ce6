//! `audit verify --stream`: the system of record itself is checked against the latest checkpoint the
//! ledger published into it, trusting only the ledger's key, on both buses. Tampering with the stream
//! (a record's byte flipped, two records swapped, a record deleted) is detected naming the leaf; a
//! checkpoint in the stream signed by another key is not trusted; and a stream rewritten and re-signed
//! with the log's key verifies by that key alone but fails when witnesses' cosignatures are required.

use hazchem_bus::{Bus, JetStreamConfig, Outgoing};
use hazchem_ledger::merkle::{self, MemoryTree};
use hazchem_ledger::note::{Checkpoint, NoteSigner, VerifierKey};
use hazchem_ledger::online::{StreamVerdict, verify_stream};
use hazchem_ledger::store::StoredCheckpoint;
use hazchem_ledger::verify::{ProblemKind, Requirements, Witnesses};
use hazchem_ledger::witness::{AddCheckpoint, Cosigner, Witness, add_cosignatures};
use hazchem_pki::SigningKey;
use hazchem_proto::v1;
use hazchem_tests::NatsServer;
use prost::Message as _;

const ORIGIN: &str = hazchem_ledger::DEFAULT_ORIGIN;
const RECORDS: u64 = 40;

/// A stored record as the gateway makes it.
fn record(i: u64) -> Vec<u8> {
    let mut event = hazchem_tests::fresh("waybill_issued");
    event.id = format!("sv-{i:03}");
    v1::Record {
        event: event.encode_to_vec(),
        signature: None,
        publisher: Some(v1::Publisher {
            principal: Some(v1::publisher::Principal::Department(
                v1::Department::Transport as i32,
            )),
        }),
        accepted_at: Some(hazchem_proto::time::timestamp(
            chrono::DateTime::from_timestamp(1_790_000_000 + i as i64, 0).unwrap(),
        )),
    }
    .encode_to_vec()
}

/// The checkpoint over `records`, signed by `signer`.
fn checkpoint_note(signer: &NoteSigner, records: &[Vec<u8>]) -> String {
    let tree = MemoryTree::from_leaf_hashes(records.iter().map(|r| merkle::leaf_hash(r)));
    signer.sign_checkpoint(&Checkpoint {
        origin: ORIGIN.into(),
        size: records.len() as u64,
        root: tree.root(),
    })
}

/// The `checkpoint_published` record of the signed checkpoint `note` (perhaps cosigned).
fn checkpoint_record(note: &str) -> (String, Vec<u8>) {
    let checkpoint = hazchem_ledger::note::unverified_checkpoint(note).unwrap();
    let stored = StoredCheckpoint {
        size: checkpoint.size,
        root: checkpoint.root,
        note: note.to_owned(),
        issued_at: chrono::DateTime::from_timestamp(1_790_001_000, 0).unwrap(),
        published: false,
        foreign: checkpoint.size,
    };
    let event = hazchem_ledger::checkpoint_event(ORIGIN, &stored);
    let bytes = v1::Record {
        event: event.encode_to_vec(),
        signature: None,
        publisher: Some(v1::Publisher {
            principal: Some(v1::publisher::Principal::Service(
                hazchem_ledger::SERVICE_NAME.into(),
            )),
        }),
        accepted_at: None,
    }
    .encode_to_vec();
    (event.id, bytes)
}

/// RECORDS records, then the ledger's checkpoint over them, then a few more records.
async fn fill(bus: &Bus, signer: &NoteSigner) -> Vec<Vec<u8>> {
    let records: Vec<Vec<u8>> = (0..RECORDS).map(record).collect();
    let note = checkpoint_note(signer, &records);
    fill_with(bus, &records, &note).await;
    records
}

/// `records`, then the checkpoint record of `note`, then a few more records.
async fn fill_with(bus: &Bus, records: &[Vec<u8>], note: &str) {
    for (i, r) in records.iter().enumerate() {
        bus.publish(
            Outgoing::event(
                "transport",
                "waybill_issued",
                &format!("sv-{i:03}"),
                r.clone(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    }
    let (id, bytes) = checkpoint_record(note);
    bus.publish(Outgoing::event("ledger", "checkpoint_published", &id, bytes).unwrap())
        .await
        .unwrap();
    for i in RECORDS..RECORDS + 3 {
        bus.publish(
            Outgoing::event(
                "transport",
                "waybill_issued",
                &format!("sv-{i:03}"),
                record(i),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    }
}

fn signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::generate()).unwrap()
}

async fn verdict(
    bus: &Bus,
    key: &VerifierKey,
) -> Result<hazchem_ledger::verify::Verified, hazchem_ledger::verify::VerifyFailure> {
    match verify_stream(bus, key.clone(), &Default::default())
        .await
        .unwrap()
    {
        StreamVerdict::Checked { result, .. } => result,
        StreamVerdict::NoCheckpoint { messages } => {
            panic!("no checkpoint among {messages} messages")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_stream_verifies_and_tampering_names_the_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let s = signer();
    let key = s.verifier();
    {
        let bus = Bus::embedded(&path).await.unwrap();
        fill(&bus, &s).await;
        let verified = verdict(&bus, &key)
            .await
            .expect("the honest stream verifies");
        assert_eq!(
            (verified.records, verified.checkpoint.size),
            (RECORDS, RECORDS)
        );
        // Another key's checkpoint in the stream is not trusted: there is none to check against.
        let other = signer().verifier();
        let none = verify_stream(&bus, other, &Default::default())
            .await
            .unwrap();
        assert!(
            matches!(none, StreamVerdict::NoCheckpoint { .. }),
            "{none:?}"
        );
    }
    // The embedded log: sequence (8 bytes BE) → version, time (8), subject length (2), subject, payload.
    let edit = |f: &dyn Fn(&sled::Tree)| {
        let db = hazchem_bus::open_sled(&path).unwrap();
        let log = db.open_tree("log").unwrap();
        f(&log);
        log.flush().unwrap();
    };
    // One byte of leaf 17's record flipped.
    edit(&|log| {
        let key = 18u64.to_be_bytes();
        let mut value = log.get(key).unwrap().unwrap().to_vec();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        log.insert(key, value).unwrap();
    });
    {
        let bus = Bus::embedded(&path).await.unwrap();
        let failure = verdict(&bus, &key)
            .await
            .expect_err("a flipped byte must not verify");
        assert_eq!(failure.first().kind, ProblemKind::RootMismatch, "{failure}");
    }
    // Two records swapped: the stream claims them in the wrong place.
    edit(&|log| {
        let (a, b) = (5u64.to_be_bytes(), 6u64.to_be_bytes());
        let (va, vb) = (log.get(a).unwrap().unwrap(), log.get(b).unwrap().unwrap());
        log.insert(a, vb).unwrap();
        log.insert(b, va).unwrap();
    });
    let bus = Bus::embedded(&path).await.unwrap();
    let failure = verdict(&bus, &key)
        .await
        .expect_err("swapped records must not verify");
    assert!(!failure.problems.is_empty(), "{failure}");
    assert_eq!(failure.first().kind, ProblemKind::RootMismatch, "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jetstream_stream_verifies_and_a_deleted_record_is_named() {
    hazchem_tests::init_tracing();
    let server = NatsServer::start();
    let bus = Bus::jetstream(&JetStreamConfig::new(server.url()))
        .await
        .unwrap();
    let s = signer();
    let key = s.verifier();
    fill(&bus, &s).await;
    let verified = verdict(&bus, &key)
        .await
        .expect("the honest stream verifies");
    assert_eq!(verified.records, RECORDS);
    // The stream refuses deletes, and the refusal cannot be lifted.
    let Bus::JetStream(js_bus) = &bus else {
        unreachable!()
    };
    let js = async_nats::jetstream::new(js_bus.client().clone());
    let mut stream = js.get_stream(hazchem_bus::DEFAULT_STREAM).await.unwrap();
    assert!(
        stream.delete_message(13).await.is_err(),
        "the stream refuses deletes"
    );
    let mut config = stream.info().await.unwrap().config.clone();
    config.deny_delete = false;
    assert!(
        js.update_stream(config).await.is_err(),
        "deny_delete cannot be lifted"
    );
    // So an operator with the admin credentials rewrites the whole stream without leaf 12, the genuine
    // checkpoint included.
    let bus = fill_again_without(&bus, &js, &server.url(), 12).await;
    let failure = verdict(&bus, &key)
        .await
        .expect_err("a deleted record must not verify");
    assert_eq!(failure.first().kind, ProblemKind::RootMismatch, "{failure}");
}

/// Deletes the stream and publishes it again as `fill` did, but without record `skip`; the original
/// checkpoint record is copied as it was. Returns the bus over the new stream.
async fn fill_again_without(
    bus: &Bus,
    js: &async_nats::jetstream::Context,
    url: &str,
    skip: u64,
) -> Bus {
    let mut originals = Vec::new();
    let last = bus.last_sequence().await.unwrap();
    for sequence in 1..=last {
        originals.push(bus.get(sequence).await.unwrap().unwrap());
    }
    js.delete_stream(hazchem_bus::DEFAULT_STREAM).await.unwrap();
    let bus = Bus::jetstream(&JetStreamConfig::new(url)).await.unwrap();
    for (i, message) in originals.into_iter().enumerate() {
        if i as u64 == skip {
            continue;
        }
        let id = message.id().to_owned();
        bus.publish(Outgoing::new(message.subject, id, message.payload))
            .await
            .unwrap();
    }
    assert_eq!(bus.last_sequence().await.unwrap(), last - 1);
    bus
}

/// Three witnesses of the log, in process.
fn witnesses(key: &VerifierKey) -> Vec<Witness> {
    (0..3u8)
        .map(|i| {
            Witness::new(
                Cosigner::new(&format!("witness.example/w{i}"), SigningKey::generate()).unwrap(),
                vec![key.clone()],
                None,
            )
            .unwrap()
        })
        .collect()
}

/// `note` with the cosignature of each witness that accepts it as its first checkpoint.
fn cosign(note: &str, witnesses: &mut [Witness]) -> String {
    let lines: Vec<String> = witnesses
        .iter_mut()
        .filter_map(|w| {
            w.add_checkpoint(
                &AddCheckpoint {
                    old: w.last(ORIGIN).map_or(0, |seen| seen.size),
                    proof: vec![],
                    note: note.to_owned(),
                },
                1_790_000_000,
            )
            .ok()
        })
        .collect();
    add_cosignatures(note, &lines)
}

async fn verdict_requiring(
    bus: &Bus,
    key: &VerifierKey,
    witnesses: &[Witness],
    required: usize,
) -> Result<hazchem_ledger::verify::Verified, hazchem_ledger::verify::VerifyFailure> {
    let requirements = Requirements {
        witnesses: Witnesses {
            known: witnesses.iter().map(Witness::key).collect(),
            required,
        },
        ..Requirements::default()
    };
    match verify_stream(bus, key.clone(), &requirements)
        .await
        .unwrap()
    {
        StreamVerdict::Checked { result, .. } => result,
        StreamVerdict::NoCheckpoint { messages } => {
            panic!("no checkpoint among {messages} messages")
        }
    }
}

/// A stream rewritten with leaf 17 altered and its checkpoint re-signed with the log's key (carrying
/// the honest checkpoint's cosignature lines, copied) verifies by the log key alone, and fails as soon
/// as one witness's cosignature is required: the witnesses refused the fork.
async fn re_signed_stream_needs_the_witnesses(honest_bus: Bus, forged_bus: Bus) {
    let s = signer();
    let key = s.verifier();
    let mut ws = witnesses(&key);
    let records: Vec<Vec<u8>> = (0..RECORDS).map(record).collect();
    let honest_note = cosign(&checkpoint_note(&s, &records), &mut ws);
    fill_with(&honest_bus, &records, &honest_note).await;
    let verified = verdict_requiring(&honest_bus, &key, &ws, 3).await.unwrap();
    assert_eq!(verified.cosigned.unwrap().good.len(), 3);

    let mut altered = records.clone();
    let mut stored = v1::Record::decode(altered[17].as_slice()).unwrap();
    stored.accepted_at = Some(hazchem_proto::time::timestamp(
        chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    ));
    altered[17] = stored.encode_to_vec();
    let forged_note = checkpoint_note(&s, &altered);
    assert_eq!(
        cosign(&forged_note, &mut ws),
        forged_note,
        "every witness refuses the fork"
    );
    let copied: Vec<String> = honest_note
        .lines()
        .filter(|l| l.starts_with("\u{2014} witness.example/"))
        .map(|l| format!("{l}\n"))
        .collect();
    fill_with(
        &forged_bus,
        &altered,
        &add_cosignatures(&forged_note, &copied),
    )
    .await;
    verdict(&forged_bus, &key)
        .await
        .expect("the log key alone vouches for the re-signed stream");
    for required in 1..=3 {
        let failure = verdict_requiring(&forged_bus, &key, &ws, required)
            .await
            .expect_err("no witness cosigned the re-signed checkpoint");
        assert_eq!(failure.first().kind, ProblemKind::Witnesses, "{failure}");
        assert!(
            failure
                .to_string()
                .contains("carries 0 good cosignature(s) of the 3 known witnesses"),
            "{failure}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_signed_embedded_stream_fails_when_witnesses_are_required() {
    let dir = tempfile::tempdir().unwrap();
    re_signed_stream_needs_the_witnesses(
        Bus::embedded(&dir.path().join("honest")).await.unwrap(),
        Bus::embedded(&dir.path().join("forged")).await.unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_signed_jetstream_stream_fails_when_witnesses_are_required() {
    hazchem_tests::init_tracing();
    let (honest, forged) = (NatsServer::start(), NatsServer::start());
    re_signed_stream_needs_the_witnesses(
        Bus::jetstream(&JetStreamConfig::new(honest.url()))
            .await
            .unwrap(),
        Bus::jetstream(&JetStreamConfig::new(forged.url()))
            .await
            .unwrap(),
    )
    .await;
}

/// Each projection (ledger, credit, enforcement, warning) given the ledger's key checks the stream against
/// the latest checkpoint signed into it before folding anything: it follows the honest stream, and
/// refuses, with an error saying so, a stream in which one byte of a logged record was flipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_projection_refuses_a_stream_that_disagrees_with_a_signed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let key_file = dir.path().join("ledger.key");
    SigningKey::generate().save(&key_file).unwrap();
    let s = NoteSigner::new(ORIGIN, SigningKey::load(&key_file).unwrap()).unwrap();
    let key = s.verifier();
    {
        let bus = Bus::embedded(&path).await.unwrap();
        fill(&bus, &s).await;
        for (name, outcome) in follow_each(&bus, &key, &key_file, &dir.path().join("honest")).await
        {
            assert_eq!(outcome, None, "{name} follows the honest stream");
        }
    }
    // One byte of leaf 9's record flipped, under the checkpoint.
    {
        let db = hazchem_bus::open_sled(&path).unwrap();
        let log = db.open_tree("log").unwrap();
        let at = 10u64.to_be_bytes();
        let mut value = log.get(at).unwrap().unwrap().to_vec();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        log.insert(at, value).unwrap();
        log.flush().unwrap();
    }
    let bus = Bus::embedded(&path).await.unwrap();
    for (name, outcome) in follow_each(&bus, &key, &key_file, &dir.path().join("tampered")).await {
        let error = outcome.unwrap_or_else(|| panic!("{name} followed a tampered stream"));
        assert!(
            error.contains("disagrees with the ledger's signed checkpoint"),
            "{name}: {error}"
        );
    }
}

/// Starts each projection with fresh stores under `state` on `bus`, checking against `key`: `None` if it
/// is still following once it has caught up, else why it stopped.
async fn follow_each(
    bus: &Bus,
    key: &VerifierKey,
    ledger_key: &std::path::Path,
    state: &std::path::Path,
) -> Vec<(&'static str, Option<String>)> {
    use std::time::Duration;
    let admission = hazchem_admission::Admission::new(
        hazchem_admission::Policy::default_policy(),
        hazchem_pki::KeyRegistry::new(),
        hazchem_admission::Limits::default(),
    );
    let publisher = hazchem_gateway::Publisher::new(
        bus.clone(),
        admission,
        hazchem_gateway::Metrics::unregistered(),
    );
    let sink = |name: &str| {
        hazchem_kit::EventSink::new(
            publisher.clone(),
            hazchem_pki::Principal::service(name).unwrap(),
        )
    };
    let last = bus.last_sequence().await.unwrap();
    let policy = hazchem_admission::Policy::default_policy;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let key = Some(key.clone());
    // Each run ends with an error, or without one at the shutdown (it was still following).
    let ends = |run: futures::future::BoxFuture<'static, Result<(), String>>| {
        tokio::spawn(async move { run.await.err() })
    };

    let ledger = hazchem_ledger::Ledger::open(
        &hazchem_ledger::LedgerConfig {
            store: state.join("ledger"),
            ..hazchem_ledger::LedgerConfig::default()
        },
        SigningKey::load(ledger_key).unwrap(),
        policy(),
    )
    .unwrap();
    let credit = hazchem_credit::Credit::open(
        &hazchem_credit::CreditConfig {
            state: state.join("credit"),
            ..hazchem_credit::CreditConfig::default()
        },
        policy(),
    )
    .unwrap()
    .with_checkpoints(key.clone());
    let enforcement = hazchem_enforcement::Enforcement::from_config(
        &hazchem_enforcement::EnforcementConfig {
            store: state.join("enforcement"),
            ..hazchem_enforcement::EnforcementConfig::default()
        },
        bus.clone(),
        sink("enforcement"),
    )
    .await
    .unwrap()
    .with_checkpoints(key.clone());
    let warnings = hazchem_warning::Warnings::from_config(
        &hazchem_warning::WarningConfig {
            store: state.join("warning"),
            ..hazchem_warning::WarningConfig::default()
        },
        policy(),
        bus.clone(),
        sink("warning"),
    )
    .unwrap()
    .with_checkpoints(key);

    let runs = [
        ("ledger", {
            let (ledger, bus, stop) = (ledger.clone(), bus.clone(), shutdown.clone());
            ends(Box::pin(async move {
                ledger.run(bus, None, stop).await.map_err(|e| e.to_string())
            }))
        }),
        ("credit", {
            let (credit, bus, sink, stop) = (
                credit.clone(),
                bus.clone(),
                sink("credit"),
                shutdown.clone(),
            );
            ends(Box::pin(async move {
                credit.run(bus, sink, stop).await.map_err(|e| e.to_string())
            }))
        }),
        ("enforcement", {
            let (enforcement, stop) = (enforcement.clone(), shutdown.clone());
            ends(Box::pin(async move {
                enforcement.run(stop).await.map_err(|e| e.to_string())
            }))
        }),
        ("warning", {
            let (warnings, stop) = (warnings.clone(), shutdown.clone());
            ends(Box::pin(async move {
                warnings.run(stop).await.map_err(|e| e.to_string())
            }))
        }),
    ];
    // Caught up, or stopped: every position reaches the stream's end, or a run ends first.
    let caught_up = async {
        while !(ledger.size() >= last
            && credit.position() >= last
            && enforcement.applied() >= last
            && warnings.applied() >= last)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let all_ended = futures::future::join_all(runs.iter().map(|(_, run)| async {
        while !run.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }));
    tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            () = caught_up => {}
            _ = all_ended => {}
        }
    })
    .await
    .expect("each projection catches up or stops");
    shutdown.cancel();
    let mut outcomes = Vec::new();
    for (name, run) in runs {
        outcomes.push((name, run.await.unwrap()));
    }
    outcomes
}
