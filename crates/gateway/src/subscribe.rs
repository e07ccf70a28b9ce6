//! The read path: filtered, entitled, resumable subscriptions in stream order.

use std::collections::BTreeSet;

use futures::StreamExt;
use hazchem_admission::{Admission, EventFilter, FieldViolation, Rejection};
use hazchem_bus::{Bus, EventSubject, Filter, Message, Start};
use hazchem_pki::Principal;
use hazchem_proto::v1;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::metrics::Metrics;
use hazchem_proto::time::{datetime, timestamp};

/// How many messages may wait for a slow subscriber before the reader pauses.
const SUBSCRIBER_BUFFER: usize = 256;

/// The bus subjects that can hold events `filter` selects (the rest is checked per event).
pub fn subjects(filter: &EventFilter) -> Filter {
    let publishers: Vec<&str> = if filter.departments().is_empty() {
        vec!["*"]
    } else {
        filter.departments().iter().map(|d| d.code()).collect()
    };
    let patterns: Vec<String> = if filter.event_types().is_empty() {
        if filter.departments().is_empty() {
            return Filter::all();
        }
        publishers
            .iter()
            .map(|p| format!("{}.{p}.>", hazchem_bus::SUBJECT_PREFIX))
            .collect()
    } else {
        publishers
            .iter()
            .flat_map(|p| {
                filter
                    .event_types()
                    .iter()
                    .map(move |t| format!("{}.{p}.{t}.*", hazchem_bus::SUBJECT_PREFIX))
            })
            .collect()
    };
    Filter::new(patterns).expect("patterns built from validated tokens")
}

/// [`subjects`] narrowed to the event types `readable` (the read policy's tokens for the subscriber), so
/// that the consumer the bus asks NATS for stays within the subscriber's NATS read permissions; `None`
/// when none of the selected types is readable.
pub fn subjects_within(filter: &EventFilter, readable: &[String]) -> Option<Filter> {
    if readable.len() == hazchem_admission::event_type_tokens().len() {
        return Some(subjects(filter));
    }
    let event_types: BTreeSet<String> = readable
        .iter()
        .filter(|t| filter.event_types().is_empty() || filter.event_types().contains(*t))
        .cloned()
        .collect();
    if event_types.is_empty() {
        return None;
    }
    Some(subjects(&filter.with_event_types(event_types)))
}

/// The subscription service's core.
#[derive(Clone)]
pub struct Subscriptions {
    bus: Bus,
    admission: std::sync::Arc<Admission>,
    metrics: Metrics,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions").finish_non_exhaustive()
    }
}

/// The stream a subscriber receives.
pub type SubscriptionStream =
    tokio_stream::wrappers::ReceiverStream<Result<v1::SubscribeResponse, Status>>;

impl Subscriptions {
    pub fn new(
        bus: Bus,
        admission: std::sync::Arc<Admission>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        Subscriptions {
            bus,
            admission,
            metrics,
            shutdown,
        }
    }

