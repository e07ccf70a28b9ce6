//! The transition rules of joint tasks, checked against an expectation table written out here by hand
//! (independently of `TRANSITIONS`): every path from plan to closure, every command in every state, every
//! department for every command.

#![allow(clippy::disallowed_methods)] // tests: the rules are checked at an arbitrary instant

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use hazchem_domain::{Department, Uscc};
use hazchem_enforcement::draw::{self, Inspector};
use hazchem_enforcement::registers::Registers;
use hazchem_enforcement::task::{
    Change, DrawMaterial, DrawSource, Enterprise, EscalationReason, Finding, FindingSeverity,
    LegalBasis, OpenTask, Penalty, Reason, TargetFindings, due_escalations,
};
use hazchem_enforcement::{Command, CommandKind, Refusal, Request, Task, TaskState, apply, decide};

use Department::{Emergency, Fire, Psb, Samr};
use TaskState as S;

const LEAD: Department = Emergency;
static PENALTIES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
const PARTICIPANTS: [Department; 2] = [Psb, Fire];

struct Fixed(Registers);

impl DrawSource for Fixed {
    fn material(&self, _task: &Task, now: DateTime<Utc>) -> DrawMaterial {
        DrawMaterial {
            seed: vec![42; 32],
            candidates: self.0.candidates(&BTreeMap::new(), now),
            registers: self.0.inspectors.clone(),
        }
    }
}

fn draws() -> Fixed {
    Fixed(Registers::default_registers())
}

fn named_target() -> Uscc {
    Uscc::parse("91320602MA04MJFYQC").unwrap()
}

fn open_command(now: DateTime<Utc>) -> Command {
    Command::Open(OpenTask {
        title: "化工园区联合检查".into(),
        participants: PARTICIPANTS.to_vec(),
        targets: vec![Enterprise {
            uscc: named_target(),
            name: "南通示例化工有限公司".into(),
        }],
        legal_basis: LegalBasis {
            instrument: "《危险化学品安全管理条例》".into(),
            article: "第六条".into(),
            version: "2013-12-07".into(),
        },
        reason: Reason::Text("季度双随机抽查".into()),
        deadline: now + Duration::days(30),
    })
    .normalised(LEAD)
}

