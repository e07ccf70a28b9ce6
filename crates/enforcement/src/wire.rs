//! Conversions between the contract's generated types and the domain: task events (both ways, for the
//! record), draws (both ways, for the record and for `hazchem enforcement redraw`), tasks as `JointTask`,
//! and the parts of requests. With `grpc.rs`, the only place generated types appear.

use chrono::{DateTime, Utc};
use hazchem_domain::{Department, Uscc};
use hazchem_proto::time::timestamp;
use hazchem_proto::{department_from_i32, v1};

use crate::draw::{Candidate, DrawRecord, Inspector, Pool};
use crate::task::{
    Change, Enterprise, Escalation, EscalationReason, Finding, FindingSeverity, LegalBasis,
    OpenTask, Penalty, Reason, TargetFindings, Task, TaskEvent, TaskState, Violation,
};

/// The service name the enforcement service publishes as (`hazchem://service/enforcement`).
pub const SERVICE_NAME: &str = "enforcement";
/// The CloudEvents `source` of task events.
pub const SOURCE: &str = "/services/enforcement";

/// Collects violations while converting, each at its field path.
#[derive(Debug, Default)]
pub(crate) struct Violations(pub Vec<Violation>);

impl Violations {
    pub(crate) fn push(
        &mut self,
        field: impl Into<String>,
        rule: &str,
        description: impl Into<String>,
    ) {
        self.0.push(Violation {
            field: field.into(),
            rule: rule.to_owned(),
            description: description.into(),
        });
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, Vec<Violation>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// An instant from a protobuf timestamp.
pub(crate) fn instant(
    t: Option<&prost_types::Timestamp>,
    field: &str,
    v: &mut Violations,
) -> Option<DateTime<Utc>> {
    match t {
        None => {
            v.push(field, "required", "required: must be set");
            None
        }
        Some(t) => {
            let at = hazchem_proto::time::datetime(t);
            if at.is_none() {
                v.push(field, "timestamp.range", "not a valid instant");
            }
            at
        }
    }
}

fn optional_instant(
    t: Option<&prost_types::Timestamp>,
    field: &str,
    v: &mut Violations,
) -> Option<DateTime<Utc>> {
    t.and_then(|t| instant(Some(t), field, v))
}

pub(crate) fn department(value: i32, field: &str, v: &mut Violations) -> Option<Department> {
    match department_from_i32(value) {
        Ok(d) => Some(d),
        Err(e) => {
            v.push(field, "department.unknown", e.to_string());
            None
        }
    }
}

pub(crate) fn uscc(value: &str, field: &str, v: &mut Violations) -> Option<Uscc> {
    match Uscc::parse(value) {
        Ok(u) => Some(u),
        Err(e) => {
            v.push(
                field,
                &format!("{}.{}", e.kind.as_str(), e.rule.as_str()),
                e.to_string(),
            );
            None
        }
    }
}

pub fn state_to_proto(state: TaskState) -> v1::TaskState {
    match state {
        TaskState::Planned => v1::TaskState::Planned,
        TaskState::Drawn => v1::TaskState::Drawn,
        TaskState::Notified => v1::TaskState::Notified,
        TaskState::OnSite => v1::TaskState::OnSite,
        TaskState::FindingsRecorded => v1::TaskState::FindingsRecorded,
        TaskState::RectificationOrdered => v1::TaskState::RectificationOrdered,
        TaskState::Rechecked => v1::TaskState::Rechecked,
        TaskState::PenaltyDecided => v1::TaskState::PenaltyDecided,
        TaskState::CaseTransferred => v1::TaskState::CaseTransferred,
        TaskState::TransferAccepted => v1::TaskState::TransferAccepted,
        TaskState::TransferRejected => v1::TaskState::TransferRejected,
        TaskState::Closed => v1::TaskState::Closed,
    }
}

/// The domain state of a wire value; `None` for unspecified or unknown.
pub fn state_from_proto(value: i32) -> Option<TaskState> {
    let wire = v1::TaskState::try_from(value).ok()?;
    TaskState::ALL
        .into_iter()
        .find(|s| state_to_proto(*s) == wire)
}

/// The contract's name of a state, e.g. `TASK_STATE_ON_SITE`.
pub fn state_wire_name(state: TaskState) -> &'static str {
    state_to_proto(state).as_str_name()
}

fn reason_to_proto(reason: EscalationReason) -> v1::EscalationReason {
    match reason {
        EscalationReason::Overdue => v1::EscalationReason::Overdue,
        EscalationReason::TransferLate => v1::EscalationReason::TransferLate,
        EscalationReason::TransferUnanswered => v1::EscalationReason::TransferUnanswered,
    }
}

fn departments_to_proto(departments: &[Department]) -> Vec<i32> {
    departments
        .iter()
        .map(|d| v1::Department::from(*d) as i32)
        .collect()
}

pub(crate) fn legal_basis_to_proto(b: &LegalBasis) -> v1::LegalBasis {
    v1::LegalBasis {
        instrument: b.instrument.clone(),
        article: b.article.clone(),
        version: b.version.clone(),
    }
}

pub(crate) fn legal_basis(
    b: Option<&v1::LegalBasis>,
    field: &str,
    v: &mut Violations,
) -> LegalBasis {
    match b {
        Some(b) => LegalBasis {
            instrument: b.instrument.clone(),
            article: b.article.clone(),
            version: b.version.clone(),
        },
        None => {
            v.push(field, "required", "required: must be set");
            LegalBasis::default()
        }
    }
}

pub(crate) fn reason_to_proto_task(r: &Reason) -> v1::TaskReason {
    use v1::task_reason::Reason as R;
    v1::TaskReason {
        reason: Some(match r {
            Reason::Text(t) => R::Text(t.clone()),
            Reason::Warning(w) => R::WarningId(w.clone()),
            Reason::Event(e) => R::EventId(e.clone()),
        }),
    }
}

pub(crate) fn reason(r: Option<&v1::TaskReason>, field: &str, v: &mut Violations) -> Reason {
    use v1::task_reason::Reason as R;
    match r.and_then(|r| r.reason.as_ref()) {
        Some(R::Text(t)) => Reason::Text(t.clone()),
        Some(R::WarningId(w)) => Reason::Warning(w.clone()),
        Some(R::EventId(e)) => Reason::Event(e.clone()),
        None => {
            v.push(
                field,
                "required",
                "required: a text, a warning id or an event id",
            );
            Reason::Text(String::new())
        }
    }
}

fn enterprise_to_proto(e: &Enterprise) -> v1::EnterpriseRef {
    v1::EnterpriseRef {
        uscc: e.uscc.to_string(),
        name: e.name.clone(),
    }
}

pub(crate) fn enterprises(
    items: &[v1::EnterpriseRef],
    field: &str,
    v: &mut Violations,
) -> Vec<Enterprise> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            uscc(&e.uscc, &format!("{field}[{i}].uscc"), v).map(|u| Enterprise {
                uscc: u,
                name: e.name.clone(),
            })
        })
        .collect()
}

