//! Witnesses the departments run themselves: nine `WitnessServer`s on loopback over HTTPS (C2SP
//! tlog-witness), the ledger asking them as remote witnesses. Three of them were first shown a fork of the
//! ledger's log (a checkpoint of the same size with another root, signed with the ledger's key); they
//! refuse the ledger's checkpoint (409, then 422 for the next one), the ledger stores the other six
//! cosignatures and goes on, and verification with `K` witnesses required passes for 6 and fails for 7,
//! online and on the stream. A forked checkpoint submitted to all nine is refused by every one with 409.

use std::time::Duration;

use hazchem_ledger::note::{Checkpoint, NoteSigner, VerifierKey};
use hazchem_ledger::online::{self, StreamVerdict};
use hazchem_ledger::verify::{ProblemKind, Requirements, Witnesses};
use hazchem_ledger::witness::{AddCheckpoint, Cosigner, Witness, WitnessKey};
use hazchem_ledger::{Ledger, LedgerConfig, WitnessConfig};
use hazchem_pki::SigningKey;
use hazchem_proto::v1::audit_service_client::AuditServiceClient;
use hazchem_tests::{ARRIVE, BusKind, TestBus, TestGateway, auditor, fresh};
use hazchem_witness::{CallError, RemoteWitness, WitnessServer};
use tokio_util::sync::CancellationToken;

const ORIGIN: &str = hazchem_ledger::DEFAULT_ORIGIN;

/// Nine witnesses on loopback, HTTPS with the development server certificate; returns their URLs and
/// keys.
async fn start_witnesses(
    gateway: &TestGateway,
    dir: &std::path::Path,
    shutdown: &CancellationToken,
) -> Vec<(String, WitnessKey)> {
    let pki = gateway.pki();
    let ledger_key =
        VerifierKey::load_for_origin(&pki.dev().ledger_public_key_path(), Some(ORIGIN)).unwrap();
    let tls = pki.server_tls_files();
    let mut witnesses = Vec::new();
    for i in 0..9u8 {
        let cosigner = Cosigner::new(
            &format!("witness.example/department-{i}"),
            SigningKey::generate(),
        )
        .unwrap();
        let witness = Witness::new(
            cosigner,
            vec![ledger_key.clone()],
            Some(dir.join(format!("witness-{i}.json"))),
        )
        .unwrap();
        let server = WitnessServer::new(witness)
            .with_tls(&tls.cert, &tls.key)
            .unwrap();
        let key = server.key().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(server.serve(listener, shutdown.clone()));
        witnesses.push((url, key));
    }
    witnesses
}

fn remote(gateway: &TestGateway, url: &str, key: &WitnessKey) -> RemoteWitness {
    RemoteWitness::new(url, key.clone(), Some(&gateway.pki().dev().ca_cert_path())).unwrap()
}

fn requiring(known: &[WitnessKey], required: usize) -> Requirements {
    Requirements {
        witnesses: Witnesses {
            known: known.to_vec(),
            required,
        },
        ..Requirements::default()
    }
}

