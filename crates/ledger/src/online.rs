//! Verification of the record as others hold it, trusting nothing they say but what the ledger's key
//! signed:
//!
//! - [`verify_log`]: against a running audit service: the checkpoint must carry the trusted key's
//!   signature, and every record the service replays is checked by a [`Verifier`] as the leaf at its own
//!   position in the replay, whatever index the service claims for it;
//! - [`verify_stream`]: the system of record itself (the JetStream stream or the embedded bus), which
//!   every service derives its state from, against the latest checkpoint the ledger published into it.

use futures::StreamExt;
use hazchem_proto::v1;
use hazchem_proto::v1::audit_service_client::AuditServiceClient;
use tonic::transport::Channel;

use crate::merkle::Hash;
use crate::note::VerifierKey;
use crate::verify::{self, Requirements, Verified, Verifier, VerifyFailure};

/// A call to the audit service failed (as opposed to the log failing verification).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{call}: {status}")]
    Status {
        call: &'static str,
        status: tonic::Status,
    },
    #[error("{call}: the server sent a hash of {len} bytes")]
    BadHash { call: &'static str, len: usize },
}

fn call(call: &'static str) -> impl FnOnce(tonic::Status) -> CallError {
    move |status| CallError::Status { call, status }
}

/// The server's hashes as [`Hash`]es.
pub fn hashes(call: &'static str, bytes: &[Vec<u8>]) -> Result<Vec<Hash>, CallError> {
    bytes
        .iter()
        .map(|h| {
            h.as_slice()
                .try_into()
                .map_err(|_| CallError::BadHash { call, len: h.len() })
        })
        .collect()
}

/// The signed note of the latest (or a `fresh`) checkpoint.
pub async fn get_checkpoint(
    client: &mut AuditServiceClient<Channel>,
    fresh: bool,
) -> Result<String, CallError> {
    Ok(client
        .get_checkpoint(v1::GetCheckpointRequest { fresh })
        .await
        .map_err(call("GetCheckpoint"))?
        .into_inner()
        .signed_note)
}

/// The consistency proof from tree size `first` to `second` (empty when there is nothing to prove).
pub async fn consistency(
    client: &mut AuditServiceClient<Channel>,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, CallError> {
    if first == 0 || first == second {
        return Ok(Vec::new());
    }
    let response = client
        .get_consistency_proof(v1::GetConsistencyProofRequest {
            first_size: first,
            second_size: second,
        })
        .await
        .map_err(call("GetConsistencyProof"))?
        .into_inner();
    hashes("GetConsistencyProof", &response.hashes)
}

/// Every record of leaves `from..to`, unfiltered.
pub async fn replay_all(
    client: &mut AuditServiceClient<Channel>,
    from: u64,
    to: u64,
) -> Result<tonic::Streaming<v1::ReplayResponse>, CallError> {
    Ok(client
        .replay(v1::ReplayRequest {
            filter: None,
            from_index: from,
            to_index: to,
        })
        .await
        .map_err(call("Replay"))?
        .into_inner())
}

/// Verifies the server's log against its checkpoint `note`, with what `requirements` asks (an earlier
/// checkpoint the auditor saved, witnesses' cosignatures, origin signatures); on a root mismatch, locates
/// the first divergent leaf with consistency proofs. The outer error is a failed call; the inner result is
/// the verification's verdict.
pub async fn verify_log(
    client: &mut AuditServiceClient<Channel>,
    key: VerifierKey,
    note: &str,
    requirements: &Requirements,
) -> Result<Result<Verified, VerifyFailure>, CallError> {
    let mut verifier = match Verifier::with_requirements(key, note, requirements) {
        Ok(v) => v,
        Err(failure) => return Ok(Err(failure)),
    };
    let size = verifier.checkpoint().size;
    let root = verifier.checkpoint().root;
    if let Some(earlier) = verifier.earlier().map(|e| e.size) {
        match consistency(client, earlier, size).await {
            Ok(proof) => verifier.consistency_proof(&proof),
            Err(e @ CallError::BadHash { .. }) => {
                verifier.malformed_consistency_proof(e.to_string())
            }
            Err(e) => return Err(e),
        }
    }
    if size > 0 {
        let mut stream = replay_all(client, 0, size).await?;
        while let Some(item) = stream.next().await {
            let item = item.map_err(call("Replay"))?;
            verifier.push(item.leaf_index, &item.record, None);
        }
    }
    match verifier.finish() {
        Ok(verified) => Ok(Ok(verified)),
        Err(mut failure) => {
            if failure.needs_location() {
                let leaves = failure.leaf_hashes().to_vec();
                let located = verify::locate_divergence(&leaves, size, &root, |first, second| {
                    let mut client = client.clone();
                    async move { consistency(&mut client, first, second).await }
                })
                .await?;
                if let Some(index) = located {
                    failure.add_located(index);
                }
            }
            Ok(Err(failure))
        }
    }
}

pub use hazchem_kit::checkpoint::{StreamVerdict, verify_stream};