/// A valid command of each kind for a task (content that passes the checks).
fn command(kind: CommandKind, now: DateTime<Utc>) -> Command {
    match kind {
        CommandKind::Open => open_command(now),
        CommandKind::Draw => Command::Draw {
            target_count: 3,
            inspectors_per_department: 2,
        },
        CommandKind::Notify => Command::Advance {
            to: S::Notified,
            note: "告知书已送达".into(),
        },
        CommandKind::GoOnSite => Command::Advance {
            to: S::OnSite,
            note: String::new(),
        },
        CommandKind::RecordFindings => Command::RecordFindings {
            targets: vec![TargetFindings {
                uscc: named_target(),
                findings: vec![Finding {
                    code: "AQ-07".into(),
                    description: "储罐区可燃气体报警器未定期检定".into(),
                    severity: FindingSeverity::Major,
                }],
            }],
            crime_suspected_at: None,
        },
        CommandKind::OrderRectification => Command::OrderRectification {
            requirements: "15日内完成检定".into(),
            deadline: now + Duration::days(15),
        },
        CommandKind::RecordRecheck => Command::RecordRecheck {
            passed: true,
            note: String::new(),
        },
        CommandKind::DecidePenalty => Command::DecidePenalty(Penalty {
            decision_number: format!(
                "通应急罚〔2025〕{}号",
                PENALTIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            enterprise: Enterprise {
                uscc: named_target(),
                name: String::new(),
            },
            reason: "未按规定检定报警装置".into(),
            fine_yuan: 30_000.0,
            decided_at: now - Duration::hours(1),
        }),
        CommandKind::TransferCase => Command::TransferCase {
            case_number: "通应急移〔2025〕3号".into(),
            decided_at: now - Duration::hours(2),
            summary: "涉嫌危险作业罪".into(),
        },
        CommandKind::AnswerTransfer => Command::AnswerTransfer {
            accepted: true,
            reason: "立案侦查".into(),
        },
        CommandKind::Close => Command::Close {
            summary: "done".into(),
        },
    }
}

/// The department that may issue `kind` on the test task (expected table).
fn a_permitted(kind: CommandKind) -> Department {
    match kind {
        CommandKind::AnswerTransfer => Psb,
        CommandKind::GoOnSite | CommandKind::RecordFindings | CommandKind::RecordRecheck => Fire,
        CommandKind::DecidePenalty => Psb,
        _ => LEAD,
    }
}

/// Expected: who may issue each command on a task led by emergency with psb and fire participating.
fn expected_departments(kind: CommandKind) -> Vec<Department> {
    match kind {
        CommandKind::Open => Department::ALL.to_vec(),
        CommandKind::Draw
        | CommandKind::Notify
        | CommandKind::OrderRectification
        | CommandKind::Close => vec![Emergency],
        CommandKind::GoOnSite
        | CommandKind::RecordFindings
        | CommandKind::RecordRecheck
        | CommandKind::DecidePenalty => vec![Emergency, Psb, Fire],
        CommandKind::TransferCase => vec![Emergency, Fire],
        CommandKind::AnswerTransfer => vec![Psb],
    }
}

/// Expected: the states each command may start from.
fn expected_from(kind: CommandKind) -> Vec<TaskState> {
    match kind {
        CommandKind::Open => vec![],
        CommandKind::Draw => vec![S::Planned],
        CommandKind::Notify => vec![S::Drawn],
        CommandKind::GoOnSite => vec![S::Notified],
        CommandKind::RecordFindings => vec![S::OnSite],
        CommandKind::OrderRectification => vec![S::FindingsRecorded, S::Rechecked],
        CommandKind::RecordRecheck => vec![S::RectificationOrdered],
        CommandKind::DecidePenalty => vec![S::FindingsRecorded, S::Rechecked, S::PenaltyDecided],
        CommandKind::TransferCase => vec![S::FindingsRecorded, S::Rechecked, S::PenaltyDecided],
        CommandKind::AnswerTransfer => vec![S::CaseTransferred],
        CommandKind::Close => vec![
            S::FindingsRecorded,
            S::Rechecked,
            S::PenaltyDecided,
            S::TransferAccepted,
            S::TransferRejected,
        ],
    }
}

/// Expected: the states each command leads to.
fn expected_to(kind: CommandKind) -> Vec<TaskState> {
    match kind {
        CommandKind::Open => vec![S::Planned],
        CommandKind::Draw => vec![S::Drawn],
        CommandKind::Notify => vec![S::Notified],
        CommandKind::GoOnSite => vec![S::OnSite],
        CommandKind::RecordFindings => vec![S::FindingsRecorded],
        CommandKind::OrderRectification => vec![S::RectificationOrdered],
        CommandKind::RecordRecheck => vec![S::Rechecked],
        CommandKind::DecidePenalty => vec![S::PenaltyDecided],
        CommandKind::TransferCase => vec![S::CaseTransferred],
        CommandKind::AnswerTransfer => vec![S::TransferAccepted, S::TransferRejected],
        CommandKind::Close => vec![S::Closed],
    }
}

/// Runs one command through decide and apply; returns the new task and the change.
struct Walk {
    task: Option<Task>,
    sequence: u64,
    now: DateTime<Utc>,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            task: None,
            sequence: 0,
            now: Utc::now(),
        }
    }

    fn request(&self, actor: Department, command: Command) -> Request {
        Request {
            task_id: "task-1".into(),
            command_id: format!("cmd-{}", self.sequence + 1),
            actor,
            command,
        }
    }

    fn try_do(&mut self, actor: Department, command: Command) -> Result<Change, Refusal> {
        let request = self.request(actor, command);
        let event = decide(self.task.as_ref(), &request, self.now, &draws())?;
        // What a retry must repeat is exactly the command that made the event.
        assert_eq!(event.change.command(), Some(request.command.clone()));
        self.sequence += 1;
        let id = format!("ev-{}", self.sequence);
        let task =
            apply(self.task.take(), &event, &id, self.sequence).expect("a decided event applies");
        self.task = Some(task);
        Ok(event.change)
    }

    fn run(&mut self, actor: Department, command: Command) -> Change {
        self.try_do(actor, command)
            .unwrap_or_else(|r| panic!("refused: {r}"))
    }

    fn kind(&mut self, kind: CommandKind) -> Change {
        let command = command(kind, self.now);
        self.run(a_permitted(kind), command)
    }

    fn state(&self) -> TaskState {
        self.task.as_ref().unwrap().state
    }

    fn task(&self) -> &Task {
        self.task.as_ref().unwrap()
    }
}

