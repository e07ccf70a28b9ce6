//! The gRPC layer: `hazchem.v1.CreditService` over mTLS, the guards the gateway calls before appending a
//! credit decision, and the conversions ([`convert`]) and statuses ([`status`]). Generated types are
//! converted into domain types here and nowhere else, and refusals become statuses in [`status`] only.
//!
//! # Who may call what
//!
//! | call | callers |
//! | --- | --- |
//! | `Check`, `GetHistory`, `ListListings` | departments the read policy lets read `credit_listing_decided`; every service and auditor |
//! | `ReviewDecision` | the services named in `credit.reviewers` (the gateway, `hazchem://service/gateway`) |

pub mod convert;
pub mod status;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hazchem_domain::{Department, Uscc};
use hazchem_kit::EventGuard;
use hazchem_pki::{ClientTls, Principal, ServerTls, authenticate};
use hazchem_proto::v1::credit_service_client::CreditServiceClient;
use hazchem_proto::v1::credit_service_server::{CreditService, CreditServiceServer};
use hazchem_proto::{department_from_i32, v1};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::config::RemoteGuardConfig;
use crate::error::{Error, Result};
use crate::registry::{ListQuery, Violation};
use crate::service::{Credit, ReviewError};

pub use convert::{DECISION_TOKENS, SERVICE_NAME, fact_of};

/// The default and largest `ListListings` page.
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

/// Reviews a credit decision published by `department`: the same checks in both modes (in-process guard
/// and `ReviewDecision`).
pub async fn review_event(
    credit: &Credit,
    department: Department,
    event: &v1::Event,
    up_to: u64,
) -> Result<(), Status> {
    let decision = match convert::decision_of(event) {
        Ok(Some(decision)) => decision,
        Ok(None) => {
            return Err(status::invalid(
                "event",
                "event_type.not_credit_decision",
                format!(
                    "the credit service reviews {} events only",
                    DECISION_TOKENS.join(", ")
                ),
            ));
        }
        Err(violations) => return Err(status::invalid_all(violations)),
    };
    if decision.department() != department {
        return Err(status::denied(
            "DEPARTMENT_MISMATCH",
            format!(
                "the decision is in the name of {}, but {department} published it",
                decision.department()
            ),
        ));
    }
    match credit.review(&decision, up_to).await {
        Ok(()) => Ok(()),
        Err(ReviewError::Refused(refusal)) => {
            tracing::info!(
                event_id = %event.id,
                department = %department,
                reason = refusal.reason(),
                %refusal,
                "credit decision refused"
            );
            Err(status::refusal_status(&refusal))
        }
        Err(ReviewError::CatchingUp {
            position,
            up_to,
            waited,
        }) => Err(status::catching_up(position, up_to, waited)),
    }
}

/// The guard of a gateway in the same process as the credit service.
#[derive(Debug, Clone)]
pub struct CreditGuard {
    credit: Credit,
}

impl CreditGuard {
    #[must_use]
    pub fn new(credit: Credit) -> Self {
        CreditGuard { credit }
    }
}

/// The department deciding a credit listing: only departments do.
fn deciding_department(principal: &Principal) -> Result<Department, Status> {
    principal.department().ok_or_else(|| {
        status::denied(
            "NOT_A_DEPARTMENT",
            format!(
                "{} is not a department: only departments decide credit listings",
                principal.uri()
            ),
        )
    })
}

#[tonic::async_trait]
impl EventGuard for CreditGuard {
    fn tokens(&self) -> &[&'static str] {
        &DECISION_TOKENS
    }

    async fn review(
        &self,
        principal: &Principal,
        event: &v1::Event,
        up_to: u64,
    ) -> Result<(), Status> {
        let department = deciding_department(principal)?;
        review_event(&self.credit, department, event, up_to).await
    }
}

/// The guard of a gateway whose credit service runs in another process: asks it over `ReviewDecision`.
/// Fails closed: when the credit service cannot be reached, credit decisions are refused with
/// `UNAVAILABLE` (the publisher retries the same event).
#[derive(Debug, Clone)]
pub struct RemoteCreditGuard {
    client: CreditServiceClient<Channel>,
    timeout: Duration,
}

