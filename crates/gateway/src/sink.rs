//! How the bus's own services (ledger, credit, enforcement, ...) put their events on the record: through
//! the same [`Publisher`] as departments, over their own connection to the bus, so that their events pass
//! the same admission (policy, field rules) and are stored the same way.

use hazchem_pki::Principal;
use hazchem_proto::v1;
use prost::Message;
use tonic::Status;

use crate::publish::{Accepted, Publisher};

/// A service's way onto the record, acting as its service principal.
#[derive(Debug, Clone)]
pub struct EventSink {
    publisher: Publisher,
    principal: Principal,
}

impl EventSink {
    pub fn new(publisher: Publisher, principal: Principal) -> Self {
        EventSink {
            publisher,
            principal,
        }
    }

    /// Who the events are published as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Publishes one event; the result is what a department's `Publish` call would get.
    pub async fn publish(&self, event: &v1::Event) -> Result<Accepted, Status> {
        let signed = v1::SignedEvent {
            event: event.encode_to_vec(),
            signature: None,
        };
        self.publisher.publish(&self.principal, &signed).await
    }
}
