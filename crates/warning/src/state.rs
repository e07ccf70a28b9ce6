//! What the service derives from the stream, deterministically in stream order:
//!
//! - the rules' own state (hysteresis of each sensor, recent alarms per site, permits by buyer×chemical,
//!   road transport licences by holder, and the warnings each condition holds open), from the department
//!   events the rules read;
//! - the warnings, from the `warning_*` events on the record (raised by this service or the credit
//!   service; acknowledged, escalated and closed by this service).
//!
//! Folding a message may produce [`Outbound`] events (a warning raised, a warning closed because its
//! condition cleared); their ids are deterministic ([`raise_id`], [`close_id`]), so a rebuild derives the
//! same ones and the bus answers them as duplicates.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use hazchem_bus::{EventSubject, Message};
use hazchem_domain::{CasNumber, Catalogue, Department};
use hazchem_proto::{department_from_i32, v1};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::rules::{Condition, Level, Rule, RuleSet};

/// The service's name: its principal, its events' publisher token.
pub const SERVICE_NAME: &str = "warning";
/// The credit service, whose conflict warnings this service also tracks.
pub const CREDIT_SERVICE: &str = "credit";

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"hazchem-warning\0");
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The id of the warning a rule raises on an event (and of the `warning_raised` event).
pub fn raise_id(rule: &str, publisher: &str, event_id: &str, part: &str) -> String {
    format!(
        "wrn-{}",
        digest(&["raise", rule, publisher, event_id, part])
    )
}

/// The id of a warning's one `warning_closed` event (by a department or by its rule).
pub fn close_id(warning_id: &str) -> String {
    format!("wrn-close-{}", digest(&["close", warning_id]))
}

/// The id of a department's acknowledgement of a warning.
pub fn ack_id(warning_id: &str, department: Department) -> String {
    format!(
        "wrn-ack-{}",
        digest(&["ack", warning_id, department.code()])
    )
}

/// The id of a warning's `n`th escalation (from 1).
pub fn escalation_id(warning_id: &str, n: u32) -> String {
    format!(
        "wrn-esc-{}",
        digest(&["escalate", warning_id, &n.to_string()])
    )
}

/// Where a warning is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Open,
    Escalated,
    Acknowledged,
    Closed,
}

impl State {
    pub fn to_proto(self) -> v1::WarningState {
        match self {
            State::Open => v1::WarningState::Open,
            State::Escalated => v1::WarningState::Escalated,
            State::Acknowledged => v1::WarningState::Acknowledged,
            State::Closed => v1::WarningState::Closed,
        }
    }

    pub fn from_proto(value: i32) -> Option<State> {
        match v1::WarningState::try_from(value).ok()? {
            v1::WarningState::Open => Some(State::Open),
            v1::WarningState::Escalated => Some(State::Escalated),
            v1::WarningState::Acknowledged => Some(State::Acknowledged),
            v1::WarningState::Closed => Some(State::Closed),
            v1::WarningState::Unspecified => None,
        }
    }

    pub fn name(self) -> &'static str {
        self.to_proto().as_str_name()
    }
}

/// One event of a warning's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub event_id: String,
    pub sequence: u64,
    pub event_type: String,
    pub department: Option<Department>,
    pub at: DateTime<Utc>,
    pub level: Level,
    pub note: String,
    pub publisher: String,
}

/// How a warning was closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    pub at: DateTime<Utc>,
    /// `None`: by its rule.
    pub by: Option<Department>,
    pub reason: String,
}

/// A warning, the fold of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub id: String,
    pub rule_id: String,
    pub level: Level,
    pub title: String,
    pub description: String,
    /// Addressed departments, in order of addressing.
    pub addressed: Vec<Department>,
    pub enterprise: Option<(String, String)>,
    pub related: Vec<String>,
    pub raised_at: DateTime<Utc>,
    pub acknowledge_by: Option<DateTime<Utc>>,
    /// The service that raised it.
    pub raised_by: String,
    pub acknowledged: BTreeSet<Department>,
    pub escalations: u32,
    pub closed: Option<Closed>,
    pub history: Vec<HistoryEntry>,
}

