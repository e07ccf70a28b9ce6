//! The gRPC `AuditService`: authenticates each call (mTLS client certificate), converts the wire types, and
//! maps the ledger's errors to statuses in one place ([`status`]).
//!
//! Replay delivers each record only if the caller may read it under the read policy (departments what they
//! are entitled to, auditors and services everything), and only if it matches the filter. An inclusion
//! proof is given only for a leaf the caller may read; asked by event id, an event it may not read is
//! answered exactly as one that does not exist.

use hazchem_admission::{EventFilter, FieldViolation, Policy, Rejection};
use hazchem_pki::{Principal, ServerTls, authenticate};
use hazchem_proto::v1;
use hazchem_proto::v1::audit_service_server::{AuditService, AuditServiceServer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::store::StoredCheckpoint;

/// How many replayed records may wait for a slow reader.
const REPLAY_BUFFER: usize = 256;

/// The one conversion of ledger errors into statuses.
pub fn status(error: Error) -> Status {
    match error {
        Error::OutOfRange(message) => Status::out_of_range(message),
        Error::Storage(_) | Error::Io { .. } => Status::unavailable(error.to_string()),
        other => Status::internal(other.to_string()),
    }
}

fn invalid(field: &str, rule: &str, description: impl Into<String>) -> Status {
    Rejection::Invalid(vec![FieldViolation::new(field, rule, description)]).into()
}

/// The gRPC face of a [`Ledger`].
#[derive(Debug, Clone)]
pub struct AuditServer {
    ledger: Ledger,
}

impl AuditServer {
    pub fn new(ledger: Ledger) -> Self {
        AuditServer { ledger }
    }

    /// Serves `AuditService` over mTLS until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: &ServerTls,
        shutdown: CancellationToken,
    ) -> Result<()> {
        hazchem_kit::serve_grpc(
            "audit service",
            Routes::new(AuditServiceServer::new(self)),
            &[AuditServiceServer::<AuditServer>::NAME],
            listener,
            tls,
            shutdown,
        )
        .await
        .map_err(Error::from)
    }
}

/// Runs a ledger as a service: ingest (with checkpoints published through `sink`) and the audit service
/// on `listener`, until `shutdown`. If either fails, the other is stopped and the error returned, so that
/// a ledger that must stop (stream gap, mismatch) stops serving too.
pub async fn run_service(
    ledger: Ledger,
    bus: hazchem_bus::Bus,
    sink: Option<hazchem_kit::EventSink>,
    listener: TcpListener,
    tls: ServerTls,
    shutdown: CancellationToken,
) -> Result<()> {
    let server = AuditServer::new(ledger.clone());
    hazchem_kit::run_together(
        &shutdown,
        |stop| async move { server.serve(listener, &tls, stop).await },
        |stop| ledger.run(bus, sink, stop),
    )
    .await
}

fn checkpoint_response(checkpoint: &StoredCheckpoint, origin: &str) -> v1::GetCheckpointResponse {
    v1::GetCheckpointResponse {
        signed_note: checkpoint.note.clone(),
        origin: origin.to_owned(),
        tree_size: checkpoint.size,
        root_hash: checkpoint.root.to_vec(),
        issued_at: Some(hazchem_proto::time::timestamp(checkpoint.issued_at)),
    }
}

impl AuditServer {
    /// Whether `principal` may read leaf `index` under the read policy.
    fn may_read(&self, principal: &Principal, index: u64) -> Result<bool, Status> {
        let bytes = self
            .ledger
            .store()
            .leaf(index)
            .map_err(status)?
            .ok_or_else(|| Status::internal(format!("leaf {index} is missing from the store")))?;
        Ok(readable(
            &EventFilter::default(),
            self.ledger.policy(),
            principal,
            &bytes,
        ))
    }