fn severity_to_proto(s: FindingSeverity) -> v1::FindingSeverity {
    match s {
        FindingSeverity::Minor => v1::FindingSeverity::Minor,
        FindingSeverity::Major => v1::FindingSeverity::Major,
        FindingSeverity::MajorHazard => v1::FindingSeverity::MajorHazard,
    }
}

fn findings_to_proto(targets: &[TargetFindings]) -> Vec<v1::TargetFindings> {
    targets
        .iter()
        .map(|t| v1::TargetFindings {
            uscc: t.uscc.to_string(),
            findings: t
                .findings
                .iter()
                .map(|f| v1::Finding {
                    code: f.code.clone(),
                    description: f.description.clone(),
                    severity: severity_to_proto(f.severity) as i32,
                })
                .collect(),
        })
        .collect()
}

pub(crate) fn findings(
    items: &[v1::TargetFindings],
    field: &str,
    v: &mut Violations,
) -> Vec<TargetFindings> {
    let mut out = Vec::new();
    for (i, t) in items.iter().enumerate() {
        let Some(u) = uscc(&t.uscc, &format!("{field}[{i}].uscc"), v) else {
            continue;
        };
        let mut findings = Vec::new();
        for (j, f) in t.findings.iter().enumerate() {
            let severity = match v1::FindingSeverity::try_from(f.severity) {
                Ok(v1::FindingSeverity::Minor) => FindingSeverity::Minor,
                Ok(v1::FindingSeverity::Major) => FindingSeverity::Major,
                Ok(v1::FindingSeverity::MajorHazard) => FindingSeverity::MajorHazard,
                _ => {
                    v.push(
                        format!("{field}[{i}].findings[{j}].severity"),
                        "required",
                        "required: MINOR, MAJOR or MAJOR_HAZARD",
                    );
                    continue;
                }
            };
            findings.push(Finding {
                code: f.code.clone(),
                description: f.description.clone(),
                severity,
            });
        }
        out.push(TargetFindings { uscc: u, findings });
    }
    out
}