/// A task walked to `state` along the shortest path.
fn walk_to(state: TaskState) -> Walk {
    use CommandKind as K;
    let path: &[CommandKind] = match state {
        S::Planned => &[K::Open],
        S::Drawn => &[K::Open, K::Draw],
        S::Notified => &[K::Open, K::Draw, K::Notify],
        S::OnSite => &[K::Open, K::Draw, K::Notify, K::GoOnSite],
        S::FindingsRecorded => &[K::Open, K::Draw, K::Notify, K::GoOnSite, K::RecordFindings],
        S::RectificationOrdered => &[
            K::Open,
            K::Draw,
            K::Notify,
            K::GoOnSite,
            K::RecordFindings,
            K::OrderRectification,
        ],
        S::Rechecked => &[
            K::Open,
            K::Draw,
            K::Notify,
            K::GoOnSite,
            K::RecordFindings,
            K::OrderRectification,
            K::RecordRecheck,
        ],
        S::PenaltyDecided => &[
            K::Open,
            K::Draw,
            K::Notify,
            K::GoOnSite,
            K::RecordFindings,
            K::DecidePenalty,
        ],
        S::CaseTransferred => &[
            K::Open,
            K::Draw,
            K::Notify,
            K::GoOnSite,
            K::RecordFindings,
            K::TransferCase,
        ],
        S::TransferAccepted | S::TransferRejected => &[
            K::Open,
            K::Draw,
            K::Notify,
            K::GoOnSite,
            K::RecordFindings,
            K::TransferCase,
        ],
        S::Closed => &[
            K::Open,
            K::Draw,
            K::Notify,
            K::GoOnSite,
            K::RecordFindings,
            K::Close,
        ],
    };
    let mut walk = Walk::new();
    for kind in path {
        walk.kind(*kind);
    }
    match state {
        S::TransferAccepted => {
            walk.kind(K::AnswerTransfer);
        }
        S::TransferRejected => {
            walk.run(
                Psb,
                Command::AnswerTransfer {
                    accepted: false,
                    reason: "不构成犯罪".into(),
                },
            );
        }
        _ => {}
    }
    assert_eq!(walk.state(), state);
    walk
}

#[test]
fn rectification_then_recheck_then_close() {
    let mut w = walk_to(S::FindingsRecorded);
    w.kind(CommandKind::OrderRectification);
    assert_eq!(w.state(), S::RectificationOrdered);
    w.run(
        Fire,
        Command::RecordRecheck {
            passed: false,
            note: "未整改到位".into(),
        },
    );
    assert_eq!(w.state(), S::Rechecked);
    // A failed recheck may be followed by another order, then another recheck.
    w.kind(CommandKind::OrderRectification);
    w.kind(CommandKind::RecordRecheck);
    assert!(w.task().recheck.as_ref().unwrap().passed);
    w.kind(CommandKind::Close);
    let t = w.task();
    assert_eq!(t.state, S::Closed);
    assert!(t.closed_at.is_some());
    let states: Vec<TaskState> = t.history.iter().map(|h| h.state).collect();
    assert_eq!(
        states,
        [
            S::Planned,
            S::Drawn,
            S::Notified,
            S::OnSite,
            S::FindingsRecorded,
            S::RectificationOrdered,
            S::Rechecked,
            S::RectificationOrdered,
            S::Rechecked,
            S::Closed
        ]
    );
    let actors: Vec<Option<Department>> = t.history.iter().map(|h| h.actor).collect();
    assert_eq!(actors[0], Some(LEAD));
    assert_eq!(actors[3], Some(Fire));
}

