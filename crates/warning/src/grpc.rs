//! The gRPC `WarningService`: authenticates each call (mTLS client certificate), checks each request by
//! the contract's field rules, and maps every error to a status in one place ([`status`]).
//!
//! | error | code | details |
//! | --- | --- | --- |
//! | invalid request (contract rules) | `INVALID_ARGUMENT` | `BadRequest`, `ErrorInfo` `FIELD_VIOLATIONS` |
//! | no such warning (or not visible to the caller) | `NOT_FOUND` | `BadRequest` on `warning_id`, `ErrorInfo` `WARNING_NOT_FOUND` |
//! | not addressed to the caller | `PERMISSION_DENIED` | `ErrorInfo` `WARNING_NOT_ADDRESSED` {warning_id, department, action, addressed_to, may_acknowledge, may_close} |
//! | not a department | `PERMISSION_DENIED` | `ErrorInfo` `DEPARTMENT_REQUIRED` |
//! | closed | `FAILED_PRECONDITION` | `PreconditionFailure` `WARNING_STATE`, `ErrorInfo` `WARNING_CLOSED` |
//! | acknowledged already by the caller | `FAILED_PRECONDITION` | `PreconditionFailure` `WARNING_STATE`, `ErrorInfo` `WARNING_ALREADY_ACKNOWLEDGED` |
//! | not caught up, stopped, store failing | `UNAVAILABLE` | |

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hazchem_admission::ERROR_DOMAIN;
use hazchem_domain::Department;
use hazchem_pki::{Principal, ServerTls, authenticate};
use hazchem_proto::v1;
use hazchem_proto::v1::warning_service_server::{WarningService, WarningServiceServer};
use prost_reflect::DynamicMessage;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::error::{Error, Result, codes};
use crate::rules::Level;
use crate::service::{WarningQuery, Warnings};
use crate::state::{State, Warning};

pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

fn invalid(violations: Vec<hazchem_admission::FieldViolation>) -> Status {
    Status::from(hazchem_admission::Rejection::Invalid(violations))
}

fn dept_list(list: &[Department]) -> Vec<i32> {
    list.iter()
        .map(|d| v1::Department::from(*d) as i32)
        .collect()
}

/// The one conversion of the service's errors into statuses.
pub fn status(error: Error) -> Status {
    let message = error.to_string();
    let info = |reason: &str, metadata: Vec<(&str, String)>| {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            reason,
            ERROR_DOMAIN,
            metadata
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<HashMap<_, _>>(),
        );
        details
    };
    let (code, details) = match error {
        Error::NotFound { warning_id } => {
            let mut details = info("WARNING_NOT_FOUND", vec![("warning_id", warning_id)]);
            details.add_bad_request_violation("warning_id", message.clone());
            (Code::NotFound, details)
        }
        Error::NotAddressed {
            warning_id,
            department,
            action,
            addressed,
        } => (
            Code::PermissionDenied,
            info(
                "WARNING_NOT_ADDRESSED",
                vec![
                    ("warning_id", warning_id),
                    ("department", department.code().to_owned()),
                    ("action", action.to_owned()),
                    ("addressed_to", codes(&addressed)),
                    ("may_act", codes(&addressed)),
                ],
            ),
        ),
        Error::Closed { warning_id } => {
            let mut details = info(
                "WARNING_CLOSED",
                vec![
                    ("warning_id", warning_id.clone()),
                    ("current_state", State::Closed.name().to_owned()),
                ],
            );
            details.add_precondition_failure_violation(
                "WARNING_STATE",
                warning_id,
                message.clone(),
            );
            (Code::FailedPrecondition, details)
        }
        Error::AlreadyAcknowledged {
            warning_id,
            department,
        } => {
            let mut details = info(
                "WARNING_ALREADY_ACKNOWLEDGED",
                vec![
                    ("warning_id", warning_id.clone()),
                    ("department", department.code().to_owned()),
                ],
            );
            details.add_precondition_failure_violation(
                "WARNING_STATE",
                warning_id,
                message.clone(),
            );
            (Code::FailedPrecondition, details)
        }
        Error::Publish(error) => return error.into(),
        Error::Unavailable(_) | Error::Storage(_) | Error::Io { .. } | Error::Bus(_) => {
            return Status::unavailable(message);
        }
        _ => return Status::internal(message),
    };
    Status::with_error_details(code, message, details)
}