impl Warning {
    pub fn state(&self) -> State {
        if self.closed.is_some() {
            State::Closed
        } else if self.awaiting().is_empty() {
            State::Acknowledged
        } else if self.escalations > 0 {
            State::Escalated
        } else {
            State::Open
        }
    }

    /// Addressed departments that have not acknowledged.
    pub fn awaiting(&self) -> Vec<Department> {
        self.addressed
            .iter()
            .copied()
            .filter(|d| !self.acknowledged.contains(d))
            .collect()
    }

    pub fn is_addressed(&self, department: Department) -> bool {
        self.addressed.contains(&department)
    }

    /// Who may acknowledge now.
    pub fn may_acknowledge(&self) -> Vec<Department> {
        if self.closed.is_some() {
            return Vec::new();
        }
        self.awaiting()
    }

    /// Who may close now.
    pub fn may_close(&self) -> Vec<Department> {
        if self.closed.is_some() {
            return Vec::new();
        }
        self.addressed.clone()
    }

    /// Past its deadline without every acknowledgement, as of `now`.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        matches!(self.state(), State::Open | State::Escalated)
            && self.acknowledge_by.is_some_and(|by| by < now)
    }

    /// Whether it is due to escalate at `now`: overdue, and below red or never escalated.
    pub fn escalation_due(&self, now: DateTime<Utc>) -> bool {
        self.overdue(now) && (self.level != Level::Red || self.escalations == 0)
    }
}

/// An event the rules derived, to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Raise(Box<v1::Event>),
    Close(Box<v1::Event>),
}

impl Outbound {
    pub fn event(&self) -> &v1::Event {
        match self {
            Outbound::Raise(e) | Outbound::Close(e) => e,
        }
    }
}

/// One gas rule's state for one sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GasState {
    pub warning_id: String,
}

/// Recent alarms at one site, for one storm rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StormState {
    /// (raised at, alarm id, event id), within the window of the latest.
    pub recent: Vec<(DateTime<Utc>, String, String)>,
    /// Alarms not cleared.
    pub open_alarms: BTreeSet<String>,
    pub warning_id: Option<String>,
}

/// A purchase permit's validity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permit {
    pub number: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// A road transport licence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    pub number: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Suspended from, until (open-ended when `None`).
    pub suspended: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

impl Licence {
    pub fn valid_at(&self, t: DateTime<Utc>) -> bool {
        self.from <= t
            && t < self.until
            && self.revoked_at.is_none_or(|r| t < r)
            && self
                .suspended
                .is_none_or(|(from, until)| t < from || until.is_some_and(|u| t >= u))
    }
}

/// A key of the store that a message changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Warning(String),
    Gas(String),
    Storm(String),
    Permits(String),
    Licences(String),
    /// Warnings a condition holds open (toxic sales by rule|buyer|cas, carriers by rule|carrier).
    Open(String),
}

/// Everything derived from the stream up to `applied`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    pub warnings: BTreeMap<String, Warning>,
    pub gas: BTreeMap<String, GasState>,
    pub storms: BTreeMap<String, StormState>,
    pub permits: BTreeMap<String, Vec<Permit>>,
    pub licences: BTreeMap<String, Vec<Licence>>,
    pub open: BTreeMap<String, Vec<String>>,
    pub applied: u64,
    /// The subject of the message at `applied` (to check the store belongs to the stream).
    pub anchor: String,
}

fn instant(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(hazchem_proto::time::datetime)
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    hazchem_proto::time::timestamp(t)
}

fn departments(list: &[i32]) -> Vec<Department> {
    list.iter()
        .filter_map(|d| department_from_i32(*d).ok())
        .collect()
}

/// What the fold needs besides the state.
pub struct Context<'a> {
    pub rules: &'a RuleSet,
    pub catalogue: &'a Catalogue,
}

/// The record's publisher: a service's name or a department.
fn record_publisher(record: &v1::Record) -> Option<Result<String, Department>> {
    match record.publisher.as_ref()?.principal.as_ref()? {
        v1::publisher::Principal::Service(name) => Some(Ok(name.clone())),
        v1::publisher::Principal::Department(d) => department_from_i32(*d).ok().map(Err),
    }
}

