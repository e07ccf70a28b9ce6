//! Early warning end to end, over real gRPC with mTLS, on the embedded bus and on a real nats-server: a
//! department event published through the gateway triggers a rule; the warning service raises the warning
//! through the gateway's admission; the addressed departments see it through `ListWarnings` and
//! `GetWarning`, a department the read policy keeps from warnings does not (`NOT_FOUND`, absent from the
//! list); the addressed departments acknowledge and close it, every other attempt is refused with the
//! precise status (code, `ErrorInfo` reason and metadata, field) and appends nothing; and the lifecycle is
//! on the stream, delivered by the gateway's `Subscribe` in order, as service `warning` with the
//! deterministic ids.

#![allow(clippy::disallowed_methods)] // tests: events are stamped with wall time for gateways on the system clock

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt as _;
use hazchem_domain::Department;
use hazchem_proto::v1;
use hazchem_proto::v1::event::Payload as P;
use hazchem_proto::v1::warning_service_client::WarningServiceClient;
use hazchem_tests::{
    ARRIVE, BusKind, TestBus, TestGateway, assert_serving, assert_status, auditor, delivered_event,
    dept, error_info, fresh, next_delivery, service, subscribe_request, violations,
};
use hazchem_warning::{WarningConfig, Warnings};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The buyer of the sale (in the sample registers).
const BUYER: &str = "91320614MA20C7L4N1";
/// Hydrogen cyanide: on the sample catalogue's `highly_toxic` list.
const HCN: &str = "74-90-8";
const RULE: &str = "sale.highly_toxic_without_permit";
const WARNING_TYPES: [&str; 4] = [
    "warning_raised",
    "warning_acknowledged",
    "warning_escalated",
    "warning_closed",
];

/// The default policy, except that samr reads sales and licences only (no warnings): the department a
/// warning is hidden from.
fn policy_text() -> String {
    let text = std::fs::read_to_string(hazchem_tests::workspace_root().join("deploy/policy.toml"))
        .expect("deploy/policy.toml");
    let (publish, read) = text.split_once("\n[read]\n").expect("a [read] table");
    let read = read.replacen(
        "samr = [\"*\"]",
        "samr = [\"sale_recorded\", \"licence_*\"]",
        1,
    );
    assert_ne!(read, text, "samr's read line is in the policy");
    format!("{publish}\n[read]\n{read}")
}

/// The warning service (core, runner, gRPC server) in this process, on the gateway's bus, publishing
/// through the gateway's admission as service `warning`.
struct World {
    gateway: TestGateway,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    _state: tempfile::TempDir,
}