async fn publish(gateway: &TestGateway, n: usize) {
    for _ in 0..n {
        gateway
            .publish_event(&fresh("waybill_issued"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_witnesses_cosign_refuse_a_fork_and_the_ledger_goes_on() {
    hazchem_tests::init_tracing();
    let gateway = TestGateway::start(TestBus::new(BusKind::Embedded).await).await;
    let pki = gateway.pki().clone();
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let witnesses = start_witnesses(&gateway, dir.path(), &shutdown).await;
    let keys: Vec<WitnessKey> = witnesses.iter().map(|(_, k)| k.clone()).collect();
    let ledger_signer = NoteSigner::new(
        ORIGIN,
        SigningKey::load(&pki.dev().ledger_signing_key_path()).unwrap(),
    )
    .unwrap();
    let fork = |size: u64| {
        ledger_signer.sign_checkpoint(&Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: [0x5a; 32],
        })
    };

    // Twelve events; witnesses 6, 7 and 8 are shown a forked checkpoint of size 12 first.
    publish(&gateway, 12).await;
    for (url, key) in &witnesses[6..] {
        remote(&gateway, url, key)
            .add_checkpoint(&AddCheckpoint {
                old: 0,
                proof: vec![],
                note: fork(12),
            })
            .await
            .expect("a witness that never saw the log trusts its first checkpoint");
    }

    // The ledger, asking the nine over HTTPS.
    let config = LedgerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: gateway.bus().dir().join("ledger"),
        tls: Some(pki.server_tls_files()),
        signing_key: Some(pki.dev().ledger_signing_key_path()),
        checkpoint_every: 1_000_000,
        checkpoint_interval: Duration::from_secs(3600),
        witnesses: witnesses
            .iter()
            .map(|(url, key)| WitnessConfig::remote(url, key, Some(pki.dev().ca_cert_path())))
            .collect(),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::from_config(&config).unwrap();
    assert_eq!(ledger.witness_keys(), keys);
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(hazchem_ledger::run_service(
        ledger.clone(),
        gateway.bus().bus().clone(),
        Some(gateway.sink(hazchem_ledger::SERVICE_NAME)),
        listener,
        config.server_tls().unwrap(),
        shutdown.clone(),
    ));
    tokio::time::timeout(ARRIVE, ledger.wait_for_size(12))
        .await
        .unwrap();
    let mut client = AuditServiceClient::new(pki.channel(addr, &auditor()).await);
    let key = ledger.verifier_key().clone();

    // The checkpoint of size 12: six cosignatures; the forked three answered 409 and are not among them.
    let note = online::get_checkpoint(&mut client, true).await.unwrap();
    assert_eq!(key.open_checkpoint(&note).unwrap().size, 12);
    let good = hazchem_ledger::witness::verify_cosignatures(&note, &keys).unwrap();
    let cosigned: Vec<&str> = good.iter().map(|c| c.witness.as_str()).collect();
    assert_eq!(
        cosigned,
        keys[..6].iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        "{note}"
    );
    let verified = online::verify_log(&mut client, key.clone(), &note, &requiring(&keys, 6))
        .await
        .unwrap()
        .expect("six of nine cosigned");
    assert_eq!(verified.cosigned.as_ref().unwrap().good.len(), 6);
    assert!(
        verified
            .to_string()
            .contains("cosigned by 6 of the 9 known witnesses (6 required)"),
        "{verified}"
    );
    let failure = online::verify_log(&mut client, key.clone(), &note, &requiring(&keys, 7))
        .await
        .unwrap()
        .expect_err("seven are required, six cosigned");
    assert_eq!(failure.first().kind, ProblemKind::Witnesses);
    assert!(
        failure.to_string().contains(
            "the checkpoint carries 6 good cosignature(s) of the 9 known witnesses, fewer than the 7 \
             required"
        ),
        "{failure}"
    );

    // The ledger goes on: the next checkpoint is cosigned by the six with a consistency proof from 12;
    // the forked three refuse it (their size-12 root is not the log's: the proof does not hold, 422).
    publish(&gateway, 5).await;
    let size = gateway.bus().last_sequence().await;
    tokio::time::timeout(ARRIVE, ledger.wait_for_size(size))
        .await
        .unwrap();
    let note = online::get_checkpoint(&mut client, true).await.unwrap();
    assert_eq!(key.open_checkpoint(&note).unwrap().size, size);
    online::verify_log(&mut client, key.clone(), &note, &requiring(&keys, 6))
        .await
        .unwrap()
        .expect("the six cosign the grown log");
    for (url, key) in &witnesses[6..] {
        let err = remote(&gateway, url, key)
            .add_checkpoint(&AddCheckpoint {
                old: 12,
                proof: hazchem_ledger::merkle::consistency_proof(ledger.store(), 12, size).unwrap(),
                note: note.clone(),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallError::Refused { status: 422, .. }),
            "{err}"
        );
    }

    // A forked checkpoint of the latest size, shown to all nine: every one refuses it with 409, the six
    // honest ones because they cosigned another root at that size, the three others because they are at
    // 12 (and asked again from 12, the proof does not hold).
    for (i, (url, key)) in witnesses.iter().enumerate() {
        let witness = remote(&gateway, url, key);
        let err = witness
            .add_checkpoint(&AddCheckpoint {
                old: size,
                proof: vec![],
                note: fork(size),
            })
            .await
            .unwrap_err();
        match i {
            0..6 => assert!(
                matches!(err, CallError::Refused { status: 409, recorded: Some(s), .. } if s == size),
                "{i}: {err}"
            ),
            _ => assert!(
                matches!(
                    err,
                    CallError::Refused {
                        status: 409,
                        recorded: Some(12),
                        ..
                    }
                ),
                "{i}: {err}"
            ),
        }
    }

    // The system of record carries the cosigned notes too.
    tokio::time::timeout(ARRIVE, async {
        while gateway.bus().last_sequence().await <= size {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let StreamVerdict::Checked { result, .. } =
        online::verify_stream(gateway.bus().bus(), key.clone(), &requiring(&keys, 6))
            .await
            .unwrap()
    else {
        panic!("no checkpoint in the stream");
    };
    result.expect("the stream verifies with six witnesses");
    let StreamVerdict::Checked { result, .. } =
        online::verify_stream(gateway.bus().bus(), key.clone(), &requiring(&keys, 7))
            .await
            .unwrap()
    else {
        panic!("no checkpoint in the stream");
    };
    assert_eq!(result.unwrap_err().first().kind, ProblemKind::Witnesses);

    shutdown.cancel();
    tokio::time::timeout(ARRIVE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witness_speaks_the_protocol_on_the_wire() {
    let gateway = TestGateway::start(TestBus::new(BusKind::Embedded).await).await;
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let witnesses = start_witnesses(&gateway, dir.path(), &shutdown).await;
    let (url, key) = &witnesses[0];
    let witness = remote(&gateway, url, key);
    let pki = gateway.pki();
    let signer = NoteSigner::new(
        ORIGIN,
        SigningKey::load(&pki.dev().ledger_signing_key_path()).unwrap(),
    )
    .unwrap();
    let note = |size: u64, root: u8| {
        signer.sign_checkpoint(&Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: [root; 32],
        })
    };
    let add = |old: u64, note: String| AddCheckpoint {
        old,
        proof: vec![],
        note,
    };
    // An unknown log: 404; a checkpoint not signed by the log's key: 403.
    let other = NoteSigner::new("other.example/log", SigningKey::generate()).unwrap();
    let err = witness
        .add_checkpoint(&add(
            0,
            other.sign_checkpoint(&Checkpoint {
                origin: "other.example/log".into(),
                size: 1,
                root: [1; 32],
            }),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Refused { status: 404, .. }),
        "{err}"
    );
    let impostor = NoteSigner::new(ORIGIN, SigningKey::generate()).unwrap();
    let err = witness
        .add_checkpoint(&add(
            0,
            impostor.sign_checkpoint(&Checkpoint {
                origin: ORIGIN.into(),
                size: 1,
                root: [1; 32],
            }),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Refused { status: 403, .. }),
        "{err}"
    );
    // First checkpoint accepted; the same again from its size too; an old size beyond it is 400; a
    // submitter that does not know the size gets 409 with it.
    let lines = witness.add_checkpoint(&add(0, note(4, 7))).await.unwrap();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("\u{2014} witness.example/department-0 "));
    witness.add_checkpoint(&add(4, note(4, 7))).await.unwrap();
    let err = witness
        .add_checkpoint(&add(5, note(4, 7)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Refused { status: 400, .. }),
        "{err}"
    );
    let err = witness
        .add_checkpoint(&add(0, note(9, 7)))
        .await
        .unwrap_err();
    assert_eq!(err.recorded_size(), Some(4), "{err}");
    // A proof that does not hold: 422.
    let err = witness
        .add_checkpoint(&AddCheckpoint {
            old: 4,
            proof: vec![[3; 32]; 2],
            note: note(9, 8),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Refused { status: 422, .. }),
        "{err}"
    );
    // A cosignature by another key than the one configured is not taken.
    let (_, other_key) = &witnesses[1];
    let wrong = remote(&gateway, url, other_key);
    let err = wrong.add_checkpoint(&add(4, note(4, 7))).await.unwrap_err();
    assert!(matches!(err, CallError::NoCosignature { .. }), "{err}");
    // An unreachable witness is an error, not a hang.
    let gone = RemoteWitness::new("http://127.0.0.1:9", key.clone(), None)
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let err = gone.add_checkpoint(&add(0, note(4, 7))).await.unwrap_err();
    assert!(matches!(err, CallError::Unreachable { .. }), "{err}");
    shutdown.cancel();
}