impl Derived {
    /// A copy holding only the `dirty` entries (and the position): what a store write needs.
    pub fn clone_for(&self, dirty: &BTreeSet<Key>) -> Derived {
        let mut d = Derived {
            applied: self.applied,
            anchor: self.anchor.clone(),
            ..Derived::default()
        };
        fn copy<T: Clone>(from: &BTreeMap<String, T>, into: &mut BTreeMap<String, T>, k: &str) {
            if let Some(v) = from.get(k) {
                into.insert(k.to_owned(), v.clone());
            }
        }
        for k in dirty {
            match k {
                Key::Warning(x) => copy(&self.warnings, &mut d.warnings, x),
                Key::Gas(x) => copy(&self.gas, &mut d.gas, x),
                Key::Storm(x) => copy(&self.storms, &mut d.storms, x),
                Key::Permits(x) => copy(&self.permits, &mut d.permits, x),
                Key::Licences(x) => copy(&self.licences, &mut d.licences, x),
                Key::Open(x) => copy(&self.open, &mut d.open, x),
            }
        }
        d
    }

    /// Folds one message; records the keys it changed and the events the rules derived.
    pub fn apply_message(
        &mut self,
        message: &Message,
        cx: &Context<'_>,
        dirty: &mut BTreeSet<Key>,
        out: &mut Vec<Outbound>,
    ) {
        self.applied = self.applied.max(message.sequence);
        self.anchor = message.subject.clone();
        let Ok(subject) = EventSubject::parse(&message.subject) else {
            return;
        };
        let token = subject.type_token;
        let relevant = token.starts_with("warning_")
            || matches!(
                token,
                "sensor_readings_recorded"
                    | "sensor_alarm_raised"
                    | "sensor_alarm_cleared"
                    | "sale_recorded"
                    | "highly_toxic_purchase_permit_issued"
                    | "waybill_issued"
                    | "licence_issued"
                    | "licence_renewed"
                    | "licence_suspended"
                    | "licence_revoked"
            );
        if !relevant {
            return;
        }
        let Ok((record, event)) = hazchem_proto::open_record(message.payload.as_ref()) else {
            tracing::warn!(
                sequence = message.sequence,
                "a message the warning rules read does not decode; skipped"
            );
            return;
        };
        let Some(publisher) = record_publisher(&record) else {
            return;
        };
        if token.starts_with("warning_") {
            self.apply_warning_event(message, &event, &publisher, dirty);
            return;
        }
        // Rule inputs come from departments only.
        if publisher.is_ok() {
            return;
        }
        let src = Source {
            publisher: subject.publisher,
            event_id: subject.id,
            time: message.time,
            event_time: instant(event.time.as_ref()).unwrap_or(message.time),
        };
        for rule in &cx.rules.rules {
            self.apply_rule(rule, cx, &src, &event, dirty, out);
        }
    }