impl RemoteCreditGuard {
    /// A guard that connects (lazily) to the credit service `config` names, with the gateway's client
    /// certificate.
    pub fn connect(config: &RemoteGuardConfig) -> Result<Self> {
        let tls = ClientTls::from_files(&config.ca, &config.cert, &config.key)?;
        let endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| hazchem_kit::ConfigError::new("credit.remote.endpoint", e.to_string()))?;
        let host = endpoint.uri().host().unwrap_or("localhost").to_owned();
        let channel = endpoint
            .tls_config(tls.config_for(&host))
            .map_err(|e| hazchem_kit::ConfigError::new("credit.remote", e.to_string()))?
            .connect_timeout(config.timeout)
            .connect_lazy();
        Ok(Self::with_channel(channel, config.timeout))
    }

    /// A guard over an existing channel.
    #[must_use]
    pub fn with_channel(channel: Channel, timeout: Duration) -> Self {
        RemoteCreditGuard {
            client: CreditServiceClient::new(channel),
            timeout,
        }
    }
}

#[tonic::async_trait]
impl EventGuard for RemoteCreditGuard {
    fn tokens(&self) -> &[&'static str] {
        &DECISION_TOKENS
    }

    async fn review(
        &self,
        principal: &Principal,
        event: &v1::Event,
        up_to: u64,
    ) -> Result<(), Status> {
        let department = deciding_department(principal)?;
        let mut request = Request::new(v1::ReviewDecisionRequest {
            event: event.encode_to_vec(),
            department: v1::Department::from(department) as i32,
            up_to,
        });
        request.set_timeout(self.timeout);
        match self.client.clone().review_decision(request).await {
            Ok(_) => Ok(()),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Unknown
                        | tonic::Code::Cancelled
                ) =>
            {
                tracing::warn!(status = %s, "the credit service did not review a credit decision");
                Err(Status::unavailable(format!(
                    "the credit service could not review the decision ({}); retry the same event",
                    s.message()
                )))
            }
            Err(s) => Err(s),
        }
    }
}

/// Runs the whole credit service until `shutdown`: follows the stream (publishing through `sink`) and serves
/// `CreditService` on `listener`. Either stopping (or failing) stops the other.
pub async fn run_service(
    credit: Credit,
    bus: hazchem_bus::Bus,
    sink: hazchem_kit::EventSink,
    listener: TcpListener,
    tls: ServerTls,
    shutdown: CancellationToken,
) -> Result<()> {
    let server = CreditServer::new(credit.clone());
    hazchem_kit::run_together(
        &shutdown,
        |stop| async move { server.serve(listener, &tls, stop).await },
        |stop| credit.run(bus, sink, stop),
    )
    .await
}

/// The gRPC face of a [`Credit`] service.
#[derive(Debug, Clone)]
pub struct CreditServer {
    credit: Credit,
    reviewers: Arc<BTreeSet<String>>,
}

impl CreditServer {
    #[must_use]
    pub fn new(credit: Credit) -> Self {
        let reviewers = credit.config().reviewers.iter().cloned().collect();
        CreditServer {
            credit,
            reviewers: Arc::new(reviewers),
        }
    }

    /// Serves `CreditService` over mTLS until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: &ServerTls,
        shutdown: CancellationToken,
    ) -> Result<()> {
        hazchem_kit::serve_grpc(
            "credit service",
            Routes::new(CreditServiceServer::new(self)),
            &[CreditServiceServer::<CreditServer>::NAME],
            listener,
            tls,
            shutdown,
        )
        .await
        .map_err(Error::from)
    }

    /// Whether `principal` may query the registry.
    fn may_query(&self, principal: &Principal) -> Result<(), Status> {
        let policy = self.credit.policy();
        if policy.may_read(
            principal,
            "credit_listing_decided",
            None,
            v1::DataClassification::Shared,
            &[],
        ) {
            Ok(())
        } else {
            Err(status::denied(
                "READ_NOT_PERMITTED",
                format!(
                    "{} may not read credit listings under the read policy",
                    principal.uri()
                ),
            ))
        }
    }
}

fn parse_uscc(value: &str, field: &str) -> Result<Uscc, Violation> {
    Uscc::parse(value).map_err(|e| Violation {
        field: field.to_owned(),
        rule: format!("{}.{}", e.kind.as_str(), e.rule.as_str()),
        reason: "FIELD_VIOLATIONS",
        description: e.to_string(),
    })
}