#[test]
fn penalty_then_close() {
    let mut w = walk_to(S::FindingsRecorded);
    w.kind(CommandKind::DecidePenalty);
    assert_eq!(w.state(), S::PenaltyDecided);
    assert_eq!(w.task().penalties[0].department, Psb);
    // A second department's penalty (each penalises within its own duties).
    let mut second = command(CommandKind::DecidePenalty, w.now);
    if let Command::DecidePenalty(p) = &mut second {
        p.decision_number = "通消行罚决字〔2025〕9号".into();
    }
    w.run(Fire, second);
    assert_eq!(w.task().penalties.len(), 2);
    w.kind(CommandKind::Close);
    assert_eq!(w.state(), S::Closed);
}

#[test]
fn transfer_then_accepted_then_close() {
    let mut w = walk_to(S::FindingsRecorded);
    w.kind(CommandKind::TransferCase);
    assert_eq!(w.state(), S::CaseTransferred);
    assert!(w.task().involves(Psb));
    w.kind(CommandKind::AnswerTransfer);
    assert_eq!(w.state(), S::TransferAccepted);
    w.kind(CommandKind::Close);
    assert_eq!(w.state(), S::Closed);
}

#[test]
fn transfer_then_rejected_then_close() {
    let mut w = walk_to(S::TransferRejected);
    assert!(!w.task().answer.as_ref().unwrap().accepted);
    w.kind(CommandKind::Close);
    assert_eq!(w.state(), S::Closed);
}

#[test]
fn penalty_then_transfer() {
    let mut w = walk_to(S::PenaltyDecided);
    w.kind(CommandKind::TransferCase);
    assert_eq!(w.state(), S::CaseTransferred);
}

#[test]
fn the_draw_adds_targets_and_records_what_a_redraw_needs() {
    let w = walk_to(S::Drawn);
    let t = w.task();
    let record = t.draw.as_ref().unwrap();
    assert_eq!(record.drawn_targets.len(), 3);
    assert_eq!(t.targets.len(), 4, "one named, three drawn");
    assert!(
        !record.candidates.iter().any(|c| c.uscc == named_target()),
        "a named target is not drawn again"
    );
    let departments: Vec<Department> = record.pools.iter().map(|p| p.department).collect();
    assert_eq!(departments, [Emergency, Fire, Psb], "by department code");
    assert_eq!(
        draw::verify(record).unwrap().drawn_targets,
        record.drawn_targets
    );
}

#[test]
fn every_command_in_every_state() {
    for state in TaskState::ALL {
        for kind in CommandKind::ALL {
            let mut w = walk_to(state);
            let before = w.task().clone();
            let actor = a_permitted(kind);
            let result = w.try_do(actor, command(kind, w.now));
            if kind == CommandKind::Open {
                assert_eq!(
                    result.unwrap_err(),
                    Refusal::TaskExists {
                        task_id: "task-1".into(),
                        lead: LEAD
                    }
                );
            } else if expected_from(kind).contains(&state) {
                let change = result.unwrap_or_else(|r| panic!("{kind} from {state}: {r}"));
                assert_ne!(change.command(), None);
                assert!(
                    expected_to(kind).contains(&w.state()),
                    "{kind} from {state} led to {}",
                    w.state()
                );
            } else {
                let refusal = result.unwrap_err();
                let Refusal::WrongState {
                    current,
                    allowed_from,
                    allowed_departments,
                    command,
                    ..
                } = &refusal
                else {
                    panic!("{kind} in {state}: expected a wrong-state refusal, got {refusal:?}");
                };
                assert_eq!((*current, *command), (state, kind));
                assert_eq!(allowed_from, &expected_from(kind));
                assert_eq!(allowed_departments, &expected_departments(kind));
                let text = refusal.to_string();
                assert!(text.contains(state.name()), "{text}");
                for d in expected_departments(kind) {
                    assert!(text.contains(d.code()), "{text}");
                }
                assert_eq!(w.task(), &before, "a refusal changes nothing");
            }
        }
    }
}