    fn apply_warning_event(
        &mut self,
        message: &Message,
        event: &v1::Event,
        publisher: &Result<String, Department>,
        dirty: &mut BTreeSet<Key>,
    ) {
        use v1::event::Payload as P;
        let by_service = |name: &str| matches!(publisher, Ok(p) if p == name);
        let publisher_name = match publisher {
            Ok(name) => name.clone(),
            Err(d) => d.code().to_owned(),
        };
        let entry = |event_type: &str,
                     department: Option<Department>,
                     at: DateTime<Utc>,
                     level: Level,
                     note: String| HistoryEntry {
            event_id: event.id.clone(),
            sequence: message.sequence,
            event_type: event_type.to_owned(),
            department,
            at,
            level,
            note,
            publisher: publisher_name.clone(),
        };
        match &event.payload {
            Some(P::WarningRaised(r)) => {
                if !(by_service(SERVICE_NAME) || by_service(CREDIT_SERVICE)) {
                    tracing::warn!(
                        sequence = message.sequence,
                        "a warning_raised not published by a warning-raising service; ignored"
                    );
                    return;
                }
                if self.warnings.contains_key(&r.warning_id) {
                    return;
                }
                let (Some(level), Some(raised_at)) =
                    (Level::from_proto(r.level), instant(r.raised_at.as_ref()))
                else {
                    return;
                };
                let mut addressed = Vec::new();
                for d in departments(&r.addressed_to) {
                    if !addressed.contains(&d) {
                        addressed.push(d);
                    }
                }
                let w = Warning {
                    id: r.warning_id.clone(),
                    rule_id: r.rule_id.clone(),
                    level,
                    title: r.title.clone(),
                    description: r.description.clone(),
                    addressed,
                    enterprise: r
                        .enterprise
                        .as_ref()
                        .map(|e| (e.uscc.clone(), e.name.clone())),
                    related: r.related_event_ids.clone(),
                    raised_at,
                    acknowledge_by: instant(r.acknowledge_by.as_ref()),
                    raised_by: publisher_name.clone(),
                    acknowledged: BTreeSet::new(),
                    escalations: 0,
                    closed: None,
                    history: vec![entry(
                        "warning_raised",
                        None,
                        raised_at,
                        level,
                        r.title.clone(),
                    )],
                };
                dirty.insert(Key::Warning(w.id.clone()));
                self.warnings.insert(w.id.clone(), w);
            }
            Some(P::WarningAcknowledged(a)) => {
                let department = if by_service(SERVICE_NAME) {
                    department_from_i32(a.acknowledged_by).ok()
                } else {
                    publisher.as_ref().err().copied()
                };
                let (Some(department), Some(w)) =
                    (department, self.warnings.get_mut(&a.warning_id))
                else {
                    return;
                };
                if w.closed.is_some()
                    || !w.is_addressed(department)
                    || w.acknowledged.contains(&department)
                {
                    return;
                }
                let at = instant(a.acknowledged_at.as_ref()).unwrap_or(message.time);
                w.acknowledged.insert(department);
                let level = w.level;
                w.history.push(entry(
                    "warning_acknowledged",
                    Some(department),
                    at,
                    level,
                    a.note.clone(),
                ));
                dirty.insert(Key::Warning(w.id.clone()));
            }
            Some(P::WarningEscalated(e)) => {
                if !by_service(SERVICE_NAME) {
                    return;
                }
                let (Some(w), Some(to)) = (
                    self.warnings.get_mut(&e.warning_id),
                    Level::from_proto(e.to_level),
                ) else {
                    return;
                };
                if w.closed.is_some() {
                    return;
                }
                w.level = to;
                w.escalations += 1;
                for d in departments(&e.addressed_to) {
                    if !w.addressed.contains(&d) {
                        w.addressed.push(d);
                    }
                }
                if let Some(by) = instant(e.acknowledge_by.as_ref()) {
                    w.acknowledge_by = Some(by);
                }
                let at = instant(e.escalated_at.as_ref()).unwrap_or(message.time);
                w.history
                    .push(entry("warning_escalated", None, at, to, e.reason.clone()));
                dirty.insert(Key::Warning(w.id.clone()));
            }
            Some(P::WarningClosed(c)) => {
                if !by_service(SERVICE_NAME) {
                    return;
                }
                let Some(w) = self.warnings.get_mut(&c.warning_id) else {
                    return;
                };
                if w.closed.is_some() {
                    return;
                }
                let by = department_from_i32(c.closed_by).ok();
                let at = instant(c.closed_at.as_ref()).unwrap_or(message.time);
                w.closed = Some(Closed {
                    at,
                    by,
                    reason: c.reason.clone(),
                });
                let level = w.level;
                w.history
                    .push(entry("warning_closed", by, at, level, c.reason.clone()));
                dirty.insert(Key::Warning(w.id.clone()));
            }
            _ => {}
        }
    }

