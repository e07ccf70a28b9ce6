//! The audit ledger end to end, on the embedded bus and on a real JetStream: events published through the
//! gateway, the ledger in process over mTLS, checkpoints, inclusion proofs for every event, consistency
//! between two checkpoints, replay with filters and entitlement, offline verification of the replay, a lost
//! store rebuilt from the stream to the same root, and a tampered store refused at start. (A gap in the
//! stream cannot be made through the bus, whose JetStream stream denies deletes; the ledger's reaction to
//! one is tested in `crates/ledger/src/ledger.rs`.)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use hazchem_admission::Policy;
use hazchem_domain::Department;
use hazchem_ledger::merkle::{self, Hash};
use hazchem_ledger::note::{Checkpoint, VerifierKey};
use hazchem_ledger::store::{LedgerStore, leaf_key, node_key};
use hazchem_ledger::verify::Verifier;
use hazchem_ledger::{Ledger, LedgerConfig, StartupCheck};
use hazchem_pki::Principal;
use hazchem_proto::v1;
use hazchem_proto::v1::audit_service_client::AuditServiceClient;
use hazchem_tests::{
    ARRIVE, BusKind, StoredEvent, TestBus, TestGateway, assert_serving, auditor, dept,
    fixture_tokens, fresh, set_department, stored_events,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// The ledger running in process.
struct TestLedger {
    ledger: Ledger,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<hazchem_ledger::Result<()>>,
}

fn ledger_config(gateway: &TestGateway, store: &Path) -> LedgerConfig {
    LedgerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        store: store.to_owned(),
        tls: Some(gateway.pki().server_tls_files()),
        signing_key: Some(gateway.pki().dev().ledger_signing_key_path()),
        // Checkpoints on demand only, so that the test decides the sizes.
        checkpoint_every: 1_000_000,
        checkpoint_interval: Duration::from_secs(3600),
        ..LedgerConfig::default()
    }
}

async fn start_ledger(
    gateway: &TestGateway,
    config: &LedgerConfig,
) -> hazchem_ledger::Result<TestLedger> {
    let ledger = Ledger::from_config(config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(hazchem_ledger::run_service(
        ledger.clone(),
        gateway.bus().bus().clone(),
        Some(gateway.sink(hazchem_ledger::SERVICE_NAME)),
        listener,
        config.server_tls()?,
        shutdown.clone(),
    ));
    Ok(TestLedger {
        ledger,
        addr,
        shutdown,
        task,
    })
}

impl TestLedger {
    async fn client(
        &self,
        gateway: &TestGateway,
        principal: &Principal,
    ) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(gateway.pki().channel(self.addr, principal).await)
    }

    /// Waits until the ledger holds every message of the stream.
    async fn catch_up(&self, gateway: &TestGateway) -> u64 {
        let last = gateway.bus().last_sequence().await;
        tokio::time::timeout(ARRIVE, self.ledger.wait_for_size(last))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the ledger did not reach {last} leaves (it has {})",
                    self.ledger.size()
                )
            });
        last
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(ARRIVE, self.task)
            .await
            .expect("the ledger stops")
            .expect("the ledger task does not panic")
            .expect("the ledger stops cleanly");
    }
}

async fn checkpoint(
    client: &mut AuditServiceClient<Channel>,
    key: &VerifierKey,
    fresh: bool,
) -> (String, Checkpoint) {
    let response = client
        .get_checkpoint(v1::GetCheckpointRequest { fresh })
        .await
        .expect("GetCheckpoint")
        .into_inner();
    let checkpoint = key
        .open_checkpoint(&response.signed_note)
        .expect("the checkpoint verifies with the ledger's public key");
    assert_eq!(checkpoint.size, response.tree_size);
    assert_eq!(checkpoint.root.as_slice(), response.root_hash.as_slice());
    (response.signed_note, checkpoint)
}

async fn replay(
    client: &mut AuditServiceClient<Channel>,
    filter: Option<v1::EventFilter>,
    to: u64,
) -> Vec<v1::ReplayResponse> {
    let mut stream = client
        .replay(v1::ReplayRequest {
            filter,
            from_index: 0,
            to_index: to,
        })
        .await
        .expect("Replay")
        .into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.expect("a replayed record"));
    }
    out
}

