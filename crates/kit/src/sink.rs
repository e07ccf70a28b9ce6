//! How the bus's own services (ledger, credit, enforcement, ...) put their events on the record: through
//! the same publishing core as departments ([`Publish`], implemented by the gateway's), over their own
//! connection to the bus, so that their events pass the same admission (policy, field rules) and are
//! stored the same way.

use std::sync::Arc;

use hazchem_pki::Principal;
use hazchem_proto::v1;
use prost::Message;
use tonic::Status;

/// What a publisher is told about one accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub event_id: String,
    pub sequence: u64,
    pub duplicate: bool,
}

impl From<Accepted> for v1::Accepted {
    fn from(a: Accepted) -> Self {
        v1::Accepted {
            event_id: a.event_id,
            sequence: a.sequence,
            duplicate: a.duplicate,
        }
    }
}

/// A publishing core: admits an event as `principal` and appends it, answering once it is durable. The
/// answer is what a department's `Publish` call gets: the position, or a status naming the rule broken.
#[tonic::async_trait]
pub trait Publish: Send + Sync + 'static {
    async fn publish(
        &self,
        principal: &Principal,
        signed: &v1::SignedEvent,
    ) -> Result<Accepted, Status>;
}

/// A service's way onto the record, acting as its service principal.
#[derive(Clone)]
pub struct EventSink {
    core: Arc<dyn Publish>,
    principal: Principal,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl EventSink {
    pub fn new(core: impl Publish, principal: Principal) -> Self {
        EventSink {
            core: Arc::new(core),
            principal,
        }
    }

    /// Who the events are published as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Publishes one event; the result is what a department's `Publish` call would get.
    #[tracing::instrument(name = "sink.publish", skip_all, fields(principal = %self.principal.uri(), event_id = %event.id))]
    pub async fn publish(&self, event: &v1::Event) -> Result<Accepted, Status> {
        let signed = v1::SignedEvent {
            event: event.encode_to_vec(),
            signature: None,
        };
        self.core.publish(&self.principal, &signed).await
    }
}
