//! Joint tasks in domain terms (no protobuf): states, commands, the transition table with the duty of each
//! transition, [`decide`] (command → event, or a refusal) and [`apply`] (event → new task state), and the
//! deadlines that escalate ([`due_escalations`]).
//!
//! [`decide`] and [`apply`] check the same table, so a task rebuilt from the record went through exactly the
//! transitions the service allowed.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use hazchem_domain::{Department, Uscc};
use serde::{Deserialize, Serialize};

use crate::draw::{self, Candidate, DrawError, DrawInput, DrawRecord, Inspector};

/// 两法衔接: a suspected crime must be transferred to public security within this time of the decision.
pub const TRANSFER_WITHIN: Duration = Duration::hours(24);

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Planned,
    Drawn,
    Notified,
    OnSite,
    FindingsRecorded,
    RectificationOrdered,
    Rechecked,
    PenaltyDecided,
    CaseTransferred,
    TransferAccepted,
    TransferRejected,
    Closed,
}

impl TaskState {
    pub const ALL: [TaskState; 12] = [
        TaskState::Planned,
        TaskState::Drawn,
        TaskState::Notified,
        TaskState::OnSite,
        TaskState::FindingsRecorded,
        TaskState::RectificationOrdered,
        TaskState::Rechecked,
        TaskState::PenaltyDecided,
        TaskState::CaseTransferred,
        TaskState::TransferAccepted,
        TaskState::TransferRejected,
        TaskState::Closed,
    ];

    /// The name used in messages, the contract's without its prefix: `ON_SITE`.
    pub const fn name(self) -> &'static str {
        match self {
            TaskState::Planned => "PLANNED",
            TaskState::Drawn => "DRAWN",
            TaskState::Notified => "NOTIFIED",
            TaskState::OnSite => "ON_SITE",
            TaskState::FindingsRecorded => "FINDINGS_RECORDED",
            TaskState::RectificationOrdered => "RECTIFICATION_ORDERED",
            TaskState::Rechecked => "RECHECKED",
            TaskState::PenaltyDecided => "PENALTY_DECIDED",
            TaskState::CaseTransferred => "CASE_TRANSFERRED",
            TaskState::TransferAccepted => "TRANSFER_ACCEPTED",
            TaskState::TransferRejected => "TRANSFER_REJECTED",
            TaskState::Closed => "CLOSED",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kinds of command, one per transition of the table (advancing is two: notify, go on site).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    Open,
    Draw,
    Notify,
    GoOnSite,
    RecordFindings,
    OrderRectification,
    RecordRecheck,
    DecidePenalty,
    TransferCase,
    AnswerTransfer,
    Close,
}

impl CommandKind {
    pub const ALL: [CommandKind; 11] = [
        CommandKind::Open,
        CommandKind::Draw,
        CommandKind::Notify,
        CommandKind::GoOnSite,
        CommandKind::RecordFindings,
        CommandKind::OrderRectification,
        CommandKind::RecordRecheck,
        CommandKind::DecidePenalty,
        CommandKind::TransferCase,
        CommandKind::AnswerTransfer,
        CommandKind::Close,
    ];