impl World {
    async fn start(kind: BusKind) -> World {
        let policy = policy_text();
        let gateway = TestGateway::builder(TestBus::new(kind).await)
            .policy(policy.clone())
            .start()
            .await;
        let state = tempfile::tempdir().unwrap();
        let config = WarningConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: state.path().join("warning"),
            tls: Some(gateway.pki().server_tls_files()),
            escalation_interval: Duration::from_secs(1),
            ..WarningConfig::default()
        };
        config.validate().unwrap();
        let service = Warnings::from_config(
            &config,
            hazchem_admission::Policy::from_toml_str(&policy).unwrap(),
            gateway.bus().bus().clone(),
            gateway.sink("warning"),
        )
        .unwrap();
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(
            hazchem_warning::run_service(
                service,
                listener,
                config.server_tls().unwrap(),
                shutdown.clone(),
            )
            .map(|result| result.unwrap()),
        );
        World {
            gateway,
            addr,
            shutdown,
            task,
            _state: state,
        }
    }

    async fn client_as(&self, principal: &hazchem_pki::Principal) -> WarningServiceClient<Channel> {
        WarningServiceClient::new(self.gateway.pki().channel(self.addr, principal).await)
    }

    async fn client(&self, code: &str) -> WarningServiceClient<Channel> {
        self.client_as(&dept(code)).await
    }

    async fn list(
        &self,
        code: &str,
        request: v1::ListWarningsRequest,
    ) -> Result<Vec<v1::Warning>, Status> {
        Ok(self
            .client(code)
            .await
            .list_warnings(request)
            .await?
            .into_inner()
            .warnings)
    }

    async fn get(&self, code: &str, id: &str) -> Result<v1::Warning, Status> {
        Ok(self
            .client(code)
            .await
            .get_warning(v1::GetWarningRequest {
                warning_id: id.into(),
            })
            .await?
            .into_inner()
            .warning
            .unwrap())
    }

    async fn acknowledge(&self, code: &str, id: &str, note: &str) -> Result<v1::Warning, Status> {
        Ok(self
            .client(code)
            .await
            .acknowledge_warning(v1::AcknowledgeWarningRequest {
                warning_id: id.into(),
                note: note.into(),
            })
            .await?
            .into_inner()
            .warning
            .unwrap())
    }

    async fn close(&self, code: &str, id: &str, reason: &str) -> Result<v1::Warning, Status> {
        Ok(self
            .client(code)
            .await
            .close_warning(v1::CloseWarningRequest {
                warning_id: id.into(),
                reason: reason.into(),
            })
            .await?
            .into_inner()
            .warning
            .unwrap())
    }

    async fn last_sequence(&self) -> u64 {
        self.gateway.bus().last_sequence().await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(ARRIVE, self.task)
            .await
            .expect("the warning service stops")
            .unwrap();
        self.gateway.stop().await;
    }
}

fn d(department: Department) -> i32 {
    v1::Department::from(department) as i32
}

fn by_rule() -> v1::ListWarningsRequest {
    v1::ListWarningsRequest {
        rule_id: RULE.into(),
        ..Default::default()
    }
}

/// The `ErrorInfo` reason and metadata of a refusal with `code`.
#[track_caller]
fn refusal(status: &Status, code: Code) -> (String, std::collections::HashMap<String, String>) {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let info = error_info(status).unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, hazchem_admission::ERROR_DOMAIN);
    (info.reason, info.metadata)
}

#[track_caller]
fn assert_not_found(status: &Status, id: &str) {
    let (reason, metadata) = refusal(status, Code::NotFound);
    assert_eq!(reason, "WARNING_NOT_FOUND");
    assert_eq!(metadata["warning_id"], id);
    assert_eq!(
        violations(status),
        [("warning_id".to_owned(), String::new())],
        "a BadRequest on warning_id: {status:?}"
    );
}

