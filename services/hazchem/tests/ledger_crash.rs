//! The ledger survives `kill -9`: events are published straight to a real JetStream while the test
//! SIGKILLs `hazchem serve ledger` at random moments during ingest and starts it again on the same store.
//! In the end the log holds every acknowledged event exactly once, in stream order (leaf i is the stream's
//! message i + 1, byte for byte), its checkpoints (published to the stream across the kills, deduplicated)
//! agree with it, and it verifies, in process and with `hazchem audit verify`, online and from an exported
//! bundle with the ledger stopped; a tampered bundle is refused naming the leaf.

#![allow(clippy::disallowed_methods)] // tests: records and seeds are stamped with wall time

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hazchem_bus::{Bus, JetStreamConfig, Outgoing};
use hazchem_ledger::merkle;
use hazchem_ledger::note::VerifierKey;
use hazchem_ledger::verify::Verifier;
use hazchem_pki::{DevPki, Principal};
use hazchem_proto::v1;
use hazchem_proto::v1::audit_service_client::AuditServiceClient;
use hazchem_tests::NatsServer;
use hazchem_tests::process::{ChildProcess, free_port, scrub_env};
use prost::Message as _;
use tonic::transport::{Channel, Endpoint};

/// Events published.
const EVENTS: u64 = 3000;
/// Published in batches of this many.
const BATCH: u64 = 50;
/// How many times the ledger is killed.
const KILLS: usize = 4;
/// Longest wait for the ledger to catch up at the end.
const CATCH_UP: Duration = Duration::from_secs(60);

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hazchem"))
}

/// A small deterministic generator for the kill moments (the seed is printed).
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A stored record as the gateway would have built it: a transport waybill with a unique id.
fn record(i: u64) -> (String, Vec<u8>) {
    let mut event = hazchem_tests::fresh("waybill_issued");
    event.id = format!("crash-{i:05}");
    let record = v1::Record {
        event: event.encode_to_vec(),
        signature: None,
        publisher: Some(v1::Publisher {
            principal: Some(v1::publisher::Principal::Department(
                v1::Department::Transport as i32,
            )),
        }),
        accepted_at: Some(hazchem_proto::time::timestamp(chrono::Utc::now())),
    };
    (event.id, record.encode_to_vec())
}

async fn audit_client(pki: &DevPki, addr: SocketAddr) -> AuditServiceClient<Channel> {
    let tls = pki
        .client_tls(&Principal::auditor(hazchem_pki::dev::DEV_AUDITOR).unwrap())
        .unwrap()
        .config();
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return AuditServiceClient::new(channel),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot connect to the ledger: {e:?}"),
        }
    }
}

/// Runs `hazchem <args>`; returns (success, stdout).
fn hazchem(args: &[&OsStr]) -> (bool, String) {
    let mut command = Command::new(exe());
    scrub_env(&mut command).args(args);
    let output = command.output().expect("run hazchem");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), format!("{stdout}\n{stderr}"))
}

