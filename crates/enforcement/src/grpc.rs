//! The gRPC `EnforcementService`: authenticates each call (mTLS client certificate; the caller's department
//! is the actor of its commands), checks each request by the contract's field rules, converts it into a
//! domain [`Request`], and maps every error to a status in one place ([`status`]).
//!
//! | error | code | details |
//! | --- | --- | --- |
//! | invalid request (contract rules, content) | `INVALID_ARGUMENT` | `BadRequest`, `ErrorInfo` `FIELD_VIOLATIONS` |
//! | not the caller's duty | `PERMISSION_DENIED` | `ErrorInfo` `TASK_DUTY_NOT_PERMITTED` {task_id, command, department, current_state, allowed_departments} |
//! | wrong state | `FAILED_PRECONDITION` | `PreconditionFailure` `TASK_STATE`, `ErrorInfo` `TASK_STATE_NOT_ALLOWED` {task_id, command, current_state, allowed_from_states, allowed_departments} |
//! | closing before a suspected crime is transferred | `FAILED_PRECONDITION` | `PreconditionFailure` and `ErrorInfo` `TRANSFER_REQUIRED` |
//! | no such task | `NOT_FOUND` | `ErrorInfo` `TASK_NOT_FOUND` |
//! | task id taken; command id reused for another command | `ALREADY_EXISTS` | `ErrorInfo` `TASK_EXISTS` / `COMMAND_ID_REUSED` |
//! | not caught up, stopped, store failing | `UNAVAILABLE` | |
//!
//! States in metadata are the contract's names (`TASK_STATE_ON_SITE`), lists are comma-separated,
//! departments are codes. Any authenticated principal may query; only departments issue commands.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hazchem_admission::ERROR_DOMAIN;
use hazchem_domain::Department;
use hazchem_pki::{Principal, ServerTls, authenticate};
use hazchem_proto::v1;
use hazchem_proto::v1::enforcement_service_server::{EnforcementService, EnforcementServiceServer};
use prost_reflect::DynamicMessage;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};

use crate::error::{Error, Result};
use crate::service::{Enforcement, TaskQuery};
use crate::task::{self, Command, OpenTask, Refusal, Task, Violation};
use crate::wire::{self, Violations};

/// Default and largest page of `ListTasks`.
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> String {
    items.iter().map(name).collect::<Vec<_>>().join(",")
}

fn invalid(violations: &[Violation]) -> Status {
    let mut details = ErrorDetails::new();
    details.set_bad_request(
        violations
            .iter()
            .map(|v| FieldViolation {
                field: v.field.clone(),
                description: v.description.clone(),
                reason: v.rule.clone(),
                localized_message: None,
            })
            .collect::<Vec<_>>(),
    );
    let rules: Vec<&str> = violations.iter().map(|v| v.rule.as_str()).collect();
    details.set_error_info(
        "FIELD_VIOLATIONS",
        ERROR_DOMAIN,
        HashMap::from([
            ("violations".to_owned(), violations.len().to_string()),
            ("rules".to_owned(), rules.join(",")),
        ]),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        Refusal::Invalid(violations.to_vec()).to_string(),
        details,
    )
}