pub(crate) fn penalty_to_proto(p: &Penalty, task_id: &str) -> v1::PenaltyDecided {
    v1::PenaltyDecided {
        decision_number: p.decision_number.clone(),
        enterprise: Some(enterprise_to_proto(&p.enterprise)),
        reason: p.reason.clone(),
        fine_yuan: p.fine_yuan,
        task_id: task_id.to_owned(),
        decided_at: Some(timestamp(p.decided_at)),
    }
}

/// A penalty; its `task_id`, when given, must be `task_id`.
pub(crate) fn penalty(
    p: Option<&v1::PenaltyDecided>,
    task_id: &str,
    field: &str,
    v: &mut Violations,
) -> Option<Penalty> {
    let Some(p) = p else {
        v.push(field, "required", "required: must be set");
        return None;
    };
    if !p.task_id.is_empty() && p.task_id != task_id {
        v.push(
            format!("{field}.task_id"),
            "task_id.mismatch",
            format!(
                "the penalty names task {:?}, the request task {task_id:?}",
                p.task_id
            ),
        );
    }
    let enterprise = match &p.enterprise {
        Some(e) => uscc(&e.uscc, &format!("{field}.enterprise.uscc"), v).map(|u| Enterprise {
            uscc: u,
            name: e.name.clone(),
        }),
        None => {
            v.push(
                format!("{field}.enterprise"),
                "required",
                "required: must be set",
            );
            None
        }
    };
    let decided_at = instant(p.decided_at.as_ref(), &format!("{field}.decided_at"), v);
    Some(Penalty {
        decision_number: p.decision_number.clone(),
        enterprise: enterprise?,
        reason: p.reason.clone(),
        fine_yuan: p.fine_yuan,
        decided_at: decided_at?,
    })
}

/// A recorded draw as `TaskDrawn` (its task, command and actor left for the caller).
pub fn draw_to_proto(record: &DrawRecord) -> v1::TaskDrawn {
    let person = |i: &Inspector| v1::Person {
        name: i.name.clone(),
        certificate_number: i.certificate_number.clone(),
    };
    v1::TaskDrawn {
        algorithm: record.algorithm.clone(),
        seed: record.seed.clone(),
        candidates: record
            .candidates
            .iter()
            .map(|c| v1::DrawCandidate {
                uscc: c.uscc.to_string(),
                weight: c.weight,
                factors: c.factors.clone(),
            })
            .collect(),
        target_count: record.target_count,
        drawn_targets: record
            .drawn_targets
            .iter()
            .map(ToString::to_string)
            .collect(),
        inspectors: record
            .pools
            .iter()
            .map(|p| v1::InspectorPool {
                department: v1::Department::from(p.department) as i32,
                candidates: p.candidates.iter().map(person).collect(),
                count: p.count,
                drawn: p.drawn.iter().map(person).collect(),
            })
            .collect(),
        ..Default::default()
    }
}

/// A draw as recorded in `TaskDrawn` (for re-running it).
pub fn draw_from_proto(drawn: &v1::TaskDrawn) -> Result<DrawRecord, Vec<Violation>> {
    let mut v = Violations::default();
    let person = |p: &v1::Person| Inspector {
        name: p.name.clone(),
        certificate_number: p.certificate_number.clone(),
    };
    let candidates = drawn
        .candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            uscc(&c.uscc, &format!("candidates[{i}].uscc"), &mut v).map(|u| Candidate {
                uscc: u,
                weight: c.weight,
                factors: c.factors.clone(),
            })
        })
        .collect();
    let drawn_targets = drawn
        .drawn_targets
        .iter()
        .enumerate()
        .filter_map(|(i, u)| uscc(u, &format!("drawn_targets[{i}]"), &mut v))
        .collect();
    let pools = drawn
        .inspectors
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            department(p.department, &format!("inspectors[{i}].department"), &mut v).map(|d| Pool {
                department: d,
                candidates: p.candidates.iter().map(person).collect(),
                count: p.count,
                drawn: p.drawn.iter().map(person).collect(),
            })
        })
        .collect();
    v.finish(DrawRecord {
        algorithm: drawn.algorithm.clone(),
        seed: drawn.seed.clone(),
        candidates,
        target_count: drawn.target_count,
        drawn_targets,
        pools,
    })
}