async fn lifecycle(kind: BusKind) {
    let world = World::start(kind).await;
    assert_serving(
        world.gateway.pki().channel(world.addr, &dept("fire")).await,
        &["hazchem.v1.WarningService"],
    )
    .await;
    // The fire department follows sales and warnings through the gateway, from the start.
    let mut followed = world
        .gateway
        .subscribe(
            &dept("fire"),
            subscribe_request(
                v1::EventFilter {
                    event_types: std::iter::once("sale_recorded")
                        .chain(WARNING_TYPES)
                        .map(str::to_owned)
                        .collect(),
                    ..Default::default()
                },
                None,
            ),
        )
        .await
        .unwrap();

    // Emergency management records a sale of hydrogen cyanide to a buyer without a purchase permit.
    let now = Utc::now();
    let mut sale = fresh("sale_recorded");
    sale.time = Some(hazchem_proto::time::timestamp(now));
    let Some(P::SaleRecorded(s)) = &mut sale.payload else {
        unreachable!()
    };
    s.buyer.as_mut().unwrap().uscc = BUYER.into();
    s.chemical = Some(v1::ChemicalRef {
        cas: HCN.into(),
        name: "氰化氢".into(),
        ..Default::default()
    });
    s.sold_at = Some(hazchem_proto::time::timestamp(now));
    let accepted = world.gateway.publish_event(&sale).await.unwrap();
    let id = hazchem_warning::raise_id(RULE, "emergency", &sale.id, "");

    // The rule raises it; the addressed departments see it in the list.
    let deadline = tokio::time::Instant::now() + ARRIVE;
    let listed = loop {
        let listed = world.list("psb", by_rule()).await.unwrap();
        if !listed.is_empty() {
            break listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no warning raised within {ARRIVE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let w = &listed[0];
    assert_eq!(w.warning_id, id, "the deterministic id");
    assert_eq!(w.level, v1::WarningLevel::Orange as i32);
    assert_eq!(w.state, v1::WarningState::Open as i32);
    assert_eq!(w.rule_id, RULE);
    assert_eq!(w.raised_by, "warning");
    assert_eq!(w.related_event_ids, [sale.id.clone()]);
    assert_eq!(w.enterprise.as_ref().unwrap().uscc, BUYER);
    assert_eq!(
        w.raised_at,
        Some(hazchem_proto::time::timestamp(now)),
        "raised at the instant of the sale"
    );
    let addressed = vec![d(Department::Psb), d(Department::Emergency)];
    assert_eq!(w.addressed_to, addressed);
    assert_eq!(w.awaiting, addressed);
    assert_eq!(w.may_acknowledge, addressed);
    assert_eq!(w.may_close, addressed);
    assert!(w.acknowledged_by.is_empty());
    assert!(!w.overdue);
    assert!(w.history.is_empty(), "ListWarnings answers no history");
    assert_eq!(
        w.legal_basis.as_ref().unwrap().instrument,
        "《危险化学品安全管理条例》"
    );
    // GetWarning, as the other addressed department: the same warning, with its history.
    let got = world.get("emergency", &id).await.unwrap();
    assert_eq!(
        v1::Warning {
            history: Vec::new(),
            ..got.clone()
        },
        *w
    );
    assert_eq!(got.history.len(), 1);
    assert_eq!(got.history[0].event_type, "warning_raised");
    assert_eq!(got.history[0].publisher, "warning");
    assert!(got.history[0].sequence > accepted.sequence);
    // Fire is not addressed but reads every event type: it sees the warning (and may not act on it).
    assert_eq!(world.get("fire", &id).await.unwrap().warning_id, id);
    assert_eq!(world.list("fire", by_rule()).await.unwrap().len(), 1);

    // samr may not read warnings: NOT_FOUND, absent from every list, and nothing to act on.
    assert_not_found(&world.get("samr", &id).await.unwrap_err(), &id);
    assert!(world.list("samr", by_rule()).await.unwrap().is_empty());
    assert!(
        world
            .list("samr", v1::ListWarningsRequest::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_not_found(&world.acknowledge("samr", &id, "").await.unwrap_err(), &id);
    assert_not_found(&world.close("samr", &id, "无关").await.unwrap_err(), &id);

    // Refusals, each precise, and none appends anything.
    let before = world.last_sequence().await;
    // Fire is not addressed.
    let refused = world.acknowledge("fire", &id, "收到").await.unwrap_err();
    let (reason, metadata) = refusal(&refused, Code::PermissionDenied);
    assert_eq!(reason, "WARNING_NOT_ADDRESSED");
    assert_eq!(metadata["warning_id"], id);
    assert_eq!(metadata["department"], "fire");
    assert_eq!(metadata["action"], "acknowledge");
    assert_eq!(metadata["addressed_to"], "psb,emergency");
    assert!(violations(&refused).is_empty(), "{refused:?}");
    // A service may read, but only a department acknowledges.
    let refused = world
        .client_as(&auditor())
        .await
        .acknowledge_warning(v1::AcknowledgeWarningRequest {
            warning_id: id.clone(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&refused, Code::PermissionDenied).0,
        "DEPARTMENT_REQUIRED"
    );
    let as_service = world.client_as(&service("credit")).await;
    let listed = as_service
        .clone()
        .list_warnings(by_rule())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.warnings.len(), 1, "a service reads every warning");
    // Requests breaking the contract: the field named.
    let refused = world.acknowledge("psb", "", "").await.unwrap_err();
    assert_status(
        &refused,
        Code::InvalidArgument,
        &[("warning_id", "required")],
    );
    assert_eq!(
        refusal(&refused, Code::InvalidArgument).0,
        "FIELD_VIOLATIONS"
    );
    let refused = world.close("emergency", &id, "").await.unwrap_err();
    assert_status(&refused, Code::InvalidArgument, &[("reason", "required")]);
    let refused = world
        .list(
            "psb",
            v1::ListWarningsRequest {
                level: 99,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::InvalidArgument,
        &[("level", "enum.undefined")],
    );
    // Unknown warning.
    assert_not_found(
        &world.acknowledge("psb", "wrn-nope", "").await.unwrap_err(),
        "wrn-nope",
    );
    assert_eq!(
        world.last_sequence().await,
        before,
        "refusals append nothing"
    );

    // psb acknowledges: emergency is still awaited; twice is refused.
    let w = world.acknowledge("psb", &id, "已核查").await.unwrap();
    assert_eq!(w.state, v1::WarningState::Open as i32);
    assert_eq!(w.acknowledged_by, [d(Department::Psb)]);
    assert_eq!(w.awaiting, [d(Department::Emergency)]);
    assert_eq!(w.may_acknowledge, [d(Department::Emergency)]);
    let refused = world.acknowledge("psb", &id, "").await.unwrap_err();
    let (reason, metadata) = refusal(&refused, Code::FailedPrecondition);
    assert_eq!(reason, "WARNING_ALREADY_ACKNOWLEDGED");
    assert_eq!(metadata["department"], "psb");
    // Emergency acknowledges: every addressed department has.
    let w = world.acknowledge("emergency", &id, "").await.unwrap();
    assert_eq!(w.state, v1::WarningState::Acknowledged as i32);
    assert!(w.awaiting.is_empty());
    assert!(w.may_acknowledge.is_empty());
    assert_eq!(w.may_close, addressed);

    // Closing: refused to fire (not addressed), done by emergency, then nothing more.
    let refused = world.close("fire", &id, "不相关").await.unwrap_err();
    let (reason, metadata) = refusal(&refused, Code::PermissionDenied);
    assert_eq!(reason, "WARNING_NOT_ADDRESSED");
    assert_eq!(metadata["action"], "close");
    let w = world.close("emergency", &id, "已立案调查").await.unwrap();
    assert_eq!(w.state, v1::WarningState::Closed as i32);
    assert!(w.closed_at.is_some());
    assert!(w.may_close.is_empty() && w.may_acknowledge.is_empty());
    for refused in [
        world.close("psb", &id, "再次关闭").await.unwrap_err(),
        world.acknowledge("emergency", &id, "").await.unwrap_err(),
    ] {
        let (reason, metadata) = refusal(&refused, Code::FailedPrecondition);
        assert_eq!(reason, "WARNING_CLOSED");
        assert_eq!(metadata["current_state"], "WARNING_STATE_CLOSED");
    }
    let history: Vec<(String, i32, String)> = w
        .history
        .iter()
        .map(|h| (h.event_type.clone(), h.department, h.note.clone()))
        .collect();
    assert_eq!(
        history,
        [
            ("warning_raised".into(), 0, w.title.clone()),
            (
                "warning_acknowledged".into(),
                d(Department::Psb),
                "已核查".into()
            ),
            (
                "warning_acknowledged".into(),
                d(Department::Emergency),
                String::new()
            ),
            (
                "warning_closed".into(),
                d(Department::Emergency),
                "已立案调查".into()
            ),
        ]
    );
    assert_eq!(world.get("psb", &id).await.unwrap(), w, "GetWarning agrees");

    // The list filters.
    let count = |request: v1::ListWarningsRequest| {
        let world = &world;
        async move { world.list("emergency", request).await.unwrap().len() }
    };
    let state = |s: v1::WarningState| v1::ListWarningsRequest {
        state: s as i32,
        ..by_rule()
    };
    assert_eq!(count(state(v1::WarningState::Closed)).await, 1);
    assert_eq!(count(state(v1::WarningState::Open)).await, 0);
    let filtered = v1::ListWarningsRequest {
        level: v1::WarningLevel::Orange as i32,
        department: d(Department::Psb),
        enterprise_uscc: BUYER.into(),
        raised_from: Some(hazchem_proto::time::timestamp(now)),
        raised_until: Some(hazchem_proto::time::timestamp(
            now + chrono::TimeDelta::seconds(1),
        )),
        ..by_rule()
    };
    assert_eq!(count(filtered.clone()).await, 1);
    for other in [
        v1::ListWarningsRequest {
            level: v1::WarningLevel::Red as i32,
            ..filtered.clone()
        },
        v1::ListWarningsRequest {
            department: d(Department::Fire),
            ..filtered.clone()
        },
        v1::ListWarningsRequest {
            raised_from: Some(hazchem_proto::time::timestamp(
                now + chrono::TimeDelta::milliseconds(1),
            )),
            ..filtered.clone()
        },
    ] {
        assert_eq!(count(other).await, 0);
    }

    // The stream: the sale, then the lifecycle, delivered in order through the gateway, published by
    // service `warning` with the deterministic ids, each step naming the department it acted for.
    let sale_delivery = next_delivery(&mut followed).await;
    assert_eq!(delivered_event(&sale_delivery).id, sale.id);
    assert_eq!(sale_delivery.sequence, accepted.sequence);
    let expected_ids = [
        id.clone(),
        hazchem_warning::ack_id(&id, Department::Psb),
        hazchem_warning::ack_id(&id, Department::Emergency),
        hazchem_warning::close_id(&id),
    ];
    let mut sequences = Vec::new();
    for expected in &expected_ids {
        let delivery = next_delivery(&mut followed).await;
        let event = delivered_event(&delivery);
        assert_eq!(&event.id, expected);
        assert_eq!(event.department, 0, "published by the service");
        let publisher = delivery
            .record
            .as_ref()
            .unwrap()
            .publisher
            .clone()
            .unwrap()
            .principal
            .unwrap();
        assert_eq!(
            publisher,
            v1::publisher::Principal::Service("warning".into())
        );
        assert!(
            delivery.subject.starts_with("hazchem.ev.warning.warning_"),
            "{}",
            delivery.subject
        );
        sequences.push(delivery.sequence);
        match event.payload.unwrap() {
            P::WarningRaised(r) => {
                assert_eq!(r.warning_id, id);
                assert_eq!(r.rule_id, RULE);
                assert_eq!(r.related_event_ids, [sale.id.clone()]);
                assert_eq!(r.addressed_to, addressed);
            }
            P::WarningAcknowledged(a) => {
                assert_eq!(a.warning_id, id);
                let by = if expected == &expected_ids[1] {
                    Department::Psb
                } else {
                    Department::Emergency
                };
                assert_eq!(a.acknowledged_by, d(by));
            }
            P::WarningClosed(c) => {
                assert_eq!(c.warning_id, id);
                assert_eq!(c.closed_by, d(Department::Emergency));
                assert_eq!(c.reason, "已立案调查");
                assert!(c.cleared_by_event_id.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let history_sequences: Vec<u64> = w.history.iter().map(|h| h.sequence).collect();
    assert_eq!(sequences, history_sequences, "the history is the stream");
    // Exactly these: no escalation (acknowledged in time), nothing from the refusals.
    let records = world.gateway.bus().records().await;
    let warning_events: Vec<&str> = records
        .iter()
        .filter(|r| r.subject.starts_with("hazchem.ev.warning."))
        .map(|r| r.event.id.as_str())
        .collect();
    assert_eq!(warning_events, expected_ids);
    assert_eq!(world.last_sequence().await, *sequences.last().unwrap());
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warning_raised_through_the_gateway_is_seen_acknowledged_and_closed_embedded() {
    lifecycle(BusKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warning_raised_through_the_gateway_is_seen_acknowledged_and_closed_jetstream() {
    lifecycle(BusKind::JetStream).await;
}
