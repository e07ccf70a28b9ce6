//! Origin signatures re-verified by auditors, online against the real audit service over mTLS and on the
//! system of record itself (`--stream`), on both buses. Departments publish signed credit listings
//! through the gateway; then a hostile bus operator appends records straight to the stream, past the
//! gateway's checks: a credit listing whose signature was tampered with, one whose signature was removed,
//! and one signed with a key of its own that no registry lists. The ledger takes them in and signs a
//! checkpoint over them, so the log key alone vouches for them; with origin signatures checked against the
//! development key registry, each fails naming its leaf, while the checkpoint before them verifies.

use std::time::Duration;

use hazchem_bus::Outgoing;
use hazchem_domain::Department;
use hazchem_ledger::note::VerifierKey;
use hazchem_ledger::online::{self, StreamVerdict};
use hazchem_ledger::origin::OriginCheck;
use hazchem_ledger::verify::{ProblemKind, Requirements, VerifyFailure};
use hazchem_ledger::{Ledger, LedgerConfig};
use hazchem_pki::SigningKey;
use hazchem_proto::v1;
use hazchem_proto::v1::audit_service_client::AuditServiceClient;
use hazchem_tests::{ARRIVE, BusKind, TestBus, TestGateway, auditor, fresh};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

/// What the hostile operator writes: the stored record of a fresh credit listing by emergency, signed by
/// `sign` (key id, key) or not, with `edit` applied to the record after signing.
fn forged(
    sign: Option<(String, &SigningKey)>,
    edit: impl FnOnce(&mut v1::Record),
) -> (String, Vec<u8>) {
    let event = fresh("credit_listing_decided");
    let bytes = event.encode_to_vec();
    let mut record = v1::Record {
        signature: sign.map(|(key_id, key)| v1::OriginSignature {
            key_id,
            signature: key.sign(&bytes).to_vec(),
        }),
        event: bytes,
        publisher: Some(v1::Publisher {
            principal: Some(v1::publisher::Principal::Department(
                v1::Department::Emergency as i32,
            )),
        }),
        #[allow(clippy::disallowed_methods)] // the operator's own clock, as the gateway's would be
        accepted_at: Some(hazchem_proto::time::timestamp(chrono::Utc::now())),
    };
    edit(&mut record);
    (event.id, record.encode_to_vec())
}

fn origin_check(gateway: &TestGateway) -> OriginCheck {
    OriginCheck::new(
        gateway
            .pki()
            .dev()
            .key_registry()
            .expect("signing-keys.toml"),
        hazchem_admission::Policy::default_policy().signature_rules(),
    )
}

fn with_origin(gateway: &TestGateway) -> Requirements {
    Requirements {
        origin: Some(origin_check(gateway)),
        ..Requirements::default()
    }
}

