//! What the service derives from the stream: the tasks (the fold of the task events the service published),
//! the command ids used, and the risk facts the draw weighs (credit listings, major hazard sources, alarms,
//! incidents, from whichever department published them). [`Projection::apply_message`] is deterministic, so
//! replaying the stream from the start always gives the same projection.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use hazchem_bus::{EventSubject, Message};
use hazchem_domain::Department;
use hazchem_proto::{department_from_i32, v1};
use serde::{Deserialize, Serialize};

use crate::registers::RiskFacts;
use crate::task::{self, Change, Command, Task};
use crate::wire::{self, SERVICE_NAME};

/// The event types besides task events that the projection reads.
pub const RISK_EVENT_TYPES: [&str; 7] = [
    "credit_listing_decided",
    "credit_repair_decided",
    "credit_repair_revoked",
    "credit_listing_expired",
    "major_hazard_source_registered",
    "sensor_alarm_raised",
    "incident_reported",
];

/// A command that took effect: what a retry under the same id must repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub department: Department,
    pub command_id: String,
    pub task_id: String,
    pub event_id: String,
    pub command: Command,
}

/// A credit listing met on the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub listing_id: String,
    pub uscc: String,
    pub active: bool,
}

/// The task and department of a penalty decided within a task (to link credit listings to tasks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PenaltyRef {
    pub decision_number: String,
    pub task_id: String,
    pub department: Department,
}

/// The risk facts about one enterprise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseRisk {
    pub uscc: String,
    pub facts: RiskFacts,
}

/// A key of the store that a message changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Task(String),
    Command(Department, String),
    Risk(String),
    Listing(String),
    Penalty(String),
}

/// Everything derived from the stream up to `applied`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    pub tasks: BTreeMap<String, Task>,
    pub commands: BTreeMap<(Department, String), CommandRecord>,
    pub risk: BTreeMap<String, RiskFacts>,
    pub listings: BTreeMap<String, Listing>,
    pub penalties: BTreeMap<String, PenaltyRef>,
    /// The last stream sequence applied (0: none).
    pub applied: u64,
    /// The last task event applied: its sequence and id (to check the store belongs to the stream).
    pub last_event: Option<(u64, String)>,
}

fn decode(message: &Message) -> Option<(v1::Record, v1::Event)> {
    hazchem_proto::open_record(message.payload.as_ref()).ok()
}

fn instant(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(hazchem_proto::time::datetime)
}

impl Projection {
    /// Applies one stream message (anything not relevant is skipped); records the keys it changed in
    /// `dirty`. Advances `applied`.
    pub fn apply_message(&mut self, message: &Message, dirty: &mut BTreeSet<Key>) {
        self.applied = self.applied.max(message.sequence);
        let Ok(subject) = EventSubject::parse(&message.subject) else {
            return;
        };
        if subject.type_token.starts_with("task_") {
            if subject.publisher == SERVICE_NAME {
                self.apply_task_message(message, dirty);
            } else {
                tracing::warn!(
                    sequence = message.sequence,
                    publisher = subject.publisher,
                    "a task event not published by the enforcement service; ignored"
                );
            }
        } else if RISK_EVENT_TYPES.contains(&subject.type_token) {
            self.apply_risk_message(message, dirty);
        }
    }

    fn apply_task_message(&mut self, message: &Message, dirty: &mut BTreeSet<Key>) {
        let sequence = message.sequence;
        let Some((record, event)) = decode(message) else {
            tracing::error!(sequence, "a task event does not decode; ignored");
            return;
        };
        let by_service = matches!(
            record.publisher.and_then(|p| p.principal),
            Some(v1::publisher::Principal::Service(name)) if name == SERVICE_NAME
        );
        if !by_service {
            tracing::warn!(
                sequence,
                "a task event whose record is not by the enforcement service; ignored"
            );
            return;
        }
        let task_event = match wire::task_event(&event) {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(violations) => {
                tracing::error!(sequence, event_id = %event.id, ?violations, "a task event is malformed; ignored");
                return;
            }
        };
        let current = self.tasks.get(&task_event.task_id).cloned();
        let task = match task::apply(current, &task_event, &event.id, sequence) {
            Ok(task) => task,
            Err(refusal) => {
                tracing::warn!(
                    sequence,
                    event_id = %event.id,
                    error = %refusal,
                    "a task event does not fit the task's state (two services raced?); the first on the record wins, this one is ignored"
                );
                return;
            }
        };
        if let (Some(command_id), Some(department), Some(command)) = (
            &task_event.command_id,
            task_event.actor,
            task_event.change.command(),
        ) {
            self.commands.insert(
                (department, command_id.clone()),
                CommandRecord {
                    department,
                    command_id: command_id.clone(),
                    task_id: task.id.clone(),
                    event_id: event.id.clone(),
                    command,
                },
            );
            dirty.insert(Key::Command(department, command_id.clone()));
        }
        if let (Change::PenaltyDecided(p), Some(department)) =
            (&task_event.change, task_event.actor)
        {
            self.penalties.insert(
                p.decision_number.clone(),
                PenaltyRef {
                    decision_number: p.decision_number.clone(),
                    task_id: task.id.clone(),
                    department,
                },
            );
            dirty.insert(Key::Penalty(p.decision_number.clone()));
        }
        dirty.insert(Key::Task(task.id.clone()));
        self.tasks.insert(task.id.clone(), task);
        self.last_event = Some((sequence, event.id));
    }