/// Checks a request by the contract's field rules.
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
        Ok(())
    } else {
        Err(invalid(report.violations))
    }
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
                format!(
                    "{other} may query warnings, but only an addressed department acknowledges or closes one"
                ),
                details,
            ))
        }
    }
}

/// A warning as answered.
pub fn warning_view(
    w: &Warning,
    rules: &crate::RuleSet,
    now: DateTime<Utc>,
    with_history: bool,
) -> v1::Warning {
    let ts = hazchem_proto::time::timestamp;
    v1::Warning {
        warning_id: w.id.clone(),
        level: w.level.to_proto() as i32,
        rule_id: w.rule_id.clone(),
        title: w.title.clone(),
        description: w.description.clone(),
        addressed_to: dept_list(&w.addressed),
        enterprise: w.enterprise.as_ref().map(|(uscc, name)| v1::EnterpriseRef {
            uscc: uscc.clone(),
            name: name.clone(),
        }),
        related_event_ids: w.related.clone(),
        raised_at: Some(ts(w.raised_at)),
        acknowledge_by: w.acknowledge_by.map(ts),
        state: w.state().to_proto() as i32,
        acknowledged_by: dept_list(&w.acknowledged.iter().copied().collect::<Vec<_>>()),
        awaiting: dept_list(&w.awaiting()),
        may_acknowledge: dept_list(&w.may_acknowledge()),
        may_close: dept_list(&w.may_close()),
        raised_by: w.raised_by.clone(),
        escalations: w.escalations,
        closed_at: w.closed.as_ref().map(|c| ts(c.at)),
        overdue: w.overdue(now),
        history: if with_history {
            w.history
                .iter()
                .map(|h| v1::WarningHistoryEntry {
                    event_id: h.event_id.clone(),
                    sequence: h.sequence,
                    event_type: h.event_type.clone(),
                    department: h.department.map_or(0, |d| v1::Department::from(d) as i32),
                    at: Some(ts(h.at)),
                    level: h.level.to_proto() as i32,
                    note: h.note.clone(),
                    publisher: h.publisher.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
        legal_basis: rules.rule(&w.rule_id).map(|r| r.legal_basis.to_proto()),
    }
}

/// Runs the service (follows the stream, checks deadlines) and serves it over gRPC until `shutdown`.
pub async fn run_service(
    service: Warnings,
    listener: TcpListener,
    tls: ServerTls,
    shutdown: CancellationToken,
) -> Result<()> {
    let server = WarningServer::new(service.clone());
    hazchem_kit::run_together(
        &shutdown,
        |stop| async move { server.serve(listener, &tls, stop).await },
        |stop| service.run(stop),
    )
    .await
}

/// The gRPC face of a [`Warnings`] service.
#[derive(Debug, Clone)]
pub struct WarningServer {
    service: Warnings,
}

impl WarningServer {
    pub fn new(service: Warnings) -> Self {
        WarningServer { service }
    }

    fn now(&self) -> DateTime<Utc> {
        self.service.clock().now()
    }

    /// Serves `WarningService` over mTLS until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: &ServerTls,
        shutdown: CancellationToken,
    ) -> Result<()> {
        hazchem_kit::serve_grpc(
            "warning service",
            Routes::new(WarningServiceServer::new(self)),
            &[WarningServiceServer::<WarningServer>::NAME],
            listener,
            tls,
            shutdown,
        )
        .await
        .map_err(Error::from)
    }

    fn view(&self, w: &Warning, history: bool) -> v1::Warning {
        warning_view(w, self.service.rules(), self.now(), history)
    }
}

#[tonic::async_trait]
impl WarningService for WarningServer {
    async fn list_warnings(
        &self,
        request: Request<v1::ListWarningsRequest>,
    ) -> Result<Response<v1::ListWarningsResponse>, Status> {
        let principal = authenticate(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let mut v = Vec::new();
        let level = (r.level != 0)
            .then(|| {
                let l = Level::from_proto(r.level);
                if l.is_none() {
                    v.push(hazchem_admission::FieldViolation::new(
                        "level",
                        "enum.undefined",
                        "not a warning level",
                    ));
                }
                l
            })
            .flatten();
        let state = (r.state != 0)
            .then(|| {
                let s = State::from_proto(r.state);
                if s.is_none() {
                    v.push(hazchem_admission::FieldViolation::new(
                        "state",
                        "enum.undefined",
                        "not a warning state",
                    ));
                }
                s
            })
            .flatten();
        let department = (r.department != 0)
            .then(|| {
                let d = hazchem_proto::department_from_i32(r.department).ok();
                if d.is_none() {
                    v.push(hazchem_admission::FieldViolation::new(
                        "department",
                        "enum.undefined",
                        "not a department",
                    ));
                }
                d
            })
            .flatten();
        let time = |t: &Option<prost_types::Timestamp>, field: &str, v: &mut Vec<_>| {
            t.as_ref().and_then(|t| {
                let d = hazchem_proto::time::datetime(t);
                if d.is_none() {
                    v.push(hazchem_admission::FieldViolation::new(
                        field,
                        "timestamp.range",
                        "not a valid timestamp",
                    ));
                }
                d
            })
        };
        let raised_from = time(&r.raised_from, "raised_from", &mut v);
        let raised_until = time(&r.raised_until, "raised_until", &mut v);
        if let (Some(from), Some(until)) = (raised_from, raised_until)
            && from >= until
        {
            v.push(hazchem_admission::FieldViolation::new(
                "raised_until",
                "time_range.empty",
                format!("raised_until ({until}) must be after raised_from ({from})"),
            ));
        }
        if !v.is_empty() {
            return Err(invalid(v));
        }
        let limit = match r.page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let query = WarningQuery {
            level,
            state,
            department,
            enterprise: (!r.enterprise_uscc.is_empty()).then_some(r.enterprise_uscc),
            rule_id: (!r.rule_id.is_empty()).then_some(r.rule_id),
            raised_from,
            raised_until,
            after: (!r.page_token.is_empty()).then_some(r.page_token),
            limit,
        };
        let (warnings, more) = self.service.warnings(&principal, &query);
        let next_page_token = if more {
            warnings.last().map(|w| w.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListWarningsResponse {
            warnings: warnings.iter().map(|w| self.view(w, false)).collect(),
            next_page_token,
        }))
    }

    async fn get_warning(
        &self,
        request: Request<v1::GetWarningRequest>,
    ) -> Result<Response<v1::GetWarningResponse>, Status> {
        let principal = authenticate(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let w = self
            .service
            .warning(&r.warning_id)
            .filter(|w| self.service.visible(&principal, w))
            .ok_or_else(|| {
                status(Error::NotFound {
                    warning_id: r.warning_id.clone(),
                })
            })?;
        Ok(Response::new(v1::GetWarningResponse {
            warning: Some(self.view(&w, true)),
        }))
    }

    async fn acknowledge_warning(
        &self,
        request: Request<v1::AcknowledgeWarningRequest>,
    ) -> Result<Response<v1::AcknowledgeWarningResponse>, Status> {
        let department = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let w = self
            .service
            .acknowledge(department, &r.warning_id, r.note)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::AcknowledgeWarningResponse {
            warning: Some(self.view(&w, true)),
        }))
    }

    async fn close_warning(
        &self,
        request: Request<v1::CloseWarningRequest>,
    ) -> Result<Response<v1::CloseWarningResponse>, Status> {
        let department = actor(&request)?;
        let r = request.into_inner();
        check_rules(&r, self.now())?;
        let w = self
            .service
            .close(department, &r.warning_id, r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::CloseWarningResponse {
            warning: Some(self.view(&w, true)),
        }))
    }
}