    /// The name used in messages (the gRPC method, in snake case).
    pub const fn name(self) -> &'static str {
        match self {
            CommandKind::Open => "open_task",
            CommandKind::Draw => "draw_task",
            CommandKind::Notify => "advance_task to NOTIFIED",
            CommandKind::GoOnSite => "advance_task to ON_SITE",
            CommandKind::RecordFindings => "record_findings",
            CommandKind::OrderRectification => "order_rectification",
            CommandKind::RecordRecheck => "record_recheck",
            CommandKind::DecidePenalty => "decide_penalty",
            CommandKind::TransferCase => "transfer_case",
            CommandKind::AnswerTransfer => "answer_transfer",
            CommandKind::Close => "close_task",
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whose duty a transition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Duty {
    /// Any department; it becomes the lead.
    AnyDepartment,
    /// The lead department.
    Lead,
    /// The lead or a participating department.
    LeadOrParticipants,
    /// The lead or a participating department, except public security (it does not transfer to itself).
    LeadOrParticipantsButPsb,
    /// Public security, whether or not it takes part in the task.
    PublicSecurity,
}

impl Duty {
    /// The departments this duty names for `task`.
    pub fn departments(self, task: &Task) -> Vec<Department> {
        match self {
            Duty::AnyDepartment => Department::ALL.to_vec(),
            Duty::Lead => vec![task.lead],
            Duty::LeadOrParticipants => task.departments(),
            Duty::LeadOrParticipantsButPsb => task
                .departments()
                .into_iter()
                .filter(|d| *d != Department::Psb)
                .collect(),
            Duty::PublicSecurity => vec![Department::Psb],
        }
    }

    pub const fn describe(self) -> &'static str {
        match self {
            Duty::AnyDepartment => "any department",
            Duty::Lead => "the lead",
            Duty::LeadOrParticipants => "the lead and the participating departments",
            Duty::LeadOrParticipantsButPsb => {
                "the lead and the participating departments other than public security"
            }
            Duty::PublicSecurity => "public security only",
        }
    }
}

/// One row of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub command: CommandKind,
    /// The states it may start from (none for `Open`: the task must not exist).
    pub from: &'static [TaskState],
    /// The states it may lead to.
    pub to: &'static [TaskState],
    pub duty: Duty,
}

use TaskState as S;

/// The transition table: every allowed change, from which states, and whose duty it is.
pub const TRANSITIONS: [Transition; 11] = [
    Transition {
        command: CommandKind::Open,
        from: &[],
        to: &[S::Planned],
        duty: Duty::AnyDepartment,
    },
    Transition {
        command: CommandKind::Draw,
        from: &[S::Planned],
        to: &[S::Drawn],
        duty: Duty::Lead,
    },
    Transition {
        command: CommandKind::Notify,
        from: &[S::Drawn],
        to: &[S::Notified],
        duty: Duty::Lead,
    },
    Transition {
        command: CommandKind::GoOnSite,
        from: &[S::Notified],
        to: &[S::OnSite],
        duty: Duty::LeadOrParticipants,
    },
    Transition {
        command: CommandKind::RecordFindings,
        from: &[S::OnSite],
        to: &[S::FindingsRecorded],
        duty: Duty::LeadOrParticipants,
    },
    Transition {
        command: CommandKind::OrderRectification,
        from: &[S::FindingsRecorded, S::Rechecked],
        to: &[S::RectificationOrdered],
        duty: Duty::Lead,
    },
    Transition {
        command: CommandKind::RecordRecheck,
        from: &[S::RectificationOrdered],
        to: &[S::Rechecked],
        duty: Duty::LeadOrParticipants,
    },
    Transition {
        command: CommandKind::DecidePenalty,
        from: &[S::FindingsRecorded, S::Rechecked, S::PenaltyDecided],
        to: &[S::PenaltyDecided],
        duty: Duty::LeadOrParticipants,
    },
    Transition {
        command: CommandKind::TransferCase,
        from: &[S::FindingsRecorded, S::Rechecked, S::PenaltyDecided],
        to: &[S::CaseTransferred],
        duty: Duty::LeadOrParticipantsButPsb,
    },
    Transition {
        command: CommandKind::AnswerTransfer,
        from: &[S::CaseTransferred],
        to: &[S::TransferAccepted, S::TransferRejected],
        duty: Duty::PublicSecurity,
    },
    Transition {
        command: CommandKind::Close,
        from: &[
            S::FindingsRecorded,
            S::Rechecked,
            S::PenaltyDecided,
            S::TransferAccepted,
            S::TransferRejected,
        ],
        to: &[S::Closed],
        duty: Duty::Lead,
    },
];

/// The row of a command kind.
pub fn transition(kind: CommandKind) -> &'static Transition {
    TRANSITIONS
        .iter()
        .find(|t| t.command == kind)
        .expect("every command kind has a row")
}

/// An enterprise, by USCC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enterprise {
    pub uscc: Uscc,
    #[serde(default)]
    pub name: String,
}

/// The legal instrument a task rests on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LegalBasis {
    pub instrument: String,
    #[serde(default)]
    pub article: String,
    #[serde(default)]
    pub version: String,
}

/// Why a task exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Text(String),
    /// A warning it answers.
    Warning(String),
    /// An earlier event it answers.
    Event(String),
}

/// What opening a task says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTask {
    pub title: String,
    /// Without the lead, without duplicates, in the contract's department order.
    pub participants: Vec<Department>,
    /// Named up front; a draw adds drawn targets.
    pub targets: Vec<Enterprise>,
    pub legal_basis: LegalBasis,
    pub reason: Reason,
    pub deadline: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingSeverity {
    Minor,
    Major,
    /// 重大事故隐患.
    MajorHazard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    #[serde(default)]
    pub code: String,
    pub description: String,
    pub severity: FindingSeverity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFindings {
    pub uscc: Uscc,
    pub findings: Vec<Finding>,
}

/// 行政处罚决定 within a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Penalty {
    pub decision_number: String,
    pub enterprise: Enterprise,
    pub reason: String,
    pub fine_yuan: f64,
    pub decided_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// The task's deadline passed before it closed.
    Overdue,
    /// A suspected crime was not transferred within 24 hours of the decision.
    TransferLate,
    /// Public security has not answered a transfer.
    TransferUnanswered,
}

