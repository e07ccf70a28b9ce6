//! Joint enforcement end to end, over real gRPC with mTLS, on the embedded bus and on a real nats-server:
//! departments drive tasks through every path; every illegal transition (wrong state, wrong department) is
//! refused with the state and departments named and appends nothing; the task events come through the
//! gateway's `Subscribe`; commands are idempotent by command id, across restarts and rebuilds; a rebuild
//! from the stream gives identical tasks; recorded draws re-run exactly; deadlines escalate once.

#![allow(clippy::disallowed_methods)] // tests: events are stamped with wall time for gateways on the system clock

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::FutureExt as _;
use hazchem_bus::Bus;
use hazchem_domain::Department;
use hazchem_enforcement::task::{CommandKind, Duty};
use hazchem_enforcement::{Enforcement, EnforcementConfig, TRANSITIONS, TaskState, draw, wire};
use hazchem_kit::EventSink;
use hazchem_pki::Principal;
use hazchem_proto::v1;
use hazchem_proto::v1::enforcement_service_client::EnforcementServiceClient;
use hazchem_tests::{
    BusKind, TestBus, TestGateway, assert_serving, auditor, delivered_event, dept, error_info,
    next_delivery, service, subscribe_request, violations,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// A target named at opening (in the sample registers, so it is not drawn again).
const NAMED: &str = "91320602MA04MJFYQC";
/// Another registered enterprise (a candidate).
const CANDIDATE: &str = "91320612MA6PUDXHHQ";

const TASK_TYPES: [&str; 11] = [
    "task_opened",
    "task_drawn",
    "task_advanced",
    "task_findings_recorded",
    "task_rectification_ordered",
    "task_rechecked",
    "task_penalty_decided",
    "task_case_transferred",
    "task_transfer_answered",
    "task_closed",
    "task_escalated",
];

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    hazchem_proto::time::timestamp(t)
}