    fn apply_rule(
        &mut self,
        rule: &Rule,
        cx: &Context<'_>,
        src: &Source<'_>,
        event: &v1::Event,
        dirty: &mut BTreeSet<Key>,
        out: &mut Vec<Outbound>,
    ) {
        use v1::event::Payload as P;
        match (&rule.condition, &event.payload) {
            (
                Condition::GasThreshold {
                    sensor,
                    above,
                    below,
                    clear_margin,
                },
                Some(P::SensorReadingsRecorded(r)),
            ) => {
                let Some(enterprise) = &r.enterprise else {
                    return;
                };
                for reading in &r.readings {
                    if !sensor.matches(reading.kind) || !reading.value.is_finite() {
                        continue;
                    }
                    let v = reading.value;
                    let (beyond, back) = match (above, below) {
                        (Some(a), _) => (v >= *a, v < *a - clear_margin),
                        (None, Some(b)) => (v < *b, v > *b + clear_margin),
                        (None, None) => continue,
                    };
                    let key = format!("{}|{}|{}", rule.id, enterprise.uscc, reading.sensor_id);
                    match self.gas.get(&key) {
                        None if beyond => {
                            let set_point = above.or(*below).unwrap_or_default();
                            let id =
                                raise_id(&rule.id, src.publisher, src.event_id, &reading.sensor_id);
                            let description = format!(
                                "sensor {} at {} ({}){}: reading {v} against the set point {set_point} \
                                 (clears {} {})",
                                reading.sensor_id,
                                enterprise.name,
                                enterprise.uscc,
                                if r.hazard_source_id.is_empty() {
                                    String::new()
                                } else {
                                    format!(", hazard source {}", r.hazard_source_id)
                                },
                                if above.is_some() { "below" } else { "above" },
                                if above.is_some() {
                                    set_point - clear_margin
                                } else {
                                    set_point + clear_margin
                                },
                            );
                            out.push(raise(rule, cx, &id, src, Some(enterprise), description));
                            self.gas.insert(key.clone(), GasState { warning_id: id });
                            dirty.insert(Key::Gas(key));
                        }
                        Some(state) if back => {
                            let reason = format!(
                                "sensor {} back to {v}, past the set point by the clearing margin",
                                reading.sensor_id
                            );
                            out.push(close(&state.warning_id, src, reason));
                            self.gas.remove(&key);
                            dirty.insert(Key::Gas(key));
                        }
                        _ => {}
                    }
                }
            }
            (
                Condition::AlarmStorm {
                    alarms,
                    window_seconds,
                },
                Some(P::SensorAlarmRaised(a)),
            ) => {
                let (Some(enterprise), Some(at)) = (&a.enterprise, instant(a.raised_at.as_ref()))
                else {
                    return;
                };
                let key = format!("{}|{}", rule.id, enterprise.uscc);
                let state = self.storms.entry(key.clone()).or_default();
                state.open_alarms.insert(a.alarm_id.clone());
                state
                    .recent
                    .push((at, a.alarm_id.clone(), src.event_id.to_owned()));
                let latest = state.recent.iter().map(|r| r.0).max().unwrap_or(at);
                let window = TimeDelta::seconds(*window_seconds);
                state.recent.retain(|r| r.0 > latest - window);
                state.recent.sort();
                if state.warning_id.is_none() && state.recent.len() >= *alarms {
                    let id = raise_id(&rule.id, src.publisher, src.event_id, "");
                    let related: Vec<String> = state.recent.iter().map(|r| r.2.clone()).collect();
                    let description = format!(
                        "{} sensor alarms at {} ({}) within {window_seconds} s (alarms {})",
                        state.recent.len(),
                        enterprise.name,
                        enterprise.uscc,
                        state
                            .recent
                            .iter()
                            .map(|r| r.1.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    let mut raised = raise(rule, cx, &id, src, Some(enterprise), description);
                    if let Outbound::Raise(e) = &mut raised
                        && let Some(P::WarningRaised(w)) = &mut e.payload
                    {
                        w.related_event_ids = related;
                        w.related_event_ids.truncate(100);
                    }
                    out.push(raised);
                    state.warning_id = Some(id);
                }
                dirty.insert(Key::Storm(key));
            }
            (Condition::AlarmStorm { .. }, Some(P::SensorAlarmCleared(c))) => {
                let Some(enterprise) = &c.enterprise else {
                    return;
                };
                let key = format!("{}|{}", rule.id, enterprise.uscc);
                let Some(state) = self.storms.get_mut(&key) else {
                    return;
                };
                state.open_alarms.remove(&c.alarm_id);
                if state.open_alarms.is_empty()
                    && let Some(id) = state.warning_id.take()
                {
                    out.push(close(
                        &id,
                        src,
                        "every alarm of the storm is cleared".to_owned(),
                    ));
                    state.recent.clear();
                }
                dirty.insert(Key::Storm(key));
            }
            (Condition::ToxicSaleWithoutPermit { list }, Some(P::SaleRecorded(s))) => {
                let (Some(buyer), Some(chemical), Some(seller)) =
                    (&s.buyer, &s.chemical, &s.seller)
                else {
                    return;
                };
                let Ok(cas) = CasNumber::parse(&chemical.cas) else {
                    return;
                };
                if !cx.catalogue.is_listed(&cas, list) {
                    return;
                }
                let sold_at = instant(s.sold_at.as_ref()).unwrap_or(src.event_time);
                let permitted = self
                    .permits
                    .get(&format!("{}|{}", buyer.uscc, chemical.cas))
                    .is_some_and(|ps| ps.iter().any(|p| p.from <= sold_at && sold_at < p.until));
                if permitted {
                    return;
                }
                let id = raise_id(&rule.id, src.publisher, src.event_id, "");
                let description = format!(
                    "{} ({}) sold {} ({}) to {} ({}) at {}{}; no purchase permit (剧毒化学品购买许可证) for \
                     that buyer and chemical valid at the sale is on the record",
                    seller.name,
                    seller.uscc,
                    chemical.name,
                    chemical.cas,
                    buyer.name,
                    buyer.uscc,
                    sold_at.to_rfc3339(),
                    if s.purchase_permit_number.is_empty() {
                        ", naming no permit".to_owned()
                    } else {
                        format!(", naming permit {:?}", s.purchase_permit_number)
                    }
                );
                out.push(raise(rule, cx, &id, src, Some(buyer), description));
                let key = format!("{}|{}|{}", rule.id, buyer.uscc, chemical.cas);
                self.open.entry(key.clone()).or_default().push(id);
                dirty.insert(Key::Open(key));
            }
            (
                Condition::ToxicSaleWithoutPermit { .. },
                Some(P::HighlyToxicPurchasePermitIssued(p)),
            ) => {
                let (Some(buyer), Some(chemical)) = (&p.purchaser, &p.chemical) else {
                    return;
                };
                if let Some(validity) = &p.validity
                    && let (Some(from), Some(until)) = (
                        instant(validity.valid_from.as_ref()),
                        instant(validity.valid_until.as_ref()),
                    )
                {
                    let permit = Permit {
                        number: p.permit_number.clone(),
                        from,
                        until,
                    };
                    let pkey = format!("{}|{}", buyer.uscc, chemical.cas);
                    // Each rule of this kind sees the same permits; record them once.
                    let permits = self.permits.entry(pkey.clone()).or_default();
                    if !permits.contains(&permit) {
                        permits.push(permit);
                        dirty.insert(Key::Permits(pkey));
                    }
                }
                let key = format!("{}|{}|{}", rule.id, buyer.uscc, chemical.cas);
                if let Some(open) = self.open.remove(&key) {
                    for id in open {
                        out.push(close(
                            &id,
                            src,
                            format!(
                                "purchase permit {} for the buyer and chemical is on the record",
                                p.permit_number
                            ),
                        ));
                    }
                    dirty.insert(Key::Open(key));
                }
            }
            (Condition::UnlicensedCarrier, Some(P::WaybillIssued(w))) => {
                let Some(carrier) = &w.carrier else {
                    return;
                };
                let at = src.event_time;
                let licensed = self
                    .licences
                    .get(&carrier.uscc)
                    .is_some_and(|ls| ls.iter().any(|l| l.valid_at(at)));
                if licensed {
                    return;
                }
                let id = raise_id(&rule.id, src.publisher, src.event_id, "");
                let description = format!(
                    "waybill {} names carrier {} ({}) with licence number {:?}, but no road dangerous-goods \
                     transport licence of that carrier is valid at {} on the record",
                    w.waybill_number,
                    carrier.name,
                    carrier.uscc,
                    w.carrier_licence_number,
                    at.to_rfc3339()
                );
                out.push(raise(rule, cx, &id, src, Some(carrier), description));
                let key = format!("{}|{}", rule.id, carrier.uscc);
                self.open.entry(key.clone()).or_default().push(id);
                dirty.insert(Key::Open(key));
            }
            (
                Condition::UnlicensedCarrier,
                Some(
                    P::LicenceIssued(v1::LicenceIssued { licence })
                    | P::LicenceRenewed(v1::LicenceRenewed { licence }),
                ),
            ) => {
                let Some(licence) = licence else { return };
                if licence.kind != v1::LicenceKind::RoadTransport as i32 {
                    return;
                }
                let (Some(holder), Some(validity)) = (&licence.holder, &licence.validity) else {
                    return;
                };
                let (Some(from), Some(until)) = (
                    instant(validity.valid_from.as_ref()),
                    instant(validity.valid_until.as_ref()),
                ) else {
                    return;
                };
                let entry = Licence {
                    number: licence.licence_number.clone(),
                    from,
                    until,
                    revoked_at: None,
                    suspended: None,
                };
                let valid_now = entry.valid_at(src.event_time);
                // Each rule of this kind sees the same licences; record them once.
                if !self
                    .licences
                    .get(&holder.uscc)
                    .is_some_and(|ls| ls.contains(&entry))
                {
                    let ls = self.licences.entry(holder.uscc.clone()).or_default();
                    ls.retain(|x| x.number != entry.number);
                    ls.push(entry);
                    dirty.insert(Key::Licences(holder.uscc.clone()));
                }
                let key = format!("{}|{}", rule.id, holder.uscc);
                if valid_now && let Some(open) = self.open.remove(&key) {
                    for id in open {
                        out.push(close(
                            &id,
                            src,
                            format!(
                                "road transport licence {} of the carrier is on the record",
                                licence.licence_number
                            ),
                        ));
                    }
                    dirty.insert(Key::Open(key));
                }
            }
            (Condition::UnlicensedCarrier, Some(P::LicenceSuspended(s))) => {
                if s.kind != v1::LicenceKind::RoadTransport as i32 {
                    return;
                }
                let Some(holder) = &s.holder else { return };
                let until = instant(s.suspended_until.as_ref());
                if let Some(l) = self
                    .licences
                    .get_mut(&holder.uscc)
                    .and_then(|ls| ls.iter_mut().find(|l| l.number == s.licence_number))
                {
                    l.suspended = Some((src.event_time, until));
                    dirty.insert(Key::Licences(holder.uscc.clone()));
                }
            }
            (Condition::UnlicensedCarrier, Some(P::LicenceRevoked(r))) => {
                if r.kind != v1::LicenceKind::RoadTransport as i32 {
                    return;
                }
                let Some(holder) = &r.holder else { return };
                if let Some(l) = self
                    .licences
                    .get_mut(&holder.uscc)
                    .and_then(|ls| ls.iter_mut().find(|l| l.number == r.licence_number))
                    && l.revoked_at.is_none()
                {
                    l.revoked_at = Some(src.event_time);
                    dirty.insert(Key::Licences(holder.uscc.clone()));
                }
            }
            _ => {}
        }
    }
}

/// The message a rule reads.
pub struct Source<'a> {
    pub publisher: &'a str,
    pub event_id: &'a str,
    /// When the bus stored it.
    pub time: DateTime<Utc>,
    /// The event's own time (admitted as not in the future by the gateway's clock): the instant a
    /// warning is raised or closed at, so the same stream always derives the same bytes.
    pub event_time: DateTime<Utc>,
}

fn envelope(id: String, at: DateTime<Utc>, payload: v1::event::Payload) -> v1::Event {
    hazchem_proto::build_event(
        id,
        format!("/services/{SERVICE_NAME}"),
        None,
        ts(at),
        payload,
    )
}

fn raise(
    rule: &Rule,
    cx: &Context<'_>,
    id: &str,
    src: &Source<'_>,
    enterprise: Option<&v1::EnterpriseRef>,
    description: String,
) -> Outbound {
    let payload = v1::event::Payload::WarningRaised(v1::WarningRaised {
        warning_id: id.to_owned(),
        level: rule.level.to_proto() as i32,
        rule_id: rule.id.clone(),
        title: rule.title.chars().take(200).collect(),
        description: description.chars().take(4000).collect(),
        addressed_to: rule
            .addressed_to
            .iter()
            .map(|d| v1::Department::from(*d) as i32)
            .collect(),
        enterprise: enterprise.map(|e| v1::EnterpriseRef {
            uscc: e.uscc.clone(),
            name: e.name.clone(),
        }),
        related_event_ids: vec![src.event_id.to_owned()],
        raised_at: Some(ts(src.event_time)),
        acknowledge_by: Some(ts(src.event_time + cx.rules.deadline(rule.level))),
    });
    let mut event = envelope(id.to_owned(), src.event_time, payload);
    event.legal_basis = Some(rule.legal_basis.to_proto());
    event.causation_id = src.event_id.to_owned();
    event.correlation_id = id.to_owned();
    if let Some(e) = enterprise {
        event.subject = e.uscc.clone();
    }
    Outbound::Raise(Box::new(event))
}

fn close(warning_id: &str, src: &Source<'_>, reason: String) -> Outbound {
    Outbound::Close(Box::new(closed_event(
        warning_id,
        src.event_time,
        None,
        reason,
        Some(src.event_id),
    )))
}

/// The `warning_closed` event of a warning (its id is [`close_id`]).
pub fn closed_event(
    warning_id: &str,
    at: DateTime<Utc>,
    by: Option<Department>,
    reason: String,
    cleared_by: Option<&str>,
) -> v1::Event {
    let payload = v1::event::Payload::WarningClosed(v1::WarningClosed {
        warning_id: warning_id.to_owned(),
        reason: reason.chars().take(1000).collect(),
        closed_at: Some(ts(at)),
        closed_by: by.map_or(0, |d| v1::Department::from(d) as i32),
        cleared_by_event_id: cleared_by.unwrap_or_default().to_owned(),
    });
    let mut event = envelope(close_id(warning_id), at, payload);
    event.correlation_id = warning_id.to_owned();
    if let Some(c) = cleared_by {
        event.causation_id = c.to_owned();
    }
    event
}

/// A department's `warning_acknowledged`, published by the service (its id is [`ack_id`]).
pub fn acknowledged_event(
    warning_id: &str,
    at: DateTime<Utc>,
    by: Department,
    note: String,
) -> v1::Event {
    let payload = v1::event::Payload::WarningAcknowledged(v1::WarningAcknowledged {
        warning_id: warning_id.to_owned(),
        note,
        acknowledged_at: Some(ts(at)),
        acknowledged_by: v1::Department::from(by) as i32,
    });
    let mut event = envelope(ack_id(warning_id, by), at, payload);
    event.correlation_id = warning_id.to_owned();
    event
}

/// The escalation of `warning` at `at`.
pub fn escalated_event(warning: &Warning, rules: &RuleSet, at: DateTime<Utc>) -> v1::Event {
    let to = warning.level.up();
    let mut add: Vec<Department> = rules
        .rule(&warning.rule_id)
        .map(|r| r.escalate_to.clone())
        .unwrap_or_default();
    add.extend(rules.escalation.command_centre.iter().copied());
    let mut addressed_to = Vec::new();
    for d in add {
        if !warning.addressed.contains(&d) && !addressed_to.contains(&d) {
            addressed_to.push(d);
        }
    }
    let n = warning.escalations + 1;
    let payload = v1::event::Payload::WarningEscalated(v1::WarningEscalated {
        warning_id: warning.id.clone(),
        from_level: warning.level.to_proto() as i32,
        to_level: to.to_proto() as i32,
        reason: format!(
            "not acknowledged by {} (awaiting {}); escalation {n}",
            warning
                .acknowledge_by
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            warning
                .awaiting()
                .iter()
                .map(|d| d.code())
                .collect::<Vec<_>>()
                .join(","),
        ),
        addressed_to: addressed_to
            .iter()
            .map(|d| v1::Department::from(*d) as i32)
            .collect(),
        escalated_at: Some(ts(at)),
        acknowledge_by: Some(ts(at + rules.deadline(to))),
    });
    let mut event = envelope(escalation_id(&warning.id, n), at, payload);
    event.correlation_id = warning.id.clone();
    event
}