/// The failure has exactly these origin signature problems, at these leaves, and no other problem.
fn assert_named(failure: &VerifyFailure, expected: &[(u64, &str)]) {
    let found: Vec<(u64, &str)> = failure
        .problems
        .iter()
        .map(|p| {
            assert_eq!(p.kind, ProblemKind::OriginSignature, "{failure:?}");
            (p.index.expect("a leaf"), p.message.as_str())
        })
        .collect();
    assert_eq!(found.len(), expected.len(), "{:?}", failure.problems);
    for ((index, message), (leaf, needle)) in found.iter().zip(expected) {
        assert_eq!(index, leaf, "{message}");
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
}

async fn scenario(kind: BusKind) {
    let gateway = TestGateway::start(TestBus::new(kind).await).await;
    let pki = gateway.pki();
    let key = VerifierKey::load(&pki.dev().ledger_public_key_path()).expect("ledger.pub");

    // The ledger, running from the start.
    let config = LedgerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: gateway.bus().dir().join("ledger"),
        tls: Some(pki.server_tls_files()),
        signing_key: Some(pki.dev().ledger_signing_key_path()),
        checkpoint_every: 1_000_000,
        checkpoint_interval: Duration::from_secs(3600),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::from_config(&config).unwrap();
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(hazchem_ledger::run_service(
        ledger.clone(),
        gateway.bus().bus().clone(),
        Some(gateway.sink(hazchem_ledger::SERVICE_NAME)),
        listener,
        config.server_tls().unwrap(),
        shutdown.clone(),
    ));
    // Honest traffic through the gateway: waybills (signed, though optional) and credit listings
    // (signed, as the policy requires).
    for _ in 0..3 {
        gateway
            .publish_event(&fresh("waybill_issued"))
            .await
            .unwrap();
        gateway
            .publish_event(&fresh("credit_listing_decided"))
            .await
            .unwrap();
    }
    let published = gateway.bus().last_sequence().await;
    tokio::time::timeout(ARRIVE, ledger.wait_for_size(published))
        .await
        .expect("the ledger takes in every record");
    let mut client = AuditServiceClient::new(pki.channel(addr, &auditor()).await);
    let before = online::get_checkpoint(&mut client, true).await.unwrap();
    let verified = online::verify_log(&mut client, key.clone(), &before, &with_origin(&gateway))
        .await
        .unwrap()
        .expect("the honest log verifies with its origin signatures");
    let origin = verified.origin.expect("origin signatures were checked");
    assert_eq!((origin.signed(), origin.unsigned), (6, 0), "{origin}");
    // Its checkpoint is published into the stream before the operator's records come.
    wait_for_stream(&gateway, published + 1).await;
    let honest = published + 1;

    // The operator's records, straight onto the stream.
    let emergency = pki.signing_key(Department::Emergency);
    let emergency_id = emergency.origin_key_id(Department::Emergency);
    let intruder = SigningKey::generate();
    let intruder_id = intruder.origin_key_id(Department::Emergency);
    let forgeries = [
        forged(Some((emergency_id.clone(), &emergency)), |r| {
            r.signature.as_mut().unwrap().signature[3] ^= 0x10;
        }),
        forged(Some((emergency_id.clone(), &emergency)), |r| {
            r.signature = None;
        }),
        forged(Some((intruder_id.clone(), &intruder)), |_| {}),
    ];
    for (id, bytes) in &forgeries {
        gateway
            .bus()
            .bus()
            .publish(
                Outgoing::event("emergency", "credit_listing_decided", id, bytes.clone()).unwrap(),
            )
            .await
            .unwrap();
    }
    let expected = [
        (
            honest,
            "the origin signature is not good: the signature does not verify",
        ),
        (
            honest + 1,
            "a credit_listing_decided event of department `emergency` carries no origin signature",
        ),
        (
            honest + 2,
            &*format!(
                "signed with key {intruder_id}, which the trusted key registry does not list"
            ),
        ),
    ];

    let size = honest + 3;
    tokio::time::timeout(ARRIVE, ledger.wait_for_size(size))
        .await
        .expect("the ledger takes in every record");
    let note = online::get_checkpoint(&mut client, true).await.unwrap();
    assert_eq!(key.open_checkpoint(&note).unwrap().size, size);

    // Online: the log key alone vouches for the forgeries; the origin check names each.
    let verified = online::verify_log(&mut client, key.clone(), &note, &Requirements::default())
        .await
        .unwrap()
        .expect("the log verifies by the log key alone");
    assert_eq!(verified.records, size);
    let failure = online::verify_log(&mut client, key.clone(), &note, &with_origin(&gateway))
        .await
        .unwrap()
        .expect_err("the forged records must not verify");
    assert_named(&failure, &expected);

    // The stream itself, against the checkpoint the ledger published into it.
    wait_for_stream(&gateway, size + 1).await;
    let StreamVerdict::Checked {
        result,
        note: streamed,
    } = online::verify_stream(gateway.bus().bus(), key.clone(), &with_origin(&gateway))
        .await
        .unwrap()
    else {
        panic!("no checkpoint in the stream");
    };
    assert_eq!(key.open_checkpoint(&streamed).unwrap().size, size);
    assert_named(
        &result.expect_err("the forged records must not verify"),
        &expected,
    );

    // A registry that lists the intruder's key takes its signature; the other two still fail.
    shutdown.cancel();
    tokio::time::timeout(ARRIVE, task)
        .await
        .expect("the ledger stops")
        .unwrap()
        .unwrap();
    drop(client);
    let mut with_intruder = gateway.pki().dev().key_registry().unwrap();
    with_intruder
        .add(hazchem_pki::OriginKey::new(
            Department::Emergency,
            intruder.public_key().into(),
        ))
        .unwrap();
    let requirements = Requirements {
        origin: Some(OriginCheck::new(
            with_intruder,
            hazchem_admission::Policy::default_policy().signature_rules(),
        )),
        ..Requirements::default()
    };
    let StreamVerdict::Checked { result, .. } =
        online::verify_stream(gateway.bus().bus(), key.clone(), &requirements)
            .await
            .unwrap()
    else {
        panic!("no checkpoint in the stream");
    };
    assert_named(&result.unwrap_err(), &expected[..2]);
}

/// Waits until the stream holds `messages` messages.
async fn wait_for_stream(gateway: &TestGateway, messages: u64) {
    tokio::time::timeout(ARRIVE, async {
        while gateway.bus().last_sequence().await < messages {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the stream did not reach {messages} messages"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_origin_signatures_are_named_online_and_on_the_embedded_stream() {
    scenario(BusKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_origin_signatures_are_named_online_and_on_jetstream() {
    hazchem_tests::init_tracing();
    scenario(BusKind::JetStream).await;
}