/// The envelope of a task event: id, source, time, legal basis (the task's), correlation (the task).
pub fn envelope(event: &TaskEvent, event_id: &str, basis: &LegalBasis) -> v1::Event {
    let mut envelope =
        hazchem_proto::build_event(event_id, SOURCE, None, timestamp(event.at), payload(event));
    envelope.subject = event.task_id.clone();
    envelope.correlation_id = event.task_id.clone();
    if let Change::Opened(OpenTask {
        reason: Reason::Event(cause),
        ..
    }) = &event.change
    {
        envelope.causation_id = cause.clone();
    }
    envelope.legal_basis = Some(legal_basis_to_proto(basis));
    envelope
}

/// The payload of a task event.
pub fn payload(event: &TaskEvent) -> v1::event::Payload {
    use v1::event::Payload as P;
    let task_id = event.task_id.clone();
    let command_id = event.command_id.clone().unwrap_or_default();
    let actor = event.actor.map_or(0, |d| v1::Department::from(d) as i32);
    match &event.change {
        Change::Opened(open) => P::TaskOpened(v1::TaskOpened {
            task_id,
            command_id,
            actor,
            title: open.title.clone(),
            participants: departments_to_proto(&open.participants),
            targets: open.targets.iter().map(enterprise_to_proto).collect(),
            reason: Some(reason_to_proto_task(&open.reason)),
            deadline: Some(timestamp(open.deadline)),
        }),
        Change::Drawn(record) => P::TaskDrawn(v1::TaskDrawn {
            task_id,
            command_id,
            actor,
            ..draw_to_proto(record)
        }),
        Change::Advanced { to, note } => P::TaskAdvanced(v1::TaskAdvanced {
            task_id,
            command_id,
            actor,
            to_state: state_to_proto(*to) as i32,
            note: note.clone(),
        }),
        Change::FindingsRecorded {
            targets,
            crime_suspected_at,
        } => P::TaskFindingsRecorded(v1::TaskFindingsRecorded {
            task_id,
            command_id,
            actor,
            targets: findings_to_proto(targets),
            crime_suspected_at: crime_suspected_at.map(timestamp),
        }),
        Change::RectificationOrdered {
            requirements,
            deadline,
        } => P::TaskRectificationOrdered(v1::TaskRectificationOrdered {
            task_id,
            command_id,
            actor,
            requirements: requirements.clone(),
            deadline: Some(timestamp(*deadline)),
        }),
        Change::Rechecked { passed, note } => P::TaskRechecked(v1::TaskRechecked {
            task_id,
            command_id,
            actor,
            passed: *passed,
            note: note.clone(),
        }),
        Change::PenaltyDecided(p) => P::TaskPenaltyDecided(v1::TaskPenaltyDecided {
            penalty: Some(penalty_to_proto(p, &task_id)),
            task_id,
            command_id,
            actor,
        }),
        Change::CaseTransferred {
            case_number,
            decided_at,
            summary,
        } => P::TaskCaseTransferred(v1::TaskCaseTransferred {
            task_id,
            command_id,
            actor,
            case_number: case_number.clone(),
            decided_at: Some(timestamp(*decided_at)),
            summary: summary.clone(),
        }),
        Change::TransferAnswered { accepted, reason } => {
            P::TaskTransferAnswered(v1::TaskTransferAnswered {
                task_id,
                command_id,
                actor,
                accepted: *accepted,
                reason: reason.clone(),
            })
        }
        Change::Closed { summary } => P::TaskClosed(v1::TaskClosed {
            task_id,
            command_id,
            actor,
            summary: summary.clone(),
        }),
        Change::Escalated(e) => P::TaskEscalated(v1::TaskEscalated {
            task_id,
            reason: reason_to_proto(e.reason) as i32,
            detail: e.detail.clone(),
            addressed_to: departments_to_proto(&e.addressed_to),
        }),
    }
}