/// The one conversion of the service's errors into statuses.
pub fn status(error: Error) -> Status {
    let message = error.to_string();
    let info = |code: Code, reason: &str, metadata: Vec<(&str, String)>| {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            reason,
            ERROR_DOMAIN,
            metadata
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<HashMap<_, _>>(),
        );
        (code, details)
    };
    let (code, details) = match error {
        Error::Refused(refusal) => match refusal {
            Refusal::Invalid(violations) => return invalid(&violations),
            Refusal::NotFound { task_id } => {
                info(Code::NotFound, "TASK_NOT_FOUND", vec![("task_id", task_id)])
            }
            Refusal::TaskExists { task_id, lead } => info(
                Code::AlreadyExists,
                "TASK_EXISTS",
                vec![("task_id", task_id), ("lead", lead.code().to_owned())],
            ),
            Refusal::WrongState {
                task_id,
                command,
                current,
                allowed_from,
                allowed_departments,
                ..
            } => {
                let (code, mut details) = info(
                    Code::FailedPrecondition,
                    "TASK_STATE_NOT_ALLOWED",
                    vec![
                        ("task_id", task_id.clone()),
                        ("command", command.name().to_owned()),
                        ("current_state", wire::state_wire_name(current).to_owned()),
                        (
                            "allowed_from_states",
                            names(&allowed_from, |s| wire::state_wire_name(*s)),
                        ),
                        (
                            "allowed_departments",
                            names(&allowed_departments, |d| d.code()),
                        ),
                    ],
                );
                details.add_precondition_failure_violation(
                    "TASK_STATE",
                    format!("tasks/{task_id}"),
                    message.clone(),
                );
                (code, details)
            }
            Refusal::NotPermitted {
                task_id,
                command,
                department,
                current,
                allowed_departments,
                ..
            } => info(
                Code::PermissionDenied,
                "TASK_DUTY_NOT_PERMITTED",
                vec![
                    ("task_id", task_id),
                    ("command", command.name().to_owned()),
                    ("department", department.code().to_owned()),
                    ("current_state", wire::state_wire_name(current).to_owned()),
                    (
                        "allowed_departments",
                        names(&allowed_departments, |d| d.code()),
                    ),
                ],
            ),
            Refusal::Blocked {
                task_id,
                command,
                current,
                condition,
                ..
            } => {
                let (code, mut details) = info(
                    Code::FailedPrecondition,
                    condition,
                    vec![
                        ("task_id", task_id.clone()),
                        ("command", command.name().to_owned()),
                        ("current_state", wire::state_wire_name(current).to_owned()),
                    ],
                );
                details.add_precondition_failure_violation(
                    condition,
                    format!("tasks/{task_id}"),
                    message.clone(),
                );
                (code, details)
            }
        },
        Error::CommandIdReused {
            department,
            command_id,
            task_id,
        } => {
            let (code, mut details) = info(
                Code::AlreadyExists,
                "COMMAND_ID_REUSED",
                vec![
                    ("department", department.code().to_owned()),
                    ("command_id", command_id),
                    ("task_id", task_id),
                ],
            );
            details.add_bad_request_violation("command_id", message.clone());
            (code, details)
        }
        Error::Publish(error) => return error.into(),
        Error::Unavailable(_) | Error::Storage(_) | Error::Io { .. } | Error::Bus(_) => {
            return Status::unavailable(message);
        }
        _ => return Status::internal(message),
    };
    Status::with_error_details(code, message, details)
}

/// Checks a request by the contract's field rules (`not_future` against `now`, the service's clock).
fn check_rules<M: prost::Message + prost::Name>(
    request: &M,
    now: DateTime<Utc>,
) -> Result<(), Status> {
    let descriptor = hazchem_proto::message(&M::full_name())
        .ok_or_else(|| Status::internal(format!("{} is not in the contract", M::full_name())))?;
    let mut dynamic = DynamicMessage::new(descriptor);
    dynamic
        .transcode_from(request)
        .map_err(|e| Status::internal(format!("transcoding the request: {e}")))?;
    let report = hazchem_admission::validate::validate(
        &dynamic,
        now,
        hazchem_admission::DEFAULT_MAX_CLOCK_SKEW,
    );
    if report.is_valid() {
        return Ok(());
    }
    let violations: Vec<Violation> = report
        .violations
        .into_iter()
        .map(|v| Violation {
            field: v.field,
            rule: v.rule,
            description: v.description,
        })
        .collect();
    Err(invalid(&violations))
}

/// The department issuing a command.
fn actor<T>(request: &Request<T>) -> Result<Department, Status> {
    match authenticate(request)? {
        Principal::Department(d) => Ok(d),
        other => {
            let mut details = ErrorDetails::new();
            details.set_error_info(
                "DEPARTMENT_REQUIRED",
                ERROR_DOMAIN,
                HashMap::from([("principal".to_owned(), other.uri())]),
            );
            Err(Status::with_error_details(
                Code::PermissionDenied,
                format!("{other} may query tasks, but only departments issue task commands"),
                details,
            ))
        }
    }
}

/// Runs the service (follows the stream, checks deadlines) and serves it over gRPC until `shutdown`; if
/// either stops, both do.
pub async fn run_service(
    service: Enforcement,
    listener: TcpListener,
    tls: ServerTls,
    shutdown: CancellationToken,
) -> Result<()> {
    let server = EnforcementServer::new(service.clone());
    hazchem_kit::run_together(
        &shutdown,
        |stop| async move { server.serve(listener, &tls, stop).await },
        |stop| service.run(stop),
    )
    .await
}

/// The gRPC face of an [`Enforcement`] service.
#[derive(Debug, Clone)]
pub struct EnforcementServer {
    service: Enforcement,
}

impl EnforcementServer {
    pub fn new(service: Enforcement) -> Self {
        EnforcementServer { service }
    }