    /// Starts delivering what `principal` may read and the request selects, in stream order.
    pub async fn subscribe(
        &self,
        principal: Principal,
        request: v1::SubscribeRequest,
    ) -> Result<SubscriptionStream, Status> {
        let filter = EventFilter::from_proto(&request.filter.unwrap_or_default(), "filter")?;
        let start = self.start(&principal, request.start).await?;
        let readable = self.admission.policy().readable_tokens(&principal);
        let mut messages: futures::stream::BoxStream<'static, hazchem_bus::Result<Message>> =
            match subjects_within(&filter, &readable) {
                Some(subjects) => {
                    let mut messages = self.reader_bus(&principal).read(start, subjects);
                    messages.ready().await.map_err(|e| match e {
                        hazchem_bus::Error::PermissionDenied { .. } => Status::permission_denied(
                            format!("the bus refused to read for {}: {e}", principal.uri()),
                        ),
                        e => Status::unavailable(format!("cannot start reading the stream: {e}")),
                    })?;
                    messages.boxed()
                }
                // Nothing the request selects is readable: deliver nothing until the subscriber
                // leaves.
                None => futures::stream::pending().boxed(),
            };
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let admission = self.admission.clone();
        let shutdown = self.shutdown.clone();
        let metrics = self.metrics.clone();
        metrics.subscribers_inc();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = messages.next() => next,
                    () = tx.closed() => break,
                    () = shutdown.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("the gateway is shutting down; resume from your last sequence + 1"))).await;
                        break;
                    }
                };
                let item = match next {
                    None => break,
                    Some(Err(e)) => Some(Err(Status::unavailable(format!(
                        "reading the stream failed: {e}"
                    )))),
                    Some(Ok(message)) => {
                        deliverable(&admission, &principal, &filter, message).map(Ok)
                    }
                };
                if let Some(item) = item {
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        break;
                    }
                }
            }
            metrics.subscribers_dec();
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    /// The bus as `principal` reads it: over its own NATS connection (departments and services,
    /// when the bus has per-principal credentials), so NATS checks its read permissions as well;
    /// auditors, who have no NATS user, read over the gateway's own connection.
    fn reader_bus(&self, principal: &Principal) -> Bus {
        match principal {
            Principal::Auditor(_) => self.bus.clone(),
            _ => self.bus.for_principal(principal.name()),
        }
    }

    /// Moves a durable subscription's cursor: it resumes after `sequence`.
    pub async fn acknowledge(
        &self,
        principal: &Principal,
        request: v1::AcknowledgeCursorRequest,
    ) -> Result<(), Status> {
        let name = cursor_name(principal, &request.durable_name)?;
        let last = self
            .bus
            .last_sequence()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if request.sequence == 0 || request.sequence > last {
            return Err(Rejection::Invalid(vec![FieldViolation::new(
                "sequence",
                "sequence.out_of_range",
                format!(
                    "sequence must be between 1 and the last stored sequence {last}, got {}",
                    request.sequence
                ),
            )])
            .into());
        }
        self.bus
            .store_cursor(&name, request.sequence)
            .await
            .map_err(|e| Status::unavailable(format!("cannot store the cursor: {e}")))
    }

    async fn start(
        &self,
        principal: &Principal,
        start: Option<v1::StartPosition>,
    ) -> Result<Start, Status> {
        use v1::start_position::Position;
        Ok(match start.and_then(|s| s.position) {
            None => Start::Beginning,
            Some(Position::Sequence(n)) => Start::Sequence(n.max(1)),
            Some(Position::Time(t)) => Start::Time(datetime(&t).ok_or_else(|| {
                Status::from(Rejection::Invalid(vec![FieldViolation::new(
                    "start.time",
                    "timestamp.range",
                    "not a valid timestamp",
                )]))
            })?),
            Some(Position::NewOnly(_)) => Start::New,
            Some(Position::DurableName(name)) => {
                let cursor = self
                    .bus
                    .load_cursor(&cursor_name(principal, &name)?)
                    .await
                    .map_err(|e| Status::unavailable(format!("cannot load the cursor: {e}")))?;
                cursor.map_or(Start::Beginning, |c| Start::Sequence(c + 1))
            }
        })
    }
}

/// A durable subscription belongs to the principal that made it.
fn cursor_name(principal: &Principal, durable: &str) -> Result<String, Status> {
    let name = format!("sub-{}-{}-{durable}", principal.kind(), principal.name());
    hazchem_bus::validate_cursor_name(durable)
        .and_then(|()| hazchem_bus::validate_cursor_name(&name))
        .map_err(|_| {
            Status::from(Rejection::Invalid(vec![FieldViolation::new(
                "durable_name",
                "token.format",
                "a durable name is 1-100 characters of A-Z a-z 0-9 _ -",
            )]))
        })?;
    Ok(name)
}

/// The response for a stored message, if the principal may read it and the filter selects it.
fn deliverable(
    admission: &Admission,
    principal: &Principal,
    filter: &EventFilter,
    message: Message,
) -> Option<v1::SubscribeResponse> {
    let subject = EventSubject::parse(&message.subject).ok()?;
    let selected = filter.select(
        admission.policy(),
        principal,
        Some(subject.type_token),
        message.payload.as_ref(),
    )?;
    Some(v1::SubscribeResponse {
        sequence: message.sequence,
        stored_at: Some(timestamp(message.time)),
        subject: message.subject.clone(),
        record: Some(selected.record),
    })
}