fn fresh_command_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "cmd-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The enforcement service (core, runner, gRPC server) in this process.
struct EnforcementProcess {
    service: Enforcement,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl EnforcementProcess {
    async fn start(config: EnforcementConfig, bus: Bus, sink: EventSink) -> Self {
        let service = Enforcement::from_config(&config, bus, sink).await.unwrap();
        let shutdown = CancellationToken::new();
        let tls = config.server_tls().unwrap();
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(hazchem_enforcement::run_service(
            service.clone(),
            listener,
            tls,
            shutdown.clone(),
        ))
        .map(|joined| joined.unwrap().unwrap());
        EnforcementProcess {
            service,
            addr,
            shutdown,
            task: tokio::spawn(task),
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        // The store closes with the last handle.
        drop(self.service);
    }
}

/// The gateway and the enforcement service on one bus.
struct World {
    gateway: TestGateway,
    enforcement: Option<EnforcementProcess>,
    store: PathBuf,
    tweak: fn(&mut EnforcementConfig),
    channels: Mutex<HashMap<Principal, Channel>>,
    _state: tempfile::TempDir,
}

fn no_tweak(_: &mut EnforcementConfig) {}

impl World {
    async fn start(kind: BusKind) -> World {
        World::start_with(kind, no_tweak).await
    }

    async fn start_with(kind: BusKind, tweak: fn(&mut EnforcementConfig)) -> World {
        let gateway = TestGateway::start(TestBus::new(kind).await).await;
        let state = tempfile::tempdir().unwrap();
        let mut world = World {
            gateway,
            enforcement: None,
            store: state.path().join("enforcement"),
            tweak,
            channels: Mutex::default(),
            _state: state,
        };
        world.start_service().await;
        world
    }

    fn config(&self) -> EnforcementConfig {
        let mut config = EnforcementConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: self.store.clone(),
            tls: Some(self.gateway.pki().server_tls_files()),
            ..EnforcementConfig::default()
        };
        (self.tweak)(&mut config);
        config
    }

    async fn start_service(&mut self) {
        let process = EnforcementProcess::start(
            self.config(),
            self.gateway.bus().bus().clone(),
            self.gateway.sink("enforcement"),
        )
        .await;
        self.enforcement = Some(process);
        self.channels.lock().unwrap().clear();
    }

    async fn stop_service(&mut self) {
        if let Some(process) = self.enforcement.take() {
            process.stop().await;
        }
    }

    async fn restart_service(&mut self) {
        self.stop_service().await;
        self.start_service().await;
    }

    /// Loses the store and starts again: everything is rebuilt from the stream.
    async fn rebuild_service(&mut self) {
        self.stop_service().await;
        std::fs::remove_dir_all(&self.store).unwrap();
        self.start_service().await;
    }

    fn service(&self) -> &Enforcement {
        &self.enforcement.as_ref().unwrap().service
    }

    async fn client_as(&self, principal: &Principal) -> EnforcementServiceClient<Channel> {
        let cached = self.channels.lock().unwrap().get(principal).cloned();
        let channel = match cached {
            Some(c) => c,
            None => {
                let addr = self.enforcement.as_ref().unwrap().addr;
                let c = self.gateway.pki().channel(addr, principal).await;
                self.channels
                    .lock()
                    .unwrap()
                    .insert(principal.clone(), c.clone());
                c
            }
        };
        EnforcementServiceClient::new(channel)
    }

    async fn client(&self, code: &str) -> EnforcementServiceClient<Channel> {
        self.client_as(&dept(code)).await
    }

    async fn last_sequence(&self) -> u64 {
        self.gateway.bus().last_sequence().await
    }

    async fn get(&self, task_id: &str) -> v1::JointTask {
        self.client("fire")
            .await
            .get_task(v1::GetTaskRequest {
                task_id: task_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .task
            .unwrap()
    }

    async fn open(&self, task_id: &str, deadline: DateTime<Utc>) -> Result<v1::JointTask, Status> {
        self.open_with(task_id, &fresh_command_id(), deadline).await
    }

    async fn open_with(
        &self,
        task_id: &str,
        command_id: &str,
        deadline: DateTime<Utc>,
    ) -> Result<v1::JointTask, Status> {
        let request = v1::OpenTaskRequest {
            command_id: command_id.into(),
            task_id: task_id.into(),
            title: "化工园区危险化学品联合检查".into(),
            participants: vec![v1::Department::Fire as i32, v1::Department::Psb as i32],
            targets: vec![v1::EnterpriseRef {
                uscc: NAMED.into(),
                name: "南通示例化工有限公司".into(),
            }],
            legal_basis: Some(v1::LegalBasis {
                instrument: "《危险化学品安全管理条例》".into(),
                article: "第六条".into(),
                version: "2013-12-07".into(),
            }),
            reason: Some(v1::TaskReason {
                reason: Some(v1::task_reason::Reason::Text(
                    "2026年第四季度双随机抽查".into(),
                )),
            }),
            deadline: Some(ts(deadline)),
        };
        Ok(self
            .client("emergency")
            .await
            .open_task(request)
            .await?
            .into_inner()
            .task
            .unwrap())
    }

    /// Issues a command of `kind` (valid content) on `task_id` as `code`.
    async fn command(
        &self,
        kind: CommandKind,
        task_id: &str,
        code: &str,
    ) -> Result<v1::JointTask, Status> {
        self.command_with(kind, task_id, code, &fresh_command_id())
            .await
    }

    async fn command_with(
        &self,
        kind: CommandKind,
        task_id: &str,
        code: &str,
        command_id: &str,
    ) -> Result<v1::JointTask, Status> {
        let mut c = self.client(code).await;
        let (task_id, command_id) = (task_id.to_owned(), command_id.to_owned());
        let now = Utc::now();
        let task = match kind {
            CommandKind::Open => {
                return self
                    .open_with(&task_id, &command_id, now + TimeDelta::days(30))
                    .await;
            }
            CommandKind::Draw => {
                c.draw_task(v1::DrawTaskRequest {
                    command_id,
                    task_id,
                    target_count: 3,
                    inspectors_per_department: 2,
                })
                .await?
                .into_inner()
                .task
            }
            CommandKind::Notify | CommandKind::GoOnSite => {
                c.advance_task(v1::AdvanceTaskRequest {
                    command_id,
                    task_id,
                    to_state: if kind == CommandKind::Notify {
                        v1::TaskState::Notified as i32
                    } else {
                        v1::TaskState::OnSite as i32
                    },
                    note: String::new(),
                })
                .await?
                .into_inner()
                .task
            }
            CommandKind::RecordFindings => {
                c.record_findings(v1::RecordFindingsRequest {
                    command_id,
                    task_id,
                    targets: vec![v1::TargetFindings {
                        uscc: NAMED.into(),
                        findings: vec![v1::Finding {
                            code: "AQ-07".into(),
                            description: "储罐区可燃气体报警器未定期检定".into(),
                            severity: v1::FindingSeverity::Major as i32,
                        }],
                    }],
                    crime_suspected_at: None,
                })
                .await?
                .into_inner()
                .task
            }
            CommandKind::OrderRectification => {
                c.order_rectification(v1::OrderRectificationRequest {
                    command_id,
                    task_id,
                    requirements: "15日内完成检定并报送".into(),
                    deadline: Some(ts(now + TimeDelta::days(15))),
                })
                .await?
                .into_inner()
                .task
            }
            CommandKind::RecordRecheck => {
                c.record_recheck(v1::RecordRecheckRequest {
                    command_id,
                    task_id,
                    passed: true,
                    note: "已整改".into(),
                })
                .await?
                .into_inner()
                .task
            }
            CommandKind::DecidePenalty => {
                c.decide_penalty(v1::DecidePenaltyRequest {
                    penalty: Some(v1::PenaltyDecided {
                        decision_number: format!("通应急罚〔2026〕{command_id}号"),
                        enterprise: Some(v1::EnterpriseRef {
                            uscc: NAMED.into(),
                            name: String::new(),
                        }),
                        reason: "未按规定检定报警装置".into(),
                        fine_yuan: 30_000.0,
                        task_id: task_id.clone(),
                        decided_at: Some(ts(now - TimeDelta::hours(1))),
                    }),
                    command_id,
                    task_id,
                })
                .await?
                .into_inner()
                .task
            }
            CommandKind::TransferCase => {
                c.transfer_case(v1::TransferCaseRequest {
                    command_id,
                    task_id,
                    case_number: "通应急移〔2026〕3号".into(),
                    decided_at: Some(ts(now - TimeDelta::hours(2))),
                    summary: "涉嫌危险作业罪".into(),
                })
                .await?
                .into_inner()
                .task
            }
            CommandKind::AnswerTransfer => {
                c.answer_transfer(v1::AnswerTransferRequest {
                    command_id,
                    task_id,
                    accepted: true,
                    reason: "立案侦查".into(),
                })
                .await?
                .into_inner()
                .task
            }
            CommandKind::Close => {
                c.close_task(v1::CloseTaskRequest {
                    command_id,
                    task_id,
                    summary: "检查结束".into(),
                })
                .await?
                .into_inner()
                .task
            }
        };
        Ok(task.unwrap())
    }

    /// Walks a new task `task_id` along `path` (each command by the lead, or whoever's duty it is).
    async fn walk(&self, task_id: &str, path: &[CommandKind]) -> v1::JointTask {
        let mut task = self
            .open(task_id, Utc::now() + TimeDelta::days(30))
            .await
            .unwrap();
        for kind in path {
            let by = match kind {
                CommandKind::GoOnSite | CommandKind::RecordRecheck => "fire",
                CommandKind::AnswerTransfer => "psb",
                _ => "emergency",
            };
            task = self
                .command(*kind, task_id, by)
                .await
                .unwrap_or_else(|s| panic!("{kind} on {task_id} by {by}: {s:?}"));
        }
        task
    }

    async fn stop(mut self) {
        self.stop_service().await;
        self.gateway.stop().await;
    }
}

use CommandKind as K;

const TO_FINDINGS: [CommandKind; 4] = [K::Draw, K::Notify, K::GoOnSite, K::RecordFindings];

fn path(rest: &[CommandKind]) -> Vec<CommandKind> {
    TO_FINDINGS.iter().chain(rest).copied().collect()
}

fn state(task: &v1::JointTask) -> v1::TaskState {
    v1::TaskState::try_from(task.state).unwrap()
}

fn history_states(task: &v1::JointTask) -> Vec<v1::TaskState> {
    task.history
        .iter()
        .map(|h| v1::TaskState::try_from(h.state).unwrap())
        .collect()
}

fn metadata(status: &Status) -> HashMap<String, String> {
    error_info(status).map(|i| i.metadata).unwrap_or_default()
}

async fn every_path(kind: BusKind) {
    let world = World::start(kind).await;
    let fire = dept("fire");
    let mut events = world
        .gateway
        .subscribe(
            &fire,
            subscribe_request(
                v1::EventFilter {
                    event_types: TASK_TYPES.iter().map(|t| (*t).to_owned()).collect(),
                    ..Default::default()
                },
                None,
            ),
        )
        .await
        .unwrap();
    use v1::TaskState as W;
    let rectified = world
        .walk(
            "t-rectify",
            &path(&[K::OrderRectification, K::RecordRecheck, K::Close]),
        )
        .await;
    let penalised = world
        .walk("t-penalty", &path(&[K::DecidePenalty, K::Close]))
        .await;
    let accepted = world
        .walk(
            "t-accepted",
            &path(&[K::TransferCase, K::AnswerTransfer, K::Close]),
        )
        .await;
    // Rejected by public security, then closed.
    world.walk("t-rejected", &path(&[K::TransferCase])).await;
    let rejected = world
        .client("psb")
        .await
        .answer_transfer(v1::AnswerTransferRequest {
            command_id: fresh_command_id(),
            task_id: "t-rejected".into(),
            accepted: false,
            reason: "不构成犯罪，退回".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(state(&rejected), W::TransferRejected);
    let rejected = world
        .command(K::Close, "t-rejected", "emergency")
        .await
        .unwrap();

    let base = [
        W::Planned,
        W::Drawn,
        W::Notified,
        W::OnSite,
        W::FindingsRecorded,
    ];
    let with = |rest: &[W]| base.iter().chain(rest).copied().collect::<Vec<_>>();
    assert_eq!(
        history_states(&rectified),
        with(&[W::RectificationOrdered, W::Rechecked, W::Closed])
    );
    assert_eq!(
        history_states(&penalised),
        with(&[W::PenaltyDecided, W::Closed])
    );
    assert_eq!(
        history_states(&accepted),
        with(&[W::CaseTransferred, W::TransferAccepted, W::Closed])
    );
    assert_eq!(
        history_states(&rejected),
        with(&[W::CaseTransferred, W::TransferRejected, W::Closed])
    );
    for task in [&rectified, &penalised, &accepted, &rejected] {
        assert_eq!(state(task), W::Closed);
        assert_eq!(task.lead, v1::Department::Emergency as i32);
        assert_eq!(task.targets.len(), 4, "one named and three drawn");
        assert_eq!(task.legal_basis.as_ref().unwrap().article, "第六条");
        let draw = task.draw.as_ref().unwrap();
        assert_eq!(draw.algorithm, "hazchem-draw-v1");
        assert_eq!(draw.inspectors.len(), 3, "emergency, fire, psb");
        assert!(draw.inspectors.iter().all(|p| p.drawn.len() == 2));
        // GetTask says the same as the last command's answer.
        assert_eq!(&world.get(&task.task_id).await, task);
    }
    assert_eq!(history_states(&world.get("t-accepted").await).len(), 8);

    // Coordinators see it live: every history entry came through Subscribe, in stream order.
    let mut expected: Vec<(u64, String)> = [&rectified, &penalised, &accepted, &rejected]
        .iter()
        .flat_map(|t| t.history.iter().map(|h| (h.sequence, h.event_id.clone())))
        .collect();
    expected.sort();
    for (sequence, id) in &expected {
        let delivery = next_delivery(&mut events).await;
        assert_eq!(delivery.sequence, *sequence);
        let event = delivered_event(&delivery);
        assert_eq!(&event.id, id);
        assert_eq!(event.source, "/services/enforcement");
        assert_eq!(
            event.department, 0,
            "published by the service; the actor is in the payload"
        );
        assert_eq!(
            event.legal_basis.as_ref().unwrap().instrument,
            "《危险化学品安全管理条例》"
        );
        let publisher = delivery
            .record
            .unwrap()
            .publisher
            .unwrap()
            .principal
            .unwrap();
        assert_eq!(
            publisher,
            v1::publisher::Principal::Service("enforcement".into())
        );
    }
    // Listing by department, state, target.
    let mut psb = world.client("psb").await;
    let listed = psb
        .list_tasks(v1::ListTasksRequest {
            department: v1::Department::Psb as i32,
            state: v1::TaskState::Closed as i32,
            target_uscc: NAMED.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tasks.len(), 4);
    assert!(listed.tasks.iter().all(|t| t.history.is_empty()));
    let page = psb
        .list_tasks(v1::ListTasksRequest {
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.tasks.len(), 3);
    let rest = psb
        .list_tasks(v1::ListTasksRequest {
            page_size: 3,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.tasks.len(), 1);
    assert!(rest.next_page_token.is_empty());
    let samr = world
        .client("samr")
        .await
        .list_tasks(v1::ListTasksRequest {
            department: v1::Department::Samr as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(samr.tasks.is_empty(), "samr takes part in none");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_path_embedded() {
    every_path(BusKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_path_jetstream() {
    every_path(BusKind::JetStream).await;
}

/// Who may issue `kind` on the test tasks (lead emergency; participants psb and fire, in that order).
fn allowed(duty: Duty) -> Vec<Department> {
    use Department::{Emergency, Fire, Psb};
    match duty {
        Duty::AnyDepartment => Department::ALL.to_vec(),
        Duty::Lead => vec![Emergency],
        Duty::LeadOrParticipants => vec![Emergency, Psb, Fire],
        Duty::LeadOrParticipantsButPsb => vec![Emergency, Fire],
        Duty::PublicSecurity => vec![Psb],
    }
}

/// Every command in every state by every department: what the table forbids is refused with the state and
/// the departments named, and nothing is appended or changed.
#[tokio::test(flavor = "multi_thread")]
async fn every_illegal_transition_is_refused_and_changes_nothing() {
    let world = World::start(BusKind::Embedded).await;
    let addr = world.enforcement.as_ref().unwrap().addr;
    assert_serving(
        world.gateway.pki().channel(addr, &dept("fire")).await,
        &["hazchem.v1.EnforcementService"],
    )
    .await;
    let paths: Vec<(TaskState, Vec<CommandKind>)> = vec![
        (TaskState::Planned, vec![]),
        (TaskState::Drawn, vec![K::Draw]),
        (TaskState::Notified, vec![K::Draw, K::Notify]),
        (TaskState::OnSite, vec![K::Draw, K::Notify, K::GoOnSite]),
        (TaskState::FindingsRecorded, path(&[])),
        (
            TaskState::RectificationOrdered,
            path(&[K::OrderRectification]),
        ),
        (
            TaskState::Rechecked,
            path(&[K::OrderRectification, K::RecordRecheck]),
        ),
        (TaskState::PenaltyDecided, path(&[K::DecidePenalty])),
        (TaskState::CaseTransferred, path(&[K::TransferCase])),
        (
            TaskState::TransferAccepted,
            path(&[K::TransferCase, K::AnswerTransfer]),
        ),
        (TaskState::Closed, path(&[K::Close])),
    ];
    let mut tasks = Vec::new();
    for (i, (expected, path)) in paths.iter().enumerate() {
        let id = format!("t-state-{i}");
        let task = world.walk(&id, path).await;
        assert_eq!(
            wire::state_from_proto(task.state),
            Some(*expected),
            "{id} walked to {expected}"
        );
        tasks.push((id, *expected, task));
    }
    // One connection per department, made before the concurrent attempts share them.
    for d in Department::ALL {
        world.client(d.code()).await;
    }
    let before = world.last_sequence().await;
    let mut refused = 0;
    for (id, current, snapshot) in &tasks {
        let status = world.command(K::Open, id, "emergency").await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert_eq!(error_info(&status).unwrap().reason, "TASK_EXISTS");
        // Every forbidden (command, department) on this task, issued concurrently.
        let attempts: Vec<_> = TRANSITIONS
            .iter()
            .filter(|row| row.command != K::Open)
            .flat_map(|row| Department::ALL.into_iter().map(move |d| (row, d)))
            .filter(|(row, d)| !(allowed(row.duty).contains(d) && row.from.contains(current)))
            .collect();
        let results = futures::future::join_all(
            attempts
                .iter()
                .map(|(row, d)| world.command(row.command, id, d.code())),
        )
        .await;
        for ((row, department), result) in attempts.iter().zip(results) {
            let departments = allowed(row.duty);
            let permitted = departments.contains(department);
            let status = result.unwrap_err();
            refused += 1;
            let meta = metadata(&status);
            let codes: Vec<&str> = departments.iter().map(|d| d.code()).collect();
            assert_eq!(
                meta["current_state"],
                wire::state_wire_name(*current),
                "{status:?}"
            );
            assert_eq!(meta["allowed_departments"], codes.join(","), "{status:?}");
            assert!(status.message().contains(current.name()), "{status:?}");
            for code in &codes {
                assert!(status.message().contains(code), "{status:?}");
            }
            if !permitted {
                assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
                assert_eq!(meta["department"], department.code());
                assert_eq!(
                    error_info(&status).unwrap().reason,
                    "TASK_DUTY_NOT_PERMITTED"
                );
            } else {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                let states: Vec<&str> =
                    row.from.iter().map(|s| wire::state_wire_name(*s)).collect();
                assert_eq!(meta["allowed_from_states"], states.join(","));
                let failure = status
                    .get_error_details()
                    .precondition_failure()
                    .cloned()
                    .unwrap();
                assert_eq!(failure.violations[0].r#type, "TASK_STATE");
                assert_eq!(failure.violations[0].subject, format!("tasks/{id}"));
            }
        }
        assert_eq!(&world.get(id).await, snapshot, "refusals change nothing");
    }
    assert!(refused > 500, "{refused} refusals checked");
    assert_eq!(
        world.last_sequence().await,
        before,
        "refusals append nothing"
    );

    // Services and auditors query but do not command.
    for principal in [service("warning"), auditor()] {
        let status = world
            .client_as(&principal)
            .await
            .close_task(v1::CloseTaskRequest {
                command_id: fresh_command_id(),
                task_id: "t-state-4".into(),
                summary: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(error_info(&status).unwrap().reason, "DEPARTMENT_REQUIRED");
        world
            .client_as(&principal)
            .await
            .get_task(v1::GetTaskRequest {
                task_id: "t-state-4".into(),
            })
            .await
            .unwrap();
    }
    // Unknown task, invalid content, a suspected crime blocks closing until the transfer.
    let status = world
        .command(K::Close, "t-nowhere", "emergency")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = world
        .client("emergency")
        .await
        .draw_task(v1::DrawTaskRequest {
            command_id: fresh_command_id(),
            task_id: "t-state-0".into(),
            target_count: 3,
            inspectors_per_department: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [("inspectors_per_department".to_owned(), "min".to_owned())]
    );
    world
        .walk("t-crime", &[K::Draw, K::Notify, K::GoOnSite])
        .await;
    let status = world
        .client("fire")
        .await
        .record_findings(v1::RecordFindingsRequest {
            command_id: fresh_command_id(),
            task_id: "t-crime".into(),
            targets: vec![],
            crime_suspected_at: Some(ts(Utc::now() - TimeDelta::minutes(5))),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violations(&status),
        [("targets".to_owned(), "required".to_owned())]
    );
    world
        .client("fire")
        .await
        .record_findings(v1::RecordFindingsRequest {
            command_id: fresh_command_id(),
            task_id: "t-crime".into(),
            targets: vec![v1::TargetFindings {
                uscc: NAMED.into(),
                findings: vec![],
            }],
            crime_suspected_at: Some(ts(Utc::now() - TimeDelta::minutes(5))),
        })
        .await
        .unwrap();
    let before = world.last_sequence().await;
    let status = world
        .command(K::Close, "t-crime", "emergency")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_info(&status).unwrap().reason, "TRANSFER_REQUIRED");
    assert_eq!(world.last_sequence().await, before);
    world
        .command(K::TransferCase, "t-crime", "fire")
        .await
        .unwrap();
    world
        .command(K::AnswerTransfer, "t-crime", "psb")
        .await
        .unwrap();
    world
        .command(K::Close, "t-crime", "emergency")
        .await
        .unwrap();
    world.stop().await;
}

async fn idempotent_and_rebuilt(kind: BusKind) {
    let mut world = World::start(kind).await;
    let deadline = Utc::now() + TimeDelta::days(30);
    let opened = world.open_with("t-idem", "open-1", deadline).await.unwrap();
    let after_open = world.last_sequence().await;
    // A retry of the same command: the same task, nothing appended.
    let again = world.open_with("t-idem", "open-1", deadline).await.unwrap();
    assert_eq!(again, opened);
    assert_eq!(world.last_sequence().await, after_open);
    // The same command id for something else is refused.
    let status = world
        .open_with("t-idem", "open-1", deadline + TimeDelta::days(1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(error_info(&status).unwrap().reason, "COMMAND_ID_REUSED");
    let status = world
        .command_with(K::Draw, "t-idem", "emergency", "open-1")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    world.walk("t-other", &[]).await;
    let drawn = world
        .command_with(K::Draw, "t-idem", "emergency", "draw-1")
        .await
        .unwrap();
    world
        .command(K::Notify, "t-idem", "emergency")
        .await
        .unwrap();
    world.command(K::GoOnSite, "t-idem", "fire").await.unwrap();
    // Command ids are the department's own: fire may use the id emergency used.
    world
        .command_with(K::RecordFindings, "t-idem", "fire", "open-1")
        .await
        .unwrap();
    world
        .walk("t-closed", &path(&[K::DecidePenalty, K::Close]))
        .await;
    let last = world.last_sequence().await;

    let snapshot = |world: &World| {
        let service = world.service().clone();
        async move {
            let (tasks, _) = service.tasks(
                &hazchem_enforcement::TaskQuery {
                    limit: 1000,
                    ..Default::default()
                },
                Utc::now(),
            );
            tasks
        }
    };
    let mut grpc = Vec::new();
    for id in ["t-idem", "t-other", "t-closed"] {
        grpc.push(world.get(id).await);
    }
    let tasks = snapshot(&world).await;
    assert_eq!(tasks.len(), 3);

    // Restart on the same store: the same tasks, and retries still answered without new events.
    world.restart_service().await;
    assert_eq!(snapshot(&world).await, tasks);
    let retried = world
        .command_with(K::Draw, "t-idem", "emergency", "draw-1")
        .await
        .unwrap();
    assert_eq!(retried.draw, drawn.draw, "the same draw, not a new one");
    assert_eq!(world.last_sequence().await, last);

    // Lose the store: rebuilt from the stream, identical, and the command ids are still known.
    world.rebuild_service().await;
    world.service().caught_up().await.unwrap();
    assert_eq!(snapshot(&world).await, tasks);
    for (id, before) in ["t-idem", "t-other", "t-closed"].iter().zip(&grpc) {
        let mut now = world.get(id).await;
        let mut before = before.clone();
        // `overdue` is computed at the time of the query; none of these is overdue either way.
        now.overdue = false;
        before.overdue = false;
        assert_eq!(now, before, "{id} rebuilt identically");
    }
    let again = world.open_with("t-idem", "open-1", deadline).await.unwrap();
    assert_eq!(again.task_id, "t-idem");
    world
        .command_with(K::RecordFindings, "t-idem", "fire", "open-1")
        .await
        .unwrap();
    assert_eq!(world.last_sequence().await, last);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_commands_and_identical_rebuild_embedded() {
    idempotent_and_rebuilt(BusKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_commands_and_identical_rebuild_jetstream() {
    idempotent_and_rebuilt(BusKind::JetStream).await;
}

/// The draw is weighted by what the record says (a credit listing) and re-runs exactly from the record;
/// changing one candidate changes the redraw.
#[tokio::test(flavor = "multi_thread")]
async fn recorded_draws_rerun_exactly_and_sanctions_weigh() {
    let world = World::start(BusKind::Embedded).await;
    // Emergency lists a registered enterprise as seriously dishonest (signed, as the policy requires).
    let mut listing = hazchem_tests::fresh("credit_listing_decided");
    if let Some(v1::event::Payload::CreditListingDecided(l)) = &mut listing.payload {
        l.enterprise.as_mut().unwrap().uscc = CANDIDATE.into();
        l.listing_id = "CL-TEST-1".into();
    }
    listing.subject = CANDIDATE.into();
    world.gateway.publish_event(&listing).await.unwrap();

    let task = world.walk("t-draw", &[K::Draw]).await;
    let drawn = task.draw.clone().unwrap();
    let weight = |u: &str| drawn.candidates.iter().find(|c| c.uscc == u).unwrap();
    assert_eq!(weight(CANDIDATE).weight, 3);
    assert_eq!(weight(CANDIDATE).factors, ["credit_listed"]);
    assert!(
        drawn.candidates.iter().all(|c| c.uscc != NAMED),
        "a named target is not a candidate"
    );

    let record = wire::draw_from_proto(&drawn).unwrap();
    let redrawn = draw::verify(&record).expect("the recorded draw re-runs exactly");
    assert_eq!(redrawn.drawn_targets, record.drawn_targets);

    // Change one candidate: the first enterprise drawn becomes one that was not a candidate at all.
    let mut altered = drawn.clone();
    let victim = altered.drawn_targets[0].clone();
    let stranger = hazchem_domain::Uscc::with_check("91320699MA0000001")
        .unwrap()
        .to_string();
    assert!(drawn.candidates.iter().all(|c| c.uscc != stranger));
    altered
        .candidates
        .iter_mut()
        .find(|c| c.uscc == victim)
        .unwrap()
        .uscc = stranger;
    altered.candidates.sort_by(|a, b| a.uscc.cmp(&b.uscc));
    let altered = wire::draw_from_proto(&altered).unwrap();
    let rerun = draw::redraw(&altered).unwrap();
    assert_ne!(rerun.drawn_targets, record.drawn_targets);
    let problems = draw::verify(&altered).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, draw::Discrepancy::Targets { .. })),
        "{problems:?}"
    );
    world.stop().await;
}

/// Deadlines escalate, once each: a transfer not sent within 24 h, a transfer not answered, an overdue
/// task. The escalations come through Subscribe like everything else and survive a rebuild. A hostile
/// department that squats the escalations' ids beforehand (they are computed from public data) changes
/// nothing the enforcement service publishes.
#[tokio::test(flavor = "multi_thread")]
async fn deadlines_escalate_once() {
    use hazchem_enforcement::task::EscalationReason as R;
    fn fast(config: &mut EnforcementConfig) {
        config.escalation_interval = Duration::from_millis(100);
        config.transfer_answer_period = Duration::from_secs(1);
    }
    let mut world = World::start_with(BusKind::Embedded, fast).await;
    let escalation_ids = [
        hazchem_enforcement::escalation_event_id("t-late", R::TransferLate),
        hazchem_enforcement::escalation_event_id("t-late", R::TransferUnanswered),
        hazchem_enforcement::escalation_event_id("t-overdue", R::Overdue),
    ];
    for squatted in &escalation_ids {
        let mut waybill = hazchem_tests::fresh("waybill_issued");
        waybill.id = squatted.clone();
        let accepted = world.gateway.publish_event(&waybill).await.unwrap();
        assert!(!accepted.duplicate, "{squatted}: {accepted:?}");
    }
    world.walk("t-late", &TO_FINDINGS).await;
    // The crime was suspected 30 hours ago: the transfer is late even as it is sent.
    world
        .client("emergency")
        .await
        .transfer_case(v1::TransferCaseRequest {
            command_id: fresh_command_id(),
            task_id: "t-late".into(),
            case_number: "通应急移〔2026〕9号".into(),
            decided_at: Some(ts(Utc::now() - TimeDelta::hours(30))),
            summary: String::new(),
        })
        .await
        .unwrap();
    world
        .open("t-overdue", Utc::now() + TimeDelta::milliseconds(700))
        .await
        .unwrap();

    let escalations = |task: &v1::JointTask| -> Vec<String> {
        task.history
            .iter()
            .filter(|h| h.summary.starts_with("escalated"))
            .map(|h| h.summary.clone())
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let late = world.get("t-late").await;
        let overdue = world.get("t-overdue").await;
        if escalations(&late).len() == 2 && escalations(&overdue).len() == 1 {
            assert!(overdue.overdue);
            assert!(escalations(&late)[0].contains("transfer_late"), "{late:?}");
            assert!(
                escalations(&late)[1].contains("transfer_unanswered"),
                "{late:?}"
            );
            assert!(escalations(&overdue)[0].contains("overdue"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "escalations missing: {late:?} {overdue:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few more checks raise nothing more.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let records = world.gateway.bus().records().await;
    let escalated: Vec<&hazchem_tests::StoredEvent> = records
        .iter()
        .filter(|r| r.subject.contains(".task_escalated."))
        .collect();
    assert_eq!(escalated.len(), 3, "each escalation once");
    // Each under its own id, in the service's namespace, beside the squatter's waybill.
    for id in &escalation_ids {
        assert!(
            escalated
                .iter()
                .any(|e| e.subject == format!("hazchem.ev.enforcement.task_escalated.{id}")),
            "{id}"
        );
        assert!(
            records
                .iter()
                .any(|r| r.subject == format!("hazchem.ev.transport.waybill_issued.{id}"))
        );
    }
    for e in &escalated {
        let Some(v1::event::Payload::TaskEscalated(x)) = &e.event.payload else {
            panic!("not an escalation");
        };
        assert!(!x.addressed_to.is_empty());
    }
    let listed = world
        .client("fire")
        .await
        .list_tasks(v1::ListTasksRequest {
            overdue_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .tasks
            .iter()
            .map(|t| t.task_id.as_str())
            .collect::<Vec<_>>(),
        ["t-overdue"]
    );
    // Rebuilt from the stream, the escalations are known and are not raised again.
    let before = world.get("t-late").await;
    world.rebuild_service().await;
    world.service().caught_up().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.get("t-late").await, before);
    assert_eq!(
        world
            .gateway
            .bus()
            .records()
            .await
            .iter()
            .filter(|r| r.subject.contains(".task_escalated."))
            .count(),
        3
    );
    world.stop().await;
}