#[test]
fn every_command_by_every_department_that_may_not() {
    for state in TaskState::ALL {
        let w = walk_to(state);
        for kind in CommandKind::ALL
            .into_iter()
            .filter(|k| *k != CommandKind::Open)
        {
            let allowed = expected_departments(kind);
            for department in Department::ALL {
                if allowed.contains(&department) {
                    continue;
                }
                let request = w.request(department, command(kind, w.now));
                let refusal = decide(w.task.as_ref(), &request, w.now, &draws()).unwrap_err();
                let Refusal::NotPermitted {
                    department: refused,
                    current,
                    allowed_departments,
                    ..
                } = &refusal
                else {
                    panic!(
                        "{department} {kind} in {state}: expected not permitted, got {refusal:?}"
                    );
                };
                assert_eq!((*refused, *current), (department, state));
                assert_eq!(allowed_departments, &allowed);
                let text = refusal.to_string();
                assert!(
                    text.contains(state.name()) && text.contains(department.code()),
                    "{text}"
                );
            }
        }
    }
}

#[test]
fn public_security_does_not_transfer_to_itself_and_only_it_answers() {
    let w = walk_to(S::FindingsRecorded);
    let r = w.request(Psb, command(CommandKind::TransferCase, w.now));
    assert!(matches!(
        decide(w.task.as_ref(), &r, w.now, &draws()),
        Err(Refusal::NotPermitted { .. })
    ));
    let w = walk_to(S::CaseTransferred);
    for d in [Emergency, Fire, Samr] {
        let r = w.request(d, command(CommandKind::AnswerTransfer, w.now));
        assert!(matches!(
            decide(w.task.as_ref(), &r, w.now, &draws()),
            Err(Refusal::NotPermitted { .. })
        ));
    }
}

#[test]
fn a_task_with_a_suspected_crime_cannot_close_before_the_transfer() {
    let mut w = walk_to(S::OnSite);
    let findings = Command::RecordFindings {
        targets: vec![TargetFindings {
            uscc: named_target(),
            findings: vec![],
        }],
        crime_suspected_at: Some(w.now - Duration::hours(1)),
    };
    w.run(Emergency, findings);
    let refusal = w
        .try_do(LEAD, command(CommandKind::Close, w.now))
        .unwrap_err();
    assert!(
        matches!(
            &refusal,
            Refusal::Blocked {
                condition: "TRANSFER_REQUIRED",
                current: S::FindingsRecorded,
                ..
            }
        ),
        "{refusal:?}"
    );
    w.kind(CommandKind::TransferCase);
    w.kind(CommandKind::AnswerTransfer);
    w.kind(CommandKind::Close);
    assert_eq!(w.state(), S::Closed);
}

#[test]
fn content_is_checked_against_the_task() {
    let w = walk_to(S::OnSite);
    let stranger = Uscc::parse("91320691MAPR5XT9HL").unwrap();
    let findings = Command::RecordFindings {
        targets: vec![TargetFindings {
            uscc: stranger,
            findings: vec![],
        }],
        crime_suspected_at: None,
    };
    let r = w.request(Emergency, findings);
    let Err(Refusal::Invalid(v)) = decide(w.task.as_ref(), &r, w.now, &draws()) else {
        panic!("expected invalid");
    };
    assert_eq!(
        (v[0].field.as_str(), v[0].rule.as_str()),
        ("targets[0].uscc", "target.unknown")
    );

    let r = w.request(
        Emergency,
        Command::Advance {
            to: S::Closed,
            note: String::new(),
        },
    );
    let Err(Refusal::Invalid(v)) = decide(w.task.as_ref(), &r, w.now, &draws()) else {
        panic!("expected invalid");
    };
    assert_eq!(v[0].field, "to_state");

    let mut open = Walk::new();
    let Command::Open(mut past) = open_command(open.now) else {
        unreachable!()
    };
    past.deadline = open.now - Duration::minutes(1);
    let refusal = open.try_do(LEAD, Command::Open(past)).unwrap_err();
    assert!(matches!(refusal, Refusal::Invalid(v) if v[0].field == "deadline"));

    let w = walk_to(S::Planned);
    let greedy = w.request(
        LEAD,
        Command::Draw {
            target_count: 100,
            inspectors_per_department: 2,
        },
    );
    let Err(Refusal::Invalid(v)) = decide(w.task.as_ref(), &greedy, w.now, &draws()) else {
        panic!("expected invalid");
    };
    assert_eq!(
        (v[0].field.as_str(), v[0].rule.as_str()),
        ("target_count", "draw.too_few_candidates")
    );
    let one = w.request(
        LEAD,
        Command::Draw {
            target_count: 1,
            inspectors_per_department: 1,
        },
    );
    let Err(Refusal::Invalid(v)) = decide(w.task.as_ref(), &one, w.now, &draws()) else {
        panic!("expected invalid");
    };
    assert_eq!(v[0].rule, "draw.min_inspectors");
}