fn hashes(bytes: &[Vec<u8>]) -> Vec<Hash> {
    bytes
        .iter()
        .map(|h| h.as_slice().try_into().expect("32 bytes"))
        .collect()
}

/// Publishes one event of every fixture type (but the ledger's own), plus a RESTRICTED one.
async fn publish_events(gateway: &TestGateway) -> usize {
    let mut count = 0;
    for token in fixture_tokens() {
        if token == "checkpoint_published" {
            continue;
        }
        gateway
            .publish_event(&fresh(&token))
            .await
            .unwrap_or_else(|s| panic!("publishing {token}: {s:?}"));
        count += 1;
    }
    let mut restricted = fresh("inspection_recorded");
    set_department(&mut restricted, Some(Department::Emergency));
    restricted.classification = v1::DataClassification::Restricted as i32;
    restricted.audience = vec![];
    gateway
        .publish_event(&restricted)
        .await
        .expect("a restricted event");
    count + 1
}

async fn raw_payloads(gateway: &TestGateway) -> Vec<Vec<u8>> {
    let bus = gateway.bus().bus();
    let last = bus.last_sequence().await.unwrap();
    let mut out = Vec::new();
    for sequence in 1..=last {
        out.push(
            bus.get(sequence)
                .await
                .unwrap()
                .expect("no gap")
                .payload
                .to_vec(),
        );
    }
    out
}

fn expected_for(
    events: &[StoredEvent],
    principal: &Principal,
    keep: impl Fn(&StoredEvent) -> bool,
) -> Vec<u64> {
    let policy = Policy::default_policy();
    events
        .iter()
        .filter(|e| {
            let token = e.event.type_token().unwrap_or_default();
            let publisher = hazchem_proto::department_from_i32(e.event.department).ok();
            let audience: Vec<Department> = e
                .event
                .audience
                .iter()
                .filter_map(|d| hazchem_proto::department_from_i32(*d).ok())
                .collect();
            policy.may_read(
                principal,
                &token,
                publisher,
                e.event.classification(),
                &audience,
            )
        })
        .filter(|e| keep(e))
        .map(|e| e.sequence - 1)
        .collect()
}