/// The task event an envelope carries; `Ok(None)` if it carries no task event.
pub fn task_event(event: &v1::Event) -> Result<Option<TaskEvent>, Vec<Violation>> {
    use v1::event::Payload as P;
    let mut v = Violations::default();
    let at = instant(event.time.as_ref(), "time", &mut v);
    let common = |task_id: &str, command_id: &str, actor: i32, v: &mut Violations| {
        (
            task_id.to_owned(),
            Some(command_id.to_owned()),
            department(actor, "actor", v),
        )
    };
    let (task_id, command_id, actor, change) = match &event.payload {
        Some(P::TaskOpened(o)) => {
            let (t, c, a) = common(&o.task_id, &o.command_id, o.actor, &mut v);
            let participants = o
                .participants
                .iter()
                .enumerate()
                .filter_map(|(i, d)| department(*d, &format!("participants[{i}]"), &mut v))
                .collect();
            let open = OpenTask {
                title: o.title.clone(),
                participants,
                targets: enterprises(&o.targets, "targets", &mut v),
                legal_basis: legal_basis(event.legal_basis.as_ref(), "legal_basis", &mut v),
                reason: reason(o.reason.as_ref(), "reason", &mut v),
                deadline: instant(o.deadline.as_ref(), "deadline", &mut v).unwrap_or_default(),
            };
            (t, c, a, Change::Opened(open))
        }
        Some(P::TaskDrawn(d)) => {
            let (t, c, a) = common(&d.task_id, &d.command_id, d.actor, &mut v);
            let record = draw_from_proto(d).unwrap_or_else(|e| {
                v.0.extend(e);
                DrawRecord {
                    algorithm: String::new(),
                    seed: Vec::new(),
                    candidates: Vec::new(),
                    target_count: 0,
                    drawn_targets: Vec::new(),
                    pools: Vec::new(),
                }
            });
            (t, c, a, Change::Drawn(record))
        }
        Some(P::TaskAdvanced(x)) => {
            let (t, c, a) = common(&x.task_id, &x.command_id, x.actor, &mut v);
            let to = state_from_proto(x.to_state).unwrap_or_else(|| {
                v.push("to_state", "enum.undefined", "not a task state");
                TaskState::Planned
            });
            (
                t,
                c,
                a,
                Change::Advanced {
                    to,
                    note: x.note.clone(),
                },
            )
        }
        Some(P::TaskFindingsRecorded(x)) => {
            let (t, c, a) = common(&x.task_id, &x.command_id, x.actor, &mut v);
            let change = Change::FindingsRecorded {
                targets: findings(&x.targets, "targets", &mut v),
                crime_suspected_at: optional_instant(
                    x.crime_suspected_at.as_ref(),
                    "crime_suspected_at",
                    &mut v,
                ),
            };
            (t, c, a, change)
        }
        Some(P::TaskRectificationOrdered(x)) => {
            let (t, c, a) = common(&x.task_id, &x.command_id, x.actor, &mut v);
            let change = Change::RectificationOrdered {
                requirements: x.requirements.clone(),
                deadline: instant(x.deadline.as_ref(), "deadline", &mut v).unwrap_or_default(),
            };
            (t, c, a, change)
        }
        Some(P::TaskRechecked(x)) => {
            let (t, c, a) = common(&x.task_id, &x.command_id, x.actor, &mut v);
            (
                t,
                c,
                a,
                Change::Rechecked {
                    passed: x.passed,
                    note: x.note.clone(),
                },
            )
        }
        Some(P::TaskPenaltyDecided(x)) => {
            let (t, c, a) = common(&x.task_id, &x.command_id, x.actor, &mut v);
            let p = penalty(x.penalty.as_ref(), &x.task_id, "penalty", &mut v);
            match p {
                Some(p) => (t, c, a, Change::PenaltyDecided(p)),
                None => return Err(v.0),
            }
        }
        Some(P::TaskCaseTransferred(x)) => {
            let (t, c, a) = common(&x.task_id, &x.command_id, x.actor, &mut v);
            let change = Change::CaseTransferred {
                case_number: x.case_number.clone(),
                decided_at: instant(x.decided_at.as_ref(), "decided_at", &mut v)
                    .unwrap_or_default(),
                summary: x.summary.clone(),
            };
            (t, c, a, change)
        }
        Some(P::TaskTransferAnswered(x)) => {
            let (t, c, a) = common(&x.task_id, &x.command_id, x.actor, &mut v);
            (
                t,
                c,
                a,
                Change::TransferAnswered {
                    accepted: x.accepted,
                    reason: x.reason.clone(),
                },
            )
        }
        Some(P::TaskClosed(x)) => {
            let (t, c, a) = common(&x.task_id, &x.command_id, x.actor, &mut v);
            (
                t,
                c,
                a,
                Change::Closed {
                    summary: x.summary.clone(),
                },
            )
        }
        Some(P::TaskEscalated(x)) => {
            let reason = match v1::EscalationReason::try_from(x.reason) {
                Ok(v1::EscalationReason::Overdue) => EscalationReason::Overdue,
                Ok(v1::EscalationReason::TransferLate) => EscalationReason::TransferLate,
                Ok(v1::EscalationReason::TransferUnanswered) => {
                    EscalationReason::TransferUnanswered
                }
                _ => {
                    v.push("reason", "enum.undefined", "not an escalation reason");
                    EscalationReason::Overdue
                }
            };
            let addressed_to = x
                .addressed_to
                .iter()
                .enumerate()
                .filter_map(|(i, d)| department(*d, &format!("addressed_to[{i}]"), &mut v))
                .collect();
            let change = Change::Escalated(Escalation {
                reason,
                detail: x.detail.clone(),
                addressed_to,
            });
            (x.task_id.clone(), None, None, change)
        }
        _ => return Ok(None),
    };
    let event = TaskEvent {
        task_id,
        command_id,
        actor,
        at: at.unwrap_or_default(),
        change,
    };
    v.finish(Some(event))
}