    /// Now, by the service's clock.
    fn now(&self) -> DateTime<Utc> {
        self.service.clock().now()
    }

    /// Serves `EnforcementService` over mTLS until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: &ServerTls,
        shutdown: CancellationToken,
    ) -> Result<()> {
        hazchem_kit::serve_grpc(
            "enforcement service",
            Routes::new(EnforcementServiceServer::new(self)),
            &[EnforcementServiceServer::<EnforcementServer>::NAME],
            listener,
            tls,
            shutdown,
        )
        .await
        .map_err(Error::from)
    }

    /// Runs a converted command; conversion violations refuse it before anything else.
    async fn execute(
        &self,
        actor: Department,
        command_id: String,
        task_id: String,
        violations: Violations,
        command: Option<Command>,
    ) -> Result<Option<v1::JointTask>, Status> {
        let command = violations
            .finish(command)
            .map_err(|v| invalid(&v))?
            .ok_or_else(|| Status::internal("a command without violations was not built"))?;
        let task = self
            .service
            .execute(task::Request {
                task_id,
                command_id,
                actor,
                command,
            })
            .await
            .map_err(status)?;
        Ok(Some(joint(&task, self.now())))
    }
}

/// A task as answered, its `overdue` as of `now`.
fn joint(task: &Task, now: DateTime<Utc>) -> v1::JointTask {
    wire::joint_task(task, now, true)
}

