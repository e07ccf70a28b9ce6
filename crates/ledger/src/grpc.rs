//! The gRPC `AuditService`: authenticates each call (mTLS client certificate), converts the wire types, and
//! maps the ledger's errors to statuses in one place ([`status`]).
//!
//! Replay delivers each record only if the caller may read it under the read policy (departments what they
//! are entitled to, auditors and services everything), and only if it matches the filter. An inclusion
//! proof is given only for a leaf the caller may read; asked by event id, an event it may not read is
//! answered exactly as one that does not exist.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use hazchem_admission::{FieldViolation, Rejection};
use hazchem_domain::{CasNumber, Department, Uscc};
use hazchem_gateway::EventFilter;
use hazchem_pki::{Principal, ServerTls, authenticate};
use hazchem_proto::v1::audit_service_server::{AuditService, AuditServiceServer};
use hazchem_proto::{department_from_i32, v1};
use prost::Message as _;
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
        hazchem_gateway::serve_grpc(
            "audit service",
            Routes::new(AuditServiceServer::new(self)),
            &[AuditServiceServer::<AuditServer>::NAME],
            listener,
            tls,
            shutdown,
        )
        .await
        .map_err(|e| Error::Serve(e.to_string()))
    }
}

/// Runs a ledger as a service: ingest (with checkpoints published through `sink`) and the audit service
/// on `listener`, until `shutdown`. If either fails, the other is stopped and the error returned, so that
/// a ledger that must stop (stream gap, mismatch) stops serving too.
pub async fn run_service(
    ledger: Ledger,
    bus: hazchem_bus::Bus,
    sink: Option<hazchem_gateway::EventSink>,
    listener: TcpListener,
    tls: ServerTls,
    shutdown: CancellationToken,
) -> Result<()> {
    let server = AuditServer::new(ledger.clone());
    hazchem_gateway::run_together(
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
        issued_at: Some(hazchem_gateway::timestamp(checkpoint.issued_at)),
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
        Ok(ReplayFilter::default().admits(self.ledger.policy(), principal, &bytes))
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
        let filter = ReplayFilter::from_proto(&request.filter.unwrap_or_default())?;
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
                        if !filter.admits(ledger.policy(), &principal, &bytes) {
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

/// A validated replay filter. Validation is the gateway's ([`EventFilter::from_proto`]), so a bad filter
/// is refused with the same field violations as a subscription's; matching is a local copy of the
/// gateway's (which is private there).
#[derive(Debug, Default, Clone)]
pub struct ReplayFilter {
    departments: BTreeSet<Department>,
    event_types: BTreeSet<String>,
    enterprises: BTreeSet<String>,
    chemicals: BTreeSet<String>,
    batch_codes: BTreeSet<String>,
    time_from: Option<DateTime<Utc>>,
    time_until: Option<DateTime<Utc>>,
}

fn to_chrono(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

impl ReplayFilter {
    /// Validates a wire filter; violations name `filter.<field>[i]`.
    pub fn from_proto(filter: &v1::EventFilter) -> Result<Self, Status> {
        EventFilter::from_proto(filter, "filter")?;
        Ok(ReplayFilter {
            departments: filter
                .departments
                .iter()
                .filter_map(|d| department_from_i32(*d).ok())
                .collect(),
            event_types: filter.event_types.iter().cloned().collect(),
            enterprises: filter
                .enterprises
                .iter()
                .filter_map(|u| Uscc::parse(u).ok().map(|u| u.as_str().to_owned()))
                .collect(),
            chemicals: filter
                .chemicals
                .iter()
                .filter_map(|c| CasNumber::parse(c).ok().map(|c| c.as_str().to_owned()))
                .collect(),
            batch_codes: filter.batch_codes.iter().cloned().collect(),
            time_from: filter.time_from.as_ref().and_then(to_chrono),
            time_until: filter.time_until.as_ref().and_then(to_chrono),
        })
    }

    /// Whether the filter selects everything.
    pub fn is_empty(&self) -> bool {
        self.departments.is_empty()
            && self.event_types.is_empty()
            && self.enterprises.is_empty()
            && self.chemicals.is_empty()
            && self.batch_codes.is_empty()
            && self.time_from.is_none()
            && self.time_until.is_none()
    }

    /// Whether `principal` may read the record `bytes` and the filter selects it.
    pub fn admits(
        &self,
        policy: &hazchem_admission::Policy,
        principal: &Principal,
        bytes: &[u8],
    ) -> bool {
        let reads_everything = matches!(principal, Principal::Auditor(_) | Principal::Service(_));
        if reads_everything && self.is_empty() {
            // Every leaf, even one that does not decode: auditors verify the log as it is.
            return true;
        }
        let Ok(record) = v1::Record::decode(bytes) else {
            return false;
        };
        let Ok(dynamic) = hazchem_proto::decode_event(&record.event) else {
            return false;
        };
        let Ok(event) = v1::Event::decode(record.event.as_slice()) else {
            return false;
        };
        let token = hazchem_proto::event_type_of(&dynamic)
            .map(|t| t.token)
            .unwrap_or_default();
        let publisher = department_from_i32(event.department).ok();
        let audience: Vec<Department> = event
            .audience
            .iter()
            .filter_map(|d| department_from_i32(*d).ok())
            .collect();
        if !policy.may_read(
            principal,
            &token,
            publisher,
            event.classification(),
            &audience,
        ) {
            return false;
        }
        if !self.departments.is_empty() && !publisher.is_some_and(|d| self.departments.contains(&d))
        {
            return false;
        }
        if !self.event_types.is_empty() && !self.event_types.contains(&token) {
            return false;
        }
        if self.time_from.is_some() || self.time_until.is_some() {
            let Some(time) = event.time.as_ref().and_then(to_chrono) else {
                return false;
            };
            if self.time_from.is_some_and(|from| time < from)
                || self.time_until.is_some_and(|until| time >= until)
            {
                return false;
            }
        }
        if self.enterprises.is_empty() && self.chemicals.is_empty() && self.batch_codes.is_empty() {
            return true;
        }
        let keys = hazchem_admission::index_keys(&dynamic);
        (self.enterprises.is_empty()
            || keys
                .enterprises
                .iter()
                .any(|e| self.enterprises.contains(e)))
            && (self.chemicals.is_empty()
                || keys.chemicals.iter().any(|c| self.chemicals.contains(c)))
            && (self.batch_codes.is_empty()
                || keys
                    .batch_codes
                    .iter()
                    .any(|b| self.batch_codes.contains(b)))
    }
}