#[test]
fn a_task_event_out_of_order_is_not_applied() {
    let w = walk_to(S::Planned);
    let mut later = walk_to(S::FindingsRecorded);
    let request = later.request(LEAD, command(CommandKind::Close, later.now));
    let event = decide(later.task.as_ref(), &request, later.now, &draws()).unwrap();
    // The same close event applied to a task still PLANNED (a race between two services) is refused.
    assert!(matches!(
        apply(w.task.clone(), &event, "x", 99),
        Err(Refusal::WrongState { .. })
    ));
    later.kind(CommandKind::Close);
}

#[test]
fn escalations_fall_due_once() {
    let day = Duration::days(1);
    let answer = Duration::days(3);
    let w = walk_to(S::OnSite);
    let task = w.task();
    assert!(due_escalations(task, w.now, answer).is_empty());
    let late = task.deadline + Duration::seconds(1);
    let due = due_escalations(task, late, answer);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].0, task.deadline, "due at the deadline itself");
    assert_eq!(due[0].1.reason, EscalationReason::Overdue);
    assert_eq!(due[0].1.addressed_to, [Emergency, Psb, Fire]);

    // Raised once: applying the escalation stops it falling due again.
    let escalated = hazchem_enforcement::task::TaskEvent {
        task_id: task.id.clone(),
        command_id: None,
        actor: None,
        at: due[0].0,
        change: Change::Escalated(due[0].1.clone()),
    };
    let after = apply(Some(task.clone()), &escalated, "esc", 100).unwrap();
    assert_eq!(after.state, S::OnSite);
    assert!(due_escalations(&after, late, answer).is_empty());

    // A suspected crime not transferred within 24 h.
    let mut w = walk_to(S::OnSite);
    let suspected = w.now - Duration::hours(2);
    w.run(
        Emergency,
        Command::RecordFindings {
            targets: vec![],
            crime_suspected_at: Some(suspected),
        },
    );
    assert!(due_escalations(w.task(), w.now, answer).is_empty());
    let due = due_escalations(w.task(), suspected + day, answer);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.reason, EscalationReason::TransferLate);
    assert_eq!(due[0].0, suspected + day);

    // Transferred in time, then unanswered past the period.
    w.kind(CommandKind::TransferCase);
    let transferred = w.task().transfer.as_ref().unwrap().transferred_at;
    assert!(
        due_escalations(
            w.task(),
            transferred + answer - Duration::seconds(1),
            answer
        )
        .is_empty()
    );
    let due = due_escalations(w.task(), transferred + answer, answer);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.reason, EscalationReason::TransferUnanswered);
    assert_eq!(due[0].1.addressed_to, [Psb, Emergency]);
    w.kind(CommandKind::AnswerTransfer);
    assert!(due_escalations(w.task(), transferred + answer, answer).is_empty());

    // A transfer sent after the 24 hours escalates as late even though it was sent.
    let mut w = walk_to(S::FindingsRecorded);
    w.run(
        Emergency,
        Command::TransferCase {
            case_number: "late-1".into(),
            decided_at: w.now - Duration::hours(30),
            summary: String::new(),
        },
    );
    let due = due_escalations(w.task(), w.now, answer);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.reason, EscalationReason::TransferLate);

    // A closed task is not overdue.
    let w = walk_to(S::Closed);
    assert!(due_escalations(w.task(), w.task().deadline + day, answer).is_empty());
}

#[test]
fn the_inspectors_drawn_per_department_are_at_least_two_and_distinct() {
    let w = walk_to(S::Drawn);
    for pool in &w.task().draw.as_ref().unwrap().pools {
        assert_eq!(pool.drawn.len(), 2);
        let distinct: std::collections::BTreeSet<&Inspector> = pool.drawn.iter().collect();
        assert_eq!(distinct.len(), 2);
        for i in &pool.drawn {
            assert!(pool.candidates.contains(i));
        }
    }
}
