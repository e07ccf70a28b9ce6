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

/// Why a service's event did not go on the record, by what the service can do about it. The gateway's
/// answer (a status naming the field and the rule) is kept for logs and for the service's own callers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// Refused: the event breaks a rule (policy, field rules, a guard). Publishing it again gets the same
    /// answer.
    #[error("refused: {}", .0.message())]
    Refused(Status),
    /// The id is already on the record with other content: this service's own earlier event under the
    /// same id (ids are scoped by publisher, so nobody else can hold it).
    #[error("the id is on the record with other content: {}", .0.message())]
    IdReused(Status),
    /// The record did not take it (the bus is unavailable): publish it again, with the same id.
    #[error("not taken, retry: {}", .0.message())]
    Retry(Status),
}

impl PublishError {
    /// What a publishing core's status means to a service.
    pub fn from_status(status: Status) -> Self {
        match status.code() {
            tonic::Code::AlreadyExists => PublishError::IdReused(status),
            tonic::Code::Unavailable
            | tonic::Code::Internal
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Aborted
            | tonic::Code::ResourceExhausted => PublishError::Retry(status),
            _ => PublishError::Refused(status),
        }
    }

    /// The status the gateway answered with (for a service's own gRPC answers).
    pub fn status(&self) -> &Status {
        match self {
            PublishError::Refused(s) | PublishError::IdReused(s) | PublishError::Retry(s) => s,
        }
    }
}

impl From<PublishError> for Status {
    fn from(error: PublishError) -> Status {
        match error {
            PublishError::Refused(s) | PublishError::IdReused(s) | PublishError::Retry(s) => s,
        }
    }
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

    /// Publishes one event: accepted (durable, or already on the record as a duplicate), or why not.
    ///
    /// [`PublishError::IdReused`] is an alarm, raised here for every service: the record holds other
    /// content under an id this service derived (ids are scoped by publisher, so only this service can
    /// have put it there: a changed configuration, or a store derived from another stream). It is logged
    /// as an error and counted (`hazchem_sink_events{outcome="id_reused"}`); the caller decides whether
    /// to go on, but never counts it as done.
    #[tracing::instrument(name = "sink.publish", skip_all, fields(principal = %self.principal.uri(), event_id = %event.id))]
    pub async fn publish(&self, event: &v1::Event) -> Result<Accepted, PublishError> {
        let signed = v1::SignedEvent {
            event: event.encode_to_vec(),
            signature: None,
        };
        let result = self
            .core
            .publish(&self.principal, &signed)
            .await
            .map_err(PublishError::from_status);
        let outcome = match &result {
            Ok(accepted) if accepted.duplicate => "duplicate",
            Ok(_) => "stored",
            Err(PublishError::Refused(_)) => "refused",
            Err(PublishError::Retry(_)) => "retry",
            Err(PublishError::IdReused(status)) => {
                tracing::error!(
                    event_id = %event.id,
                    status = %status.message(),
                    "ALARM: the record holds other content under an id this service derived; the \
                     record keeps the earlier event. Investigate: a changed configuration, or a store \
                     derived from another stream"
                );
                "id_reused"
            }
        };
        crate::metrics::SinkMetrics::global().published(self.service(), outcome);
        result
    }

    /// Publishes one event, trying again with backoff (100 ms, doubling, at most 5 s) while the record
    /// does not take it ([`PublishError::Retry`]), until it is accepted or refused, or `shutdown`
    /// (`None`: not published yet; the same id publishes it later).
    pub async fn publish_retrying(
        &self,
        event: &v1::Event,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Option<Result<Accepted, PublishError>> {
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            match self.publish(event).await {
                Err(PublishError::Retry(status)) => {
                    tracing::warn!(event_id = %event.id, status = %status.message(), "the record did not take a service's event; retrying");
                }
                done => return Some(done),
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(std::time::Duration::from_secs(5));
        }
    }

    /// The service's name (the principal's), for metrics.
    fn service(&self) -> &str {
        match &self.principal {
            Principal::Service(name) => name,
            _ => "-",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A publishing core that answers ALREADY_EXISTS for an id it holds with other content.
    struct Record(std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>);

    #[tonic::async_trait]
    impl Publish for Record {
        async fn publish(
            &self,
            _: &Principal,
            signed: &v1::SignedEvent,
        ) -> Result<Accepted, Status> {
            let event = v1::Event::decode(signed.event.as_slice()).unwrap();
            let mut held = self.0.lock().unwrap();
            match held.get(&event.id) {
                Some(bytes) if *bytes == signed.event => Ok(Accepted {
                    event_id: event.id,
                    sequence: 1,
                    duplicate: true,
                }),
                Some(_) => Err(Status::already_exists("other content under this id")),
                None => {
                    held.insert(event.id.clone(), signed.event.clone());
                    Ok(Accepted {
                        event_id: event.id,
                        sequence: 1,
                        duplicate: false,
                    })
                }
            }
        }
    }

    /// Meeting other content under its own id is an alarm, counted, and never reported as accepted.
    #[tokio::test]
    async fn an_id_reused_is_an_alarm_never_done() {
        let sink = EventSink::new(
            Record(Default::default()),
            Principal::service("sinktest").unwrap(),
        );
        let metrics = crate::metrics::SinkMetrics::global();
        let event = |subject: &str| v1::Event {
            id: "e-1".into(),
            subject: subject.into(),
            ..v1::Event::default()
        };
        assert!(!sink.publish(&event("a")).await.unwrap().duplicate);
        assert!(sink.publish(&event("a")).await.unwrap().duplicate);
        let reused = sink.publish(&event("b")).await.unwrap_err();
        assert!(matches!(reused, PublishError::IdReused(_)), "{reused}");
        let shutdown = tokio_util::sync::CancellationToken::new();
        let retried = sink.publish_retrying(&event("b"), &shutdown).await;
        assert!(matches!(retried, Some(Err(PublishError::IdReused(_)))));
        assert_eq!(metrics.count("sinktest", "stored"), 1);
        assert_eq!(metrics.count("sinktest", "duplicate"), 1);
        assert_eq!(metrics.count("sinktest", "id_reused"), 2);
    }
}