async fn scenario(kind: BusKind) {
    let gateway = TestGateway::start(TestBus::new(kind).await).await;
    let key = VerifierKey::load(&gateway.pki().dev().ledger_public_key_path()).expect("ledger.pub");
    let published = publish_events(&gateway).await;
    let store_dir: PathBuf = gateway.bus().dir().join("ledger");
    let config = ledger_config(&gateway, &store_dir);
    let ledger = start_ledger(&gateway, &config)
        .await
        .expect("the ledger starts");
    let size = ledger.catch_up(&gateway).await;
    assert_eq!(size as usize, published);
    let mut client = ledger.client(&gateway, &auditor()).await;
    assert_serving(
        gateway.pki().channel(ledger.addr, &auditor()).await,
        &["hazchem.v1.AuditService"],
    )
    .await;

    // A fresh checkpoint covers everything; its signature verifies with ledger.pub alone.
    let (note1, cp1) = checkpoint(&mut client, &key, true).await;
    assert_eq!(cp1.size, size);
    assert_eq!(cp1.origin, hazchem_ledger::DEFAULT_ORIGIN);

    // Every event's inclusion proof, by id and by index, against the checkpoint.
    let payloads = raw_payloads(&gateway).await;
    let events = stored_events(gateway.bus().bus()).await;
    for stored in events.iter().filter(|e| e.sequence <= cp1.size) {
        let index = stored.sequence - 1;
        let by_id = client
            .get_inclusion_proof(v1::GetInclusionProofRequest {
                leaf: Some(v1::get_inclusion_proof_request::Leaf::EventId(
                    stored.event.id.clone(),
                )),
                tree_size: 0,
                publisher: String::new(),
            })
            .await
            .expect("GetInclusionProof by id")
            .into_inner();
        assert_eq!(by_id.leaf_index, index, "event {}", stored.event.id);
        assert_eq!(by_id.tree_size, cp1.size);
        let leaf = merkle::leaf_hash(&payloads[index as usize]);
        assert_eq!(by_id.leaf_hash, leaf.to_vec());
        merkle::verify_inclusion(&leaf, index, cp1.size, &hashes(&by_id.hashes), &cp1.root)
            .unwrap_or_else(|e| panic!("leaf {index}: {e}"));
        let by_index = client
            .get_inclusion_proof(v1::GetInclusionProofRequest {
                leaf: Some(v1::get_inclusion_proof_request::Leaf::LeafIndex(index)),
                tree_size: cp1.size,
                publisher: String::new(),
            })
            .await
            .expect("GetInclusionProof by index")
            .into_inner();
        assert_eq!(by_index, by_id);
    }
    // A department gets proofs of what it may read; what it may not read is answered as if it did not
    // exist (by id) or refused (by index), and an unknown id is NOT_FOUND.
    let mut fire = ledger.client(&gateway, &dept("fire")).await;
    let fire_reads = expected_for(&events, &dept("fire"), |e| e.sequence <= cp1.size);
    let by_index = |index: u64| v1::GetInclusionProofRequest {
        leaf: Some(v1::get_inclusion_proof_request::Leaf::LeafIndex(index)),
        tree_size: 0,
        publisher: String::new(),
    };
    let by_id = |id: &str| v1::GetInclusionProofRequest {
        leaf: Some(v1::get_inclusion_proof_request::Leaf::EventId(id.into())),
        tree_size: 0,
        publisher: String::new(),
    };
    fire.get_inclusion_proof(by_index(fire_reads[0]))
        .await
        .expect("a department may ask for a proof of what it may read");
    let hidden = events
        .iter()
        .find(|e| e.sequence <= cp1.size && !fire_reads.contains(&(e.sequence - 1)))
        .expect("an event fire may not read (the RESTRICTED inspection)");
    let refused = fire
        .get_inclusion_proof(by_index(hidden.sequence - 1))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let unseen = fire
        .get_inclusion_proof(by_id(&hidden.event.id))
        .await
        .unwrap_err();
    let missing = fire
        .get_inclusion_proof(by_id("no-such-event"))
        .await
        .unwrap_err();
    assert_eq!(unseen.code(), tonic::Code::NotFound);
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(
        unseen.message().replace(&hidden.event.id, "ID"),
        missing.message().replace("no-such-event", "ID"),
        "an event fire may not read is answered exactly as one that does not exist"
    );
    let missing = client
        .get_inclusion_proof(by_id("no-such-event"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // A hostile department squats the ids of the checkpoints to come (the squats themselves grow the log
    // by SQUATS, so the next checkpoint's size falls in the squatted range): its events are its own, and
    // the ledger's checkpoints are published all the same.
    const SQUATS: u64 = 40;
    for size in cp1.size + SQUATS..cp1.size + 2 * SQUATS {
        let mut waybill = fresh("waybill_issued");
        waybill.id = hazchem_ledger::checkpoint_event_id(&cp1.origin, size);
        let accepted = gateway.publish_event(&waybill).await.unwrap();
        assert!(!accepted.duplicate);
    }

    // More events, and the checkpoint event itself, land in the log; a second checkpoint is consistent
    // with the first.
    for _ in 0..5 {
        gateway
            .publish_event(&fresh("waybill_issued"))
            .await
            .unwrap();
    }
    let checkpoint_event = hazchem_ledger::checkpoint_event_id(&cp1.origin, cp1.size);
    let deadline = tokio::time::Instant::now() + ARRIVE;
    while !stored_events(gateway.bus().bus())
        .await
        .iter()
        .any(|e| e.event.id == checkpoint_event && e.subject.starts_with("hazchem.ev.ledger."))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkpoint was not published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let caught_up = ledger.catch_up(&gateway).await;
    let (note2, cp2) = checkpoint(&mut client, &key, true).await;
    assert!(cp2.size >= caught_up);
    assert!(cp2.size > cp1.size + 5);
    assert!(
        (cp1.size + SQUATS..cp1.size + 2 * SQUATS).contains(&cp2.size),
        "the second checkpoint's id was squatted: {} in {}..{}",
        cp2.size,
        cp1.size + SQUATS,
        cp1.size + 2 * SQUATS
    );
    let squatted = hazchem_ledger::checkpoint_event_id(&cp2.origin, cp2.size);
    let deadline = tokio::time::Instant::now() + ARRIVE;
    while !stored_events(gateway.bus().bus())
        .await
        .iter()
        .any(|e| e.event.id == squatted && e.subject.starts_with("hazchem.ev.ledger."))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkpoint whose id was squatted was not published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let covering = ledger.catch_up(&gateway).await;
    // The same id from two publishers: asked by id alone, the auditor is told to name the publisher;
    // named, each publisher's event has its own proof.
    let ambiguous = client
        .get_inclusion_proof(v1::GetInclusionProofRequest {
            tree_size: covering,
            ..by_id(&squatted)
        })
        .await
        .unwrap_err();
    assert_eq!(
        ambiguous.code(),
        tonic::Code::InvalidArgument,
        "{ambiguous:?}"
    );
    assert!(
        ambiguous.message().contains("name the publisher"),
        "{ambiguous:?}"
    );
    let mut leaves = Vec::new();
    for publisher in ["ledger", "transport"] {
        let proof = client
            .get_inclusion_proof(v1::GetInclusionProofRequest {
                publisher: publisher.into(),
                tree_size: covering,
                ..by_id(&squatted)
            })
            .await
            .unwrap_or_else(|s| panic!("the proof of {publisher}'s {squatted}: {s:?}"))
            .into_inner();
        leaves.push(proof.leaf_index);
    }
    assert_ne!(leaves[0], leaves[1]);
    let consistency = client
        .get_consistency_proof(v1::GetConsistencyProofRequest {
            first_size: cp1.size,
            second_size: cp2.size,
        })
        .await
        .expect("GetConsistencyProof")
        .into_inner();
    merkle::verify_consistency(
        cp1.size,
        cp2.size,
        &hashes(&consistency.hashes),
        &cp1.root,
        &cp2.root,
    )
    .expect("the second checkpoint extends the first");

    // Replay as the auditor: every leaf, byte for byte, in stream order.
    let payloads = raw_payloads(&gateway).await;
    let all = replay(&mut client, None, cp2.size).await;
    assert_eq!(all.len() as u64, cp2.size);
    for (i, item) in all.iter().enumerate() {
        assert_eq!(item.leaf_index, i as u64);
        assert_eq!(item.sequence, i as u64 + 1);
        assert_eq!(item.record, payloads[i], "leaf {i}");
    }
    // ...and it verifies offline against both checkpoints, trusting only the key.
    let mut verifier = Verifier::new(key.clone(), &note2)
        .unwrap()
        .with_earlier(&note1)
        .unwrap();
    verifier.consistency_proof(&hashes(&consistency.hashes));
    for item in &all {
        verifier.push(item.leaf_index, &item.record, None);
    }
    let verified = verifier.finish().expect("the replay verifies");
    assert_eq!(verified.records, cp2.size);
    assert!(verified.consistency_proof);

    // Filters: department and type, chemical, time.
    let events = stored_events(gateway.bus().bus()).await;
    let ids = |items: &[v1::ReplayResponse]| items.iter().map(|i| i.leaf_index).collect::<Vec<_>>();
    let transport_waybills = replay(
        &mut client,
        Some(v1::EventFilter {
            departments: vec![v1::Department::Transport as i32],
            event_types: vec!["waybill_issued".into()],
            ..Default::default()
        }),
        0,
    )
    .await;
    let expected = expected_for(&events, &auditor(), |e| {
        e.event.department == v1::Department::Transport as i32
            && e.event.type_token().as_deref() == Some("waybill_issued")
    });
    assert_eq!(expected.len() as u64, 6 + SQUATS);
    assert_eq!(ids(&transport_waybills), expected);
    let chemical_of = |e: &StoredEvent| {
        hazchem_admission::index_keys(&hazchem_proto::decode_event(&e.record.event).unwrap())
            .chemicals
    };
    let chemical = events
        .iter()
        .find_map(|e| chemical_of(e).first().cloned())
        .expect("some fixture names a chemical");
    let by_chemical = replay(
        &mut client,
        Some(v1::EventFilter {
            chemicals: vec![chemical.clone()],
            ..Default::default()
        }),
        0,
    )
    .await;
    let expected = expected_for(&events, &auditor(), |e| chemical_of(e).contains(&chemical));
    assert!(!expected.is_empty());
    assert_eq!(ids(&by_chemical), expected);
    let pivot = events[10].event.time.unwrap();
    let since_pivot = replay(
        &mut client,
        Some(v1::EventFilter {
            time_from: Some(pivot),
            ..Default::default()
        }),
        0,
    )
    .await;
    let expected = expected_for(&events, &auditor(), |e| {
        let t = e.event.time.unwrap();
        (t.seconds, t.nanos) >= (pivot.seconds, pivot.nanos)
    });
    assert_eq!(ids(&since_pivot), expected);
    // A bad filter is refused with the field named.
    let bad = client
        .replay(v1::ReplayRequest {
            filter: Some(v1::EventFilter {
                chemicals: vec!["not-a-cas".into()],
                ..Default::default()
            }),
            from_index: 0,
            to_index: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(
        bad.message().contains("filter.chemicals[0]"),
        "{}",
        bad.message()
    );

    // Entitlement: a department sees only what the read policy lets it read.
    for code in ["fire", "psb", "emergency"] {
        let principal = dept(code);
        let mut as_department = ledger.client(&gateway, &principal).await;
        let seen = replay(&mut as_department, None, 0).await;
        let expected = expected_for(&events, &principal, |_| true);
        assert_eq!(ids(&seen), expected, "{code}");
        if code == "fire" {
            assert!(
                expected.len() < events.len(),
                "fire may not read everything"
            );
        }
    }

    // A lost store is rebuilt from the stream to the same root, checking every checkpoint it meets.
    ledger.stop().await;
    std::fs::remove_dir_all(&store_dir).unwrap();
    let rebuilt = start_ledger(&gateway, &config)
        .await
        .expect("an empty store starts");
    let size = rebuilt.catch_up(&gateway).await;
    assert!(size >= cp2.size);
    assert_eq!(rebuilt.ledger.root(cp1.size).unwrap(), cp1.root);
    assert_eq!(rebuilt.ledger.root(cp2.size).unwrap(), cp2.root);
    let mut client = rebuilt.client(&gateway, &auditor()).await;
    let (_, latest) = checkpoint(&mut client, &key, false).await;
    assert!(
        latest.size == cp1.size || latest.size == cp2.size,
        "met in the stream: {latest}"
    );
    let (_, cp3) = checkpoint(&mut client, &key, true).await;
    assert_eq!(cp3.size, size);
    rebuilt.stop().await;

    // A tampered store is refused at start, naming what disagrees.
    let tamper_leaf = 7u64;
    let top_level = (63 - cp3.size.leading_zeros()) as u8;
    {
        let store = LedgerStore::open(&store_dir).unwrap();
        let original = store.leaf(tamper_leaf).unwrap().unwrap();
        let mut altered = original.to_vec();
        altered[5] ^= 1;
        store.db().insert(leaf_key(tamper_leaf), altered).unwrap();
        store.db().flush().unwrap();
    }
    let refused = Ledger::from_config(&config).expect_err("a tampered store is refused");
    assert!(
        refused
            .to_string()
            .contains("leaf 7: the stored record does not hash"),
        "{refused}"
    );
    {
        let store = LedgerStore::open(&store_dir).unwrap();
        let mut restored = store.leaf(tamper_leaf).unwrap().unwrap().to_vec();
        restored[5] ^= 1;
        store.db().insert(leaf_key(tamper_leaf), restored).unwrap();
        // Now a hash the root of the last checkpoint is made of: the largest perfect subtree.
        store
            .db()
            .insert(node_key(top_level, 0), vec![0u8; 32])
            .unwrap();
        store.db().flush().unwrap();
    }
    let mut quick = config.clone();
    quick.startup_check = StartupCheck::Checkpoint;
    let refused =
        Ledger::from_config(&quick).expect_err("a store whose hashes disagree is refused");
    assert!(
        refused
            .to_string()
            .contains("disagrees with its last checkpoint"),
        "{refused}"
    );
    let refused = Ledger::from_config(&config).expect_err("the full check names the node");
    assert!(
        refused.to_string().contains(&format!(
            "node (level {top_level}, index 0) is not the hash of its children"
        )),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_on_the_embedded_bus() {
    scenario(BusKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_on_jetstream() {
    scenario(BusKind::JetStream).await;
}