impl EscalationReason {
    pub const fn name(self) -> &'static str {
        match self {
            EscalationReason::Overdue => "overdue",
            EscalationReason::TransferLate => "transfer_late",
            EscalationReason::TransferUnanswered => "transfer_unanswered",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub reason: EscalationReason,
    pub detail: String,
    pub addressed_to: Vec<Department>,
}

/// A command, as a department issues it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Open(OpenTask),
    Draw {
        target_count: u32,
        inspectors_per_department: u32,
    },
    /// To NOTIFIED or ON_SITE.
    Advance {
        to: TaskState,
        note: String,
    },
    RecordFindings {
        targets: Vec<TargetFindings>,
        crime_suspected_at: Option<DateTime<Utc>>,
    },
    OrderRectification {
        requirements: String,
        deadline: DateTime<Utc>,
    },
    RecordRecheck {
        passed: bool,
        note: String,
    },
    DecidePenalty(Penalty),
    TransferCase {
        case_number: String,
        decided_at: DateTime<Utc>,
        summary: String,
    },
    AnswerTransfer {
        accepted: bool,
        reason: String,
    },
    Close {
        summary: String,
    },
}

impl Command {
    /// Which row of the table the command is; advancing to anything but NOTIFIED or ON_SITE is invalid.
    pub fn kind(&self) -> Result<CommandKind, Refusal> {
        Ok(match self {
            Command::Open(_) => CommandKind::Open,
            Command::Draw { .. } => CommandKind::Draw,
            Command::Advance { to, .. } => match to {
                TaskState::Notified => CommandKind::Notify,
                TaskState::OnSite => CommandKind::GoOnSite,
                other => {
                    return Err(Refusal::invalid(
                        "to_state",
                        "to_state.advance",
                        format!(
                            "advance_task moves a task to NOTIFIED or ON_SITE, not {other}; the other states \
                             have their own commands"
                        ),
                    ));
                }
            },
            Command::RecordFindings { .. } => CommandKind::RecordFindings,
            Command::OrderRectification { .. } => CommandKind::OrderRectification,
            Command::RecordRecheck { .. } => CommandKind::RecordRecheck,
            Command::DecidePenalty(_) => CommandKind::DecidePenalty,
            Command::TransferCase { .. } => CommandKind::TransferCase,
            Command::AnswerTransfer { .. } => CommandKind::AnswerTransfer,
            Command::Close { .. } => CommandKind::Close,
        })
    }

    /// The canonical form: an opening's participants sorted, without duplicates and without the lead.
    pub fn normalised(mut self, actor: Department) -> Command {
        if let Command::Open(open) = &mut self {
            open.participants.retain(|d| *d != actor);
            open.participants.sort();
            open.participants.dedup();
        }
        self
    }
}

/// A command with who issued it, for which task, under which command id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub task_id: String,
    pub command_id: String,
    pub actor: Department,
    pub command: Command,
}

/// What happened to a task: the content of one task event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Opened(OpenTask),
    Drawn(DrawRecord),
    Advanced {
        to: TaskState,
        note: String,
    },
    FindingsRecorded {
        targets: Vec<TargetFindings>,
        crime_suspected_at: Option<DateTime<Utc>>,
    },
    RectificationOrdered {
        requirements: String,
        deadline: DateTime<Utc>,
    },
    Rechecked {
        passed: bool,
        note: String,
    },
    PenaltyDecided(Penalty),
    CaseTransferred {
        case_number: String,
        decided_at: DateTime<Utc>,
        summary: String,
    },
    TransferAnswered {
        accepted: bool,
        reason: String,
    },
    Closed {
        summary: String,
    },
    /// Raised by the service itself when a deadline passes.
    Escalated(Escalation),
}

impl Change {
    /// The command that made this change (none for an escalation): what a retry of it must repeat.
    pub fn command(&self) -> Option<Command> {
        Some(match self.clone() {
            Change::Opened(open) => Command::Open(open),
            Change::Drawn(record) => Command::Draw {
                target_count: record.target_count,
                inspectors_per_department: record.pools.first().map_or(0, |p| p.count),
            },
            Change::Advanced { to, note } => Command::Advance { to, note },
            Change::FindingsRecorded {
                targets,
                crime_suspected_at,
            } => Command::RecordFindings {
                targets,
                crime_suspected_at,
            },
            Change::RectificationOrdered {
                requirements,
                deadline,
            } => Command::OrderRectification {
                requirements,
                deadline,
            },
            Change::Rechecked { passed, note } => Command::RecordRecheck { passed, note },
            Change::PenaltyDecided(p) => Command::DecidePenalty(p),
            Change::CaseTransferred {
                case_number,
                decided_at,
                summary,
            } => Command::TransferCase {
                case_number,
                decided_at,
                summary,
            },
            Change::TransferAnswered { accepted, reason } => {
                Command::AnswerTransfer { accepted, reason }
            }
            Change::Closed { summary } => Command::Close { summary },
            Change::Escalated(_) => return None,
        })
    }
}

/// One task event in domain terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub task_id: String,
    /// None for escalations.
    pub command_id: Option<String>,
    /// The department that issued the command; none for escalations.
    pub actor: Option<Department>,
    /// When it happened (the event's time).
    pub at: DateTime<Utc>,
    pub change: Change,
}

