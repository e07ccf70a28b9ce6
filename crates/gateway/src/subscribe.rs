//! The read path: filtered, entitled, resumable subscriptions in stream order.

use std::collections::BTreeSet;

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use hazchem_admission::{Admission, FieldViolation, Rejection};
use hazchem_bus::{Bus, EventSubject, Filter, Message, Start};
use hazchem_domain::Department;
use hazchem_pki::Principal;
use hazchem_proto::{department_from_i32, v1};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::metrics::Metrics;
use crate::publish::timestamp;

/// How many messages may wait for a slow subscriber before the reader pauses.
const SUBSCRIBER_BUFFER: usize = 256;

/// What a subscriber asked for, checked.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    departments: BTreeSet<Department>,
    event_types: BTreeSet<String>,
    enterprises: BTreeSet<String>,
    chemicals: BTreeSet<String>,
    batch_codes: BTreeSet<String>,
    time_from: Option<DateTime<Utc>>,
    time_until: Option<DateTime<Utc>>,
}

impl EventFilter {
    /// Checks every value of a wire filter; `prefix` names the field in violations ("filter").
    pub fn from_proto(filter: &v1::EventFilter, prefix: &str) -> Result<Self, Status> {
        let mut violations = Vec::new();
        let mut out = EventFilter::default();
        for (i, d) in filter.departments.iter().enumerate() {
            match department_from_i32(*d) {
                Ok(d) => {
                    out.departments.insert(d);
                }
                Err(e) => violations.push(FieldViolation::new(
                    format!("{prefix}.departments[{i}]"),
                    "department.unknown",
                    e.to_string(),
                )),
            }
        }
        let known: BTreeSet<String> = hazchem_proto::event_types()
            .into_iter()
            .map(|t| t.token)
            .collect();
        for (i, t) in filter.event_types.iter().enumerate() {
            if known.contains(t) {
                out.event_types.insert(t.clone());
            } else {
                violations.push(FieldViolation::new(
                    format!("{prefix}.event_types[{i}]"),
                    "event_type.unknown",
                    format!("\"{t}\" is not an event type of hazchem.v1 (for example \"waybill_issued\")"),
                ));
            }
        }
        // Identifiers (enterprises, chemicals, batch codes) and list lengths are checked by the contract's
        // own field rules on EventFilter, like any event field; departments are checked above.
        let mut dynamic = prost_reflect::DynamicMessage::new(
            hazchem_proto::message("hazchem.v1.EventFilter")
                .expect("EventFilter is in the contract"),
        );
        dynamic
            .transcode_from(filter)
            .expect("an EventFilter transcodes to its own descriptor");
        let report = hazchem_admission::validate::validate(&dynamic, Utc::now(), Duration::ZERO);
        violations.extend(
            report
                .violations
                .into_iter()
                .filter(|v| !v.field.starts_with("departments"))
                .map(|v| {
                    FieldViolation::new(format!("{prefix}.{}", v.field), v.rule, v.description)
                }),
        );
        out.enterprises = report.keys.enterprises.into_iter().collect();
        out.chemicals = report.keys.chemicals.into_iter().collect();
        out.batch_codes = report.keys.batch_codes.into_iter().collect();
        out.time_from = filter.time_from.as_ref().and_then(to_chrono);
        out.time_until = filter.time_until.as_ref().and_then(to_chrono);
        if let (Some(from), Some(until)) = (out.time_from, out.time_until)
            && from >= until
        {
            violations.push(FieldViolation::new(
                format!("{prefix}.time_until"),
                "time_range.empty",
                format!("time_until ({until}) must be after time_from ({from})"),
            ));
        }
        if violations.is_empty() {
            Ok(out)
        } else {
            Err(Rejection::Invalid(violations).into())
        }
    }

    /// The bus subjects that can hold matching events (the rest is checked per event).
    pub fn subjects(&self) -> Filter {
        let publishers: Vec<&str> = if self.departments.is_empty() {
            vec!["*"]
        } else {
            self.departments.iter().map(|d| d.code()).collect()
        };
        let patterns: Vec<String> = if self.event_types.is_empty() {
            if self.departments.is_empty() {
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
                    self.event_types
                        .iter()
                        .map(move |t| format!("{}.{p}.{t}.*", hazchem_bus::SUBJECT_PREFIX))
                })
                .collect()
        };
        Filter::new(patterns).expect("patterns built from validated tokens")
    }

    /// [`EventFilter::subjects`] narrowed to the event types `readable` (the read policy's
    /// tokens for the subscriber), so that the consumer the bus asks NATS for stays within the
    /// subscriber's NATS read permissions; `None` when none of the selected types is readable.
    pub fn subjects_within(&self, readable: &[String]) -> Option<Filter> {
        if readable.len() == hazchem_admission::event_type_tokens().len() {
            return Some(self.subjects());
        }
        let event_types: BTreeSet<String> = if self.event_types.is_empty() {
            readable.iter().cloned().collect()
        } else {
            readable
                .iter()
                .filter(|t| self.event_types.contains(*t))
                .cloned()
                .collect()
        };
        if event_types.is_empty() {
            return None;
        }
        Some(
            EventFilter {
                event_types,
                ..self.clone()
            }
            .subjects(),
        )
    }

    fn needs_keys(&self) -> bool {
        !(self.enterprises.is_empty() && self.chemicals.is_empty() && self.batch_codes.is_empty())
    }

    /// Whether a decoded event matches the conditions the subject could not express.
    fn matches(&self, admission: &Admission, event: &v1::Event, bytes: &[u8]) -> bool {
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
        if !self.needs_keys() {
            return true;
        }
        let Ok(keys) = admission.index_keys(bytes) else {
            return false;
        };
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
            match filter.subjects_within(&readable) {
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
            Some(Position::Time(t)) => Start::Time(to_chrono(&t).ok_or_else(|| {
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
    let record = match v1::Record::decode(message.payload.as_ref()) {
        Ok(r) => r,
        Err(error) => {
            tracing::error!(sequence = message.sequence, %error, "stored record does not decode; skipped");
            return None;
        }
    };
    let event = v1::Event::decode(record.event.as_ref()).ok()?;
    let publisher = department_from_i32(event.department).ok();
    let audience: Vec<Department> = event
        .audience
        .iter()
        .filter_map(|d| department_from_i32(*d).ok())
        .collect();
    if !admission.policy().may_read(
        principal,
        subject.type_token,
        publisher,
        event.classification(),
        &audience,
    ) {
        return None;
    }
    if !filter.matches(admission, &event, &record.event) {
        return None;
    }
    Some(v1::SubscribeResponse {
        sequence: message.sequence,
        stored_at: Some(timestamp(message.time)),
        subject: message.subject.clone(),
        record: Some(record),
    })
}

fn to_chrono(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}
