//! An audit server is not trusted: a fake one on loopback serving the genuine signed checkpoint with
//! forged records (claiming any leaf index it likes) fails `online::verify_log`, naming the first bad
//! record; the same server serving the honest records verifies.

use std::net::SocketAddr;

use hazchem_ledger::merkle::{self, MemoryTree};
use hazchem_ledger::note::{Checkpoint, NoteSigner, VerifierKey};
use hazchem_ledger::online;
use hazchem_ledger::verify::ProblemKind;
use hazchem_pki::SigningKey;
use hazchem_proto::v1;
use hazchem_proto::v1::audit_service_client::AuditServiceClient;
use hazchem_proto::v1::audit_service_server::{AuditService, AuditServiceServer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

const ORIGIN: &str = "hazchem.example/ledger";

/// Serves `note` and replays `records` as (claimed leaf index, bytes), whatever is asked.
#[derive(Clone)]
struct FakeAudit {
    note: String,
    records: Vec<(u64, Vec<u8>)>,
    tree: std::sync::Arc<MemoryTree>,
}

#[tonic::async_trait]
impl AuditService for FakeAudit {
    async fn get_checkpoint(
        &self,
        _: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::GetCheckpointResponse>, Status> {
        Ok(Response::new(v1::GetCheckpointResponse {
            signed_note: self.note.clone(),
            ..Default::default()
        }))
    }

    async fn get_inclusion_proof(
        &self,
        _: Request<v1::GetInclusionProofRequest>,
    ) -> Result<Response<v1::GetInclusionProofResponse>, Status> {
        Err(Status::unimplemented("not served"))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<v1::GetConsistencyProofRequest>,
    ) -> Result<Response<v1::GetConsistencyProofResponse>, Status> {
        // Honest proofs over the genuine tree: the forger cannot make them agree with forged records.
        let r = request.into_inner();
        let proof = merkle::consistency_proof(self.tree.as_ref(), r.first_size, r.second_size)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(v1::GetConsistencyProofResponse {
            first_size: r.first_size,
            second_size: r.second_size,
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    type ReplayStream =
        futures::stream::Iter<std::vec::IntoIter<Result<v1::ReplayResponse, Status>>>;

    async fn replay(
        &self,
        _: Request<v1::ReplayRequest>,
    ) -> Result<Response<Self::ReplayStream>, Status> {
        let items: Vec<_> = self
            .records
            .iter()
            .map(|(index, record)| {
                Ok(v1::ReplayResponse {
                    leaf_index: *index,
                    sequence: index.wrapping_add(1),
                    record: record.clone(),
                })
            })
            .collect();
        Ok(Response::new(futures::stream::iter(items)))
    }
}

async fn serve(fake: FakeAudit) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AuditServiceServer::new(fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

fn genuine(n: u64) -> (Vec<Vec<u8>>, MemoryTree) {
    let records: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("genuine {i}").into_bytes())
        .collect();
    let tree = MemoryTree::from_leaf_hashes(records.iter().map(|r| merkle::leaf_hash(r)));
    (records, tree)
}

async fn verify_against(
    key: VerifierKey,
    note: &str,
    records: Vec<(u64, Vec<u8>)>,
    tree: MemoryTree,
) -> Result<hazchem_ledger::verify::Verified, hazchem_ledger::verify::VerifyFailure> {
    let addr = serve(FakeAudit {
        note: note.to_owned(),
        records,
        tree: std::sync::Arc::new(tree),
    })
    .await;
    let mut client = AuditServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let note = online::get_checkpoint(&mut client, false).await.unwrap();
    online::verify_log(&mut client, key, &note, &Default::default())
        .await
        .expect("the calls succeed")
}

#[tokio::test]
async fn a_fake_audit_server_serving_forged_records_fails_naming_the_first() {
    let signer = NoteSigner::new(ORIGIN, SigningKey::generate()).unwrap();
    let n = 64u64;
    let (records, tree) = genuine(n);
    let note = signer.sign_checkpoint(&Checkpoint {
        origin: ORIGIN.into(),
        size: n,
        root: tree.root(),
    });
    let honest: Vec<(u64, Vec<u8>)> = records
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, r)| (i as u64, r))
        .collect();

    // The honest replay verifies.
    let verified = verify_against(signer.verifier(), &note, honest.clone(), genuine(n).1)
        .await
        .unwrap();
    assert_eq!(verified.records, n);

    // Made-up records, the first claiming the largest index there is.
    let forged: Vec<(u64, Vec<u8>)> = (0..1048u64)
        .map(|i| {
            (
                if i == 0 { u64::MAX } else { i },
                format!("forged {i}").into_bytes(),
            )
        })
        .collect();
    let failure = verify_against(signer.verifier(), &note, forged, genuine(n).1)
        .await
        .expect_err("forged records must not verify");
    assert_eq!(failure.first().index, Some(0), "{failure}");
    assert!(
        failure
            .to_string()
            .contains("claims index 18446744073709551615"),
        "{failure}"
    );

    // Forged records numbered exactly as the verifier counts them: the root disagrees, and consistency
    // proofs from the server (which cannot forge them) locate the first forged leaf.
    let mut renumbered = honest.clone();
    renumbered[23].1 = b"forged 23".to_vec();
    renumbered[40].1 = b"forged 40".to_vec();
    let failure = verify_against(signer.verifier(), &note, renumbered, genuine(n).1)
        .await
        .expect_err("a forged record must not verify");
    assert!(
        failure
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::Altered && p.index == Some(23)),
        "{failure:?}"
    );

    // The server lying about the indexes of honest records in the wrong order.
    let mut shuffled = honest.clone();
    shuffled.swap(3, 9);
    let shuffled: Vec<(u64, Vec<u8>)> = shuffled
        .into_iter()
        .enumerate()
        .map(|(i, (_, r))| (i as u64, r))
        .collect();
    let failure = verify_against(signer.verifier(), &note, shuffled, genuine(n).1)
        .await
        .expect_err("reordered records must not verify");
    assert!(
        failure
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::Altered && p.index == Some(3)),
        "{failure:?}"
    );

    // Records dropped, or one extra.
    let failure = verify_against(
        signer.verifier(),
        &note,
        honest[..n as usize - 1].to_vec(),
        genuine(n).1,
    )
    .await
    .expect_err("a dropped record must not verify");
    assert_eq!(failure.first().kind, ProblemKind::Missing, "{failure}");
    let mut extra = honest.clone();
    extra.push((n, b"extra".to_vec()));
    let failure = verify_against(signer.verifier(), &note, extra, genuine(n).1)
        .await
        .expect_err("an extra record must not verify");
    assert_eq!(failure.first().kind, ProblemKind::Unexpected, "{failure}");
}