/// One step of a task's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub event_id: String,
    pub sequence: u64,
    /// The state after the step.
    pub state: TaskState,
    pub actor: Option<Department>,
    pub at: DateTime<Utc>,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rectification {
    pub requirements: String,
    pub deadline: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recheck {
    pub passed: bool,
    pub note: String,
}

/// A penalty and the department that decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecidedPenalty {
    pub department: Department,
    pub penalty: Penalty,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub case_number: String,
    /// When the crime was suspected (the decision the 24 hours run from).
    pub decided_at: DateTime<Utc>,
    pub summary: String,
    pub by: Department,
    pub transferred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferAnswer {
    pub accepted: bool,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaisedEscalation {
    pub escalation: Escalation,
    pub at: DateTime<Utc>,
}

/// A joint task: the fold of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub state: TaskState,
    pub lead: Department,
    pub participants: Vec<Department>,
    /// Named at opening, then drawn.
    pub targets: Vec<Enterprise>,
    pub legal_basis: LegalBasis,
    pub reason: Reason,
    pub deadline: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    pub draw: Option<DrawRecord>,
    pub findings: Vec<TargetFindings>,
    pub crime_suspected_at: Option<DateTime<Utc>>,
    pub rectification: Option<Rectification>,
    pub recheck: Option<Recheck>,
    pub penalties: Vec<DecidedPenalty>,
    pub transfer: Option<Transfer>,
    pub answer: Option<TransferAnswer>,
    pub escalations: Vec<RaisedEscalation>,
    /// Credit listings decided on the task's penalties (ids), as met on the record.
    pub credit_listings: Vec<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub history: Vec<HistoryEntry>,
}

impl Task {
    /// The lead, then the participants.
    pub fn departments(&self) -> Vec<Department> {
        std::iter::once(self.lead)
            .chain(self.participants.iter().copied())
            .collect()
    }

    /// Whether the task concerns `department`: lead, participant, or public security once a case is
    /// transferred.
    pub fn involves(&self, department: Department) -> bool {
        self.lead == department
            || self.participants.contains(&department)
            || (department == Department::Psb && self.transfer.is_some())
    }

    pub fn has_target(&self, uscc: &Uscc) -> bool {
        self.targets.iter().any(|t| &t.uscc == uscc)
    }

    /// The deadline has passed and the task is not closed.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.state != TaskState::Closed && now >= self.deadline
    }

    pub fn escalated(&self, reason: EscalationReason) -> bool {
        self.escalations
            .iter()
            .any(|e| e.escalation.reason == reason)
    }

    /// When the 24 hours for a transfer started: the findings' suspicion, else the transfer's decision.
    pub fn crime_decided_at(&self) -> Option<DateTime<Utc>> {
        self.crime_suspected_at
            .or(self.transfer.as_ref().map(|t| t.decided_at))
    }
}

/// A broken rule of a command's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The request field, e.g. `targets[0].uscc`.
    pub field: String,
    /// A stable machine name of the rule.
    pub rule: String,
    pub description: String,
}

/// Why a command is refused. A refused command changes nothing and publishes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No task has this id.
    NotFound { task_id: String },
    /// A task with this id exists already.
    TaskExists { task_id: String, lead: Department },
    /// The task is not in a state the command may start from.
    WrongState {
        task_id: String,
        command: CommandKind,
        current: TaskState,
        allowed_from: Vec<TaskState>,
        allowed_departments: Vec<Department>,
        duty: Duty,
    },
    /// The command is not the actor's duty on this task.
    NotPermitted {
        task_id: String,
        command: CommandKind,
        department: Department,
        current: TaskState,
        allowed_departments: Vec<Department>,
        duty: Duty,
    },
    /// The state allows the command in general, but something else about the task forbids it now.
    Blocked {
        task_id: String,
        command: CommandKind,
        current: TaskState,
        /// A stable machine name, e.g. `TRANSFER_REQUIRED`.
        condition: &'static str,
        description: String,
    },
    /// The command's content breaks a rule.
    Invalid(Vec<Violation>),
}

impl Refusal {
    pub fn invalid(
        field: impl Into<String>,
        rule: impl Into<String>,
        description: impl Into<String>,
    ) -> Refusal {
        Refusal::Invalid(vec![Violation {
            field: field.into(),
            rule: rule.into(),
            description: description.into(),
        }])
    }
}