/// A task as the contract shows it; `history` includes its history (GetTask and commands do, lists do not).
pub fn joint_task(task: &Task, now: DateTime<Utc>, history: bool) -> v1::JointTask {
    v1::JointTask {
        task_id: task.id.clone(),
        title: task.title.clone(),
        state: state_to_proto(task.state) as i32,
        lead: v1::Department::from(task.lead) as i32,
        participants: departments_to_proto(&task.participants),
        targets: task.targets.iter().map(enterprise_to_proto).collect(),
        legal_basis: Some(legal_basis_to_proto(&task.legal_basis)),
        reason: Some(reason_to_proto_task(&task.reason)),
        deadline: Some(timestamp(task.deadline)),
        overdue: task.is_overdue(now),
        draw: task.draw.as_ref().map(|record| {
            let by = task
                .history
                .iter()
                .find(|h| h.state == TaskState::Drawn)
                .and_then(|h| h.actor)
                .unwrap_or(task.lead);
            v1::TaskDrawn {
                task_id: task.id.clone(),
                actor: v1::Department::from(by) as i32,
                ..draw_to_proto(record)
            }
        }),
        findings: findings_to_proto(&task.findings),
        crime_suspected_at: task.crime_suspected_at.map(timestamp),
        rectification_deadline: task.rectification.as_ref().map(|r| timestamp(r.deadline)),
        penalties: task
            .penalties
            .iter()
            .map(|p| penalty_to_proto(&p.penalty, &task.id))
            .collect(),
        case_number: task
            .transfer
            .as_ref()
            .map(|t| t.case_number.clone())
            .unwrap_or_default(),
        escalations: task
            .escalations
            .iter()
            .map(|e| reason_to_proto(e.escalation.reason) as i32)
            .collect(),
        credit_listing_ids: task.credit_listings.clone(),
        opened_at: Some(timestamp(task.opened_at)),
        closed_at: task.closed_at.map(timestamp),
        history: if history {
            task.history
                .iter()
                .map(|h| v1::TaskHistoryEntry {
                    event_id: h.event_id.clone(),
                    sequence: h.sequence,
                    state: state_to_proto(h.state) as i32,
                    actor: h.actor.map_or(0, |d| v1::Department::from(d) as i32),
                    at: Some(timestamp(h.at)),
                    summary: h.summary.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}