#[tonic::async_trait]
impl EnforcementService for EnforcementServer {
    async fn open_task(
        &self,
        request: Request<v1::OpenTaskRequest>,
    ) -> Result<Response<v1::OpenTaskResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let mut v = Violations::default();
        let participants = r
            .participants
            .iter()
            .enumerate()
            .filter_map(|(i, d)| wire::department(*d, &format!("participants[{i}]"), &mut v))
            .collect();
        let deadline = wire::instant(r.deadline.as_ref(), "deadline", &mut v);
        let command = deadline.map(|deadline| {
            Command::Open(OpenTask {
                title: r.title.clone(),
                participants,
                targets: wire::enterprises(&r.targets, "targets", &mut v),
                legal_basis: wire::legal_basis(r.legal_basis.as_ref(), "legal_basis", &mut v),
                reason: wire::reason(r.reason.as_ref(), "reason", &mut v),
                deadline,
            })
        });
        let task = self
            .execute(actor, r.command_id, r.task_id, v, command)
            .await?;
        Ok(Response::new(v1::OpenTaskResponse { task }))
    }

    async fn draw_task(
        &self,
        request: Request<v1::DrawTaskRequest>,
    ) -> Result<Response<v1::DrawTaskResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let command = Command::Draw {
            target_count: r.target_count,
            inspectors_per_department: r.inspectors_per_department,
        };
        let task = self
            .execute(
                actor,
                r.command_id,
                r.task_id,
                Violations::default(),
                Some(command),
            )
            .await?;
        Ok(Response::new(v1::DrawTaskResponse { task }))
    }

    async fn advance_task(
        &self,
        request: Request<v1::AdvanceTaskRequest>,
    ) -> Result<Response<v1::AdvanceTaskResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let mut v = Violations::default();
        let to = wire::state_from_proto(r.to_state);
        if to.is_none() {
            v.push("to_state", "enum.undefined", "not a task state");
        }
        let command = to.map(|to| Command::Advance { to, note: r.note });
        let task = self
            .execute(actor, r.command_id, r.task_id, v, command)
            .await?;
        Ok(Response::new(v1::AdvanceTaskResponse { task }))
    }

    async fn record_findings(
        &self,
        request: Request<v1::RecordFindingsRequest>,
    ) -> Result<Response<v1::RecordFindingsResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let mut v = Violations::default();
        let targets = wire::findings(&r.targets, "targets", &mut v);
        let crime_suspected_at = r
            .crime_suspected_at
            .as_ref()
            .and_then(|t| wire::instant(Some(t), "crime_suspected_at", &mut v));
        let command = Command::RecordFindings {
            targets,
            crime_suspected_at,
        };
        let task = self
            .execute(actor, r.command_id, r.task_id, v, Some(command))
            .await?;
        Ok(Response::new(v1::RecordFindingsResponse { task }))
    }

    async fn order_rectification(
        &self,
        request: Request<v1::OrderRectificationRequest>,
    ) -> Result<Response<v1::OrderRectificationResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let mut v = Violations::default();
        let command = wire::instant(r.deadline.as_ref(), "deadline", &mut v).map(|deadline| {
            Command::OrderRectification {
                requirements: r.requirements.clone(),
                deadline,
            }
        });
        let task = self
            .execute(actor, r.command_id, r.task_id, v, command)
            .await?;
        Ok(Response::new(v1::OrderRectificationResponse { task }))
    }

    async fn record_recheck(
        &self,
        request: Request<v1::RecordRecheckRequest>,
    ) -> Result<Response<v1::RecordRecheckResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let command = Command::RecordRecheck {
            passed: r.passed,
            note: r.note,
        };
        let task = self
            .execute(
                actor,
                r.command_id,
                r.task_id,
                Violations::default(),
                Some(command),
            )
            .await?;
        Ok(Response::new(v1::RecordRecheckResponse { task }))
    }

    async fn decide_penalty(
        &self,
        request: Request<v1::DecidePenaltyRequest>,
    ) -> Result<Response<v1::DecidePenaltyResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let mut v = Violations::default();
        let command = wire::penalty(r.penalty.as_ref(), &r.task_id, "penalty", &mut v)
            .map(Command::DecidePenalty);
        let task = self
            .execute(actor, r.command_id, r.task_id, v, command)
            .await?;
        Ok(Response::new(v1::DecidePenaltyResponse { task }))
    }

    async fn transfer_case(
        &self,
        request: Request<v1::TransferCaseRequest>,
    ) -> Result<Response<v1::TransferCaseResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let mut v = Violations::default();
        let command =
            wire::instant(r.decided_at.as_ref(), "decided_at", &mut v).map(|decided_at| {
                Command::TransferCase {
                    case_number: r.case_number.clone(),
                    decided_at,
                    summary: r.summary.clone(),
                }
            });
        let task = self
            .execute(actor, r.command_id, r.task_id, v, command)
            .await?;
        Ok(Response::new(v1::TransferCaseResponse { task }))
    }

    async fn answer_transfer(
        &self,
        request: Request<v1::AnswerTransferRequest>,
    ) -> Result<Response<v1::AnswerTransferResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let command = Command::AnswerTransfer {
            accepted: r.accepted,
            reason: r.reason,
        };
        let task = self
            .execute(
                actor,
                r.command_id,
                r.task_id,
                Violations::default(),
                Some(command),
            )
            .await?;
        Ok(Response::new(v1::AnswerTransferResponse { task }))
    }

    async fn close_task(
        &self,
        request: Request<v1::CloseTaskRequest>,
    ) -> Result<Response<v1::CloseTaskResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let command = Command::Close { summary: r.summary };
        let task = self
            .execute(
                actor,
                r.command_id,
                r.task_id,
                Violations::default(),
                Some(command),
            )
            .await?;
        Ok(Response::new(v1::CloseTaskResponse { task }))
    }

    async fn get_task(
        &self,
        request: Request<v1::GetTaskRequest>,
    ) -> Result<Response<v1::GetTaskResponse>, Status> {
        authenticate(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let task = self.service.task(&r.task_id).ok_or_else(|| {
            status(Error::Refused(Refusal::NotFound {
                task_id: r.task_id.clone(),
            }))
        })?;
        Ok(Response::new(v1::GetTaskResponse {
            task: Some(joint(&task, self.now())),
        }))
    }

    async fn list_tasks(
        &self,
        request: Request<v1::ListTasksRequest>,
    ) -> Result<Response<v1::ListTasksResponse>, Status> {
        authenticate(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let mut v = Violations::default();
        let department = (r.department != 0)
            .then(|| wire::department(r.department, "department", &mut v))
            .flatten();
        let state = (r.state != 0)
            .then(|| {
                let s = wire::state_from_proto(r.state);
                if s.is_none() {
                    v.push("state", "enum.undefined", "not a task state");
                }
                s
            })
            .flatten();
        let target = (!r.target_uscc.is_empty())
            .then(|| wire::uscc(&r.target_uscc, "target_uscc", &mut v))
            .flatten();
        v.finish(()).map_err(|v| invalid(&v))?;
        let limit = match r.page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let query = TaskQuery {
            department,
            state,
            target,
            overdue_only: r.overdue_only,
            after: (!r.page_token.is_empty()).then_some(r.page_token),
            limit,
        };
        let now = self.now();
        let (tasks, more) = self.service.tasks(&query, now);
        let next_page_token = if more {
            tasks.last().map(|t| t.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListTasksResponse {
            tasks: tasks
                .iter()
                .map(|t| wire::joint_task(t, now, false))
                .collect(),
            next_page_token,
        }))
    }
}