fn list<T: fmt::Display>(items: &[T], last: &str) -> String {
    let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
    match texts.as_slice() {
        [] => "nobody".to_owned(),
        [one] => one.clone(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotFound { task_id } => write!(f, "task {task_id:?} does not exist"),
            Refusal::TaskExists { task_id, lead } => {
                write!(f, "task {task_id:?} already exists (lead: {lead})")
            }
            Refusal::WrongState {
                task_id,
                command,
                current,
                allowed_from,
                allowed_departments,
                duty,
            } => write!(
                f,
                "{command} is not allowed on task {task_id:?} in state {current}: it is allowed from {}, by \
                 {} ({})",
                list(allowed_from, "or"),
                list(allowed_departments, "and"),
                duty.describe()
            ),
            Refusal::NotPermitted {
                task_id,
                command,
                department,
                current,
                allowed_departments,
                duty,
            } => write!(
                f,
                "{department} may not {command} on task {task_id:?} (state {current}): it is the duty of {} \
                 ({})",
                list(allowed_departments, "and"),
                duty.describe()
            ),
            Refusal::Blocked {
                task_id,
                command,
                current,
                description,
                ..
            } => write!(
                f,
                "{command} is not allowed on task {task_id:?} in state {current} yet: {description}"
            ),
            Refusal::Invalid(violations) => {
                let parts: Vec<String> = violations
                    .iter()
                    .map(|v| format!("{} ({}): {}", v.field, v.rule, v.description))
                    .collect();
                write!(f, "invalid command: {}", parts.join("; "))
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// Whether `actor` may issue `kind` on `task` now: its duty, then the state, then anything else that blocks
/// it. [`decide`] and [`apply`] both ask this.
pub fn check(task: &Task, kind: CommandKind, actor: Department) -> Result<(), Refusal> {
    let row = transition(kind);
    let allowed_departments = row.duty.departments(task);
    if !allowed_departments.contains(&actor) {
        return Err(Refusal::NotPermitted {
            task_id: task.id.clone(),
            command: kind,
            department: actor,
            current: task.state,
            allowed_departments,
            duty: row.duty,
        });
    }
    if !row.from.contains(&task.state) {
        return Err(Refusal::WrongState {
            task_id: task.id.clone(),
            command: kind,
            current: task.state,
            allowed_from: row.from.to_vec(),
            allowed_departments,
            duty: row.duty,
        });
    }
    // 两法衔接: no closing (以罚代刑) while a suspected crime has not been transferred.
    if kind == CommandKind::Close && task.crime_suspected_at.is_some() && task.transfer.is_none() {
        return Err(Refusal::Blocked {
            task_id: task.id.clone(),
            command: kind,
            current: task.state,
            condition: "TRANSFER_REQUIRED",
            description: format!(
                "a crime was suspected at {} and the case has not been transferred to public security; \
                 transfer it first (两法衔接)",
                task.crime_suspected_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            ),
        });
    }
    Ok(())
}

/// What a draw draws from, at the moment of the draw: a fresh seed, the weighted candidates, the registers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrawMaterial {
    pub seed: Vec<u8>,
    pub candidates: Vec<Candidate>,
    pub registers: BTreeMap<Department, Vec<Inspector>>,
}

/// Supplies draws with their material (the service: registers, the record's risk facts, the OS's random
/// generator; tests: fixed material).
pub trait DrawSource {
    fn material(&self, task: &Task, now: DateTime<Utc>) -> DrawMaterial;
}

/// Decides a command: the event it becomes, or why it is refused. Pure: the same task, request, time and
/// draw material give the same answer.
pub fn decide(
    task: Option<&Task>,
    request: &Request,
    now: DateTime<Utc>,
    draws: &dyn DrawSource,
) -> Result<TaskEvent, Refusal> {
    let kind = request.command.kind()?;
    let change = match (task, &request.command) {
        (Some(task), Command::Open(_)) => {
            return Err(Refusal::TaskExists {
                task_id: task.id.clone(),
                lead: task.lead,
            });
        }
        (None, Command::Open(open)) => {
            check_open(open, now)?;
            Change::Opened(open.clone())
        }
        (None, _) => {
            return Err(Refusal::NotFound {
                task_id: request.task_id.clone(),
            });
        }
        (Some(task), command) => {
            check(task, kind, request.actor)?;
            change_of(task, command, now, draws)?
        }
    };
    Ok(TaskEvent {
        task_id: request.task_id.clone(),
        command_id: Some(request.command_id.clone()),
        actor: Some(request.actor),
        at: now,
        change,
    })
}

fn check_open(open: &OpenTask, now: DateTime<Utc>) -> Result<(), Refusal> {
    let mut violations = Vec::new();
    if open.deadline <= now {
        violations.push(Violation {
            field: "deadline".into(),
            rule: "deadline.future".into(),
            description: format!(
                "the deadline {} has already passed",
                open.deadline.to_rfc3339()
            ),
        });
    }
    for (i, t) in open.targets.iter().enumerate() {
        if open.targets[..i].iter().any(|o| o.uscc == t.uscc) {
            violations.push(Violation {
                field: format!("targets[{i}].uscc"),
                rule: "targets.unique".into(),
                description: format!("{} is named twice", t.uscc),
            });
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Invalid(violations))
    }
}

/// The change a permitted command makes, after checking its content against the task.
fn change_of(
    task: &Task,
    command: &Command,
    now: DateTime<Utc>,
    draws: &dyn DrawSource,
) -> Result<Change, Refusal> {
    Ok(match command.clone() {
        Command::Open(_) => unreachable!("handled by decide"),
        Command::Draw {
            target_count,
            inspectors_per_department,
        } => Change::Drawn(draw_for(
            task,
            target_count,
            inspectors_per_department,
            now,
            draws,
        )?),
        Command::Advance { to, note } => Change::Advanced { to, note },
        Command::RecordFindings {
            targets,
            crime_suspected_at,
        } => {
            let mut violations = Vec::new();
            for (i, t) in targets.iter().enumerate() {
                if !task.has_target(&t.uscc) {
                    violations.push(Violation {
                        field: format!("targets[{i}].uscc"),
                        rule: "target.unknown".into(),
                        description: format!("{} is not a target of task {:?}", t.uscc, task.id),
                    });
                }
            }
            if crime_suspected_at.is_some_and(|t| t > now) {
                violations.push(Violation {
                    field: "crime_suspected_at".into(),
                    rule: "not_future".into(),
                    description: "the decision that a crime is suspected cannot be in the future"
                        .into(),
                });
            }
            if !violations.is_empty() {
                return Err(Refusal::Invalid(violations));
            }
            Change::FindingsRecorded {
                targets,
                crime_suspected_at,
            }
        }
        Command::OrderRectification {
            requirements,
            deadline,
        } => {
            if deadline <= now {
                return Err(Refusal::invalid(
                    "deadline",
                    "deadline.future",
                    format!(
                        "the rectification deadline {} has already passed",
                        deadline.to_rfc3339()
                    ),
                ));
            }
            Change::RectificationOrdered {
                requirements,
                deadline,
            }
        }
        Command::RecordRecheck { passed, note } => Change::Rechecked { passed, note },
        Command::DecidePenalty(penalty) => {
            if !task.has_target(&penalty.enterprise.uscc) {
                return Err(Refusal::invalid(
                    "penalty.enterprise.uscc",
                    "target.unknown",
                    format!(
                        "{} is not a target of task {:?}",
                        penalty.enterprise.uscc, task.id
                    ),
                ));
            }
            if task
                .penalties
                .iter()
                .any(|p| p.penalty.decision_number == penalty.decision_number)
            {
                return Err(Refusal::invalid(
                    "penalty.decision_number",
                    "decision_number.unique",
                    format!(
                        "penalty decision {} is already recorded on this task",
                        penalty.decision_number
                    ),
                ));
            }
            Change::PenaltyDecided(penalty)
        }
        Command::TransferCase {
            case_number,
            decided_at,
            summary,
        } => {
            if decided_at > now {
                return Err(Refusal::invalid(
                    "decided_at",
                    "not_future",
                    "the decision that a crime is suspected cannot be in the future",
                ));
            }
            Change::CaseTransferred {
                case_number,
                decided_at,
                summary,
            }
        }
        Command::AnswerTransfer { accepted, reason } => {
            Change::TransferAnswered { accepted, reason }
        }
        Command::Close { summary } => Change::Closed { summary },
    })
}

fn draw_for(
    task: &Task,
    target_count: u32,
    per_department: u32,
    now: DateTime<Utc>,
    draws: &dyn DrawSource,
) -> Result<DrawRecord, Refusal> {
    let material = draws.material(task, now);
    // Enterprises named at opening are targets already; they are not drawn again.
    let candidates = material
        .candidates
        .into_iter()
        .filter(|c| !task.has_target(&c.uscc))
        .collect();
    let pools = task
        .departments()
        .into_iter()
        .map(|d| {
            let register = material.registers.get(&d).cloned().unwrap_or_default();
            (d, register, per_department)
        })
        .collect();
    draw::draw(DrawInput {
        seed: material.seed,
        candidates,
        target_count,
        pools,
    })
    .map_err(|e| {
        let (field, rule) = match &e {
            DrawError::TooFewCandidates { .. } => ("target_count", "draw.too_few_candidates"),
            DrawError::TooFewPerDepartment { .. } => {
                ("inspectors_per_department", "draw.min_inspectors")
            }
            DrawError::TooFewInspectors { .. } => {
                ("inspectors_per_department", "draw.register_too_small")
            }
            _ => ("registers", "draw.register_invalid"),
        };
        Refusal::invalid(field, rule, e.to_string())
    })
}

/// Applies an event to the task it concerns (`None` before it is opened). Refuses an event that the
/// transition table does not allow from the task's state (the record holds only allowed events unless two
/// services raced; the first one on the record wins, deterministically).
pub fn apply(
    task: Option<Task>,
    event: &TaskEvent,
    event_id: &str,
    sequence: u64,
) -> Result<Task, Refusal> {
    let mut task = match (task, &event.change) {
        (Some(task), Change::Opened(_)) => {
            return Err(Refusal::TaskExists {
                task_id: task.id,
                lead: task.lead,
            });
        }
        (None, Change::Opened(open)) => {
            let lead = event.actor.ok_or_else(|| {
                Refusal::invalid("actor", "required", "an opening names its lead")
            })?;
            Task {
                id: event.task_id.clone(),
                title: open.title.clone(),
                state: TaskState::Planned,
                lead,
                participants: open.participants.clone(),
                targets: open.targets.clone(),
                legal_basis: open.legal_basis.clone(),
                reason: open.reason.clone(),
                deadline: open.deadline,
                opened_at: event.at,
                draw: None,
                findings: Vec::new(),
                crime_suspected_at: None,
                rectification: None,
                recheck: None,
                penalties: Vec::new(),
                transfer: None,
                answer: None,
                escalations: Vec::new(),
                credit_listings: Vec::new(),
                closed_at: None,
                history: Vec::new(),
            }
        }
        (None, _) => {
            return Err(Refusal::NotFound {
                task_id: event.task_id.clone(),
            });
        }
        (Some(task), Change::Escalated(_)) => task,
        (Some(task), change) => {
            let kind = change
                .command()
                .expect("every change but an escalation has a command")
                .kind()?;
            let actor = event.actor.ok_or_else(|| {
                Refusal::invalid("actor", "required", "a task event names its actor")
            })?;
            check(&task, kind, actor)?;
            task
        }
    };
    let summary = summarise(&task, event);
    let actor = event.actor;
    match &event.change {
        Change::Opened(_) => {}
        Change::Drawn(record) => {
            for uscc in &record.drawn_targets {
                task.targets.push(Enterprise {
                    uscc: uscc.clone(),
                    name: String::new(),
                });
            }
            task.draw = Some(record.clone());
            task.state = TaskState::Drawn;
        }
        Change::Advanced { to, .. } => task.state = *to,
        Change::FindingsRecorded {
            targets,
            crime_suspected_at,
        } => {
            task.findings = targets.clone();
            task.crime_suspected_at = *crime_suspected_at;
            task.state = TaskState::FindingsRecorded;
        }
        Change::RectificationOrdered {
            requirements,
            deadline,
        } => {
            task.rectification = Some(Rectification {
                requirements: requirements.clone(),
                deadline: *deadline,
            });
            task.state = TaskState::RectificationOrdered;
        }
        Change::Rechecked { passed, note } => {
            task.recheck = Some(Recheck {
                passed: *passed,
                note: note.clone(),
            });
            task.state = TaskState::Rechecked;
        }
        Change::PenaltyDecided(penalty) => {
            task.penalties.push(DecidedPenalty {
                department: actor.expect("checked"),
                penalty: penalty.clone(),
            });
            task.state = TaskState::PenaltyDecided;
        }
        Change::CaseTransferred {
            case_number,
            decided_at,
            summary,
        } => {
            task.transfer = Some(Transfer {
                case_number: case_number.clone(),
                decided_at: *decided_at,
                summary: summary.clone(),
                by: actor.expect("checked"),
                transferred_at: event.at,
            });
            task.state = TaskState::CaseTransferred;
        }
        Change::TransferAnswered { accepted, reason } => {
            task.answer = Some(TransferAnswer {
                accepted: *accepted,
                reason: reason.clone(),
                at: event.at,
            });
            task.state = if *accepted {
                TaskState::TransferAccepted
            } else {
                TaskState::TransferRejected
            };
        }
        Change::Closed { .. } => {
            task.closed_at = Some(event.at);
            task.state = TaskState::Closed;
        }
        Change::Escalated(escalation) => task.escalations.push(RaisedEscalation {
            escalation: escalation.clone(),
            at: event.at,
        }),
    }
    task.history.push(HistoryEntry {
        event_id: event_id.to_owned(),
        sequence,
        state: task.state,
        actor,
        at: event.at,
        summary,
    });
    Ok(task)
}

/// A line of history for an event.
fn summarise(task: &Task, event: &TaskEvent) -> String {
    let with_note = |text: String, note: &str| {
        if note.is_empty() {
            text
        } else {
            format!("{text}: {note}")
        }
    };
    match &event.change {
        Change::Opened(open) => format!(
            "opened by {} (lead) with {}: {}",
            event.actor.map_or("?", Department::code),
            if open.participants.is_empty() {
                "no participants".to_owned()
            } else {
                list(&open.participants, "and")
            },
            open.title
        ),
        Change::Drawn(record) => {
            let inspectors: usize = record.pools.iter().map(|p| p.drawn.len()).sum();
            format!(
                "drew {} target(s) from {} candidates and {inspectors} inspectors from {} ({})",
                record.drawn_targets.len(),
                record.candidates.len(),
                list(
                    &record
                        .pools
                        .iter()
                        .map(|p| p.department)
                        .collect::<Vec<_>>(),
                    "and"
                ),
                record.algorithm
            )
        }
        Change::Advanced { to, note } => with_note(
            match to {
                TaskState::Notified => "targets and inspectors notified".to_owned(),
                TaskState::OnSite => "inspectors on site".to_owned(),
                other => format!("advanced to {other}"),
            },
            note,
        ),
        Change::FindingsRecorded {
            targets,
            crime_suspected_at,
        } => {
            let count: usize = targets.iter().map(|t| t.findings.len()).sum();
            let mut text = format!("{count} finding(s) at {} target(s)", targets.len());
            if let Some(at) = crime_suspected_at {
                text.push_str(&format!(
                    "; crime suspected at {}: transfer to public security due within 24 h",
                    at.to_rfc3339()
                ));
            }
            text
        }
        Change::RectificationOrdered { deadline, .. } => {
            format!("rectification ordered, due {}", deadline.to_rfc3339())
        }
        Change::Rechecked { passed, note } => with_note(
            if *passed {
                "recheck passed".to_owned()
            } else {
                "recheck failed".to_owned()
            },
            note,
        ),
        Change::PenaltyDecided(p) => format!(
            "penalty {} on {}: {} yuan ({})",
            p.decision_number, p.enterprise.uscc, p.fine_yuan, p.reason
        ),
        Change::CaseTransferred {
            case_number,
            decided_at,
            ..
        } => format!(
            "case {case_number} transferred to public security (crime suspected at {})",
            decided_at.to_rfc3339()
        ),
        Change::TransferAnswered { accepted, reason } => with_note(
            if *accepted {
                "public security accepted the case".to_owned()
            } else {
                "public security rejected the case".to_owned()
            },
            reason,
        ),
        Change::Closed { summary } => with_note("closed".to_owned(), summary),
        Change::Escalated(e) => format!(
            "escalated ({}) to {}: {} [state {}]",
            e.reason.name(),
            list(&e.addressed_to, "and"),
            e.detail,
            task.state
        ),
    }
}

/// Records on a task that a credit listing was decided on one of its penalties (met on the record).
pub fn note_credit_listing(
    task: &mut Task,
    listing_id: &str,
    department: Option<Department>,
    decision_number: &str,
    event_id: &str,
    sequence: u64,
    at: DateTime<Utc>,
) {
    if task.credit_listings.iter().any(|l| l == listing_id) {
        return;
    }
    task.credit_listings.push(listing_id.to_owned());
    task.history.push(HistoryEntry {
        event_id: event_id.to_owned(),
        sequence,
        state: task.state,
        actor: department,
        at,
        summary: format!("credit listing {listing_id} decided on penalty {decision_number}"),
    });
}

/// The escalations `task` is due at `now` that it has not raised yet, each with the instant it fell due
/// (the escalation event's time, so that raising it again gives the same event). `answer_within` is how
/// long public security has to answer a transfer.
pub fn due_escalations(
    task: &Task,
    now: DateTime<Utc>,
    answer_within: Duration,
) -> Vec<(DateTime<Utc>, Escalation)> {
    let mut due = Vec::new();
    let everyone = task.departments();
    if task.is_overdue(now) && !task.escalated(EscalationReason::Overdue) {
        due.push((
            task.deadline,
            Escalation {
                reason: EscalationReason::Overdue,
                detail: format!(
                    "the deadline {} passed in state {}",
                    task.deadline.to_rfc3339(),
                    task.state
                ),
                addressed_to: everyone.clone(),
            },
        ));
    }
    if let Some(decided) = task.crime_decided_at()
        && !task.escalated(EscalationReason::TransferLate)
    {
        let limit = decided + TRANSFER_WITHIN;
        let detail = match &task.transfer {
            None if now >= limit => Some(format!(
                "a crime was suspected at {} and the case was not transferred to public security within 24 h",
                decided.to_rfc3339()
            )),
            Some(t) if t.transferred_at > limit => Some(format!(
                "case {} was transferred at {}, more than 24 h after the crime was suspected at {}",
                t.case_number,
                t.transferred_at.to_rfc3339(),
                decided.to_rfc3339()
            )),
            _ => None,
        };
        if let Some(detail) = detail {
            due.push((
                limit,
                Escalation {
                    reason: EscalationReason::TransferLate,
                    detail,
                    addressed_to: everyone.clone(),
                },
            ));
        }
    }
    if let Some(transfer) = &task.transfer
        && task.answer.is_none()
        && !task.escalated(EscalationReason::TransferUnanswered)
    {
        let limit = transfer.transferred_at + answer_within;
        if now >= limit {
            let mut to = vec![Department::Psb, task.lead];
            to.dedup();
            due.push((
                limit,
                Escalation {
                    reason: EscalationReason::TransferUnanswered,
                    detail: format!(
                        "public security has not answered the transfer of case {} sent at {}",
                        transfer.case_number,
                        transfer.transferred_at.to_rfc3339()
                    ),
                    addressed_to: to,
                },
            ));
        }
    }
    due
}