/// The instant a request names, or `now` (the service's clock) if it names none.
fn instant(
    t: Option<&prost_types::Timestamp>,
    field: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, Violation> {
    match t {
        None => Ok(now),
        Some(t) => hazchem_proto::time::datetime(t).ok_or_else(|| Violation {
            field: field.to_owned(),
            rule: "timestamp.range".to_owned(),
            reason: "FIELD_VIOLATIONS",
            description: format!(
                "not a valid timestamp: seconds {}, nanos {}",
                t.seconds, t.nanos
            ),
        }),
    }
}

fn violation(field: &str, rule: &str, description: impl Into<String>) -> Violation {
    Violation {
        field: field.to_owned(),
        rule: rule.to_owned(),
        reason: "FIELD_VIOLATIONS",
        description: description.into(),
    }
}

/// `v1.<as_of seconds>.<as_of nanos>.<after sequence>`: a page token pins the instant of the first page.
fn page_token(as_of: DateTime<Utc>, after: u64) -> String {
    format!(
        "v1.{}.{}.{after}",
        as_of.timestamp(),
        as_of.timestamp_subsec_nanos()
    )
}

fn parse_page_token(token: &str) -> Option<(DateTime<Utc>, u64)> {
    let mut parts = token.split('.');
    let (Some("v1"), Some(s), Some(n), Some(after), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let as_of = DateTime::from_timestamp(s.parse().ok()?, n.parse().ok()?)?;
    Some((as_of, after.parse().ok()?))
}

/// A `ListListings` request as a query (and the violations if it is not one); a first page without
/// `as_of` is as of `now`.
fn list_query(
    request: &v1::ListListingsRequest,
    now: DateTime<Utc>,
) -> Result<ListQuery, Vec<Violation>> {
    let mut violations = Vec::new();
    let department = match request.department {
        0 => None,
        d => match department_from_i32(d) {
            Ok(d) => Some(d),
            Err(e) => {
                violations.push(violation("department", "enum.undefined", e.to_string()));
                None
            }
        },
    };
    let list_type = match request.list_type {
        0 => None,
        t => {
            let parsed = convert::list_type_of(t);
            if parsed.is_none() {
                violations.push(violation(
                    "list_type",
                    "enum.undefined",
                    format!("{t} is not a list type"),
                ));
            }
            parsed
        }
    };
    let status = match request.status {
        0 => None,
        s => {
            let parsed = convert::status_of(s);
            if parsed.is_none() {
                violations.push(violation(
                    "status",
                    "enum.undefined",
                    format!("{s} is not a listing status"),
                ));
            }
            parsed
        }
    };
    let page_size = match request.page_size as usize {
        0 => DEFAULT_PAGE_SIZE,
        n if n > MAX_PAGE_SIZE => {
            violations.push(violation(
                "page_size",
                "max",
                format!("at most {MAX_PAGE_SIZE}, got {n}"),
            ));
            MAX_PAGE_SIZE
        }
        n => n,
    };
    let mut as_of = match request.as_of.as_ref() {
        None => None,
        Some(t) => match hazchem_proto::time::datetime(t) {
            Some(t) => Some(t),
            None => {
                violations.push(violation(
                    "as_of",
                    "timestamp.range",
                    "not a valid timestamp",
                ));
                None
            }
        },
    };
    let mut after = 0;
    if !request.page_token.is_empty() {
        match parse_page_token(&request.page_token) {
            None => violations.push(violation(
                "page_token",
                "page_token.invalid",
                "not a page token this service issued",
            )),
            Some((token_as_of, token_after)) => {
                if as_of.is_some_and(|a| a != token_as_of) {
                    violations.push(violation(
                        "page_token",
                        "page_token.as_of_mismatch",
                        "the page token was issued for another as_of instant; keep as_of unchanged between pages",
                    ));
                }
                as_of = Some(token_as_of);
                after = token_after;
            }
        }
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(ListQuery {
        department,
        list_type,
        status,
        as_of: as_of.unwrap_or(now),
        page_size,
        after,
    })
}

#[tonic::async_trait]
impl CreditService for CreditServer {
    async fn check(
        &self,
        request: Request<v1::CheckRequest>,
    ) -> Result<Response<v1::CheckResponse>, Status> {
        let principal = authenticate(&request)?;
        self.may_query(&principal)?;
        let request = request.into_inner();
        let mut violations = Vec::new();
        let uscc = parse_uscc(&request.uscc, "uscc")
            .map_err(|v| violations.push(v))
            .ok();
        let department = department_from_i32(request.department)
            .map_err(|e| {
                violations.push(violation(
                    "department",
                    "required",
                    format!("required: {e}"),
                ))
            })
            .ok();
        let at = instant(request.at.as_ref(), "at", self.credit.clock().now())
            .map_err(|v| violations.push(v))
            .ok();
        let (Some(uscc), Some(department), Some(at)) = (uscc, department, at) else {
            return Err(status::invalid_all(violations));
        };
        let result = self.credit.check(&uscc, department, at);
        Ok(Response::new(v1::CheckResponse {
            active: result
                .active
                .iter()
                .map(convert::listing_to_proto)
                .collect(),
            measures: convert::measures_to_proto(&result.measures),
        }))
    }

    async fn get_history(
        &self,
        request: Request<v1::GetHistoryRequest>,
    ) -> Result<Response<v1::GetHistoryResponse>, Status> {
        let principal = authenticate(&request)?;
        self.may_query(&principal)?;
        let request = request.into_inner();
        let mut violations = Vec::new();
        let uscc = parse_uscc(&request.uscc, "uscc")
            .map_err(|v| violations.push(v))
            .ok();
        let as_of = instant(request.as_of.as_ref(), "as_of", self.credit.clock().now())
            .map_err(|v| violations.push(v))
            .ok();
        let (Some(uscc), Some(as_of)) = (uscc, as_of) else {
            return Err(status::invalid_all(violations));
        };
        let listings = self.credit.history(&uscc, as_of);
        Ok(Response::new(v1::GetHistoryResponse {
            listings: listings.iter().map(convert::listing_to_proto).collect(),
        }))
    }

    async fn list_listings(
        &self,
        request: Request<v1::ListListingsRequest>,
    ) -> Result<Response<v1::ListListingsResponse>, Status> {
        let principal = authenticate(&request)?;
        self.may_query(&principal)?;
        let query = list_query(request.get_ref(), self.credit.clock().now())
            .map_err(status::invalid_all)?;
        let page = self.credit.list(&query);
        Ok(Response::new(v1::ListListingsResponse {
            listings: page
                .listings
                .iter()
                .map(convert::listing_to_proto)
                .collect(),
            next_page_token: page
                .next_after
                .map(|after| page_token(query.as_of, after))
                .unwrap_or_default(),
        }))
    }

    async fn review_decision(
        &self,
        request: Request<v1::ReviewDecisionRequest>,
    ) -> Result<Response<v1::ReviewDecisionResponse>, Status> {
        let principal = authenticate(&request)?;
        let allowed =
            matches!(&principal, Principal::Service(name) if self.reviewers.contains(name));
        if !allowed {
            return Err(status::denied(
                "NOT_A_REVIEWER",
                format!(
                    "{} may not ask for reviews: only the gateway's services ({}) may",
                    principal.uri(),
                    self.reviewers
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let request = request.into_inner();
        let department = department_from_i32(request.department)
            .map_err(|e| status::invalid("department", "required", format!("required: {e}")))?;
        let event = v1::Event::decode(request.event.as_slice()).map_err(|e| {
            status::invalid(
                "event",
                "decode",
                format!("the bytes are not an encoded hazchem.v1.Event: {e}"),
            )
        })?;
        review_event(&self.credit, department, &event, request.up_to).await?;
        Ok(Response::new(v1::ReviewDecisionResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_pin_the_instant() {
        let at = DateTime::from_timestamp(1_790_000_000, 123).unwrap();
        assert_eq!(parse_page_token(&page_token(at, 42)), Some((at, 42)));
        assert_eq!(parse_page_token("v2.1.2.3"), None);
        let mut request = v1::ListListingsRequest {
            page_token: page_token(at, 42),
            ..Default::default()
        };
        let q = list_query(&request, at + chrono::TimeDelta::days(1)).unwrap();
        assert_eq!((q.as_of, q.after, q.page_size), (at, 42, DEFAULT_PAGE_SIZE));
        request.as_of = Some(hazchem_proto::time::timestamp(
            at + chrono::TimeDelta::seconds(1),
        ));
        let v = list_query(&request, at + chrono::TimeDelta::days(1)).unwrap_err();
        assert_eq!(v[0].rule, "page_token.as_of_mismatch");
    }

    #[test]
    fn a_request_without_an_instant_is_answered_as_of_the_clocks_now() {
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let first = list_query(&v1::ListListingsRequest::default(), now).unwrap();
        assert_eq!(first.as_of, now);
        assert_eq!(instant(None, "at", now).unwrap(), now);
        let named = now - chrono::TimeDelta::days(3);
        assert_eq!(
            instant(Some(&hazchem_proto::time::timestamp(named)), "at", now).unwrap(),
            named
        );
    }
}