#[test]
fn the_ledger_keeps_every_event_exactly_once_across_kill_9() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let pki = DevPki::generate(&data.join("pki")).expect("a development PKI");
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let store = dir.path().join("ledger-store");
    let config = dir.path().join("hazchem.toml");
    std::fs::write(
        &config,
        format!(
            r#"metrics_listen = "127.0.0.1:0"

[bus]
kind = "jetstream"
url = "{url}"

[gateway]
signing_keys = {keys:?}

[gateway.tls]
cert = {cert:?}
key = {key:?}
client_ca = {ca:?}

[ledger]
listen = "127.0.0.1:{port}"
store = {store:?}
signing_key = {signing_key:?}
checkpoint_every = 500
checkpoint_interval = 1
max_batch = 200

[ledger.tls]
cert = {cert:?}
key = {key:?}
client_ca = {ca:?}
"#,
            url = nats.url(),
            keys = pki.key_registry_path(),
            cert = pki.server_cert_path(),
            key = pki.server_key_path(),
            ca = pki.ca_cert_path(),
            signing_key = pki.ledger_signing_key_path(),
        ),
    )
    .unwrap();
    let mut ledger = ChildProcess::spawn(
        exe(),
        [
            OsStr::new("serve"),
            OsStr::new("ledger"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        None,
        dir.path().join("ledger.log"),
    );
    ledger.wait_for_port(addr);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bus = runtime
        .block_on(Bus::jetstream(&JetStreamConfig::new(nats.url())))
        .expect("connect to JetStream");

    // The publisher: every event straight to JetStream, acknowledged with its sequence.
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (bus, acked, done) = (bus.clone(), acked.clone(), done.clone());
        runtime.spawn(async move {
            let mut acks: BTreeMap<String, u64> = BTreeMap::new();
            for batch in 0..EVENTS / BATCH {
                let records: Vec<(String, Vec<u8>)> =
                    (batch * BATCH..(batch + 1) * BATCH).map(record).collect();
                let outgoing = records
                    .iter()
                    .map(|(id, bytes)| {
                        Outgoing::event("transport", "waybill_issued", id, bytes.clone()).unwrap()
                    })
                    .collect();
                for ((id, _), ack) in records.iter().zip(bus.publish_many(outgoing).await) {
                    let ack = ack.expect("JetStream acknowledges");
                    assert!(!ack.duplicate);
                    acks.insert(id.clone(), ack.sequence);
                }
                acked.fetch_add(BATCH, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            done.store(true, Ordering::SeqCst);
            acks
        })
    };

    // Kill the ledger at random moments while events keep arriving.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill schedule seed: {seed}");
    let mut random = Random(seed);
    for kill in 0..KILLS {
        std::thread::sleep(Duration::from_millis(150 + random.below(350)));
        assert!(
            !done.load(Ordering::SeqCst),
            "kill {kill} came after the last event; publish more or kill sooner"
        );
        ledger.kill();
        eprintln!(
            "kill {kill}: ledger killed with {} events acknowledged",
            acked.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(random.below(100)));
        ledger.restart();
        ledger.wait_for_port(addr);
    }
    let acks = runtime.block_on(publisher).expect("the publisher");
    assert_eq!(acks.len() as u64, EVENTS);
    let last_acked = *acks.values().max().unwrap();

    let key = VerifierKey::load(&pki.ledger_public_key_path()).unwrap();
    let (note, checkpoint, leaves) = runtime.block_on(async {
        let mut client = audit_client(&pki, addr).await;
        // Wait until a fresh checkpoint covers every acknowledged event.
        let deadline = Instant::now() + CATCH_UP;
        let (note, checkpoint) = loop {
            let response = client
                .get_checkpoint(v1::GetCheckpointRequest { fresh: true })
                .await
                .expect("GetCheckpoint")
                .into_inner();
            let checkpoint = key
                .open_checkpoint(&response.signed_note)
                .expect("a signed checkpoint");
            if checkpoint.size >= last_acked {
                break (response.signed_note, checkpoint);
            }
            assert!(
                Instant::now() < deadline,
                "the ledger holds {} leaves, not the {last_acked} acknowledged; log:\n{}",
                checkpoint.size,
                ledger.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut stream = client
            .replay(v1::ReplayRequest {
                filter: None,
                from_index: 0,
                to_index: checkpoint.size,
            })
            .await
            .expect("Replay")
            .into_inner();
        let mut leaves = Vec::new();
        while let Some(item) = stream.next().await {
            leaves.push(item.expect("a replayed leaf"));
        }
        (note, checkpoint, leaves)
    });

    // Exactly once, in stream order: leaf i is message i + 1, byte for byte.
    assert_eq!(leaves.len() as u64, checkpoint.size);
    let mut ids: BTreeMap<String, u64> = BTreeMap::new();
    let mut checkpoints_in_stream = 0;
    runtime.block_on(async {
        for (i, leaf) in leaves.iter().enumerate() {
            assert_eq!(leaf.leaf_index, i as u64);
            let message = bus
                .get(i as u64 + 1)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("sequence {} is in the stream", i + 1));
            assert_eq!(
                leaf.record,
                message.payload.to_vec(),
                "leaf {i} is message {}",
                i + 1
            );
            let previous = ids.insert(message.id().to_owned(), i as u64);
            assert!(previous.is_none(), "event {} appears twice", message.id());
            if message.subject.contains(".checkpoint_published.") {
                checkpoints_in_stream += 1;
            }
        }
    });
    for (id, sequence) in &acks {
        assert_eq!(
            ids.get(id),
            Some(&(sequence - 1)),
            "acknowledged event {id} is leaf {}",
            sequence - 1
        );
    }
    assert!(
        checkpoints_in_stream > 0,
        "checkpoints were published to the stream"
    );
    eprintln!(
        "{} leaves: {EVENTS} events and {checkpoints_in_stream} checkpoints, after {KILLS} kills",
        leaves.len()
    );

    // It verifies trusting only the key.
    let mut verifier = Verifier::new(key.clone(), &note).unwrap();
    for leaf in &leaves {
        verifier.push(leaf.leaf_index, &leaf.record, None);
    }
    let verified = verifier.finish().expect("the log verifies");
    assert_eq!(verified.records, checkpoint.size);
    let tree =
        merkle::MemoryTree::from_leaf_hashes(leaves.iter().map(|l| merkle::leaf_hash(&l.record)));
    assert_eq!(tree.root(), checkpoint.root);

    // The auditor's command line: verify online, export, stop the ledger, verify the bundle offline.
    let endpoint = format!("https://127.0.0.1:{port}");
    let saved = dir.path().join("checkpoint.note");
    let (ok, out) = hazchem(&[
        "audit".as_ref(),
        "verify".as_ref(),
        "--ledger".as_ref(),
        endpoint.as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--save-checkpoint".as_ref(),
        saved.as_os_str(),
    ]);
    assert!(ok && out.contains("verified:"), "{out}");
    let bundle = dir.path().join("bundle");
    let (ok, out) = hazchem(&[
        "audit".as_ref(),
        "export".as_ref(),
        "--ledger".as_ref(),
        endpoint.as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--since-checkpoint".as_ref(),
        saved.as_os_str(),
        "--out".as_ref(),
        bundle.as_os_str(),
    ]);
    assert!(ok, "{out}");
    // Prove one event; replay a slice.
    let (id, sequence) = acks.iter().nth(1234).map(|(i, s)| (i.clone(), *s)).unwrap();
    let (ok, out) = hazchem(&[
        "audit".as_ref(),
        "prove".as_ref(),
        id.as_ref(),
        "--ledger".as_ref(),
        endpoint.as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("\"leafIndex\": {}", sequence - 1)),
        "{out}"
    );
    assert!(out.contains("\"verified\": true"), "{out}");
    let (ok, out) = hazchem(&[
        "audit".as_ref(),
        "replay".as_ref(),
        "--from-index".as_ref(),
        "5".as_ref(),
        "--to-index".as_ref(),
        "8".as_ref(),
        "--ledger".as_ref(),
        endpoint.as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    assert!(ok, "{out}");
    let replayed: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        replayed
            .iter()
            .map(|v| v["leafIndex"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    let status = ledger.terminate();
    assert!(status.success(), "{status}\n{}", ledger.log());
    let log = ledger.log();
    assert!(!log.contains("the ledger stops"), "{log}");
    let (ok, out) = hazchem(&[
        "audit".as_ref(),
        "verify".as_ref(),
        "--bundle".as_ref(),
        bundle.as_os_str(),
        "--key".as_ref(),
        pki.ledger_public_key_path().as_os_str(),
    ]);
    assert!(ok && out.contains("verified:"), "{out}");
    // The system of record itself, against the latest checkpoint the ledger published into it.
    let (ok, out) = hazchem(&[
        "audit".as_ref(),
        "verify".as_ref(),
        "--stream".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--key".as_ref(),
        pki.ledger_public_key_path().as_os_str(),
    ]);
    assert!(
        ok && out.contains("checking the stream itself") && out.contains("verified:"),
        "{out}"
    );
    // One flipped record in the bundle is named.
    let records = bundle.join(hazchem_ledger::bundle::RECORDS);
    let text = std::fs::read_to_string(&records).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut record = hazchem_ledger::bundle::BundleRecord::from_line(&lines[1234]).unwrap();
    record.record[10] ^= 0x20;
    lines[1234] = record.to_line();
    std::fs::write(&records, lines.join("\n") + "\n").unwrap();
    let (ok, out) = hazchem(&[
        "audit".as_ref(),
        "verify".as_ref(),
        "--bundle".as_ref(),
        bundle.as_os_str(),
        "--key".as_ref(),
        pki.ledger_public_key_path().as_os_str(),
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("leaf 1234: the record was altered"), "{out}");
}