    /// The leaf of event `id` (of `publisher`, if named) among the events `principal` may read: events it
    /// may not read are answered exactly as events that do not exist.
    fn readable_leaf_of(
        &self,
        principal: &Principal,
        id: &str,
        publisher: &str,
    ) -> Result<u64, Status> {
        let mut readable = Vec::new();
        for (by, index) in self.ledger.indexes_of(id).map_err(status)? {
            if (publisher.is_empty() || by == publisher) && self.may_read(principal, index)? {
                readable.push((by, index));
            }
        }
        match readable.as_slice() {
            [] => Err(Status::not_found(format!(
                "no leaf you may read has event id {id:?}{}",
                if publisher.is_empty() {
                    String::new()
                } else {
                    format!(" published by {publisher}")
                }
            ))),
            [(_, index)] => Ok(*index),
            several => Err(invalid(
                "publisher",
                "required",
                format!(
                    "event id {id:?} was used by {} publishers ({}); name the publisher",
                    several.len(),
                    several
                        .iter()
                        .map(|(p, _)| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

#[tonic::async_trait]
impl AuditService for AuditServer {
    async fn get_checkpoint(
        &self,
        request: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::GetCheckpointResponse>, Status> {
        authenticate(&request)?;
        let fresh = request.into_inner().fresh;
        let checkpoint = self.ledger.checkpoint(fresh).await.map_err(status)?;
        Ok(Response::new(checkpoint_response(
            &checkpoint,
            self.ledger.origin(),
        )))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<v1::GetInclusionProofRequest>,
    ) -> Result<Response<v1::GetInclusionProofResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        if !request.publisher.is_empty()
            && hazchem_bus::validate_publisher(&request.publisher).is_err()
        {
            return Err(invalid(
                "publisher",
                "publisher.token",
                "a department code or a service name: [a-z0-9][a-z0-9_-]{0,63}",
            ));
        }
        let tree_size = if request.tree_size == 0 {
            self.ledger.checkpoint(false).await.map_err(status)?.size
        } else {
            request.tree_size
        };
        if tree_size > self.ledger.size() {
            return Err(invalid(
                "tree_size",
                "tree_size.range",
                format!(
                    "the log holds {} leaves; ask for a tree size up to that (0 means the latest checkpoint's)",
                    self.ledger.size()
                ),
            ));
        }
        let index = match request.leaf {
            Some(v1::get_inclusion_proof_request::Leaf::EventId(id)) => {
                if id.is_empty() {
                    return Err(invalid(
                        "event_id",
                        "required",
                        "required: the event id to prove",
                    ));
                }
                self.readable_leaf_of(&principal, &id, &request.publisher)?
            }
            Some(v1::get_inclusion_proof_request::Leaf::LeafIndex(index)) => {
                if index < self.ledger.size() && !self.may_read(&principal, index)? {
                    return Err(Status::permission_denied(format!(
                        "leaf {index} is not an event you may read"
                    )));
                }
                index
            }
            None => {
                return Err(invalid(
                    "leaf",
                    "required",
                    "required: an event_id or a leaf_index",
                ));
            }
        };
        if index >= tree_size {
            return Err(Status::failed_precondition(format!(
                "leaf {index} is not in the tree of size {tree_size}; ask against a later checkpoint"
            )));
        }
        let proof = self
            .ledger
            .inclusion_proof(index, tree_size)
            .map_err(status)?;
        Ok(Response::new(v1::GetInclusionProofResponse {
            leaf_index: proof.index,
            tree_size: proof.tree_size,
            leaf_hash: proof.leaf_hash.to_vec(),
            hashes: proof.hashes.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<v1::GetConsistencyProofRequest>,
    ) -> Result<Response<v1::GetConsistencyProofResponse>, Status> {
        authenticate(&request)?;
        let request = request.into_inner();
        let second = if request.second_size == 0 {
            self.ledger.checkpoint(false).await.map_err(status)?.size
        } else {
            request.second_size
        };
        if request.first_size == 0 {
            return Err(invalid(
                "first_size",
                "first_size.range",
                "first_size must be at least 1 (every tree extends the empty one)",
            ));
        }
        if request.first_size > second {
            return Err(invalid(
                "first_size",
                "first_size.range",
                format!(
                    "first_size ({}) must not exceed second_size ({second})",
                    request.first_size
                ),
            ));
        }
        if second > self.ledger.size() {
            return Err(invalid(
                "second_size",
                "second_size.range",
                format!("the log holds {} leaves, not {second}", self.ledger.size()),
            ));
        }
        let hashes = self
            .ledger
            .consistency_proof(request.first_size, second)
            .map_err(status)?;
        Ok(Response::new(v1::GetConsistencyProofResponse {
            first_size: request.first_size,
            second_size: second,
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    type ReplayStream = tokio_stream::wrappers::ReceiverStream<Result<v1::ReplayResponse, Status>>;

    async fn replay(
        &self,
        request: Request<v1::ReplayRequest>,
    ) -> Result<Response<Self::ReplayStream>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let filter = EventFilter::from_proto(&request.filter.unwrap_or_default(), "filter")?;
        let size = self.ledger.size();
        let to = if request.to_index == 0 {
            size
        } else {
            request.to_index
        };
        if to > size {
            return Err(invalid(
                "to_index",
                "to_index.range",
                format!("the log holds {size} leaves; to_index is exclusive and at most {size}"),
            ));
        }
        if request.from_index > to {
            return Err(invalid(
                "from_index",
                "from_index.range",
                format!(
                    "from_index ({}) must not exceed to_index ({to})",
                    request.from_index
                ),
            ));
        }
        let (tx, rx) = mpsc::channel(REPLAY_BUFFER);
        let ledger = self.ledger.clone();
        let from = request.from_index;
        tokio::task::spawn_blocking(move || {
            for item in ledger.store().leaves(from, to) {
                let response = match item {
                    Ok((index, bytes)) => {
                        if !readable(&filter, ledger.policy(), &principal, &bytes) {
                            continue;
                        }
                        Ok(v1::ReplayResponse {
                            leaf_index: index,
                            sequence: index + 1,
                            record: bytes.to_vec(),
                        })
                    }
                    Err(error) => Err(status(error)),
                };
                let failed = response.is_err();
                if tx.blocking_send(response).is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }
}

/// Whether Replay delivers the leaf `bytes` to `principal` under `filter`: the one read filter, except that
/// auditors and services asking for everything get every leaf as stored, readable or not (they verify the
/// log as it is).
fn readable(filter: &EventFilter, policy: &Policy, principal: &Principal, bytes: &[u8]) -> bool {
    filter.reads_raw(principal) || filter.select(policy, principal, None, bytes).is_some()
}