    fn facts(&mut self, uscc: &str, dirty: &mut BTreeSet<Key>) -> &mut RiskFacts {
        dirty.insert(Key::Risk(uscc.to_owned()));
        self.risk.entry(uscc.to_owned()).or_default()
    }

    fn set_listing(&mut self, listing_id: &str, active: bool, dirty: &mut BTreeSet<Key>) {
        let Some(listing) = self.listings.get_mut(listing_id) else {
            return;
        };
        listing.active = active;
        let uscc = listing.uscc.clone();
        dirty.insert(Key::Listing(listing_id.to_owned()));
        let facts = self.facts(&uscc, dirty);
        if active {
            facts.active_listings.insert(listing_id.to_owned());
        } else {
            facts.active_listings.remove(listing_id);
        }
    }

    fn apply_risk_message(&mut self, message: &Message, dirty: &mut BTreeSet<Key>) {
        use v1::event::Payload as P;
        let Some((_, event)) = decode(message) else {
            return;
        };
        match &event.payload {
            Some(P::CreditListingDecided(l)) => {
                let Some(enterprise) = &l.enterprise else {
                    return;
                };
                self.listings.insert(
                    l.listing_id.clone(),
                    Listing {
                        listing_id: l.listing_id.clone(),
                        uscc: enterprise.uscc.clone(),
                        active: true,
                    },
                );
                dirty.insert(Key::Listing(l.listing_id.clone()));
                self.facts(&enterprise.uscc, dirty)
                    .active_listings
                    .insert(l.listing_id.clone());
                // A listing on a penalty decided within a task shows in the task's history.
                let department = department_from_i32(event.department).ok();
                if let Some(penalty) = self.penalties.get(&l.penalty_decision_number)
                    && department.is_none_or(|d| d == penalty.department)
                    && let Some(task) = self.tasks.get_mut(&penalty.task_id)
                {
                    task::note_credit_listing(
                        task,
                        &l.listing_id,
                        department,
                        &l.penalty_decision_number,
                        &event.id,
                        message.sequence,
                        instant(l.listed_at.as_ref()).unwrap_or(message.time),
                    );
                    dirty.insert(Key::Task(penalty.task_id.clone()));
                }
            }
            Some(P::CreditRepairDecided(r)) => self.set_listing(&r.listing_id, false, dirty),
            Some(P::CreditRepairRevoked(r)) => self.set_listing(&r.listing_id, true, dirty),
            Some(P::CreditListingExpired(e)) => self.set_listing(&e.listing_id, false, dirty),
            Some(P::MajorHazardSourceRegistered(h)) => {
                let (Some(holder), Ok(grade)) = (&h.holder, u8::try_from(h.grade)) else {
                    return;
                };
                if (1..=4).contains(&grade) {
                    let facts = self.facts(&holder.uscc, dirty);
                    facts.major_hazard_grade =
                        Some(facts.major_hazard_grade.map_or(grade, |g| g.min(grade)));
                }
            }
            Some(P::SensorAlarmRaised(a)) => {
                if let (Some(e), Some(at)) = (&a.enterprise, instant(a.raised_at.as_ref())) {
                    self.note_alarm_or_incident(&e.uscc, at, dirty);
                }
            }
            Some(P::IncidentReported(i)) => {
                if let (Some(e), Some(at)) = (&i.enterprise, instant(i.occurred_at.as_ref())) {
                    self.note_alarm_or_incident(&e.uscc, at, dirty);
                }
            }
            _ => {}
        }
    }

    fn note_alarm_or_incident(&mut self, uscc: &str, at: DateTime<Utc>, dirty: &mut BTreeSet<Key>) {
        let facts = self.facts(uscc, dirty);
        facts.last_alarm_or_incident = Some(facts.last_alarm_or_incident.map_or(at, |t| t.max(at)));
    }
}
